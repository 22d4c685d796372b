"""De-identify one pydicom Dataset in place, at every nesting level (see :mod:`viewer.services.deid.profile`)."""
from __future__ import annotations

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from viewer.services.deid.profile import (
    CLEANED_DESCRIPTORS,
    CONTENT_SEQUENCE,
    DATE_VRS,
    NOT_LONGITUDINAL,
    Action,
    Rules,
    clean_text,
    identifying_words,
)
from viewer.services.deid.uids import UidMap, is_well_known

_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})  # (Float/Double) Pixel Data: never touched
_IDENTIFYING_TEXT = ("PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName",
                     "PatientMotherBirthName", "AccessionNumber", "InstitutionName", "InstitutionAddress",
                     "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "StudyID")
_DUMMY_TEXT = {"PN": "ANONYMOUS", "DA": "19000101", "DT": "19000101000000", "TM": "000000", "AS": "000Y",
               "DS": "0", "IS": "0", "UR": "http://anonymized.invalid"}
_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"})
_BYTE_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
_TEXT_VRS = frozenset({"AE", "CS", "LO", "SH", "LT", "ST", "UT", "UC"})


class _Walk:
    """The per-file state of one walk: the rules, the run's map and the words a descriptor must not contain."""

    def __init__(self, rules: Rules, uid_map: UidMap, words: list[str]) -> None:
        self.rules, self.uid_map, self.words = rules, uid_map, words

    def dataset(self, ds: Dataset) -> None:
        for tag in list(ds.keys()):
            # PS3.15 E.1.1: private attributes are removed (no Retain Safe Private option); command (0000) and
            # file meta (0002) elements do not belong in a stored data set and would stop the writer
            if tag.is_private or tag.group in (0x0000, 0x0002):
                del ds[tag]
            elif int(tag) not in _PIXEL_TAGS:
                self.element(ds, tag)

    def element(self, ds: Dataset, tag: BaseTag) -> None:
        elem = ds[tag]
        action = self.rules.action_for(int(tag))
        if int(tag) == CONTENT_SEQUENCE and elem.VR == "SQ":  # Clean Structured Content: item by item
            self.items(elem)
            return
        if self.rules.retain_dates and (elem.VR in DATE_VRS or elem.keyword == "TimezoneOffsetFromUTC") \
                and elem.keyword not in NOT_LONGITUDINAL:
            return
        if self.rules.clean_descriptors and elem.keyword in CLEANED_DESCRIPTORS \
                and action in (Action.REMOVE, Action.EMPTY, Action.DUMMY):
            self.clean(elem)
        elif action is Action.REMOVE:
            del ds[tag]
        elif action is Action.EMPTY:
            elem.value = [] if elem.VR == "SQ" else None
        elif action is Action.DUMMY:
            self.dummy(elem)
        elif elem.VR == "SQ":  # KEEP or REFERENCES: the content is de-identified like any other level
            self.items(elem)
        elif elem.VR == "UI":  # NEW_UID, or an unlisted UID: instance UIDs are remapped, well-known ones kept
            self.remap(elem)

    def items(self, elem: DataElement) -> None:
        for item in elem.value or []:
            self.dataset(item)

    def remap(self, elem: DataElement) -> None:
        if elem.value is None or elem.value == "":
            return
        values = list(elem.value) if elem.VM > 1 else [elem.value]
        mapped = [str(v) if is_well_known(str(v), elem.keyword) else self.uid_map.new_uid(str(v)) for v in values]
        elem.value = mapped if len(mapped) > 1 else mapped[0]

    def clean(self, elem: DataElement) -> None:
        if elem.value is None or elem.VR not in _TEXT_VRS:
            elem.value = None
            return
        values = list(elem.value) if elem.VM > 1 else [elem.value]
        cleaned = [clean_text(str(v), self.words) for v in values]
        elem.value = cleaned if len(cleaned) > 1 else cleaned[0]

    def dummy(self, elem: DataElement) -> None:
        vr = elem.VR
        if vr == "SQ":
            elem.value = []  # a dummy item would still be content; an empty sequence carries nothing
        elif vr == "UI":
            self.remap(elem)
        elif vr in _DUMMY_TEXT:
            elem.value = _DUMMY_TEXT[vr]
        elif vr in _TEXT_VRS:
            elem.value = "ANONYMIZED"
        elif vr in _NUMBER_VRS:
            elem.value = 0
        elif vr in _BYTE_VRS:
            elem.value = b"\x00\x00"
        else:
            elem.value = None


def patient_key(ds: Dataset) -> str:
    """What identifies the patient of ``ds`` within a run (original ID and name; never logged)."""
    return f"{ds.get('PatientID', '')}|{ds.get('PatientName', '')}"


def deidentify_dataset(ds: Dataset, rules: Rules, uid_map: UidMap, pseudonym: str = "") -> None:
    """Apply ``rules`` to ``ds`` (and its file meta) in place; UIDs through ``uid_map``.

    PatientName/PatientID become the patient's pseudonym (see :meth:`UidMap.pseudonym`); PatientIdentityRemoved,
    DeidentificationMethod(CodeSequence) and LongitudinalTemporalInformationModified record what was done.
    Pixel data are not touched.
    """
    words = identifying_words(ds.get(k) for k in _IDENTIFYING_TEXT if k in ds)
    person = uid_map.pseudonym(patient_key(ds), pseudonym)
    _Walk(rules, uid_map, words).dataset(ds)
    ds.PatientName = person["name"]
    ds.PatientID = person["id"]
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = rules.method_text()
    codes = []
    for value, meaning in rules.method_codes():
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "DCM", meaning
        codes.append(code)
    ds.DeidentificationMethodCodeSequence = codes
    ds.LongitudinalTemporalInformationModified = "UNMODIFIED" if rules.retain_dates else "REMOVED"
    _rewrite_file_meta(ds)


def _rewrite_file_meta(ds: Dataset) -> None:
    """A new file meta: same transfer syntax, the new SOP instance UID, our implementation (no source AE title)."""
    old = getattr(ds, "file_meta", None)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(str(ds.get("SOPClassUID", "")))
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if old is not None and "TransferSyntaxUID" in old:
        meta.TransferSyntaxUID = old.TransferSyntaxUID
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "HOUNSFIELD_DEID"
    ds.file_meta = meta
