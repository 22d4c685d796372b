"""What the de-identification does to each attribute: PS3.15 Annex E, Table E.1-1, and the options we offer.

Where the table comes from
--------------------------
The Basic Application Level Confidentiality Profile is a table of ~650 attributes with an action each (D dummy,
Z empty, X remove, K keep, C clean, U new UID, and combinations such as X/Z/D). We do not keep a hand-written copy:
we read it from ``dicom-anonymizer`` (Kitware Europe, BSD-3), whose ``dicomfields_2026c`` module is generated from
the standard's own web table and regenerated for each edition. What we considered:

- pydicom: no Annex E table in its public API (only the DCM codes 113100... in ``pydicom.sr.codedict``).
- ``deid`` (pydicom's authors): its default recipe is a heuristic header filter (``REMOVE endswith:ID``,
  ``REMOVE contains:UID``...), not Table E.1-1; it would drop every UID and so break SEG/SR/RTSTRUCT references.
- ``dicognito``: keyword/VR-driven randomisation, not the table.
- ``idiscore``: a full table with the option columns, but GPLv3 (this project is Apache-2.0) and it pins Pillow<11.

Only dicom-anonymizer's table is used, not its engine: that engine applies actions to top-level attributes only
(a ReferencedSOPInstanceUID inside a sequence keeps its old value, so references break), keeps its UID map in a
module global and turns some removals into dummy dates. :mod:`viewer.services.deid.dataset` walks every level.

How combined actions are resolved (we do not know each IOD's attribute types, so we pick per action):
- X/Z, X/D, X/Z/D -> X (remove), except :data:`DUMMY_INSTEAD` (Type 1 where SEG and enhanced images carry them);
- Z/D -> Z (empty); X/Z/U* (Referenced/Source Image Sequence) -> keep the sequence, its UIDs remapped and the rest
  of its content de-identified like any other level, because SEG frames point at their source images through it.

Options (the table's option columns are not in dicom-anonymizer; we implement them from their definitions in
PS3.15 E.3, which is what the columns encode):
- Retain Longitudinal Temporal Information, Full Dates (113106): every DA/DT/TM attribute is kept, except the
  patient's birth date/time and device manufacture/installation dates (not longitudinal; the standard's column
  leaves them out too).
- Clean Descriptors (113105): the descriptors in :data:`CLEANED_DESCRIPTORS` are kept after removing what looks
  identifying (the patient's names and IDs, accession number, institution, dates, long digit runs); all other
  descriptors follow the Basic Profile. Free-text comments (ImageComments, PatientComments...) are never kept.
- Clean Structured Content (113104): an SR's ContentSequence (D in the Basic Profile, which would empty the
  document) is kept and de-identified item by item with the same table.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from pydicom.datadict import tag_for_keyword

TABLE_EDITION = "dicomfields_2026c"  # dicom-anonymizer's copy of PS3.15 Table E.1-1, DICOM 2026c


class Action(str, Enum):
    """One resolved Table E.1-1 action."""

    REMOVE = "X"
    EMPTY = "Z"
    DUMMY = "D"
    NEW_UID = "U"
    REFERENCES = "U*"  # X/Z/U* sequences: kept, contained UIDs remapped
    KEEP = "K"


class Profile(str, Enum):
    """The two profiles the CLI and the dialog offer."""

    BASIC = "basic"
    RETAIN_DATES = "retain-dates"


#: X/Z/D-type attributes that SEG (Enhanced General Equipment) and enhanced multi-frame images require (Type 1):
#: removing them would make the export invalid, so they get a dummy value instead.
DUMMY_INSTEAD = frozenset({"DeviceSerialNumber"})

#: Kept under Clean Descriptors, after :func:`clean_text`: what a reader needs to tell series and findings apart.
CLEANED_DESCRIPTORS = frozenset({
    "StudyDescription", "SeriesDescription", "ProtocolName", "PerformedProcedureStepDescription",
    "ROIName", "ROIObservationLabel", "StructureSetLabel", "StructureSetName", "TextValue",
})

#: Dates and times that Retain Longitudinal Temporal Information does not keep.
NOT_LONGITUDINAL = frozenset({"PatientBirthDate", "PatientBirthTime", "DateOfManufacture", "DateOfInstallation",
                              "GPSTimeStamp", "GPSDateStamp"})
DATE_VRS = frozenset({"DA", "DT", "TM"})
CONTENT_SEQUENCE = tag_for_keyword("ContentSequence")

_COMBINED = {"X_Z_TAGS", "X_D_TAGS", "X_Z_D_TAGS"}


@dataclass(frozen=True)
class Masked:
    """A repeating-group entry of the table (e.g. overlays 60xx,3000): matches when ``tag & mask == value``."""

    value: int
    mask: int
    action: Action


@dataclass
class Rules:
    """The resolved table: an action per tag (anything absent is kept), plus the options in force."""

    actions: dict[int, Action]
    masked: list[Masked] = field(default_factory=list)
    retain_dates: bool = False
    clean_descriptors: bool = True

    def action_for(self, tag: int) -> Action:
        """The action for ``tag`` (a plain int), :attr:`Action.KEEP` when the table does not list it."""
        found = self.actions.get(tag)
        if found is not None:
            return found
        for entry in self.masked:
            if tag & entry.mask == entry.value:
                return entry.action
        return Action.KEEP

    def method_codes(self) -> list[tuple[str, str]]:
        """(code value, meaning) of the DCM codes for DeidentificationMethodCodeSequence."""
        codes = [("113100", "Basic Application Confidentiality Profile"),
                 ("113104", "Clean Structured Content Option")]
        if self.clean_descriptors:
            codes.append(("113105", "Clean Descriptors Option"))
        if self.retain_dates:
            codes.append(("113106", "Retain Longitudinal Temporal Information Full Dates Option"))
        return codes

    def method_text(self) -> str:
        """The DeidentificationMethod text (LO, 64 characters at most)."""
        parts = ["PS3.15 Basic Profile"]
        if self.retain_dates:
            parts.append("full dates")
        if self.clean_descriptors:
            parts.append("clean descr")
        return ("Hounsfield: " + ", ".join(parts))[:64]


def _basic_table() -> dict[str, list[tuple[int, ...]]]:
    # Imported as a module (not via its importlib-based selector) so a frozen app finds it.
    from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as table

    names = ("D_TAGS", "Z_TAGS", "X_TAGS", "U_TAGS", "Z_D_TAGS", "X_Z_TAGS", "X_D_TAGS", "X_Z_D_TAGS",
             "X_Z_U_STAR_TAGS")
    return {name: list(getattr(table, name)) for name in names}


def _resolve(category: str, keyword_tag: int) -> Action:
    if category == "X_Z_U_STAR_TAGS":
        return Action.REFERENCES
    if category in _COMBINED:
        return Action.DUMMY if keyword_tag in _DUMMY_TAGS else Action.REMOVE
    return {"D_TAGS": Action.DUMMY, "Z_TAGS": Action.EMPTY, "X_TAGS": Action.REMOVE, "U_TAGS": Action.NEW_UID,
            "Z_D_TAGS": Action.EMPTY}[category]


_DUMMY_TAGS = frozenset(t for t in (tag_for_keyword(k) for k in DUMMY_INSTEAD) if t is not None)


def build_rules(profile: Profile | str = Profile.BASIC, clean_descriptors: bool = True) -> Rules:
    """The table resolved for ``profile``; ``clean_descriptors`` adds the Clean Descriptors option."""
    profile = Profile(profile)
    actions: dict[int, Action] = {}
    masked: list[Masked] = []
    for category, tags in _basic_table().items():
        for entry in tags:
            if len(entry) == 2:
                tag = (entry[0] << 16) | entry[1]
                actions[tag] = _resolve(category, tag)
            else:  # (group, element, group mask, element mask)
                group, element, group_mask, element_mask = entry
                masked.append(Masked((group << 16) | element, (group_mask << 16) | element_mask,
                                     _resolve(category, -1)))
    return Rules(actions, masked, retain_dates=profile is Profile.RETAIN_DATES, clean_descriptors=clean_descriptors)


def removed_tags(rules: Rules) -> set[int]:
    """Tags the resolved table removes (for reports and tests of the resolution)."""
    return {tag for tag, action in rules.actions.items() if action is Action.REMOVE}


_DATE_LIKE = re.compile(r"\b\d{4}[-./]?\d{2}[-./]?\d{2}\b|\b\d{1,2}[-./]\d{1,2}[-./]\d{2,4}\b")
_DIGIT_RUN = re.compile(r"\d{5,}")


def identifying_words(values: Iterable[object]) -> list[str]:
    """Words (2+ characters) from names and IDs to strip out of descriptors, longest first."""
    words: set[str] = set()
    for value in values:
        if value is None:
            continue
        text = str(value)
        words.add(text.strip())
        words.update(w for w in re.split(r"[\^\s,]+", text) if len(w) >= 2)
    return sorted((w for w in words if len(w) >= 2), key=len, reverse=True)


def clean_text(text: str, words: Iterable[str]) -> str:
    """``text`` without the identifying ``words``, date-like strings and long digit runs; spacing tidied."""
    for word in words:
        text = re.sub(re.escape(word), " ", text, flags=re.IGNORECASE)
    text = _DIGIT_RUN.sub(" ", _DATE_LIKE.sub(" ", text))
    return re.sub(r"\s{2,}", " ", text).strip(" -_,;:")
