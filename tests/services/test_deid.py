"""De-identified export on real files: LIDC CT, SEG / SR / RTSTRUCT with their images, ultrasound and secondary
capture, several transfer syntaxes, and hostile input.

"Removed" is checked against tests/services/data/ps3_15_table_e1_1_removed.tsv, a second reading of PS3.15 Table
E.1-1 made independently of the dicom-anonymizer copy the implementation uses.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from inference.jobs import run_job
from tests.conftest import data_path
from viewer.services.deid import DeidOptions, anonymize_job, iter_report_lines
from viewer.services.deid.profile import Action, build_rules, clean_text
from viewer.services.deid.uids import UidMap, is_well_known

REFERENCE = Path(__file__).parent / "data" / "ps3_15_table_e1_1_removed.tsv"
SECRET = "SMITH^JOHN"
#: Kept although the standard's column starts with X, for reasons the standard gives itself: X/Z/U* sequences keep
#: their (remapped) references when the IOD needs them (SEG frames -> source images); X/Z/D DeviceSerialNumber is
#: Type 1 in the Enhanced General Equipment module of SEG and enhanced images (D keeps it valid).
KEPT_BY_STANDARD_CHOICE = {"ReferencedImageSequence", "SourceImageSequence", "DeviceSerialNumber"}


def _reference() -> dict[str, tuple[str, str]]:
    """tag (8 hex, 'x' for repeating groups) -> (action, keyword) of the independent table copy."""
    rows = {}
    for line in REFERENCE.read_text().splitlines():
        if line and not line.startswith("#"):
            tag, action, keyword = line.split("\t")
            rows[tag] = (action, keyword)
    return rows


def _removed_matchers() -> list[tuple[int, int, str]]:
    """(value, mask, keyword) for every attribute the Basic Profile removes, per the independent copy."""
    out = []
    for tag, (_action, keyword) in _reference().items():
        if keyword in KEPT_BY_STANDARD_CHOICE:
            continue
        mask = int("".join("0" if c == "X" else "F" for c in tag), 16)
        out.append((int(tag.replace("X", "0"), 16), mask, keyword))
    return out


def _walk(ds: Dataset, depth: int = 0):
    """Every element at every nesting level (with its depth)."""
    for elem in ds:
        yield elem, depth
        if elem.VR == "SQ":
            for item in elem.value or []:
                yield from _walk(item, depth + 1)


def _phi_file(source: Path, target: Path) -> Path:
    """A real CT slice with every removable attribute pydicom knows filled in, at the top level and nested."""
    ds = pydicom.dcmread(str(source))
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = SECRET, "PID-4711", "19450203"
    ds.StudyDate, ds.SeriesDate, ds.AccessionNumber = "20240102", "20240102", "ACC-99"
    nested = Dataset()
    for value, mask, keyword in _removed_matchers():
        if mask != 0xFFFFFFFF or not keyword or tag_for_keyword(keyword) is None or value >> 16 in (0, 2):
            continue
        vr = dictionary_VR(value)
        if vr == "SQ":
            item = Dataset()
            item.PatientName = SECRET
            ds.add_new(value, vr, [item])
        elif vr in ("US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"):
            ds.add_new(value, vr, 1)
        elif vr in ("OB", "OW", "UN", "OF", "OD", "OL", "OV"):
            ds.add_new(value, vr, b"SECRET")
        elif vr in ("DA",):
            ds.add_new(value, vr, "20240102")
        elif vr in ("TM",):
            ds.add_new(value, vr, "101010")
        elif vr in ("DT",):
            ds.add_new(value, vr, "20240102101010")
        elif vr in ("DS", "IS"):
            ds.add_new(value, vr, "1")
        elif vr == "AS":
            ds.add_new(value, vr, "079Y")
        elif vr == "UI":
            ds.add_new(value, vr, "1.2.3.4")
        elif vr in ("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UT", "UC", "UR"):
            ds.add_new(value, vr, "SECRET")
        if value in ds and vr in ("PN", "LO", "SH"):
            nested.add_new(value, vr, "SECRET")
    ds.StudyDescription = "CT chest SMITH 20240102"
    ds.SeriesDescription = "lung JOHN PID-4711 1234567"
    ds.ImageComments = "call SMITH at home"
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    ref.update(nested)  # removable attributes one level down, where a top-level-only anonymiser misses them
    ds.ReferencedImageSequence = [ref]
    ds.add_new(0x00291010, "LO", "private secret")  # private, with no creator: removed all the same
    ds.add_new(0x60003000, "OW", b"\x00\x01" * 8)  # overlay data (60xx,3000): X
    ds.save_as(str(target), enforce_file_format=True)
    return target


def _hostile_uid_file(source: Path, target: Path) -> Path:
    ds = pydicom.dcmread(str(source))
    ds.SeriesInstanceUID = "1." + "2" * 198
    ds.StudyInstanceUID = "1." + "3" * 198
    ds.save_as(str(target), enforce_file_format=True)
    return target


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A folder of real files (copied: the export refuses symbolic links) plus made variants."""
    root = tmp_path_factory.mktemp("deid-in")
    lidc = sorted(data_path("lidc-idri-0001").rglob("*.dcm"))[:12]
    for k, path in enumerate(lidc):
        shutil.copy(path, root / f"lidc-{k:03d}.dcm")
    seg = data_path("seg-rtstruct")
    for rel in ("dcmqi/segmentations/liver.dcm", "dcmqi/segmentations/ct-3slice", "highdicom/seg_image_ct_binary.dcm",
                "highdicom/referenced_pydicom_CT2", "highdicom/sr_document.dcm", "highdicom/ct_image.dcm",
                "rt-utils/mock_data/rt.dcm", "rt-utils/mock_data/ct_1.dcm", "rt-utils/mock_data/ct_2.dcm"):
        src = seg / rel
        dst = root / rel.replace("/", "_")
        shutil.copytree(src, dst) if src.is_dir() else shutil.copy(src, dst)
    ts = data_path("ts-cornerstone-ct")
    for name in ("CTImage.dcm_JPEGProcess1TransferSyntax_1.2.840.10008.1.2.4.50.dcm",
                 "CTImage.dcm_RLELosslessTransferSyntax_1.2.840.10008.1.2.5.dcm",
                 "CTImage.dcm_JPEG2000LosslessOnlyTransferSyntax_1.2.840.10008.1.2.4.90.dcm",
                 "CTImage.dcm_BigEndianExplicitTransferSyntax_1.2.840.10008.1.2.2.dcm",
                 "CTImage.dcm_DeflatedExplicitVRLittleEndianTransferSyntax_1.2.840.10008.1.2.1.99.dcm"):
        copy = pydicom.dcmread(str(ts / name))  # the same image in each syntax: make them distinct instances
        copy.SOPInstanceUID = copy.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        copy.save_as(str(root / f"ts-{name.rsplit('_', 1)[1]}"), enforce_file_format=True)
    us = pydicom.dcmread(str(ts / "US-YBR_FULL_422-EVRLE.dcm"))
    shutil.copy(ts / "US-YBR_FULL_422-EVRLE.dcm", root / "us-marked-clean.dcm")  # BurnedInAnnotation NO
    del us.BurnedInAnnotation
    us.save_as(str(root / "us-unmarked.dcm"), enforce_file_format=True)
    shutil.copy(get_testdata_file("SC_rgb.dcm"), root / "secondary-capture.dcm")
    _phi_file(lidc[0], root / "phi.dcm")
    _hostile_uid_file(lidc[1], root / "long-uid.dcm")
    (root / "notes.txt").write_text("not DICOM")
    whole = (root / "lidc-000.dcm").read_bytes()
    (root / "truncated-header.dcm").write_bytes(whole[:700])
    (root / "truncated-pixels.dcm").write_bytes(whole[:-1000])
    return root


def _export(inputs: Path, out: Path, **options):
    options.setdefault("uid_map", out.parent / f"{out.name}-map.json")
    return run_job(anonymize_job([inputs], out, DeidOptions(**options)))


@pytest.fixture(scope="module")
def basic(inputs, tmp_path_factory):
    """The pure Basic Profile (no Clean Descriptors) over everything."""
    out = tmp_path_factory.mktemp("deid-basic") / "out"
    return _export(inputs, out, clean_descriptors=False)


def _outputs(report) -> dict[str, Dataset]:
    return {source: pydicom.dcmread(output) for source, output in report.written}


def test_the_implementation_table_removes_what_the_independent_copy_removes():
    rules = build_rules("basic", clean_descriptors=False)
    disagree = []
    for tag, (action, keyword) in _reference().items():
        if "X" in tag[:4] or keyword in KEPT_BY_STANDARD_CHOICE:
            continue
        got = rules.action_for(int(tag, 16))
        if got is not Action.REMOVE:
            disagree.append((keyword, action, got.value))
    assert not disagree
    assert len(_reference()) > 350  # the reference really is the table, not a sample


def test_no_attribute_the_profile_removes_survives_at_any_level(basic):
    outputs = _outputs(basic)
    assert len(outputs) > 30
    matchers = _removed_matchers()
    survivors = set()
    for source, ds in outputs.items():
        for elem, depth in _walk(ds):
            for value, mask, keyword in matchers:
                if int(elem.tag) & mask == value:
                    survivors.add((Path(source).name, keyword, depth))
    assert not survivors
    # the made file really carried them, nested too: a top-level-only anonymiser would leave some behind
    phi = pydicom.dcmread(next(s for s in (p for p, _ in basic.written) if s.endswith("phi.dcm")))
    assert sum(1 for elem, _ in _walk(phi) for v, m, _ in matchers if int(elem.tag) & m == v) > 300


def test_private_tags_are_removed_everywhere(basic, inputs):
    assert any(e.tag.is_private for e in pydicom.dcmread(str(inputs / "lidc-000.dcm")))
    for ds in _outputs(basic).values():
        assert not [e.tag for e, _ in _walk(ds) if e.tag.is_private]


def test_no_patient_identity_left_and_identity_removal_recorded(basic):
    for source, ds in _outputs(basic).items():
        text = str(ds)
        assert "SMITH" not in text and "PID-4711" not in text and "ACC-99" not in text, source
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.PatientName.family_name == "ANON" and ds.PatientID.startswith("ANON-")
        assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113104"]
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
        assert not ds.get("StudyDate") and not ds.get("PatientBirthDate")
    ids = {ds.PatientID for s, ds in _outputs(basic).items() if Path(s).name.startswith("lidc-")}
    assert len(ids) == 1  # one pseudonym per patient across the run


def test_pixel_data_and_transfer_syntax_unchanged(basic):
    syntaxes = set()
    for source, ds in _outputs(basic).items():
        original = pydicom.dcmread(source)
        if "PixelData" not in original:
            continue
        assert ds.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert ds.PixelData == original.PixelData, source
        syntaxes.add(str(ds.file_meta.TransferSyntaxUID))
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID != original.SOPInstanceUID
    assert {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.2",
            "1.2.840.10008.1.2.1.99"} <= syntaxes


def test_instance_uids_replaced_everywhere_well_known_uids_kept(basic):
    old_uids: set[str] = set()
    for source, ds in _outputs(basic).items():
        original = pydicom.dcmread(source)
        for elem, _ in _walk(original):
            if elem.VR == "UI" and elem.value and not elem.tag.is_private:
                values = elem.value if elem.VM > 1 else [elem.value]
                old_uids.update(str(v) for v in values if not is_well_known(str(v), elem.keyword))
        assert ds.SOPClassUID == original.SOPClassUID
    assert len(old_uids) > 50
    for ds in _outputs(basic).values():
        for elem, _ in _walk(ds):
            if elem.VR == "UI" and elem.value:
                values = elem.value if elem.VM > 1 else [elem.value]
                assert not old_uids & {str(v) for v in values}, elem.keyword
                assert all(len(str(v)) <= 64 for v in values)


def _scan(out: Path):
    from viewer.core.dicom.scan import scan

    catalog = scan([out])
    assert not catalog.unreadable
    return catalog


def test_seg_opens_onto_the_remapped_images_with_the_same_voxels(basic, inputs):
    from viewer.core.dicom.load import load_series
    from viewer.core.editing.io import open_seg

    def masks(folder: Path) -> list[tuple]:
        """(shape, voxels, bytes) of every segment of every SEG, read onto the image series it references."""
        catalog = _scan(folder) if folder != inputs else _catalog_of(inputs)
        result = []
        for seg in (s for s in catalog.all_series() if s.kind == "seg"):
            assert seg.references
            image = catalog.find_series(seg.references[0])
            assert image is not None and image.kind == "image"
            for segment in open_seg(seg.instances[0].path, load_series(image)):
                mask = segment.mask.full()
                result.append((mask.shape, int(mask.sum()), mask.tobytes()))
        return sorted(result)

    before, after = masks(inputs), masks(basic.out_dir)
    assert len(after) >= 2 and all(voxels for _, voxels, _ in after)
    assert before == after


def _catalog_of(folder: Path):
    from viewer.core.dicom.scan import scan

    return scan([folder])


def test_sr_and_rtstruct_reference_the_remapped_images(basic):
    from viewer.core.dicom.load import load_series
    from viewer.core.rtstruct import RTStructOnVolume, read_rtstruct_set

    catalog = _scan(basic.out_dir)
    sop_uids = {i.sop_instance_uid for s in catalog.all_series() for i in s.instances}
    srs = [s for s in catalog.all_series() if s.kind == "sr"]
    assert srs
    for sr in srs:
        ds = pydicom.dcmread(sr.instances[0].path)
        referenced = {str(e.value) for e, _ in _walk(ds) if e.keyword == "ReferencedSOPInstanceUID"}
        assert referenced and referenced <= sop_uids  # content items and evidence point at exported files
        assert all(catalog.find_series(ref) is not None for ref in sr.references)
    rtstructs = [s for s in catalog.all_series() if s.kind == "rtstruct"]
    assert rtstructs
    for rt in rtstructs:
        structure = read_rtstruct_set(rt.instances[0].path)
        image = catalog.find_series(structure.referenced_series_uids[0])
        assert image is not None
        volume = load_series(image)
        source = next(s for s, o in basic.written if o == rt.instances[0].path)
        old_frame = pydicom.dcmread(source).ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID
        assert structure.frame_of_reference_uid == UidMap.load(basic.uid_map).uids[old_frame]
        assert RTStructOnVolume(structure.rois, volume).slices()  # contours land on the exported slices


def test_burned_in_images_are_flagged_not_exported(basic, inputs, tmp_path):
    flagged = {Path(source).name: (reason, exported) for source, reason, exported in basic.flagged}
    assert flagged.keys() == {"us-unmarked.dcm", "secondary-capture.dcm"}
    assert "ultrasound" in flagged["us-unmarked.dcm"][0] and "secondary capture" in flagged["secondary-capture.dcm"][0]
    written = {Path(s).name for s, _ in basic.written}
    assert "us-marked-clean.dcm" in written and not written & flagged.keys()
    lines = "\n".join(iter_report_lines(basic))
    assert "flagged (not exported)" in lines and "us-unmarked.dcm" in lines
    report = run_job(anonymize_job([inputs / "us-unmarked.dcm"], tmp_path / "o",
                                   DeidOptions(include_flagged=True, uid_map=tmp_path / "m.json")))
    assert report.flagged[0][2] is True and len(report.written) == 1


def test_uid_map_is_local_consistent_and_never_in_the_output(basic):
    assert basic.uid_map is not None and basic.out_dir not in basic.uid_map.parents
    assert oct(basic.uid_map.stat().st_mode & 0o777) == "0o600"
    saved = UidMap.load(basic.uid_map)
    files = [p for p in basic.out_dir.rglob("*") if p.is_file()]
    assert files and all(p.suffix == ".dcm" for p in files)
    blob = b"".join(p.read_bytes() for p in files)
    assert b"hounsfield-deid-map" not in blob and saved.salt.encode() not in blob
    lidc = pydicom.dcmread(next(s for s, _ in basic.written if s.endswith("lidc-000.dcm")))
    out = pydicom.dcmread(next(o for s, o in basic.written if s.endswith("lidc-000.dcm")))
    assert saved.uids[lidc.SOPInstanceUID] == out.SOPInstanceUID
    assert saved.uids[lidc.StudyInstanceUID] == out.StudyInstanceUID


def test_map_inside_the_output_folder_is_refused(inputs, tmp_path):
    with pytest.raises(ValueError, match="inside the export folder"):
        run_job(anonymize_job([inputs / "phi.dcm"], tmp_path / "o", DeidOptions(uid_map=tmp_path / "o" / "m.json")))
    assert not (tmp_path / "o").exists()


def test_retain_dates_keeps_dates_basic_does_not(inputs, tmp_path):
    kept = _export(inputs / "phi.dcm", tmp_path / "dates", profile="retain-dates")
    ds = pydicom.dcmread(kept.written[0][1])
    assert ds.StudyDate == "20240102" and ds.SeriesDate == "20240102"
    assert not ds.get("PatientBirthDate")  # the birth date is not longitudinal information
    assert "113106" in [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
    assert ds.LongitudinalTemporalInformationModified == "UNMODIFIED"
    plain = pydicom.dcmread(_export(inputs / "phi.dcm", tmp_path / "plain").written[0][1])
    assert not plain.get("StudyDate") and "SeriesDate" not in plain


def test_clean_descriptors_keeps_cleaned_descriptions(inputs, tmp_path):
    report = _export(inputs / "phi.dcm", tmp_path / "clean", pseudonym="Study 7")
    ds = pydicom.dcmread(report.written[0][1])
    assert ds.StudyDescription == "CT chest" and ds.SeriesDescription == "lung"
    assert "ImageComments" not in ds  # free text is never kept
    assert ds.PatientName == "Study 7" and ds.PatientID == "Study 7"
    assert "113105" in [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
    assert clean_text("Dr Who 12/03/2001 follow-up", ["Who"]) == "Dr follow-up"


def test_hostile_and_unreadable_files_are_reported(basic):
    skipped = {Path(source).name: reason for source, reason in basic.skipped}
    assert "not DICOM" in skipped["notes.txt"]
    assert "truncated" in skipped["truncated-header.dcm"] and "truncated" in skipped["truncated-pixels.dcm"]
    long_uid = pydicom.dcmread(next(o for s, o in basic.written if s.endswith("long-uid.dcm")))
    assert len(long_uid.SeriesInstanceUID) <= 64 and len(long_uid.StudyInstanceUID) <= 64


def test_cancel_stops_between_files_and_reports_it(inputs, tmp_path):
    report = run_job(anonymize_job([inputs], tmp_path / "o", DeidOptions(uid_map=tmp_path / "m.json"),
                                   cancel=_cancel_after(2)))
    assert report.cancelled and len(report.written) == 2
    assert json.loads((tmp_path / "m.json").read_text())["uids"]  # what was written stays linkable


class _cancel_after:
    """A token that reads as cancelled once asked ``n`` times (one ask per file)."""

    def __init__(self, n: int) -> None:
        self.n = n

    @property
    def cancelled(self) -> bool:
        self.n -= 1
        return self.n < 0
