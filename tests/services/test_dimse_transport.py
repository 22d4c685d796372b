"""The DIMSE transport tuning: socket options on both ends, no up-front allocation of a claimed PDU length, a storage
SCP that stops at once and leaves no thread behind, and the File Meta / UID helpers of the receive path."""
from __future__ import annotations

import socket
import threading
import time

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION, build_context

from tests.conftest import data_path
from tests.services.orthanc import free_port
from viewer.services.pacs.cache import RetrieveCache
from viewer.services.pacs.dimse import VERIFICATION
from viewer.services.pacs.dimse_assoc import associate
from viewer.services.pacs.dimse_storage import Receiver, StorageServer
from viewer.services.pacs.dimse_transport import MAX_PDU, TunedSocket
from viewer.services.pacs.nodes import PacsNode
from viewer.services.pacs.part10 import HEAD_BYTES, dataset_uids, file_meta

CT = "1.2.840.10008.5.1.4.1.1.2"
QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def _nodelay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def _storage_threads() -> list[str]:
    return [t.name for t in threading.enumerate()
            if t.name == "dimse-storage-scp" or t.name.startswith(("AcceptorThread", "AcceptorServer"))]


@pytest.fixture
def storage_server(tmp_path):
    cache = RetrieveCache(tmp_path / "cache")
    with cache.staging() as staging:
        receiver = Receiver(staging, "1.2.3", 0)
        server = StorageServer("HOUNSFIELD", "127.0.0.1", free_port(), [CT], receiver, timeout_s=5)
        yield server


def test_both_ends_of_our_associations_are_tuned(storage_server):
    """Requestor sockets (ours, towards a PACS) and the storage SCP's accepted ones: TCP_NODELAY, a large PDU."""
    with storage_server:
        node = PacsNode("scp", kind="dimse", aet="HOUNSFIELD", host="127.0.0.1", port=storage_server.port,
                        our_aet="HOUNSFIELD", timeout_s=5)
        assoc = associate(node, [build_context(VERIFICATION)])
        try:
            ours = assoc.dul.socket
            assert isinstance(ours, TunedSocket) and _nodelay(ours.socket)
            assert assoc.requestor.maximum_length == MAX_PDU
            (accepted,) = storage_server._server.active_associations
            theirs = accepted.dul.socket
            assert isinstance(theirs, TunedSocket) and _nodelay(theirs.socket)
            assert accepted.acceptor.maximum_length == MAX_PDU
            assert assoc.send_c_echo().Status == 0
            if QUICKACK is not None:  # re-armed after each read; the kernel reports it while it holds
                assert ours.socket.getsockopt(socket.IPPROTO_TCP, QUICKACK) in (0, 1)
        finally:
            assoc.release()


def test_the_storage_scp_stops_at_once_and_leaves_no_thread(storage_server):
    with storage_server:
        ae = AE(ae_title="PACS")
        ae.add_requested_context(VERIFICATION)
        assoc = ae.associate("127.0.0.1", storage_server.port, ae_title="HOUNSFIELD")
        assert assoc.is_established and assoc.send_c_echo().Status == 0
        assoc.release()
        started = time.monotonic()
    assert time.monotonic() - started < 0.3  # pynetdicom's own start_server() polls for a stop every 0.5 s
    deadline = time.monotonic() + 1
    while _storage_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _storage_threads() == []
    with socket.socket() as probe:  # and its port is free again
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", storage_server.port))


def test_a_claimed_pdu_length_is_not_allocated_up_front():
    """A peer announcing a 1 TB PDU and sending 10 bytes gets 10 bytes back, not a MemoryError."""
    ours, peer = socket.socketpair()
    with ours, peer:
        tuned = TunedSocket.__new__(TunedSocket)  # only the read path, without an association
        tuned.socket = ours
        peer.sendall(b"0123456789")
        peer.shutdown(socket.SHUT_WR)
        assert tuned.recv(1 << 40) == bytearray(b"0123456789")
        peer2, ours2 = socket.socketpair()
        with peer2, ours2:
            tuned.socket = ours2
            peer2.sendall(b"abc" * 1000)
            assert tuned.recv(3000) == bytearray(b"abc" * 1000)  # a normal PDU: exactly its length


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("sop_uid", ["1.2.3.4", "1.2.3.45"])  # odd and even lengths (UI padding)
def test_file_meta_is_what_pydicom_writes(syntax, sop_uid):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID = CT, sop_uid, syntax
    meta.ImplementationClassUID = PYNETDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = PYNETDICOM_IMPLEMENTATION_VERSION
    buffer = pydicom.filebase.DicomBytesIO()
    write_file_meta_info(buffer, meta)
    assert file_meta(CT, sop_uid, syntax) == b"\0" * 128 + b"DICM" + buffer.getvalue()


def _encoded(dataset: Dataset, syntax: str) -> bytes:
    buffer = pydicom.filebase.DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, syntax == ImplicitVRLittleEndian
    pydicom.filewriter.write_dataset(buffer, dataset)
    return buffer.getvalue()


@pytest.mark.filterwarnings("ignore:.*:UserWarning")  # pydicom's, on the garbage at the end
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_dataset_uids_of_a_received_data_set(syntax):
    lidc = sorted(data_path("lidc-idri-0001").rglob("*.dcm"))[0]
    dataset = pydicom.dcmread(lidc)
    body = _encoded(dataset, syntax)
    assert len(body) > HEAD_BYTES
    meta = file_meta(CT, dataset.SOPInstanceUID, syntax)
    assert dataset_uids(meta, memoryview(body)) == (dataset.StudyInstanceUID, dataset.SeriesInstanceUID)
    # a header longer than the head: the UIDs come after 40 kB of private data, read from the whole data set
    long = Dataset()
    long.PatientName = "Test"
    long.add_new(0x00091010, "OB", b"\0" * 40000)
    long.StudyInstanceUID, long.SeriesInstanceUID, long.SOPInstanceUID = generate_uid(), generate_uid(), "1.2.3"
    long.BitsAllocated = 8
    long.PixelData = b"\0" * 1000
    body = _encoded(long, syntax)
    assert dataset_uids(file_meta(CT, "1.2.3", syntax), body) == (long.StudyInstanceUID, long.SeriesInstanceUID)
    assert dataset_uids(file_meta(CT, "1.2.3", syntax), b"\xff" * 20) in (None, ("", ""))  # refused by the caller
