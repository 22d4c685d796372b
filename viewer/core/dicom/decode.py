"""Pixel decoding: stored values of one frame -> modality values (HU for CT) or RGB, written into a slice.

Routes, cheapest first:

1. **Native little endian** (Explicit/Implicit VR Little Endian, grey or 8-bit RGB): the shared header
   walker (:mod:`viewer.core.dicom.tags`) finds the PixelData value offset and the frame's bytes are
   ``readinto`` the caller's output slice - no pydicom dataset, no intermediate copy. This is what makes a
   300-slice CT load in about a tenth of a second.
2. **Direct codec** for grey RLE, JPEG-LS, JPEG 2000 / HTJ2K and JPEG Lossless: the walker also finds
   encapsulated PixelData, :mod:`viewer.core.dicom.encapsulated` cuts the frame's bytes from the file and
   :mod:`viewer.core.dicom.codecs` runs the fastest installed decoder on them (measured ranking there) - no
   pydicom import or parse. Whatever it declines (colour, odd layouts, widths) goes on to pydicom.
3. **pydicom** with pylibjpeg (libjpeg, openjpeg, rle) for every other transfer syntax (big endian, deflate,
   JPEG baseline/extended, colour, enhanced objects, Modality LUTs).
4. **SimpleITK (GDCM)** when pydicom has no decoder or its decoder fails (retired JPEG processes 6-8 / 10-12,
   12-bit JPEG Extended streams libjpeg rejects). GDCM applies the rescale itself; it is undone so every
   route feeds the same stored-value pipeline.

Then, for grey images: unused high bits masked (or sign-extended), PixelPaddingValue (and
PixelPaddingRangeLimit) found in the *stored* domain with the sign the PixelRepresentation gives it (LIDC
writes 63536 = -2000 on signed pixels), RescaleSlope/Intercept applied (per frame for enhanced objects, from
PixelValueTransformationSequence), padded pixels set to a fill value (-1024 for CT, else the frame's real
minimum). For CT, values below -1024 HU are raised to -1024 HU: nothing in a patient is below air, and
scanners write such values outside the reconstruction circle, often without a PixelPaddingValue or with one
that does not match (LIDC-IDRI-0001 declares 63536 = -2000 but stores -1024 = -2048 HU there; GE writes
-2000 -> -3024 HU). Colour (RGB, YBR_*, PALETTE COLOR) becomes RGB uint8.

**MONOCHROME1 is flagged, not inverted**: values stay the true modality values (so windows from the header
and measurements stay right) and :attr:`PixelHeader.photometric` says ``MONOCHROME1``; the display inverts its
grey ramp. Missing PhotometricInterpretation is read as MONOCHROME2 (or RGB for three samples).
"""
from __future__ import annotations

import logging
import struct
import threading
import warnings
from collections import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewer.core.dicom import codecs, limits
from viewer.core.dicom.encapsulated import EncapsulatedFrames, FrameLayoutError
from viewer.core.dicom.model import FrameGeometry
from viewer.core.dicom.tags import UNDEFINED, Fallback, NotPart10, Tags, Truncated, read_tags

log = logging.getLogger(__name__)

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
NATIVE_LE = {EXPLICIT_VR_LE, IMPLICIT_VR_LE}

#: Air in HU: fill for padded CT pixels and the floor of CT values (see the module docstring).
CT_AIR_HU = -1024.0

_PIXEL_DATA = 0x7FE00010
_U16 = struct.Struct("<H")

# Top-level tags the shared walker (viewer.core.dicom.tags) keeps as raw bytes; everything else is skipped.
_WANTED = {
    0x00080060: "modality",
    0x00180050: "slice_thickness",
    0x00180088: "spacing_between_slices",
    0x00200052: "frame_of_reference_uid",
    0x00280002: "samples",
    0x00280004: "photometric",
    0x00280006: "planar",
    0x00280008: "frames",
    0x00280010: "rows",
    0x00280011: "columns",
    0x00280100: "bits_allocated",
    0x00280101: "bits_stored",
    0x00280103: "pixel_representation",
    0x00280120: "padding",
    0x00280121: "padding_limit",
    0x00281050: "window_center",
    0x00281051: "window_width",
    0x00281052: "intercept",
    0x00281053: "slope",
}
# Their presence sends the file to the pydicom route (or asks pydicom for the per-frame details). Float
# pixel data (7FE0,0008/0009) ends the walk before any PixelData, so it has no pixel offset either.
_NEEDS_PYDICOM = {0x00283000}  # Modality LUT
_FUNCTIONAL_GROUPS = {0x52009229, 0x52009230}
_FLAGGED = _NEEDS_PYDICOM | _FUNCTIONAL_GROUPS


class DecodeError(Exception):
    """A frame could not be decoded by any route (message has no patient data)."""


@dataclass
class PixelHeader:
    """What decoding one file needs (no patient data).

    ``rescale`` holds one ``(slope, intercept)`` per frame, or a single pair for all frames.
    ``padding`` is ``(low, high)`` in the stored domain (sign applied), or None.
    ``pixel_offset`` is the byte offset of native little-endian PixelData, None when it must be decoded.
    ``frames`` holds per-frame geometry for enhanced objects read through pydicom (else empty).
    """

    path: str
    transfer_syntax: str = EXPLICIT_VR_LE
    rows: int = 0
    columns: int = 0
    samples: int = 1
    photometric: str = "MONOCHROME2"
    planar: int = 0
    number_of_frames: int = 1
    bits_allocated: int = 16
    bits_stored: int = 16
    pixel_representation: int = 0
    rescale: list[tuple[float, float]] = field(default_factory=lambda: [(1.0, 0.0)])
    #: The file's RescaleSlope/Intercept were not usable (see :func:`usable_rescale`) and were replaced.
    rescale_replaced: bool = False
    padding: tuple[int, int] | None = None
    window: tuple[float, float] | None = None
    modality: str = ""
    slice_thickness: float | None = None
    spacing_between_slices: float | None = None
    frame_of_reference_uid: str = ""
    pixel_offset: int | None = None
    needs_pydicom: bool = False
    frames: list[FrameGeometry] = field(default_factory=list)
    #: File offset of encapsulated (compressed) PixelData's value, when the tag walker read the header; the
    #: frames are then cut from the file directly (:mod:`viewer.core.dicom.encapsulated`). None otherwise.
    encapsulated_offset: int | None = None

    @property
    def is_colour(self) -> bool:
        """True for RGB / YBR / palette images (decoded to RGB uint8)."""
        return self.samples == 3 or self.photometric == "PALETTE COLOR"

    @property
    def frame_bytes(self) -> int:
        """Bytes of one native frame."""
        return self.rows * self.columns * self.samples * (self.bits_allocated // 8)

    @property
    def fast(self) -> bool:
        """True when frames can be read straight from the file (native little endian, simple layout)."""
        if self.pixel_offset is None or self.needs_pydicom or self.bits_allocated not in (8, 16):
            return False
        if self.is_colour:
            return self.photometric == "RGB" and self.bits_allocated == 8
        return True

    def rescale_for(self, frame: int) -> tuple[float, float]:
        """``(slope, intercept)`` of a frame (0-based)."""
        return self.rescale[frame] if len(self.rescale) > 1 else self.rescale[0]

    @property
    def stored_dtype(self) -> np.dtype:
        """Little-endian numpy dtype of one stored grey sample."""
        kind = "i" if self.pixel_representation else "u"
        return np.dtype(f"<{kind}{max(1, self.bits_allocated // 8)}")

    def stored_range(self) -> tuple[int, int]:
        """Smallest and largest value BitsStored allows."""
        bits = max(1, min(self.bits_stored, self.bits_allocated))
        if self.pixel_representation:
            return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return 0, (1 << bits) - 1


# ----------------------------------------------------------------------------------------------- header
def _text(raw: bytes | None) -> str:
    return raw.decode("ascii", "replace").strip("\x00 ") if raw else ""


def _numbers(raw: bytes | None) -> list[float]:
    out = []
    for part in _text(raw).split("\\"):
        try:
            out.append(float(part))
        except ValueError:
            pass
    return out


def _us(raw: bytes | None, default: int) -> int:
    return _U16.unpack_from(raw)[0] if raw and len(raw) >= 2 else default


def _signed(value: int, bits: int, signed: bool) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if signed and value >= 1 << (bits - 1) else value


def _padding(raw_value, raw_limit, bits_allocated: int, signed: bool) -> tuple[int, int] | None:
    # Both may be stored as US while the pixels are signed (LIDC: 63536 is -2000): reinterpret with the
    # pixels' own sign and width, as the standard says the value is in the pixels' representation.
    if raw_value is None:
        return None
    bits = bits_allocated if bits_allocated in (8, 16, 32) else 16
    low = _signed(int(raw_value), bits, signed)
    high = low if raw_limit is None else _signed(int(raw_limit), bits, signed)
    return (min(low, high), max(low, high))


#: No modality value comes near this; past it the float32 volume would hold infinities.
_MAX_RESCALED = 1e30


def usable_rescale(slope: float | None, intercept: float | None, bits_stored: int) -> tuple[tuple[float, float], bool]:
    """``((slope, intercept), replaced)``: the rescale to apply, and whether the file's was unusable.

    A slope of 0 (not allowed; what writers mean is 1) or not finite reads as 1, an intercept not finite as 0, and
    a rescale whose output passes :data:`_MAX_RESCALED` (a slope of 1e300 made every voxel infinite) as ``(1, 0)``.
    Absent values are the defaults, not a replacement.
    """
    slope = 1.0 if slope is None else float(slope)
    intercept = 0.0 if intercept is None else float(intercept)
    replaced = False
    if slope == 0 or not np.isfinite(slope):
        slope, replaced = 1.0, True
    if not np.isfinite(intercept):
        intercept, replaced = 0.0, True
    if abs(slope) * 2.0 ** max(1, min(bits_stored, 64)) + abs(intercept) > _MAX_RESCALED:
        slope, intercept, replaced = 1.0, 0.0, True
    return (slope, intercept), replaced


def _header_from_tags(path: str, tags: Tags) -> PixelHeader:
    v = tags.raw
    samples = _us(v.get("samples"), 1)
    photometric = _text(v.get("photometric")).upper() or ("RGB" if samples == 3 else "MONOCHROME2")
    frames = _numbers(v.get("frames"))
    bits_allocated = _us(v.get("bits_allocated"), 16)
    representation = _us(v.get("pixel_representation"), 0)
    slope = _numbers(v.get("slope"))
    intercept = _numbers(v.get("intercept"))
    bits_stored = _us(v.get("bits_stored"), bits_allocated)
    rescale, rescale_replaced = usable_rescale(slope[0] if slope else None, intercept[0] if intercept else None,
                                               bits_stored)
    center, width = _numbers(v.get("window_center")), _numbers(v.get("window_width"))
    thickness = _numbers(v.get("slice_thickness"))
    between = _numbers(v.get("spacing_between_slices"))
    pad_raw = v.get("padding")
    pad_limit = v.get("padding_limit")
    header = PixelHeader(
        path=path,
        transfer_syntax=tags.syntax,
        rows=_us(v.get("rows"), 0),
        columns=_us(v.get("columns"), 0),
        samples=samples,
        photometric=photometric,
        planar=_us(v.get("planar"), 0),
        number_of_frames=max(1, int(frames[0])) if frames else 1,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        pixel_representation=representation,
        rescale=[rescale],
        rescale_replaced=rescale_replaced,
        padding=_padding(_us(pad_raw, 0) if pad_raw else None, _us(pad_limit, 0) if pad_limit else None,
                         bits_allocated, bool(representation)),
        window=(center[0], width[0]) if center and width and width[0] > 0 else None,
        modality=_text(v.get("modality")).upper(),
        slice_thickness=thickness[0] if thickness else None,
        spacing_between_slices=between[0] if between else None,
        frame_of_reference_uid=_text(v.get("frame_of_reference_uid")),
        pixel_offset=tags.pixel_offset,
        needs_pydicom=bool(tags.flagged & _NEEDS_PYDICOM),
    )
    if tags.pixel_length < header.frame_bytes * header.number_of_frames or header.rows == 0 or header.columns == 0:
        header.pixel_offset = None  # truncated or odd: let pydicom decide
    return header


def _first_float(value) -> float | None:
    """First number of a (possibly multi-valued) DS/IS/US value, or None."""
    if value is None or isinstance(value, (str, bytes)) and not value:
        return None
    if not isinstance(value, (str, bytes)) and isinstance(value, abc.Sequence):
        value = value[0] if len(value) else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _ds_number(ds, keyword: str) -> float | None:
    return _first_float(ds.get(keyword)) if ds is not None else None


def _first_item(ds, keyword: str):
    seq = ds.get(keyword) if ds is not None else None
    return seq[0] if seq else None


def _group_value(frame_fg, shared_fg, seq_keyword: str):
    """The item of ``seq_keyword`` from the per-frame group, else the shared group (PS3.3 C.7.6.16)."""
    return _first_item(frame_fg, seq_keyword) or _first_item(shared_fg, seq_keyword)


def _float_list(value) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        return None


def _int_value(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bytes):  # an undecoded US/SS (e.g. VR UN): little-endian unsigned
        return int.from_bytes(value[:4], "little") if value else None
    number = _first_float(value)
    return int(number) if number is not None else None


def header_from_dataset(ds, path: str = "") -> PixelHeader:
    """A :class:`PixelHeader` from a pydicom dataset, with per-frame rescale, window and geometry.

    Enhanced (functional group) objects take rescale from PixelValueTransformationSequence, windows from
    FrameVOILUTSequence and geometry from PlanePosition / PlaneOrientation / PixelMeasures sequences, each
    per frame or shared.
    """
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    photometric = photometric or ("RGB" if samples == 3 else "MONOCHROME2")
    bits_allocated = int(ds.get("BitsAllocated", 16) or 16)
    representation = int(ds.get("PixelRepresentation", 0) or 0)
    n_frames = int(_ds_number(ds, "NumberOfFrames") or 1)
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []

    bits_stored = int(ds.get("BitsStored", bits_allocated) or bits_allocated)
    replaced: list[bool] = []

    def rescale_of(item) -> tuple[float, float] | None:
        if item is None or "RescaleSlope" not in item and "RescaleIntercept" not in item:
            return None
        usable, was_replaced = usable_rescale(_ds_number(item, "RescaleSlope"), _ds_number(item, "RescaleIntercept"),
                                              bits_stored)
        replaced.append(was_replaced)
        return usable

    top_rescale = rescale_of(ds) or (1.0, 0.0)
    rescale: list[tuple[float, float]] = [top_rescale]
    window = None
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    frames: list[FrameGeometry] = []
    if shared is not None or per_frame:
        rescale = []
        for index in range(n_frames):
            fg = per_frame[index] if index < len(per_frame) else None
            pvt = _group_value(fg, shared, "PixelValueTransformationSequence")
            rescale.append(rescale_of(pvt) or top_rescale)
            if index == 0:
                voi = _group_value(fg, shared, "FrameVOILUTSequence")
                if voi is not None:
                    center, width = voi.get("WindowCenter"), voi.get("WindowWidth")
            position = _group_value(fg, shared, "PlanePositionSequence")
            orientation = _group_value(fg, shared, "PlaneOrientationSequence")
            measures = _group_value(fg, shared, "PixelMeasuresSequence")
            pos = _float_list(position.get("ImagePositionPatient")) if position is not None else None
            ori = _float_list(orientation.get("ImageOrientationPatient")) if orientation is not None else None
            spc = _float_list(measures.get("PixelSpacing")) if measures is not None else None
            frames.append(FrameGeometry(
                (pos[0], pos[1], pos[2]) if pos and len(pos) == 3 else None,
                (ori[0], ori[1], ori[2], ori[3], ori[4], ori[5]) if ori and len(ori) == 6 else None,
                (spc[0], spc[1]) if spc and len(spc) == 2 else None,
            ))
        if len(set(rescale)) == 1:
            rescale = rescale[:1]
    center_value, width_value = _first_float(center), _first_float(width)
    if center_value is not None and width_value:
        window = (center_value, width_value)

    pad = ds.get("PixelPaddingValue")
    pad_limit = ds.get("PixelPaddingRangeLimit")
    measures = _first_item(shared, "PixelMeasuresSequence") if shared is not None else None
    thickness = _ds_number(ds, "SliceThickness") or (_ds_number(measures, "SliceThickness") if measures else None)
    between = _ds_number(ds, "SpacingBetweenSlices") or (
        _ds_number(measures, "SpacingBetweenSlices") if measures else None)
    return PixelHeader(
        path=path,
        transfer_syntax=ts,
        rows=int(ds.get("Rows", 0) or 0),
        columns=int(ds.get("Columns", 0) or 0),
        samples=samples,
        photometric=photometric,
        planar=int(ds.get("PlanarConfiguration", 0) or 0),
        number_of_frames=max(1, n_frames),
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        pixel_representation=representation,
        rescale=rescale,
        rescale_replaced=any(replaced),
        padding=_padding(_int_value(pad), _int_value(pad_limit), bits_allocated, bool(representation)),
        window=window,
        modality=str(ds.get("Modality", "") or "").upper(),
        slice_thickness=thickness,
        spacing_between_slices=between,
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "") or ""),
        pixel_offset=None,
        needs_pydicom=True,
        frames=frames,
    )


def read_pixel_header(path: str, *, functional_groups: bool = True) -> PixelHeader:
    """Read what decoding needs from a file's header, as cheaply as possible.

    Native little-endian files are walked without pydicom (about 20 µs for a CT header) and get
    ``pixel_offset``; everything else, and enhanced objects when ``functional_groups`` is true (their
    per-frame rescale and geometry live in nested sequences), is read with pydicom (pixels not loaded).
    """
    path = str(path)
    try:
        tags: Tags | None = read_tags(path, _WANTED, _FLAGGED)
    except (NotPart10, Truncated, Fallback):
        tags = None
    native = (tags if tags is not None and tags.syntax in NATIVE_LE and tags.pixel_tag == _PIXEL_DATA
              and tags.pixel_length != UNDEFINED else None)  # else: encapsulated, float or no pixel data, unwalkable
    if native is not None and not (functional_groups and native.flagged & _FUNCTIONAL_GROUPS):
        return _header_from_tags(path, native)
    if (tags is not None and tags.pixel_tag == _PIXEL_DATA and tags.pixel_length == UNDEFINED
            and tags.syntax in codecs.RANKED and not tags.flagged & _FLAGGED):
        # Compressed, plain (not enhanced, no Modality LUT): the walker's values are all decoding needs, and
        # pydicom (0.2 s to import, ~1 ms a file to parse) stays out of the way of the direct codecs.
        header = _header_from_tags(path, tags)
        header.encapsulated_offset, header.pixel_offset = tags.pixel_offset, None
        return header

    try:
        ds = limits.dcmread(path, stop_before_pixels=True)  # a deflated data set inflates with a cap
    except limits.SizeLimitError as error:
        raise DecodeError(error.reason) from None
    header = header_from_dataset(ds, path)
    if native is not None and not native.flagged & _NEEDS_PYDICOM:
        header.pixel_offset = native.pixel_offset  # enhanced but native: keep the fast read of the frames
        header.needs_pydicom = False
        if native.pixel_length < header.frame_bytes * header.number_of_frames:
            header.pixel_offset = None
            header.needs_pydicom = True
    return header


# ---------------------------------------------------------------------------------------------- frames
class FrameSource:
    """The frames of one file: stored values by the cheapest route that works.

    Thread-safe: several workers may read different frames of one multi-frame file at once.
    """

    def __init__(self, path: str, header: PixelHeader | None = None) -> None:
        self.path = str(path)
        self.header = header or read_pixel_header(self.path)
        self._lock = threading.Lock()
        self._dataset: Any = None
        self._sitk_array: np.ndarray | None = None
        self._retained: tuple[int, np.ndarray] | None = None  # last frame that did not fit int16
        self._sitk_failed = False  # GDCM could not read this file: do not try it again per frame
        self._refusal: str | None = None  # why no frame of this file may reach a decoder (limits)
        self._encapsulated: EncapsulatedFrames | None = None
        self.bits_cleared: set[int] = set()  # frames that held values beyond BitsStored (_correct_unused_bits)
        if self.header.fast:
            self.route = "native"
        elif self.header.encapsulated_offset is not None and codecs.handles(self.header):
            self.route = "codec"  # the fastest installed codec on the frame's bytes; pydicom if it declines
        else:
            self.route = "pydicom"

    # -- stored values ----------------------------------------------------------------------------
    def read_native_into(self, index: int, buffer: np.ndarray) -> None:
        """Read frame ``index`` of a native file straight into ``buffer`` (C-contiguous, right size)."""
        h = self.header
        if h.pixel_offset is None:
            raise DecodeError(f"{self.path}: no native pixel data to read")
        view = buffer.data.cast("B")
        with open(self.path, "rb", buffering=0) as f:
            f.seek(h.pixel_offset + index * h.frame_bytes)
            got = f.readinto(view)
            while got < len(view):  # readinto may return short reads on some file systems
                more = f.readinto(view[got:])
                if not more:
                    raise DecodeError(f"pixel data truncated in frame {index}")
                got += more

    def _pydicom_dataset(self):
        with self._lock:
            if self._dataset is None:
                import pydicom

                if self._refusal is not None:  # a size lie found at the first frame holds for every frame
                    raise limits.SizeLimitError(self._refusal)
                dataset = limits.dcmread(self.path)  # a deflated data set inflates with a cap
                try:
                    limits.check_encapsulated_frames(dataset, self.header.rows, self.header.columns)
                except limits.SizeLimitError as error:
                    self._refusal = error.reason  # kept from the decoders: no frame of this file is decoded
                    raise
                self._dataset = dataset
                if not hasattr(self._dataset, "file_meta") or "TransferSyntaxUID" not in self._dataset.file_meta:
                    self._dataset.file_meta = getattr(self._dataset, "file_meta", pydicom.dataset.FileMetaDataset())
                    self._dataset.file_meta.TransferSyntaxUID = IMPLICIT_VR_LE
            return self._dataset

    def _decode_pydicom(self, index: int) -> np.ndarray:
        from pydicom.pixels import apply_color_lut, pixel_array

        ds = self._pydicom_dataset()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = pixel_array(ds, index=index if self.header.number_of_frames > 1 else None)
            if self.header.photometric == "PALETTE COLOR":
                arr = apply_color_lut(arr, ds)
        return arr

    def _decode_sitk(self, index: int) -> np.ndarray:
        with self._lock:
            if self._sitk_array is None:
                import SimpleITK as sitk

                reader = sitk.ImageFileReader()
                reader.SetFileName(self.path)
                reader.SetImageIO("GDCMImageIO")
                image = reader.Execute()
                array = sitk.GetArrayFromImage(image)
                if image.GetDimension() == 2:
                    array = array[None]
                if not self.header.is_colour:
                    # GDCM already applied its rescale: undo it so every route yields stored values.
                    slope, intercept = self.header.rescale_for(0)
                    if slope != 1.0 or intercept != 0.0:
                        array = np.rint((array.astype(np.float64) - intercept) / slope)
                    array = array.astype(np.int64)
                self._sitk_array = array
        arr = self._sitk_array[min(index, len(self._sitk_array) - 1)]
        if self.header.is_colour and arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        return arr

    def _decode_codec(self, index: int) -> np.ndarray:
        with self._lock:
            if self._encapsulated is None:
                if self.header.encapsulated_offset is None:
                    raise DecodeError(f"{self.path}: no encapsulated pixel data to read")
                self._encapsulated = EncapsulatedFrames(self.path, self.header.encapsulated_offset,
                                                        self.header.number_of_frames)
            frames = self._encapsulated
        arr, _name = codecs.decode_frame(frames.frame(index), self.header)
        return arr

    def decoded(self, index: int) -> np.ndarray:
        """Frame ``index`` as stored values: direct codec, else pydicom, else SimpleITK (a new array)."""
        if self.route == "codec":
            try:
                return self._decode_codec(index)
            except (codecs.Unsupported, FrameLayoutError) as error:
                log.info("direct decoding of a %s frame declined (%s); using pydicom",
                         self.header.transfer_syntax, error)
                self.route = "pydicom"
        if self.route != "sitk":
            try:
                return self._decode_pydicom(index)
            except limits.SizeLimitError as error:  # a size lie: GDCM must not be handed it either
                raise DecodeError(error.reason) from None
            except BaseException as error:  # noqa: BLE001 - any decoder failure (a Rust panic too) means: try GDCM
                if not limits.is_decoder_failure(error):
                    raise
                log.info("pydicom could not decode a %s frame (%s); trying SimpleITK/GDCM",
                         self.header.transfer_syntax, type(error).__name__)
                if self._sitk_failed:  # GDCM reads the whole file: it failed once, it fails again
                    raise DecodeError(f"no decoder could read this {self.header.transfer_syntax} frame: "
                                      f"{type(error).__name__}") from None
                try:  # GDCM only for JPEG processes pydicom lacks, and only on whole data (see limits)
                    limits.check_gdcm_input(self.path, self.header.transfer_syntax, self.header.rows,
                                            self.header.columns, self.header.frame_bytes * self.header.number_of_frames,
                                            self.header.photometric)
                except limits.SizeLimitError as refusal:
                    self._sitk_failed = True
                    raise DecodeError(f"cannot decode this {self.header.transfer_syntax} frame "
                                      f"({type(error).__name__}): {refusal.reason}") from None
        try:
            arr = self._decode_sitk(index)
        except BaseException as error:  # noqa: BLE001
            if not limits.is_decoder_failure(error):
                raise
            self._sitk_failed = True
            raise DecodeError(f"no decoder could read this {self.header.transfer_syntax} frame: "
                              f"{type(error).__name__}") from error
        # Only once GDCM has read the file does it take over its other frames: one corrupt frame that both
        # fail on must not send the good frames to a decoder that rejects the whole file.
        self.route = "sitk"
        return arr

    def provide(self, index: int, stored: np.ndarray) -> None:
        """Hand over frame ``index``'s stored values decoded elsewhere (a worker process): the next
        :meth:`read_frame_into` of that frame uses them instead of decoding."""
        self._retained = (index, stored)

    def release(self) -> None:
        """Drop cached datasets/arrays (called when all frames of the file are done)."""
        with self._lock:
            self._encapsulated = None
            self._dataset = None
            self._sitk_array = None
            self._retained = None

    # -- into the volume --------------------------------------------------------------------------
    def read_frame_into(self, index: int, out: np.ndarray, *, padding_fill: float | None = None,
                        floor: float | None = None) -> bool:
        """Decode frame ``index`` into ``out`` (one slice of the volume) as modality values or RGB.

        Parameters
        ----------
        index
            0-based frame number in this file.
        out
            ``(rows, columns)`` int16/float32 for grey, ``(rows, columns, 3)`` uint8 for colour.
        padding_fill
            Value for padded pixels (``CT_AIR_HU`` for CT); None uses the frame's smallest real value.
        floor
            Lowest output value (``CT_AIR_HU`` for CT); smaller values are raised to it. None: no floor.

        Returns
        -------
        bool
            False when ``out`` is int16 and this frame's values do not fit it exactly (non-integer rescale or
            out of range): the caller promotes the volume to float32 and calls again. ``out`` then holds junk.
        """
        h = self.header
        if out.ndim == 3:
            self._colour_into(index, out)
            return True
        slope, intercept = h.rescale_for(index)
        if out.dtype == np.int16 and not (float(slope).is_integer() and float(intercept).is_integer()):
            return False
        if self.route == "native" and h.bits_allocated == 16 and out.dtype == np.int16 and out.flags.c_contiguous:
            stored = out.view(h.stored_dtype)  # zero copy: the file's bytes land in the volume itself
            self.read_native_into(index, stored)
        elif self.route == "native":
            stored = np.empty((h.rows, h.columns), h.stored_dtype)
            self.read_native_into(index, stored)
        else:
            retained, self._retained = self._retained, None
            stored = retained[1] if retained is not None and retained[0] == index else self.decoded(index)
            if stored.ndim != 2:
                raise DecodeError(f"expected a grey frame, got shape {stored.shape}")
            self._check_frame_size(stored)
        value_range = None
        if self.route == "native":
            if _correct_unused_bits(stored, h):
                self.bits_cleared.add(index)
            value_range = h.stored_range()  # exact now that the unused bits are masked
        if modality_into(stored, out, slope, intercept, h.padding, padding_fill, floor, value_range):
            return True
        if self.route != "native":
            self._retained = (index, stored)  # the float32 retry need not decode again
        return False

    def _check_frame_size(self, arr: np.ndarray) -> None:
        """A codestream smaller than the header's Rows x Columns decodes, but cannot fill the slice: say so (it was
        a numpy broadcast error)."""
        if arr.shape[:2] != (self.header.rows, self.header.columns):
            raise DecodeError(f"a decoded frame is {arr.shape[0]} x {arr.shape[1]} pixels but the header says "
                              f"{self.header.rows} x {self.header.columns}")

    def _colour_into(self, index: int, out: np.ndarray) -> None:
        h = self.header
        if self.route == "native":
            if h.planar == 0:
                self.read_native_into(index, out)
            else:
                planes = np.empty((3, h.rows, h.columns), np.uint8)
                self.read_native_into(index, planes)
                out[...] = np.moveaxis(planes, 0, -1)
            return
        retained, self._retained = self._retained, None  # decoded by a worker process (provide)
        arr = retained[1] if retained is not None and retained[0] == index else self.decoded(index)
        self._check_frame_size(arr)
        if arr.ndim == 2:  # a grey frame in a colour stack (or GDCM's palette) - show it grey
            arr = np.repeat(arr[..., None], 3, axis=2)
        # Palette LUT output uses its full width; other colour samples have BitsStored significant bits.
        bits = arr.dtype.itemsize * 8 if h.photometric == "PALETTE COLOR" else h.bits_stored
        out[...] = to_uint8(arr, bits)


def to_uint8(arr: np.ndarray, bits_stored: int) -> np.ndarray:
    """Colour samples of any width as uint8 (keep the top 8 significant bits)."""
    if arr.dtype == np.uint8:
        return arr
    shift = max(0, min(bits_stored, arr.dtype.itemsize * 8) - 8)
    return (arr.astype(np.uint64) >> shift).clip(0, 255).astype(np.uint8)


def _correct_unused_bits(stored: np.ndarray, h: PixelHeader) -> bool:
    """Bits above BitsStored may hold overlays or junk in old files: mask them (or sign-extend), as pydicom does
    for its own route. ``stored`` has the file's signedness (h.stored_dtype). True when a value changed: the
    image then differs from its stored bytes, and a BitsStored too small for the data (8 over 12-bit CT) wraps
    it into nonsense, which the user must be told."""
    width = stored.dtype.itemsize * 8
    if not 0 < h.bits_stored < width:
        return False
    if stored.dtype.kind == "i":
        low, high = -(1 << (h.bits_stored - 1)), (1 << (h.bits_stored - 1)) - 1
        changed = bool(stored.min() < low or stored.max() > high)
        shift = width - h.bits_stored
        np.left_shift(stored, shift, out=stored)
        np.right_shift(stored, shift, out=stored)
    else:
        changed = bool(stored.max() > (1 << h.bits_stored) - 1)
        np.bitwise_and(stored, stored.dtype.type((1 << h.bits_stored) - 1), out=stored)
    return changed


def _out_range(dtype: np.dtype, slope: float, intercept: float,
               value_range: tuple[int, int] | None = None) -> tuple[float, float]:
    """Output range the stored values can produce under the rescale (a bound, not the real range)."""
    if value_range is None:
        if dtype.kind not in "iu":
            return -np.inf, np.inf
        info = np.iinfo(dtype)
        value_range = (info.min, info.max)
    ends = (value_range[0] * slope + intercept, value_range[1] * slope + intercept)
    return min(ends), max(ends)


def modality_into(stored: np.ndarray, out: np.ndarray, slope: float, intercept: float,
                  padding: tuple[int, int] | None, padding_fill: float | None,
                  floor: float | None = None, value_range: tuple[int, int] | None = None) -> bool:
    """Apply padding, rescale and floor to one frame of stored values and write it into ``out``.

    ``stored`` may share memory with ``out`` (the in-place native route). ``value_range`` is what the stored
    values are known to lie in (BitsStored after masking); None trusts only their dtype. Returns False,
    leaving ``out`` undefined, when ``out`` is int16 and the values do not fit it.
    """
    identity = slope == 1.0 and intercept == 0.0
    pad_mask = None
    # Each bound costs a pass over the frame: compute only those the stored values' range cannot vouch for.
    low_out, high_out = _out_range(stored.dtype, slope, intercept, value_range)
    if padding is not None:
        lo, hi = stored.min(), stored.max()
        if padding[0] <= hi and padding[1] >= lo:  # the padding value can occur in this frame
            low, high = padding
            pad_mask = (stored == low) if low == high else ((stored >= low) & (stored <= high))
            if pad_mask.any():
                real = stored[~pad_mask]
                lo, hi = (real.min(), real.max()) if real.size else (0, 0)
            else:
                pad_mask = None
        low_out, high_out = sorted((float(lo) * slope + intercept, float(hi) * slope + intercept))
    else:
        need_low = (out.dtype == np.int16 and low_out < -32768) or (floor is not None and low_out < floor)
        need_high = out.dtype == np.int16 and high_out > 32767
        if need_low or need_high:
            # Which stored extreme maps to the low output end depends on the slope's sign.
            take_min, take_max = (need_low, need_high) if slope >= 0 else (need_high, need_low)
            outs = [float(v) * slope + intercept
                    for v in (stored.min() if take_min else None, stored.max() if take_max else None)
                    if v is not None]
            if need_low:
                low_out = min(outs)
            if need_high:
                high_out = max(outs)
    if floor is not None and low_out >= floor:
        floor = None  # nothing below it: skip a pass over the frame
    ends = (low_out, high_out)

    if out.dtype == np.int16:
        # Checked before the floor: the floor cannot repair values that already wrapped around in int16.
        if min(ends) < -32768 or max(ends) > 32767:
            return False
        # When ``stored`` is ``out`` seen as uint16, values above 32767 read as negative int16; wrap-around
        # int16 arithmetic still gives the exact result because that result is known to fit.
        if not np.shares_memory(stored, out):
            np.copyto(out, stored, casting="unsafe")
        if slope != 1.0:
            np.multiply(out, np.int16(int(slope)), out=out, casting="unsafe")
        if intercept != 0.0:
            np.add(out, np.int16(int(intercept)), out=out, casting="unsafe")
    else:
        if identity:
            np.copyto(out, stored, casting="unsafe")
        else:
            np.multiply(stored, np.float32(slope), out=out, casting="unsafe")
            if intercept:
                np.add(out, np.float32(intercept), out=out)
    if floor is not None:
        np.maximum(out, np.asarray(floor).astype(out.dtype), out=out)

    if pad_mask is not None:
        if padding_fill is None:
            real = out[~pad_mask]
            padding_fill = float(real.min()) if real.size else 0.0
        np.copyto(out, np.asarray(padding_fill).astype(out.dtype), where=pad_mask)
    return True
