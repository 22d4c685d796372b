"""Measurements in patient units: length (mm), ellipse / rectangle ROI statistics (mm^2), probe.

Points are kept as continuous voxel indices ``(x, y, z)`` of the volume, so a measurement stays put however
the view is zoomed, and lengths come from the affine (exact also for anisotropic and sheared grids).
ROIs are drawn on one displayed slice of a plane; their statistics use the pixels whose centres fall inside.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from viewer.core.calibration import Calibration, measure_length, mm2_per_pixel
from viewer.core.reformat import PlaneGeometry

KINDS = ("length", "ellipse", "rectangle", "probe")


def length_mm(affine, p0, p1) -> float:
    """Distance in mm between two voxel-index points ``(x, y, z)`` under ``affine`` (index -> LPS)."""
    delta = np.asarray(p1, float) - np.asarray(p0, float)
    return float(np.linalg.norm(np.asarray(affine, float)[:3, :3] @ delta))


def ellipse_mask(shape: tuple[int, int], corner0, corner1) -> np.ndarray:
    """Boolean ``(rows, cols)`` mask of the pixels whose centres lie inside the ellipse inscribed in the box.

    ``corner0`` / ``corner1`` are opposite corners ``(row, col)`` of the bounding box in continuous pixel
    coordinates (pixel centres at integers, so pixel ``r`` spans ``r - 0.5 .. r + 0.5``).
    """
    (r0, c0), (r1, c1) = np.asarray(corner0, float), np.asarray(corner1, float)
    cr, cc = (r0 + r1) / 2, (c0 + c1) / 2
    ar, ac = abs(r1 - r0) / 2, abs(c1 - c0) / 2
    mask = np.zeros(shape, dtype=bool)
    if ar <= 0 or ac <= 0:
        return mask
    rows = np.arange(max(0, int(np.floor(cr - ar))), min(shape[0], int(np.ceil(cr + ar)) + 1))
    cols = np.arange(max(0, int(np.floor(cc - ac))), min(shape[1], int(np.ceil(cc + ac)) + 1))
    if rows.size == 0 or cols.size == 0:
        return mask
    inside = ((rows[:, None] - cr) / ar) ** 2 + ((cols[None, :] - cc) / ac) ** 2 <= 1.0
    mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = inside
    return mask


def rectangle_mask(shape: tuple[int, int], corner0, corner1) -> np.ndarray:
    """Boolean mask of the pixels whose centres lie inside the box with opposite corners ``(row, col)``."""
    (r0, c0), (r1, c1) = np.asarray(corner0, float), np.asarray(corner1, float)
    rlo, rhi = sorted((r0, r1))
    clo, chi = sorted((c0, c1))
    mask = np.zeros(shape, dtype=bool)
    rs, re = max(0, int(np.ceil(rlo))), min(shape[0], int(np.floor(rhi)) + 1)
    cs, ce = max(0, int(np.ceil(clo))), min(shape[1], int(np.floor(chi)) + 1)
    if rs < re and cs < ce:
        mask[rs:re, cs:ce] = True
    return mask


@dataclass(frozen=True)
class RoiStats:
    """Statistics of the pixel values inside an ROI; ``area_mm2`` is the geometric area of the shape."""

    mean: float
    sd: float
    min: float
    max: float
    n_pixels: int
    area_mm2: float


def roi_stats(image: np.ndarray, mask: np.ndarray, area_mm2: float) -> RoiStats:
    """Mean, population SD, min and max of ``image[mask]`` (NaN when the ROI holds no pixel centre)."""
    values = np.asarray(image)[mask].astype(np.float64)
    if values.size == 0:
        nan = float("nan")
        return RoiStats(nan, nan, nan, nan, 0, float(area_mm2))
    return RoiStats(float(values.mean()), float(values.std()), float(values.min()), float(values.max()),
                    int(values.size), float(area_mm2))


def _grey(image: np.ndarray) -> np.ndarray:
    return image.mean(axis=-1) if image.ndim == 3 else image


def _box_pixels(geometry: PlaneGeometry, points) -> tuple[tuple[float, float], tuple[float, float]]:
    (_, r0, c0), (_, r1, c1) = (geometry.display_from_index(p) for p in points)
    return (float(r0), float(c0)), (float(r1), float(c1))


def ellipse_stats(array: np.ndarray, geometry: PlaneGeometry, k: int, p0, p1) -> RoiStats:
    """Statistics of the ellipse inscribed in the box with opposite corners ``p0``/``p1`` (voxel indices) on slice
    ``k``."""
    image = _grey(geometry.take(array, k))
    c0, c1 = _box_pixels(geometry, (p0, p1))
    mask = ellipse_mask(image.shape[:2], c0, c1)
    height, width = abs(c1[0] - c0[0]), abs(c1[1] - c0[1])
    area = np.pi * (height / 2) * (width / 2) * geometry.pixel_area_mm2
    return roi_stats(image, mask, area)


def rectangle_stats(array: np.ndarray, geometry: PlaneGeometry, k: int, p0, p1) -> RoiStats:
    """Statistics of the box with opposite corners ``p0``/``p1`` (voxel indices) on slice ``k``."""
    image = _grey(geometry.take(array, k))
    c0, c1 = _box_pixels(geometry, (p0, p1))
    mask = rectangle_mask(image.shape[:2], c0, c1)
    area = abs(c1[0] - c0[0]) * abs(c1[1] - c0[1]) * geometry.pixel_area_mm2
    return roi_stats(image, mask, area)


def probe_value(array: np.ndarray, xyz) -> float | tuple[int, ...] | None:
    """The value of the voxel nearest to index ``(x, y, z)`` (a tuple for colour), or None outside the volume."""
    idx = np.floor(np.asarray(xyz, float) + 0.5).astype(int)
    z, y, x = idx[2], idx[1], idx[0]
    if not (0 <= z < array.shape[0] and 0 <= y < array.shape[1] and 0 <= x < array.shape[2]):
        return None
    value = array[z, y, x]
    if np.ndim(value):
        return tuple(int(v) for v in value)
    return float(value)


_ids = itertools.count(1)


@dataclass
class Measurement:
    """One measurement drawn on slice ``slice_index`` of ``plane``.

    ``points`` are voxel indices ``(x, y, z)``: two end points for ``length``, two opposite box corners for
    ``ellipse`` and ``rectangle``, one point for ``probe``. ``result`` holds the numbers (``length_mm``, or the
    :class:`RoiStats` fields, or ``value`` and ``lps``) after :func:`evaluate`.
    """

    kind: str
    plane: str
    slice_index: int
    points: list[tuple[float, float, float]]
    result: dict = field(default_factory=dict)
    id: int = field(default_factory=lambda: next(_ids))
    #: DICOM tracking UID (set when first saved in an SR, kept so that saving again updates, not duplicates).
    uid: str = ""

    def summary(self, unit: str = "", multiline: bool = False) -> str:
        """The result as text: one line for the measurement list, or (``multiline``) the on-image label."""
        r = self.result
        if not r:
            return ""
        suffix = f" {unit}" if unit else ""
        if self.kind == "length":
            if r.get("refused"):
                return f"not measurable: {r['refused']}"
            note = " (at detector)" if r.get("caveat") == "imager_pixel_spacing" else ""
            return f"{r.get('length', r.get('length_mm')):.1f} {r.get('unit', 'mm')}{note}"
        if self.kind == "probe":
            value = r.get("value")
            if value is None:
                return "outside"
            if isinstance(value, tuple):
                return "RGB " + ",".join(str(v) for v in value)
            return f"{value:.0f}{suffix}" if float(value).is_integer() else f"{value:.2f}{suffix}"
        if r.get("n_pixels", 0) == 0:
            return f"area {r['area_mm2']:.1f} mm² (no pixels)"
        area = (f"Area {r['area_mm2']:.1f} mm²" if r.get("area_unit", "mm²") == "mm²"
                else f"Area {r['area_mm2']:.0f} px²")
        parts = (f"Mean {r['mean']:.1f}{suffix}  SD {r['sd']:.1f}", f"Min {r['min']:.0f}  Max {r['max']:.0f}", area)
        return "\n".join(parts) if multiline else "  ".join(parts)


def evaluate(measurement: Measurement, volume, geometry: PlaneGeometry) -> Measurement:
    """Fill ``measurement.result`` from the volume (call again after the points move). Returns it."""
    pts = measurement.points
    calibration: Calibration | None = getattr(volume, "calibration", None)
    if measurement.kind == "length":
        length = measure_length(calibration, volume.affine, pts[0], pts[1])
        measurement.result = {"length": length.value, "unit": length.unit, "refused": length.refused,
                              "caveat": calibration.source if calibration is not None else "pixel_spacing"}
        if length.unit == "mm" and length.value is not None:
            measurement.result["length_mm"] = length.value
    elif measurement.kind in ("ellipse", "rectangle"):
        fn = ellipse_stats if measurement.kind == "ellipse" else rectangle_stats
        stats = fn(volume.array, geometry, measurement.slice_index, pts[0], pts[1])
        measurement.result = {
            "mean": stats.mean, "sd": stats.sd, "min": stats.min, "max": stats.max,
            "n_pixels": stats.n_pixels, "area_mm2": stats.area_mm2,
        }
        if calibration is not None and calibration.source != "pixel_spacing":
            # The affine is a nominal 1 mm grid here: its "mm²" are pixels² (see viewer.core.calibration).
            scale = mm2_per_pixel(calibration, pts[0], pts[1])
            if scale is None:
                measurement.result["area_unit"] = "px²"
            else:
                measurement.result["area_mm2"] = stats.area_mm2 * scale
    elif measurement.kind == "probe":
        measurement.result = {
            "value": probe_value(volume.array, pts[0]),
            "lps": tuple(float(v) for v in volume.index_to_lps(pts[0])),
        }
    else:
        raise ValueError(f"unknown measurement kind {measurement.kind!r}")
    return measurement
