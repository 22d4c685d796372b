"""What one image pixel measures, and how fast a cine plays: the calibration a series really carries.

A distance is only shown in millimetres when the file says how large a pixel is (PS3.3 C.7.6.3.1.3 and
C.8.5.5, "pixel spacing calibration"). In order of trust:

1. ``PixelSpacing`` (with or without patient geometry): mm in the patient.
2. ``SequenceOfUltrasoundRegions`` with ``PhysicalUnitsX/YDirection`` = cm: each region has its own scale;
   a distance whose ends lie in different regions (or outside every calibrated region) is refused.
3. ``ImagerPixelSpacing`` (projection radiography): mm at the detector, not in the patient - shown with a caveat
   because magnification makes objects look larger than they are.
4. Nothing: distances are measured in pixels, and said to be.

Orientation letters, a plane name and a millimetre scale bar need the patient geometry
(ImagePositionPatient/ImageOrientationPatient); :attr:`Calibration.has_orientation` says whether it is there.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: PhysicalUnitsX/YDirection code for centimetres (PS3.3 C.8.5.5.1.15); the only spatial unit measured here.
US_UNIT_CM = 3

IMAGER_CAVEAT = ("ImagerPixelSpacing only: sizes are at the detector, not in the patient "
                 "(magnification not corrected)")
NO_SPACING_CAVEAT = "No usable pixel spacing in the file: distances are in pixels"


@dataclass(frozen=True)
class UltrasoundRegion:
    """One calibrated region of an ultrasound image (an item of SequenceOfUltrasoundRegions).

    ``x0, y0, x1, y1`` are the region's pixel bounds (column, row; inclusive, as in the file);
    ``delta_x_mm`` / ``delta_y_mm`` the size of one pixel in mm (PhysicalDeltaX/Y converted from cm).
    """

    x0: int
    y0: int
    x1: int
    y1: int
    delta_x_mm: float
    delta_y_mm: float

    def contains(self, col: float, row: float) -> bool:
        """True when the point ``(col, row)`` (pixel centres at integers) lies inside the region."""
        return self.x0 - 0.5 <= col <= self.x1 + 0.5 and self.y0 - 0.5 <= row <= self.y1 + 0.5


def ultrasound_regions_from(sequence) -> list[UltrasoundRegion]:
    """The spatially calibrated regions of a pydicom SequenceOfUltrasoundRegions (others are skipped).

    A region counts when both PhysicalUnitsX/YDirection are centimetres and both deltas are positive.
    """
    regions: list[UltrasoundRegion] = []
    for item in sequence or ():
        try:
            if int(item.get("PhysicalUnitsXDirection", 0)) != US_UNIT_CM:
                continue
            if int(item.get("PhysicalUnitsYDirection", 0)) != US_UNIT_CM:
                continue
            dx, dy = abs(float(item.PhysicalDeltaX)), abs(float(item.PhysicalDeltaY))
            x0, y0, x1, y1 = (int(item.get(k)) for k in ("RegionLocationMinX0", "RegionLocationMinY0",
                                                          "RegionLocationMaxX1", "RegionLocationMaxY1"))
        except (AttributeError, TypeError, ValueError):
            continue  # an incomplete item calibrates nothing
        if dx > 0 and dy > 0 and np.isfinite(dx) and np.isfinite(dy):
            regions.append(UltrasoundRegion(x0, y0, x1, y1, delta_x_mm=dx * 10.0, delta_y_mm=dy * 10.0))
    return regions


@dataclass(frozen=True)
class Calibration:
    """How pixels map to physical size for one series.

    Parameters
    ----------
    source
        ``"pixel_spacing"``, ``"ultrasound_regions"``, ``"imager_pixel_spacing"`` or ``"none"``.
    has_orientation
        True when the frames carry patient position and orientation (plane names and letters make sense).
    regions
        The calibrated ultrasound regions (``source == "ultrasound_regions"``).
    imager_spacing
        ``(row, column)`` ImagerPixelSpacing in mm (``source == "imager_pixel_spacing"``).
    """

    source: str = "pixel_spacing"
    has_orientation: bool = True
    regions: tuple[UltrasoundRegion, ...] = field(default_factory=tuple)
    imager_spacing: tuple[float, float] | None = None

    @property
    def unit(self) -> str:
        """``"mm"`` when distances are physical, ``"px"`` otherwise."""
        return "px" if self.source == "none" else "mm"

    @property
    def caveat(self) -> str:
        """A warning to show beside measurements ("" when there is nothing to say)."""
        if self.source == "imager_pixel_spacing":
            return IMAGER_CAVEAT
        if self.source == "none":
            return NO_SPACING_CAVEAT
        return ""

    @property
    def scale_bar_mm(self) -> bool:
        """True when a millimetre scale bar on the (affine) scene is truthful: only with PixelSpacing."""
        return self.source == "pixel_spacing"


def _usable(spacing) -> bool:
    """A spacing of finite, positive millimetres (a header's 0, negative or NaN one calibrates nothing)."""
    return spacing is not None and all(np.isfinite(float(v)) and float(v) > 0 for v in spacing)


def choose_calibration(pixel_spacing, imager_spacing, regions, has_orientation: bool) -> Calibration:
    """The calibration of a series from what its (first) frame carries, in the order of the module docstring."""
    if _usable(pixel_spacing):
        return Calibration("pixel_spacing", has_orientation)
    if regions:
        return Calibration("ultrasound_regions", has_orientation, tuple(regions))
    if _usable(imager_spacing):
        return Calibration("imager_pixel_spacing", has_orientation,
                           imager_spacing=(float(imager_spacing[0]), float(imager_spacing[1])))
    return Calibration("none", has_orientation)


@dataclass(frozen=True)
class Length:
    """A measured distance: ``value`` in ``unit`` (``mm`` or ``px``), or ``refused`` saying why there is none."""

    value: float | None
    unit: str
    refused: str = ""


def measure_length(calibration: Calibration | None, affine, p0, p1) -> Length:
    """The distance between two voxel-index points ``(x, y, z)`` under a series' calibration.

    With PixelSpacing the affine is exact (mm). Ultrasound regions scale columns and rows by the region's
    deltas and refuse a line that leaves its region. ImagerPixelSpacing scales the pixel grid the same way.
    Without calibration the distance is in pixels of the image grid.
    """
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    if calibration is None or calibration.source == "pixel_spacing":
        delta = p1 - p0
        return Length(float(np.linalg.norm(np.asarray(affine, float)[:3, :3] @ delta)), "mm")
    dx, dy = abs(p1[0] - p0[0]), abs(p1[1] - p0[1])
    if calibration.source == "ultrasound_regions":
        for region in calibration.regions:
            if region.contains(p0[0], p0[1]) and region.contains(p1[0], p1[1]):
                return Length(float(np.hypot(dx * region.delta_x_mm, dy * region.delta_y_mm)), "mm")
        return Length(None, "mm", "crosses ultrasound regions (or leaves the calibrated area): not measurable")
    if calibration.source == "imager_pixel_spacing" and calibration.imager_spacing is not None:
        row_mm, col_mm = calibration.imager_spacing
        return Length(float(np.hypot(dx * col_mm, dy * row_mm)), "mm")
    return Length(float(np.hypot(dx, dy)), "px")


def mm2_per_pixel(calibration: Calibration | None, p0, p1) -> float | None:
    """Area in mm² of one image pixel for an ROI with corners ``p0``/``p1`` (voxel indices ``(x, y, z)``).

    None when the ROI cannot be given in mm² (no calibration, or corners in different ultrasound regions);
    the caller then reports pixels². Not used with PixelSpacing, where the affine is exact.
    """
    if calibration is None or calibration.source in ("pixel_spacing", "none"):
        return None
    if calibration.source == "imager_pixel_spacing" and calibration.imager_spacing is not None:
        return float(calibration.imager_spacing[0] * calibration.imager_spacing[1])
    for region in calibration.regions:
        if region.contains(p0[0], p0[1]) and region.contains(p1[0], p1[1]):
            return float(region.delta_x_mm * region.delta_y_mm)
    return None


def frame_rate_from(frame_time_ms=None, recommended_fps=None, cine_rate=None) -> float | None:
    """Frames per second the file asks for: FrameTime (ms per frame), else RecommendedDisplayFrameRate, else CineRate.

    Returns None when none is present and positive.
    """
    try:
        if frame_time_ms is not None and float(frame_time_ms) > 0:
            return 1000.0 / float(frame_time_ms)
    except (TypeError, ValueError):
        pass
    for value in (recommended_fps, cine_rate):
        try:
            if value is not None and float(value) > 0:
                return float(value)
        except (TypeError, ValueError):
            continue
    return None
