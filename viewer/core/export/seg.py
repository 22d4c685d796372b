"""A label map on a volume's grid -> DICOM Segmentation (highdicom), referencing the source images.

The SEG is a BINARY segmentation with one segment per label present. Each frame references its source image
(single-frame series: one SOP instance per slice; an enhanced multi-frame source: one frame per slice), so
viewers overlay it on the same slices and ``highdicom`` maps it back onto the same voxels. Segments carry coded
category/type concepts for labels we know (SNOMED CT; e.g. lung, spleen, nodule) and a private code otherwise,
plus the algorithm identification (model name, version, family "Artificial Intelligence") and whether a person
edited the result (``SEMIAUTOMATIC``) or not (``AUTOMATIC``).
"""
from __future__ import annotations

import copy
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

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
    (empty when the source lacks them - real files often do), and for enhanced multi-frame sources the pixel
    measures / plane orientation in the shared functional groups (vendors often put them per frame only)."""
    ds = copy.copy(ds)
    for keyword in _TYPE2_DEFAULTS:
        if keyword not in ds:
            setattr(ds, keyword, "")
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
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"expected a (z, y, x) label map, got shape {labels.shape}")
    ordered, frame_numbers = _order_sources(sources, slice_sop_uids, slice_frame_numbers, labels.shape[0])
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
    # highdicom wants segment numbers 1..N: renumber in label order.
    segment_of = {value: i + 1 for i, value in enumerate(described)}
    lut = np.zeros(max(high, max(described)) + 1, dtype=np.uint8 if len(described) < 256 else np.uint16)
    for value, number in segment_of.items():
        lut[value] = number
    segments = lut[labels]
    geometry = {}
    if frame_numbers is not None:
        # One multi-frame source: SEG frames follow the source's frame order.
        if affine is None:
            raise ValueError("a multi-frame source needs the volume's affine")
        order = np.argsort(frame_numbers)
        segments = segments[order]
        measures, plane, positions = _plane_geometry(hd, affine, order)
        geometry = {"pixel_measures": measures, "plane_orientation": plane, "plane_positions": positions}
    ordered = [_complete(ds) for ds in ordered]

    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name[:64], family=codes.cid7162.ArtificialIntelligence, version=str(algorithm_version)[:64]
        or "0")
    descriptions = []
    for value in described:
        category, kind = segment_codes(names.get(value, f"label {value}"), value)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=segment_of[value], segment_label=names.get(value, f"label {value}")[:64],
            segmented_property_category=category, segmented_property_type=kind,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC if edited
            else hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=generate_uid(), tracking_id=f"{names.get(value, value)} {value}"[:64],
        ))
    with warnings.catch_warnings():
        # highdicom re-checks the source's attributes (e.g. single-component patient names) and warns; the
        # values are copied as they are, and a warning would carry them into the log.
        warnings.simplefilter("ignore", UserWarning)
        seg = _segmentation(hd, ordered, segments, described, descriptions, series_number, content_label,
                            series_description, present, geometry)
    seg.SeriesDescription = series_description[:64]
    return seg


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
    return [pydicom.dcmread(str(p), stop_before_pixels=True) for p in paths]


def write_seg(path: str | os.PathLike, labels: np.ndarray, table: Mapping[int, object],
              sources: Sequence[Dataset], slice_sop_uids: Sequence[str], **kwargs) -> Path:
    """Build the SEG (see :func:`build_seg`) and write it to ``path`` atomically; returns the path."""
    seg = build_seg(labels, table, sources, slice_sop_uids, **kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    seg.save_as(str(tmp), enforce_file_format=True)
    tmp.replace(path)
    return path


def read_seg_labels(path: str | os.PathLike, slice_sop_uids: Sequence[str], shape_zyx: tuple[int, int, int],
                    slice_frame_numbers: Sequence[int] | None = None) -> tuple[np.ndarray, dict[int, str]]:
    """Read a SEG back onto a volume's grid via its source references: ``(label map, {value: segment label})``.

    Values are segment numbers. Used to verify exports (and by the viewer to open a SEG over its series).
    """
    import highdicom as hd

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
            for k, uid in enumerate(present):
                labels[index_of[uid]][mask[k, ..., 0] > 0] = number
        else:
            frames = sorted(index_of_frame)
            mask = seg.get_pixels_by_source_frame(source_sop_instance_uid=uids[0], source_frame_numbers=frames,
                                                  segment_numbers=[number], combine_segments=False,
                                                  assert_missing_frames_are_empty=True)
            for k, frame in enumerate(frames):
                labels[index_of_frame[frame]][mask[k, ..., 0] > 0] = number
    return labels, names
