"""DICOM RT Structure Sets, read-only: the ROI contours of an RTSTRUCT and where they fall on a volume's slices.

An RTSTRUCT holds, per ROI, planar polygons in patient coordinates (LPS mm): StructureSetROISequence gives the
ROI numbers and names, ROIContourSequence the display colour and the ContourSequence of each ROI (ContourData
x, y, z triples; ContourGeometricType CLOSED_PLANAR, OPEN_PLANAR or POINT). :func:`read_rtstruct` reads them with
pydicom, :class:`RTStructOnVolume` maps them once into a volume's voxel index space (``Volume.lps_to_index``) and
answers, for an index axis and a slice number, which contours lie on that slice (``|index - k| < 0.5`` for every
point): the through axis of the acquisition plane (index z) for ordinary structure sets, and any other axis when a
contour happens to lie in that plane.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from viewer.core.dicom.damage import refusing_damage

DEFAULT_COLOUR = (255, 0, 0)
ON_SLICE_TOLERANCE = 0.5  # voxels: a contour is on slice k when every point is within this of k


@dataclass
class ROI:
    """One structure: ``contours`` are ``(N, 3)`` LPS mm arrays, ``geometric_types`` their ContourGeometricType."""

    name: str
    number: int
    colour: tuple[int, int, int] = DEFAULT_COLOUR
    contours: list[np.ndarray] = field(default_factory=list)
    geometric_types: list[str] = field(default_factory=list)


@dataclass
class StructureSet:
    """What :func:`read_rtstruct_set` keeps of one RTSTRUCT file."""

    path: str
    label: str
    frame_of_reference_uid: str
    referenced_series_uids: list[str]
    rois: list[ROI]


def _colour(value) -> tuple[int, int, int]:
    try:
        rgb = tuple(int(round(float(c))) for c in value)
    except (TypeError, ValueError):
        return DEFAULT_COLOUR
    if len(rgb) != 3:
        return DEFAULT_COLOUR
    return tuple(min(255, max(0, c)) for c in rgb)  # type: ignore[return-value]


def _referenced_series(ds) -> list[str]:
    uids = []
    for frame in getattr(ds, "ReferencedFrameOfReferenceSequence", []) or []:
        for study in getattr(frame, "RTReferencedStudySequence", []) or []:
            for series in getattr(study, "RTReferencedSeriesSequence", []) or []:
                uid = str(getattr(series, "SeriesInstanceUID", "") or "")
                if uid and uid not in uids:
                    uids.append(uid)
    return uids


_CONTOUR_DATA = 0x30060050


# No patient lies a kilometre from the origin; such a point (or NaN, or 1e308, which maps to infinite voxel
# indices) is damage, and its contour is left out.
MAX_COORDINATE_MM = 1e6


def _contour_points(contour) -> np.ndarray | None:
    """A contour's ContourData as ``(N, 3)`` LPS mm; None when absent, shorter than a point, malformed, not finite
    or beyond :data:`MAX_COORDINATE_MM`.

    numpy parses the element's raw DS text: pydicom's conversion, a DSfloat a value, took 0.71 s for the 88,158
    points of dicompyler-core's rtss.dcm, against 0.08 s.
    """
    element = contour.get_item(_CONTOUR_DATA)
    value = None if element is None else element.value
    try:
        if isinstance(value, (bytes, bytearray)):
            values = np.array(bytes(value).strip(b"\0 ").split(b"\\"), dtype=np.float64)
        elif value is not None:  # already converted by pydicom: one DSfloat or a MultiValue of them
            items = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
            values = np.asarray([float(v) for v in items], dtype=np.float64)
        else:
            return None
    except (TypeError, ValueError):
        return None
    if values.size < 3 or not np.all(np.abs(values) < MAX_COORDINATE_MM):
        return None
    return values[: values.size // 3 * 3].reshape(-1, 3)


def read_rtstruct_set(path: str | os.PathLike) -> StructureSet:
    """Read an RTSTRUCT file: its label, frame of reference, referenced series and ROIs (see :func:`read_rtstruct`)."""
    from viewer.core.dicom.limits import dcmread

    name = os.path.basename(str(path))
    with refusing_damage(name):  # pydicom parses elements on access: damage shows anywhere below
        ds = dcmread(str(path), stop_before_pixels=True, force=False)  # a deflated one inflated within a cap
        structures = str(getattr(ds, "Modality", "")) == "RTSTRUCT" or "StructureSetROISequence" in ds
    if not structures:
        raise ValueError(f"{name} is not an RT Structure Set")
    with refusing_damage(name):
        return _structure_set(ds, path)


def _structure_set(ds, path: str | os.PathLike) -> StructureSet:
    names: dict[int, str] = {}
    frames: dict[int, str] = {}
    for item in getattr(ds, "StructureSetROISequence", []) or []:
        number = int(getattr(item, "ROINumber", 0) or 0)
        names[number] = str(getattr(item, "ROIName", "") or f"ROI {number}")
        frames[number] = str(getattr(item, "ReferencedFrameOfReferenceUID", "") or "")
    rois: dict[int, ROI] = {n: ROI(name, n) for n, name in names.items()}
    for item in getattr(ds, "ROIContourSequence", []) or []:
        number = int(getattr(item, "ReferencedROINumber", 0) or 0)
        roi = rois.setdefault(number, ROI(f"ROI {number}", number))
        if "ROIDisplayColor" in item:
            roi.colour = _colour(item.ROIDisplayColor)
        for contour in getattr(item, "ContourSequence", []) or []:
            points = _contour_points(contour)
            if points is None:
                continue
            roi.contours.append(points)
            kind = str(getattr(contour, "ContourGeometricType", "") or "CLOSED_PLANAR")
            roi.geometric_types.append(kind)
    frame_uid = next((f for f in frames.values() if f), "")
    return StructureSet(
        path=str(path),
        label=str(getattr(ds, "StructureSetLabel", "") or os.path.basename(str(path))),
        frame_of_reference_uid=frame_uid,
        referenced_series_uids=_referenced_series(ds),
        rois=[rois[n] for n in sorted(rois)],
    )


@dataclass
class StructuresOnVolume:
    """What :func:`read_structures_job` read: the ROIs of every readable file, mapped onto the volume."""

    rois: list[ROI]
    labels: list[str]  # each readable file's StructureSetLabel
    failed: list[str]  # why each file that could not be read was not, naming it
    mapped: RTStructOnVolume | None  # None without any ROI


def read_structures_job(paths: Sequence[str | os.PathLike], volume):
    """Read the RT Structure Sets ``paths`` and map their ROIs onto ``volume``, as a job (a
    :class:`~inference.jobs.Progress` a file) for a worker: a large structure set takes seconds, which the GUI
    thread must not spend. Returns a :class:`StructuresOnVolume`; a file that cannot be read is named in its
    ``failed`` and the others still count."""
    from inference.jobs import Progress

    rois: list[ROI] = []
    labels: list[str] = []
    failed: list[str] = []
    for k, path in enumerate(paths):
        yield Progress(k, len(paths), "Reading RT Structure Sets")
        try:
            structure_set = read_rtstruct_set(path)
        except ValueError as exc:  # the reader's refusal, in words, naming the file
            failed.append(str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - a broken file must not keep the others from showing
            failed.append(f"{os.path.basename(str(path))} ({type(exc).__name__})")
            continue
        rois += structure_set.rois
        labels.append(structure_set.label)
    yield Progress(len(paths), len(paths), "Placing RT structures")
    return StructuresOnVolume(rois, labels, failed, RTStructOnVolume(rois, volume) if rois else None)


def read_rtstruct(path: str | os.PathLike) -> list[ROI]:
    """The ROIs of an RTSTRUCT file in ROI number order: name, number, display colour and contours (LPS mm)."""
    return read_rtstruct_set(path).rois


def contours_to_index(rois: list[ROI], volume) -> list[list[np.ndarray]]:
    """Each ROI's contours as ``(N, 3)`` continuous voxel indices ``(x, y, z)`` of ``volume``."""
    return [[volume.lps_to_index(c) for c in roi.contours] for roi in rois]


class RTStructOnVolume:
    """The ROIs of a structure set mapped once onto one volume, bucketed by slice on demand.

    :meth:`on_slice` gives the contours lying on slice ``k`` along index axis ``axis`` (0=x, 1=y, 2=z) as
    polylines of the two other index coordinates (for ``axis=2``: ``(x, y)`` = column, row).
    """

    def __init__(self, rois: list[ROI], volume) -> None:
        self.rois = list(rois)
        self.shape = tuple(volume.shape)
        self.affine = np.array(volume.affine, dtype=float)
        self.index_contours = contours_to_index(self.rois, volume)
        self._buckets: dict[int, dict[int, list[tuple[int, int]]]] = {}

    def _bucket(self, axis: int) -> dict[int, list[tuple[int, int]]]:
        buckets = self._buckets.get(axis)
        if buckets is None:
            buckets = {}
            for r, contours in enumerate(self.index_contours):
                for c, points in enumerate(contours):
                    along = points[:, axis]
                    k = int(np.floor(along.mean() + 0.5))
                    if np.all(np.abs(along - k) < ON_SLICE_TOLERANCE):
                        buckets.setdefault(k, []).append((r, c))
            self._buckets[axis] = buckets
        return buckets

    def on_slice(self, k: int, axis: int = 2) -> list[tuple[ROI, np.ndarray, str]]:
        """``(roi, polyline, geometric type)`` of every contour on slice ``k`` along ``axis``; ``polyline`` is
        ``(N, 2)`` of the two in-plane index coordinates in ``(x, y, z)`` order with ``axis`` left out."""
        keep = [a for a in range(3) if a != axis]
        out = []
        for r, c in self._bucket(axis).get(int(k), []):
            out.append((self.rois[r], self.index_contours[r][c][:, keep], self.rois[r].geometric_types[c]))
        return out

    def slices(self, axis: int = 2) -> list[int]:
        """Slice numbers along ``axis`` that hold at least one contour."""
        return sorted(self._bucket(axis))


def polylines_on_slice(rois: list[ROI], volume, k: int) -> list[tuple[ROI, np.ndarray]]:
    """The contours on slice ``k`` of the volume's array z axis, as ``(roi, (N, 2) array of (x, y) voxel
    coordinates)`` (continuous column, row)."""
    return [(roi, line) for roi, line, _ in RTStructOnVolume(rois, volume).on_slice(k, axis=2)]
