"""Declared sizes are claims, not facts: caps and checks made before anything is allocated or inflated.

A DICOM header says how many frames a file holds, how large each is, and (inside compressed frames) how large
the codec will make them. Any of these can lie - a damaged file, or a hostile one - and trusting them costs
gigabytes or hours: NumberOfFrames 2^31 loops per claimed frame, Rows = Columns = 65535 over 512 x 512 data
allocates 8 GiB, a JPEG SOF claiming 65500 x 65500 makes the decoder allocate 4 GiB, a 2 MB deflated data set
inflates to 2 GB. So every claim is checked here against the bytes present, or against a cap, *before* the
allocation, and the refusal says what was claimed and what is there ("declares 2147483647 frames but holds 1").

The cap on one series' decoded voxels is :data:`DEFAULT_MAX_SERIES_BYTES` (4 GiB), overridable with the
environment variable ``HOUNSFIELD_MAX_SERIES_BYTES`` (bytes, or with a K/M/G suffix).
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from typing import Any

__all__ = [
    "DEFAULT_MAX_SERIES_BYTES",
    "DEFLATED",
    "ENV_MAX_SERIES_BYTES",
    "SizeLimitError",
    "check_codestream",
    "check_decoded_size",
    "check_frames_present",
    "count_fragments",
    "deflate_limit",
    "format_bytes",
    "InflatingReader",
    "is_decoder_failure",
    "max_series_bytes",
    "read_deflated_dataset",
]

GiB = 1 << 30
MiB = 1 << 20
DEFAULT_MAX_SERIES_BYTES = 4 * GiB
ENV_MAX_SERIES_BYTES = "HOUNSFIELD_MAX_SERIES_BYTES"
DEFLATED = "1.2.840.10008.1.2.1.99"

#: Deflate: an inflated data set may be this many times its compressed size (or _DEFLATE_FLOOR, whichever is
#: larger). Real image data deflates 2-10x; only runs of one value (a blank image) reach zlib's ~1000x, and
#: the floor lets those through for any image of realistic size.
_DEFLATE_RATIO = 100
_DEFLATE_FLOOR = 256 * MiB

_ITEM, _SEQ_END = 0xFFFEE000, 0xFFFEE0DD
_TAG_LEN = struct.Struct("<HHI")


class SizeLimitError(ValueError):
    """A declared size does not match the bytes present, or exceeds a cap. ``reason`` is short and has no
    patient data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def format_bytes(n: float) -> str:
    """``1536 -> '1.5 KiB'``: sizes in refusal messages."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def max_series_bytes() -> int:
    """The cap on one series' decoded voxels, in bytes (``HOUNSFIELD_MAX_SERIES_BYTES`` or 4 GiB)."""
    text = os.environ.get(ENV_MAX_SERIES_BYTES, "").strip().upper().removesuffix("B").removesuffix("I")
    if not text:
        return DEFAULT_MAX_SERIES_BYTES
    scale = {"K": 1 << 10, "M": MiB, "G": GiB, "T": 1 << 40}.get(text[-1], 1)
    try:
        value = int(float(text[:-1] if scale > 1 else text) * scale)
    except ValueError:
        return DEFAULT_MAX_SERIES_BYTES  # a typo in the variable must not disable the cap
    return value if value > 0 else DEFAULT_MAX_SERIES_BYTES


# ------------------------------------------------------------------------------------------ frames and bytes
def count_fragments(read_at: Callable[[int, int], bytes], offset: int, end: int, limit: int) -> int:
    """Fragments of encapsulated pixel data (after the Basic Offset Table), counted from the item headers.

    Each frame starts at least one fragment, so this bounds the number of frames the file can hold. Only the
    8-byte item headers are read; counting stops at ``limit`` (the frames declared: more proves nothing more).

    Parameters
    ----------
    read_at
        ``read_at(n, offset) -> bytes`` (``os.pread`` on an open descriptor, or a slice of a buffer).
    offset
        Where the pixel data's value starts (its first item: the Basic Offset Table).
    end
        File (or buffer) size.
    limit
        Stop counting here.
    """
    count, first, pos = 0, True, offset
    while pos + 8 <= end and count < limit:
        head = read_at(8, pos)
        if len(head) < 8:
            break
        group, elem, length = _TAG_LEN.unpack(head)
        tag = group << 16 | elem
        if tag != _ITEM:
            break  # sequence delimiter, or junk: what came before is all there is
        pos += 8 + length
        if pos > end:
            break  # a fragment cut short by the end of the file holds no complete frame
        if first:
            first = False  # the Basic Offset Table item, not a fragment
        else:
            count += 1
    return count


def check_frames_present(declared: int, rows: int, columns: int, samples: int, bits_allocated: int,
                         pixel_length: int | None, fragments: Callable[[int], int] | None) -> None:
    """Refuse a header that declares more pixel data than its file holds.

    Parameters
    ----------
    declared
        NumberOfFrames (1 when absent).
    rows, columns, samples, bits_allocated
        As declared.
    pixel_length
        The native PixelData's value length, or None when the pixel data is encapsulated.
    fragments
        For encapsulated data: ``fragments(limit) -> count`` (see :func:`count_fragments`).

    Raises
    ------
    SizeLimitError
        "declares 2147483647 frames but holds 1", "declares 65535 x 65535 pixels (8.0 GiB a frame) but
        holds 512.0 KiB of pixel data", or for uncompressed data "declares 0 x 384 pixels (a zero size)".
    """
    if pixel_length is None:
        if fragments is None or declared <= 1:
            return
        held = fragments(declared)
        if held < declared:
            raise SizeLimitError(f"declares {declared} frames but holds {held} (compressed fragments)")
        return
    if rows <= 0 or columns <= 0:
        # nothing to check the frame count against: 10^9 frames of nothing would each get a slot in the loader
        raise SizeLimitError(f"declares {rows} x {columns} pixels (a zero size)")
    # BitsAllocated 0 counted as 1: the frame count is still bounded (a billion frames of 0 bits ran the loader out
    # of memory; bench/fuzz.py seed 71), and a file whose data fits what it declares is left to the decoders
    frame_bits = rows * columns * max(1, samples) * max(1, bits_allocated)
    held = pixel_length * 8 // frame_bits
    if held == 0:
        raise SizeLimitError(
            f"declares {rows} x {columns} pixels ({format_bytes(frame_bits / 8)} a frame) but holds "
            f"{format_bytes(pixel_length)} of pixel data")
    if held < declared:
        raise SizeLimitError(f"declares {declared} frames but holds {held}")


def check_decoded_size(frames: int, rows: int, columns: int, samples: int, itemsize: int,
                       cap: int | None = None) -> None:
    """Refuse a volume whose decoded size exceeds the cap (:func:`max_series_bytes`), before allocating it.

    Raises
    ------
    SizeLimitError
        Saying the size, the cap and how to raise it.
    """
    cap = max_series_bytes() if cap is None else cap
    size = frames * rows * columns * max(1, samples) * itemsize
    if size > cap:
        raise SizeLimitError(
            f"decoding {frames} x {rows} x {columns} pixels needs {format_bytes(size)}, above the "
            f"{format_bytes(cap)} limit (set {ENV_MAX_SERIES_BYTES} to raise it)")


# ---------------------------------------------------------------------------------------------- codecs
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # JPEG start-of-frame (not DHT/JPG/DAC)
_JPEG_LS_SOF = 0xF7
_J2K_SIZ = 0xFF51


def _codestream_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) a JPEG / JPEG-LS / JPEG 2000 codestream declares in its frame header, or None."""
    header = _frame_header(data)
    return header[:2] if header else None


def _frame_header(data: bytes) -> tuple[int, int, int | None, int | None] | None:
    """(height, width, sample precision, components) of a codestream's frame header (JPEG family: the SOF;
    JPEG 2000: the SIZ, without precision and components), or None."""
    if data[:2] == b"\xff\xd8":  # JPEG family: walk the marker segments up to the SOF
        pos = 2
        while pos + 4 <= len(data):
            if data[pos] != 0xFF:
                # libjpeg skips stray bytes to the next marker ("extraneous bytes before marker") and reads the SOF
                # behind them: so must this walk (a damaged APP0 marker hid a 65500 x 65500 SOF; fuzz seed 57)
                pos = data.find(b"\xff", pos)
                if pos < 0:
                    return None
                continue
            marker = data[pos + 1]
            if marker in (0xFF, 0x00):  # a fill byte; a stuffed zero is no marker either (libjpeg skips both)
                pos += 1 if marker == 0xFF else 2
                continue
            (length,) = struct.unpack_from(">H", data, pos + 2)
            if marker in _SOF_MARKERS or marker == _JPEG_LS_SOF:
                if pos + 9 > len(data):
                    return None
                precision = data[pos + 4]
                height, width = struct.unpack_from(">HH", data, pos + 5)
                components = data[pos + 9] if pos + 9 < len(data) else None
                return height, width, precision, components
            if marker == 0xDA:  # start of scan before any SOF: nothing declared
                return None
            pos += 2 + length
        return None
    j2k = data.find(b"\xff\x4f\xff\x51", 0, 256)  # SOC + SIZ (raw codestream or inside a JP2 box)
    if j2k >= 0 and j2k + 20 <= len(data):
        xsiz, ysiz, xoff, yoff = struct.unpack_from(">IIII", data, j2k + 8)
        return max(0, ysiz - yoff), max(0, xsiz - xoff), None, None
    return None


_JP2_SIGNATURE = b"\x00\x00\x00\x0c\x6a\x50\x20\x20"


def _check_jp2_boxes(data: bytes) -> None:
    """Refuse a JP2 file format header whose boxes before the codestream (``jp2c``) do not each move on by at
    least a box header: pydicom steps through them by their lengths, and a box of length 0 in front of the
    codestream kept it there forever (bench/fuzz.py seed 44). Only the boxes within ``data`` are checked."""
    if not data.startswith(_JP2_SIGNATURE):
        return
    pos = 12
    while pos + 8 <= len(data):
        (length,), kind = struct.unpack_from(">I", data, pos), data[pos + 4:pos + 8]
        if kind == b"jp2c":
            return
        if length < 8:
            raise SizeLimitError(f"a JPEG 2000 header box declares {length} bytes (the codestream cannot be found)")
        pos += length


def check_codestream(first_bytes: bytes, rows: int, columns: int) -> None:
    """Refuse a compressed frame whose own header declares a larger image than Rows x Columns.

    Decoders allocate what the codestream's frame header declares before they find the data is missing (a
    JPEG SOF of 65500 x 65500 made libjpeg reach 3.6 GB). ``first_bytes`` is the start of the frame (the
    first few KiB hold its frame header; a JP2 header's boxes are checked as far as they reach).

    Raises
    ------
    SizeLimitError
        When the codestream declares more rows or columns than the DICOM header, or the header none, or a JP2
        header box would keep the decoder from its codestream (:func:`_check_jp2_boxes`).
    """
    _check_jp2_boxes(first_bytes)
    if not rows or not columns:
        # nothing bounds what the codestream claims: with Columns 0 in a fuzzed header, libjpeg allocated for the
        # 65500 x 65500 its SOF declared (5.9 GB, bench/fuzz.py seed 39)
        raise SizeLimitError(f"the header declares {rows} x {columns} pixels (a zero size)")
    header = _frame_header(first_bytes)
    if header is None:
        return
    height, width, precision, components = header
    if precision is not None and not 2 <= precision <= 16:
        # GDCM crashed (SIGSEGV) on a 144-bit lossless JPEG (bench/fuzz.py); JPEG allows 2 to 16 bits.
        raise SizeLimitError(f"a compressed frame declares {precision}-bit samples (JPEG allows 2 to 16)")
    if components is not None and not 1 <= components <= 4:
        raise SizeLimitError(f"a compressed frame declares {components} colour components (at most 4)")
    if height == 0 or width == 0:
        # JPEG allows a height of 0 (given later by a DNL marker), but no DICOM writer uses it and libjpeg
        # loops forever on it (found by bench/fuzz.py); a width of 0 is invalid everywhere.
        raise SizeLimitError(f"a compressed frame declares {height} x {width} pixels (a zero size)")
    if height > rows or width > columns:
        raise SizeLimitError(
            f"a compressed frame declares {height} x {width} pixels but the header says {rows} x {columns}")


def is_decoder_failure(error: BaseException) -> bool:
    """True for any failure a decoder can raise - including Rust panics (pyo3's ``PanicException`` derives
    from BaseException, so ``except Exception`` misses it) - but not for interpreter exits or Ctrl-C."""
    return not isinstance(error, (KeyboardInterrupt, SystemExit, GeneratorExit))


# --------------------------------------------------------------------------------------------- deflate
def deflate_limit(compressed_size: int) -> int:
    """Most bytes a deflated data set of ``compressed_size`` bytes may inflate to."""
    return min(max_series_bytes(), max(_DEFLATE_FLOOR, _DEFLATE_RATIO * compressed_size))


#: All-zero 8-byte reads in a row after which a read is refused. pydicom reads each element's header as 8 bytes, and
#: a zero-filled region parses as empty elements of tag (0000,0000), ~7 us each, at any depth: inside an
#: undefined-length sequence, where :func:`counting_elements` does not see them, 32 MiB of zeros cost 9.5 s. A real
#: data set never holds two in a row (a header is never all zeros; a value of 8 zero bytes follows a header); the
#: limit leaves 80 KB for a writer's zero padding after a data set without pixel data.
MAX_ZERO_HEADERS = 10_000


def _zero_headers(run: int, n: int | None, data: bytes) -> int:
    """The run of all-zero 8-byte reads after ``data`` (a read of ``n`` bytes); raises past the limit."""
    if n != 8 or data != bytes(8):
        return 0
    if run >= MAX_ZERO_HEADERS:
        raise SizeLimitError("a run of zero bytes where the data set's elements should be; refused as damaged")
    return run + 1


class ZeroRunGuard:
    """A file for pydicom's readers that refuses a zero-filled run of element headers (:data:`MAX_ZERO_HEADERS`)."""

    def __init__(self, fp: Any) -> None:
        self._fp, self._zeros = fp, 0
        self.name = getattr(fp, "name", "")

    def read(self, n: int | None = -1) -> bytes:
        data = self._fp.read(n)
        self._zeros = _zero_headers(self._zeros, n, data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._fp.seek(offset, whence)

    def tell(self) -> int:
        return self._fp.tell()


class InflatingReader(io.RawIOBase):
    """A seekable read-only file over a raw deflate stream, inflated only as far as it is read, up to a limit.

    Reading a deflated file's header thus inflates its first few KiB, not the whole data set; reading further
    than ``limit`` inflated bytes raises :class:`SizeLimitError` (a deflate bomb, or a damaged stream).
    """

    def __init__(self, fp: Any, compressed_size: int, limit: int | None = None, name: str = "") -> None:
        super().__init__()
        self._fp, self._compressed = fp, compressed_size
        self._limit = deflate_limit(compressed_size) if limit is None else limit
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._buf = bytearray()
        self._pos = 0
        self._done = False
        self._zeros = 0  # see ZeroRunGuard
        self.name = name

    def _fill(self, upto: float) -> None:
        while len(self._buf) < upto and not self._done:
            data = self._inflater.unconsumed_tail or self._fp.read(64 << 10)
            if not data:
                self._buf += self._inflater.flush()
                self._done = True
                break
            room = self._limit + 1 - len(self._buf)  # one byte over says "too much"
            # Small steps while a header is parsed (a read asks for a few bytes), larger ones to read it all.
            step = 4 * MiB if upto == float("inf") else max(256 << 10, int(upto) - len(self._buf))
            self._buf += self._inflater.decompress(data, max(1, min(room, step)))
            if len(self._buf) > self._limit:
                raise SizeLimitError(
                    f"deflated data set of {format_bytes(self._compressed)} expands beyond "
                    f"{format_bytes(self._limit)}; refused as a likely deflate bomb")
            self._done = self._inflater.eof

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        end = None if n is None or n < 0 else self._pos + n
        self._fill(float("inf") if end is None else end)
        out = bytes(self._buf[self._pos:end])
        self._pos += len(out)
        self._zeros = _zero_headers(self._zeros, n, out)
        return out

    def readinto(self, target: Any) -> int:
        data = self.read(len(target))
        target[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            self._fill(float("inf"))
            offset += len(self._buf)
        elif whence == io.SEEK_CUR:
            offset += self._pos
        self._pos = max(0, offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def getvalue(self) -> bytes:
        """The whole inflated data set (inflates the rest, within the limit)."""
        self._fill(float("inf"))
        return bytes(self._buf)


#: Top-level elements a data set may hold: a real one has hundreds, private tags included (a sequence counts once).
#: A run of empty 8-byte elements (zeros) parses at ~7 us each: 1.4 MB deflated into 256 MiB of them kept a header
#: read busy for 41 s, and a full read for 250 s, before the inflate cap stopped it.
MAX_ELEMENTS = 100_000


def counting_elements(stop_when: Callable[[Any, Any, int], bool] | None = None) -> Callable[[Any, Any, int], bool]:
    """A ``stop_when`` for pydicom's readers (``stop_when`` itself, when given) that refuses a data set of more than
    :data:`MAX_ELEMENTS` top-level elements.

    Raises
    ------
    SizeLimitError
        From the reader, at element :data:`MAX_ELEMENTS` + 1.
    """
    count = 0

    def stop(tag: Any, vr: Any, length: int) -> bool:
        nonlocal count
        count += 1
        if count > MAX_ELEMENTS:
            raise SizeLimitError(f"the data set holds more than {MAX_ELEMENTS:,} elements; refused as damaged")
        return bool(stop_when is not None and stop_when(tag, vr, length))
    return stop


def read_deflated_dataset(source: str | os.PathLike | bytes, *,
                          stop_when: Callable[[Any, Any, int], bool] | None = None,
                          specific_tags: list | None = None, keep_buffer: list | None = None) -> Any:
    """Read a Deflated Explicit VR Little Endian file (a path, or its bytes) with a bounded inflate, as pydicom would.

    pydicom inflates the whole data set with one ``zlib.decompress`` call, whatever its size, even to read
    a header; here it is inflated only as far as it is parsed (:class:`InflatingReader`), within
    :func:`deflate_limit`.

    Returns
    -------
    pydicom.dataset.FileDataset
        With ``file_meta``; stops where ``stop_when(tag, vr, length)`` is true. ``keep_buffer`` (a list), when
        given, receives the inflated data set's buffer before it is parsed.

    Raises
    ------
    SizeLimitError
        When the data set inflates beyond the limit, or holds more than :data:`MAX_ELEMENTS` elements.
    """
    from pydicom.dataset import FileDataset
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble

    name = "" if isinstance(source, bytes) else str(os.fspath(source))
    size = len(source) if isinstance(source, bytes) else os.path.getsize(name)
    with io.BytesIO(source) if isinstance(source, bytes) else open(name, "rb") as fp:
        preamble = read_preamble(fp, True)
        meta = _read_file_meta_info(fp)
        buffer = InflatingReader(fp, size - fp.tell(), name=name)
        if keep_buffer is not None:
            keep_buffer.append(buffer)  # for callers that need offsets in the inflated data (``stop_when``)
        # pydicom types its file argument as BinaryIO but needs only read/seek/tell, which the reader has
        ds = read_dataset(buffer, False, True, stop_when=counting_elements(stop_when),  # type: ignore[arg-type]
                          specific_tags=specific_tags)
    return FileDataset(name, ds, preamble=preamble, file_meta=meta, is_implicit_VR=False,
                       is_little_endian=True)


def is_deflated(source: str | os.PathLike | bytes) -> bool:
    """True when a Part 10 file's (a path, or its bytes) transfer syntax is Deflated Explicit VR Little Endian
    (reads its meta only)."""
    if isinstance(source, bytes):
        head = source[:16384]
    else:
        try:
            with open(source, "rb") as fp:
                head = fp.read(16384)
        except OSError:
            return False
    if head[128:132] != b"DICM":
        return False
    pos = 132
    while pos + 8 <= len(head):  # the file meta: explicit VR little endian, group 0002
        group, elem = struct.unpack_from("<HH", head, pos)
        if group != 0x0002:
            return False
        vr = head[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"UN", b"UT", b"SQ", b"UC", b"UR"):
            if pos + 12 > len(head):
                return False
            (length,), start = struct.unpack_from("<I", head, pos + 8), pos + 12
        else:
            (length,), start = struct.unpack_from("<H", head, pos + 6), pos + 8
        if elem == 0x0010:
            return head[start:start + length].strip(b" \x00") == DEFLATED.encode()
        pos = start + length
    return False


def dcmread(source: str | os.PathLike | bytes, *, stop_before_pixels: bool = False,
            specific_tags: list | None = None, force: bool = True) -> Any:
    """``pydicom.dcmread(source, force=force)`` of a path or a file's bytes, but a deflated data set is inflated
    with a cap (:func:`read_deflated_dataset`; it reads every tag up to the pixel data, whatever ``specific_tags``
    says), and a run of zeros where elements should be is refused (:class:`ZeroRunGuard`). pydicom itself inflates
    a deflated file whole (1 GiB of zeros in a 1 MB file: 2.1 GB), so every untrusted file goes through here.

    Raises
    ------
    SizeLimitError
        When a deflated data set inflates beyond :func:`deflate_limit`, or a zero run is found.
    """
    import pydicom

    if not is_deflated(source):
        with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as fp:
            ds = pydicom.dcmread(ZeroRunGuard(fp), stop_before_pixels=stop_before_pixels, force=force,
                                 specific_tags=specific_tags)
        # as if read from the path: the guard (its file closed) must not stay behind (Ray could not pickle it)
        ds.buffer, ds.fileobj_type = None, open
        ds.filename = None if isinstance(source, bytes) else os.fspath(source)
        return ds
    stop = (lambda tag, vr, length: tag in (0x7FE00008, 0x7FE00009, 0x7FE00010)) if stop_before_pixels else None
    return read_deflated_dataset(source, stop_when=stop)


def check_encapsulated_frames(ds: Any, rows: int, columns: int) -> None:
    """Check every compressed frame's own size claim (:func:`check_codestream`) before a decoder sees it.

    Only each fragment's first bytes are parsed; fragments that do not start a codestream are skipped.
    Does nothing for native (uncompressed) pixel data.

    Raises
    ------
    SizeLimitError
        When a frame's codestream declares more rows or columns than the header.
    """
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None or not getattr(syntax, "is_compressed", False) or "PixelData" not in ds:
        return
    from pydicom.encaps import generate_fragments

    try:
        fragments = generate_fragments(ds.PixelData)
        for fragment in fragments:
            check_codestream(bytes(fragment), rows, columns)  # whole: a JP2 header's boxes may pass 8 KiB
    except SizeLimitError:
        raise
    except Exception:  # noqa: BLE001 - a malformed item layout is the decoder's to report
        return


def _native_pixels_problem(path: str, pixel_bytes: int) -> str | None:
    """Why the file's uncompressed Pixel Data is not for GDCM, or None when it has a defined length of at least
    ``pixel_bytes``, all inside the file: read by our tag reader, or by pydicom where that one declines (big
    endian, deep nesting) - but never past an element of unknown VR, whose length GDCM guesses (it took 5.7 GB
    on an "SL" flipped to "QL"; bench/fuzz.py seed 50)."""
    from viewer.core.dicom.tags import UNDEFINED, Fallback, read_tags

    cut_short = "uncompressed pixel data is cut short or encapsulated"
    try:
        tags = read_tags(path, {})
    except Exception as declined:  # noqa: BLE001 - NotPart10, Fallback, Truncated, OSError
        if isinstance(declined, Fallback) and str(declined).startswith("unknown VR"):
            return "the header holds an element of unknown VR"
        try:
            element = dcmread(path)["PixelData"]
        except Exception:  # noqa: BLE001 - untrusted input: no Pixel Data pydicom can find
            return cut_short
        whole = not element.is_undefined_length and len(element.value or b"") >= pixel_bytes
        return None if whole else cut_short
    whole = (tags.pixel_tag == 0x7FE00010 and tags.pixel_length != UNDEFINED and tags.pixel_length >= pixel_bytes
             and tags.pixel_offset + tags.pixel_length <= os.path.getsize(path))
    return None if whole else cut_short


#: Transfer syntaxes GDCM (SimpleITK) is asked to decode when pydicom fails: the JPEG processes pydicom's
#: plugins lack (retired 6-8 / 10-12, 12-bit extended). For RLE, JPEG-LS and JPEG 2000, pydicom's decoders are
#: complete, so their failure means damaged data - on which GDCM was measured (bench/fuzz.py) to reach 2-4 GB
#: and 30 s before failing too.
GDCM_SYNTAXES = frozenset(f"1.2.840.10008.1.2.4.{n}" for n in (*range(50, 66), 70))
#: Uncompressed syntaxes (deflate excluded: GDCM would inflate without a cap).
_NATIVE_SYNTAXES = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"})


#: Sequences nested deeper than this keep a file from GDCM. Its header parse is exponential in the undefined-length
#: sequences nested inside an element of defined length (about 4x a level): 0.9 s at 10 levels, 19 s at 12, a
#: hang at 20 (bench/fuzz.py seed 77). At 8 it costs under 0.5 s; real images nest 2-4 levels (functional groups).
MAX_GDCM_NESTING = 8


def _nesting_depth(items: Any, depth: int = 1) -> int:
    """How deep the sequences of these data set items nest (1 for a sequence of items without sequences)."""
    deepest = depth
    for item in items:
        for element in item:
            if element.VR == "SQ" and element.value:
                deepest = max(deepest, _nesting_depth(element.value, depth + 1))
                if deepest > MAX_GDCM_NESTING:
                    return deepest
    return deepest


def _nesting_problem(path: str) -> str | None:
    """Why the file's header is not for GDCM's parser (sequences nested too deep), or None."""
    try:
        depth = _nesting_depth([dcmread(path, stop_before_pixels=True)], 0)
    except Exception:  # noqa: BLE001 - untrusted input (a RecursionError too): pydicom cannot read its header
        return "the header could not be read"
    if depth > MAX_GDCM_NESTING:
        return f"the header nests sequences more than {MAX_GDCM_NESTING} levels deep"
    return None


def check_gdcm_input(path: str, transfer_syntax: str, rows: int, columns: int, pixel_bytes: int = 0,
                     photometric: str = "") -> None:
    """Refuse to hand a file to GDCM unless its syntax needs GDCM and its data is whole.

    GDCM decodes a whole file at once, outside our size checks: its input must be uncompressed pixel data of a
    defined length, inside the file and at least ``pixel_bytes`` long (what Rows x Columns x frames need), or a
    JPEG process pydicom cannot decode (:data:`GDCM_SYNTAXES`) with every fragment inside the file, a closing
    delimiter, and each frame's codestream within Rows x Columns (:func:`check_codestream`). Never a palette
    colour image: pydicom reads every intact palette, and GDCM took 2.4 GB on one without its palette
    (bench/fuzz.py seed 68). Never a header whose sequences nest beyond :data:`MAX_GDCM_NESTING`.

    Raises
    ------
    SizeLimitError
        Saying why GDCM is not tried.
    """
    from viewer.core.dicom.tags import UNDEFINED, read_tags

    palette = "palette colour data that pydicom cannot read"
    if transfer_syntax in _NATIVE_SYNTAXES:
        # GDCM took 2.0-2.2 GB on a native element cut short (43 of 49 KB) and on one of undefined length
        # (fragments under a native syntax; bench/fuzz.py seed 38)
        problem = (_native_pixels_problem(path, pixel_bytes) or (palette if photometric == "PALETTE COLOR" else None)
                   or _nesting_problem(path))
        if problem:
            raise SizeLimitError(problem)
        return
    if transfer_syntax not in GDCM_SYNTAXES:
        raise SizeLimitError("the data is damaged and no other decoder applies")
    if photometric == "PALETTE COLOR":
        raise SizeLimitError(palette)
    try:
        tags = read_tags(path, {})
    except Exception:  # noqa: BLE001 - NotPart10, Fallback, Truncated, OSError
        raise SizeLimitError("the file's structure could not be verified for the fallback decoder") from None
    problem = _nesting_problem(path)
    if problem:
        raise SizeLimitError(problem)
    if tags.pixel_tag != 0x7FE00010 or tags.pixel_length != UNDEFINED:
        raise SizeLimitError("no compressed pixel data where the header says there is")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        end = os.fstat(fd).st_size
        pos, index = tags.pixel_offset, 0
        while True:
            head = os.pread(fd, 8, pos) if hasattr(os, "pread") else b""
            if len(head) < 8:
                raise SizeLimitError("compressed pixel data is cut short (it has no closing delimiter)")
            group, elem, length = _TAG_LEN.unpack(head)
            tag = group << 16 | elem
            if tag == _SEQ_END:
                return
            if tag != _ITEM:
                raise SizeLimitError(f"compressed pixel data is damaged (item {index} has no item header)")
            if pos + 8 + length > end:
                raise SizeLimitError(f"compressed pixel data is cut short (fragment {index} runs past the end of "
                                     f"the file)")
            if index > 0:  # item 0 is the Basic Offset Table
                check_codestream(os.pread(fd, min(length, 8192), pos + 8), rows, columns)
            pos += 8 + length
            index += 1
    finally:
        os.close(fd)
