"""The sample study on disk: a real DICOM series whose ground truth (NIfTI labels, nodules.json) lands on it.

The study is scanned and loaded with the app's own reader; the labels are read with nibabel and placed through
their own (RAS) affine, so a flipped axis, a swapped left/right or an off-by-one origin anywhere fails here.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from viewer.core import sample
from viewer.core.dicom.load import load_series
from viewer.core.dicom.scan import scan
from viewer.core.dicom.synthetic import write_series

nib = pytest.importorskip("nibabel")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The demo study (seed 0) written once, scanned and loaded by the app's reader."""
    out = tmp_path_factory.mktemp("sample")
    dicom_dir = sample.write_sample_study(out, seed=0)
    catalog = scan([dicom_dir])
    assert not catalog.unreadable
    (series,) = catalog.all_series()
    volume = load_series(series)
    image = nib.load(out / "ground_truth" / "labels.nii.gz")
    labels = np.asarray(image.dataobj)
    nodules = json.loads((out / "ground_truth" / "nodules.json").read_text())["nodules"]
    return out, dicom_dir, volume, image, labels, nodules


def labels_at(image, labels, lps) -> np.ndarray:
    """Label values at LPS points, placed through the NIfTI's own RAS affine."""
    ras = np.asarray(lps, float) * [-1, -1, 1]
    ijk = np.rint(ras @ np.linalg.inv(image.affine)[:3, :3].T + np.linalg.inv(image.affine)[:3, 3]).astype(int)
    return labels[ijk[..., 0], ijk[..., 1], ijk[..., 2]]


def test_layout_and_series(study):
    out, dicom_dir, volume, _, labels, _ = study
    assert dicom_dir == out / "dicom"
    assert {p.name for p in (out / "ground_truth").iterdir()} == {"labels.nii.gz", "labels.json", "nodules.json"}
    nz, ny, nx = volume.shape
    assert 100 <= nz <= 300 and labels.shape == (nx, ny, nz)
    sz, sy, sx = volume.spacing
    assert 0.7 <= sx <= 1.0 and 0.7 <= sy <= 1.0 and 1.25 <= sz <= 2.5
    assert not volume.warnings
    first = pydicom.dcmread(sorted(dicom_dir.iterdir())[0], stop_before_pixels=True)
    assert first.Modality == "CT" and first.SOPClassUID == pydicom.uid.CTImageStorage
    table = json.loads((out / "ground_truth" / "labels.json").read_text())
    assert {e["value"]: e["name"] for e in table["labels"]} == {
        0: "background", 1: "lung_left", 2: "lung_right", 3: "airway", 4: "nodule"}


def test_label_grid_is_the_dicom_grid(study):
    _, _, volume, image, labels, _ = study
    lps_from_nifti = np.diag([-1.0, -1.0, 1.0, 1.0]) @ image.affine
    np.testing.assert_allclose(lps_from_nifti, volume.affine, atol=1e-3)
    # and the content agrees voxel by voxel: lung labels sit on lung HU, airway labels on air
    zyx = labels.transpose(2, 1, 0)
    hu = volume.array
    for value in (1, 2):
        assert (hu[zyx == value] < -600).mean() > 0.8
    assert np.median(hu[zyx == 3]) < -600
    assert (hu[zyx == 0] > -500).mean() > 0.25  # body wall, mediastinum, bone: not lung


def test_left_lung_is_on_the_patients_left(study):
    _, _, volume, image, labels, _ = study
    ijk = {v: np.argwhere(labels[::4, ::4, ::4] == v) * 4 for v in (1, 2)}
    ras = {v: ijk[v] @ image.affine[:3, :3].T + image.affine[:3, 3] for v in ijk}
    lps_x = {v: -ras[v][:, 0] for v in ras}  # LPS x = -RAS x; patient's left is +x in LPS
    assert lps_x[1].mean() > lps_x[2].mean() + 100
    # the same through the DICOM geometry: the left lung's voxels have larger LPS x in the loaded volume
    left_index = np.argwhere(labels.transpose(2, 1, 0)[::4, ::4, ::4] == 1)[:, ::-1] * 4
    assert volume.index_to_lps(left_index)[:, 0].mean() == pytest.approx(lps_x[1].mean(), abs=1.0)


def test_nodules_land_on_nodule_voxels_and_nodule_hu(study):
    _, _, volume, image, labels, nodules = study
    assert len(nodules) == 4  # the demo plan
    kinds = {(n["type"], n["juxtapleural"], n["touches_vessel"]) for n in nodules}
    assert ("part-solid", False, False) in kinds and ("solid", True, False) in kinds
    assert ("solid", False, True) in kinds
    for nodule in nodules:
        assert 8 <= nodule["diameter_mm"] <= 30
        center = np.array(nodule["center_lps"])
        assert labels_at(image, labels, center) == 4
        x, y, z = np.rint(volume.lps_to_index(center)).astype(int)
        core = volume.array[z, y - 1:y + 2, x - 1:x + 2].astype(float)
        assert core.mean() > -100, nodule  # a solid core (part-solid nodules have one too)
        # a point two diameters away along x is no longer in this nodule
        assert labels_at(image, labels, center + [2 * nodule["diameter_mm"], 0, 0]) != 4
    lung_x = {v: volume.index_to_lps(np.argwhere(labels[::4, ::4, ::4] == v) * 4)[:, 0].mean() for v in (1, 2)}
    midline = (lung_x[1] + lung_x[2]) / 2
    assert {n["center_lps"][0] > midline for n in nodules} == {True, False}  # nodules in both lungs


def test_uids_are_reproducible_per_seed(tmp_path):
    hu = np.zeros((2, 8, 8), np.int16)
    a = write_series(tmp_path / "a", hu, uid_seed="seed-1", study_date="20240101")
    b = write_series(tmp_path / "b", hu, uid_seed="seed-1", study_date="20240101")
    c = write_series(tmp_path / "c", hu, uid_seed="seed-2", study_date="20240101")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    uids = [pydicom.dcmread(p).SOPInstanceUID for p in a + c]
    assert len(set(uids)) == 4
    assert pydicom.dcmread(a[0]).StudyInstanceUID != pydicom.dcmread(c[0]).StudyInstanceUID


def test_demo_study_is_cached_per_phantom_version(tmp_path, monkeypatch):
    calls = []

    def fake_write(out_dir, seed=0):
        calls.append(seed)
        folder = Path(out_dir) / "dicom"
        write_series(folder, np.zeros((2, 8, 8), np.int16))
        return folder

    monkeypatch.setenv("HOUNSFIELD_HOME", str(tmp_path))
    monkeypatch.setattr(sample, "write_sample_study", fake_write)
    first = sample.demo_study_path()
    second = sample.demo_study_path()
    assert first == second and calls == [0]
    assert f"v{sample.PHANTOM_VERSION}" in first.parent.name
    assert len(list(first.iterdir())) == 2
