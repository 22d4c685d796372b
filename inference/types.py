"""What models return, as plain numpy arrays on the input volume's own grid (no torch, no Qt).

Conventions shared with the viewer's ``Volume``:

- arrays are ``(z, y, x)`` = (slice, row, column);
- ``affine`` is 4x4 and maps ``(x=column, y=row, z=slice, 1)`` to DICOM patient coordinates (LPS, mm).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Colours given to labels that do not bring their own (RGB 0-255), cycled by label value.
DEFAULT_COLORS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
)


def int3(values) -> tuple[int, int, int]:
    """Three ints from a sequence of three numbers (a shape, a voxel index, a colour); ValueError for any other
    length."""
    a, b, c = values
    return int(a), int(b), int(c)


def float3(values) -> tuple[float, float, float]:
    """Three floats from a sequence of three numbers (a spacing, a point); ValueError for any other length."""
    a, b, c = values
    return float(a), float(b), float(c)


def default_color(value: int) -> tuple[int, int, int]:
    """The palette colour of label ``value`` (1-based labels start at the first colour)."""
    return DEFAULT_COLORS[(max(int(value), 1) - 1) % len(DEFAULT_COLORS)]


@dataclass(frozen=True)
class Label:
    """One label a model produces: its value in the label map, a name and a display colour (RGB 0-255)."""

    value: int
    name: str
    color: tuple[int, int, int] = (255, 0, 0)


def label_table(names: dict[int, str], colors: dict[int, tuple[int, int, int]] | None = None) -> dict[int, Label]:
    """Build ``{value: Label}`` from names and optional colours (missing colours come from the palette)."""
    colors = colors or {}
    return {int(v): Label(int(v), str(n), int3(colors.get(int(v), default_color(int(v))))) for v, n in names.items()}


def _check_grid(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got {affine.shape}")
    if len(shape) != 3:
        raise ValueError(f"expected a (z, y, x) grid, got shape {shape}")
    return affine


@dataclass(eq=False)
class SegResult:
    """A label map on the input grid.

    Parameters
    ----------
    labels
        ``(z, y, x)`` integer label map (0 = background), same shape as the input volume.
    affine
        The input volume's affine (index -> LPS mm).
    table
        ``{value: Label}`` for every non-zero value the model can produce.
    model_id
        The registry id of the model that produced it.
    """

    labels: np.ndarray
    affine: np.ndarray
    table: dict[int, Label] = field(default_factory=dict)
    model_id: str = ""

    def __post_init__(self) -> None:
        self.affine = _check_grid(self.labels.shape, self.affine)

    @property
    def present(self) -> list[int]:
        """Label values that occur at least once (background left out)."""
        return [int(v) for v in np.unique(self.labels) if v != 0]

    def mask(self, value: int) -> np.ndarray:
        """Boolean ``(z, y, x)`` mask of one label."""
        return self.labels == value


@dataclass(eq=False)
class Detections:
    """Boxes found by a detector, in patient space and on the input grid.

    Parameters
    ----------
    boxes_lps
        ``(N, 6)`` float: ``[x0, y0, z0, x1, y1, z1]`` axis-aligned in LPS mm (min corner, max corner).
    boxes_voxel
        ``(N, 6)`` int: ``[z0, y0, x0, z1, y1, x1]`` half-open voxel ranges on the input grid covering every
        voxel whose centre lies in the box (at least the voxel at the box centre), clipped to the grid.
    scores
        ``(N,)`` float in [0, 1], sorted descending.
    labels
        ``(N,)`` int label values (1-based; keys of ``table``).
    affine, shape
        The input grid the voxel boxes refer to.
    table
        ``{value: Label}``.
    notes
        What the user should know about these detections (e.g. oversized ones dropped by
        :func:`inference.suitability.drop_oversized`).
    measurements
        Per detection (same order), what a reader is told about the nodule in the box - a dict from
        :func:`inference.nodule_measurements.measure_nodule` (volume, axes, type, location, Lung-RADS) or
        ``None`` where nothing could be segmented; ``None`` as a whole when not measured.
    """

    boxes_lps: np.ndarray
    boxes_voxel: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    shape: tuple[int, int, int]
    table: dict[int, Label] = field(default_factory=dict)
    model_id: str = ""
    notes: list[str] = field(default_factory=list)
    measurements: list[dict | None] | None = None

    def __post_init__(self) -> None:
        self.affine = _check_grid(tuple(self.shape), self.affine)
        self.boxes_lps = np.asarray(self.boxes_lps, dtype=np.float64).reshape(-1, 6)
        self.boxes_voxel = np.asarray(self.boxes_voxel, dtype=np.int64).reshape(-1, 6)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        n = len(self.scores)
        if not (len(self.boxes_lps) == len(self.boxes_voxel) == len(self.labels) == n):
            raise ValueError("boxes, scores and labels must have the same length")
        if self.measurements is not None and len(self.measurements) != n:
            raise ValueError("measurements must have one entry per detection")

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def centers_lps(self) -> np.ndarray:
        """``(N, 3)`` box centres in LPS mm."""
        return (self.boxes_lps[:, :3] + self.boxes_lps[:, 3:]) / 2

    @property
    def sizes_mm(self) -> np.ndarray:
        """``(N, 3)`` box extents along L, P, S in mm."""
        return self.boxes_lps[:, 3:] - self.boxes_lps[:, :3]

    def above(self, min_score: float) -> Detections:
        """The detections scoring at least ``min_score`` (a filtered copy; the original is kept whole)."""
        return self.subset(self.scores >= min_score)

    def subset(self, keep) -> Detections:
        """The detections where the boolean ``keep`` is True (a filtered copy; measurements follow their box)."""
        keep = np.asarray(keep, bool).reshape(-1)
        measurements = None if self.measurements is None else [m for m, k in zip(self.measurements, keep) if k]
        return Detections(self.boxes_lps[keep], self.boxes_voxel[keep], self.scores[keep], self.labels[keep],
                          self.affine, int3(self.shape), dict(self.table), self.model_id, list(self.notes),
                          measurements)


@dataclass(eq=False)
class SaliencyMap:
    """A float heat map on the input grid (e.g. Grad-CAM), normalised to [0, 1] unless stated otherwise.

    ``target`` says what it explains (a label name or a finding index), ``None`` for the whole output; ``method``
    how it was made (``Grad-CAM``, or ``occlusion`` for a finding scored by a nodule classifier).
    """

    values: np.ndarray
    affine: np.ndarray
    target: str | None = None
    model_id: str = ""
    method: str = "Grad-CAM"

    def __post_init__(self) -> None:
        self.affine = _check_grid(self.values.shape, self.affine)
