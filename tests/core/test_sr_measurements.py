"""The user's measurements -> TID 1500 SR -> back onto the images: exact to 0.01 mm in every view; other tools'
and hostile reports are read leniently, with clear reasons."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest

from tests.inference.helpers import data_path, real_volume
from viewer.core.export.seg import read_sources
from viewer.core.export.sr import read_measurements
from viewer.core.export.sr_measurements import (
    build_measurements_report,
    load_measurements,
    place_on_volume,
    read_report,
    write_measurements_report,
)
from viewer.core.measure import Measurement, evaluate
from viewer.core.reformat import reformat

TOLERANCE_MM = 0.01


@pytest.fixture(scope="module")
def lidc():
    series, volume = real_volume("lidc-idri-0001")
    by_uid = {i.sop_instance_uid: i.path for i in series.instances}
    sources = read_sources([by_uid[uid] for uid in volume.slice_sop_uids])
    return series, volume, sources


def _on(volume, plane: str, k: int, kind: str, *display):
    """A measurement of ``kind`` on slice ``k`` of ``plane`` through display points ``(row, col)``."""
    geometry = reformat(volume, plane)
    points = [tuple(float(v) for v in geometry.index_from_display(k, r, c)) for r, c in display]
    return evaluate(Measurement(kind, plane, k, points), volume, geometry)


def every_kind(volume) -> list[Measurement]:
    """Each kind in each view, at sub-pixel points (an ellipse taller than wide too)."""
    out = []
    for plane, k in (("axial", 60), ("coronal", 250), ("sagittal", 300)):
        out += [_on(volume, plane, k, "length", (100.37, 120.61), (140.12, 200.9)),
                _on(volume, plane, k, "ellipse", (80.25, 90.5), (110.75, 150.33)),
                _on(volume, plane, k, "ellipse", (40.1, 60.2), (95.6, 80.9)),
                _on(volume, plane, k, "rectangle", (70.4, 60.6), (90.2, 101.7)),
                _on(volume, plane, k, "probe", (64.3, 77.8))]
    return out


def _lps(volume, m: Measurement) -> np.ndarray:
    return volume.index_to_lps(np.asarray(m.points, float))


def test_volume_columns_and_rows_are_the_images_own(lidc):
    """SCOORD (column, row) of slice k is (x + 0.5, y + 0.5): the loader keeps each image's pixel grid."""
    _, volume, sources = lidc
    for k in (0, 66, 132):
        ds = sources[k]
        assert np.allclose(volume.index_to_lps([0, 0, k]), [float(v) for v in ds.ImagePositionPatient], atol=1e-4)
        row_dir = np.asarray(ds.ImageOrientationPatient[:3], float) * float(ds.PixelSpacing[1])
        assert np.allclose(volume.affine[:3, 0], row_dir, atol=1e-6)


def test_round_trip_every_kind_and_view_within_001_mm(lidc, tmp_path):
    _, volume, sources = lidc
    originals = every_kind(volume)
    path = write_measurements_report(tmp_path / "m.sr.dcm", originals, volume, sources)
    ds = pydicom.dcmread(path)
    assert ds.Modality == "SR" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    report = read_report(path)
    regions = {(g.tracking_id.split()[0], g.region, g.graphic_type) for g in report.groups}
    assert ("Length", "SCOORD", "POLYLINE") in regions and ("Length", "SCOORD3D", "POLYLINE") in regions
    assert {("Ellipse", "SCOORD", "ELLIPSE"), ("Rectangle", "SCOORD", "POLYLINE"),
            ("Rectangle", "SCOORD3D", "POLYGON"), ("Probe", "SCOORD3D", "POINT")} <= regions
    axial = [g for g in report.groups if g.tracking_id.endswith("(axial)")]
    assert all(g.references == [(volume.slice_sop_uids[60], 0)] for g in axial)

    placed = place_on_volume(report, volume)
    assert placed.problems == [] and len(placed.measurements) == len(originals)
    worst = 0.0
    for a in originals:
        (b,) = [m for m in placed.measurements if m.uid == a.uid]
        assert (b.kind, b.plane, b.slice_index) == (a.kind, a.plane, a.slice_index)
        worst = max(worst, float(np.abs(_lps(volume, a) - _lps(volume, b)).max()))
        assert b.result.keys() == a.result.keys()
        for key, value in a.result.items():
            if isinstance(value, (float, tuple)):  # the probe's LPS is a tuple of floats
                assert np.allclose(b.result[key], value, rtol=1e-6, atol=1e-6), (a.kind, key)
            else:
                assert b.result[key] == value
    assert worst < TOLERANCE_MM
    print(f"round trip max error {worst:.2e} mm over {len(originals)} measurements")


def test_sr_values_are_the_measured_ones(lidc, tmp_path):
    _, volume, sources = lidc
    originals = every_kind(volume)
    report = read_report(write_measurements_report(tmp_path / "m.dcm", originals, volume, sources))
    by_uid = {g.tracking_uid: g for g in report.groups}
    for m in originals:
        group = by_uid[m.uid]
        if m.kind == "length":
            assert group.value("Length") == pytest.approx(m.result["length_mm"], abs=1e-6)
            assert group.values[0].unit == "mm"
        elif m.kind == "probe":
            assert group.value("Attenuation Coefficient") == m.result["value"]
            assert group.values[0].unit == "[hnsf'U]"
        else:
            assert group.value("Attenuation Coefficient (Mean)") == pytest.approx(m.result["mean"])
            assert group.value("Attenuation Coefficient (Standard Deviation)") == pytest.approx(m.result["sd"])
            assert group.value("Area") == pytest.approx(m.result["area_mm2"])


def test_saving_again_keeps_the_tracking_uids(lidc, tmp_path):
    _, volume, sources = lidc
    ms = every_kind(volume)[:3]
    first = read_report(write_measurements_report(tmp_path / "a.dcm", ms, volume, sources))
    second = read_report(write_measurements_report(tmp_path / "b.dcm", ms, volume, sources))
    assert [g.tracking_uid for g in first.groups] == [g.tracking_uid for g in second.groups] == [m.uid for m in ms]


def test_findings_and_measurements_share_one_report(lidc, tmp_path):
    from tests.core.test_export_measurements import _lidc_detections
    from viewer.core.editing.history import EditHistory
    from viewer.core.editing.review import FindingsReview

    _, volume, sources = lidc
    _, _, detections, _ = _lidc_detections()
    review = FindingsReview.from_detections(detections, EditHistory())
    review.accept(0)
    path = write_measurements_report(tmp_path / "m.dcm", every_kind(volume)[:2], volume, sources, review)
    assert [f["diameter_mm"] for f in read_measurements(path)][-1] == pytest.approx(review.findings[0].diameter_mm,
                                                                                  abs=1e-3)
    placed = load_measurements(path, volume)
    assert len(placed.measurements) == 2 and len(placed.listed) == 1 and placed.problems == []


def test_nothing_to_report_is_refused(lidc):
    _, volume, sources = lidc
    with pytest.raises(ValueError, match="no measurements"):
        build_measurements_report([], volume, sources)


# ---- other tools' and hostile reports ---------------------------------------------------------------------------
def test_dcmqi_example_lists_its_groups_and_says_the_images_are_absent(lidc):
    _, volume, _ = lidc
    report = read_report(data_path("seg-rtstruct", "dcmqi", "sr-example", "sr.dcm"))
    assert len(report.groups) >= 1 and all(g.region == "segment" for g in report.groups)
    first = report.groups[0]
    assert first.finding and first.value("SUVbw (Mean)") == pytest.approx(6.01529)
    assert any(v.name.startswith("Volume") and v.unit == "ml" for v in first.values)
    placed = place_on_volume(report, volume)
    assert placed.measurements == [] and len(placed.listed) == len(report.groups)
    assert any("referenced images are absent" in p for p in placed.problems)
    assert any("volumetric ROI" in p for p in placed.problems)


def _hostile(lidc, tmp_path, change) -> list[str]:
    _, volume, sources = lidc
    ms = [m for m in every_kind(volume) if m.plane in ("axial", "coronal") and m.kind == "length"]
    ds = build_measurements_report(ms, volume, sources)
    groups = ds.ContentSequence[-1].ContentSequence
    change(groups, volume)
    ds.save_as(tmp_path / "bad.dcm", enforce_file_format=True)
    placed = load_measurements(tmp_path / "bad.dcm", volume)
    assert len(placed.measurements) + len(placed.listed) <= 2
    return placed.problems


def _region(group, value_type):
    return next(i for i in group.ContentSequence if i.ValueType == value_type)


def test_hostile_missing_image_reference(lidc, tmp_path):
    def change(groups, _volume):
        _region(groups[0], "SCOORD").ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID = "1.2.3.4"
    problems = _hostile(lidc, tmp_path, change)
    assert any("image 1.2.3.4, which is not in this series" in p for p in problems)


def test_hostile_wrong_frame_of_reference(lidc, tmp_path):
    def change(groups, _volume):
        _region(groups[1], "SCOORD3D").ReferencedFrameOfReferenceUID = "1.2.3.999"
    problems = _hostile(lidc, tmp_path, change)
    assert any("frame of reference 1.2.3.999, not this series'" in p for p in problems)


def test_hostile_unknown_graphic_type_and_damaged_points(lidc, tmp_path):
    def change(groups, _volume):
        _region(groups[0], "SCOORD").GraphicType = "CIRCLE"
        _region(groups[1], "SCOORD3D").GraphicData = [1.0, 2.0, 3.0, 4.0]
    problems = _hostile(lidc, tmp_path, change)
    assert any("graphic type CIRCLE is not one the viewer draws" in p for p in problems)
    assert any("is not drawable here" in p for p in problems)


def test_not_an_sr_says_so(lidc, tmp_path):
    _, volume, _ = lidc
    (tmp_path / "junk.dcm").write_bytes(b"not dicom at all")
    assert "not a readable DICOM file" in load_measurements(tmp_path / "junk.dcm", volume).problems[0]
    image = next(iter(data_path("lidc-idri-0001").rglob("*.dcm")))
    assert "not a DICOM structured report" in load_measurements(image, volume).problems[0]


def test_damaged_reports_are_refused_or_read_up_to_the_damage(lidc, tmp_path):
    """bench/fuzz.py --reports: highdicom's AttributeError on a coded concept without a code value, and
    pydicom's NotImplementedError on an unknown VR met while walking the report, reached the user."""
    _, volume, _ = lidc
    ds = pydicom.dcmread(data_path("seg-rtstruct", "highdicom", "sr_document.dcm"))
    codes = [item for item in ds.ContentSequence if "ConceptCodeSequence" in item]
    del codes[0].ConceptCodeSequence[0].CodeValue
    ds.save_as(tmp_path / "no-code.dcm")
    with pytest.raises(ValueError, match="^the SR is damaged or incomplete \\(AttributeError: "):
        read_measurements(tmp_path / "no-code.dcm")  # the batch runner's reader of model findings
    image = next(iter(data_path("lidc-idri-0001").rglob("*.dcm")))
    with pytest.raises(ValueError, match="not an Enhanced, Comprehensive or Comprehensive 3D SR"):
        read_measurements(image)

    data = data_path("seg-rtstruct", "dcmqi", "sr-example", "sr.dcm").read_bytes()
    tag = b"\x08\x00\x55\x11UI"  # every Referenced SOP Instance UID given a VR that does not exist
    assert data.count(tag) >= 2
    (tmp_path / "bad-vr.dcm").write_bytes(data.replace(tag, b"\x08\x00\x55\x11Ui"))
    placed = load_measurements(tmp_path / "bad-vr.dcm", volume)
    assert placed.measurements == []
    assert any(p.startswith("the report is damaged (NotImplementedError: Unknown Value Representation 'Ui'")
               for p in placed.problems), placed.problems
