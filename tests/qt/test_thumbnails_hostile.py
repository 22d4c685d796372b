"""Series thumbnails on hostile files (issue 10): no allocation from a lying header, no thread killed by a panic."""
from __future__ import annotations

import pydicom
import pytest

from tests.conftest import data_path
from viewer.core.dicom import limits
from viewer.core.dicom.scan import scan
from viewer.core.jobs import run_job
from viewer.qt.thumbnails import iter_thumbnails, thumbnail_array


def test_a_compressed_frame_claiming_65535_squared_gets_no_thumbnail_and_no_allocation(tmp_path):
    ds = pydicom.dcmread(data_path("ts-pylibjpeg-data", "JPEGLS", "CT1_JLSN.dcm"))
    ds.Rows = ds.Columns = 65535  # the header lies; the JPEG-LS frame inside is small
    ds.save_as(tmp_path / "big.dcm")
    (series,) = scan(tmp_path).all_series()
    with pytest.raises(limits.SizeLimitError, match="needs 16.0 GiB"):
        thumbnail_array(series)
    assert run_job(iter_thumbnails([series])) == 0


def test_a_frame_that_panics_the_rust_rle_decoder_gets_no_thumbnail_and_the_others_still_come(tmp_path):
    from pydicom.encaps import encapsulate, generate_frames

    source = data_path("ts-pylibjpeg-data", "RLELossless", "emri_small_RLE.dcm")
    ds = pydicom.dcmread(source)
    n = int(ds.NumberOfFrames)
    frames = [bytearray(f) for f in generate_frames(ds.PixelData, number_of_frames=n)]
    frames[n // 2][8] = 0xFE  # the thumbnail's frame: pylibjpeg-rle panics on it (a BaseException)
    ds.PixelData = encapsulate([bytes(f) for f in frames])
    (tmp_path / "bad").mkdir()
    ds.save_as(tmp_path / "bad" / "rle.dcm")
    good = data_path("ts-cornerstone-ct", "CTImage.dcm_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm")
    catalog = scan([tmp_path / "bad", good])
    made = {}
    job = iter_thumbnails(catalog.all_series())
    try:
        while True:
            key, image = next(job).payload
            made[key] = image
    except StopIteration as stop:
        count = stop.value
    assert count == 1 and sorted(v is None for v in made.values()) == [False, True]
