"""The one fast DICOM tag walker, shared by the scan (header values) and the loader (PixelData offset).

It reads Part 10 files whose data set is little endian (explicit or implicit VR, any compression): the file
meta, then the data set's top level up to the pixel data, through ``pread`` into a sliding 8 KiB window. It
keeps the raw bytes of a few wanted elements and skips every other value by its length (undefined-length
sequences item by item). It never guesses: on anything unexpected it raises :class:`Fallback`, and the
caller reads the file with pydicom instead.
"""
from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Container, Mapping
from typing import Any, NamedTuple

UNDEFINED = 0xFFFFFFFF
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
_BIG_ENDIAN = "1.2.840.10008.1.2.2"
_DEFLATED = "1.2.840.10008.1.2.1.99"

VRS = frozenset(
    b"AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_HEADER = struct.Struct("<HH2sH")  # group, element, VR, 16-bit length (explicit VR)
_TAG_LEN = struct.Struct("<HHI")  # group, element, 32-bit length (implicit VR, items, delimiters)
_U32 = struct.Struct("<I")
_CHUNK = 8192
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXELS_FROM = 0x7FE00008  # FloatPixelData, DoubleFloatPixelData, PixelData, then only trailing elements
_MAX_DEPTH = 32  # nested sequences; real files nest a few levels

# O_NONBLOCK: should a FIFO slip in between the scan's check and this open, the open returns at once
# instead of waiting for a writer (and the fstat below refuses it); it changes nothing for regular files.
_O_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
if hasattr(os, "pread"):
    _pread = os.pread
else:  # Windows: no pread; a seek + read on our own descriptor is equivalent.

    def _pread(fd: int, n: int, offset: int) -> bytes:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, n)


class Fallback(Exception):
    """The walker met something it does not handle; pydicom must read the file."""


class Truncated(Exception):
    """An element runs past the end of the file: the header is cut short (pydicom would half-read it)."""


class NotPart10(Exception):
    """No preamble and ``DICM`` marker; ``head`` holds the file's first bytes (up to 8 KiB)."""

    def __init__(self, head: bytes) -> None:
        super().__init__("no DICM marker")
        self.head = head


class Tags(NamedTuple):
    """What :func:`read_tags` found at the top level of a file's data set."""

    syntax: str  #: transfer syntax UID
    media_class: str  #: MediaStorageSOPClassUID of the file meta
    raw: dict[Any, bytes]  #: ``wanted[tag] -> value bytes`` for the wanted elements present
    flagged: set[int]  #: the flagged tags present
    pixel_tag: int | None  #: the element the walk stopped at (PixelData or another >= (7FE0,0008)); None: none
    pixel_offset: int  #: file offset of that element's value
    pixel_length: int  #: its value length (UNDEFINED when encapsulated)


class _Window:
    """A sliding window of a file's bytes: ``buf`` holds the file from offset ``base``."""

    __slots__ = ("fd", "size", "base", "buf")

    def __init__(self, fd: int, size: int, buf: bytes) -> None:
        self.fd, self.size, self.base, self.buf = fd, size, 0, buf

    def need(self, pos: int, n: int) -> int:
        """Make bytes [pos, pos + n) available; return their offset in ``buf``."""
        local = pos - self.base
        if local >= 0 and local + n <= len(self.buf):
            return local
        if pos + n > self.size:
            raise Truncated()
        self.buf = _pread(self.fd, max(n, _CHUNK), pos)
        self.base = pos
        if len(self.buf) < n:
            raise Fallback("short read")
        return 0


def read_tags(
    path: str, wanted: Mapping[int, Any], flagged: Container[int] = (), stop_at_flagged: bool = False
) -> Tags:
    """Walk a Part 10 file's header up to its pixel data.

    Parameters
    ----------
    path
        The file.
    wanted
        ``tag -> key``: the top-level elements whose raw value bytes to keep (under ``key`` in ``Tags.raw``).
    flagged
        Top-level tags whose presence the caller must know (``Tags.flagged``); their values are skipped.
    stop_at_flagged
        Raise :class:`Fallback` at the first flagged tag instead of walking on.

    Raises
    ------
    NotPart10
        No 128-byte preamble and ``DICM`` marker.
    Truncated
        An element of the header runs past the end of the file.
    Fallback
        Big endian or deflated data set, mis-labelled VR encoding, unknown VR, a malformed sequence...
    OSError
        The file cannot be opened or read.
    """
    fd = os.open(path, _O_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        head = _pread(fd, _CHUNK, 0)
        if len(head) < 132 or head[128:132] != b"DICM":
            raise NotPart10(head)
        try:
            return _walk(_Window(fd, os.fstat(fd).st_size, head), wanted, flagged, stop_at_flagged)
        except (struct.error, ValueError) as exc:  # ValueError: UnicodeDecodeError of the meta's UIDs
            raise Fallback(type(exc).__name__) from None
    finally:
        os.close(fd)


def read_tags_in(data: bytes, wanted: Mapping[int, Any]) -> Tags:
    """:func:`read_tags` over a whole file's bytes already in memory (an instance received from a PACS)."""
    if len(data) < 132 or data[128:132] != b"DICM":
        raise NotPart10(data[:_CHUNK])
    try:
        return _walk(_Window(-1, len(data), data), wanted, (), False)  # the window holds everything: no pread
    except (struct.error, ValueError) as exc:
        raise Fallback(type(exc).__name__) from None


def _walk(win: _Window, wanted: Mapping[int, Any], flagged: Container[int], stop_at_flagged: bool) -> Tags:
    # File meta information: always explicit VR little endian.
    pos = 132
    meta: dict[int, bytes] = {}
    while True:
        if pos + 8 > win.size:
            raise Truncated()  # nothing after the file meta
        local = win.need(pos, 12)
        group, elem, vr, length = _HEADER.unpack_from(win.buf, local)
        if group != 0x0002:
            break
        if vr in _LONG_VRS:
            length, header = _U32.unpack_from(win.buf, local + 8)[0], 12
        elif vr in VRS:
            header = 8
        else:
            raise Fallback("unknown VR in the file meta")
        if length == UNDEFINED:
            raise Fallback("undefined length in meta")
        if elem in (0x0002, 0x0010):
            local = win.need(pos + header, length)
            meta[elem] = win.buf[local : local + length]
        pos += header + length
    if 0x0010 not in meta:
        raise Fallback("no transfer syntax")
    syntax = meta[0x0010].decode("ascii").strip(" \x00")
    media_class = meta.get(0x0002, b"").decode("ascii").strip(" \x00")
    if syntax in (_BIG_ENDIAN, _DEFLATED):
        raise Fallback("big endian or deflated")
    implicit = syntax == IMPLICIT_VR_LE
    # pydicom's check: a dataset that says implicit but starts with a VR (or vice versa) is mis-labelled.
    local = win.need(pos, 6)
    looks_explicit = 0x40 < win.buf[local + 4] < 0x5B and 0x40 < win.buf[local + 5] < 0x5B
    if looks_explicit == implicit:
        raise Fallback("VR encoding does not match the transfer syntax")

    raw: dict[Any, bytes] = {}
    seen: set[int] = set()
    size = win.size
    buf, base, end = win.buf, win.base, len(win.buf)
    while pos < size:
        # The window's bounds checks, inlined: this loop runs ~100 times per file.
        local = pos - base
        if local + 12 > end:
            local = win.need(pos, max(8, min(12, size - pos)))
            buf, base, end = win.buf, win.base, len(win.buf)
        if implicit:
            group, elem, length = _TAG_LEN.unpack_from(buf, local)
            header = 8
            vr = b"SQ" if length == UNDEFINED else b""
        else:
            group, elem, vr, length = _HEADER.unpack_from(buf, local)
            if vr in _LONG_VRS:
                if local + 12 > end:
                    raise Truncated()  # the file ends inside the element's header
                length, header = _U32.unpack_from(buf, local + 8)[0], 12
            elif vr in VRS:
                header = 8
            else:
                raise Fallback("unknown VR")
        tag = group << 16 | elem
        if tag >= _PIXELS_FROM:
            return Tags(syntax, media_class, raw, seen, tag, pos + header, length)
        if tag in flagged:
            if stop_at_flagged:
                raise Fallback("flagged element")
            seen.add(tag)
        elif group == 0xFFFE:
            raise Fallback("stray item")
        if length == UNDEFINED:
            if vr != b"SQ":
                raise Fallback("undefined length non-sequence")
            pos = _skip_sequence(win, pos + header, implicit)
            buf, base, end = win.buf, win.base, len(win.buf)
            continue
        key = wanted.get(tag)
        if key is not None:
            local += header
            if local + length > end:
                local = win.need(pos + header, length)
                buf, base, end = win.buf, win.base, len(win.buf)
            raw[key] = buf[local : local + length]
        pos += header + length
    if pos > size:
        raise Truncated()
    return Tags(syntax, media_class, raw, seen, None, 0, 0)


def _skip_sequence(win: _Window, pos: int, implicit: bool, depth: int = 0) -> int:
    """Skip an undefined-length sequence starting at its first item; return the offset after it."""
    if depth > _MAX_DEPTH:
        raise Fallback("sequences nested too deep")
    while True:
        local = win.need(pos, 8)
        group, elem, length = _TAG_LEN.unpack_from(win.buf, local)
        tag = group << 16 | elem
        pos += 8
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise Fallback("bad item")
        if length != UNDEFINED:
            pos += length
            continue
        while True:  # elements of an undefined-length item, up to its delimiter
            local = win.need(pos, 8)
            group, elem, vr, length = _HEADER.unpack_from(win.buf, local)
            tag = group << 16 | elem
            if tag == _ITEM_END:
                pos += 8
                break
            if implicit:
                length, header = _U32.unpack_from(win.buf, local + 4)[0], 8
                vr = b"SQ" if length == UNDEFINED else b""
            elif vr in _LONG_VRS:
                local = win.need(pos, 12)
                length, header = _U32.unpack_from(win.buf, local + 8)[0], 12
            elif vr in VRS:
                header = 8
            else:
                raise Fallback("unknown VR in item")
            if length == UNDEFINED:
                if vr != b"SQ":
                    raise Fallback("undefined length non-sequence in item")
                pos = _skip_sequence(win, pos + header, implicit, depth + 1)
            else:
                pos += header + length
            if pos > win.size:
                raise Truncated()
