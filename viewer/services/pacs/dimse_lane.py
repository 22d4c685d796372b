"""The lean receive path of a retrieve: the data phase of a C-GET or C-MOVE read straight off the socket.

pynetdicom costs about 2-3 ms of Python per instance of a C-GET (each PDU decoded into objects and handed between
three threads, each DIMSE message built as a pydicom Dataset, the response encoded the same way), while the PACS
waits for every C-STORE response before it sends the next instance; that, not the network, bounded a retrieve. So
once pynetdicom has negotiated the association, a :class:`Lane` takes the socket for the retrieve's data phase:

- the association's reactor is parked (:meth:`TunedSocket.park <viewer.services.pacs.dimse_transport.TunedSocket>`:
  it reads nothing while the lane runs, but still sends what pynetdicom queues - a C-CANCEL, an A-ABORT);
- PDUs are read into one reused buffer, many at a time; each data set fragment is written to the instance's file
  from that buffer (:class:`~viewer.services.pacs.dimse_storage.IncomingInstance`), never copied or decoded;
- command sets (a handful of group 0000 elements, implicit VR little endian) are parsed and encoded here; a
  C-STORE response is one small PDU sent at once.

The lane handles only what a retrieve's data phase holds: C-STORE requests and the C-GET / C-MOVE responses. On a
requestor association (:meth:`Lane.retrieve`) anything else fails the retrieve. On our storage SCP's associations
(:meth:`Lane.serve`), anything else at a message boundary - a C-ECHO, the peer's A-RELEASE-RQ, an A-ABORT - is
pushed back into the socket and the association goes back to pynetdicom, which answers it. Association set-up,
release and abort stay pynetdicom's throughout.
"""
from __future__ import annotations

import select
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydicom import Dataset
from pynetdicom.dsutils import encode

from viewer.services.pacs.dimse_transport import MAX_PDU, TunedSocket

if TYPE_CHECKING:
    from pynetdicom.association import Association

    from viewer.services.pacs.dimse_storage import IncomingInstance, Receiver

#: Whether retrieves use the lane (tests turn it off to exercise pynetdicom's own path, which stays the fallback).
ENABLED = True

P_DATA_TF = 0x04
A_RELEASE_RQ, A_ABORT = 0x05, 0x07
C_STORE_RQ, C_STORE_RSP = 0x0001, 0x8001
C_GET_RQ, C_GET_RSP = 0x0010, 0x8010
C_MOVE_RQ, C_MOVE_RSP = 0x0021, 0x8021
NO_DATA_SET = 0x0101
IMPLICIT_LE, EXPLICIT_LE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
OUT_OF_RESOURCES = 0xA700  # the C-STORE status when an instance cannot be written
PENDING = (0xFF00, 0xFF01)
#: The receive buffer starts this large and grows to the largest PDU met (at most our announced maximum).
BUFFER_BYTES = 1 << 20

_PDU_HEADER = struct.Struct(">BxI")
_PDV_HEADER = struct.Struct(">IBB")
_ELEMENT = struct.Struct("<HHI")
_US = struct.Struct("<H")
_UL = struct.Struct("<I")

# Command set elements (group 0000) by element number.
AFFECTED_SOP_CLASS, COMMAND_FIELD, MESSAGE_ID, RESPONDED_TO = 0x0002, 0x0100, 0x0110, 0x0120
MOVE_DESTINATION, PRIORITY, DATA_SET_TYPE, STATUS = 0x0600, 0x0700, 0x0800, 0x0900
AFFECTED_SOP_INSTANCE = 0x1000
REMAINING, COMPLETED, FAILED, WARNING = 0x1020, 0x1021, 0x1022, 0x1023


class LaneError(Exception):
    """The peer broke the protocol, closed the connection or stopped answering; the message says which."""


class _Timeout(LaneError):
    """Nothing arrived within the network timeout."""


@dataclass
class Response:
    """A C-GET / C-MOVE response as the retrieve reads it (the attributes of pynetdicom's status Dataset)."""

    Status: int
    NumberOfRemainingSuboperations: int | None = None
    NumberOfCompletedSuboperations: int | None = None
    NumberOfFailedSuboperations: int | None = None
    NumberOfWarningSuboperations: int | None = None


# -- command sets -----------------------------------------------------------------------------------------------------
def decode_command(data: bytes | bytearray | memoryview) -> dict[int, bytes]:
    """Element number → raw value of a command set (implicit VR little endian, group 0000 only)."""
    elements: dict[int, bytes] = {}
    pos, end = 0, len(data)
    while pos < end:
        if pos + 8 > end:
            raise LaneError("a command set ends inside an element header")
        group, element, length = _ELEMENT.unpack_from(data, pos)
        pos += 8
        if group != 0 or pos + length > end:
            raise LaneError("a malformed command set")
        elements[element] = bytes(data[pos:pos + length])
        pos += length
    return elements


def encode_command(elements: dict[int, bytes]) -> bytes:
    """A command set with its group length, elements in ascending order."""
    body = b"".join(_ELEMENT.pack(0, element, len(value)) + value for element, value in sorted(elements.items()))
    return _ELEMENT.pack(0, 0, 4) + _UL.pack(len(body)) + body


def us(value: int) -> bytes:
    return _US.pack(value)


def ui(value: str) -> bytes:
    data = value.encode("ascii")
    return data + b"\0" if len(data) % 2 else data


def ae(value: str) -> bytes:
    data = value.strip().encode("ascii")
    return data + b" " if len(data) % 2 else data


def _us_of(elements: dict[int, bytes], element: int) -> int | None:
    value = elements.get(element)
    return _US.unpack(value)[0] if value is not None and len(value) == 2 else None


def _text_of(elements: dict[int, bytes], element: int) -> str:
    return elements.get(element, b"").decode("ascii", "replace").strip("\0 ")


def pdata_pdus(context_id: int, command: bytes, data_set: bytes | None, max_pdu: int) -> list[bytes]:
    """The P-DATA-TF PDUs of one message: its command set, then its data set, each in fragments that fit the
    peer's maximum PDU length (0: unlimited)."""
    room = max_pdu - 6 if max_pdu else max(len(command), len(data_set or b""), 1)
    pdus = []
    for payload, control in ((command, 0x01), (data_set, 0x00)):
        if payload is None:
            continue
        pieces = [payload[i:i + room] for i in range(0, len(payload), room)] or [b""]
        for index, piece in enumerate(pieces):
            last = 0x02 if index == len(pieces) - 1 else 0x00
            item = _PDV_HEADER.pack(len(piece) + 2, context_id, control | last) + piece
            pdus.append(_PDU_HEADER.pack(P_DATA_TF, len(item)) + item)
    return pdus


# -- the lane ---------------------------------------------------------------------------------------------------------
@dataclass
class _Message:
    """The message being received: its command set so far, then (once that is complete) its data set's fate."""

    context_id: int
    command: bytearray
    elements: dict[int, bytes] | None = None
    incoming: IncomingInstance | None = None
    status: int = 0  # the C-STORE status decided before the data set arrived (a refusal), else 0


class Lane:
    """The data phase of one retrieve on one association (see the module doc).

    ``receiver`` files the instances; ``timeout_s`` is how long the peer may stay silent.
    """

    def __init__(self, assoc: Association, receiver: Receiver | None, timeout_s: float) -> None:
        sock = assoc.dul.socket
        if not isinstance(sock, TunedSocket) or sock.socket is None:
            raise LaneError("not a tuned association")
        self.assoc, self.tuned, self.receiver, self.timeout_s = assoc, sock, receiver, timeout_s
        self.sock = sock.socket
        self.contexts = {cx_id: str(cx.transfer_syntax[0]) for cx_id, cx in assoc._accepted_cx.items()}
        peer = assoc.acceptor if assoc.is_requestor else assoc.requestor
        self.peer_max_pdu = int(peer.maximum_length or 0)
        self._buffer = bytearray(BUFFER_BYTES)
        self._view = memoryview(self._buffer)
        self._start = self._end = self._consumed = 0
        self._message: _Message | None = None
        self.received = 0

    # -- requestor: C-GET / C-MOVE ------------------------------------------------------------------------------------
    def retrieve(self, keys: Dataset, model: str, destination: str | None = None,
                 msg_id: int = 1) -> Iterator[tuple[Response | None, None]]:
        """Send a C-GET (``destination`` None) or C-MOVE request for ``keys`` under ``model`` and read its data
        phase; yields ``(response, None)`` for each response like pynetdicom's ``send_c_get`` - None for no answer
        within the timeout - and ends after the final one. The request is sent before this returns."""
        context_id = self._context_of(model)
        syntax = self.contexts[context_id]
        if syntax not in (IMPLICIT_LE, EXPLICIT_LE):  # big endian or deflated: pynetdicom encodes those
            raise LaneError(f"the retrieve context's transfer syntax is {syntax}")
        identifier = encode(keys, syntax == IMPLICIT_LE, True)
        if identifier is None:
            raise ValueError("the retrieve keys cannot be encoded")
        elements = {AFFECTED_SOP_CLASS: ui(model), MESSAGE_ID: us(msg_id), PRIORITY: us(0), DATA_SET_TYPE: us(1),
                    COMMAND_FIELD: us(C_GET_RQ if destination is None else C_MOVE_RQ)}
        if destination is not None:
            elements[MOVE_DESTINATION] = ae(destination)
        self.tuned.park()
        try:
            self._send(pdata_pdus(context_id, encode_command(elements), identifier, self.peer_max_pdu))
        except BaseException:
            self.tuned.unpark()
            raise
        return self._responses(C_GET_RSP if destination is None else C_MOVE_RSP)

    def _responses(self, response_field: int) -> Iterator[tuple[Response | None, None]]:
        """Read until the final response. The socket goes back to pynetdicom *before* that response is yielded,
        so the caller may release the association at once."""
        try:
            while True:
                try:
                    kind, payload = self._next_pdu()
                except _Timeout:
                    self._release_socket()
                    yield None, None
                    return
                if kind != P_DATA_TF:
                    self._push_back_current()
                    what = {A_ABORT: "aborted the association", A_RELEASE_RQ: "released the association"}
                    raise LaneError(f"the PACS {what.get(kind, f'sent PDU type 0x{kind:02X}')} mid-retrieve")
                for elements in self._pdata(payload, store_ok=response_field == C_GET_RSP):
                    field = _us_of(elements, COMMAND_FIELD)
                    if field != response_field:
                        raise LaneError(f"unexpected DIMSE message 0x{field or 0:04X} mid-retrieve")
                    status = _us_of(elements, STATUS)
                    if status is None:
                        raise LaneError("a response without a status")
                    response = Response(status, *(_us_of(elements, e) for e in (REMAINING, COMPLETED, FAILED,
                                                                                 WARNING)))
                    if response.Status not in PENDING:
                        self._release_socket()
                        yield response, None
                        return
                    yield response, None
        finally:
            self._drop_message()
            self._release_socket()

    def _context_of(self, abstract_syntax: str) -> int:
        for cx_id, cx in self.assoc._accepted_cx.items():
            if cx.abstract_syntax == abstract_syntax:
                return cx_id
        raise LaneError(f"no accepted presentation context for {abstract_syntax}")

    # -- acceptor: our storage SCP ------------------------------------------------------------------------------------
    def serve(self) -> None:
        """Receive C-STORE requests until the peer does something else (release, abort, another service), which is
        pushed back to pynetdicom; the association's reactor then takes over. The socket was parked already."""
        try:
            while True:
                try:
                    kind, payload = self._next_pdu()
                except _Timeout:
                    self._push_back_current()
                    return  # pynetdicom's idle timer ends the association
                if kind != P_DATA_TF or (self._message is None and not self._starts_a_store(payload)):
                    self._push_back_current()  # at a message boundary: pynetdicom answers it
                    return
                for elements in self._pdata(payload, store_ok=True):
                    raise LaneError(f"unexpected DIMSE message 0x{_us_of(elements, COMMAND_FIELD) or 0:04X}")
        except (LaneError, OSError):
            self._drop_message()
            self.tuned.unpark()
            self.assoc.abort()
        finally:
            self._drop_message()
            self._release_socket()

    def _starts_a_store(self, payload: memoryview) -> bool:
        """Whether a P-DATA-TF PDU begins with a whole C-STORE-RQ command set (else pynetdicom reads it)."""
        if len(payload) < 6:
            return False
        length, _context_id, control = _PDV_HEADER.unpack_from(payload, 0)
        if control & 0x03 != 0x03 or length < 2 or 4 + length > len(payload):
            return False
        try:
            return _us_of(decode_command(payload[6:4 + length]), COMMAND_FIELD) == C_STORE_RQ
        except LaneError:
            return False

    # -- P-DATA -------------------------------------------------------------------------------------------------------
    def _pdata(self, payload: memoryview, store_ok: bool) -> Iterator[dict[int, bytes]]:
        """Consume one P-DATA-TF PDU: C-STORE requests are handled here, any other complete command set is
        yielded (its data set, if any, is skipped)."""
        pos, end = 0, len(payload)
        while pos < end:
            if pos + 6 > end:
                raise LaneError("a P-DATA-TF PDU ends inside a PDV header")
            length, context_id, control = _PDV_HEADER.unpack_from(payload, pos)
            if length < 2 or pos + 4 + length > end:
                raise LaneError("a PDV runs past the end of its PDU")
            fragment = payload[pos + 6:pos + 4 + length]
            pos += 4 + length
            message = self._message
            if message is None:
                if not control & 0x01:
                    raise LaneError("a data set fragment without its command set")
                message = self._message = _Message(context_id, bytearray())
            elif context_id != message.context_id:
                raise LaneError("fragments of two messages interleaved")
            if control & 0x01:  # command set
                if message.elements is not None:
                    raise LaneError("a command set fragment after the command set")
                message.command += fragment
                if control & 0x02:
                    message.elements = decode_command(message.command)
                    done = self._command_complete(message, store_ok)
                    if done is not None:
                        self._message = None
                        if done:
                            yield message.elements
            else:  # data set
                if message.elements is None:
                    raise LaneError("a data set fragment before its command set was complete")
                if message.incoming is not None:
                    try:
                        message.incoming.write(fragment)
                    except OSError:  # the disk is full, say: refuse this instance, go on with the association
                        message.incoming.discard()
                        message.incoming, message.status = None, OUT_OF_RESOURCES
                if control & 0x02:
                    self._message = None
                    if self._data_set_complete(message):
                        yield message.elements or {}

    def _command_complete(self, message: _Message, store_ok: bool) -> bool | None:
        """Act on a complete command set. None: a data set follows; True: a message to yield; False: handled."""
        elements = message.elements or {}
        has_data = _us_of(elements, DATA_SET_TYPE) != NO_DATA_SET
        if _us_of(elements, COMMAND_FIELD) != C_STORE_RQ:
            return None if has_data else True  # a response's data set (failed instances' UIDs) is skipped
        if not store_ok:
            raise LaneError("a C-STORE request on the association of a C-MOVE")
        if not has_data:
            raise LaneError("a C-STORE request without a data set")
        syntax = self.contexts.get(message.context_id)
        receiver = self.receiver
        if syntax is None or receiver is None:
            raise LaneError("a C-STORE request on an unknown presentation context")
        begun = receiver.begin(_text_of(elements, AFFECTED_SOP_CLASS), _text_of(elements, AFFECTED_SOP_INSTANCE),
                               syntax)
        if isinstance(begun, int):
            message.status = begun
        else:
            message.incoming = begun
        return None

    def _data_set_complete(self, message: _Message) -> bool:
        """A message's data set is complete: answer a C-STORE request (False); True for any other message (a
        response with an identifier - its failed instances, which we do not need - is yielded like one without)."""
        elements = message.elements or {}
        if _us_of(elements, COMMAND_FIELD) != C_STORE_RQ:
            return True
        status = message.incoming.finish() if message.incoming is not None else message.status
        message.incoming = None
        self.received += 1
        response = encode_command({
            AFFECTED_SOP_CLASS: elements.get(AFFECTED_SOP_CLASS, b""), COMMAND_FIELD: us(C_STORE_RSP),
            RESPONDED_TO: elements.get(MESSAGE_ID, us(0)), DATA_SET_TYPE: us(NO_DATA_SET), STATUS: us(status),
            AFFECTED_SOP_INSTANCE: elements.get(AFFECTED_SOP_INSTANCE, b"")})
        self._send(pdata_pdus(message.context_id, response, None, self.peer_max_pdu))
        if self.receiver is not None:
            self.receiver.prepare()  # the next instance's file, while the PACS reads it
        return False

    def _drop_message(self) -> None:
        message, self._message = self._message, None
        if message is not None and message.incoming is not None:
            message.incoming.discard()

    # -- the socket ---------------------------------------------------------------------------------------------------
    def _send(self, pdus: list[bytes]) -> None:
        with self.tuned.send_lock:
            for pdu in pdus:
                self.sock.sendall(pdu)

    def _next_pdu(self) -> tuple[int, memoryview]:
        """The next whole PDU in the buffer: its type and its body (a view, valid until the next call)."""
        self._consumed = self._start
        self._fill(6)
        kind, length = _PDU_HEADER.unpack_from(self._buffer, self._start)
        if length > MAX_PDU + 65536:
            raise LaneError(f"a PDU of {length} bytes, beyond the {MAX_PDU} we announced")
        self._fill(6 + length)
        body = self._view[self._start + 6:self._start + 6 + length]
        self._start += 6 + length
        return kind, body

    def _fill(self, need: int) -> None:
        """Make ``need`` bytes available from ``_start``, reading the socket (many PDUs at a time)."""
        if self._end - self._start >= need:
            return
        if len(self._buffer) - self._start < need:  # move what is left to the front, growing the buffer if needed
            left = bytes(self._view[self._start:self._end])  # (a copy: source and target may overlap)
            if need > len(self._buffer):
                self._view.release()
                self._buffer = bytearray(need)
                self._view = memoryview(self._buffer)
            self._view[:len(left)] = left
            self._consumed -= self._start
            self._start, self._end = 0, len(left)
        deadline = time.monotonic() + self.timeout_s
        while self._end - self._start < need:
            left_s = deadline - time.monotonic()
            readable, _, _ = select.select([self.sock], [], [], max(0.0, left_s))
            if not readable:
                raise _Timeout(f"no data within {self.timeout_s:g} s")
            count = self.sock.recv_into(self._view[self._end:])
            if not count:
                raise LaneError("the PACS closed the connection")
            self._end += count
            self.tuned.quickack()

    def _push_back_current(self) -> None:
        """Return the PDU just read, and anything after it, to the socket for pynetdicom to read."""
        self._start = self._consumed
        self._release_socket()

    def _release_socket(self) -> None:
        """Hand the socket back to pynetdicom (once), with any bytes read but not consumed."""
        if self._view is None:
            return
        left = bytes(self._view[self._start:self._end])
        self._view.release()
        self._view = None  # type: ignore[assignment]
        self.tuned.unpark(left)
