"""Reading DICOM JSON (PS3.18 F.2), as QIDO-RS and STOW-RS answer, into our plain hits.

Answers are untrusted: every accessor tolerates a missing tag, an empty ``Value``, a wrong type, and returns a
default instead of raising. A study or series without a valid UID is dropped (it could not be retrieved anyway).
"""
from __future__ import annotations

from typing import Any

from viewer.services.pacs.cache import checked_uid
from viewer.services.pacs.model import SeriesHit, StudyHit

STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"
STUDY_FIELDS = ("StudyDate", "StudyDescription", "AccessionNumber", "ModalitiesInStudy", "PatientName", "PatientID",
                "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")
SERIES_FIELDS = ("Modality", "SeriesNumber", "SeriesDescription", "NumberOfSeriesRelatedInstances")


def values(item: Any, tag: str) -> list:
    """The ``Value`` list of ``tag`` in one DICOM JSON dataset ([] when absent or malformed)."""
    if not isinstance(item, dict):
        return []
    element = item.get(tag)
    found = element.get("Value") if isinstance(element, dict) else None
    return found if isinstance(found, list) else []


def text(item: Any, tag: str) -> str:
    """The first value of ``tag`` as text ("" when absent); a person name gives its alphabetic form."""
    found = values(item, tag)
    if not found or found[0] is None:
        return ""
    first = found[0]
    if isinstance(first, dict):  # PN: {"Alphabetic": "DOE^JOHN", "Ideographic": ...}
        first = first.get("Alphabetic", "")
    return str(first).strip()[:1024]


def integer(item: Any, tag: str) -> int | None:
    """The first value of ``tag`` as an int (IS values may come as text), or None."""
    raw = text(item, tag)
    try:
        return int(float(raw)) if raw else None
    except (ValueError, OverflowError):
        return None


def uid(item: Any, tag: str) -> str | None:
    """The first value of ``tag`` when it is a valid UID, else None."""
    try:
        return checked_uid(text(item, tag))
    except ValueError:
        return None


def study_hit(item: Any) -> StudyHit | None:
    """One QIDO-RS study result as a :class:`StudyHit` (None without a valid Study Instance UID)."""
    study_uid = uid(item, STUDY_UID)
    if study_uid is None:
        return None
    modalities = tuple(str(v).strip() for v in values(item, "00080061") if isinstance(v, str) and v.strip())
    return StudyHit(study_uid=study_uid, patient_name=text(item, "00100010"), patient_id=text(item, "00100020"),
                    study_date=text(item, "00080020"), description=text(item, "00081030"),
                    accession=text(item, "00080050"), modalities=modalities,
                    n_series=integer(item, "00201206"), n_instances=integer(item, "00201208"))


def series_hit(item: Any, study_uid: str) -> SeriesHit | None:
    """One QIDO-RS series result as a :class:`SeriesHit` (None without a valid Series Instance UID)."""
    series_uid = uid(item, SERIES_UID)
    if series_uid is None:
        return None
    return SeriesHit(study_uid=uid(item, STUDY_UID) or study_uid, series_uid=series_uid,
                     modality=text(item, "00080060"), series_number=integer(item, "00200011"),
                     description=text(item, "0008103E"), n_instances=integer(item, "00201209"))


def datasets(answer: Any) -> list[dict]:
    """The datasets of a DICOM JSON answer (a list of them, or one dataset sent unwrapped)."""
    if isinstance(answer, dict):
        return [answer]
    return [item for item in answer if isinstance(item, dict)] if isinstance(answer, list) else []
