"""Calibrated millimetres only: PixelSpacing, else ultrasound regions, else ImagerPixelSpacing, else pixels.

The files are built with pydicom from pydicom's own test files (US1_UNCR.dcm: a real RGB ultrasound without
calibration; CT_small.dcm: a real CT slice) and go through the real scan -> load path.
"""
from __future__ import annotations

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from viewer.core.calibration import IMAGER_CAVEAT, NO_SPACING_CAVEAT, frame_rate_from, measure_length
from viewer.core.dicom.load import load_series
from viewer.core.dicom.scan import scan
from viewer.core.measure import Measurement, evaluate
from viewer.core.reformat import Plane, reformat

DELTA_CM = 0.051  # PhysicalDeltaX/Y of the left region, as in the issue


def region(x0, y0, x1, y1, delta_cm, units=3):
    item = Dataset()
    item.RegionSpatialFormat = 1
    item.RegionDataType = 1
    item.RegionFlags = 0
    item.RegionLocationMinX0, item.RegionLocationMinY0 = x0, y0
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = x1, y1
    item.PhysicalUnitsXDirection = units
    item.PhysicalUnitsYDirection = units
    item.PhysicalDeltaX = delta_cm
    item.PhysicalDeltaY = delta_cm
    return item


def load_file(path):
    series = [s for s in scan(path.parent).all_series() if s.kind == "image"]
    assert len(series) == 1
    return load_series(series[0])


@pytest.fixture
def us_cine(tmp_path):
    """A 3-frame colour ultrasound cine with two calibrated regions (left 0.051 cm/px, right 0.1 cm/px)."""
    ds = pydicom.dcmread(get_testdata_file("US1_UNCR.dcm"))
    frame = ds.PixelData
    ds.NumberOfFrames = 3
    ds.PixelData = frame * 3
    ds.FrameTime = "33.3"  # ms per frame -> 30.03 fps
    ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    ds.SequenceOfUltrasoundRegions = Sequence([region(0, 0, 319, 479, DELTA_CM), region(320, 0, 639, 479, 0.1),
                                               region(0, 0, 639, 479, 1.0, units=0)])  # a non-spatial region
    path = tmp_path / "us" / "cine.dcm"
    path.parent.mkdir()
    ds.save_as(path)
    return path


def projection(tmp_path, name, imager_spacing=None):
    """A real CT slice stripped of its geometry, re-labelled as a projection image (CR)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword in ("PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient", "SliceThickness"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.Modality = "CR"
    if imager_spacing is not None:
        ds.ImagerPixelSpacing = imager_spacing
    path = tmp_path / name / "image.dcm"
    path.parent.mkdir()
    ds.save_as(path)
    return path


def test_ultrasound_measures_in_the_region_calibration(us_cine):
    volume = load_file(us_cine)
    calibration = volume.calibration
    assert calibration.source == "ultrasound_regions" and not calibration.has_orientation
    assert len(calibration.regions) == 2  # the non-spatial region calibrates nothing
    assert volume.frame_rate == pytest.approx(1000 / 33.3)
    # 50 mm in the left region = 50 / 0.51 px; drawn on the nominal 1 "mm" grid it used to read 98 mm
    px = 50.0 / (DELTA_CM * 10)
    geometry = reformat(volume, Plane.AXIAL)
    m = evaluate(Measurement("length", "axial", 1, [(100.0, 200.0, 1.0), (100.0 + px, 200.0, 1.0)]), volume, geometry)
    assert m.result["length"] == pytest.approx(50.0, abs=0.01) and m.result["unit"] == "mm"
    assert m.summary() == "50.0 mm"
    diagonal = measure_length(calibration, volume.affine, (10, 10, 0), (10 + 30, 10 + 40, 0))
    assert diagonal.value == pytest.approx(50 * DELTA_CM * 10)
    right = measure_length(calibration, volume.affine, (400, 100, 0), (450, 100, 0))
    assert right.value == pytest.approx(50.0)  # 50 px x 1 mm
    crossing = evaluate(Measurement("length", "axial", 1, [(300.0, 200.0, 1.0), (340.0, 200.0, 1.0)]), volume,
                        geometry)
    assert crossing.result["length"] is None and "length_mm" not in crossing.result
    assert crossing.summary().startswith("not measurable")
    box = evaluate(Measurement("rectangle", "axial", 1, [(10.0, 10.0, 1.0), (110.0, 60.0, 1.0)]), volume, geometry)
    assert box.result["area_mm2"] == pytest.approx(100 * 50 * (DELTA_CM * 10) ** 2)  # mm² of the region
    across = evaluate(Measurement("rectangle", "axial", 1, [(300.0, 10.0, 1.0), (340.0, 60.0, 1.0)]), volume,
                      geometry)
    assert "px²" in across.summary()


def test_ultrasound_has_no_plane_letters_or_mm_scale_bar(us_cine):
    calibration = load_file(us_cine).calibration
    assert not calibration.has_orientation and not calibration.scale_bar_mm


def test_imager_pixel_spacing_only_measures_at_the_detector_with_a_caveat(tmp_path):
    volume = load_file(projection(tmp_path, "cr", imager_spacing=[0.2, 0.2]))
    calibration = volume.calibration
    assert calibration.source == "imager_pixel_spacing" and calibration.caveat == IMAGER_CAVEAT
    assert not calibration.scale_bar_mm and not calibration.has_orientation
    geometry = reformat(volume, Plane.AXIAL)
    m = evaluate(Measurement("length", "axial", 0, [(10.0, 10.0, 0.0), (40.0, 50.0, 0.0)]), volume, geometry)
    assert m.result["length"] == pytest.approx(10.0) and m.result["unit"] == "mm"
    assert m.summary() == "10.0 mm (at detector)"


def test_no_spacing_measures_in_pixels_and_says_so(tmp_path):
    volume = load_file(projection(tmp_path, "plain"))
    calibration = volume.calibration
    assert calibration.source == "none" and calibration.unit == "px" and calibration.caveat == NO_SPACING_CAVEAT
    geometry = reformat(volume, Plane.AXIAL)
    m = evaluate(Measurement("length", "axial", 0, [(10.0, 10.0, 0.0), (40.0, 50.0, 0.0)]), volume, geometry)
    assert m.summary() == "50.0 px"
    roi = evaluate(Measurement("rectangle", "axial", 0, [(10.0, 10.0, 0.0), (20.0, 20.0, 0.0)]), volume, geometry)
    assert "px²" in roi.summary() and "mm²" not in roi.summary()


@pytest.mark.parametrize("spacing", [[0, 0], [-0.7, -0.7], ["nan", "0.7"], ["inf", "inf"]])
def test_a_pixel_spacing_of_no_positive_millimetres_calibrates_nothing(tmp_path, spacing):
    """A header's PixelSpacing of 0 or below placed the stack on 1 mm pixels, yet measurements said "mm": a length
    measured on 1 mm pixels passed for millimetres the file never gave. It measures in pixels and says so."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PixelSpacing = spacing
    path = tmp_path / "ct" / "ct.dcm"
    path.parent.mkdir()
    ds.save_as(path)
    volume = load_file(path)
    assert volume.calibration.source == "none" and volume.calibration.caveat == NO_SPACING_CAVEAT
    m = evaluate(Measurement("length", "axial", 0, [(10.0, 10.0, 0.0), (40.0, 50.0, 0.0)]), volume,
                 reformat(volume, Plane.AXIAL))
    assert m.summary() == "50.0 px"


def test_pixel_spacing_wins_and_keeps_the_affine(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.ImagerPixelSpacing = [9.0, 9.0]  # must be ignored: PixelSpacing is the patient calibration
    path = tmp_path / "ct" / "ct.dcm"
    path.parent.mkdir()
    ds.save_as(path)
    volume = load_file(path)
    assert volume.calibration.source == "pixel_spacing" and volume.calibration.has_orientation
    spacing = float(ds.PixelSpacing[1])
    m = evaluate(Measurement("length", "axial", 0, [(0.0, 0.0, 0.0), (10.0, 0.0, 0.0)]), volume,
                 reformat(volume, Plane.AXIAL))
    assert m.result["length_mm"] == pytest.approx(10 * spacing)


@pytest.mark.parametrize("kwargs, fps", [
    ({"frame_time_ms": 40.0}, 25.0),
    ({"frame_time_ms": 0, "recommended_fps": 15}, 15.0),
    ({"recommended_fps": None, "cine_rate": 12}, 12.0),
    ({"frame_time_ms": "junk", "cine_rate": "8"}, 8.0),
    ({}, None),
])
def test_frame_rate_from_the_headers(kwargs, fps):
    assert frame_rate_from(**kwargs) == (pytest.approx(fps) if fps else None)


def test_cine_rate_tags_are_read_by_the_scanner(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.RecommendedDisplayFrameRate = 15
    path = tmp_path / "rate" / "ct.dcm"
    path.parent.mkdir()
    ds.save_as(path)
    assert load_file(path).frame_rate == pytest.approx(15.0)
