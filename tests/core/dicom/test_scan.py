"""Header scan on real files: every folder of ../shared/data, pydicom's test files, DICOMDIRs, progress, cancel."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest

from tests.conftest import data_path
from viewer.core.dicom import scan as scan_mod
from viewer.core.dicom.scan import DicomReadError, iter_scan, read_dicomdir, read_header, scan
from viewer.core.dicom.synthetic import phantom_ct, write_series
from viewer.core.jobs import Cancelled, CancelToken, Progress

SHARED_FOLDERS = [
    "ct-gantry-tilt", "dicomdir-pydicom", "edge-dicom2nifti", "enh-multiframe", "lidc-idri-0001",
    "mr-decubitus-hfdr", "seg-rtstruct", "ts-cornerstone-ct", "ts-dcm-qa-ts", "ts-pylibjpeg-data",
]
TEXT_SUFFIXES = {".txt", ".md", ".rst", ".xml"}


def _all_files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _scanned_paths(catalog) -> set[str]:
    return {h.path for s in catalog.all_series() for h in s.instances}


# ------------------------------------------------------------------------------------------ shared data
@pytest.mark.parametrize("folder", SHARED_FOLDERS)
def test_every_shared_folder_scans_and_only_text_files_are_unreadable(folder):
    root = data_path(folder)
    catalog = scan(root)
    assert catalog.all_series(), f"{folder}: no series found"
    for u in catalog.unreadable:
        name = Path(u.path)
        # The only non-DICOM files in ../shared/data are licences, readmes and the LIDC XML.
        assert name.suffix.lower() in TEXT_SUFFIXES or name.name.upper() == "README", (u.path, u.reason)
        assert u.reason and "Traceback" not in u.reason
    # Every file is accounted for: in a series, unreadable, a DICOMDIR, or a skipped copy of an image.
    seen = _scanned_paths(catalog) | {u.path for u in catalog.unreadable}
    copies = sum(
        int(w.message.split()[0]) for s in catalog.all_series() for w in s.warnings if w.code == "duplicate_instances"
    )
    missing = [f for f in _all_files(root) if f not in seen and "DICOMDIR" not in Path(f).name]
    assert len(missing) <= copies, missing


def test_text_files_are_reported_with_a_short_reason():
    readme = data_path("ts-dcm-qa-ts", "README.md")
    with pytest.raises(DicomReadError) as info:
        read_header(readme)
    assert info.value.reason.startswith("not DICOM")
    catalog = scan(readme)
    assert [u.path for u in catalog.unreadable] == [str(readme)]
    assert not catalog.patients


def test_fast_reader_agrees_with_pydicom_on_every_file():
    """The dedicated tag reader must give exactly what the pydicom path gives, wherever it answers."""
    files = _all_files(data_path()) + list(pydicom.data.get_testdata_files())
    compared = 0
    for path in files:
        try:
            fast = scan_mod._fast_values(path)
        except (DicomReadError, OSError):
            continue
        if fast is None:
            continue
        values, syntax, media_class, has_pixels, ds, pixels = scan_mod._pydicom_values(path)
        slow = scan_mod._build_header(path, values, syntax, media_class, has_pixels)
        assert scan_mod._build_header(path, *fast[0]) == slow, path
        assert fast[1] == pixels, path  # both find the pixel data at the same offset, with the same length
        compared += 1
    assert compared > 400  # the fast path really covers the common case


def test_lidc_header_fields():
    folder = data_path("lidc-idri-0001")
    path = next(p for p in _all_files(folder) if p.endswith(".dcm"))
    h = read_header(path)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert h.sop_class_uid == ds.SOPClassUID and h.sop_instance_uid == ds.SOPInstanceUID
    assert h.series_uid == ds.SeriesInstanceUID and h.study_uid == ds.StudyInstanceUID
    assert h.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert (h.rows, h.columns, h.bits_allocated, h.samples_per_pixel) == (512, 512, 16, 1)
    assert h.photometric == "MONOCHROME2" and h.has_pixels and h.number_of_frames == 1
    assert h.instance_number == int(ds.InstanceNumber)
    assert h.frames[0].position == pytest.approx([float(v) for v in ds.ImagePositionPatient])
    assert h.frames[0].orientation == pytest.approx([float(v) for v in ds.ImageOrientationPatient])
    assert h.frames[0].pixel_spacing == pytest.approx([float(v) for v in ds.PixelSpacing])


def test_gantry_tilt_and_pixel_presence():
    tilted = read_header(data_path("ct-gantry-tilt", "GE_head_tilt_uneven", "01.dcm"))
    assert tilted.gantry_tilt == pytest.approx(18.5)
    assert read_header(data_path("ts-cornerstone-ct", "CTImage.dcm")).has_pixels
    assert not read_header(data_path("ts-cornerstone-ct", "no-pixel-data.dcm")).has_pixels


def test_every_transfer_syntax_header_reads():
    for name in os.listdir(data_path("ts-cornerstone-ct")):
        if "CTImage" in name:
            h = read_header(data_path("ts-cornerstone-ct", name))
            assert (h.rows, h.columns) == (512, 512) and h.has_pixels, name
            assert h.frames[0].position is not None, name


def test_enhanced_multiframe_gets_per_frame_geometry():
    root = data_path("enh-multiframe")
    checked = 0
    for path in _all_files(root):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if "PerFrameFunctionalGroupsSequence" not in ds:
            continue
        h = read_header(path)
        n = int(ds.NumberOfFrames)
        assert h.number_of_frames == n and len(h.frames) == n, path
        shared = ds.get("SharedFunctionalGroupsSequence", [pydicom.Dataset()])[0]
        for i in (0, n // 2, n - 1):  # independent read of the functional groups
            groups = ds.PerFrameFunctionalGroupsSequence[i]
            src = groups if "PlanePositionSequence" in groups else shared
            expected = [float(v) for v in src.PlanePositionSequence[0].ImagePositionPatient]
            assert h.frames[i].position == pytest.approx(expected), (path, i)
            src = groups if "PlaneOrientationSequence" in groups else shared
            expected = [float(v) for v in src.PlaneOrientationSequence[0].ImageOrientationPatient]
            assert h.frames[i].orientation == pytest.approx(expected), (path, i)
            src = groups if "PixelMeasuresSequence" in groups else shared
            expected = [float(v) for v in src.PixelMeasuresSequence[0].PixelSpacing]
            assert h.frames[i].pixel_spacing == pytest.approx(expected), (path, i)
        if n > 1:
            assert len({f.position for f in h.frames}) > 1, f"{path}: every frame at one position"
        checked += 1
    assert checked >= 8


def test_rt_dose_frames_from_grid_offsets():
    path = data_path("ts-pylibjpeg-data", "LittleEndianImplicit", "rtdose.dcm")
    h = read_header(path)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    offsets = [float(v) for v in ds.GridFrameOffsetVector]
    assert len(h.frames) == h.number_of_frames == len(offsets) > 1
    first = np.array(h.frames[0].position)
    step = np.linalg.norm(np.array(h.frames[1].position) - first)
    assert step == pytest.approx(abs(offsets[1] - offsets[0]))


def test_dicom_without_preamble_is_read_and_junk_is_not(tmp_path):
    for name in ("ExplVR_LitEndNoMeta.dcm", "ExplVR_BigEndNoMeta.dcm"):  # RT plans without preamble or meta
        h = read_header(pydicom.data.get_testdata_file(name))
        assert h.modality == "RTPLAN" and h.sop_instance_uid == "1.2.333.4444.5.6.7.8" and h.series_number == 1
    junk = tmp_path / "notes.dcm"
    junk.write_bytes(b"\x08\x00 this is not a DICOM file at all, only text that starts oddly" * 4)
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    for path, reason in ((junk, "not DICOM"), (empty, "empty file")):
        with pytest.raises(DicomReadError) as info:
            read_header(path)
        assert info.value.reason.startswith(reason)


def test_truncated_and_missing_photometric(tmp_path):
    paths = write_series(tmp_path / "s", phantom_ct((2, 16, 16)))
    ds = pydicom.dcmread(paths[0])
    del ds.PhotometricInterpretation
    ds.save_as(paths[0])
    h = read_header(paths[0])
    assert h.photometric == "MONOCHROME2" and h.has_pixels
    data = Path(paths[1]).read_bytes()
    header_end = data.index(b"\xe0\x7f\x10\x00")  # where (7FE0,0010) starts
    for cut in (140, 400, header_end - 5):  # the file ends inside the header: reported, not half-read
        Path(paths[1]).write_bytes(data[:cut])
        with pytest.raises(DicomReadError, match="truncated"):
            read_header(paths[1])
    Path(paths[1]).write_bytes(data[: header_end + 200])  # cut inside the pixels: the header is whole
    assert read_header(paths[1]).has_pixels
    catalog = scan(tmp_path / "s")
    assert [u.reason for u in catalog.unreadable] == []
    Path(paths[1]).write_bytes(data[:400])
    assert [Path(u.path).name for u in scan(tmp_path / "s").unreadable] == [Path(paths[1]).name]


def test_pydicom_test_files_scan_without_exception():

    folders = {Path(p).parent for p in pydicom.data.get_testdata_files()}
    try:
        import data_store  # the pydicom-data package (its files, when installed)

        folders.add(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    catalog = scan(sorted(folders))
    assert len(catalog.all_series()) > 50
    bad_dicom = {Path(u.path).name: u.reason for u in catalog.unreadable if u.path.endswith(".dcm")}
    # Deliberately broken parser fixtures: no_meta.dcm lacks its first byte (pydicom reads it as one junk
    # element), rtplan_truncated.dcm stops mid-element, the other three hold only private elements or a
    # character set: nothing to catalogue.
    known_broken = {
        "no_meta.dcm", "rtplan_truncated.dcm", "meta_missing_tsyntax.dcm", "nested_priv_SQ.dcm",
        "empty_charset_LEI.dcm",
    }
    assert set(bad_dicom) <= known_broken, bad_dicom
    assert bad_dicom.get("rtplan_truncated.dcm", "truncated").startswith("truncated")


# ---------------------------------------------------------------------------------------------- DICOMDIR
DICOMDIR_VARIANTS = [
    "DICOMDIR", "DICOMDIR-bigEnd", "DICOMDIR-implicit", "DICOMDIR-nooffset", "DICOMDIR-reordered",
    "DICOMDIR-nopatient",
]


@pytest.mark.parametrize("variant", DICOMDIR_VARIANTS)
def test_dicomdir_finds_the_same_series_as_the_folder(variant):
    root = data_path("dicomdir-pydicom")
    by_folder = scan([root / "77654033", root / "98892001", root / "98892003"])
    by_dicomdir = scan(root / variant)
    assert not by_dicomdir.unreadable
    assert sorted(s.key for s in by_dicomdir.all_series()) == sorted(s.key for s in by_folder.all_series())
    assert _scanned_paths(by_dicomdir) == _scanned_paths(by_folder)
    assert len(_scanned_paths(by_dicomdir)) == 31


def test_empty_and_tiny_dicomdirs():
    empty = data_path("dicomdir-pydicom", "DICOMDIR-empty.dcm")
    catalog = scan(empty)
    assert not catalog.patients
    assert [(u.path, u.reason) for u in catalog.unreadable] == [(str(empty), "DICOMDIR lists no files")]
    tiny = data_path("dicomdir-pydicom", "TINY_ALPHA")
    via_dicomdir = scan(tiny / "DICOMDIR")
    assert _scanned_paths(via_dicomdir) == _scanned_paths(scan(tiny))
    assert via_dicomdir.all_series()[0].n_instances == 50


def test_folder_with_dicomdirs_counts_each_file_once():
    root = data_path("dicomdir-pydicom")
    catalog = scan([root, root / "DICOMDIR"])  # the folder, and its DICOMDIR on top
    paths = [h.path for s in catalog.all_series() for h in s.instances]
    assert len(paths) == len(set(paths)) == 31 + 50
    # DICOMDIRs index files: they are neither series nor unreadable.
    assert not any("DICOMDIR" in u.path for u in catalog.unreadable)


def test_dicomdir_written_by_pydicom_matches_folder(tmp_path):
    """Runs without ../shared: a FileSet written by pydicom, then scanned both ways."""
    from pydicom.fileset import FileSet

    source = tmp_path / "src"
    for k in range(2):
        write_series(source / f"s{k}", phantom_ct((3, 8, 8)), series_number=k + 1)
    fs = FileSet()
    for path in sorted(source.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.PatientName = "120000", "1", "1", "Test^FileSet"
        fs.add(ds)
    fs.write(tmp_path / "media")
    (tmp_path / "media" / "README.txt").write_text("not an image\n")
    folder = scan(tmp_path / "media")
    dicomdir = scan(tmp_path / "media" / "DICOMDIR")
    assert [s.n_instances for s in dicomdir.all_series()] == [3, 3]
    assert _scanned_paths(folder) == _scanned_paths(dicomdir)
    assert [Path(u.path).name for u in folder.unreadable] == ["README.txt"]
    files, problems = read_dicomdir(tmp_path / "media" / "DICOMDIR")
    assert len(files) == 6 and not problems


def test_dicomdir_with_missing_files_reports_them(tmp_path):
    media = tmp_path / "media"
    shutil.copytree(data_path("dicomdir-pydicom", "TINY_ALPHA"), media)
    os.chmod(media / "PT000000" / "ST000000" / "SE000000", 0o755)
    victim = media / "PT000000" / "ST000000" / "SE000000" / "IM000000"
    os.chmod(victim, 0o644)
    victim.unlink()
    catalog = scan(media / "DICOMDIR")
    assert catalog.all_series()[0].n_instances == 49
    assert [(Path(u.path).name, u.reason) for u in catalog.unreadable] == [
        ("IM000000", "listed in DICOMDIR but not found")
    ]


# ------------------------------------------------------------------------------ progress, cancel, executors
def _synthetic_folder(tmp_path: Path, n_series: int = 3, n_slices: int = 60) -> Path:
    for k in range(n_series):
        write_series(tmp_path / f"s{k}", phantom_ct((n_slices, 8, 8)), series_number=k + 1)
    return tmp_path


def test_progress_is_yielded_and_reaches_the_total(tmp_path):
    folder = _synthetic_folder(tmp_path)
    job = iter_scan(folder)
    events: list[Progress] = []
    while True:
        try:
            events.append(next(job))
        except StopIteration as stop:
            catalog = stop.value
            break
    reading = [e for e in events if e.message == "Reading headers"]
    assert len(reading) >= 5  # 180 files: about every 2 %, at least every 64 files
    assert reading[-1].done == reading[-1].total == 180
    assert [e.done for e in reading] == sorted(e.done for e in reading)
    assert [s.n_instances for s in catalog.all_series()] == [60, 60, 60]


@pytest.mark.parametrize("options", [{}, {"workers": 2, "executor": "thread"}])
def test_cancel_mid_scan_raises_cancelled(tmp_path, options):
    folder = _synthetic_folder(tmp_path)
    token = CancelToken()
    job = iter_scan(folder, cancel=token, **options)
    progress = next(job)
    while progress.message != "Reading headers" or progress.done == 0:
        progress = next(job)
    assert progress.done < progress.total
    token.cancel()
    with pytest.raises(Cancelled):
        next(job)


def test_cancel_before_start(tmp_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        scan(_synthetic_folder(tmp_path, 1, 4), cancel=token)


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_parallel_scans_equal_the_inline_scan(tmp_path, executor):
    folder = _synthetic_folder(tmp_path)
    (folder / "notes.txt").write_text("not DICOM\n")
    inline = scan(folder)
    parallel = scan(folder, workers=2, executor=executor)
    assert [(s.key, [h.path for h in s.instances]) for s in parallel.all_series()] == [
        (s.key, [h.path for h in s.instances]) for s in inline.all_series()
    ]
    assert [u.path for u in parallel.unreadable] == [u.path for u in inline.unreadable] == [str(folder / "notes.txt")]


def test_missing_path_is_reported(tmp_path):
    catalog = scan(tmp_path / "nowhere")
    assert [u.reason for u in catalog.unreadable] == ["no such file or folder"]
