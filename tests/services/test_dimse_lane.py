"""The lean receive lane of a DIMSE retrieve: its wire encoding against pynetdicom's, byte-identical files by both
routes with and without it, hand-over to pynetdicom, and the retrieve plan's fallbacks (stale counts, classes of
the study that are not in the series, a final response carrying the failed instances)."""
from __future__ import annotations

import io
import struct
import threading
import time
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pynetdicom import AE, evt
from pynetdicom.dimse_messages import C_STORE_RSP as StoreRspMessage
from pynetdicom.dimse_primitives import C_STORE

from inference.jobs import run_job
from tests.conftest import data_path
from tests.services.orthanc import free_port
from tests.services.test_dimse import FIND, GET, LIDC_SERIES, LIDC_STUDY, dimse_node
from viewer.services.pacs import dimse_lane
from viewer.services.pacs.cache import RetrieveCache
from viewer.services.pacs.dimse import DimseClient
from viewer.services.pacs.dimse_lane import decode_command, encode_command, pdata_pdus
from viewer.services.pacs.dimse_storage import Receiver, StorageServer
from viewer.services.pacs.model import PacsError

CT = "1.2.840.10008.5.1.4.1.1.2"


def data_set_bytes(data: bytes) -> bytes:
    """A Part 10 file's bytes after its File Meta Information."""
    pos = 132
    while True:
        group, _, vr = struct.unpack_from("<HH2s", data, pos)
        if group != 2:
            return data[pos:]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT"):
            pos += 12 + struct.unpack_from("<I", data, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", data, pos + 6)[0]


# -- wire encoding ----------------------------------------------------------------------------------------------------
def test_a_c_store_response_is_encoded_as_pynetdicom_does():
    primitive = C_STORE()
    primitive.MessageIDBeingRespondedTo = 7
    primitive.AffectedSOPClassUID = CT
    primitive.AffectedSOPInstanceUID = "1.2.3.45"
    primitive.Status = 0xA700
    message = StoreRspMessage()
    message.primitive_to_message(primitive)
    (pdata,) = message.encode_msg(5, 0)
    ((context_id, fragment),) = pdata.presentation_data_value_list
    ours = encode_command({0x0002: dimse_lane.ui(CT), 0x0100: dimse_lane.us(0x8001),
                           0x0120: dimse_lane.us(7), 0x0800: dimse_lane.us(0x0101), 0x0900: dimse_lane.us(0xA700),
                           0x1000: dimse_lane.ui("1.2.3.45")})
    assert context_id == 5 and fragment[0] == 0x03 and bytes(fragment[1:]) == ours
    assert decode_command(ours)[0x0900] == struct.pack("<H", 0xA700)
    with pytest.raises(dimse_lane.LaneError):
        decode_command(ours[:-3])


def test_messages_are_fragmented_to_the_peer_maximum_pdu():
    command, data = b"c" * 100, bytes(range(256)) * 40
    pdus = pdata_pdus(3, command, data, 1000)
    assert all(len(pdu) <= 1000 + 6 for pdu in pdus)
    seen = {0: b"", 1: b""}
    for index, pdu in enumerate(pdus):
        kind, length = struct.unpack_from(">BxI", pdu)
        item_length, context_id, control = struct.unpack_from(">IBB", pdu, 6)
        assert kind == 4 and length == len(pdu) - 6 == item_length + 4 and context_id == 3
        seen[control & 1] += pdu[12:]
        last_of_its_part = index == len(pdus) - 1 or (control & 1 and not pdus[index + 1][11] & 1)
        assert bool(control & 2) == bool(last_of_its_part)
    assert seen == {1: command, 0: data}
    assert len(pdata_pdus(3, command, data, 0)) == 2  # unlimited: one PDU each


# -- against Orthanc --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["c-get", "c-move"])
def test_retrieved_files_hold_the_data_sets_byte_for_byte(orthanc, our_storage_port, tmp_path, route, lane,
                                                          monkeypatch):
    made = []
    original_init = dimse_lane.Lane.__init__

    def counting_init(self, *args, **kwargs):
        made.append(self)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(dimse_lane.Lane, "__init__", counting_init)
    client = DimseClient(dimse_node(orthanc.dicom_port, storage_port=our_storage_port, route=route))
    result = run_job(client.retrieve(LIDC_STUDY, LIDC_SERIES, RetrieveCache(tmp_path / "cache")))
    originals = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p
                 for p in data_path("lidc-idri-0001").rglob("*.dcm")}
    files = sorted(result.series_dirs[LIDC_SERIES].iterdir())
    assert len(files) == len(originals) == result.n_instances == 133
    for path in files:
        assert data_set_bytes(path.read_bytes()) == data_set_bytes(originals[path.stem].read_bytes()), path.name
        header = pydicom.dcmread(path, stop_before_pixels=True)
        assert header.file_meta.MediaStorageSOPInstanceUID == header.SOPInstanceUID == path.stem
    # the lane took the retrieve's association (and, for a C-MOVE, our storage SCP's) - or was never tried
    assert len(made) == ((2 if route == "c-move" else 1) if lane else 0)
    assert all(lane_.received == (133 if route == "c-get" or lane_.receiver else 0) for lane_ in made)


@pytest.mark.parametrize("route", ["c-get", "c-move"])
def test_a_retrieve_leaves_no_thread_behind(orthanc, our_storage_port, tmp_path, route, lane):
    before = {thread.ident for thread in threading.enumerate()}
    client = DimseClient(dimse_node(orthanc.dicom_port, storage_port=our_storage_port, route=route))
    run_job(client.retrieve(LIDC_STUDY, LIDC_SERIES, RetrieveCache(tmp_path / "cache")))
    deadline = time.monotonic() + 0.5
    while (left := [t.name for t in threading.enumerate() if t.ident not in before]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert left == []


# -- our storage SCP's lane hands over to pynetdicom ------------------------------------------------------------------
def test_the_storage_scp_lane_hands_other_services_to_pynetdicom(tmp_path):
    paths = sorted(data_path("lidc-idri-0001").rglob("*.dcm"))[:3]
    datasets = [pydicom.dcmread(p) for p in paths]
    cache = RetrieveCache(tmp_path / "cache")
    port = free_port()
    with cache.staging() as staging:
        receiver = Receiver(staging, datasets[0].StudyInstanceUID, 3)
        with StorageServer("HOUNSFIELD", "127.0.0.1", port, [CT], receiver, timeout_s=5):
            ae = AE("PACS")
            ae.add_requested_context(CT, str(datasets[0].file_meta.TransferSyntaxUID))
            ae.add_requested_context("1.2.840.10008.1.1")
            assoc = ae.associate("127.0.0.1", port, ae_title="HOUNSFIELD")
            assert assoc.is_established
            try:
                assert [assoc.send_c_store(ds).Status for ds in datasets[:2]] == [0, 0]  # by the lane
                assert assoc.send_c_echo().Status == 0  # pushed back: pynetdicom answers
                assert assoc.send_c_store(datasets[2]).Status == 0  # and stores from then on
            finally:
                assoc.release()
            assert assoc.is_released
        assert sorted(receiver.received) == sorted(ds.SOPInstanceUID for ds in datasets)
        for dataset, path in zip(datasets, paths):
            stored = staging.folder / dataset.SeriesInstanceUID / f"{dataset.SOPInstanceUID}.dcm"
            assert data_set_bytes(stored.read_bytes()) == data_set_bytes(path.read_bytes())
        receiver.close()  # as the retrieve does when it ends: the file prepared for a next instance goes too
        assert not list(staging.folder.glob(".incoming-*"))


# -- a small in-process Q/R SCP ---------------------------------------------------------------------------------------
def qr_scp(datasets: list[Dataset], *, study_count: int | None, study_classes: list[str] | None = None,
           abort_after: int | None = None) -> tuple[AE, int]:
    """A Q/R SCP holding ``datasets``: at STUDY level it answers SOPClassesInStudy (``study_classes`` or the
    true ones) and ``study_count``, at IMAGE level every instance; its C-GET sends them all, aborting after
    ``abort_after``. It can send (SCP role) only the classes of ``study_classes``."""
    study = datasets[0].StudyInstanceUID
    classes = study_classes or sorted({str(ds.SOPClassUID) for ds in datasets})

    def on_find(event):
        level = event.identifier.QueryRetrieveLevel
        if level == "STUDY":
            match = Dataset()
            match.QueryRetrieveLevel, match.StudyInstanceUID = "STUDY", study
            match.SOPClassesInStudy = classes
            match.NumberOfStudyRelatedInstances = study_count
            yield 0xFF00, match
            return
        for dataset in datasets:
            match = Dataset()
            match.QueryRetrieveLevel = "IMAGE"
            match.StudyInstanceUID, match.SeriesInstanceUID = study, dataset.SeriesInstanceUID
            match.SOPInstanceUID, match.SOPClassUID = dataset.SOPInstanceUID, dataset.SOPClassUID
            yield 0xFF00, match

    def on_get(event):
        yield len(datasets)
        for index, dataset in enumerate(datasets):
            if abort_after is not None and index == abort_after:
                event.assoc.abort()
                return
            yield 0xFF00, dataset

    ae = AE(ae_title="QRSCP")
    for uid in (FIND, GET):
        ae.add_supported_context(uid)
    for uid in classes:
        ae.add_supported_context(uid, scu_role=True, scp_role=True)
    port = free_port()
    ae.start_server(("127.0.0.1", port), block=False,
                    evt_handlers=[(evt.EVT_C_FIND, on_find), (evt.EVT_C_GET, on_get)])
    return ae, port


def three_ct_slices() -> list[Dataset]:
    return [pydicom.dcmread(p) for p in sorted(data_path("seg-rtstruct", "dcmqi", "segmentations",
                                                         "ct-3slice").iterdir())]


def test_a_stale_count_is_checked_against_the_listing(tmp_path, lane):
    datasets = three_ct_slices()
    ae, port = qr_scp(datasets, study_count=5)  # says 5, holds 3
    try:
        result = run_job(DimseClient(dimse_node(port, aet="QRSCP")).retrieve(
            datasets[0].StudyInstanceUID, None, RetrieveCache(tmp_path)))
    finally:
        ae.shutdown()
    assert result.n_instances == 3


def test_a_final_response_with_failed_instances_ends_the_retrieve(tmp_path, lane):
    """An instance of a class we did not propose fails its sub-operation; the final C-GET response then carries
    the failed instances (an identifier) - it must still end the retrieve, which names what did not arrive."""
    datasets = three_ct_slices()
    odd = pydicom.dcmread(data_path("seg-rtstruct", "highdicom", "sr_document.dcm"))
    odd.StudyInstanceUID = datasets[0].StudyInstanceUID
    # the PACS holds 4 but names only CT in SOPClassesInStudy: the SR's sub-operation fails (no context for it)
    ae, port = qr_scp([*datasets, odd], study_count=4, study_classes=[CT])
    started = time.monotonic()
    cache = RetrieveCache(tmp_path)
    try:
        with pytest.raises(PacsError, match=r"1 of 4 instances \(Comprehensive 3D SR Storage\) did not arrive"):
            run_job(DimseClient(dimse_node(port, aet="QRSCP", timeout_s=5)).retrieve(
                datasets[0].StudyInstanceUID, None, cache))
    finally:
        ae.shutdown()
    assert time.monotonic() - started < 3 and cache.entries() == []


def test_a_pacs_aborting_mid_retrieve(tmp_path, lane):
    datasets = three_ct_slices()
    ae, port = qr_scp(datasets, study_count=3, abort_after=2)
    started = time.monotonic()
    cache = RetrieveCache(tmp_path)
    try:
        with pytest.raises(PacsError):
            run_job(DimseClient(dimse_node(port, aet="QRSCP", timeout_s=5)).retrieve(
                datasets[0].StudyInstanceUID, None, cache))
    finally:
        ae.shutdown()
    assert time.monotonic() - started < 3
    assert cache.entries() == [] and not any((cache.root / ".staging").iterdir())


def test_a_data_set_whose_uids_lie_beyond_the_head(tmp_path, lane):
    """40 kB of private data before the UIDs: the lane reads them from the whole file it wrote."""
    dataset = three_ct_slices()[0]
    dataset.add_new(0x00091010, "LO", "PRIVATE")
    dataset.add_new(0x00091011, "OB", b"\0" * 40000)
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    dataset = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    ae, port = qr_scp([dataset], study_count=1)
    try:
        result = run_job(DimseClient(dimse_node(port, aet="QRSCP")).retrieve(
            dataset.StudyInstanceUID, None, RetrieveCache(tmp_path)))
    finally:
        ae.shutdown()
    (folder,) = result.series_dirs.values()
    copy = pydicom.dcmread(Path(folder) / f"{dataset.SOPInstanceUID}.dcm")
    assert copy.PixelData == dataset.PixelData and copy[0x00091011].value == b"\0" * 40000
