"""What the reader is told about an open, built from real scans and loads (no Qt)."""
from __future__ import annotations

import shutil

import numpy as np

from tests.conftest import data_path
from viewer.core.dicom.load import load_series
from viewer.core.dicom.scan import scan
from viewer.core.load_report import ERROR, INFO, WARNING, blocked_reason, report_no_images, report_volume
from viewer.core.volume import Volume


def truncated_lidc(tmp_path, k: int = 40):
    """LIDC-IDRI-0001 copied, with its ``k``-th file (by name) cut in the middle of its pixel data."""
    source = data_path("lidc-idri-0001")
    files = sorted(source.rglob("*.dcm"))
    target = tmp_path / "lidc"
    target.mkdir()
    for f in files:
        shutil.copyfile(f, target / f.name)
    victim = target / files[k].name
    size = victim.stat().st_size
    with open(victim, "r+b") as fh:
        fh.truncate(size - 200_000)  # 512 x 512 x 2 bytes of pixels: this cuts well inside them
    return target, victim


def test_truncated_file_is_an_error_that_blocks_models(tmp_path):
    folder, victim = truncated_lidc(tmp_path)
    catalog = scan([folder])
    series = next(s for s in catalog.all_series() if s.kind == "image")
    volume = load_series(series)
    assert len(volume.failed_slices) == 1
    k = volume.failed_slices[0]
    assert not volume.array[k].any(), "the slice that failed is left blank, not half-filled"
    report = report_volume(volume, catalog, series.warnings)
    assert report.level == ERROR
    assert "could not be decoded" in report.headline and "AI models are off" in report.headline
    assert "could not be decoded" in blocked_reason(volume)
    assert report.models_blocked == blocked_reason(volume)
    assert "[decode_failed]" in report.details_text()
    # named as the views number them (image 1 at the head: the array's last slice)
    numbered = report_volume(volume, catalog, series.warnings, image_number=lambda z: volume.shape[0] - z)
    assert numbered.headline.startswith(f"Image {volume.shape[0] - k} of {volume.shape[0]} could not be decoded")
    assert "[decode_failed]" in numbered.details_text(), "the loader's own words stay in the details"


def test_tilted_ct_warns_with_every_warning_in_the_details():
    catalog = scan([data_path("ct-gantry-tilt")])
    series = max((s for s in catalog.all_series() if s.kind == "image"), key=lambda s: s.n_instances)
    volume = load_series(series)
    report = report_volume(volume, catalog, series.warnings)
    assert report.level == WARNING
    assert report.headline.startswith("Gantry tilt") and "(+1 more)" in report.headline
    assert {w.code for w in report.warnings} >= {"gantry_tilt", "uneven_spacing"}
    assert len(report.skipped) == 3 and all(reason.startswith("not DICOM") for _, reason in report.skipped)
    assert blocked_reason(volume) == ""


def test_folder_without_dicom_lists_the_skipped_files(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    catalog = scan([tmp_path])
    report = report_no_images([str(tmp_path)], catalog)
    assert report.level == ERROR
    assert report.headline == f"No DICOM images found in {tmp_path.name} — 2 files skipped"
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in report.skipped) == ["notes.txt", "scan.png"]


def test_partial_volume_is_a_warning_and_a_clean_one_says_nothing():
    volume = Volume(np.zeros((10, 4, 4), np.int16), np.eye(4), slices_loaded=4)
    report = report_volume(volume)
    assert report.level == WARNING and "4 of 10" in report.headline
    assert blocked_reason(volume) == "Only 4 of 10 slices are loaded"
    volume.slices_loaded = 10
    assert report_volume(volume) is None
    assert blocked_reason(volume) == ""


def test_skipped_files_alone_are_information():
    catalog = scan([data_path("lidc-idri-0001")])
    series = next(s for s in catalog.all_series() if s.kind == "image")
    volume = load_series(series)
    report = report_volume(volume, catalog, series.warnings)
    assert report.level == INFO and report.headline.startswith(f"{len(catalog.unreadable)} files skipped")
