"""Transport tuning for pynetdicom associations: sockets and reactor waits that do not cost milliseconds per instance.

A C-GET or C-MOVE brings one C-STORE sub-operation per instance, and the PACS waits for our C-STORE-RSP before it
sends the next one, so every millisecond of latency in that round trip is paid once per instance. pynetdicom, left
as it is, adds several:

- Nagle / delayed ACK. The last, short segment of each message waits (Nagle) for the ACK of the previous one, which
  the receiver delays by up to 40 ms. ``TCP_NODELAY`` on our sockets sends our short C-STORE-RSPs at once;
  ``TCP_QUICKACK`` (Linux; the kernel drops it again after a while, so it is set after every read) ACKs the PACS's
  data at once, so its own Nagle never waits on us.
- Polling. pynetdicom's DUL reactor checks the socket with a zero-timeout ``select`` and sleeps 1 ms whenever a loop
  found nothing to do; a PDU arriving during that sleep waits. :class:`TunedSocket` instead blocks in ``select`` on
  the socket *and* on a wake-up pipe that is written whenever something is queued to be sent, so incoming data and
  outgoing responses are both handled the moment they exist, and an idle association costs nothing.
- Reads. pynetdicom reads a PDU 4 KiB at a time into a growing ``bytearray``; :meth:`TunedSocket.recv` reads it
  with ``recv_into`` straight into a buffer of the announced length (up to :data:`MAX_PDU`: a longer claim is read
  as the bytes arrive).
- Release. pynetdicom's ``Association.kill`` polls every 10 ms for its reactor to stop, which after a release it
  nearly never has at the first look: each association cost 10 ms more; polled every 0.5 ms here.

A :class:`TunedSocket` can also be *parked*: its reactor stops reading (it still sends what pynetdicom queues) while
a lane (:mod:`.dimse_lane`) reads the socket, and resumes - with whatever the lane pushed back - when it is
unparked.

:class:`TunedAE` builds its requestor associations on :class:`TunedSocket`; :class:`TunedRequestHandler` does the
same for the associations a storage SCP accepts.
"""
from __future__ import annotations

import functools
import queue
import select
import socket
import threading
import time
from typing import Any

from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.transport import AddressInformation, AssociationSocket, RequestHandler

#: The largest PDU we accept (bytes), announced to the peer: a PACS fragments each message into PDUs of at most
#: this length, and pynetdicom's cost is per PDU (dcmtk-based PACSes such as Orthanc send up to 128 KiB).
MAX_PDU = 4 * 1024 * 1024
#: A PDU length claimed beyond this is read as the bytes arrive, not allocated up front (the length is the peer's
#: claim, not a fact).
_PREALLOCATE_MAX = MAX_PDU + 65536
#: How long the reactor blocks waiting for data or work before it looks at its timers and kill flag again (s).
IDLE_WAIT_S = 0.05


def tune_socket(sock: socket.socket) -> None:
    """TCP_NODELAY, and TCP_QUICKACK where the platform has it (see the module doc); errors are ignored (a socket
    that is not TCP, or already closed, just stays as it is)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
    _quickack(sock)


def _quickack(sock: socket.socket) -> None:
    if _QUICKACK is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        except OSError:
            pass


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class _WakingQueue(queue.Queue):
    """The DUL's outgoing queue: putting a primitive also wakes the reactor blocked in :attr:`TunedSocket.ready`."""

    def __init__(self, wake: Any) -> None:
        super().__init__()
        self._wake = wake

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._wake()


class TunedSocket(AssociationSocket):
    """An :class:`~pynetdicom.transport.AssociationSocket` whose reactor waits on the socket instead of sleeping,
    with TCP_NODELAY / TCP_QUICKACK and single-copy reads (see the module doc)."""

    _waker: socket.socket | None = None  # written to wake the reactor
    _wakee: socket.socket | None = None  # what the reactor's select watches
    _parked = False  # a lane (see dimse_lane) reads the socket: the reactor must not
    _park_on_accept = False  # park as the A-ASSOCIATE-AC goes out (our storage SCP's lane)
    _pushed_back = b""  # bytes a lane read but left to pynetdicom
    accept_sent: threading.Event

    def _install(self) -> None:
        """Hook into the association's DUL: a wake-up socket pair, the waking outgoing queue, no idle sleep."""
        self._wakee, self._waker = socket.socketpair()
        self._wakee.setblocking(False)
        self._waker.setblocking(False)
        dul = self.assoc.dul
        pending = list(dul.to_provider_queue.queue)
        dul.to_provider_queue = _WakingQueue(self._wake)
        for item in pending:
            dul.to_provider_queue.put(item)
        dul._run_loop_delay = 0  # the wait is in `ready`, which returns early when there is something to do
        self.send_lock = threading.Lock()  # the reactor's sends and a lane's never interleave
        self._parked_ack = threading.Event()

    def _wake(self) -> None:
        try:
            self._waker.send(b"\0")  # type: ignore[union-attr]
        except (OSError, AttributeError):  # full (the reactor wakes anyway) or closed (the association ended)
            pass

    def connect(self, primitive: Any) -> None:
        super().connect(primitive)
        if self.socket is not None:
            tune_socket(self.socket)

    def send(self, bytestream: bytes) -> None:
        accepting = self._park_on_accept and bytestream[:1] == b"\x02"
        if accepting:  # the A-ASSOCIATE-AC: what the peer sends next is the lane's
            self._park_on_accept = False
            self._parked = True
            self.assoc.dul._idle_timer.stop()
        with self.send_lock:
            super().send(bytestream)
        if accepting:
            self.accept_sent.set()

    def park(self, timeout_s: float = 1.0) -> None:
        """Stop the reactor reading (a lane takes the socket); returns once it has stopped. RuntimeError when it
        does not within ``timeout_s`` (the caller then leaves the socket to pynetdicom)."""
        self._parked_ack.clear()
        self._parked = True
        self.assoc.dul._idle_timer.stop()  # the lane keeps its own network timeout; pynetdicom's would abort
        self._wake()
        if not self._parked_ack.wait(timeout_s) and self.assoc.dul.is_alive():
            self._parked = False
            self.assoc.dul._idle_timer.restart()
            raise RuntimeError("the association's reactor did not yield its socket")

    def park_on_accept(self) -> None:
        """Park the reactor as it sends the A-ASSOCIATE-AC (see :meth:`send`): the first byte after it is the lane's."""
        self.accept_sent = threading.Event()
        self._park_on_accept = True

    def unpark(self, pushed_back: bytes = b"") -> None:
        """Give the socket back to the reactor, ``pushed_back`` first (bytes a lane read but did not handle)."""
        self._pushed_back = pushed_back + self._pushed_back
        if self._parked:
            self._parked = False
            self.assoc.dul._idle_timer.restart()
        self._wake()

    def quickack(self) -> None:
        if self.socket is not None:
            _quickack(self.socket)

    @property
    def ready(self) -> bool:
        """True when data can be read; blocks up to :data:`IDLE_WAIT_S` for data or for something to send."""
        sock, wakee = self.socket, self._wakee
        if sock is None or self._is_connected is False or wakee is None:
            time.sleep(IDLE_WAIT_S / 50)  # nothing to watch: pynetdicom's own pace (its reactor no longer sleeps)
            return False
        if self._pushed_back and not self._parked:
            return True
        # Block only when the reactor has nothing queued: it handles one event per loop, and an event already
        # queued (say the connection's, behind which the peer's A-ASSOCIATE-RQ is waiting) must not wait for data.
        wait = IDLE_WAIT_S if self.assoc.dul.event_queue.empty() else 0
        parked = self._parked
        if parked:
            self._parked_ack.set()
        try:
            readable, _, _ = select.select([wakee] if parked else [sock, wakee], [], [], wait)
        except (OSError, ValueError):  # the socket was closed under us
            self.event_queue.put("Evt17")
            return False
        if wakee in readable:
            try:
                while wakee.recv(4096):
                    pass
            except OSError:  # drained (EAGAIN) or closed
                pass
        if self._parked:  # parked meanwhile: the data is the lane's
            self._parked_ack.set()
            return False
        return sock in readable or bool(self._pushed_back)

    def recv(self, nr_bytes: int) -> bytearray:
        """Read ``nr_bytes`` (fewer only when the peer closed the connection), re-arming TCP_QUICKACK."""
        sock = self.socket
        if sock is None:
            return bytearray()
        if self._pushed_back:
            head, self._pushed_back = self._pushed_back[:nr_bytes], self._pushed_back[nr_bytes:]
            if len(head) == nr_bytes:
                return bytearray(head)
            return bytearray(head) + self.recv(nr_bytes - len(head))
        if nr_bytes > _PREALLOCATE_MAX:
            return self._recv_growing(sock, nr_bytes)
        buffer = bytearray(nr_bytes)
        got = 0
        with memoryview(buffer) as view:
            while got < nr_bytes:
                count = sock.recv_into(view[got:], nr_bytes - got)
                if not count:
                    break
                got += count
                _quickack(sock)
        if got < nr_bytes:
            del buffer[got:]
        return buffer

    def _recv_growing(self, sock: socket.socket, nr_bytes: int) -> bytearray:
        buffer = bytearray()
        while len(buffer) < nr_bytes:
            piece = sock.recv(min(nr_bytes - len(buffer), 1 << 20))
            if not piece:
                break
            buffer += piece
            _quickack(sock)
        return buffer

    def close(self) -> None:
        super().close()
        for pair_end in (self._wakee, self._waker):
            if pair_end is not None:
                pair_end.close()  # a late wake-up fails harmlessly on a closed Python socket
        self._wakee = self._waker = None


def _fast_kill(assoc: Association) -> None:
    """pynetdicom's ``Association.kill`` polling every 0.5 ms instead of 10 ms: after a release it runs before
    the reactor has reached its final state (always, nearly), so each release cost 10 ms waiting."""
    assoc._reactor_checkpoint.set()
    assoc._kill = True
    assoc.is_established = False
    assoc._is_paused = True
    while assoc.dul.is_alive() and not assoc.dul.stop_dul():
        time.sleep(0.0005)


def _tune_association(assoc: Association) -> None:
    assoc.kill = functools.partial(_fast_kill, assoc)  # type: ignore[method-assign]


class TunedAE(AE):
    """An AE whose requested associations use :class:`TunedSocket`."""

    def _create_socket(self, assoc: Association, address: AddressInformation,
                       tls_args: Any) -> AssociationSocket:
        sock = TunedSocket(assoc, address=address)
        sock.tls_args = tls_args
        sock._install()
        _tune_association(assoc)
        return sock


class TunedRequestHandler(RequestHandler):
    """The storage SCP's request handler: the accepted association's socket becomes a :class:`TunedSocket`."""

    def _create_association(self) -> Association:
        assoc = super()._create_association()
        sock = assoc.dul.socket
        if sock is not None and type(sock) is AssociationSocket:
            sock.__class__ = TunedSocket  # the same object (its Evt5 is already queued), with the tuned methods
            tuned: TunedSocket = sock  # type: ignore[assignment]
            tuned._install()
            _tune_association(assoc)
            if tuned.socket is not None:
                tune_socket(tuned.socket)
            receiver = getattr(self.server, "lane_receiver", None)
            if receiver is not None:
                _serve_by_lane(assoc, tuned, receiver)
        return assoc


def _serve_by_lane(assoc: Association, tuned: TunedSocket, receiver: Any) -> None:
    """Once the association is accepted, its C-STORE requests go by the lean lane (see :mod:`.dimse_lane`) until
    the peer does anything else; then pynetdicom's own reactor runs as usual."""
    from viewer.services.pacs.dimse_lane import Lane

    tuned.park_on_accept()
    run_reactor = assoc._run_reactor

    def lane_then_reactor() -> None:
        # pynetdicom's acceptor runs this as soon as it has queued the A-ASSOCIATE-AC; its reactor sends it
        if tuned.accept_sent.wait(assoc.acse_timeout or 30.0) and tuned._parked:
            try:
                Lane(assoc, receiver, assoc.network_timeout or 60.0).serve()
            except Exception:  # the lane could not start: the socket is pynetdicom's again
                tuned.unpark()
        else:
            tuned._park_on_accept = False
            tuned.unpark()
        run_reactor()

    assoc._run_reactor = lane_then_reactor  # type: ignore[method-assign]
