"""Readers' nodule outlines from LIDC-IDRI XML annotations, grouped into nodules in LPS mm.

LIDC readers outline nodules >= 3 mm with contours (edge maps of several points) and mark smaller ones with a
single point; only outlined marks >= 3 mm are kept. ``nonNodule`` entries are ignored.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NS = "{http://www.nih.gov}"
MIN_DIAMETER_MM = 3.0
MIN_GROUP_DISTANCE_MM = 5.0


@dataclass
class ReaderMark:
    """One reader's outline of one nodule.

    ``center_lps`` is the centroid of the filled outline voxels (exclusion contours removed), ``diameter_mm``
    the largest of: the widest in-plane extent of any slice's outline, and the span between first and last
    outlined slice centres.
    """

    reader: int
    nodule_id: str
    center_lps: np.ndarray
    diameter_mm: float
    n_slices: int


@dataclass
class LidcNodule:
    """Readers' marks of one nodule: mean centre, mean diameter and how many readers marked it."""

    center_lps: np.ndarray
    diameter_mm: float
    n_readers: int
    marks: list[ReaderMark] = field(default_factory=list)


def find_lidc_xml(folder) -> list[Path]:
    """XML files under ``folder`` (recursively) whose root element is ``LidcReadMessage``."""
    found = []
    for path in sorted(Path(folder).rglob("*")):
        if path.suffix.lower() != ".xml" or not path.is_file():
            continue
        try:
            for _, elem in ET.iterparse(path, events=("start",)):
                if elem.tag.rsplit("}", 1)[-1] == "LidcReadMessage":
                    found.append(path)
                break  # only the root element matters
        except ET.ParseError:
            continue
    return found


def _fill(cols: np.ndarray, rows: np.ndarray) -> set[tuple[int, int]]:
    """Pixels ``(col, row)`` inside a closed contour (even-odd rule at pixel centres) or on it."""
    c0, c1, r0, r1 = cols.min(), cols.max(), rows.min(), rows.max()
    cc, rr = np.meshgrid(np.arange(c0, c1 + 1), np.arange(r0, r1 + 1))
    px, py = cc.ravel().astype(float), rr.ravel().astype(float)
    inside = np.zeros(px.shape, bool)
    x0, y0 = cols.astype(float), rows.astype(float)
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for a, b, c, d in zip(x0, y0, x1, y1):
        if b == d:
            continue
        crosses = (b > py) != (d > py)
        inside ^= crosses & (px < a + (py - b) * (c - a) / (d - b))
    pixels = {(int(x), int(y)) for x, y in zip(px[inside], py[inside])}
    return pixels | {(int(x), int(y)) for x, y in zip(cols, rows)}


def _slice_index(z: float, affine: np.ndarray, slice_z: np.ndarray | None) -> int | None:
    """Index of the slice at LPS ``z``: nearest slice position within half a spacing, else None.

    Without ``slice_positions`` the number of slices is unknown, so the index comes from the affine alone.
    """
    if slice_z is not None:
        if len(slice_z) == 0:
            return None
        k = int(np.argmin(np.abs(slice_z - z)))
        half = (np.median(np.abs(np.diff(slice_z))) if len(slice_z) > 1 else abs(affine[2, 2])) / 2
        return k if abs(slice_z[k] - z) <= half + 1e-3 else None
    if abs(affine[2, 2]) < 1e-6:
        raise ValueError("the volume's slices do not advance along z; LIDC outlines are axial")
    return int(round((z - affine[2, 3]) / affine[2, 2]))


def _slice_origin(k: int, affine: np.ndarray, slice_positions: np.ndarray | None) -> np.ndarray:
    if slice_positions is not None:
        return np.asarray(slice_positions[k], dtype=float)
    return affine[:3, 2] * k + affine[:3, 3]


def _text(element: ET.Element, tag: str) -> str:
    """The text of ``element``'s child ``tag``; a ValueError naming it when the file leaves it out."""
    text = element.findtext(f"{NS}{tag}")
    if text is None:
        raise ValueError(f"LIDC XML: a <{element.tag.rsplit('}', 1)[-1]}> without <{tag}>")
    return text


def _read_mark(nodule: ET.Element, reader: int, affine, slice_positions, slice_z) -> ReaderMark | None:
    """A reader's outlined nodule in LPS, or None when it is a single-point (< 3 mm) mark or off the volume."""
    rois = nodule.findall(f"{NS}roi")
    if not any(len(r.findall(f"{NS}edgeMap")) > 1 for r in rois):
        return None
    included: dict[int, set] = {}
    excluded: dict[int, set] = {}
    diameter = 0.0
    for roi in rois:
        z = float(_text(roi, "imageZposition"))
        k = _slice_index(z, affine, slice_z)
        if k is None:
            continue
        edges = roi.findall(f"{NS}edgeMap")
        cols = np.array([int(_text(e, "xCoord")) for e in edges])
        rows = np.array([int(_text(e, "yCoord")) for e in edges])
        if len(cols) == 0:
            continue
        keep = (roi.findtext(f"{NS}inclusion") or "TRUE").strip().upper() == "TRUE"
        (included if keep else excluded).setdefault(k, set()).update(_fill(cols, rows))
        if keep:
            pts = np.stack([cols, rows], axis=1) @ affine[:3, :2].T.astype(float)
            diameter = max(diameter, float(np.max(np.linalg.norm(pts[:, None] - pts[None], axis=-1))))
    voxels = []
    for k, pixels in included.items():
        pixels = pixels - excluded.get(k, set())
        if pixels:
            cr = np.array(sorted(pixels), dtype=float)
            voxels.append(cr @ affine[:3, :2].T + _slice_origin(k, affine, slice_positions))
    if not voxels:
        return None
    slices = sorted(included)
    span = np.linalg.norm(_slice_origin(slices[-1], affine, slice_positions)
                          - _slice_origin(slices[0], affine, slice_positions))
    return ReaderMark(reader=reader, nodule_id=(nodule.findtext(f"{NS}noduleID") or "").strip(),
                      center_lps=np.concatenate(voxels).mean(axis=0), diameter_mm=max(diameter, float(span)),
                      n_slices=len(slices))


def _group(marks: list[ReaderMark]) -> list[list[ReaderMark]]:
    """Single-linkage groups: marks closer than max(radius_a, radius_b, 5 mm) join one nodule."""
    parent = list(range(len(marks)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(marks):
        for j in range(i + 1, len(marks)):
            b = marks[j]
            limit = max(a.diameter_mm / 2, b.diameter_mm / 2, MIN_GROUP_DISTANCE_MM)
            if np.linalg.norm(a.center_lps - b.center_lps) <= limit:
                parent[root(j)] = root(i)
    groups: dict[int, list[ReaderMark]] = {}
    for i, mark in enumerate(marks):
        groups.setdefault(root(i), []).append(mark)
    return list(groups.values())


def read_lidc_nodules(xml_path, affine: np.ndarray, slice_positions=None) -> list[LidcNodule]:
    """Nodules >= 3 mm that LIDC readers outlined, in LPS mm, largest first.

    ``affine`` maps ``(column, row, slice, 1)`` to LPS as ``Volume.affine``; ``slice_positions`` (``(z, 3)``,
    as ``Volume.slice_positions``) places uneven slices and lets outlines on slices outside the volume be
    dropped. Each ``readingSession`` is one reader (index in file order).
    """
    affine = np.asarray(affine, dtype=float)
    positions = None if slice_positions is None else np.asarray(slice_positions, dtype=float).reshape(-1, 3)
    slice_z = None if positions is None else positions[:, 2]
    root = ET.parse(xml_path).getroot()
    marks = []
    for reader, session in enumerate(root.findall(f"{NS}readingSession")):
        for nodule in session.findall(f"{NS}unblindedReadNodule"):
            mark = _read_mark(nodule, reader, affine, positions, slice_z)
            if mark is not None and mark.diameter_mm >= MIN_DIAMETER_MM:
                marks.append(mark)
    nodules = [LidcNodule(center_lps=np.mean([m.center_lps for m in group], axis=0),
                          diameter_mm=float(np.mean([m.diameter_mm for m in group])),
                          n_readers=len({m.reader for m in group}), marks=group)
               for group in _group(marks)]
    return sorted(nodules, key=lambda n: n.diameter_mm, reverse=True)
