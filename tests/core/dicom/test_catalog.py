"""Catalog: grouping, kinds, references, and splitting "series" that are not one volume."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from tests.conftest import data_path
from viewer.core.dicom.catalog import build_catalog, catalog_to_json, sop_kind
from viewer.core.dicom.model import FrameGeometry, InstanceHeader, UnreadableFile
from viewer.core.dicom.scan import scan

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
CT = "1.2.840.10008.5.1.4.1.1.2"


def _h(n: int, z: float, *, uid: str = "1.2.3", orientation=AXIAL, frames=None, **kw) -> InstanceHeader:
    """A minimal single-frame CT header at height z (or with the given frames)."""
    base = dict(
        path=f"/x/{uid}/{n:04d}_{z}.dcm", sop_class_uid=CT, sop_instance_uid=f"{uid}.{n}.{z}", series_uid=uid,
        study_uid="9.9", patient_id="P1", modality="CT", instance_number=n, rows=8, columns=8, has_pixels=True,
        frames=frames or [FrameGeometry((0.0, 0.0, z), orientation, (1.0, 1.0))],
    )
    base.update(kw)
    if frames:
        base["number_of_frames"] = len(frames)
    return InstanceHeader(**base)


def _positions_unique(series) -> bool:
    zs = [round(f.position[2], 3) for h in series.instances for f in h.frames]
    return len(zs) == len(set(zs))


# ------------------------------------------------------------------------------------------ unit level
def test_sop_kinds():
    assert sop_kind(CT) == "image"
    assert sop_kind("1.2.840.10008.5.1.4.1.1.66.4") == "seg"
    assert sop_kind("1.2.840.10008.5.1.4.1.1.481.3") == "rtstruct"
    assert sop_kind("1.2.840.10008.5.1.4.1.1.88.33") == "sr"
    assert sop_kind("1.2.840.10008.5.1.4.1.1.88.59") == "sr"  # KOS is an SR document
    assert sop_kind("1.2.840.10008.5.1.4.1.1.11.1") == "other"  # presentation state
    assert sop_kind("1.2.840.10008.5.1.4.1.1.66") == "other"  # raw data
    assert sop_kind("1.2.840.10008.5.1.4.1.1.481.5") == "other"  # RT plan
    assert sop_kind("1.2.840.10008.5.1.4.1.1.481.2") == "image"  # RT dose grid


def test_one_clean_series_is_not_split_and_series_sort_by_number():
    a = [_h(i, 2.0 * i, uid="1.1", series_number=5) for i in range(5)]
    b = [_h(i, 2.0 * i, uid="1.2", series_number=2) for i in range(3)]
    catalog = build_catalog(list(reversed(a + b)), [])
    assert [(s.key, s.n_instances, s.warnings) for s in catalog.all_series()] == [("1.2", 3, []), ("1.1", 5, [])]
    assert [h.instance_number for h in catalog.all_series()[1].instances] == [0, 1, 2, 3, 4]


def test_two_acquisitions_at_the_same_positions_split_by_acquisition():
    headers = [_h(i, float(i % 4), acquisition_number=1 + i // 4) for i in range(8)]
    parts = build_catalog(headers, []).all_series()
    assert [p.key for p in parts] == ["1.2.3#1", "1.2.3#2"]
    assert all(_positions_unique(p) for p in parts)
    assert {h.acquisition_number for h in parts[0].instances} == {1}
    assert parts[0].warnings[0].code == "split_series"
    assert "AcquisitionNumber" in parts[0].warnings[0].message


def test_acquisition_numbers_alone_do_not_split():
    # GE writes a new AcquisitionNumber every slice or two; distinct positions stay one volume.
    headers = [_h(i, float(i), acquisition_number=i // 2) for i in range(6)]
    assert [s.key for s in build_catalog(headers, []).all_series()] == ["1.2.3"]


def test_repeated_positions_without_a_discriminator_split_by_rank():
    headers = [_h(i, float(i % 3)) for i in range(9)]  # 3 positions x 3 repeats, nothing else differs
    parts = build_catalog(headers, []).all_series()
    assert [p.n_instances for p in parts] == [3, 3, 3]
    assert all(_positions_unique(p) for p in parts)
    assert [h.instance_number for h in parts[0].instances] == [0, 1, 2]


def test_orientation_and_size_splits():
    coronal = [
        _h(10 + i, 0.0, frames=[FrameGeometry((0.0, float(i), 0.0), CORONAL, (1.0, 1.0))]) for i in range(2)
    ]
    headers = [_h(i, float(i)) for i in range(4)] + coronal
    headers.append(_h(20, 50.0, rows=16, columns=16))
    parts = build_catalog(headers, []).all_series()
    assert sorted(p.n_instances for p in parts) == [1, 2, 4]
    message = parts[0].warnings[0].message
    assert "orientations" in message and "matrix sizes" in message


def test_multiframe_objects_each_a_volume_unless_they_tile():
    def mf(n, zs):
        return _h(n, 0.0, frames=[FrameGeometry((0.0, 0.0, z), AXIAL, (1.0, 1.0)) for z in zs])

    same = [mf(1, [0, 1, 2]), mf(2, [0, 1, 2])]  # two time points of one slab
    assert [p.n_instances for p in build_catalog(same, []).all_series()] == [1, 1]
    slabs = [mf(1, [0, 1, 2]), mf(2, [3, 4, 5])]  # one volume stored as two slabs
    assert [p.n_instances for p in build_catalog(slabs, []).all_series()] == [2]


def test_non_image_objects_keep_references_and_are_separated_from_images():
    seg = _h(
        1, 0.0, sop_class_uid="1.2.840.10008.5.1.4.1.1.66.4", modality="SEG",
        frames=[FrameGeometry(None, None, None)], referenced_series_uids=["7.7"],
    )
    images = [_h(i, float(i)) for i in range(3)]
    parts = build_catalog(images + [seg], []).all_series()
    assert [(p.kind, p.n_instances) for p in parts] == [("image", 3), ("seg", 1)]
    assert parts[1].references == ["7.7"]
    assert "different object types" in parts[1].warnings[0].message


def test_copies_of_one_instance_are_not_stacked():
    headers = [_h(i, float(i)) for i in range(3)]
    copy = InstanceHeader(**{**headers[0].__dict__, "path": "/elsewhere/copy.dcm"})
    series = build_catalog(headers + [copy], []).all_series()
    assert [(s.key, s.n_instances) for s in series] == [("1.2.3", 3)]
    assert [w.code for w in series[0].warnings] == ["duplicate_instances"]


def test_catalog_to_json_schema():
    headers = [_h(i, float(i % 2), series_number=3, series_description="Chest") for i in range(4)]
    doc = catalog_to_json(build_catalog(headers, [UnreadableFile("/x/README", "not DICOM")]))
    json.dumps(doc)
    assert set(doc) == {"patients", "unreadable"}
    patient = doc["patients"][0]
    assert set(patient) == {"patient_id", "patient_name", "studies"}
    study = patient["studies"][0]
    assert set(study) == {"study_uid", "study_date", "description", "series"}
    series = study["series"][0]
    assert set(series) == {
        "series_uid", "key", "modality", "description", "series_number", "n_instances", "sop_class_uid",
        "rows", "columns", "kind", "references", "warnings",
    }
    assert series["series_uid"] == "1.2.3" and series["key"] == "1.2.3#1" and series["series_number"] == 3
    assert series["warnings"][0]["code"] == "split_series" and series["warnings"][0]["message"]
    assert doc["unreadable"] == [{"path": "/x/README", "reason": "not DICOM"}]


# ------------------------------------------------------------------------------------------ real data
def test_lidc_is_one_ct_series_of_133():
    catalog = scan(data_path("lidc-idri-0001"))
    [series] = catalog.all_series()
    assert (series.modality, series.kind, series.n_instances, series.warnings) == ("CT", "image", 133, [])
    assert (series.rows, series.columns) == (512, 512)
    assert [Path(u.path).suffix for u in catalog.unreadable].count(".xml") == 1


def test_ts_dcm_qa_ts_nine_same_position_files_are_not_one_volume():
    parts = scan(data_path("ts-dcm-qa-ts")).all_series()
    assert len({p.uid for p in parts}) == 1  # one SeriesInstanceUID ...
    assert len(parts) == 9 and all(p.n_instances == 1 for p in parts)  # ... nine volumes
    assert len({p.key for p in parts}) == 9 and all(p.key.startswith(p.uid + "#") for p in parts)
    assert all(p.warnings[0].code == "split_series" for p in parts)
    assert all(_positions_unique(p) for p in parts)


def test_mr2_localisers_are_split_by_orientation():
    parts = scan(data_path("dicomdir-pydicom", "98892003", "MR2")).all_series()
    by_uid: dict[str, list] = {}
    for p in parts:
        by_uid.setdefault(p.uid, []).append(p)
    mixed = [group for group in by_uid.values() if len(group) > 1]
    assert len(mixed) == 2 and all(len(group) == 3 for group in mixed)
    for group in mixed:
        orientations = [{h.frames[0].orientation for h in p.instances} for p in group]
        assert all(len(o) == 1 for o in orientations)
        assert len({next(iter(o)) for o in orientations}) == 3
        assert all("orientations" in p.warnings[0].message for p in group)


def test_edge_cases_of_dicom2nifti():
    catalog = scan(data_path("edge-dicom2nifti", "failing"))
    by_folder: dict[str, set] = {}
    for s in catalog.all_series():
        folder = Path(s.instances[0].path).parts[-3]
        by_folder.setdefault(folder, set()).add((s.key, s.n_instances))
    assert len(by_folder["notavolume"]) == 4  # 4 slices at one position
    assert sorted(n for _, n in by_folder["sliceorientation"]) == [2, 2]
    # Tilt, gaps and uneven steps are the loader's warnings, not reasons to split.
    for name in ("gantrytilting", "sliceincrement", "slicecount"):
        assert all("#" not in key for key, _ in by_folder[name]), name


def test_enhanced_multiframe_series():
    catalog = scan(data_path("enh-multiframe"))
    series = catalog.all_series()
    xa10 = [s for s in series if any("XA10" in h.path for h in s.instances)]
    assert len(xa10) == 4 and all(s.n_instances == 1 and s.n_frames == 6 for s in xa10)  # 4 repeats of one slab
    pcasl = [s for s in series if any("3DpCASL" in h.path for h in s.instances)]
    assert sorted(s.kind for s in pcasl) == ["image", "other"]  # raw data shares the image's UID
    tfl = [s for s in series if any("anat-T1w" in h.path for h in s.instances)]
    assert len(tfl) == 1 and tfl[0].warnings == []


def _series_uid_of(*parts: str) -> str:
    return pydicom.dcmread(data_path(*parts), stop_before_pixels=True).SeriesInstanceUID


@pytest.mark.parametrize(
    "obj, kind, referenced_image",
    [
        (("highdicom", "seg_image_ct_binary.dcm"), "seg", ("highdicom", "referenced_pydicom_CT2", "17106")),
        (("highdicom", "seg_image_ct_binary_overlap.dcm"), "seg", ("highdicom", "referenced_pydicom_CT2", "17136")),
        (("dcmqi", "segmentations", "liver.dcm"), "seg", ("dcmqi", "segmentations", "ct-3slice", "01.dcm")),
        (("rt-utils", "mock_data", "rt.dcm"), "rtstruct", ("rt-utils", "mock_data", "ct_1.dcm")),
        (("dicompyler-core", "rtss.dcm"), "rtstruct", ("dicompyler-core", "ct.0.dcm")),
        (("highdicom", "sr_document.dcm"), "sr", ("highdicom", "ct_image.dcm")),
    ],
)
def test_seg_rtstruct_sr_kind_and_references(obj, kind, referenced_image):
    catalog = scan(data_path("seg-rtstruct"))
    path = str(data_path("seg-rtstruct", *obj))
    [series] = [s for s in catalog.all_series() if any(h.path == path for h in s.instances)]
    assert series.kind == kind
    target = _series_uid_of("seg-rtstruct", *referenced_image)
    assert series.references == [target]
    # ... and the referenced images are in the catalog as an image series.
    assert any(s.uid == target and s.kind == "image" for s in catalog.all_series())


def test_images_without_a_frame_of_reference_stay_with_the_first():
    headers = [_h(i, float(i), frame_of_reference_uid=("" if i == 2 else "1.9.1")) for i in range(4)]
    [series] = build_catalog(headers, []).all_series()
    assert series.n_instances == 4 and series.warnings == []


def test_a_series_over_two_frames_of_reference_is_split_not_interleaved(tmp_path):
    """Positions in two frames of reference are in two coordinate systems (another couch position, another
    registration). Every other slice of 20 LIDC slices, re-registered 1 mm up, stacked between the others as one
    volume of uneven spacing (1.5 / 3.5 mm); the series is split in two volumes of even spacing, and says why."""
    from viewer.core.dicom.load import load_series

    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in data_path("lidc-idri-0001").rglob("*.dcm")]
    files = [h.filename for h in sorted(headers, key=lambda h: float(h.ImagePositionPatient[2]))][:20]
    for n, path in enumerate(files):
        ds = pydicom.dcmread(path)
        if n % 2:
            ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.1"
            ds.ImagePositionPatient = [float(v) + d for v, d in zip(ds.ImagePositionPatient, (0, 0, 1.0))]
        ds.save_as(tmp_path / f"{n:02d}.dcm")
    parts = scan(tmp_path).all_series()
    assert [p.n_instances for p in parts] == [10, 10]
    assert all("several frames of reference" in p.warnings[0].message for p in parts)
    for part in parts:
        assert len({h.frame_of_reference_uid for h in part.instances}) == 1 and _positions_unique(part)
        volume = load_series(part)
        assert volume.shape[0] == 10 and not [w for w in volume.warnings if w.code == "uneven_spacing"]


def test_a_reused_sop_instance_uid_at_another_position_is_not_called_a_copy(tmp_path):
    """Three consecutive LIDC slices, the middle one written under the first one's SOPInstanceUID (a broken
    export): it is left out as a repeat, and the warning says it was another image, so a slice is missing."""
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in data_path("lidc-idri-0001").rglob("*.dcm")]
    first, middle, last = [h.filename for h in sorted(headers, key=lambda h: float(h.ImagePositionPatient[2]))][:3]
    for name, path in (("a", first), ("c", last), ("b", middle)):
        ds = pydicom.dcmread(path)
        if name == "b":
            ds.SOPInstanceUID = pydicom.dcmread(first, stop_before_pixels=True).SOPInstanceUID
        ds.save_as(tmp_path / f"{name}.dcm")
    shutil.copy(tmp_path / "c.dcm", tmp_path / "c-copy.dcm")  # a true copy: said as before
    [series] = scan(tmp_path).all_series()
    [warning] = [w for w in series.warnings if w.code == "duplicate_instances"]
    assert warning.message.startswith("2 file(s) repeat a SOPInstanceUID; the copies were skipped. 1 of them lie")
    assert "slices are missing there" in warning.message and series.n_instances == 2
