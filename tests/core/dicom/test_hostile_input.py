"""Hostile input (issue 10): references outside the folder, special files, and declared sizes that lie.

Every case is built from a real file of ../shared/data (or with pydicom) in the test; each asserts the clear
refusal *and* that nothing beyond it is lost.
"""
from __future__ import annotations

import os
import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian

from tests.conftest import data_path
from viewer.core.dicom import limits
from viewer.core.dicom.catalog import default_image_series
from viewer.core.dicom.load import load_series
from viewer.core.dicom.scan import DicomReadError, read_dicomdir, read_header, scan

CT_NATIVE = ("ts-cornerstone-ct", "CTImage.dcm_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm")
CT_DEFLATED = ("ts-cornerstone-ct",
               "CTImage.dcm_DeflatedExplicitVRLittleEndianTransferSyntax_1.2.840.10008.1.2.1.99.dcm")
CT_JPEG_LS = ("ts-cornerstone-ct", "CTImage.dcm_JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm")


def _reasons(catalog) -> dict[str, str]:
    return {os.path.basename(u.path): u.reason for u in catalog.unreadable}


def _paths(catalog) -> set[str]:
    return {os.path.realpath(h.path) for s in catalog.all_series() for h in s.instances}


# ----------------------------------------------------------------------------------- DICOMDIR containment
@pytest.mark.parametrize("file_id", [["..", "..", "outside.dcm"], "ABSOLUTE"])
def test_dicomdir_reference_outside_its_folder_is_listed_never_read(tmp_path, file_id):
    src = data_path("dicomdir-pydicom")
    media = tmp_path / "media" / "disc"
    shutil.copytree(src, media, ignore=shutil.ignore_patterns("*.txt", "README*"))
    outside = tmp_path / "outside.dcm"  # a real image a hostile DICOMDIR points at
    shutil.copy(data_path(*CT_NATIVE), outside)
    ds = pydicom.dcmread(media / "DICOMDIR")
    records = [r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r]
    records[0].ReferencedFileID = [str(outside)] if file_id == "ABSOLUTE" else file_id
    ds.save_as(media / "DICOMDIR")

    files, problems = read_dicomdir(media / "DICOMDIR")
    assert str(outside) not in {os.path.realpath(f) for f in files}
    assert len(files) == len(records) - 1  # every other record still gives its file
    (problem,) = [p for p in problems if os.path.realpath(p.path) == str(outside)]
    assert "outside the DICOMDIR's folder" in problem.reason
    catalog = scan(media / "DICOMDIR")
    assert str(outside) not in _paths(catalog)
    assert catalog.all_series()


def test_dicomdir_file_id_with_control_bytes_is_reported_not_echoed(tmp_path):
    """A damaged record whose file ID runs on into the bytes after it (a NUL inside: the fuzz campaign's seed 36
    crashed the scan in realpath) is counted against the DICOMDIR, its bytes never shown; the rest still loads."""
    media = tmp_path / "disc"
    shutil.copytree(data_path("dicomdir-pydicom"), media, ignore=shutil.ignore_patterns("*.txt", "README*"))
    ds = pydicom.dcmread(media / "DICOMDIR")
    records = [r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r]
    records[0].ReferencedFileID = ["77654033", "CR1", "6154 \x00\x04\x15DOE^JANE"]
    ds.save_as(media / "DICOMDIR")

    files, problems = read_dicomdir(media / "DICOMDIR")
    assert len(files) == len(records) - 1
    (problem,) = problems
    assert problem.path == str(media / "DICOMDIR")
    assert problem.reason == ("1 DICOMDIR record(s) with a damaged file ID (control characters or an unreadable "
                              "value); not read")
    catalog = scan(media / "DICOMDIR")
    assert catalog.all_series() and "DOE" not in " ".join(u.path + u.reason for u in catalog.unreadable)


def test_dicomdir_record_of_unknown_vr_is_counted_and_the_rest_still_load(tmp_path):
    # bench/fuzz.py seed 54: one flipped bit made a record's ReferencedFileID of VR "CW", and pydicom's
    # conversion of it (on access) ended the scan with NotImplementedError.
    media = tmp_path / "disc"
    shutil.copytree(data_path("dicomdir-pydicom"), media, ignore=shutil.ignore_patterns("*.txt", "README*"))
    raw = (media / "DICOMDIR-bigEnd").read_bytes()
    file_id = b"\x00\x04\x15\x00CS"  # (0004,1500) ReferencedFileID, big endian explicit VR
    (media / "DICOMDIR").write_bytes(raw.replace(file_id, b"\x00\x04\x15\x00CW", 1))

    files, problems = read_dicomdir(media / "DICOMDIR")
    assert len(files) == raw.count(file_id) - 1
    assert [p.reason for p in problems] == [
        "1 DICOMDIR record(s) with a damaged file ID (control characters or an unreadable value); not read"]
    assert scan(media / "DICOMDIR").all_series()


# -------------------------------------------------------------------------------------- links, FIFOs
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and symlinks need a POSIX system")
def test_links_out_of_the_folder_and_fifos_are_listed_never_opened(tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(data_path(*CT_NATIVE), folder / "inside.dcm")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(data_path(*CT_JPEG_LS), elsewhere / "secret.dcm")
    (folder / "out-link.dcm").symlink_to(elsewhere / "secret.dcm")
    (folder / "out-dir").symlink_to(elsewhere, target_is_directory=True)
    (folder / "in-link.dcm").symlink_to(folder / "inside.dcm")
    os.mkfifo(folder / "pipe.dcm")  # opening it for reading would block the scan forever

    catalog = scan(folder)  # returns at all: the FIFO was not opened
    reasons = _reasons(catalog)
    assert "link to outside the scanned folder" in reasons["out-link.dcm"]
    assert "link to outside the scanned folder" in reasons["out-dir"]
    assert "FIFO" in reasons["pipe.dcm"]
    assert str((elsewhere / "secret.dcm").resolve()) not in _paths(catalog)
    assert str((folder / "inside.dcm").resolve()) in _paths(catalog)  # the link inside is fine
    with pytest.raises(DicomReadError, match="regular file"):
        read_header(folder / "pipe.dcm")  # named directly it is refused, not read
    assert "FIFO" in _reasons(scan(folder / "pipe.dcm"))["pipe.dcm"]


# ------------------------------------------------------------------------------------- declared sizes
def _native_copy(tmp_path: Path, name: str, **changes) -> Path:
    ds = pydicom.dcmread(data_path(*CT_NATIVE))
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[name])
    out = tmp_path / name
    ds.save_as(out, enforce_file_format=True)
    return out


@pytest.mark.parametrize("frames", [2**31 - 1, 1_000_000_000, 2])
def test_number_of_frames_beyond_the_bytes_present_is_refused_with_the_real_reason(tmp_path, frames):
    liar = _native_copy(tmp_path, "liar.dcm", NumberOfFrames=frames)
    with pytest.raises(DicomReadError, match=f"declares {frames} frames but holds 1"):
        read_header(liar)


def test_enhanced_file_claiming_a_billion_frames_is_refused_fast(tmp_path):
    src = next(p for p in data_path("enh-multiframe").rglob("*") if p.is_file() and _is_enhanced(p))
    ds = pydicom.dcmread(src)
    real = int(ds.NumberOfFrames)
    ds.NumberOfFrames = 1_000_000_000
    ds.save_as(tmp_path / "enh.dcm")
    with pytest.raises(DicomReadError, match=rf"declares 1000000000 frames but holds {real}\b"):
        read_header(tmp_path / "enh.dcm")


def _is_enhanced(path: Path) -> bool:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - text files among the data
        return False
    return "PerFrameFunctionalGroupsSequence" in ds and int(ds.get("NumberOfFrames", 1) or 1) > 1


def test_a_lying_file_does_not_take_over_the_default_series(tmp_path):
    series = data_path("ct-gantry-tilt")
    folder = tmp_path / "study"
    shutil.copytree(series, folder)
    honest = default_image_series(scan(folder))
    ds = pydicom.dcmread(data_path(*CT_NATIVE))
    ds.NumberOfFrames = 2**31 - 1
    ds.save_as(folder / "liar.dcm")
    catalog = scan(folder)
    assert "declares 2147483647 frames but holds 1" in _reasons(catalog)["liar.dcm"]
    assert default_image_series(catalog).key == honest.key


def test_frames_claimed_without_pixel_data_are_not_looped_over(tmp_path):
    """bench/fuzz.py seed 89: a SEG cut before its pixel data and its per-frame groups declared 2^31 frames under one
    shared group, and the scan built a frame geometry for each (a hang). Without pixel data nothing bounds the
    claim: one frame is read. (A million here: a regression costs seconds, not the session.)"""
    ds = pydicom.dcmread(data_path("seg-rtstruct", "dcmqi", "segmentations", "liver.dcm"))
    del ds.PixelData, ds.PerFrameFunctionalGroupsSequence
    ds.NumberOfFrames = 1_000_000
    ds.save_as(tmp_path / "cut.dcm")
    header = read_header(tmp_path / "cut.dcm")
    assert not header.has_pixels and len(header.frames) == 1


def test_rows_and_columns_beyond_the_pixel_data_are_refused(tmp_path):
    liar = _native_copy(tmp_path, "big.dcm", Rows=65535, Columns=65535)
    with pytest.raises(DicomReadError, match=r"declares 65535 x 65535 pixels \(8.0 GiB a frame\) but holds 512.0 KiB"):
        read_header(liar)


@pytest.mark.parametrize("zero, reason", [({"Rows": 0}, r"0 x 512 pixels \(a zero size\)"),
                                          ({"Columns": 0}, r"512 x 0 pixels \(a zero size\)"),
                                          ({"BitsAllocated": 0}, "1000000000 frames but holds 16$")])
def test_a_zero_size_header_is_refused_at_scan_time(tmp_path, zero, reason):
    # bench/fuzz.py seeds 50 and 71: Rows 0, or BitsAllocated 0, left a billion frames of nothing unchecked, and
    # the loader's frame list ran out of memory. (0 bits count as 1: 512 KiB hold 16 frames of 512 x 512 bits.)
    liar = _native_copy(tmp_path, "empty.dcm", NumberOfFrames=1_000_000_000, **zero)
    with pytest.raises(DicomReadError, match=f"declares {reason}"):
        read_header(liar)
    shutil.copy(data_path(*CT_NATIVE), tmp_path / "honest.dcm")
    catalog = scan(tmp_path)
    assert re.search(f"declares {reason}", _reasons(catalog)["empty.dcm"])
    assert load_series(default_image_series(catalog)).array.shape == (1, 512, 512)


def test_decoded_size_cap_refuses_before_allocating(tmp_path, monkeypatch):
    # A compressed file cannot be checked against its bytes at scan time: the loader's cap stops it.
    ds = pydicom.dcmread(data_path(*CT_JPEG_LS))
    catalog = scan(data_path(*CT_JPEG_LS))
    monkeypatch.setenv(limits.ENV_MAX_SERIES_BYTES, "100K")
    with pytest.raises(Exception, match="above the 100.0 KiB limit") as info:
        load_series(default_image_series(catalog))
    assert f"{ds.Rows} x {ds.Columns}" in str(info.value)
    monkeypatch.setenv(limits.ENV_MAX_SERIES_BYTES, "1M")
    assert load_series(default_image_series(catalog)).shape == (1, ds.Rows, ds.Columns)


# ------------------------------------------------------------------------------------------------ deflate
def _deflate_bomb(tmp_path: Path, expanded: int, keep_pixels: bool = False, source: Path | None = None) -> Path:
    """A real data set (a CT unless ``source``) plus a trailing OB element of ``expanded`` zero bytes, all
    deflated: a private one without pixel data (the header read meets it), or DataSetTrailingPadding after the
    pixel data."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info

    ds = pydicom.dcmread(source or data_path(*CT_NATIVE))
    if not keep_pixels and "PixelData" in ds:
        del ds.PixelData
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian  # what the deflated stream must hold
    plain = tmp_path / "plain.dcm"
    ds.save_as(plain, enforce_file_format=True)
    raw = plain.read_bytes()
    dataset = raw[132 + 12 + int.from_bytes(raw[140:144], "little"):]
    tag = b"\xfc\xff\xfc\xff" if keep_pixels else b"\x09\x00\x10\x10"
    squash = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = squash.compress(dataset + tag + b"OB\x00\x00" + expanded.to_bytes(4, "little"))
    zeros = bytes(1 << 20)
    body += b"".join(squash.compress(zeros) for _ in range(expanded >> 20)) + squash.flush()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    meta = DicomBytesIO()
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    bomb = tmp_path / "bomb.dcm"
    bomb.write_bytes(b"\0" * 128 + b"DICM" + meta.getvalue() + body)
    return bomb


def test_deflate_bomb_is_refused_without_inflating_it(tmp_path):
    bomb = _deflate_bomb(tmp_path, 1 << 30)  # 1 GiB of zeros: about 1 MB on disk
    assert bomb.stat().st_size < 3 << 20
    with pytest.raises(DicomReadError, match="expands beyond"):
        read_header(bomb)


@pytest.mark.parametrize("reader", ["rtstruct", "sr", "dicomdir", "seg sources", "body part"])
def test_every_reader_of_untrusted_files_inflates_within_the_cap(tmp_path, reader):
    """RT structure sets, SRs, DICOMDIRs, the source headers a SEG export reads and the body part a model check
    reads went to pydicom.dcmread, which inflates a deflated file whole (1 GiB of zeros in 1 MB: 2.1 GB)."""
    from types import SimpleNamespace

    from viewer.core.export.seg import read_sources
    from viewer.core.export.sr_measurements import read_report
    from viewer.core.rtstruct import read_rtstruct_set
    from viewer.core.run_model import body_part_of

    source = {"rtstruct": data_path("seg-rtstruct", "dicompyler-core", "rtss.dcm"),
              "sr": data_path("seg-rtstruct", "highdicom", "sr_document.dcm"),
              "dicomdir": data_path("dicomdir-pydicom", "DICOMDIR")}.get(reader)
    bomb = _deflate_bomb(tmp_path, 320 << 20, source=source)
    refused = "expands beyond 256.0 MiB; refused as a likely deflate bomb"
    if reader == "dicomdir":
        files, (problem,) = read_dicomdir(bomb)
        assert not files and refused in problem.reason
    elif reader == "body part":  # nothing to say but "unknown"; it must say it without inflating
        import tracemalloc

        tracemalloc.start()
        assert body_part_of(SimpleNamespace(instances=[SimpleNamespace(path=str(bomb))])) == ""
        assert tracemalloc.get_traced_memory()[1] < 400 << 20
        tracemalloc.stop()
    else:
        read = {"rtstruct": read_rtstruct_set, "sr": read_report, "seg sources": lambda p: read_sources([p])}[reader]
        with pytest.raises(Exception, match=refused):
            read(bomb)


@pytest.mark.parametrize("reader", ["stored results", "C-STORE header", "retrieved bytes"])
def test_every_service_reader_says_not_readable_within_the_cap(tmp_path, reader):
    """The batch runner's look at stored results, C-STORE's header read and a retrieved instance's UIDs called
    pydicom.dcmread on untrusted files (or a PACS's bytes); a deflated one was inflated whole. Each has nothing to
    give but "not readable", and must say it without inflating."""
    import tracemalloc

    from viewer.services.batch.study_results import is_model_seg
    from viewer.services.pacs.dimse_send import _header
    from viewer.services.pacs.part10 import instance_uids

    bomb = _deflate_bomb(tmp_path, 1 << 30)
    tracemalloc.start()
    if reader == "stored results":
        assert not is_model_seg(bomb)
    elif reader == "C-STORE header":
        with pytest.raises(ValueError, match="not a readable DICOM file"):
            _header(bomb)
    else:
        assert instance_uids(bomb.read_bytes()) is None
    assert tracemalloc.get_traced_memory()[1] < 400 << 20
    tracemalloc.stop()


_UNDEFINED_SEQUENCE = b"\x09\x00\x00\x10SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"


@pytest.mark.parametrize("deflated", [True, False], ids=["deflated", "native"])
@pytest.mark.parametrize("run, reason", [
    # zeros (a zero-filled region) parse as empty elements of tag (0000,0000)
    (bytes(8 * 200_000), "a run of zero bytes where the data set's elements should be"),
    # the same inside an undefined-length sequence item, below the top-level count
    (_UNDEFINED_SEQUENCE + bytes(8 * 200_000), "a run of zero bytes where the data set's elements should be"),
    # any other empty element, repeated
    (b"\x09\x00\x10\x10CS\x00\x00" * 200_000, "the data set holds more than 100,000 elements"),
], ids=["zeros", "zeros in a sequence", "empty elements"])
def test_a_run_of_empty_elements_is_refused_early(tmp_path, deflated, run, reason):
    """Empty 8-byte elements parse at ~7 us each: 1.4 MB deflated into 256 MiB of zeros kept a header read busy for
    41 s, and 32 MiB of zeros inside a sequence 9.5 s. Runs of zero headers, and more than MAX_ELEMENTS top-level
    elements, are refused."""
    import time

    from viewer.core.dicom.scan import _pydicom_values

    ds = pydicom.dcmread(data_path(*CT_NATIVE))
    del ds.PixelData
    ds.file_meta.TransferSyntaxUID = (DeflatedExplicitVRLittleEndian if deflated
                                      else pydicom.uid.ExplicitVRLittleEndian)
    ds.save_as(tmp_path / "flood.dcm", enforce_file_format=True)
    raw = (tmp_path / "flood.dcm").read_bytes()
    if deflated:  # the data set's deflate stream ends the file: make it go on into the run
        meta_end = 132 + 12 + int.from_bytes(raw[140:144], "little")
        dataset = zlib.decompress(raw[meta_end:], -zlib.MAX_WBITS)
        squash = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        raw = raw[:meta_end] + squash.compress(dataset + run) + squash.flush()
    else:
        raw += run
    (tmp_path / "flood.dcm").write_bytes(raw)
    started = time.perf_counter()
    if not deflated and b"CS" in run:
        # uncompressed, the file's size bounds the run, and our tag reader walks known elements at ~0.5 us each
        assert read_header(tmp_path / "flood.dcm").rows == 512
        assert time.perf_counter() - started < 5
        return
    with pytest.raises(DicomReadError, match=reason):
        read_header(tmp_path / "flood.dcm")
    with pytest.raises(limits.SizeLimitError, match=reason):
        limits.dcmread(str(tmp_path / "flood.dcm"))
    assert time.perf_counter() - started < 5
    assert _pydicom_values(str(data_path(*CT_NATIVE)))[0]["Rows"] == 512  # a real header: well under the limits


def test_a_guarded_read_is_a_plain_dataset_of_its_path():
    """limits.dcmread reads through ZeroRunGuard; what it returns must not keep the guard (the batch runner's Ray
    could not pickle a dataset holding it)."""
    import pickle

    ds = limits.dcmread(str(data_path(*CT_NATIVE)))
    assert (ds.filename, ds.buffer, ds.Rows) == (str(data_path(*CT_NATIVE)), None, 512)
    assert pickle.loads(pickle.dumps(ds)).SOPInstanceUID == ds.SOPInstanceUID


def test_a_deflated_header_is_read_without_inflating_what_follows_the_pixels(tmp_path):
    import tracemalloc

    bomb = _deflate_bomb(tmp_path, 1 << 30, keep_pixels=True)  # 1 GiB of trailing padding after the pixels
    tracemalloc.start()
    header = read_header(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (header.rows, header.columns, header.has_pixels) == (512, 512, True)
    assert peak < 32 << 20  # the header and the pixel data's start, not 256 MiB of inflated padding
    with pytest.raises(Exception, match="expands beyond 256.0 MiB"):
        load_series(default_image_series(scan(bomb)))  # decoding inflates it all: refused at the cap


def test_a_real_deflated_file_still_reads_and_decodes():
    path = data_path(*CT_DEFLATED)
    header = read_header(path)
    assert (header.rows, header.columns) == (512, 512)
    volume = load_series(default_image_series(scan(path)))
    reference = pydicom.dcmread(path)
    expected = reference.pixel_array * float(reference.RescaleSlope) + float(reference.RescaleIntercept)
    assert np.array_equal(volume.array[0], np.maximum(expected, -1024).astype(volume.array.dtype))


# --------------------------------------------------------------------------------------- decoder failures
def test_rle_frame_that_panics_the_rust_decoder_is_one_blank_slice_not_a_crash(tmp_path):
    from pydicom.encaps import encapsulate, generate_frames
    from rle.rle import decode_frame

    source = data_path("ts-pylibjpeg-data", "RLELossless", "emri_small_RLE.dcm")
    ds = pydicom.dcmread(source)
    n = int(ds.NumberOfFrames)
    frames = [bytes(f) for f in generate_frames(ds.PixelData, number_of_frames=n)]
    bad = bytearray(frames[3])
    bad[8] = 0xFE  # second segment's offset now points past its data: pylibjpeg-rle panics (Rust)
    with pytest.raises(BaseException) as panic:
        decode_frame(bytes(bad), ds.Rows * ds.Columns, ds.BitsAllocated, "<")
    assert not isinstance(panic.value, Exception)  # what `except Exception` missed
    frames[3] = bytes(bad)
    ds.PixelData = encapsulate(frames)
    ds.save_as(tmp_path / "rle.dcm")

    volume = load_series(default_image_series(scan(tmp_path)))
    (warning,) = [w for w in volume.warnings if w.code == "decode_failed"]
    assert warning.message.startswith(f"1 of {n} slices could not be decoded")
    reference = pydicom.dcmread(source).pixel_array
    for k in range(n):
        expected = np.zeros_like(reference[k]) if k == 3 else reference[k]
        assert np.array_equal(volume.array[k], expected), k


# ------------------------------------------------------------------------------------------------ geometry
def test_non_orthogonal_orientation_loads_with_a_warning_and_the_stored_affine(tmp_path):
    ds = pydicom.dcmread(data_path(*CT_NATIVE))
    ds.ImageOrientationPatient = [1, 0, 0, 0.2, 0.9797959, 0]  # column direction 78.5 degrees from the row
    ds.save_as(tmp_path / "skew.dcm")
    volume = load_series(default_image_series(scan(tmp_path)))
    (warning,) = [w for w in volume.warnings if w.code == "non_orthogonal"]
    assert "78.46° apart" in warning.message
    spacing = [float(v) for v in ds.PixelSpacing]
    assert np.allclose(volume.affine[:3, 1], np.array([0.2, 0.9797959, 0]) * spacing[0], atol=1e-6)
    plain = load_series(default_image_series(scan(data_path(*CT_NATIVE))))
    assert not [w for w in plain.warnings if w.code == "non_orthogonal"]


# ------------------------------------------------------------------------------------ codec size claims
def _with_first_frame(src: Path, out: Path, edit, index: int = 0) -> Path:
    from pydicom.encaps import encapsulate, generate_frames

    ds = pydicom.dcmread(src)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    frames = [bytearray(f) for f in generate_frames(ds.PixelData, number_of_frames=n)]
    edit(frames[index])
    ds.PixelData = encapsulate([bytes(f) for f in frames])
    ds.save_as(out)
    return out


def _set_sof(size: tuple[int, int]):
    def edit(frame: bytearray) -> None:
        at = next(i for i in range(len(frame) - 1) if frame[i] == 0xFF and frame[i + 1] in (0xC0, 0xC1, 0xC3, 0xF7))
        frame[at + 5:at + 9] = size[0].to_bytes(2, "big") + size[1].to_bytes(2, "big")
    return edit


@pytest.mark.parametrize("source, size, expected", [
    (("ts-pylibjpeg-data", "JPEGBaseline", "JPEGBaseline_1s_1f_u_08_08.dcm"), (65500, 65500), "65500 x 65500"),
    (("ts-pylibjpeg-data", "JPEGLS", "CT1_JLSN.dcm"), (65500, 65500), "65500 x 65500"),
    # A zero height made libjpeg loop forever (found by bench/fuzz.py).
    (("ts-pylibjpeg-data", "JPEGBaseline", "JPEGBaseline_1s_1f_u_08_08.dcm"), (0, 100),
     r"0 x 100 pixels \(a zero size\)"),
])
def test_compressed_frame_size_claims_are_refused_before_decoding(tmp_path, source, size, expected):
    path = _with_first_frame(data_path(*source), tmp_path / "claim.dcm", _set_sof(size))
    with pytest.raises(Exception, match=rf"a compressed frame declares {expected}") as info:
        load_series(default_image_series(scan(path)))
    assert type(info.value).__name__ == "DecodeError"


def test_a_size_claim_behind_stray_bytes_is_refused(tmp_path):
    # bench/fuzz.py seed 57: a bit flip turned the APP0 marker (FF E0) into 7F E0. The walk to the SOF stopped
    # there, but libjpeg skips to the next marker, read a 65500 x 65500 SOF and took 3.7 GB and 20 s.
    def edit(frame: bytearray) -> None:
        _set_sof((65500, 65500))(frame)
        assert frame[2:4] == b"\xff\xe0"
        frame[2] = 0x7F
    src = data_path("ts-cornerstone-ct", "CTImage.dcm_JPEGProcess14TransferSyntax_1.2.840.10008.1.2.4.57.dcm")
    path = _with_first_frame(src, tmp_path / "stray.dcm", edit)
    with pytest.raises(limits.SizeLimitError, match="a compressed frame declares 65500 x 65500 pixels"):
        limits.check_encapsulated_frames(pydicom.dcmread(path), 512, 512)  # first: on a regression the load hangs
    with pytest.raises(Exception, match="a compressed frame declares 65500 x 65500 pixels"):
        load_series(default_image_series(scan(path)))


def test_a_refused_frame_does_not_touch_its_slice_of_the_volume(tmp_path):
    """bench/fuzz.py seed 62: a header of 32768 x 65535 (within the 4 GiB cap) over a frame refused for its SOF's
    claim; blanking the failed slice wrote 4 GB of zeros before the load was refused. Measured in a child process:
    the refusal now costs no more than the imports."""
    import subprocess
    import sys

    path = _with_first_frame(data_path(*CT_JPEG_LS), tmp_path / "huge.dcm", _set_sof((65500, 65500)))
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = 32767  # 2 GiB of int16 declared
    ds.save_as(path)
    child = ("import resource, sys\n"
             "from viewer.core.dicom.catalog import default_image_series\n"
             "from viewer.core.dicom.load import load_series\n"
             "from viewer.core.dicom.scan import scan\n"
             "try:\n"
             "    load_series(default_image_series(scan(sys.argv[1])))\n"
             "except Exception as error:\n"
             "    print(error)\n"
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)\n")
    run = subprocess.run([sys.executable, "-c", child, str(path)], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[3])
    reason, peak = run.stdout.splitlines()[-2:]
    assert "a compressed frame declares 65500 x 65500 pixels but the header says 32767 x 32767" in reason
    assert int(peak) < 1 << 30, f"peak RSS {int(peak) / 2**30:.1f} GiB"


def test_j2k_siz_claim_is_refused(tmp_path):
    def edit(frame: bytearray) -> None:
        at = frame.find(b"\xff\x4f\xff\x51")
        frame[at + 8:at + 16] = (65500).to_bytes(4, "big") * 2  # Xsiz, Ysiz
    src = data_path("ts-pylibjpeg-data", "JPEG2000Lossless", "JPEG2KLossless_1s_1f_u_16_16.dcm")
    path = _with_first_frame(src, tmp_path / "siz.dcm", edit)
    with pytest.raises(Exception, match="a compressed frame declares 65500 x 65500 pixels"):
        load_series(default_image_series(scan(path)))


def test_damaged_jpeg_2000_is_not_handed_to_gdcm(tmp_path):
    # GDCM took 30 s and 3.9 GB on this truncated file before failing too (bench/fuzz.py, case m00200).
    raw = data_path("ts-cornerstone-ct",
                    "CTImage.dcm_JPEG2000LosslessOnlyTransferSyntax_1.2.840.10008.1.2.4.90.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(Exception, match="the data is damaged and no other decoder applies"):
        load_series(default_image_series(scan(tmp_path / "cut.dcm")))


def test_gdcm_gets_only_whole_jpeg_data(tmp_path):
    src = data_path("ts-cornerstone-ct", "CTImage.dcm_JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70.dcm")
    limits.check_gdcm_input(str(src), "1.2.840.10008.1.2.4.70", 512, 512)  # the real file passes
    raw = src.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(raw[:-5000])
    with pytest.raises(limits.SizeLimitError, match="cut short"):
        limits.check_gdcm_input(str(tmp_path / "cut.dcm"), "1.2.840.10008.1.2.4.70", 512, 512)


def test_a_zero_size_header_bounds_no_codestream(tmp_path):
    # bench/fuzz.py seed 39: Columns 0 skipped the SOF check, and libjpeg allocated 5.9 GB for its 65500 x 65500.
    src = data_path("ts-cornerstone-ct", "CTImage.dcm_JPEGProcess14TransferSyntax_1.2.840.10008.1.2.4.57.dcm")
    path = _with_first_frame(src, tmp_path / "zero.dcm", _set_sof((65500, 65500)))
    ds = pydicom.dcmread(path)
    ds.Columns = 0
    ds.save_as(path)
    with pytest.raises(Exception, match=r"the header declares 512 x 0 pixels \(a zero size\)"):
        load_series(default_image_series(scan(path)))


@pytest.mark.parametrize("damage", ["cut", "encapsulated"])
def test_gdcm_gets_only_whole_uncompressed_data(tmp_path, damage):
    """GDCM took 2.0-2.2 GB (bench/fuzz.py seed 38) on native pixel data cut short, and on fragments under a
    native transfer syntax: neither reaches it; whole native data still may."""
    native = data_path(*CT_NATIVE)
    limits.check_gdcm_input(str(native), "1.2.840.10008.1.2.1", 512, 512, 512 * 512 * 2)  # the real file passes
    if damage == "cut":
        ds = pydicom.dcmread(native)
        ds.PixelData = ds.PixelData[: len(ds.PixelData) * 4 // 5]
    else:
        ds = pydicom.dcmread(data_path("ts-cornerstone-ct",
                                       "CTImage.dcm_RLELosslessTransferSyntax_1.2.840.10008.1.2.5.dcm"))
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.save_as(tmp_path / "damaged.dcm")
    with pytest.raises(limits.SizeLimitError, match="uncompressed pixel data is cut short or encapsulated"):
        limits.check_gdcm_input(str(tmp_path / "damaged.dcm"), "1.2.840.10008.1.2.1", 512, 512, 512 * 512 * 2)


def test_gdcm_never_reads_past_an_element_of_unknown_vr(tmp_path):
    """bench/fuzz.py seed 50: an "SL" flipped to "QL" in an explicit-VR MR made pydicom fail and GDCM take 5.7 GB
    guessing the element's length (a second flip, PixelRepresentation 0 -> 128, made pydicom fail). Such a
    file is refused with the reason; the file without the flips passes."""
    src = data_path("mr-decubitus-hfdr", "2_t1_fl2d_sag",
                    "0002_1.3.12.2.1107.5.2.43.67060.2022040715140277393763189.dcm")
    raw = src.read_bytes()
    limits.check_gdcm_input(str(src), "1.2.840.10008.1.2.1", 256, 256, 256 * 256 * 2)  # the real file passes
    vr = raw.index(b"\x19\x00\x13\x10SL") + 4  # (0019,1013), a Siemens private SL
    sign = raw.index(b"\x28\x00\x03\x01US\x02\x00\x00\x00") + 8  # PixelRepresentation 0
    flipped = bytearray(raw)
    flipped[vr:vr + 2], flipped[sign] = b"QL", 0x80
    (tmp_path / "flipped.dcm").write_bytes(flipped)
    with pytest.raises(limits.SizeLimitError, match="an element of unknown VR"):
        limits.check_gdcm_input(str(tmp_path / "flipped.dcm"), "1.2.840.10008.1.2.1", 256, 256, 256 * 256 * 2)
    with pytest.raises(Exception, match="an element of unknown VR"):
        load_series(default_image_series(scan(tmp_path / "flipped.dcm")))


def _nested_inside_a_defined_item(levels: int) -> bytes:
    """A private sequence whose one item, of defined length, holds ``levels`` undefined-length sequences nested."""
    open_level = b"\x09\x00\x00\x10SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    close_level = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    inner = open_level * levels + close_level * levels
    item = b"\xfe\xff\x00\xe0" + len(inner).to_bytes(4, "little") + inner
    return b"\x09\x00\x00\x10SQ\x00\x00\xff\xff\xff\xff" + item + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def test_gdcm_never_gets_a_header_nesting_sequences_deep(tmp_path):
    """bench/fuzz.py seed 77: GDCM's header parse is exponential in the undefined-length sequences nested inside an
    element of defined length (0.9 s at 10 levels, 19 s at 12, a hang at 20). A damaged JPEG Lossless (Samples per
    Pixel 3 over a grey codestream, which pydicom cannot decode) with 12 such levels is refused with the reason,
    before GDCM; the same file without them goes to GDCM. (The check is asserted first: on a regression the load
    below would hang.)"""
    ds = pydicom.dcmread(data_path("ts-pylibjpeg-data", "JPEGLossless", "JPEGLossless_1s_1f_i_16_16_bad.dcm"))
    ds.SamplesPerPixel = 3
    ds.private_block(0x0009, "FUZZ", create=True).add_new(0x01, "LO", "PLACEHOLDER")
    ds.save_as(tmp_path / "flat.dcm")
    placeholder = b"\x09\x00\x01\x10LO\x0c\x00PLACEHOLDER "
    raw = (tmp_path / "flat.dcm").read_bytes()
    nested = tmp_path / "nested" / "nested.dcm"
    nested.parent.mkdir()
    nested.write_bytes(raw.replace(placeholder, _nested_inside_a_defined_item(12)))
    gdcm_input = (ds.file_meta.TransferSyntaxUID, ds.Rows, ds.Columns)
    limits.check_gdcm_input(str(tmp_path / "flat.dcm"), *gdcm_input)  # passes without the nest
    assert len(pydicom.dcmread(nested)[0x00091000].value) == 1  # a valid data set, which pydicom reads
    with pytest.raises(limits.SizeLimitError, match="nests sequences more than 8 levels deep"):
        limits.check_gdcm_input(str(nested), *gdcm_input)
    with pytest.raises(Exception, match="nests sequences more than 8 levels deep"):
        load_series(default_image_series(scan(nested.parent)))


def test_gdcm_never_reads_a_file_meta_element_of_unknown_vr(tmp_path):
    """bench/fuzz.py seed 95: a 16 x 16 CR whose file meta's "SH" flipped to "RH", and whose photometric
    interpretation flipped to "]ONOCHROME1" (so pydicom failed): GDCM took 1.4 GB guessing that element's length.
    Our tag reader declined the meta, and pydicom, which reads it, let the file through."""
    src = data_path("dicomdir-pydicom", "77654033", "CR3", "6278")
    limits.check_gdcm_input(str(src), "1.2.840.10008.1.2.1", 16, 16, 16 * 16 * 2)  # the real file passes
    raw = src.read_bytes()
    assert raw.count(b"\x02\x00\x13\x00SH") == 1  # (0002,0013) ImplementationVersionName
    flipped = raw.replace(b"\x02\x00\x13\x00SH", b"\x02\x00\x13\x00RH").replace(b"MONOCHROME1", b"]ONOCHROME1")
    (tmp_path / "flipped.dcm").write_bytes(flipped)
    with pytest.raises(limits.SizeLimitError, match="an element of unknown VR"):
        limits.check_gdcm_input(str(tmp_path / "flipped.dcm"), "1.2.840.10008.1.2.1", 16, 16, 16 * 16 * 2)
    with pytest.raises(Exception, match="an element of unknown VR"):
        load_series(default_image_series(scan(tmp_path / "flipped.dcm")))


def test_gdcm_never_gets_a_palette_colour_image(tmp_path):
    """bench/fuzz.py seed 68: a Philips map turned PALETTE COLOR without a palette; pydicom failed and GDCM took
    2.4 GB. Refused with the reason, before GDCM."""
    ds = pydicom.dcmread(data_path("enh-multiframe", "dcm_qa_enh", "In", "Philips", "IM_0027_fMAP.dcm"))
    frame_bytes = ds.Rows * ds.Columns * 2
    limits.check_gdcm_input(str(ds.filename), "1.2.840.10008.1.2.1", ds.Rows, ds.Columns,
                            frame_bytes * int(ds.NumberOfFrames), "MONOCHROME2")  # the real file passes
    ds.PhotometricInterpretation = "PALETTE COLOR"
    ds.save_as(tmp_path / "palette.dcm")
    with pytest.raises(limits.SizeLimitError, match="palette colour data that pydicom cannot read"):
        limits.check_gdcm_input(str(tmp_path / "palette.dcm"), "1.2.840.10008.1.2.1", ds.Rows, ds.Columns,
                                frame_bytes * int(ds.NumberOfFrames), "PALETTE COLOR")
    with pytest.raises(Exception, match="palette colour data that pydicom cannot read"):
        load_series(default_image_series(scan(tmp_path / "palette.dcm")))


def test_a_jp2_box_of_length_zero_is_refused_before_the_decoder(tmp_path):
    # bench/fuzz.py seed 44: the 'ftyp' box's length cut to 12 put a box of length 0 in front of the codestream,
    # and pydicom's JP2 header walk stepped by 0 forever. (The check is asserted first: on a regression the load
    # below would hang.)
    src = data_path("ts-pylibjpeg-data", "JPEG2000Lossless", "GDCMJ2K_TextGBR.dcm")
    ds = pydicom.dcmread(src)
    limits.check_encapsulated_frames(ds, ds.Rows, ds.Columns)  # the real file passes

    def edit(frame: bytearray) -> None:
        assert frame[12:24] == b"\x00\x00\x00\x1cftypjp2 "
        frame[15] = 12
    path = _with_first_frame(src, tmp_path / "jp2.dcm", edit)
    with pytest.raises(limits.SizeLimitError, match="a JPEG 2000 header box declares 0 bytes"):
        limits.check_encapsulated_frames(pydicom.dcmread(path), ds.Rows, ds.Columns)
    with pytest.raises(Exception, match="a JPEG 2000 header box declares 0 bytes"):
        load_series(default_image_series(scan(path)))


def test_a_lying_second_frame_keeps_every_frame_of_the_file_from_the_decoder(tmp_path):
    # Found by bench/fuzz.py: the first frame's refusal left the dataset cached, and libjpeg then hung on
    # frame 2's SOF (65500 x 65500).
    src = data_path("ts-pylibjpeg-data", "JPEGLosslessSV1", "JPEGLosslessP14SV1_3s_2f_u_08_08.dcm")
    path = _with_first_frame(src, tmp_path / "two.dcm", _set_sof((65500, 65500)), index=1)
    with pytest.raises(Exception, match="a compressed frame declares 65500 x 65500 pixels"):
        load_series(default_image_series(scan(path)), workers=1)


def test_the_cap_holds_when_a_volume_is_promoted_to_float32(tmp_path, monkeypatch):
    ds = pydicom.dcmread(data_path(*CT_NATIVE))
    ds.RescaleIntercept = "40000"  # integral, so int16 is chosen; the values do not fit: promoted to float32
    ds.save_as(tmp_path / "half.dcm")
    catalog = scan(tmp_path)
    monkeypatch.setenv(limits.ENV_MAX_SERIES_BYTES, str(512 * 512 * 3))  # int16 fits, float32 does not
    with pytest.raises(Exception, match=r"needs 1.0 MiB, above the 768.0 KiB limit"):
        load_series(default_image_series(catalog))
    monkeypatch.setenv(limits.ENV_MAX_SERIES_BYTES, "1M")
    assert load_series(default_image_series(catalog)).array.dtype == np.float32


def test_a_jpeg_precision_beyond_16_bits_never_reaches_a_decoder(tmp_path):
    # Found by bench/fuzz.py (seed 11): a 144-bit lossless JPEG made GDCM crash the process (SIGSEGV).
    def edit(frame: bytearray) -> None:
        at = frame.index(b"\xff\xc3")
        frame[at + 4] = 144
    src = data_path("ts-cornerstone-ct", "CTImage.dcm_JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70.dcm")
    path = _with_first_frame(src, tmp_path / "p144.dcm", edit)
    with pytest.raises(Exception, match="a compressed frame declares 144-bit samples"):
        load_series(default_image_series(scan(path)))


@pytest.mark.parametrize("slope, intercept, expected", [
    ("NaN", "-1024", (1.0, -1024.0)),  # every voxel was NaN: a blank image
    ("1", "inf", (1.0, 0.0)),
    ("1e300", "0", (1.0, 0.0)),  # every voxel was infinite in float32
    ("0", "-1024", (1.0, -1024.0)),  # not allowed; writers mean 1 (it was read so, silently)
])
def test_an_unusable_rescale_is_replaced_and_said(tmp_path, slope, intercept, expected):
    """One slice of three LIDC slices declares a rescale no modality value needs. It is read as slope 1 (and
    intercept 0 where that is the unusable part), the other slices keep theirs, and a warning names the count."""
    sources = sorted(data_path("lidc-idri-0001").rglob("*.dcm"))[:3]
    for k, source in enumerate(sources):
        ds = pydicom.dcmread(source)
        if k == 1:
            ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.save_as(tmp_path / f"{k}.dcm")
    bad = pydicom.dcmread(tmp_path / "1.dcm")
    volume = load_series(default_image_series(scan(tmp_path)))
    assert np.isfinite(volume.array).all()
    z = next(k for k, uid in enumerate(volume.slice_sop_uids) if uid == bad.SOPInstanceUID)
    stored = bad.pixel_array.astype(np.float64)
    assert np.array_equal(volume.array[z], np.maximum(stored * expected[0] + expected[1], -1024))  # CT: air floor
    (warning,) = [w for w in volume.warnings if w.code == "rescale_replaced"]
    assert warning.message.startswith("1 of 3 slices declare an unusable RescaleSlope/Intercept")


def test_a_codestream_smaller_than_the_header_says_so(tmp_path):
    """bench/fuzz.py seed 86: Columns raised to 65535 over a 512 x 512 JPEG Lossless frame. A codestream smaller than
    the header is no allocation risk, so it is decoded, but it cannot fill the slice: the refusal said "operands
    could not be broadcast together with shapes (512,512) () (512,65535)"."""
    ds = pydicom.dcmread(data_path("ts-pylibjpeg-data", "JPEGLossless", "JPEGLossless_1s_1f_u_16_12.dcm"))
    rows, columns = ds.Rows, ds.Columns
    ds.Columns = 2 * columns
    ds.save_as(tmp_path / "wider.dcm")
    with pytest.raises(Exception, match=rf"a decoded frame is {rows} x {columns} pixels but the header says "
                                        rf"{rows} x {2 * columns}"):
        load_series(default_image_series(scan(tmp_path / "wider.dcm")))


def test_values_beyond_bits_stored_are_cleared_and_said(tmp_path):
    """Two of three LIDC slices (12-bit data in 16-bit words) declare BitsStored 8 and HighBit 7: their high bits are
    cleared, as the standard says, which wraps the CT into nonsense. That loaded without a word; the warning now
    names the slices and the BitsStored, and the honest slice is untouched."""
    sources = sorted(data_path("lidc-idri-0001").rglob("*.dcm"))[:3]
    for k, source in enumerate(sources):
        ds = pydicom.dcmread(source)
        if k:
            ds.BitsStored, ds.HighBit = 8, 7
        ds.save_as(tmp_path / f"{k}.dcm")
    honest = pydicom.dcmread(tmp_path / "0.dcm")
    volume = load_series(default_image_series(scan(tmp_path)))
    (warning,) = [w for w in volume.warnings if w.code == "bits_cleared"]
    assert warning.message.startswith("2 of 3 slices hold values beyond their BitsStored (8 bits)")
    z = volume.slice_sop_uids.index(honest.SOPInstanceUID)
    expected = honest.pixel_array * float(honest.RescaleSlope) + float(honest.RescaleIntercept)
    assert np.array_equal(volume.array[z], np.maximum(expected, -1024))
    assert not [w for w in load_series(default_image_series(scan(sources[0].parent))).warnings
                if w.code == "bits_cleared"]
