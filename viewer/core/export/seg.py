"""A label map on a volume's grid -> DICOM Segmentation (highdicom), referencing the source images.

The SEG is a BINARY segmentation with one segment per label present. Each frame references its source image
(single-frame series: one SOP instance per slice; an enhanced multi-frame source: one frame per slice), so
viewers overlay it on the same slices and ``highdicom`` maps it back onto the same voxels. Segments carry coded
category/type concepts for labels we know (SNOMED CT; e.g. lung, spleen, nodule) and a private code otherwise,
plus the algorithm identification (model name, version, family "Artificial Intelligence") and whether a person
edited the result (``SEMIAUTOMATIC``) or not (``AUTOMATIC``).

:func:`build_seg` / :func:`read_seg_labels` work on a label map (one label per voxel). The editor's overlapping
segments use :func:`build_seg_segments` / :func:`read_seg_segments`: one binary bit-plane per segment, each
with its own algorithm type (MANUAL included), codes and colour, read back without flattening; the reader also
opens SEGs that omit "spatial locations preserved" (dcmqi) after checking each frame's plane geometry itself.
"""
from __future__ import annotations

import collections
import copy
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from inference.types import int3
from viewer.core.dicom.damage import Refusal, refusing_damage
from viewer.core.editing.segmentation import SparseMask

MANUFACTURER = "Hounsfield"
PRIVATE_SCHEME = "99HOUNSFIELD"

# (category, type) as (value, scheme, meaning) for label names we recognise (lower-case, spaces/underscores).
_ANATOMY = ("91723000", "SCT", "Anatomical Structure")
_ALTERED = ("49755003", "SCT", "Morphologically Altered Structure")
_KNOWN_LABELS: dict[str, tuple[tuple[str, str, str], tuple[str, str, str]]] = {
    "lung": (_ANATOMY, ("39607008", "SCT", "Lung")),
    "lungs": (_ANATOMY, ("39607008", "SCT", "Lung")),
    "left lung": (_ANATOMY, ("44029006", "SCT", "Left lung")),
    "right lung": (_ANATOMY, ("3341006", "SCT", "Right lung")),
    "spleen": (_ANATOMY, ("78961009", "SCT", "Spleen")),
    "liver": (_ANATOMY, ("10200004", "SCT", "Liver")),
    "heart": (_ANATOMY, ("80891009", "SCT", "Heart")),
    "kidney": (_ANATOMY, ("64033007", "SCT", "Kidney")),
    "trachea": (_ANATOMY, ("44567001", "SCT", "Trachea")),
    "nodule": (_ALTERED, ("27925004", "SCT", "Nodule")),
    "lung nodule": (_ALTERED, ("27925004", "SCT", "Nodule")),
    "nodules": (_ALTERED, ("27925004", "SCT", "Nodule")),
    "lesion": (_ALTERED, ("52988006", "SCT", "Lesion")),
    "mass": (_ALTERED, ("4147007", "SCT", "Mass")),
    "tumor": (_ALTERED, ("108369006", "SCT", "Neoplasm")),
    "tumour": (_ALTERED, ("108369006", "SCT", "Neoplasm")),
    "airway": (_ANATOMY, ("89187006", "SCT", "Airway structure")),
    "airways": (_ANATOMY, ("89187006", "SCT", "Airway structure")),
}


def segment_codes(name: str, value: int):
    """``(category, type)`` highdicom CodedConcepts for a label name (private code when unknown)."""
    from highdicom.sr import CodedConcept

    key = re.sub(r"[_\s]+", " ", name.strip().lower())
    if key in _KNOWN_LABELS:
        category, kind = _KNOWN_LABELS[key]
        return CodedConcept(*category), CodedConcept(*kind)
    category = ("85756007", "SCT", "Tissue")
    return CodedConcept(*category), CodedConcept(f"L{int(value)}", PRIVATE_SCHEME, name[:64] or f"label {value}")


def _software_version() -> str:
    try:
        from importlib.metadata import version

        return version("hounsfield")
    except Exception:  # noqa: BLE001 - not installed (a checkout run)
        return "0.1.0"


def _order_sources(sources: Sequence[Dataset], slice_sop_uids: Sequence[str],
                   slice_frame_numbers: Sequence[int] | None, n_slices: int):
    """Source datasets in our slice order, or (one multi-frame source, frame order) -> slice index mapping."""
    by_uid = {str(ds.SOPInstanceUID): ds for ds in sources}
    uids = [str(u) for u in slice_sop_uids]
    if len(uids) != n_slices:
        raise ValueError(f"the volume has {n_slices} slices but {len(uids)} source SOP instance UIDs")
    missing = sorted(set(uids) - set(by_uid))
    if missing:
        raise ValueError(f"{len(missing)} source image(s) of this volume were not given")
    if len(set(uids)) == n_slices:
        return [by_uid[u] for u in uids], None
    if len(set(uids)) == 1:
        frames = list(slice_frame_numbers or [])
        if len(frames) != n_slices or len(set(frames)) != n_slices:
            raise ValueError("a multi-frame source needs one distinct frame number per slice")
        return [by_uid[uids[0]]], [int(f) for f in frames]
    raise ValueError("slices come from several multi-frame objects: not supported for DICOM SEG export")


_TYPE2_DEFAULTS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                   "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _complete(ds: Dataset) -> Dataset:
    """A shallow copy with what highdicom needs of a source: the type-2 patient/study attributes a SEG must carry
    (empty when the source lacks them - real files often do), no empty Specific Character Set (dcmqi's CT), and
    for enhanced multi-frame sources the pixel measures / plane orientation in the shared functional groups
    (vendors often put them per frame only)."""
    ds = copy.copy(ds)
    for keyword in _TYPE2_DEFAULTS:
        if keyword not in ds:
            setattr(ds, keyword, "")
    if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
        del ds.SpecificCharacterSet  # empty means the default repertoire, as absent does; highdicom refuses ""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame:
        shared = copy.deepcopy(ds.SharedFunctionalGroupsSequence[0]) if ds.get("SharedFunctionalGroupsSequence") \
            else Dataset()
        for keyword in ("PixelMeasuresSequence", "PlaneOrientationSequence"):
            if keyword not in shared and keyword in per_frame[0]:
                setattr(shared, keyword, copy.deepcopy(getattr(per_frame[0], keyword)))
        ds.SharedFunctionalGroupsSequence = [shared]
    return ds


def _plane_geometry(hd, affine: np.ndarray, frame_order: np.ndarray):
    """Pixel measures, orientation and per-frame positions from our affine (for multi-frame sources whose
    functional groups highdicom cannot take over as they are)."""
    affine = np.asarray(affine, dtype=np.float64)
    col_spacing, row_spacing, thickness = (float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
    orientation = [float(v) for v in np.concatenate([affine[:3, 0] / col_spacing, affine[:3, 1] / row_spacing])]
    measures = hd.PixelMeasuresSequence(pixel_spacing=(row_spacing, col_spacing), slice_thickness=thickness)
    plane = hd.PlaneOrientationSequence(coordinate_system="PATIENT", image_orientation=orientation)
    positions = [hd.PlanePositionSequence(coordinate_system="PATIENT",
                                          image_position=[float(v) for v in affine[:3, 2] * k + affine[:3, 3]])
                 for k in frame_order]
    return measures, plane, positions


def build_seg(labels: np.ndarray, table: Mapping[int, object], sources: Sequence[Dataset],
              slice_sop_uids: Sequence[str], *, slice_frame_numbers: Sequence[int] | None = None,
              affine: np.ndarray | None = None,
              algorithm_name: str = "Hounsfield model", algorithm_version: str = "0", edited: bool = False,
              series_description: str = "AI segmentation", series_number: int = 900,
              content_label: str = "AI_SEG") -> Dataset:
    """Build the SEG dataset (not written).

    Parameters
    ----------
    labels
        ``(z, y, x)`` integer label map on the volume grid (0 = background).
    table
        ``{value: Label or name}`` - a name for each label value; values not in the map are left out.
    sources
        The series' source datasets (headers are enough; any order).
    slice_sop_uids, slice_frame_numbers
        From the volume: which SOP instance (and frame) each slice of ``labels`` is.
    affine
        The volume's affine; needed for an enhanced multi-frame source (its plane geometry is written from it).
    algorithm_name, algorithm_version
        The model (registry name and version).
    edited
        True when a person corrected the result (algorithm type SEMIAUTOMATIC).
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"expected a (z, y, x) label map, got shape {labels.shape}")
    names = {int(v): (getattr(lab, "name", None) or str(lab)) for v, lab in table.items() if int(v) != 0}
    if labels.dtype.kind not in "ui":
        raise ValueError(f"the label map must hold integers, got {labels.dtype}")
    low, high = int(labels.min(initial=0)), int(labels.max(initial=0))
    if low < 0 or high > 65535:
        raise ValueError("label values must be in [0, 65535]")
    present = [int(v) for v in np.flatnonzero(np.bincount(labels.ravel(), minlength=1)) if v != 0]
    unknown = sorted(set(present) - set(names))
    if unknown:
        raise ValueError(f"label values {unknown} have no entry in the label table")
    described = present or sorted(names)[:1]
    if not described:
        raise ValueError("the label table is empty")
    algorithm_type = "SEMIAUTOMATIC" if edited else "AUTOMATIC"
    # One BINARY segment per label value, numbered 1..N in label order (highdicom wants 1..N).
    specs = [SegmentSpec(label=names.get(value, f"label {value}"), mask=labels == value,
                         algorithm_type=algorithm_type, algorithm_name=algorithm_name,
                         algorithm_version=str(algorithm_version)) for value in described]
    return build_seg_segments(specs, sources, slice_sop_uids, slice_frame_numbers=slice_frame_numbers,
                              affine=affine, series_description=series_description, series_number=series_number,
                              content_label=content_label)


def _segmentation(hd, ordered, segments, described, descriptions, series_number, content_label,
                  series_description, present, geometry):
    from pydicom.uid import generate_uid

    return hd.seg.Segmentation(
        source_images=list(ordered), pixel_array=segments,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
        series_instance_uid=generate_uid(), series_number=int(series_number), sop_instance_uid=generate_uid(),
        instance_number=1, manufacturer=MANUFACTURER, manufacturer_model_name="Hounsfield",
        software_versions=_software_version(), device_serial_number="0", content_label=content_label[:16],
        content_description=series_description[:64], omit_empty_frames=bool(present), **geometry,
    )


def read_sources(paths: Sequence[str | os.PathLike]) -> list[Dataset]:
    """Headers of the source images (no pixel data), for :func:`build_seg`."""
    from viewer.core.dicom.limits import dcmread

    # a deflated one inflated within a cap
    return [dcmread(str(p), stop_before_pixels=True, force=False) for p in paths]


def save_atomically(dataset: Dataset, path: str | os.PathLike) -> Path:
    """Write a DICOM dataset to ``path`` via a temporary file and a rename, so no half-written file is left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    dataset.save_as(str(tmp), enforce_file_format=True)
    tmp.replace(path)
    return path


def write_seg(path: str | os.PathLike, labels: np.ndarray, table: Mapping[int, object],
              sources: Sequence[Dataset], slice_sop_uids: Sequence[str], **kwargs) -> Path:
    """Build the SEG (see :func:`build_seg`) and write it to ``path`` atomically; returns the path."""
    return save_atomically(build_seg(labels, table, sources, slice_sop_uids, **kwargs), path)


def check_seg_claims(path: str | os.PathLike, shape_zyx: tuple[int, int, int]) -> None:
    """Refuse a SEG whose declared sizes do not fit this volume, before highdicom reads its pixels.

    It must hold pixel data; its NumberOfFrames and Rows x Columns are checked against the bytes present (as any
    image's: :func:`~viewer.core.dicom.scan.read_header`), and one segment's mask over the volume's slices, on the
    larger of the two pixel grids, against the series cap (segments are read one at a time; what they keep is
    bounded as they are read: :func:`iter_seg_segments`). Fuzzed SEGs asked for 12 GiB (65535 x 65535 frames), a
    billion frames, or 2^31 frames without any pixel data. Each segment number must be listed once.

    Raises
    ------
    ValueError
        With the reason (no header value that could identify the patient).
    """
    from viewer.core.dicom import limits
    from viewer.core.dicom.scan import DicomReadError, read_header

    try:
        header = read_header(path)
    except DicomReadError as error:
        raise ValueError(f"the SEG cannot be read: {error.reason}") from None
    if not header.has_pixels:  # nothing bounds its frame count: a cut one declared 2^31 (22 GB in highdicom)
        raise ValueError("the SEG holds no pixel data")
    slices, rows, columns = shape_zyx
    try:
        limits.check_decoded_size(slices, max(rows, header.rows), max(columns, header.columns), 1, 1)
    except limits.SizeLimitError as error:
        raise ValueError(f"a segment over this volume: {error.reason}") from None
    # A number listed twice leaves its frames ambiguous; a fuzzed SEG listed segment 1 3,000 times, which highdicom
    # took 9 s to parse and 89 s to read segment by segment.
    with refusing_damage("the SEG"):
        segments = limits.dcmread(path, stop_before_pixels=True, force=False,
                                  specific_tags=["SegmentSequence", *_FUNCTIONAL_GROUPS])
        numbers = [int(d.SegmentNumber) for d in segments.get("SegmentSequence") or []]
        _check_geometry_counts(segments)
    twice = sorted(n for n, count in collections.Counter(numbers).items() if count > 1)
    if twice:
        raise ValueError(f"the SEG lists segment {twice[0]} more than once")


_FUNCTIONAL_GROUPS = ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence")
#: The frame geometry our own check reads: macro -> (attribute, how many values it holds).
_GEOMETRY = {"PlanePositionSequence": ("ImagePositionPatient", 3),
             "PlaneOrientationSequence": ("ImageOrientationPatient", 6)}


def _check_geometry_counts(header: Dataset) -> None:
    """Refuse a frame position or orientation holding more values than it has, counted in the stored text: a
    fuzzed SEG's ImagePositionPatient held 900,000, which took pydicom 14 s to convert and highdicom 19 s to refuse in
    all. (Such a frame was refused before too, once converted: its geometry cannot be checked.)"""
    for groups in _FUNCTIONAL_GROUPS:
        for group in header.get(groups) or []:
            for macro, (keyword, count) in _GEOMETRY.items():
                for item in group.get(macro) or []:
                    element = item.get_item(keyword)
                    value = element.value if element is not None else None
                    if not value:
                        continue
                    n = value.count(b"\\") + 1 if isinstance(value, bytes) else element.VM  # raw, or converted
                    if n > count:
                        raise Refusal(f"the SEG's {keyword} holds {n} values, not {count}")


def read_seg_labels(path: str | os.PathLike, slice_sop_uids: Sequence[str], shape_zyx: tuple[int, int, int],
                    slice_frame_numbers: Sequence[int] | None = None) -> tuple[np.ndarray, dict[int, str]]:
    """Read a SEG back onto a volume's grid via its source references: ``(label map, {value: segment label})``.

    Values are segment numbers. Used to verify exports (and by the viewer to open a SEG over its series).
    Raises ``ValueError`` for a SEG whose sizes do not fit the volume (:func:`check_seg_claims`).
    """
    import highdicom as hd

    check_seg_claims(path, shape_zyx)
    with refusing_damage("the SEG"):
        seg = hd.seg.segread(str(path))
        labels = np.zeros(shape_zyx, dtype=np.uint16)
        names = {int(d.SegmentNumber): str(d.SegmentLabel) for d in seg.SegmentSequence}
        uids = [str(u) for u in slice_sop_uids]
        single = len(set(uids)) == len(uids)
        if single:
            index_of = {u: k for k, u in enumerate(uids)}
        else:
            index_of_frame = {int(f): k for k, f in enumerate(slice_frame_numbers or [])}
        referenced = {str(x[2]) for x in seg.get_source_image_uids()}
        present = [u for u in uids if u in referenced]
        for number in names:
            if single:
                mask = seg.get_pixels_by_source_instance(source_sop_instance_uids=present, segment_numbers=[number],
                                                         combine_segments=False, assert_missing_frames_are_empty=True)
                _check_frame_size(mask, shape_zyx)
                for k, uid in enumerate(present):
                    labels[index_of[uid]][mask[k, ..., 0] > 0] = number
            else:
                frames = sorted(index_of_frame)
                mask = seg.get_pixels_by_source_frame(source_sop_instance_uid=uids[0], source_frame_numbers=frames,
                                                      segment_numbers=[number], combine_segments=False,
                                                      assert_missing_frames_are_empty=True)
                _check_frame_size(mask, shape_zyx)
                for k, frame in enumerate(frames):
                    labels[index_of_frame[frame]][mask[k, ..., 0] > 0] = number
    return labels, names


def _check_frame_size(pixels: np.ndarray, shape_zyx: Sequence[int]) -> None:
    """A SEG on another pixel grid than the volume's cannot be laid onto it voxel for voxel: say so."""
    if pixels.shape[1:3] != tuple(shape_zyx[1:]):
        raise Refusal(f"SEG frames are {pixels.shape[1:3]}, the volume's slices {tuple(shape_zyx[1:])}")


# ---------------------------------------------------------------------------------------------------------------
# Overlapping segments (the editor's Segmentation): one binary bit-plane per segment, so nothing is flattened.

@dataclass
class SegmentSpec:
    """One segment to write: its mask on the volume grid and its description.

    Parameters
    ----------
    label
        Segment label (name).
    mask
        ``(z, y, x)`` boolean mask on the volume grid; segments may overlap.
    algorithm_type
        ``"AUTOMATIC"``, ``"SEMIAUTOMATIC"`` or ``"MANUAL"``.
    algorithm_name, algorithm_version
        The model (required unless MANUAL; written with family "Artificial Intelligence").
    category, type
        ``(value, scheme, meaning)`` codes; ``None`` derives them from the label (:func:`segment_codes`).
    color
        RGB 0-255 display colour (stored as the recommended CIELab value), or None.
    """

    label: str
    mask: np.ndarray
    algorithm_type: str = "MANUAL"
    algorithm_name: str = ""
    algorithm_version: str = ""
    category: tuple[str, str, str] | None = None
    type: tuple[str, str, str] | None = None
    color: tuple[int, int, int] | None = None


@dataclass
class SegmentRead:
    """One segment read from a DICOM SEG onto a volume grid (see :func:`read_seg_segments`)."""

    number: int
    label: str
    mask: SparseMask
    algorithm_type: str
    algorithm_name: str
    algorithm_version: str
    category: tuple[str, str, str] | None
    type: tuple[str, str, str] | None
    color: tuple[int, int, int] | None


def build_seg_segments(segments: Sequence[SegmentSpec], sources: Sequence[Dataset], slice_sop_uids: Sequence[str],
                       *, slice_frame_numbers: Sequence[int] | None = None, affine: np.ndarray | None = None,
                       series_description: str = "Segmentation", series_number: int = 901,
                       content_label: str = "SEGMENTATION") -> Dataset:
    """A BINARY SEG with one segment per :class:`SegmentSpec` (numbered 1..N in order), overlaps kept.

    Same source referencing as :func:`build_seg`; each segment carries its own algorithm type and, unless
    MANUAL, its algorithm identification.
    """
    import highdicom as hd
    from highdicom.sr import CodedConcept
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    if not segments:
        raise ValueError("no segments to write")
    shape = tuple(np.asarray(segments[0].mask).shape)
    if len(shape) != 3 or any(tuple(np.asarray(s.mask).shape) != shape for s in segments):
        raise ValueError("every segment mask must be (z, y, x) on the same grid")
    ordered, frame_numbers = _order_sources(sources, slice_sop_uids, slice_frame_numbers, shape[0])
    pixels = np.stack([np.asarray(s.mask, dtype=bool) for s in segments], axis=-1).astype(np.uint8)
    present = bool(pixels.any())
    geometry = {}
    if frame_numbers is not None:
        if affine is None:
            raise ValueError("a multi-frame source needs the volume's affine")
        order = np.argsort(frame_numbers)
        pixels = pixels[order]
        measures, plane, positions = _plane_geometry(hd, affine, order)
        geometry = {"pixel_measures": measures, "plane_orientation": plane, "plane_positions": positions}
    ordered = [_complete(ds) for ds in ordered]
    descriptions = []
    for number, spec in enumerate(segments, start=1):
        category, kind = segment_codes(spec.label, number)
        if spec.category:
            category = CodedConcept(*spec.category)
        if spec.type:
            kind = CodedConcept(*spec.type)
        algorithm_type = hd.seg.SegmentAlgorithmTypeValues(spec.algorithm_type)
        algorithm = None
        if algorithm_type != hd.seg.SegmentAlgorithmTypeValues.MANUAL:
            algorithm = hd.AlgorithmIdentificationSequence(
                name=(spec.algorithm_name or "unknown")[:64], family=codes.cid7162.ArtificialIntelligence,
                version=str(spec.algorithm_version or "0")[:64])
        color = hd.color.CIELabColor.from_rgb(*spec.color) if spec.color is not None else None
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=(spec.label or f"segment {number}")[:64],
            segmented_property_category=category, segmented_property_type=kind, algorithm_type=algorithm_type,
            algorithm_identification=algorithm, tracking_uid=generate_uid(),
            tracking_id=f"{spec.label} {number}"[:64], display_color=color))
    with warnings.catch_warnings():
        # highdicom re-checks the source's attributes (e.g. single-component patient names) and warns; the
        # values are copied as they are, and a warning would carry them into the log.
        warnings.simplefilter("ignore", UserWarning)
        seg = _segmentation(hd, ordered, pixels, list(range(1, len(segments) + 1)), descriptions, series_number,
                            content_label, series_description, present, geometry)
    seg.SeriesDescription = series_description[:64]
    return seg


def write_seg_segments(path: str | os.PathLike, segments: Sequence[SegmentSpec], sources: Sequence[Dataset],
                       slice_sop_uids: Sequence[str], **kwargs) -> Path:
    """Build (:func:`build_seg_segments`) and write atomically; returns the path."""
    return save_atomically(build_seg_segments(segments, sources, slice_sop_uids, **kwargs), path)


def _code(item) -> tuple[str, str, str] | None:
    if not item:
        return None
    c = item[0]
    value = c.get("CodeValue") or c.get("LongCodeValue") or c.get("URNCodeValue") or ""
    return (str(value), str(c.get("CodingSchemeDesignator", "")), str(c.get("CodeMeaning", "")))


def _rgb(item) -> tuple[int, int, int] | None:
    lab = item.get("RecommendedDisplayCIELabValue")
    if lab is None:
        return None
    import highdicom as hd

    try:
        return int3(hd.color.CIELabColor.from_dicom_value(list(lab)).to_rgb(clip=True))
    except Exception:  # noqa: BLE001 - a malformed colour is not worth refusing the segment
        return None


def _check_frame_geometry(seg, uids: Sequence[str], frame_numbers: Sequence[int] | None, affine: np.ndarray,
                          slice_positions: np.ndarray | None = None, tol_mm: float = 0.05) -> None:
    """Raise :class:`Refusal` when a SEG frame's plane position/orientation is not that of the slice it references.

    Writers such as dcmqi omit "spatial locations preserved"; highdicom then refuses to index by source frames
    unless told to ignore it, so we check the geometry ourselves before doing that.
    """
    affine = np.asarray(affine, dtype=np.float64)
    index_of = {u: k for k, u in enumerate(uids)} if len(set(uids)) == len(uids) else None
    frame_of = {int(f): k for k, f in enumerate(frame_numbers or [])}
    shared = seg.get("SharedFunctionalGroupsSequence")
    orientation = None
    if shared and "PlaneOrientationSequence" in shared[0]:
        orientation = shared[0].PlaneOrientationSequence[0].ImageOrientationPatient
    columns = affine[:3, :2] / np.linalg.norm(affine[:3, :2], axis=0)
    for group in seg.PerFrameFunctionalGroupsSequence:
        try:
            source = group.DerivationImageSequence[0].SourceImageSequence[0]
            position = np.array(group.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        except (AttributeError, IndexError):
            continue
        uid = str(source.ReferencedSOPInstanceUID)
        if index_of is not None:
            k = index_of.get(uid)
        else:
            k = frame_of.get(int(source.get("ReferencedFrameNumber", 0) or 0))
        if k is None:
            continue
        frame_orientation = orientation
        if "PlaneOrientationSequence" in group:
            frame_orientation = group.PlaneOrientationSequence[0].ImageOrientationPatient
        if frame_orientation is not None and not np.allclose(
                np.array(frame_orientation, float).reshape(2, 3).T, columns, atol=1e-3):
            raise Refusal("a SEG frame's orientation differs from the slice it references")
        # Uneven stacks: the true slice position, not the affine's regular one.
        expected = slice_positions[k] if slice_positions is not None else affine[:3, 2] * k + affine[:3, 3]
        if np.linalg.norm(position - expected) > tol_mm:
            raise Refusal("a SEG frame's position differs from the slice it references")


def read_seg_segments(path: str | os.PathLike, slice_sop_uids: Sequence[str], shape_zyx: tuple[int, int, int],
                      slice_frame_numbers: Sequence[int] | None = None, affine: np.ndarray | None = None,
                      slice_positions: np.ndarray | None = None) -> list[SegmentRead]:
    """Every segment of a SEG on a volume grid, overlaps kept (:func:`iter_seg_segments`, drained)."""
    return [segment for _, _, segment in iter_seg_segments(path, slice_sop_uids, shape_zyx, slice_frame_numbers,
                                                           affine, slice_positions)]


def iter_seg_segments(path: str | os.PathLike, slice_sop_uids: Sequence[str], shape_zyx: tuple[int, int, int],
                      slice_frame_numbers: Sequence[int] | None = None, affine: np.ndarray | None = None,
                      slice_positions: np.ndarray | None = None) -> Iterator[tuple[int, int, SegmentRead]]:
    """Read the segments of a SEG onto a volume grid through its source references, overlaps kept, one at a time:
    yields ``(segments read, segments in the file, segment)``.

    Frames that reference images outside the volume are ignored; raises ``ValueError`` when none of its
    frames reference this volume, or (given the volume's ``affine`` and, for uneven stacks, its
    ``slice_positions``) when a frame's plane geometry is not that of its referenced slice. FRACTIONAL segments
    are binarised at 0.5. A SEG whose sizes do not fit the volume is refused first (:func:`check_seg_claims`).

    Each segment is kept over its bounding box (:class:`SparseMask`), so a SEG of many segments (TotalSegmentator's
    117 over a 600-slice CT: 18 GB as full masks) opens in what its segments cover; ``ValueError`` when even that
    passes the series cap.
    """
    import highdicom as hd

    from viewer.core.dicom import limits

    check_seg_claims(path, shape_zyx)
    with refusing_damage("the SEG"):
        seg = hd.seg.segread(str(path))
        numbers = [int(d.SegmentNumber) for d in seg.SegmentSequence]
        fractional = str(seg.SegmentationType) == "FRACTIONAL"
        with_frames = _segments_with_frames(seg)
    uids = [str(u) for u in slice_sop_uids]
    # Without "spatial locations preserved" highdicom will not index by source; the geometry check stands in.
    ignore = affine is not None
    if affine is not None:
        with refusing_damage("the SEG"):
            _check_frame_geometry(seg, uids, slice_frame_numbers, affine,
                                  None if slice_positions is None else np.asarray(slice_positions, dtype=float))
    if len(set(uids)) == len(uids):
        index_of = {u: k for k, u in enumerate(uids)}
        with refusing_damage("the SEG"):
            referenced = {str(x[2]) for x in seg.get_source_image_uids()}
        present = [u for u in uids if u in referenced]
        if not present:
            raise ValueError("the SEG references none of this volume's images")
        slices = [index_of[u] for u in present]

        def pixels_of(number: int) -> np.ndarray:
            return seg.get_pixels_by_source_instance(
                source_sop_instance_uids=present, segment_numbers=[number], combine_segments=False,
                assert_missing_frames_are_empty=True, ignore_spatial_locations=ignore)
    else:
        frame_of = {int(f): k for k, f in enumerate(slice_frame_numbers or [])}
        frames = sorted(frame_of)
        slices = [frame_of[f] for f in frames]

        def pixels_of(number: int) -> np.ndarray:
            return seg.get_pixels_by_source_frame(
                source_sop_instance_uid=uids[0], source_frame_numbers=frames, segment_numbers=[number],
                combine_segments=False, assert_missing_frames_are_empty=True, ignore_spatial_locations=ignore)

    full = np.zeros(shape_zyx, dtype=bool)  # one segment at a time (check_seg_claims allowed it)
    kept, cap = 0, limits.max_series_bytes()
    for done, (number, item) in enumerate(zip(numbers, seg.SegmentSequence), start=1):
        mask = SparseMask(shape_zyx)
        if number in with_frames:
            with refusing_damage("the SEG"):
                pixels = pixels_of(number)
            _check_frame_size(pixels, shape_zyx)
            full[...] = False
            full[slices] = pixels[..., 0] >= 0.5 if fractional else pixels[..., 0] > 0
            mask = SparseMask.from_full(full)
            kept += mask.nbytes
            if kept > cap:
                raise ValueError(f"the SEG's segments cover more than {limits.format_bytes(cap)} of this volume "
                                 f"(the limit; {limits.ENV_MAX_SERIES_BYTES} sets it)")
        with refusing_damage("the SEG"):
            segment = _segment_read(number, item, mask)
        yield done, len(numbers), segment


def _segment_read(number: int, item, mask: SparseMask) -> SegmentRead:
    """A segment's description (label, algorithm, codes, colour) around its mask."""
    algorithm = item.get("SegmentationAlgorithmIdentificationSequence")
    name = str(item.get("SegmentAlgorithmName", "") or "")
    version = ""
    if algorithm:
        name = str(algorithm[0].get("AlgorithmName", name))
        version = str(algorithm[0].get("AlgorithmVersion", ""))
    return SegmentRead(
        number=number, label=str(item.get("SegmentLabel", f"segment {number}")), mask=mask,
        algorithm_type=str(item.get("SegmentAlgorithmType", "MANUAL")), algorithm_name=name,
        algorithm_version=version, category=_code(item.get("SegmentedPropertyCategoryCodeSequence")),
        type=_code(item.get("SegmentedPropertyTypeCodeSequence")), color=_rgb(item))


def _segments_with_frames(seg) -> set[int]:
    """The segment numbers some frame of the SEG belongs to (the others are empty: nothing to read)."""
    shared = seg.get("SharedFunctionalGroupsSequence")
    if shared and "SegmentIdentificationSequence" in shared[0]:
        return {int(shared[0].SegmentIdentificationSequence[0].ReferencedSegmentNumber)}
    numbers = set()
    for group in seg.get("PerFrameFunctionalGroupsSequence") or []:
        try:
            numbers.add(int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber))
        except (AttributeError, IndexError, TypeError, ValueError):
            continue  # a frame without a readable segment number belongs to none
    return numbers
