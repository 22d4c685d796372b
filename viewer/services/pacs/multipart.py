"""``multipart/related`` bodies (WADO-RS answers, STOW-RS requests), read incrementally and written in one piece.

:class:`MultipartReader` is fed the response in whatever chunks the network gives and hands back each part's bytes
as soon as its closing delimiter has arrived, so a retrieve can store instance 1 while instance 2 is still on the
wire. It is strict where a lenient reader would store garbage: a part is complete only once the next delimiter is
seen (a connection cut mid-part is an error, not a short file), and a part larger than ``max_part_bytes`` is refused
(a hostile or broken server cannot make us buffer without end).
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from email.message import Message

#: Part headers longer than this are refused (real ones are a few hundred bytes).
MAX_HEADER_BYTES = 64 * 1024


class MultipartError(ValueError):
    """The body is not the multipart message it claims to be."""


def boundary_of(content_type: str) -> str | None:
    """The ``boundary`` parameter of a ``multipart/*`` Content-Type, or None when the type is not multipart."""
    message = Message()
    message["content-type"] = content_type or ""
    if message.get_content_maintype() != "multipart":
        return None
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not 0 < len(boundary) <= 200:
        raise MultipartError("multipart answer without a usable boundary")
    return boundary


class MultipartReader:
    """Split a ``multipart/related`` stream into its parts' bodies.

    Parameters
    ----------
    content_type
        The response's Content-Type. A plain ``application/dicom`` (servers that send a single instance
        unwrapped) is accepted as one part.
    max_part_bytes
        The largest part accepted; a larger one raises :class:`MultipartError`.
    """

    def __init__(self, content_type: str, max_part_bytes: int) -> None:
        boundary = boundary_of(content_type)
        self.single = boundary is None
        self.max_part_bytes = int(max_part_bytes)
        # The leading CRLF lets the first boundary (which has none before it) match the same delimiter as the rest.
        self._delimiter = b"\r\n--" + (boundary or "").encode("ascii", "replace")
        self._buffer = bytearray() if self.single else bytearray(b"\r\n")
        self._state = "preamble"
        self._search_from = 0
        self.n_parts = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add the next bytes of the body; returns the parts completed by them (possibly none)."""
        self._buffer += chunk
        if self.single:
            self._check_size(len(self._buffer))
            return []
        parts: list[bytes] = []
        while self._step(parts):
            pass
        return parts

    def finish(self) -> list[bytes]:
        """The body has ended: returns the last parts, or raises :class:`MultipartError` when it ended mid-message."""
        if self.single:
            self._state = "done"
            self.n_parts = 1 if self._buffer else 0
            return [bytes(self._buffer)] if self._buffer else []
        if self._state == "preamble" and self.n_parts == 0:
            raise MultipartError("the multipart answer holds no part")
        if self._state == "after_delimiter":
            raise MultipartError(f"the multipart answer ended after part {self.n_parts}, without its closing delimiter")
        if self._state != "done":
            raise MultipartError(f"the multipart answer ended in the middle of part {self.n_parts + 1}")
        return []

    # One state transition; returns False when more bytes are needed.
    def _step(self, parts: list[bytes]) -> bool:
        buffer, delimiter = self._buffer, self._delimiter
        if self._state == "preamble":
            index = buffer.find(delimiter)
            if index < 0:
                del buffer[: max(0, len(buffer) - len(delimiter) + 1)]
                return False
            del buffer[: index + len(delimiter)]
            self._state = "after_delimiter"
            return True
        if self._state == "after_delimiter":
            if len(buffer) < 2:
                return False
            if buffer[:2] == b"--":
                self._state = "done"
                buffer.clear()
                return False
            end = buffer.find(b"\r\n")  # the rest of the delimiter line (transport padding allowed)
            if end < 0:
                if len(buffer) > MAX_HEADER_BYTES:
                    raise MultipartError("malformed multipart delimiter line")
                return False
            if buffer[:end].strip(b" \t"):
                raise MultipartError("malformed multipart delimiter line")
            del buffer[: end + 2]
            self._state = "headers"
            return True
        if self._state == "headers":
            if buffer[:2] == b"\r\n":  # a part without headers
                del buffer[:2]
            else:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEADER_BYTES:
                        raise MultipartError("multipart part headers too long")
                    return False
                del buffer[: end + 4]
            self._state = "body"
            self._search_from = 0
            return True
        if self._state == "body":
            index = buffer.find(delimiter, self._search_from)
            if index < 0:
                self._check_size(len(buffer) - len(delimiter))
                self._search_from = max(0, len(buffer) - len(delimiter) + 1)
                return False
            self._check_size(index)
            with memoryview(buffer) as view:  # one copy (``bytes(buffer[:index])`` makes two)
                parts.append(view[:index].tobytes())
            self.n_parts += 1
            del buffer[: index + len(delimiter)]  # cheap: a bytearray drops its head by moving its start
            self._state = "after_delimiter"
            return True
        buffer.clear()  # "done": an epilogue is ignored
        return False

    def _check_size(self, n_bytes: int) -> None:
        if n_bytes > self.max_part_bytes:
            raise MultipartError(f"part {self.n_parts + 1} is larger than the {self.max_part_bytes} bytes allowed")


def encode_multipart(parts: Iterable[bytes], media_type: str = "application/dicom") -> tuple[bytes, str]:
    """One ``multipart/related`` body holding ``parts``; returns it and its Content-Type header value."""
    boundary = uuid.uuid4().hex
    pieces: list[bytes] = []
    for part in parts:
        pieces += [b"--", boundary.encode(), b"\r\nContent-Type: ", media_type.encode(), b"\r\n\r\n", part, b"\r\n"]
    pieces += [b"--", boundary.encode(), b"--\r\n"]
    return b"".join(pieces), f'multipart/related; type="{media_type}"; boundary={boundary}'
