"""What model results look like on screen, as plain numpy: colour tables, outlines, boxes cut by a plane, findings.

Everything the overlay layers (:mod:`viewer.qt.overlays`) draw is computed here without Qt, so it is tested on
its own and stays fast on slice change:

- label maps are kept as ``uint8`` volumes and coloured through a ``(256, 4)`` RGBA table built once
  (:func:`label_lut`); a slice is a view of the volume (:meth:`~viewer.core.reformat.PlaneGeometry.take`) mapped
  through the table - no per-slice colour work beyond that, and in outline mode one cheap 2-D pass
  (:func:`outline`);
- heat maps are quantised once to ``uint8`` (:func:`quantise_unit`) and coloured by a table that holds the
  colour map, the threshold and the opacity (:func:`heat_lut`);
- detection boxes are half-open voxel ranges ``[z0, y0, x0, z1, y1, x1]`` on the displayed grid; the boxes a
  slice of any plane cuts are found by a vectorised test over all boxes (:func:`boxes_in_slice`), and come
  back as rectangles in the view's scene millimetres;
- :func:`findings` turns :class:`~inference.types.Detections` into rows for the findings list (score, size,
  LPS centre, side, slice).

Conventions as in :mod:`viewer.core.reformat`: arrays ``(z, y, x)``, voxel index ``(x, y, z)``, affine index -> LPS.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from viewer.core.reformat import PlaneGeometry

#: Default opacity of a filled label (outlines are drawn opaque).
FILL_OPACITY = 0.45
#: Share of the field of view around its centre (along L/R) called "midline" by :func:`side_of`.
MIDLINE_SHARE = 0.05


# ---------------------------------------------------------------------------------------------------------------
# Label maps


def label_lut(colours: Mapping[int, Iterable[int]], visible: Mapping[int, bool] | None = None,
              opacities: Mapping[int, float] | None = None, default_opacity: float = FILL_OPACITY) -> np.ndarray:
    """The ``(256, 4)`` uint8 RGBA table a ``uint8`` label map is drawn through.

    Parameters
    ----------
    colours
        ``{label value: (r, g, b)}`` 0-255. Values outside 1..255 are ignored; label 0 is always transparent,
        as is any value without a colour.
    visible
        ``{value: bool}``; a hidden label gets alpha 0 (missing values are visible).
    opacities
        ``{value: 0..1}`` per label (missing values get ``default_opacity``).
    """
    visible = visible or {}
    opacities = opacities or {}
    lut = np.zeros((256, 4), np.uint8)
    for value, rgb in colours.items():
        value = int(value)
        if not 1 <= value <= 255:
            continue
        lut[value, :3] = np.clip(np.asarray(tuple(rgb)[:3], dtype=float), 0, 255).astype(np.uint8)
        alpha = float(opacities.get(value, default_opacity)) if visible.get(value, True) else 0.0
        lut[value, 3] = int(round(255 * min(1.0, max(0.0, alpha))))
    return lut


def label_slice_rgba(label_slice: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``(rows, cols, 4)`` uint8 RGBA of a ``uint8`` label slice (what Qt does with the table, for tests/export)."""
    return np.take(lut, np.asarray(label_slice, dtype=np.uint8), axis=0)


def as_label_volume(labels: np.ndarray) -> np.ndarray:
    """A label map as ``uint8`` (no copy when it already is).

    Raises
    ------
    ValueError
        When a value is outside 0..255 (a table of 256 colours cannot show it).
    """
    labels = np.asarray(labels)
    if labels.dtype == np.uint8:
        return labels
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"label values must lie in 0..255 to be shown (found {labels.min()}..{labels.max()})")
    return labels.astype(np.uint8)


def outline(label_slice: np.ndarray) -> np.ndarray:
    """The boundary pixels of every region of a 2-D label slice, keeping their label; 0 elsewhere.

    A labelled pixel is on the boundary when one of its four neighbours has another value (pixels at the image
    edge count as bordering background). The outline is one pixel wide and lies inside its region, so it
    covers exactly the voxels the filled drawing marks at the edge.
    """
    s = np.asarray(label_slice)
    if s.ndim != 2:
        raise ValueError(f"expected a 2-D slice, got shape {s.shape}")
    out = np.zeros(s.shape, dtype=s.dtype)
    if not s.any():
        return out
    rows = np.flatnonzero(s.any(axis=1))
    cols = np.flatnonzero(s.any(axis=0))
    r0, r1 = max(rows[0] - 1, 0), min(rows[-1] + 2, s.shape[0])  # work only on the labelled box (+1 ring)
    c0, c1 = max(cols[0] - 1, 0), min(cols[-1] + 2, s.shape[1])
    p = np.pad(s[r0:r1, c0:c1], 1)
    c = p[1:-1, 1:-1]
    edge = (c != p[:-2, 1:-1]) | (c != p[2:, 1:-1]) | (c != p[1:-1, :-2]) | (c != p[1:-1, 2:])
    out[r0:r1, c0:c1] = np.where(edge, c, 0)
    return out


def labelled_slices(labels: np.ndarray, geometry: PlaneGeometry) -> np.ndarray:
    """Boolean ``(n_slices,)``: which slices of ``geometry``'s plane hold any label (computed once per result,
    so empty slices cost nothing on slice change)."""
    others = tuple(a for a in range(3) if a != geometry.array_axis)
    return np.asarray(np.asarray(labels).any(axis=others), dtype=bool)


def label_counts(labels: np.ndarray, chunk_voxels: int = 1 << 22) -> np.ndarray:
    """``(256,)`` voxel count of each value of a ``uint8`` label map (counted in chunks: no int64 copy of the
    whole volume)."""
    flat = as_label_volume(labels).reshape(-1)
    counts = np.zeros(256, np.int64)
    for start in range(0, flat.size, chunk_voxels):
        counts += np.bincount(flat[start:start + chunk_voxels], minlength=256)
    return counts


def label_volumes_ml(labels: np.ndarray, affine: np.ndarray) -> dict[int, float]:
    """``{label value: volume in mL}`` of every non-zero value present (voxel volume from the affine)."""
    voxel_mm3 = abs(float(np.linalg.det(np.asarray(affine, dtype=float)[:3, :3])))
    return {int(v): float(n) * voxel_mm3 / 1000.0 for v, n in enumerate(label_counts(labels)) if v and n}


# ---------------------------------------------------------------------------------------------------------------
# Heat maps


def quantise_unit(values: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """A float heat map as ``uint8`` 0..255 and the value range that maps to 0 and 255.

    Maps normalised to [0, 1] (as :class:`~inference.types.SaliencyMap` promises) keep that range; anything else
    is stretched from its minimum to its maximum. NaNs become 0.
    """
    values = np.asarray(values, dtype=np.float32)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, np.uint8), (0.0, 1.0)
    lo, hi = float(values[finite].min()), float(values[finite].max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        span = (lo, hi if hi > lo else lo + 1.0)
    else:
        span = (0.0, 1.0)
    scaled = (np.nan_to_num(values, nan=span[0]) - span[0]) * (255.0 / (span[1] - span[0]))
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8), span


def heat_lut(colours: np.ndarray, threshold: float = 0.0, opacity: float = 0.6) -> np.ndarray:
    """The ``(256, 4)`` RGBA table of a quantised heat map: the colour map, alpha ``opacity`` from ``threshold``
    (0..1 of the map's range) up, transparent below it (and at 0, so an empty map shows nothing)."""
    colours = np.asarray(colours)
    if colours.shape[0] != 256 or colours.shape[1] < 3:
        raise ValueError("colours must be a (256, 3) or (256, 4) table")
    lut = np.zeros((256, 4), np.uint8)
    lut[:, :3] = np.clip(colours[:, :3], 0, 255).astype(np.uint8)
    start = max(1, int(np.ceil(float(threshold) * 255 - 1e-9)))
    lut[start:, 3] = int(round(255 * min(1.0, max(0.0, float(opacity)))))
    return lut


# ---------------------------------------------------------------------------------------------------------------
# Boxes


def _axis_range(boxes: np.ndarray, index_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Half-open voxel range along index axis (0=x, 1=y, 2=z) of ``[z0, y0, x0, z1, y1, x1]`` boxes."""
    column = 2 - index_axis
    return boxes[:, column], boxes[:, column + 3]


def boxes_in_slice(boxes_voxel: np.ndarray, geometry: PlaneGeometry, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The boxes slice ``k`` of a plane cuts, and their rectangles in that view's scene mm.

    Parameters
    ----------
    boxes_voxel
        ``(N, 6)`` half-open voxel boxes ``[z0, y0, x0, z1, y1, x1]`` on the volume's grid.
    geometry, k
        The plane and its slice number.

    Returns
    -------
    indices
        ``(M,)`` rows of ``boxes_voxel`` whose range along the plane's through axis holds ``k``.
    rects
        ``(M, 4)`` float ``[x0, y0, x1, y1]`` in scene mm: the outer edges of the box's voxels as drawn
        (flips applied), so a one-voxel box covers exactly that pixel.
    """
    boxes = np.asarray(boxes_voxel, dtype=np.int64).reshape(-1, 6)
    start, stop = _axis_range(boxes, geometry.through_axis)
    indices = np.flatnonzero((start <= k) & (k < stop))
    if not len(indices):
        return indices, np.zeros((0, 4))
    cut = boxes[indices]
    n_rows, n_cols = geometry.image_shape
    dr, dc = geometry.pixel_spacing
    c0, c1 = _axis_range(cut, geometry.col_axis)
    r0, r1 = _axis_range(cut, geometry.row_axis)
    if geometry.col_flip:
        c0, c1 = n_cols - c1, n_cols - c0
    if geometry.row_flip:
        r0, r1 = n_rows - r1, n_rows - r0
    rects = np.stack([c0 * dc, r0 * dr, c1 * dc, r1 * dr], axis=1).astype(float)
    return indices, rects


def voxel_box_centre(box_voxel) -> np.ndarray:
    """Voxel index ``(x, y, z)`` of the centre of a half-open box ``[z0, y0, x0, z1, y1, x1]``."""
    z0, y0, x0, z1, y1, x1 = (float(v) for v in box_voxel)
    return np.array([(x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2, (z0 + z1 - 1) / 2])


def voxel_box_size_mm(box_voxel, affine) -> np.ndarray:
    """Edge lengths in mm ``(x, y, z)`` along the grid's column, row and slice axes of a half-open voxel box."""
    z0, y0, x0, z1, y1, x1 = (int(v) for v in box_voxel)
    spacing = np.linalg.norm(np.asarray(affine, dtype=float)[:3, :3], axis=0)
    return np.array([x1 - x0, y1 - y0, z1 - z0], dtype=float) * spacing


# ---------------------------------------------------------------------------------------------------------------
# Findings


def side_of(lps, affine, shape) -> str:
    """``"right"``, ``"left"`` or ``"midline"``: where an LPS point lies along L/R against the centre of the
    volume's field of view (a rough side, not anatomy: the patient need not be centred)."""
    affine = np.asarray(affine, dtype=float)
    z, y, x = shape[:3]
    corners = np.array([[i, j, k] for i in (0, x - 1) for j in (0, y - 1) for k in (0, z - 1)], dtype=float)
    lps_x = corners @ affine[0, :3] + affine[0, 3]
    centre, width = (lps_x.min() + lps_x.max()) / 2, lps_x.max() - lps_x.min()
    offset = float(np.asarray(lps, dtype=float)[0]) - centre
    if abs(offset) <= MIDLINE_SHARE * max(width, 1e-6):
        return "midline"
    return "left" if offset > 0 else "right"  # +x is the patient's left in LPS


@dataclass(frozen=True)
class Finding:
    """One detection as the findings list shows it.

    ``index`` is its row in the :class:`~inference.types.Detections` (which stays whole); ``centre_index`` the
    voxel index ``(x, y, z)`` of its centre on the displayed grid; ``slice_number`` the image number the views
    show for its slice (``Im k/N``: display order, see :mod:`viewer.core.display`; 1-based array order when no
    display mapping is given); ``size_mm`` the box's extent along L, P, S; ``measurement`` the nodule's
    measurements when the detector made them (:mod:`inference.nodule_measurements`), else None.
    """

    index: int
    score: float
    label: str
    centre_lps: tuple[float, float, float]
    size_mm: tuple[float, float, float]
    centre_index: tuple[float, float, float]
    slice_number: int
    side: str
    measurement: dict | None = field(default=None, compare=False)

    @property
    def measurement_text(self) -> str:
        """``"12.3 mm solid, 950 mm³, R upper, Lung-RADS 4A"`` ("" when not measured)."""
        from inference.nodule_measurements import summary_text

        return summary_text(self.measurement)

    @property
    def description(self) -> str:
        """``"right, slice 87"``."""
        return f"{self.side}, slice {self.slice_number}"

    @property
    def size_text(self) -> str:
        """``"12.0 x 9.5 x 7.5"`` (mm, L x P x S)."""
        return " x ".join(f"{v:.1f}" for v in self.size_mm)

    @property
    def lps_text(self) -> str:
        """``"LPS -85.1, 20.3, -150.2"``."""
        return "LPS " + ", ".join(f"{v:.1f}" for v in self.centre_lps)


def _floats3(values) -> tuple[float, float, float]:
    x, y, z = values
    return float(x), float(y), float(z)


def findings(detections, affine=None, shape=None, number_of=None) -> list[Finding]:
    """Rows for every detection (all of them: thresholds apply at display time, see :func:`visible_findings`).

    ``affine`` and ``shape`` default to the detections' own grid (the volume they were computed on);
    ``number_of(k)`` gives the image number shown for array slice ``k`` (default ``k + 1``).
    """
    affine = np.asarray(detections.affine if affine is None else affine, dtype=float)
    shape = tuple(detections.shape if shape is None else shape)
    inverse = np.linalg.inv(affine)
    out = []
    for i in range(len(detections)):
        lo, hi = detections.boxes_lps[i, :3], detections.boxes_lps[i, 3:]
        centre = (lo + hi) / 2
        index = centre @ inverse[:3, :3].T + inverse[:3, 3]
        k = int(np.clip(np.floor(index[2] + 0.5), 0, shape[0] - 1))
        value = int(detections.labels[i])
        label = detections.table[value].name if value in detections.table else f"label {value}"
        measured = getattr(detections, "measurements", None)
        out.append(Finding(i, float(detections.scores[i]), label, _floats3(centre), _floats3(hi - lo),
                           _floats3(index),
                           int(number_of(k)) if number_of is not None else k + 1,
                           side_of(centre, affine, shape), measured[i] if measured is not None else None))
    return out


def visible_findings(rows: list[Finding], min_score: float) -> list[Finding]:
    """The findings scoring at least ``min_score`` (a filter for display; ``rows`` is not changed)."""
    return [f for f in rows if f.score >= min_score]
