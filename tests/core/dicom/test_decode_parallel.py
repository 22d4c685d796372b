"""The compressed-series speed path: direct codecs, encapsulated frames cut from the file, worker processes.

Every decode is compared with pydicom's (``pixel_array`` through our pydicom route), frame by frame, for every
transfer syntax in ../shared/data; a LIDC-IDRI-0001 subset is re-encoded here with pydicom and must load
identically to the original through the serial and the process paths; cancelling mid-load leaves no process
behind; slice 0 is in the volume before later slices are decoded.
"""
from __future__ import annotations

import multiprocessing
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from tests.conftest import DATA, data_path
from viewer.core.dicom import codecs
from viewer.core.dicom.decode import FrameSource, read_pixel_header
from viewer.core.dicom.decode_pool import MIN_FRAME_SECONDS, worth_processes
from viewer.core.dicom.encapsulated import EncapsulatedFrames, FrameLayoutError
from viewer.core.dicom.load import iter_load, load_series
from viewer.core.dicom.scan import scan
from viewer.core.dicom.tags import read_tags
from viewer.core.jobs import Cancelled, CancelToken


def _encapsulated_files() -> list[Path]:
    """Every encapsulated-syntax file under ../shared/data/ts-* (empty when the data is absent)."""
    found = []
    for path in sorted(DATA.glob("ts-*/**/*")) if DATA.exists() else []:
        if not path.is_file() or path.suffix in (".txt", ".rst", ".md") or path.name == "LICENSE":
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - not DICOM
            continue
        syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
        if syntax is not None and syntax.is_encapsulated and "PixelData" in pydicom.dcmread(path):
            found.append(path)
    return found


ENCAPSULATED = _encapsulated_files()


def _pydicom_stored(path: Path, index: int) -> np.ndarray:
    source = FrameSource(str(path))
    source.route = "pydicom"  # the reference: pydicom's own plugin choice and corrections
    return source.decoded(index)


# ---------------------------------------------------------------------------- every syntax vs pydicom
@pytest.mark.parametrize("path", ENCAPSULATED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_frame_matches_pydicom(path):
    source = FrameSource(str(path))
    for index in range(source.header.number_of_frames):
        try:
            expected = _pydicom_stored(path, index)
        except Exception as error:  # noqa: BLE001 - pydicom cannot either: nothing to compare with
            pytest.skip(f"pydicom cannot decode it ({type(error).__name__})")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = source.decoded(index)
        assert got.dtype == expected.dtype and got.shape == expected.shape, (source.route, got.dtype, got.shape)
        assert np.array_equal(got, expected), f"frame {index} differs from pydicom (route {source.route})"


def _cornerstone(name_part: str) -> Path:
    folder = data_path("ts-cornerstone-ct")
    matches = [p for p in folder.iterdir() if name_part in p.name]
    assert len(matches) == 1, matches
    return matches[0]


@pytest.mark.parametrize("name_part, decoder", [
    ("RLELossless", "pylibjpeg-rle"),
    ("JPEGLSLosslessTransferSyntax", "pyjpegls"),
    ("JPEGLSLossyTransferSyntax", "pyjpegls"),
    ("JPEG2000LosslessOnly", "openjpeg"),
    ("JPEG2000TransferSyntax", "openjpeg"),
    ("JPEGProcess14TransferSyntax", "libjpeg"),
    ("JPEGProcess14SV1", "libjpeg"),
])
def test_the_fastest_decoder_takes_the_real_ct(name_part, decoder):
    # The equality test above passes even if every frame fell back to pydicom: here the direct route must work.
    path = _cornerstone(name_part)
    header = read_pixel_header(str(path))
    assert header.encapsulated_offset is not None, "the header should come from the tag walker"
    data = EncapsulatedFrames(str(path), header.encapsulated_offset, header.number_of_frames).frame(0)
    arr, used = codecs.decode_frame(data, header)
    assert used == decoder == codecs.decoders_for(header.transfer_syntax)[0]
    assert np.array_equal(arr, _pydicom_stored(path, 0))
    assert FrameSource(str(path), header).route == "codec"


@pytest.mark.parametrize("name_part", ["RLELossless", "JPEGLSLosslessTransferSyntax", "JPEGLSLossyTransferSyntax",
                                       "JPEG2000LosslessOnly", "JPEG2000TransferSyntax", "JPEGProcess14SV1"])
def test_every_ranked_decoder_agrees_with_pydicom(name_part):
    # The fallbacks (e.g. libjpeg for JPEG-LS when pyjpegls is missing) must be as right as the first choice.
    path = _cornerstone(name_part)
    header = read_pixel_header(str(path))
    data = EncapsulatedFrames(str(path), header.encapsulated_offset, 1).frame(0)
    expected = _pydicom_stored(path, 0)
    installed = codecs.decoders_for(header.transfer_syntax)
    assert installed
    for name, _module, decoder in codecs.RANKED[header.transfer_syntax]:
        if name in installed:
            assert np.array_equal(decoder(data, header), expected), name


def test_undecidable_fragments_fall_back_to_pydicom():
    # Two frames in 11 fragments and no offset table: only JPEG-marker heuristics (pydicom's) can split them.
    path = _cornerstone("fragmented_no_bot")
    tags = read_tags(str(path), {}, set())
    with pytest.raises(FrameLayoutError, match="no usable offset table"):
        EncapsulatedFrames(str(path), tags.pixel_offset, int(pydicom.dcmread(path).NumberOfFrames))


# ------------------------------------------------------------------------------------ encapsulated
def _write_encapsulated(path: Path, fragments_per_frame: list[list[bytes]], *, with_table: bool) -> int:
    """A minimal RLE file whose PixelData holds the given fragments; returns the value offset."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    frames = [b"".join(f) for f in fragments_per_frame]
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.NumberOfFrames = len(frames)
    if with_table:
        ds.PixelData = encapsulate(frames, fragments_per_frame=1, has_bot=True)
    else:
        items = b"".join(b"\xfe\xff\x00\xe0" + len(f).to_bytes(4, "little") + f for f in frames)
        ds.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + items + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    assert ExplicitVRLittleEndian  # (imported for the reader's benefit: RLE data sets are explicit VR LE)
    raw = path.read_bytes()
    return raw.index(b"\xe0\x7f\x10\x00") + 12  # tag, VR OB, 2 reserved bytes, 4-byte length


def test_frames_by_offset_table_and_one_fragment_per_frame(tmp_path):
    frames = [[b"first frame!"], [b"second frame"], [b"3rd."]]
    offset = _write_encapsulated(tmp_path / "bot.dcm", frames, with_table=True)
    got = EncapsulatedFrames(str(tmp_path / "bot.dcm"), offset, 3)
    assert [got.frame(i) for i in range(3)] == [b"first frame!", b"second frame", b"3rd."]
    offset = _write_encapsulated(tmp_path / "nobot.dcm", frames, with_table=False)
    got = EncapsulatedFrames(str(tmp_path / "nobot.dcm"), offset, 3)
    assert got.frame(2) == b"3rd."
    with pytest.raises(IndexError):
        got.frame(3)


def test_a_fragment_past_the_end_of_the_file_is_refused(tmp_path):
    path = tmp_path / "cut.dcm"
    offset = _write_encapsulated(path, [[b"x" * 4000]], with_table=False)
    path.write_bytes(path.read_bytes()[: offset + 8 + 8 + 100])  # the fragment claims 4000 bytes, 100 remain
    with pytest.raises(FrameLayoutError, match="past the end"):
        EncapsulatedFrames(str(path), offset, 1)


# --------------------------------------------------------------------------- LIDC re-encoded, in processes
SUBSET = 14


@pytest.fixture(scope="module")
def lidc_subset(tmp_path_factory):
    """The first SUBSET LIDC-IDRI-0001 slices: the original and three lossless re-encodes (pydicom)."""
    files = sorted(data_path("lidc-idri-0001").rglob("*.dcm"))[:SUBSET]
    root = tmp_path_factory.mktemp("lidc_codecs")
    folders = {}
    for name, syntax in (("native", None), ("rle", RLELossless), ("jpeg-ls", JPEGLSLossless),
                         ("jpeg2000", JPEG2000Lossless)):
        folder = root / name
        folder.mkdir()
        for path in files:
            ds = pydicom.dcmread(path)
            if syntax is not None:
                ds.compress(syntax)
            ds.save_as(folder / path.name, enforce_file_format=True)
        folders[name] = folder
    return folders


@pytest.mark.parametrize("syntax", ["rle", "jpeg-ls", "jpeg2000"])
def test_lidc_reencoded_loads_identically_serial_and_in_processes(lidc_subset, syntax):
    original = load_series(scan(lidc_subset["native"]).all_series()[0]).array
    series = scan(lidc_subset[syntax]).all_series()[0]
    serial = load_series(series, processes=0, workers=1)
    parallel = load_series(series, processes=2)
    assert original.shape == (SUBSET, 512, 512) and original.dtype == np.int16
    assert np.array_equal(serial.array, original)
    assert np.array_equal(parallel.array, original)
    assert not multiprocessing.active_children(), "the decoding processes outlived the load"


def test_first_slice_is_in_the_volume_before_the_rest(lidc_subset):
    series = scan(lidc_subset["jpeg2000"]).all_series()[0]
    job = iter_load(series, processes=2)
    first = next(job)
    assert first.done == 0
    progress = next(job)
    volume = progress.payload
    assert progress.done >= 1 and volume.slices_loaded >= 1
    # axial CT opens at image 1 (the head end = the array's last slice here): that one is decoded first
    first_z, far_z = (-1, 0) if volume.loads_from_top else (0, -1)
    opening = volume.array[first_z].copy()
    assert opening.any(), "the opening slice should be decoded at the first progress step"
    assert not volume.array[far_z].any(), "the far end should still be pending at the first progress step"
    for _ in job:
        pass
    final = load_series(scan(lidc_subset["native"]).all_series()[0]).array
    assert np.array_equal(opening, final[first_z])


def test_cancel_mid_load_stops_the_processes(lidc_subset):
    series = scan(lidc_subset["jpeg2000"]).all_series()[0]
    cancel = CancelToken()
    job = iter_load(series, cancel, processes=2)
    seen = 0
    with pytest.raises(Cancelled):
        for progress in job:
            seen = progress.done
            if progress.done >= 3:
                cancel.cancel()
    assert 3 <= seen < SUBSET
    assert not multiprocessing.active_children(), "cancelled load left decoding processes running"


# --------------------------------------------------------------------------------------- the decision
def test_processes_only_when_the_measured_time_pays_for_them():
    assert worth_processes(0.03, 131, 2)  # JPEG 2000 CT: 30 ms a slice, 131 to go
    assert not worth_processes(MIN_FRAME_SECONDS / 2, 10_000, 2)  # RLE: the hand-off costs more than the codec
    assert not worth_processes(0.01, 3, 2)  # three slices: start-up dominates
    assert not worth_processes(0.03, 131, 1)  # one core: nothing to share


# A GUI-like process: the load runs on a worker thread beside another thread, so fork is unsafe and the pool
# must come from the forkserver - which re-imports __main__, hence only under our own (guarded) entry point.
_GUI_LIKE = r'''
import sys, threading, time
import numpy as np
from viewer.core.dicom import decode_pool
from viewer.core.dicom.load import load_series
from viewer.core.dicom.scan import scan


def main():
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()  # as Qt's threads would be
    series = scan(sys.argv[1]).all_series()[0]
    out = {}
    worker = threading.Thread(target=lambda: out.update(
        method=decode_pool.start_method(), volume=load_series(series, processes=2)))
    worker.start()
    worker.join()
    serial = load_series(series, processes=0, workers=1)
    print(out["method"], np.array_equal(out["volume"].array, serial.array))


if __name__ == "__main__":
    main()
'''


@pytest.mark.parametrize("script_name, expected", [("hounsfield", "forkserver True"), ("other_tool.py", "None True")])
def test_a_multithreaded_caller_uses_the_forkserver_only_under_our_entry_point(lidc_subset, tmp_path, script_name,
                                                                                 expected):
    import subprocess
    import sys

    script = tmp_path / script_name
    script.write_text(_GUI_LIKE)
    done = subprocess.run([sys.executable, str(script), str(lidc_subset["jpeg-ls"])], capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == expected, done.stderr[-2000:]


def test_multiframe_colour_and_32_bit_series_load_the_same_in_processes():
    # Not just grey CT: an RGB RLE cine (10 frames), a grey RLE MR (10) and a 32-bit RT dose (15 frames, float32
    # volume) go through worker processes - pydicom's route there - and must equal the inline load.
    series = [s for s in scan(data_path("ts-pylibjpeg-data")).all_series() if s.kind == "image" and s.n_frames >= 3]
    kinds = set()
    for s in series:
        inline = load_series(s, processes=0, workers=1).array
        parallel = load_series(s, processes=2).array
        assert parallel.dtype == inline.dtype and np.array_equal(parallel, inline), s.key
        kinds.add(str(inline.dtype) + ("rgb" if inline.ndim == 4 else ""))
    assert {"uint8rgb", "int16", "float32"} <= kinds, kinds


def test_a_damaged_frame_fails_alone_in_its_worker_batch(lidc_subset, tmp_path):
    # Batches of slices go to each worker: one undecodable frame must cost only its own slice, as inline.
    import shutil

    folder = tmp_path / "damaged"
    shutil.copytree(lidc_subset["jpeg-ls"], folder)
    victim = sorted(folder.glob("*.dcm"))[5]
    raw = bytearray(victim.read_bytes())
    at = raw.index(b"\xff\xf7", read_pixel_header(str(victim)).encapsulated_offset)
    raw[at:at + 2] = b"\x00\x00"  # no JPEG-LS frame header: no decoder can read it
    victim.write_bytes(bytes(raw))
    original = load_series(scan(lidc_subset["native"]).all_series()[0]).array
    series = scan(folder).all_series()[0]
    bad = next(z for z, uid in enumerate(load_series(series, processes=0, workers=1).slice_sop_uids)
               if uid == pydicom.dcmread(victim, stop_before_pixels=True).SOPInstanceUID)
    for kw in ({"processes": 2}, {"processes": 0, "workers": 1}):
        volume = load_series(series, **kw)
        assert [w.code for w in volume.warnings].count("decode_failed") == 1, kw
        assert not volume.array[bad].any(), kw
        keep = np.arange(SUBSET) != bad
        assert np.array_equal(volume.array[keep], original[keep]), kw


def test_shared_memory_plan_stays_bounded():
    from viewer.core.dicom.decode_pool import MAX_SHARED_BYTES, plan_slots

    assert plan_slots(2, 512 * 512 * 2) == (16, 4)  # CT: two batches of 4 in flight per worker
    slots, batch = plan_slots(8, 4096 * 4096 * 2)  # 32 MB mammography frames: batches shrink to fit
    assert batch == 1 and slots * 4096 * 4096 * 2 <= MAX_SHARED_BYTES


def test_a_worker_killed_mid_load_costs_no_slice(lidc_subset, caplog):
    # A codec that crashes (or the OS killing a worker) breaks the pool: the frames it held are decoded each in
    # a process of its own, a fresh pool takes the rest, and the loader itself never runs the crashing decode.
    import os
    import signal

    original = load_series(scan(lidc_subset["native"]).all_series()[0]).array
    series = scan(lidc_subset["jpeg2000"]).all_series()[0]
    job = iter_load(series, processes=2)
    killed = None
    try:
        while True:
            progress = next(job)
            workers = multiprocessing.active_children()
            if killed is None and progress.done >= 2 and workers:
                killed = workers[0].pid
                os.kill(killed, signal.SIGKILL)
    except StopIteration as stop:
        volume = stop.value
    assert killed is not None, "no worker process to kill"
    assert "a decoding process died" in caplog.text, "the kill should have broken the pool"
    assert np.array_equal(volume.array, original)
    assert not [w for w in volume.warnings if w.code == "decode_failed"]
    assert not multiprocessing.active_children()
