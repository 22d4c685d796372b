"""``hounsfield info`` says what a pixel measures when the spacing it prints is only a nominal grid."""
from __future__ import annotations

import json

import pydicom
from pydicom.data import get_testdata_file
from pydicom.sequence import Sequence

from tests.core.test_calibration import region
from tests.test_cli import hounsfield


def test_info_of_an_ultrasound_with_regions(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("US1_UNCR.dcm"))
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    ds.FrameTime = "40"
    ds.SequenceOfUltrasoundRegions = Sequence([region(0, 0, 639, 479, 0.051)])
    ds.save_as(tmp_path / "us.dcm")
    result = hounsfield("info", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["calibration"]["source"] == "ultrasound_regions" and not info["calibration"]["has_orientation"]
    assert info["frame_rate"] == 25.0
    text = hounsfield("info", str(tmp_path)).stdout
    assert "Calibration ultrasound_regions: mm per ultrasound region; no patient position/orientation" in text
    assert "Cine      25 fps (from the file)" in text
