"""Group scanned headers into Patient -> Study -> Series, splitting "series" that are not one volume.

A SeriesInstanceUID promises nothing about geometry: scanners put localisers of three orientations, several
echoes or time points, or re-encoded copies of one slice under one UID. The loader stacks a Series as one
volume, so here every image series is cut into parts that can be one volume each, in this order:

1. object type (images apart from raw data / SEG / SR ... sharing the UID),
2. matrix size (rows x columns),
3. orientation (ImageOrientationPatient, 1e-3 tolerance),
4. multi-frame instances: each is its own volume, unless together they tile distinct positions,
5. repeated positions (within 0.01 mm along the normal): split by AcquisitionNumber or SeriesNumber when
   that makes every position unique, otherwise the k-th instance (by InstanceNumber) at each position goes
   to part k.

Every part of a split series gets a ``split_series`` warning saying why. Distinct positions are never split,
whatever their spacing or tilt: gaps, uneven steps and gantry tilt are the loader's warnings. Copies of one
image (same SOPInstanceUID) are kept once, with a ``duplicate_instances`` warning.
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable

from viewer.core.dicom.model import Catalog, InstanceHeader, Patient, Series, Study, UnreadableFile
from viewer.core.issues import SeriesWarning
from viewer.core.logs import register_patients

__all__ = ["build_catalog", "catalog_to_json", "default_image_series", "sop_kind"]

_SEG = ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")  # Segmentation, Label Map Segmentation
_RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
_SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."  # SR family, Key Object Selection (88.59) included: both are documents
_OTHER_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.2.840.10008.5.1.4.1.1.66",  # raw data (66), registration (66.1, 66.3), fiducials, surface seg, tractography
    "1.2.840.10008.5.1.4.1.1.481.",  # RT plans, treatment records, ... (but see _RT_IMAGES)
    "1.2.840.10008.5.1.4.1.1.9.",  # waveforms
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated PDF / CDA / STL ...
    "1.2.840.10008.5.1.4.1.1.67",  # real world value mapping
    "1.2.840.10008.5.1.4.1.1.68.",  # surface scans
    "1.2.840.10008.5.1.4.1.1.90.",  # content assessment results
    "1.2.840.10008.1.3.10",  # media storage directory (DICOMDIR)
)
# RT Image (a portal image) and RT Dose (a dose grid; frames from GridFrameOffsetVector) are volumes.
_RT_IMAGES = ("1.2.840.10008.5.1.4.1.1.481.1", "1.2.840.10008.5.1.4.1.1.481.2")

_ORIENTATION_TOL = 1e-3  # direction cosines; ~0.06 degrees
_POSITION_TOL = 0.01  # mm along the slice normal: closer slices are "the same position"


def sop_kind(sop_class_uid: str) -> str:
    """``image | seg | rtstruct | sr | other`` for a SOP Class UID (unknown classes count as images).

    Parameters
    ----------
    sop_class_uid
        The SOPClassUID (or MediaStorageSOPClassUID) of an instance.
    """
    uid = sop_class_uid.strip()
    if uid in _SEG:
        return "seg"
    if uid == _RTSTRUCT:
        return "rtstruct"
    if uid.startswith(_SR_PREFIX):
        return "sr"
    if uid in _RT_IMAGES:
        return "image"
    if uid.startswith(_OTHER_PREFIXES):
        return "other"
    return "image"


def _kind(header: InstanceHeader) -> str:
    kind = sop_kind(header.sop_class_uid)
    # An "image" class without pixel data (e.g. a stub in a test file-set) cannot be displayed.
    return "other" if kind == "image" and not header.has_pixels else kind


# ------------------------------------------------------------------------------------------- geometry helpers
def _orientation(h: InstanceHeader) -> tuple[float, ...] | None:
    return h.frames[0].orientation if h.frames else None


def _position(h: InstanceHeader) -> tuple[float, float, float] | None:
    return h.frames[0].position if h.frames else None


def _normal(o: tuple[float, ...]) -> tuple[float, float, float]:
    r, c = o[:3], o[3:]
    return (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])


def _same_orientation(a: tuple[float, ...] | None, b: tuple[float, ...] | None) -> bool:
    if a is None or b is None:
        return a is b
    return all(abs(x - y) <= _ORIENTATION_TOL for x, y in zip(a, b))


def _positions_along_normal(headers: list[InstanceHeader]) -> list[float] | None:
    """Each frame's distance along the common slice normal (all frames of all headers), or None."""
    orientation = next((_orientation(h) for h in headers if _orientation(h)), None)
    if orientation is None:
        return None
    n = _normal(orientation)
    out = []
    for h in headers:
        for frame in h.frames:
            if frame.position is None:
                return None
            out.append(sum(p * k for p, k in zip(frame.position, n)))
    return out


def _has_repeats(distances: list[float]) -> bool:
    ordered = sorted(distances)
    return any(b - a < _POSITION_TOL for a, b in zip(ordered, ordered[1:]))


def _instance_order(h: InstanceHeader) -> tuple:
    return (h.instance_number is None, h.instance_number or 0, h.path)


# ------------------------------------------------------------------------------------------------ splitting
# Each splitter takes one part and returns (groups, reason); the reason is used only when it split.
Part = list[InstanceHeader]


def _by_size(part: Part) -> tuple[list[Part], str]:
    groups: dict[tuple[int, int], Part] = {}
    for h in part:
        groups.setdefault((h.rows, h.columns), []).append(h)
    return list(groups.values()), "several matrix sizes"


def _by_frame_of_reference(part: Part) -> tuple[list[Part], str]:
    """Positions in two frames of reference are in two coordinate systems (another couch position, another
    registration): stacking them by position would interleave slices. Images without one stay with the first."""
    groups: dict[str, Part] = {}
    for h in part:
        groups.setdefault(h.frame_of_reference_uid, []).append(h)
    without = groups.pop("", [])
    if len(groups) < 2:
        return [part], ""
    parts = list(groups.values())
    parts[0] += without
    return parts, "several frames of reference (their positions are not comparable)"


def _by_orientation(part: Part) -> tuple[list[Part], str]:
    groups: list[Part] = []
    for h in part:
        for group in groups:
            if _same_orientation(_orientation(group[0]), _orientation(h)):
                group.append(h)
                break
        else:
            groups.append([h])
    return groups, "several orientations"


def _by_multiframe(part: Part) -> tuple[list[Part], str]:
    """Multi-frame instances are volumes of their own unless together they tile distinct positions."""
    multi = [h for h in part if h.number_of_frames > 1]
    single = [h for h in part if h.number_of_frames <= 1]
    if not multi:
        return [part], ""
    distances = _positions_along_normal(multi) if len(multi) > 1 else None
    if distances is not None and not _has_repeats(distances):
        groups = [multi]  # one volume stored as several multi-frame slabs
    else:
        groups = [[h] for h in sorted(multi, key=_instance_order)]
    reason = "several multi-frame objects" if len(groups) > 1 else "multi-frame and single-frame images"
    return ([single] if single else []) + groups, reason


def _by_repeats(part: Part) -> tuple[list[Part], str]:
    """Single-frame images that repeat a position: by AcquisitionNumber or SeriesNumber, else by rank."""
    distances = _positions_along_normal(part)
    if any(h.number_of_frames > 1 for h in part) or distances is None or not _has_repeats(distances):
        return [part], ""
    for attribute, label in (("acquisition_number", "AcquisitionNumber"), ("series_number", "SeriesNumber")):
        groups: dict[object, Part] = {}
        for h in part:
            groups.setdefault(getattr(h, attribute), []).append(h)
        if len(groups) > 1 and all(not _has_repeats(_positions_along_normal(g) or []) for g in groups.values()):
            ordered = [groups[k] for k in sorted(groups, key=lambda v: (v is None, v or 0))]
            return ordered, f"repeated positions (split by {label})"
    # Nothing tells them apart: the k-th image (by InstanceNumber) at each position goes to part k.
    ranked = sorted(zip(distances, part), key=lambda dh: (dh[0], _instance_order(dh[1])))
    parts: list[Part] = []
    rank, previous = 0, None
    for distance, h in ranked:
        rank = rank + 1 if previous is not None and distance - previous < _POSITION_TOL else 0
        previous = distance
        if rank == len(parts):
            parts.append([])
        parts[rank].append(h)
    return parts, "repeated positions"


def _split_image_series(instances: Part) -> tuple[list[Part], list[str]]:
    """Cut one SeriesInstanceUID's images into parts that can each be one volume; the reasons."""
    parts, reasons = [instances], []
    for splitter in (_by_frame_of_reference, _by_size, _by_orientation, _by_multiframe, _by_repeats):
        next_parts: list[Part] = []
        for part in parts:
            groups, reason = splitter(part)
            if len(groups) > 1 and reason not in reasons:
                reasons.append(reason)
            next_parts.extend(groups)
        parts = next_parts
    return parts, reasons


# ---------------------------------------------------------------------------------------------- the catalog
def _make_series(key: str, uid: str, instances: Part, kind: str) -> Series:
    instances = sorted(instances, key=_instance_order)
    first = instances[0]
    sop_class = Counter(h.sop_class_uid for h in instances).most_common(1)[0][0]
    references = list(dict.fromkeys(u for h in instances for u in h.referenced_series_uids))
    return Series(
        key=key,
        uid=uid,
        modality=first.modality,
        description=first.series_description,
        series_number=first.series_number,
        kind=kind,
        sop_class_uid=sop_class,
        rows=first.rows,
        columns=first.columns,
        instances=instances,
        references=references,
    )


def _series_parts(uid: str, instances: Part) -> list[Series]:
    # Copies of one image (the same file twice, or re-encoded) would stack as repeated slices: keep one.
    seen: dict[str, InstanceHeader] = {}
    unique: Part = []
    elsewhere = 0  # repeats placed at another position: other images under a reused UID, not copies
    for h in sorted(instances, key=_instance_order):
        if h.sop_instance_uid and _kind(h) == "image":
            if h.sop_instance_uid in seen:
                elsewhere += _position(h) != _position(seen[h.sop_instance_uid])
                continue
            seen[h.sop_instance_uid] = h
        unique.append(h)
    copies = len(instances) - len(unique)

    by_kind: dict[str, Part] = {}
    for h in unique:
        by_kind.setdefault(_kind(h), []).append(h)
    reasons = ["different object types (" + ", ".join(sorted(by_kind)) + ")"] if len(by_kind) > 1 else []
    parts: list[tuple[str, Part]] = []
    for kind in sorted(by_kind, key=lambda k: (k != "image", k)):
        if kind == "image":
            groups, image_reasons = _split_image_series(by_kind[kind])
            reasons += image_reasons
            parts += [(kind, g) for g in groups]
        else:
            parts.append((kind, by_kind[kind]))

    if len(parts) == 1:
        series = [_make_series(uid, uid, parts[0][1], parts[0][0])]
    else:
        parts.sort(key=lambda kp: (kp[0] != "image", min(_instance_order(h) for h in kp[1])))
        message = f"Series split into {len(parts)} parts: " + "; ".join(reasons) + "."
        series = []
        for n, (kind, group) in enumerate(parts, start=1):
            s = _make_series(f"{uid}#{n}", uid, group, kind)
            s.warnings.append(SeriesWarning("split_series", message))
            series.append(s)
    for s in series:
        if copies and s.kind == "image":
            message = f"{copies} file(s) repeat a SOPInstanceUID; the copies were skipped."
            if elsewhere:  # the standard makes the UID unique: SEG and SR references could not tell them apart
                message += (f" {elsewhere} of them lie at another position than the image they repeat the UID of: "
                            "different images under one UID, left out (slices are missing there).")
            s.warnings.append(SeriesWarning("duplicate_instances", message))
        if s.kind == "other" and sop_kind(s.sop_class_uid) == "image":
            s.warnings.append(SeriesWarning("no_pixel_data", "These image objects carry no pixel data."))
    return series


def _series_order(s: Series) -> tuple:
    # sort() is stable: the parts of a split series keep their order (by kind, then InstanceNumber).
    return (s.series_number is None, s.series_number or 0, s.description, s.uid)


def build_catalog(headers: Iterable[InstanceHeader], unreadable: Iterable[UnreadableFile]) -> Catalog:
    """Group headers into patients, studies and series (split where a series is not one volume).

    Parameters
    ----------
    headers
        What the scanner read, in any order.
    unreadable
        Files the scanner skipped; copied into the catalog as they are.

    Returns
    -------
    Catalog
        Patients by (ID, name), studies by (date, UID), series by SeriesNumber; split parts keyed
        ``"<uid>#<n>"`` with a ``split_series`` warning. Keys are unique: a SeriesInstanceUID found again
        under another study (corrupt or merged exports) gets ``"~<k>"`` appended.
    """
    tree: dict[tuple[str, str], dict[str, dict[str, Part]]] = defaultdict(lambda: defaultdict(dict))
    for h in headers:
        tree[(h.patient_id, h.patient_name)][h.study_uid].setdefault(h.series_uid, []).append(h)
    register_patients(tree)  # the log file never shows them (viewer.core.logs)

    patients: list[Patient] = []
    used_keys: set[str] = set()
    for (patient_id, patient_name) in sorted(tree):
        patient = Patient(patient_id=patient_id, patient_name=patient_name)
        for study_uid, series_map in tree[(patient_id, patient_name)].items():
            first = next(iter(series_map.values()))[0]
            study = Study(uid=study_uid, date=first.study_date, description=first.study_description)
            for series_uid, instances in series_map.items():
                study.series.extend(_series_parts(series_uid, instances))
            study.series.sort(key=_series_order)
            for s in study.series:
                # A UID reused in another study (corrupt or merged exports) must not collide: keys are unique.
                base, k = s.key, 1
                while s.key in used_keys:
                    k += 1
                    s.key = f"{base}~{k}"
                used_keys.add(s.key)
            patient.studies.append(study)
        patient.studies.sort(key=lambda st: (st.date, st.uid))
        patients.append(patient)
    return Catalog(patients=patients, unreadable=list(unreadable))


def _bytes_present(series: Series) -> int:
    total = 0
    for h in series.instances:
        try:
            total += os.path.getsize(h.path)
        except OSError:
            pass  # gone since the scan: it holds nothing
    return total


def default_image_series(catalog: Catalog, candidates: Iterable[Series] | None = None) -> Series | None:
    """The image series to open when none is named: the one with the most real content.

    One rule for the CLI (``info``, ``screenshot``) and the GUI. Ranked by the bytes its files hold, then
    by instances, then by frames - never by declared sizes alone: a file claiming 2^31 frames or 65535 x 65535
    pixels over a few KiB must not take the study over (the scan already refuses frame counts beyond the
    bytes present, see :mod:`viewer.core.dicom.limits`).

    Parameters
    ----------
    catalog
        What the scan found.
    candidates
        Choose among these series only (e.g. the ones a restored session names); default: all of the catalog.

    Returns
    -------
    Series or None
        None when there is no image series with instances.
    """
    pool = catalog.all_series() if candidates is None else list(candidates)
    images = [s for s in pool if s.kind == "image" and s.n_instances]
    if not images:
        return None
    return max(images, key=lambda s: (_bytes_present(s), s.n_instances, s.n_frames))


def catalog_to_json(catalog: Catalog) -> dict:
    """The ``hounsfield scan --json`` document (issue 2, section 3), plus each series' ``key``."""
    return {
        "patients": [
            {
                "patient_id": p.patient_id,
                "patient_name": p.patient_name,
                "studies": [
                    {
                        "study_uid": st.uid,
                        "study_date": st.date,
                        "description": st.description,
                        "series": [
                            {
                                "series_uid": s.uid,
                                "key": s.key,
                                "modality": s.modality,
                                "description": s.description,
                                "series_number": s.series_number,
                                "n_instances": s.n_instances,
                                "sop_class_uid": s.sop_class_uid,
                                "rows": s.rows,
                                "columns": s.columns,
                                "kind": s.kind,
                                "references": list(s.references),
                                "warnings": [w.to_dict() for w in s.warnings],
                            }
                            for s in st.series
                        ],
                    }
                    for st in p.studies
                ],
            }
            for p in catalog.patients
        ],
        "unreadable": [{"path": u.path, "reason": u.reason} for u in catalog.unreadable],
    }
