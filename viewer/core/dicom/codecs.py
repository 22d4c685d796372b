"""The fastest installed decoder for each compressed transfer syntax, called directly on one grey frame.

pydicom picks its decoder plugins in a fixed order and wraps each frame in a dcmread, a runner and several
array passes. Calling the codec itself on the frame's bytes (:mod:`viewer.core.dicom.encapsulated`) is what
makes a compressed series load about as fast as the codec allows. Ranked by measurement on one LIDC-IDRI-0001
slice (512 x 512, int16) re-encoded by pydicom (bench/bench_codecs.py; 2-core machine shared with other
work, so +-20%), milliseconds per frame:

=================  ============================================  ==============================================
syntax             ranked here (first that imports wins)         pydicom's own choice / GDCM (SimpleITK, file)
=================  ============================================  ==============================================
RLE Lossless       pylibjpeg-rle ``decode_frame`` 0.4            pydicom 1.8 (pylibjpeg) or 9.3 (numpy); GDCM 29
JPEG-LS            pyjpegls (CharLS) 5, libjpeg 20               pydicom 22 (libjpeg first); GDCM 9
JPEG 2000 / HTJ2K  pylibjpeg-openjpeg 28 (one thread each)       pydicom 28; GDCM 21 wall but 34 CPU (2 threads)
JPEG Lossless      pylibjpeg-libjpeg                             pydicom (same codec, plus its overhead)
=================  ============================================  ==============================================

None of these codecs releases the GIL, so the loader runs them in worker processes
(:mod:`viewer.core.dicom.decode_pool`) for long series. Only what needs no interpretation is decoded here:
one sample per pixel, the codestream's size equal to Rows x Columns, its sample width equal to BitsAllocated.
Everything else raises :class:`Unsupported` and the caller falls back to pydicom (then GDCM). The corrections
after decoding are pydicom's own, so both routes give identical stored values (tests/core/dicom/
test_decode_parallel.py checks every transfer syntax in ../shared/data): JPEG 2000 and JPEG-LS get the sign
correction from the codestream's precision, RLE and JPEG get unused high bits masked or sign-extended.
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from viewer.core.dicom.decode import PixelHeader

log = logging.getLogger(__name__)

RLE_LOSSLESS = "1.2.840.10008.1.2.5"
JPEG_LS = ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")
JPEG_2000 = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
             "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203")
JPEG_LOSSLESS = ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70")


class Unsupported(Exception):
    """This frame is not for the direct route (layout, width or codec missing): use pydicom."""


# ------------------------------------------------------------------------------------------ corrections
def _sign_extend(arr: np.ndarray, precision: int) -> None:
    shift = arr.dtype.itemsize * 8 - precision
    if shift > 0:
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)


def _mask_unused_bits(arr: np.ndarray, bits_stored: int) -> None:
    if not 0 < bits_stored < arr.dtype.itemsize * 8:
        return
    if arr.dtype.kind == "i":
        _sign_extend(arr, bits_stored)
    else:
        np.bitwise_and(arr, arr.dtype.type((1 << bits_stored) - 1), out=arr)


def _as_stored(buffer, header: PixelHeader) -> np.ndarray:
    """The codec's little-endian output as a writable (rows, columns) array of the stored dtype."""
    raw = buffer.reshape(-1).view(np.uint8) if isinstance(buffer, np.ndarray) else np.frombuffer(buffer, np.uint8)
    expected = header.rows * header.columns * header.stored_dtype.itemsize
    if raw.nbytes != expected:
        raise Unsupported(f"decoded {raw.nbytes} bytes, expected {expected}")
    arr = raw.view(header.stored_dtype).reshape(header.rows, header.columns)
    return arr if arr.flags.writeable else arr.copy()  # bytes from a codec are read-only; corrections write


def _check_width(precision: int, header: PixelHeader) -> None:
    itemsize = 1 if precision <= 8 else 2 if precision <= 16 else 4
    if itemsize != header.bits_allocated // 8:
        raise Unsupported(f"codestream precision {precision} in a {header.bits_allocated}-bit container")


# ------------------------------------------------------------------------------------------ decoders
def _rle(data: bytes, header: PixelHeader) -> np.ndarray:
    from rle.rle import decode_frame

    # Segments are most significant byte first; '<' asks for little-endian samples, as numpy reads them.
    arr = _as_stored(decode_frame(data, header.rows * header.columns, header.bits_allocated, "<"), header)
    _mask_unused_bits(arr, header.bits_stored)
    return arr


def _pyjpegls(data: bytes, header: PixelHeader) -> np.ndarray:
    import jpeg_ls

    buffer, info = jpeg_ls.decode_pixel_data(data)
    if info.get("components", 1) != 1 or (info.get("height"), info.get("width")) != (header.rows, header.columns):
        raise Unsupported("JPEG-LS frame size or components differ from the header")
    precision = int(info.get("bits_per_sample", header.bits_stored))
    _check_width(precision, header)
    arr = _as_stored(buffer, header)
    if header.pixel_representation:  # JPEG-LS has no sign: signed samples come back unsigned
        _sign_extend(arr, precision)
    return arr


def _libjpeg_jls(data: bytes, header: PixelHeader) -> np.ndarray:
    from libjpeg import decode

    out = decode(data, reshape=True)
    if out.shape != (header.rows, header.columns):
        raise Unsupported("JPEG-LS frame size differs from the header")
    _check_width(out.dtype.itemsize * 8, header)
    arr = _as_stored(out, header)
    if header.pixel_representation:
        _sign_extend(arr, _jls_precision(data, header.bits_stored))
    return arr


def _jls_precision(data: bytes, default: int) -> int:
    """Sample precision from a JPEG-LS SOF55 marker segment (FF F7), or ``default``."""
    at = data.find(b"\xff\xf7")
    return data[at + 4] if 0 <= at and at + 4 < len(data) else default


def _openjpeg(data: bytes, header: PixelHeader) -> np.ndarray:
    from openjpeg.utils import decode, get_parameters

    params = get_parameters(data)
    if params.get("samples_per_pixel", 1) != 1 or (params.get("rows"), params.get("columns")) != (
            header.rows, header.columns):
        raise Unsupported("JPEG 2000 frame size or components differ from the header")
    precision = int(params.get("precision", header.bits_stored))
    _check_width(precision, header)
    arr = _as_stored(decode(data, reshape=False), header)
    if bool(params.get("is_signed")) != bool(header.pixel_representation):
        # The codestream's sign disagrees with PixelRepresentation (TOSHIBA writes such files): reinterpret
        # the codestream's precision bits with the header's sign, as pydicom does.
        _sign_extend(arr, precision) if header.pixel_representation else _mask_unused_bits(arr, precision)
    return arr


def _libjpeg(data: bytes, header: PixelHeader) -> np.ndarray:
    from libjpeg import decode

    out = decode(data, reshape=True)
    if out.shape != (header.rows, header.columns):
        raise Unsupported("JPEG frame size differs from the header")
    _check_width(out.dtype.itemsize * 8, header)
    arr = _as_stored(out, header)
    _mask_unused_bits(arr, header.bits_stored)
    return arr


#: Decoders per transfer syntax, fastest first (measured: see the module docstring), with the module each needs.
RANKED: dict[str, tuple[tuple[str, str, Callable[[bytes, PixelHeader], np.ndarray]], ...]] = {
    RLE_LOSSLESS: (("pylibjpeg-rle", "rle.rle", _rle),),
    **{uid: (("pyjpegls", "jpeg_ls", _pyjpegls), ("libjpeg", "libjpeg", _libjpeg_jls)) for uid in JPEG_LS},
    **{uid: (("openjpeg", "openjpeg", _openjpeg),) for uid in JPEG_2000},
    **{uid: (("libjpeg", "libjpeg", _libjpeg),) for uid in JPEG_LOSSLESS},
}

_available: dict[str, bool] = {}


def _importable(module: str) -> bool:
    if module not in _available:
        try:
            importlib.import_module(module)
            _available[module] = True
        except Exception:  # noqa: BLE001 - missing, or a broken binary wheel: either way not usable
            _available[module] = False
    return _available[module]


def decoders_for(syntax: str) -> list[str]:
    """Names of the installed direct decoders for ``syntax``, fastest first (empty: pydicom only)."""
    return [name for name, module, _ in RANKED.get(syntax, ()) if _importable(module)]


def handles(header: PixelHeader) -> bool:
    """True when frames of this header may take the direct route (grey, 8/16 bit, a ranked codec installed)."""
    return (header.samples == 1 and header.photometric in ("MONOCHROME1", "MONOCHROME2")
            and header.bits_allocated in (8, 16) and bool(decoders_for(header.transfer_syntax)))


def decode_frame(data: bytes, header: PixelHeader) -> tuple[np.ndarray, str]:
    """Decode one grey frame's codestream to stored values with the fastest installed decoder that accepts it.

    Parameters
    ----------
    data
        The frame's compressed bytes (all its fragments joined).
    header
        The file's :class:`~viewer.core.dicom.decode.PixelHeader`.

    Returns
    -------
    (numpy.ndarray, str)
        ``(rows, columns)`` array of ``header.stored_dtype`` (writable, owned) and the decoder's name.

    Raises
    ------
    Unsupported
        When no direct decoder applies or each one failed; the caller then uses pydicom.
    """
    if not handles(header):
        raise Unsupported(f"no direct decoder for this {header.transfer_syntax} frame")
    from viewer.core.dicom.limits import check_codestream

    check_codestream(data[:8192], header.rows, header.columns)  # before any decoder allocates what it claims
    failures = []
    for name, module, decoder in RANKED[header.transfer_syntax]:
        if not _importable(module):
            continue
        try:
            return decoder(data, header), name
        except Unsupported as error:
            failures.append(f"{name}: {error}")
        except BaseException as error:  # noqa: BLE001 - Rust/C codecs raise odd types, PanicException included
            if isinstance(error, (KeyboardInterrupt, SystemExit, GeneratorExit)):
                raise
            failures.append(f"{name}: {type(error).__name__}")
    raise Unsupported("; ".join(failures))
