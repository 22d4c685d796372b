"""Receiving instances by C-STORE: during a C-GET (on the requesting association) or a C-MOVE (our storage SCP).

A :class:`Receiver` files each instance - its File Meta plus the data set bytes exactly as they came, in their
original transfer syntax - into a :class:`~viewer.services.pacs.cache.Staging` and hands
``("stored", series uid, path, count)`` to the job through a :class:`queue.Queue`; the job's generator turns those
into progress. Instances come two ways: fragment by fragment from the lean lane (:mod:`.dimse_lane`), written to an
incoming file as they arrive and renamed into place once complete (:class:`IncomingInstance`); or whole, from
pynetdicom's ``EVT_C_STORE`` handler on its own thread (:meth:`Receiver.handle_store`), where the lane is not used.
Either way the data set is never decoded: its study and series UIDs are read from its first bytes. After
:meth:`Receiver.close` nothing more is written, so a cancel can drop the staging folder without a late instance
reappearing in it.
"""
from __future__ import annotations

import io
import os
import queue
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from pynetdicom import evt
from pynetdicom.transport import ThreadedAssociationServer

from viewer.services.pacs import dimse_lane
from viewer.services.pacs.cache import Staging, checked_uid
from viewer.services.pacs.dimse_contexts import storage_contexts
from viewer.services.pacs.dimse_transport import MAX_PDU, TunedAE, TunedRequestHandler
from viewer.services.pacs.model import PacsError
from viewer.services.pacs.part10 import HEAD_BYTES, dataset_uids, file_meta, head_uids, instance_uids

# C-STORE statuses we answer with (PS3.4 B.2.3).
STORED = 0x0000
OUT_OF_RESOURCES = 0xA700
NOT_REQUESTED = 0xA900  # "data set does not match": an instance of a study we did not ask for
CANNOT_UNDERSTAND = 0xC000
#: How often the storage SCP's accept loop looks for a stop request (s): how long stopping it takes at most.
SERVER_POLL_S = 0.01


class Receiver:
    """Stores the instances of one study arriving by C-STORE into ``staging``; refuses other studies' instances.

    ``expected`` is how many instances the retrieve plans to bring (for progress; the job checks what arrived).
    """

    def __init__(self, staging: Staging, study_uid: str, expected: int) -> None:
        self.staging = staging
        self.study_uid = study_uid
        self.expected = expected
        self.queue: queue.Queue[tuple] = queue.Queue()
        self.received: dict[str, str] = {}  # SOP instance UID -> series UID
        self.refused = 0
        self._lock = threading.Lock()
        self._closed = False
        self._spare: tuple[Path, int] | None = None  # see prepare()

    def handle_store(self, event: evt.Event) -> int:
        """The ``EVT_C_STORE`` handler (pynetdicom's thread): write the instance, announce it, answer a status.

        The data set is not decoded: its study and series UIDs are read from its first bytes, and the file is its
        encoded File Meta followed by the received bytes as they are."""
        request = event.request
        try:
            sop_uid = checked_uid(str(getattr(request, "AffectedSOPInstanceUID", "") or ""))
            sop_class = checked_uid(str(getattr(request, "AffectedSOPClassUID", "") or ""))
            meta = file_meta(sop_class, sop_uid, str(event.context.transfer_syntax))
            received = getattr(request, "DataSet", None)
            body = received.getbuffer() if isinstance(received, io.BytesIO) else memoryview(received or b"")
        except Exception:  # no or malformed UIDs: refuse it, the job reports it missing
            self.refused += 1
            return CANNOT_UNDERSTAND
        with body:
            return self._accept(dataset_uids(meta, body), sop_uid,
                                lambda study, series: self.staging.add_parts(study, series, sop_uid, (meta, body)))

    def begin(self, sop_class: str, sop_uid: str, syntax: str) -> IncomingInstance | int:
        """An instance announced by a C-STORE request whose data set will arrive in fragments (the lean receive
        path of :mod:`~viewer.services.pacs.dimse_lane`): where to write them, or the status to answer at once."""
        try:
            meta = file_meta(checked_uid(sop_class), checked_uid(sop_uid), checked_uid(syntax))
        except ValueError:
            self.refused += 1
            return CANNOT_UNDERSTAND
        with self._lock:  # no new file once closed: a cancelled retrieve's staging folder is being removed
            if self._closed:
                return OUT_OF_RESOURCES
            spare, self._spare = self._spare, None
            try:
                path, fd = spare or _create(self.staging.incoming())
                return IncomingInstance(self, path, fd, meta, sop_uid)
            except OSError:
                self.refused += 1
                return OUT_OF_RESOURCES

    def prepare(self) -> None:
        """Create the file the next :meth:`begin` will write, now: the lane calls this right after answering a
        C-STORE, while the PACS reads its next instance (creating a file costs ~0.1-0.3 ms, as much as writing
        half a megabyte; the PACS sends nothing until it has our answer)."""
        with self._lock:
            if self._closed or self._spare is not None:
                return
            try:
                self._spare = _create(self.staging.incoming())
            except OSError:  # begin() will try again, and answer the error
                pass

    def _accept(self, uids: tuple[str, str] | None, sop_uid: str, place: Callable[[str, str], Path]) -> int:
        """Check a received instance's UIDs, then ``place(study, series)`` its file; the status to answer."""
        try:
            if uids is None:
                raise ValueError("not a readable data set")
            study_uid, series_uid = checked_uid(uids[0]), checked_uid(uids[1])
        except ValueError:  # an undecodable or hostile data set: refuse it, the job reports it missing
            self.refused += 1
            return CANNOT_UNDERSTAND
        if study_uid != self.study_uid:
            self.refused += 1
            return NOT_REQUESTED
        with self._lock:
            if self._closed:
                return OUT_OF_RESOURCES
            try:
                path = place(study_uid, series_uid)
            except OSError:
                self.refused += 1
                return OUT_OF_RESOURCES
            self.received[sop_uid] = series_uid
            count = len(self.received)
        self.queue.put(("stored", series_uid, path, count))
        return STORED

    def close(self) -> None:
        """Accept nothing more (instances arriving later are refused and not written)."""
        with self._lock:
            self._closed = True
            spare, self._spare = self._spare, None
        if spare is not None:
            os.close(spare[1])
            spare[0].unlink(missing_ok=True)


def _create(path: Path) -> tuple[Path, int]:
    return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)


class IncomingInstance:
    """One instance whose data set arrives in fragments: its File Meta and each fragment are written to an incoming
    file in the staging folder as they come; :meth:`finish` reads its UIDs from the first bytes (kept in memory)
    and moves the file to its place, or removes it."""

    def __init__(self, receiver: Receiver, path: Path, fd: int, meta: bytes, sop_uid: str) -> None:
        self.receiver, self.path, self.meta, self.sop_uid = receiver, path, meta, sop_uid
        self._fd = fd
        self.head = bytearray()
        self.n_bytes = 0
        self.write(memoryview(meta))
        self.head.clear()  # the head is the data set's

    def write(self, data: memoryview) -> None:
        """Append one fragment (a view into the receive buffer: written, never copied, but for the head)."""
        if len(self.head) < HEAD_BYTES:
            self.head += data[:HEAD_BYTES - len(self.head)]
        while data:
            written = os.write(self._fd, data)
            data = data[written:]
            self.n_bytes += written

    def finish(self) -> int:
        """The data set is complete: file it (or refuse it); the status to answer."""
        os.close(self._fd)
        self._fd = -1
        try:
            uids = head_uids(self.meta, self.head)
            if uids is None:  # the UIDs lie beyond the head (or the walker declined): read the whole file
                whole = instance_uids(self.path.read_bytes())
                uids = None if whole is None else (whole[0], whole[1])
            status = self.receiver._accept(uids, self.sop_uid, lambda study, series: self.receiver.staging.place(
                self.path, study, series, self.sop_uid, self.n_bytes))
        except OSError:
            status = OUT_OF_RESOURCES
        if status != STORED:
            self.discard()
        return status

    def discard(self) -> None:
        """Drop the partial or refused file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.path.unlink(missing_ok=True)


def local_address_towards(host: str, port: int) -> str:
    """Our address on the interface that reaches ``host`` (where the PACS will connect back to); "" (all
    interfaces) when it cannot be told. A UDP ``connect`` sends nothing, it only asks the routing table."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, port))
            return str(probe.getsockname()[0])
    except OSError:
        return ""


class StorageServer:
    """Our storage SCP, listening as ``aet`` on ``(address, port)`` for the duration of one C-MOVE (a context
    manager). It accepts the given SOP classes in every transfer syntax we know, and only when called by our AE
    title."""

    def __init__(self, aet: str, address: str, port: int, sop_classes: list[str], receiver: Receiver,
                 timeout_s: float) -> None:
        self.aet, self.address, self.port = aet, address, port
        self.ae = TunedAE(ae_title=aet)
        self.ae.require_called_aet = True
        self.ae.acse_timeout = self.ae.dimse_timeout = self.ae.network_timeout = timeout_s
        self.ae.supported_contexts = storage_contexts(sop_classes)
        self.ae.maximum_pdu_size = MAX_PDU
        self.ae.add_supported_context("1.2.840.10008.1.1")  # Verification: lets the PACS C-ECHO us
        self.receiver = receiver
        self._server: ThreadedAssociationServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> StorageServer:
        try:
            server = self.ae.make_server((self.address, self.port), server_class=ThreadedAssociationServer,
                                         evt_handlers=[(evt.EVT_C_STORE, self.receiver.handle_store)],
                                         request_handler=TunedRequestHandler)
        except OSError as exc:
            where = f"{self.address or '*'}:{self.port}"
            raise PacsError(f"cannot start our storage SCP on {where} ({exc.strerror or exc}); "
                            "the storage port is in use or not allowed - choose another in the node settings") from None
        if dimse_lane.ENABLED:  # the associations it accepts take the lean lane (see TunedRequestHandler)
            server.lane_receiver = self.receiver  # type: ignore[attr-defined]
        self.ae._servers.append(server)  # where pynetdicom's shutdown() expects it
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": SERVER_POLL_S},
                                        name="dimse-storage-scp", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        associations = server.active_associations
        server.shutdown()  # returns within SERVER_POLL_S (pynetdicom's start_server polls every 0.5 s)
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        for assoc in associations:  # the PACS released them before its final response; let them finish or abort
            assoc.join(timeout=1.0)
            if assoc.is_alive():
                assoc.abort()

