"""Compressed frames straight from a file's encapsulated PixelData, without pydicom.

The shared tag walker (:mod:`viewer.core.dicom.tags`) stops at PixelData and gives the file offset of its
value. For encapsulated (compressed) transfer syntaxes that value is a run of items (PS3.5 A.4): the Basic
Offset Table, then the fragments, then a sequence delimiter. This module reads only the 8-byte item headers
to map the fragments, then the bytes of the one frame asked for - so a compressed CT slice costs one small
read plus the codec, not a pydicom parse of the whole file (which was most of the time for RLE).

Only layouts that need no guessing are handled: a single-frame file (all fragments are the frame), a Basic
Offset Table, or one fragment per frame. Anything else raises :class:`FrameLayoutError` and the caller uses
pydicom, which knows the remaining heuristics (JPEG markers across fragments without an offset table).
"""
from __future__ import annotations

import os
import struct

_ITEM, _SEQ_END = 0xFFFEE000, 0xFFFEE0DD
_TAG_LEN = struct.Struct("<HHI")
_O_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)


class FrameLayoutError(ValueError):
    """The encapsulated data cannot be split into frames without guessing, or its items run past the file."""


def _pread(fd: int, n: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, n, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # Windows: no pread; our own descriptor, so seek + read is the same
    return os.read(fd, n)


class EncapsulatedFrames:
    """The fragment map of one file's encapsulated PixelData; :meth:`frame` reads one frame's bytes.

    Parameters
    ----------
    path
        The file.
    value_offset
        File offset of the PixelData value (its first item, the Basic Offset Table).
    number_of_frames
        Frames the header declares.
    """

    def __init__(self, path: str, value_offset: int, number_of_frames: int) -> None:
        self.path = str(path)
        self.number_of_frames = max(1, int(number_of_frames))
        # Real files split a frame into a few fragments at most; a run of millions of empty items is an attack
        # on the item loop, not an image (pydicom then reads it, under the size checks in limits.py).
        self._max_fragments = 64 * self.number_of_frames + 1024
        fd = os.open(self.path, _O_FLAGS)
        try:
            size = os.fstat(fd).st_size
            self._offset_table, self._fragments = self._map(fd, int(value_offset), size)
        finally:
            os.close(fd)
        self._frames = self._split()

    def _map(self, fd: int, pos: int, size: int) -> tuple[list[int], list[tuple[int, int, int]]]:
        """(Basic Offset Table, fragments as (item start relative to the first fragment, data offset, length))."""
        offset_table: list[int] | None = None
        fragments: list[tuple[int, int, int]] = []
        first_fragment = 0
        while True:
            head = _pread(fd, 8, pos)
            if len(head) < 8:
                break  # no delimiter before the end of the file: keep the complete fragments seen
            group, element, length = _TAG_LEN.unpack(head)
            tag = group << 16 | element
            if tag == _SEQ_END:
                break
            if tag != _ITEM:
                raise FrameLayoutError("encapsulated pixel data holds something other than items")
            if pos + 8 + length > size:
                raise FrameLayoutError("a pixel data fragment runs past the end of the file")
            if offset_table is None:
                if length % 4:
                    raise FrameLayoutError("the Basic Offset Table's length is not a multiple of 4")
                raw = _pread(fd, length, pos + 8) if length else b""
                offset_table = list(struct.unpack(f"<{length // 4}I", raw))
                first_fragment = pos + 8 + length
            else:
                fragments.append((pos - first_fragment, pos + 8, length))
                if len(fragments) > self._max_fragments:
                    raise FrameLayoutError(f"more than {self._max_fragments} fragments")
            pos += 8 + length
        return offset_table or [], fragments

    def _split(self) -> list[list[tuple[int, int]]]:
        """Each frame as a list of (data offset, length) pieces."""
        n, fragments = self.number_of_frames, self._fragments
        if not fragments:
            raise FrameLayoutError("encapsulated pixel data holds no fragment")
        if n == 1:
            return [[(start, length) for _, start, length in fragments]]
        table = self._offset_table
        if len(table) == n:
            if table[0] != 0 or any(b <= a for a, b in zip(table, table[1:])):
                raise FrameLayoutError("the Basic Offset Table is not increasing from 0")
            frames: list[list[tuple[int, int]]] = [[] for _ in range(n)]
            k = 0
            for item_start, start, length in fragments:
                while k + 1 < n and item_start >= table[k + 1]:
                    k += 1
                frames[k].append((start, length))
            if any(not pieces for pieces in frames):
                raise FrameLayoutError("the Basic Offset Table points between fragments")
            return frames
        if len(fragments) == n:
            return [[(start, length)] for _, start, length in fragments]
        raise FrameLayoutError(f"{len(fragments)} fragments for {n} frames and no usable offset table")

    def frame(self, index: int) -> bytes:
        """The compressed bytes of frame ``index`` (0-based)."""
        if not 0 <= index < len(self._frames):
            raise IndexError(f"frame {index} of {len(self._frames)}")
        pieces = self._frames[index]
        fd = os.open(self.path, _O_FLAGS)
        try:
            parts = [_pread(fd, length, start) for start, length in pieces]
        finally:
            os.close(fd)
        if sum(map(len, parts)) != sum(length for _, length in pieces):
            raise FrameLayoutError("the file shrank while its frame was read")
        return parts[0] if len(parts) == 1 else b"".join(parts)
