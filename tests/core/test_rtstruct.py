"""RT Structure Sets read with pydicom land on the voxels their ContourData names, checked against the slice
geometry computed independently from ImagePositionPatient / ImageOrientationPatient / PixelSpacing."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest

from tests.conftest import data_path
from viewer.core.dicom.load import load_series
from viewer.core.dicom.scan import scan
from viewer.core.rtstruct import RTStructOnVolume, polylines_on_slice, read_rtstruct, read_rtstruct_set


def _image_series(catalog):
    images = [s for s in catalog.all_series() if s.kind == "image"]
    assert len(images) == 1
    return images[0]


def expected_voxel(ct_path, lps):
    """``(column, row)`` of an LPS point on a CT slice, from its own header (not through the Volume affine)."""
    ds = pydicom.dcmread(str(ct_path), stop_before_pixels=True)
    origin = np.array([float(v) for v in ds.ImagePositionPatient])
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    row_dir, col_dir = iop[:3], iop[3:]
    row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
    d = np.asarray(lps, float) - origin
    normal = np.cross(row_dir, col_dir)
    return d @ row_dir / col_spacing, d @ col_dir / row_spacing, d @ normal


@pytest.fixture
def rt_utils_dir():
    return data_path("seg-rtstruct", "rt-utils", "mock_data")


@pytest.fixture
def dicompyler_dir():
    return data_path("seg-rtstruct", "dicompyler-core")


def test_read_rtstruct_names_colours_and_contours(rt_utils_dir, dicompyler_dir):
    rois = read_rtstruct(rt_utils_dir / "rt.dcm")
    assert [(r.name, r.number, r.colour) for r in rois] == [("ROI-1", 1, (162, 136, 95))]
    assert len(rois[0].contours) == 2 and all(c.shape[1] == 3 for c in rois[0].contours)
    assert rois[0].geometric_types == ["CLOSED_PLANAR", "CLOSED_PLANAR"]
    assert np.allclose(rois[0].contours[0][0], (-51.0, -51.0, 60.0))

    structure_set = read_rtstruct_set(dicompyler_dir / "rtss.dcm")
    names = [r.name for r in structure_set.rois]
    assert names[:2] == ["BODY", "Areola"] and len(names) == 10
    assert structure_set.rois[4].name == "Heart" and structure_set.rois[4].colour == (255, 128, 0)
    assert structure_set.rois[1].contours == []  # Areola has no contour
    assert structure_set.referenced_series_uids == ["2.16.840.1.113662.2.12.0.3057.1241703565.43"]


def test_rt_utils_contours_on_the_two_ct_slices(rt_utils_dir):
    catalog = scan([rt_utils_dir])
    ct = _image_series(catalog)
    rtstructs = [s for s in catalog.all_series() if s.kind == "rtstruct"]
    assert rtstructs and all(ct.uid in s.references for s in rtstructs)
    volume = load_series(ct)
    assert volume.shape[0] == 2
    rois = read_rtstruct(rt_utils_dir / "rt.dcm")
    on_first = polylines_on_slice(rois, volume, 0)
    assert len(on_first) == 2 and polylines_on_slice(rois, volume, 1) == []
    # the slice at z = 60 mm is ct_1.dcm: every contour point lands where its header says
    ct_1 = next(i.path for i in ct.instances if i.path.endswith("ct_1.dcm"))
    for (_roi, line), lps in zip(on_first, rois[0].contours):
        col, row, dist = expected_voxel(ct_1, lps)
        assert np.allclose(dist, 0.0)
        assert np.allclose(line, np.stack([col, row], axis=-1), atol=1e-6)
    # the square's first corner (-51, -51) mm: (-51 + 125) / 0.488281 voxels from the corner
    assert np.allclose(on_first[0][1][0], [(125 - 51) / 0.488281] * 2, atol=1e-4)

    # a structure set with contours on both slices (z = 65 mm is ct_2) and one beyond the volume (z = 70)
    other = read_rtstruct(rt_utils_dir / "invalid_reference_rt.dcm")
    mapped = RTStructOnVolume(other, volume)
    assert mapped.slices(2) == [0, 1, 2]
    ct_2 = next(i.path for i in ct.instances if i.path.endswith("ct_2.dcm"))
    for roi, line, kind in mapped.on_slice(1):
        assert kind == "CLOSED_PLANAR"
        lps = next(c for c in roi.contours if np.isclose(c[0, 2], 65.0) and len(c) == len(line))
        col, row, _ = expected_voxel(ct_2, lps)
        assert np.allclose(line, np.stack([col, row], axis=-1), atol=1e-6)
    # no contour lies in a coronal or sagittal plane of this volume
    assert mapped.slices(0) == [] and mapped.slices(1) == []


def test_dicompyler_contours_land_on_the_one_ct_slice(dicompyler_dir):
    catalog = scan([dicompyler_dir])
    ct = _image_series(catalog)
    rt = next(s for s in catalog.all_series() if s.kind == "rtstruct")
    assert rt.references == [ct.uid]
    volume = load_series(ct)
    assert volume.shape[0] == 1  # one CT slice of the 99 the structure set was drawn on
    rois = read_rtstruct(dicompyler_dir / "rtss.dcm")
    mapped = RTStructOnVolume(rois, volume)
    assert 0 in mapped.slices(2) and len(mapped.slices(2)) > 50  # the others lie beyond the loaded slice
    on_slice = mapped.on_slice(0)
    assert on_slice and {roi.name for roi, _, _ in on_slice} >= {"BODY"}
    ct_path = dicompyler_dir / "ct.0.dcm"
    z_slice = float(pydicom.dcmread(str(ct_path), stop_before_pixels=True).ImagePositionPatient[2])
    checked = 0
    for roi in rois:
        for lps in roi.contours:
            col, row, dist = expected_voxel(ct_path, lps)
            on = abs(lps[0, 2] - z_slice) < 0.5 * volume.spacing[0]
            lines = [line for r, line, _ in on_slice if r is roi and len(line) == len(lps)]
            if on:
                assert np.allclose(dist, 0.0, atol=0.01)
                assert any(np.allclose(line, np.stack([col, row], axis=-1), atol=1e-3) for line in lines)
                checked += 1
                # one point by hand through lps_to_index too
                x, y, z = volume.lps_to_index(lps[0])
                assert (x, y) == pytest.approx((col[0], row[0]), abs=1e-3) and abs(z) < 0.5
    assert checked == len(on_slice)


def test_contour_data_parsed_from_the_raw_text_equals_pydicom_and_skips_what_is_malformed(dicompyler_dir, tmp_path):
    """ContourData is parsed by numpy from the element's text (0.71 s -> about 0.1 s for rtss.dcm's 88,158 points):
    the same numbers as pydicom's DS conversion, contour by contour; a malformed, too short or non-finite
    contour is left out, not the whole file."""
    ds = pydicom.dcmread(dicompyler_dir / "rtss.dcm")
    expected = [np.array([float(v) for v in c.ContourData]).reshape(-1, 3)
                for item in ds.ROIContourSequence for c in item.get("ContourSequence") or []]
    read = [c for roi in read_rtstruct(dicompyler_dir / "rtss.dcm") for c in roi.contours]
    assert len(read) == len(expected) > 400 and all(np.array_equal(a, b) for a, b in zip(read, expected))

    # four contours' text replaced in the file, same lengths: malformed, shorter than a point, not finite, and
    # finite but 1e308 mm away, which maps to infinite voxel indices (it stopped the placing: OverflowError)
    contours = pydicom.dcmread(dicompyler_dir / "rtss.dcm").ROIContourSequence[0].ContourSequence
    data = (dicompyler_dir / "rtss.dcm").read_bytes()
    for contour, damaged in zip(contours, (b"1.5\\abc\\3", b"1.5\\2", b"nan\\2\\3", b"1e308\\2\\3")):
        text = contour.get_item(0x30060050).value
        assert data.count(text) == 1
        data = data.replace(text, damaged.ljust(len(text)))
    (tmp_path / "damaged.dcm").write_bytes(data)
    rois = read_rtstruct(tmp_path / "damaged.dcm")
    assert len(rois[0].contours) == len(contours) - 4
    volume = load_series(_image_series(scan([dicompyler_dir])))
    placed = RTStructOnVolume(rois, volume)
    assert placed.slices(0) == placed.slices(1) == [] and 0 in placed.slices(2)  # placed on every plane


def test_structure_sets_are_read_and_placed_as_a_job_naming_the_unreadable_file(rt_utils_dir, tmp_path):
    from inference.jobs import run_job
    from viewer.core.rtstruct import read_structures_job

    volume = load_series(_image_series(scan([rt_utils_dir])))
    (tmp_path / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 64)
    steps = []
    read = run_job(read_structures_job([rt_utils_dir / "rt.dcm", tmp_path / "broken.dcm",
                                        rt_utils_dir / "invalid_reference_rt.dcm"], volume), steps.append)
    assert [(p.done, p.total) for p in steps] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert len(read.labels) == 2 and read.failed == ["broken.dcm is not an RT Structure Set"]
    one_by_one = read_rtstruct(rt_utils_dir / "rt.dcm") + read_rtstruct(rt_utils_dir / "invalid_reference_rt.dcm")
    assert [(r.name, len(r.contours)) for r in read.rois] == [(r.name, len(r.contours)) for r in one_by_one]
    assert read.mapped is not None and read.mapped.slices(2) == [0, 1, 2]


def test_a_damaged_structure_set_is_refused_with_the_reason(rt_utils_dir, tmp_path):
    """bench/fuzz.py --reports: pydicom's OSError on a cut sequence and its RecursionError on deep nesting reached
    the RT structures job as "(OSError)" and "(RecursionError)"; they are now the reader's refusal, in words."""
    from bench.fuzz import _insert_nesting
    from inference.jobs import run_job
    from viewer.core.rtstruct import read_structures_job

    data = bytearray((rt_utils_dir / "invalid_reference_rt.dcm").read_bytes())
    uid = data.index(b"\x08\x00\x55\x11")  # the first Referenced SOP Instance UID claims 256 KiB: past the end
    data[uid + 6] = 4
    (tmp_path / "long.dcm").write_bytes(data)
    rt = (rt_utils_dir / "rt.dcm").read_bytes()
    (tmp_path / "deep.dcm").write_bytes(_insert_nesting(rt, 2000))
    group = rt.index(b"\x02\x00\x00\x00UL\x04\x00")  # the file meta's group length given 3 bytes
    (tmp_path / "meta3.dcm").write_bytes(rt[:group + 6] + b"\x03\x00" + rt[group + 8:group + 11] + rt[group + 12:])
    version = rt.index(b"\x02\x00\x01\x00OB")  # the file cut inside the meta's second element header
    (tmp_path / "metacut.dcm").write_bytes(rt[:version + 10])
    for name, why in (("long.dcm", "OSError: No tag to read"), ("deep.dcm", "its sequences nest too deeply to read"),
                      ("meta3.dcm", "BytesLengthException: "), ("metacut.dcm", "struct.error: unpack requires")):
        with pytest.raises(ValueError, match=f"^{name} is damaged or incomplete \\({why}"):
            read_rtstruct_set(tmp_path / name)
    volume = load_series(_image_series(scan([rt_utils_dir])))
    read = run_job(read_structures_job([tmp_path / "long.dcm", rt_utils_dir / "rt.dcm", tmp_path / "deep.dcm"],
                                       volume), lambda _: None)
    assert len(read.labels) == 1 and [f.split(" (")[0] for f in read.failed] == [
        "long.dcm is damaged or incomplete", "deep.dcm is damaged or incomplete"]
