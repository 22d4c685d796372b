"""Header-only scan of folders, files and DICOMDIRs into a :class:`~viewer.core.dicom.model.Catalog`.

Two readers produce the same :class:`InstanceHeader`:

* the fast tag walker of :mod:`viewer.core.dicom.tags` (shared with the loader) for the common case
  (preamble + file meta, explicit or implicit VR little endian dataset, a classic single-frame image): it
  reads a few KiB with ``pread`` and skips every value it does not need, about 4x faster than pydicom's
  ``dcmread(stop_before_pixels=True)``;
* pydicom for everything else (big endian, deflate, no preamble, odd character sets, multi-frame functional
  groups, SEG/RTSTRUCT/SR/PR references, anything the fast reader is unsure about). The fast reader never
  guesses: on anything unexpected it hands the file to pydicom.

Parsing is pure Python and GIL-bound, but the fast reader makes it cheap (~40 us a file). On a quiet
machine with a warm cache, reading inline was fastest (3,000 files: 0.13 s; 2 threads 0.20 s, paying GIL
hand-offs at every system call; 2 processes 0.16 s plus their start, paying to ship results back), so
inline is the default; ``bench/bench_scan.py`` measures all of them. Thread pools remain for slow network
shares (they overlap file latency), process pools for folders that are mostly pydicom work.
"""
from __future__ import annotations

import multiprocessing
import os
import stat
import struct
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal, NamedTuple, overload

from viewer.core.calibration import frame_rate_from, ultrasound_regions_from
from viewer.core.dicom import limits
from viewer.core.dicom.catalog import build_catalog, sop_kind
from viewer.core.dicom.model import Catalog, FrameGeometry, InstanceHeader, UnreadableFile
from viewer.core.dicom.tags import UNDEFINED, VRS, Fallback, NotPart10, Truncated, _pread, read_tags
from viewer.core.jobs import CancelToken, Job, Progress, run_job

__all__ = [
    "DicomReadError",
    "MEDIA_STORAGE_DIRECTORY",
    "iter_scan",
    "read_dicomdir",
    "read_header",
    "scan",
]

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
"""SOP class (in the file meta) of a DICOMDIR: an index of other files, never an image itself."""

PathLike = str | os.PathLike


class DicomReadError(Exception):
    """A file that cannot be read as DICOM; ``reason`` is short, human and free of patient data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------------------
# What we keep of a header: (tag -> (keyword, how to decode)). The same keywords key the values the pydicom
# path extracts, so both readers feed one builder (_build_header) and cannot drift apart.
_STR, _US = 0, 1
_WANTED: dict[int, tuple[str, int]] = {
    0x00080005: ("SpecificCharacterSet", _STR),
    0x00080016: ("SOPClassUID", _STR),
    0x00080018: ("SOPInstanceUID", _STR),
    0x00080020: ("StudyDate", _STR),
    0x00080060: ("Modality", _STR),
    0x00081030: ("StudyDescription", _STR),
    0x0008103E: ("SeriesDescription", _STR),
    0x00100010: ("PatientName", _STR),
    0x00100020: ("PatientID", _STR),
    0x00181120: ("GantryDetectorTilt", _STR),
    0x0020000D: ("StudyInstanceUID", _STR),
    0x0020000E: ("SeriesInstanceUID", _STR),
    0x00200011: ("SeriesNumber", _STR),
    0x00200012: ("AcquisitionNumber", _STR),
    0x00200013: ("InstanceNumber", _STR),
    0x00200032: ("ImagePositionPatient", _STR),
    0x00200037: ("ImageOrientationPatient", _STR),
    0x00200052: ("FrameOfReferenceUID", _STR),
    0x00280002: ("SamplesPerPixel", _US),
    0x00280004: ("PhotometricInterpretation", _STR),
    0x00280008: ("NumberOfFrames", _STR),
    0x00280010: ("Rows", _US),
    0x00280011: ("Columns", _US),
    0x00280030: ("PixelSpacing", _STR),
    0x00280100: ("BitsAllocated", _US),
    # Display: per-image window, calibration without PixelSpacing, cine rate.
    0x00281050: ("WindowCenter", _STR),
    0x00281051: ("WindowWidth", _STR),
    0x00181164: ("ImagerPixelSpacing", _STR),
    0x00181063: ("FrameTime", _STR),
    0x00082144: ("RecommendedDisplayFrameRate", _STR),
    0x00180040: ("CineRate", _STR),
}
# Sequences the fast reader does not parse: their presence sends the file to pydicom.
_SEQUENCE_TAGS: dict[int, str] = {
    0x00081115: "ReferencedSeriesSequence",
    0x0040A375: "CurrentRequestedProcedureEvidenceSequence",
    0x0040A385: "PertinentOtherEvidenceSequence",
    0x00081200: "StudiesContainingOtherReferencedInstancesSequence",
    0x30060010: "ReferencedFrameOfReferenceSequence",
    0x3004000C: "GridFrameOffsetVector",
    0x52009229: "SharedFunctionalGroupsSequence",
    0x52009230: "PerFrameFunctionalGroupsSequence",
    0x00186011: "SequenceOfUltrasoundRegions",
}
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_PYDICOM_TAGS = sorted(set(_WANTED) | set(_SEQUENCE_TAGS) | {0x00041130})  # + FileSetID (DICOMDIR)

# Character sets whose bytes decode with one Python codec (pydicom decodes the others, e.g. ISO 2022).
_SIMPLE_CHARSETS = {"": "latin_1", "ISO_IR 6": "latin_1", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf_8"}
_U16 = struct.Struct("<H")


class _Pixels(NamedTuple):
    """Where a file's pixel data is: what its declared sizes are checked against (:func:`_check_pixel_claims`)."""

    length: int | None  #: value length of native pixel data; None when encapsulated
    offset: int  #: where the value starts, in ``source``
    source: str | bytes  #: the file's path, or the inflated data set of a deflated file


def _fast_values(path: str) -> tuple[tuple[dict[str, Any], str, str, bool], _Pixels | None] | None:
    """Read the wanted elements of a file with the shared tag walker (:func:`~viewer.core.dicom.tags.read_tags`).

    Returns ``((values, transfer_syntax, media_storage_sop_class, has_pixels), pixels)``, or None when the
    file is not a plain case (pydicom must read it). Raises :class:`DicomReadError` for files that are clearly
    not DICOM and OSError when the file cannot be opened.
    """
    try:
        found = read_tags(path, _WANTED, _SEQUENCE_TAGS, stop_at_flagged=True)
        has_pixels = found.pixel_tag in _PIXEL_TAGS
        pixels = _Pixels(None if found.pixel_length == UNDEFINED else found.pixel_length, found.pixel_offset,
                         path) if has_pixels else None
        return (_decode_raw(found.raw), found.syntax, found.media_class, has_pixels), pixels
    except NotPart10 as exc:
        if not _looks_like_raw_dicom(exc.head):
            raise DicomReadError(_not_dicom_reason(exc.head)) from None
        return None  # DICOM without preamble: pydicom (force) reads it
    except Truncated:
        raise DicomReadError("truncated: the file ends inside the DICOM header") from None
    except (Fallback, ValueError):  # ValueError: UnicodeDecodeError of a value
        return None


def _decode_raw(raw: dict[tuple[str, int], bytes]) -> dict[str, Any]:
    charset = raw.get(_WANTED[0x00080005], b"").decode("ascii").strip(" \x00")
    codec = _SIMPLE_CHARSETS.get(charset)
    if codec is None:
        raise Fallback("character set needs pydicom")
    values: dict[str, Any] = {}
    for (keyword, kind), value in raw.items():
        if kind == _US:
            values[keyword] = _U16.unpack_from(value)[0] if len(value) >= 2 else None
        else:
            values[keyword] = value.decode(codec)
    return values


def _looks_like_raw_dicom(head: bytes) -> bool:
    """True when a file without preamble starts like a DICOM data set: file meta or identifying group.

    Deliberately narrow, so pydicom's ``force`` never churns through a large non-DICOM file.
    """
    if len(head) < 8:
        return False
    group_le, elem_le = _U16.unpack_from(head, 0)[0], _U16.unpack_from(head, 2)[0]
    if group_le in (0x0002, 0x0008) and elem_le < 0x0200:
        return True
    group_be = struct.unpack_from(">H", head, 0)[0]
    return group_be in (0x0002, 0x0008) and head[4:6] in VRS


def _not_dicom_reason(head: bytes) -> str:
    if not head:
        return "empty file"
    if len(head) < 132:
        return "not DICOM: file too short and no DICOM header"
    return "not DICOM: no 'DICM' marker and no DICOM data at the start"


# --------------------------------------------------------------------------------------------------------
def _pydicom_values(path: str) -> tuple[dict[str, Any], str, str, bool, Any, _Pixels | None]:
    """The pydicom path: same values as the fast reader, plus the dataset for sequences and where the pixel
    data is. A deflated data set is inflated with a cap (:func:`~viewer.core.dicom.limits.read_deflated_dataset`)."""
    from pydicom.errors import InvalidDicomError
    from pydicom.filereader import read_partial

    with open(path, "rb") as f:
        head = f.read(132)
        force = not (len(head) >= 132 and head[128:132] == b"DICM")
        if force and not _looks_like_raw_dicom(head):
            raise DicomReadError(_not_dicom_reason(head))
        f.seek(0)
        pixels: list[_Pixels] = []
        inflated: list[Any] = []  # the deflated path's buffer: positions below are in it

        def at_pixels(tag: int, vr: Any, length: int) -> bool:
            if tag in _PIXEL_TAGS:
                where = inflated[0] if inflated else f
                encapsulated = length == UNDEFINED  # only then are the bytes after it needed (fragments)
                pixels.append(_Pixels(None if encapsulated else length, where.tell(),
                                      inflated[0].getvalue() if inflated and encapsulated else path))
                return True
            return False

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if not force and limits.is_deflated(path):
                    ds = limits.read_deflated_dataset(path, stop_when=at_pixels, specific_tags=_PYDICOM_TAGS,
                                                      keep_buffer=inflated)
                else:
                    ds = read_partial(limits.ZeroRunGuard(f), limits.counting_elements(at_pixels),  # type: ignore[arg-type]
                                      force=force, specific_tags=_PYDICOM_TAGS)
        except limits.SizeLimitError as exc:
            raise DicomReadError(exc.reason) from None
        except InvalidDicomError as exc:
            raise DicomReadError(f"not DICOM: {_short(exc)}") from None
        except UnboundLocalError:  # pydicom's read_partial after an EOFError in the data set
            raise DicomReadError("truncated DICOM data set") from None
        except (EOFError, struct.error) as exc:
            raise DicomReadError(f"truncated DICOM data set ({_short(exc)})") from None
    meta = getattr(ds, "file_meta", None)
    syntax = _text(meta.get("TransferSyntaxUID")) if meta is not None else ""
    media_class = _text(meta.get("MediaStorageSOPClassUID")) if meta is not None else ""
    values: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for keyword, kind in _WANTED.values():
            elem = ds.get(keyword)
            if elem is None:
                continue
            values[keyword] = _int_or_none(elem) if kind == _US else _text(elem)
    if force:
        _require_identity(values, media_class, "not DICOM: no recognisable DICOM elements")
    return values, syntax, media_class, bool(pixels), ds, (pixels[0] if pixels else None)


def _check_pixel_claims(header: InstanceHeader, pixels: _Pixels | None) -> None:
    """Refuse a header whose NumberOfFrames or Rows x Columns claim more pixel data than the file holds.

    Done before anything loops over the claimed frames (functional groups, the loader's frame list): a file
    declaring 2^31 frames would otherwise cost minutes and gigabytes, and take over the default series.
    """
    if pixels is None or not header.has_pixels:
        return

    def fragments(limit: int) -> int:
        if isinstance(pixels.source, bytes):
            data = pixels.source
            return limits.count_fragments(lambda n, at: data[at:at + n], pixels.offset, len(data), limit)
        fd = os.open(pixels.source, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            return limits.count_fragments(lambda n, at: _pread(fd, n, at), pixels.offset, os.fstat(fd).st_size,
                                          limit)
        finally:
            os.close(fd)

    # Native YBR_FULL_422 stores two samples per pixel (Y Y Cb Cr for two pixels), not three.
    samples = 2 if header.samples_per_pixel == 3 and header.photometric.endswith("_422") else header.samples_per_pixel
    try:
        limits.check_frames_present(header.number_of_frames, header.rows, header.columns, samples,
                                    header.bits_allocated, pixels.length, fragments)
    except limits.SizeLimitError as exc:
        raise DicomReadError(exc.reason) from None


def _require_identity(values: dict[str, Any], media_class: str, reason: str) -> None:
    """Refuse a "header" with nothing to place it by: pydicom reads what it can of garbled files.

    Old ACR-NEMA style images have no UIDs, only an image size, and still count.
    """
    uids = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
    if not (any(_clean(values.get(k)) for k in uids) or (values.get("Rows") and values.get("Columns")) or media_class):
        raise DicomReadError(reason)


def _text(value: Any) -> str:
    """pydicom value -> the string the file holds (multi-values joined by backslash)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin_1")
    if isinstance(value, Sequence) and not isinstance(value, str):  # pydicom's MultiValue, lists
        return "\\".join(_text(v) for v in value)
    return str(value)


_INCOMPLETE = "incomplete DICOM header (no UIDs, no image size)"


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


# --------------------------------------------------------------------------------------------------------
def _clean(value: Any) -> str:
    return value.strip(" \x00") if isinstance(value, str) else ""


def _int_or_none(value: Any) -> int | None:
    """IS / US value -> int; first of several values; None when empty or not a number."""
    if value is None:
        return None
    if isinstance(value, int):
        return int(value)
    text = _text(value).split("\\")[0].strip(" \x00")
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return int(float(text))
        except ValueError:
            return None


@overload
def _floats(value: Any, n: Literal[2]) -> tuple[float, float] | None: ...
@overload
def _floats(value: Any, n: Literal[3]) -> tuple[float, float, float] | None: ...
@overload
def _floats(value: Any, n: Literal[6]) -> tuple[float, float, float, float, float, float] | None: ...
@overload
def _floats(value: Any, n: int) -> tuple[float, ...] | None: ...
def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    """Backslash-separated DS string -> n floats, or None when absent or malformed."""
    if not isinstance(value, str):
        return None
    parts = value.strip(" \x00").split("\\")
    if len(parts) != n:
        return None
    try:
        return tuple(float(p) for p in parts)
    except ValueError:
        return None


def _float_or_none(value: Any) -> float | None:
    floats = _floats(value, 1) if isinstance(value, str) else None
    return floats[0] if floats else None


def _build_header(path: str, v: dict[str, Any], syntax: str, media_class: str, has_pixels: bool) -> InstanceHeader:
    """One builder for both readers: strings are stripped and numbers parsed the same way."""
    frames_value = _int_or_none(v.get("NumberOfFrames"))
    return InstanceHeader(
        path=path,
        sop_class_uid=_clean(v.get("SOPClassUID")) or media_class,
        sop_instance_uid=_clean(v.get("SOPInstanceUID")),
        transfer_syntax_uid=syntax,
        patient_id=_clean(v.get("PatientID")),
        patient_name=_clean(v.get("PatientName")),
        study_uid=_clean(v.get("StudyInstanceUID")),
        study_date=_clean(v.get("StudyDate")),
        study_description=_clean(v.get("StudyDescription")),
        series_uid=_clean(v.get("SeriesInstanceUID")),
        series_number=_int_or_none(v.get("SeriesNumber")),
        series_description=_clean(v.get("SeriesDescription")),
        frame_of_reference_uid=_clean(v.get("FrameOfReferenceUID")),
        modality=_clean(v.get("Modality")),
        instance_number=_int_or_none(v.get("InstanceNumber")),
        acquisition_number=_int_or_none(v.get("AcquisitionNumber")),
        rows=v.get("Rows") or 0,
        columns=v.get("Columns") or 0,
        samples_per_pixel=v.get("SamplesPerPixel") or 1,
        # Pixels without PhotometricInterpretation are read as MONOCHROME2 (what every viewer assumes).
        photometric=_clean(v.get("PhotometricInterpretation")).upper() or ("MONOCHROME2" if has_pixels else ""),
        bits_allocated=v.get("BitsAllocated") or 0,
        number_of_frames=frames_value if frames_value and frames_value > 0 else 1,
        has_pixels=has_pixels,
        frames=[
            FrameGeometry(
                position=_floats(v.get("ImagePositionPatient"), 3),
                orientation=_floats(v.get("ImageOrientationPatient"), 6),
                pixel_spacing=_floats(v.get("PixelSpacing"), 2),
            )
        ],
        gantry_tilt=_float_or_none(v.get("GantryDetectorTilt")),
        window=_window_or_none(v.get("WindowCenter"), v.get("WindowWidth")),
        imager_pixel_spacing=_floats(v.get("ImagerPixelSpacing"), 2),
        frame_rate=frame_rate_from(_float_or_none(v.get("FrameTime")),
                                   _float_or_none(v.get("RecommendedDisplayFrameRate")),
                                   _float_or_none(v.get("CineRate"))),
    )


def _window_or_none(center: Any, width: Any) -> tuple[float, float] | None:
    """The first (center, width) pair of a possibly multi-valued VOI window; None when absent or width <= 0."""
    c = _floats(center.split("\\")[0], 1) if isinstance(center, str) and center.strip() else None
    w = _floats(width.split("\\")[0], 1) if isinstance(width, str) and width.strip() else None
    if not c or not w or not w[0] > 0:
        return None
    return c[0], w[0]


def _add_dataset_details(header: InstanceHeader, ds: Any) -> None:
    """What only the pydicom path sees: per-frame geometry and the series a non-image object references."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
            frames = _functional_group_frames(ds, header)
            if frames:
                header.frames = frames
        elif "GridFrameOffsetVector" in ds and header.number_of_frames > 1:
            header.frames = _grid_offset_frames(ds, header) or header.frames
        if "SequenceOfUltrasoundRegions" in ds:
            header.ultrasound_regions = ultrasound_regions_from(ds.SequenceOfUltrasoundRegions)
        if sop_kind(header.sop_class_uid) != "image":
            series, sops = _collect_references(ds)
            # Kept even when equal to the object's own series UID: test SRs reuse the image series' UID.
            header.referenced_series_uids = series
            header.referenced_sop_uids = sops


def _first_item(ds: Any, keyword: str) -> Any:
    seq = ds.get(keyword) if ds is not None else None
    try:
        return seq[0] if seq else None
    except (TypeError, IndexError):
        return None


def _functional_group_frames(ds: Any, header: InstanceHeader) -> list[FrameGeometry]:
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    # NumberOfFrames was checked against the pixel data when there is some; without any it is a bare claim
    # (a cut SEG declared 2^31 frames under one shared group: a two-billion-step loop).
    n = len(per_frame) or (header.number_of_frames if header.has_pixels else 1)
    top = header.frames[0] if header.frames else FrameGeometry(None, None, None)

    def lookup(groups: Any, macro: str, keyword: str) -> str | None:
        # A macro in the per-frame item wins over the shared one (PS3.3 C.7.6.16).
        for source in (groups, shared):
            item = _first_item(source, macro)
            if item is not None and keyword in item:
                # The text as stored, not pydicom's conversion: a fuzzed SEG's position held 900,000 decimal
                # strings, which pydicom took 10 s to convert before _floats refused their count.
                return _text(item.get_item(keyword).value)
        return None

    frames = []
    for i in range(n):
        groups = per_frame[i] if i < len(per_frame) else None
        frames.append(
            FrameGeometry(
                position=_floats(lookup(groups, "PlanePositionSequence", "ImagePositionPatient"), 3)
                or top.position,
                orientation=_floats(lookup(groups, "PlaneOrientationSequence", "ImageOrientationPatient"), 6)
                or top.orientation,
                pixel_spacing=_floats(lookup(groups, "PixelMeasuresSequence", "PixelSpacing"), 2)
                or top.pixel_spacing,
            )
        )
    return frames


def _grid_offset_frames(ds: Any, header: InstanceHeader) -> list[FrameGeometry]:
    """RT Dose style frames: position_i = IPP + (offset_i - offset_0) * normal (both relative and absolute forms)."""
    top = header.frames[0]
    offsets = _floats(_text(ds.get("GridFrameOffsetVector")), header.number_of_frames)
    if not offsets or top.position is None or top.orientation is None:
        return []
    r, c = top.orientation[:3], top.orientation[3:]
    normal = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    return [
        FrameGeometry(
            position=(top.position[0] + (off - offsets[0]) * normal[0],
                      top.position[1] + (off - offsets[0]) * normal[1],
                      top.position[2] + (off - offsets[0]) * normal[2]),
            orientation=top.orientation,
            pixel_spacing=top.pixel_spacing,
        )
        for off in offsets
    ]


_REFERENCE_SEQUENCES = tuple(_SEQUENCE_TAGS[t] for t in (0x00081115, 0x0040A375, 0x0040A385, 0x00081200, 0x30060010))


def _collect_references(ds: Any) -> tuple[list[str], list[str]]:
    """Series and SOP instance UIDs under the reference sequences of SEG / RTSTRUCT / SR / KOS / PR."""
    series: list[str] = []
    sops: list[str] = []

    def walk(item: Any, depth: int) -> None:
        if depth > 8:  # defensive: real reference trees are 3-4 levels deep
            return
        uid = _clean(_text(item.get("SeriesInstanceUID")))
        if uid and uid not in series:
            series.append(uid)
        sop = _clean(_text(item.get("ReferencedSOPInstanceUID")))
        if sop:
            sops.append(sop)
        for elem in item:
            if elem.VR == "SQ" and elem.value:
                for sub in elem.value:
                    walk(sub, depth + 1)

    for keyword in _REFERENCE_SEQUENCES:
        for item in ds.get(keyword) or []:
            walk(item, 0)
    return series, list(dict.fromkeys(sops))


# --------------------------------------------------------------------------------------------------------
def read_header(path: PathLike) -> InstanceHeader:
    """Read one file's header (never its pixels).

    Parameters
    ----------
    path
        A DICOM file, with or without the 128-byte preamble.

    Returns
    -------
    InstanceHeader
        With per-frame geometry for enhanced multi-frame objects and the referenced series of non-image
        objects. A DICOMDIR gives a header whose ``sop_class_uid`` is :data:`MEDIA_STORAGE_DIRECTORY`.

    Raises
    ------
    DicomReadError
        When the file is not DICOM or cannot be read; ``reason`` says why in a few words.
    """
    path = os.fspath(path)
    try:
        fast = _fast_values(path)
        if fast is not None and sop_kind(_clean(fast[0][0].get("SOPClassUID"))) == "image":
            (values, syntax, media_class, has_pixels), pixels = fast
            _require_identity(values, media_class, _INCOMPLETE)
            header = _build_header(path, values, syntax, media_class, has_pixels)
            _check_pixel_claims(header, pixels)
            return header
        values, syntax, media_class, has_pixels, ds, pixels = _pydicom_values(path)
        _require_identity(values, media_class, _INCOMPLETE)
        header = _build_header(path, values, syntax, media_class, has_pixels)
        _check_pixel_claims(header, pixels)
        _add_dataset_details(header, ds)
        return header
    except DicomReadError:
        raise
    except IsADirectoryError:
        raise DicomReadError("is a directory") from None
    except PermissionError:
        raise DicomReadError("permission denied") from None
    except FileNotFoundError:
        raise DicomReadError("file not found") from None
    except OSError as exc:
        raise DicomReadError(f"cannot read file ({exc.strerror or _short(exc)})") from None
    except RecursionError:  # pydicom parses nested sequences recursively
        raise DicomReadError("sequences nested too deeply to read") from None
    except Exception as exc:  # noqa: BLE001 - untrusted input: every failure becomes a reason, never a crash
        raise DicomReadError(f"unreadable DICOM ({type(exc).__name__}: {_short(exc)})") from None


def _read_chunk(paths: Sequence[str]) -> list[InstanceHeader | UnreadableFile]:
    """Worker task: headers (or reasons) for a chunk of files, in order."""
    out: list[InstanceHeader | UnreadableFile] = []
    for path in paths:
        try:
            out.append(read_header(path))
        except DicomReadError as exc:
            out.append(UnreadableFile(path, exc.reason))
    return out


# --------------------------------------------------------------------------------------------------------
def read_dicomdir(path: PathLike) -> tuple[list[str], list[UnreadableFile]]:
    """The files a DICOMDIR lists, from its directory records.

    Records are read directly (not through the patient/study/series hierarchy), so DICOMDIRs with broken
    offsets or unknown record types still give their files. Inactive records are skipped.

    Returns
    -------
    files, problems
        Existing referenced files (absolute paths, in record order) and an :class:`UnreadableFile` for the
        DICOMDIR itself when it lists nothing, or for each listed file that is missing, is not a regular file,
        or lies outside the DICOMDIR's folder (``../..`` or an absolute path in a ReferencedFileID, or a link
        leading out): such files are listed, never opened.
    """

    path = os.fspath(path)
    root = os.path.dirname(os.path.abspath(path))
    real_root = os.path.realpath(root)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = limits.dcmread(path)  # a deflated one inflated within a cap
            records = list(ds.get("DirectoryRecordSequence") or [])
    except Exception as exc:  # noqa: BLE001 - untrusted input
        return [], [UnreadableFile(path, f"unreadable DICOMDIR ({type(exc).__name__}: {_short(exc)})")]
    files: list[str] = []
    problems: list[UnreadableFile] = []
    seen: set[str] = set()
    damaged = 0
    for record in records:
        try:  # pydicom converts a record's values only here, on access
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if record.get("RecordInUseFlag", 0xFFFF) == 0:
                    continue
                file_id = record.get("ReferencedFileID")
        except Exception:  # noqa: BLE001 - a damaged record (an unknown VR: fuzz seed 54) must not end the scan
            damaged += 1
            continue
        if not file_id:
            continue
        parts = [file_id] if isinstance(file_id, str) else [str(p) for p in file_id]
        if any(ch < " " for part in parts for ch in part):
            # a NUL or other control byte is no file name but a damaged record (the value ran on into the bytes
            # after it): counted, not echoed - those bytes can hold the next records' names and IDs
            damaged += 1
            continue
        target = _resolve_case_insensitive(root, [p.strip() for p in parts if p.strip()])
        if target in seen:
            continue
        seen.add(target)
        if not _inside(os.path.realpath(target), real_root):
            problems.append(UnreadableFile(target, "listed in DICOMDIR but outside the DICOMDIR's folder; not read"))
            continue
        kind = _file_kind(target)
        if kind == "file":
            files.append(target)
        elif kind is None:
            problems.append(UnreadableFile(target, "listed in DICOMDIR but not found"))
        else:
            problems.append(UnreadableFile(target, f"listed in DICOMDIR but is a {kind}, not a file; not read"))
    if damaged:
        problems.append(UnreadableFile(path, f"{damaged} DICOMDIR record(s) with a damaged file ID (control "
                                             "characters or an unreadable value); not read"))
    if not files and not problems:
        problems.append(UnreadableFile(path, "DICOMDIR lists no files"))
    return files, problems


def _resolve_case_insensitive(root: str, parts: list[str]) -> str:
    """Join a DICOMDIR file ID; media written on ISO 9660 may differ in case from the (upper-case) IDs."""
    exact = os.path.join(root, *parts)
    if os.path.exists(exact):
        return exact
    current = root
    for part in parts:
        candidate = os.path.join(current, part)
        if not os.path.exists(candidate):
            try:
                match = next((n for n in os.listdir(current) if n.upper() == part.upper()), None)
            except OSError:
                return exact
            if match is None:
                return exact
            candidate = os.path.join(current, match)
        current = candidate
    return current


def _is_dicomdir(path: str) -> bool:
    """By content (``DICOMDIR-empty.dcm`` is one); by name only when the content cannot say."""
    try:
        return read_header(path).sop_class_uid == MEDIA_STORAGE_DIRECTORY
    except DicomReadError:
        return os.path.basename(path).upper() == "DICOMDIR"


def _inside(real_path: str, real_root: str) -> bool:
    """True when ``real_path`` (resolved) is ``real_root`` or lies under it."""
    return real_path == real_root or real_path.startswith(real_root.rstrip(os.sep) + os.sep)


_KINDS = ((stat.S_ISDIR, "folder"), (stat.S_ISREG, "file"), (stat.S_ISFIFO, "FIFO (named pipe)"),
          (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))


def _file_kind(path: str) -> str | None:
    """``"file"``, ``"folder"``, ``"FIFO (named pipe)"``, a device...; None when it does not exist.

    Follows links. Only regular files are ever opened: opening a FIFO blocks until someone writes to it,
    and a device can be read forever.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return next((name for test, name in _KINDS if test(mode)), "special file")


def _walk(folder: str, out: list[str], problems: list[UnreadableFile] | None = None) -> None:
    """Every file under ``folder`` (sorted, recursive); hidden entries (.DS_Store, .git) are skipped.

    Links are followed only while they stay inside ``folder``; links leading out of it, FIFOs, sockets and
    devices go to ``problems`` with the reason (listed, never opened). Links to folders inside it are not
    followed (their files are found under their real place).
    """
    problems = [] if problems is None else problems
    real_root = os.path.realpath(folder)
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                    continue
                if entry.is_file(follow_symlinks=False):  # a plain file (d_type: no system call)
                    out.append(entry.path)
                    continue
                link = entry.is_symlink()
                if link and not _inside(os.path.realpath(entry.path), real_root):
                    problems.append(UnreadableFile(entry.path, "link to outside the scanned folder; not read"))
                    continue
                kind = _file_kind(entry.path)
                if kind == "file":
                    out.append(entry.path)
                elif kind is None:
                    problems.append(UnreadableFile(entry.path, "broken link" if link else "vanished while scanning"))
                elif kind != "folder":
                    problems.append(UnreadableFile(entry.path, f"a {kind}, not a file; not read"))
            except OSError:
                continue
        stack.extend(reversed(subdirs))


def _collect_files(paths: Iterable[PathLike]) -> tuple[list[str], list[UnreadableFile]]:
    files: list[str] = []
    problems: list[UnreadableFile] = []
    for raw in paths:
        path = os.fspath(raw)
        kind = _file_kind(path)
        if kind == "folder":
            _walk(path, files, problems)
        elif kind == "file":
            if _is_dicomdir(path):
                listed, bad = read_dicomdir(path)
                files.extend(listed)
                problems.extend(bad)
            else:
                files.append(path)
        elif kind is None:
            problems.append(UnreadableFile(path, "no such file or folder"))
        else:
            problems.append(UnreadableFile(path, f"a {kind}, not a file; not read"))
    # A file named twice (folder + DICOMDIR, or two overlapping folders) is read once.
    unique = list(dict.fromkeys(os.path.abspath(f) for f in files))
    return unique, problems


# --------------------------------------------------------------------------------------------------------
_INLINE_BELOW = 128  # files; a pool is not worth starting for fewer


def _make_pool(executor: str, workers: int) -> Executor:
    if executor == "thread":
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dicom-scan")
    if executor != "process":
        raise ValueError(f"executor must be 'thread' or 'process', not {executor!r}")
    # fork is unsafe in a multi-threaded (GUI) process: a forkserver (Linux) or spawn (macOS, Windows)
    # starts clean workers. The forkserver lives on, so later pools start in milliseconds.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload([__name__])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def iter_scan(
    paths: PathLike | Iterable[PathLike],
    cancel: CancelToken | None = None,
    workers: int | None = None,
    executor: str = "thread",
) -> Job[Catalog]:
    """Scan folders (recursively), files and DICOMDIRs: a job yielding progress, returning a Catalog.

    Parameters
    ----------
    paths
        One path or several. A DICOMDIR given as a file is expanded to the files it lists; inside a
        folder a DICOMDIR is skipped (its files are scanned as files of the folder anyway).
    cancel
        Checked at every yield; a cancelled scan raises :class:`~viewer.core.jobs.Cancelled`.
    workers
        None or 1 (default): read inline in the calling thread, the fastest on a local disk with a warm
        cache (see the module notes). n > 1: n parallel readers of kind ``executor``.
    executor
        ``"thread"``: overlaps file latency, for slow network shares; ``"process"``: for folders where most
        files need pydicom (big endian, enhanced multi-frame); needs the usual
        ``if __name__ == "__main__"`` guard in the calling script, as workers re-import it.

    Yields
    ------
    Progress
        ``(files read, files total, "Reading headers")`` about every 2 % (16 to 64 files).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    cancel = cancel or CancelToken()
    yield Progress(0, 0, "Listing files")
    cancel.raise_if_cancelled()
    files, unreadable = _collect_files(paths)
    total = len(files)
    yield Progress(0, total, "Reading headers")
    cancel.raise_if_cancelled()

    n_workers = 1 if workers is None else max(1, int(workers))
    step = max(16, min(64, total // 50))  # ~2 % of the files, bounded
    chunks = [files[i : i + step] for i in range(0, total, step)]
    if n_workers == 1 or total < _INLINE_BELOW:
        results = []
        done = 0
        for chunk in chunks:
            results.append(_read_chunk(chunk))
            done += len(chunk)
            yield Progress(done, total, "Reading headers")
            cancel.raise_if_cancelled()
    else:
        results = yield from _read_parallel(chunks, total, _make_pool(executor, n_workers), cancel)

    headers: list[InstanceHeader] = []
    for chunk_result in results:
        for item in chunk_result:
            if isinstance(item, UnreadableFile):
                unreadable.append(item)
            elif item.sop_class_uid != MEDIA_STORAGE_DIRECTORY:  # DICOMDIRs index files, they are not images
                headers.append(item)
    return build_catalog(headers, unreadable)


def _read_parallel(
    chunks: list[list[str]], total: int, pool: Executor, cancel: CancelToken
) -> Job[list[list[InstanceHeader | UnreadableFile]]]:
    results: list[list[InstanceHeader | UnreadableFile]] = [[] for _ in chunks]
    pending: dict[Future, int] = {}
    try:
        pending = {pool.submit(_read_chunk, chunk): i for i, chunk in enumerate(chunks)}
        done_files = 0
        while pending:
            finished, _ = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            for future in finished:
                index = pending.pop(future)
                try:
                    results[index] = future.result()
                except BrokenProcessPool:
                    # A worker process died (out of memory, a crash in a C extension): read it here.
                    results[index] = _read_chunk(chunks[index])
                done_files += len(chunks[index])
            yield Progress(done_files, total, "Reading headers")
            cancel.raise_if_cancelled()
    finally:
        # On cancel (or an error) drop the queued chunks; running ones finish in a few milliseconds.
        pool.shutdown(wait=False, cancel_futures=True)
    return results


def scan(paths: PathLike | Iterable[PathLike], **kwargs: Any) -> Catalog:
    """Scan synchronously: ``run_job(iter_scan(paths, **kwargs))``."""
    return run_job(iter_scan(paths, **kwargs))
