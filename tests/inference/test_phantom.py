"""The synthetic chest-CT phantom: reproducible, anatomically labelled, HU-consistent, nodules as specified, fast."""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest

from inference.training.phantom import (DEFAULT_SHAPE, DEFAULT_SPACING, LABELS, Phantom, generate_phantom,
                                        save_ground_truth)

# A coarse grid: the same anatomy in mm at a fraction of the voxels, for the tests that draw several phantoms.
SMALL = dict(shape=(56, 128, 128), spacing=(5.8, 2.7, 2.7))


@pytest.fixture(scope="module")
def full() -> tuple[Phantom, float]:
    """One phantom on the default grid (seed 3: not the demo seed, which tests/core/test_sample.py covers)."""
    start = time.perf_counter()
    phantom = generate_phantom(3)
    return phantom, time.perf_counter() - start


def test_default_grid_is_a_routine_chest_ct(full):
    phantom, seconds = full
    print(f"\ngenerate_phantom(3) on {DEFAULT_SHAPE} at {DEFAULT_SPACING} mm: {seconds:.2f} s")
    assert phantom.hu.shape == phantom.labels.shape == DEFAULT_SHAPE
    assert phantom.hu.dtype == np.int16 and phantom.labels.dtype == np.uint8
    sz, sy, sx = phantom.spacing
    assert 0.7 <= sx == sy <= 1.0 and 1.25 <= sz <= 2.5 and 100 <= phantom.hu.shape[0] <= 300
    assert set(np.unique(phantom.labels)) <= set(LABELS)
    # loose: the brief is "a few seconds on 2 cores"; this machine is shared, so only catch gross regressions
    assert seconds < 20


def test_same_seed_same_phantom_other_seed_other_phantom():
    a = generate_phantom(11, **SMALL)
    b = generate_phantom(11, **SMALL)
    c = generate_phantom(12, **SMALL)
    assert np.array_equal(a.hu, b.hu) and np.array_equal(a.labels, b.labels)
    assert a.nodules == b.nodules and a.origin_lps == b.origin_lps
    assert not np.array_equal(a.labels, c.labels)
    assert a.hu.shape == (56, 128, 128)


def test_lungs_are_air_filled_and_on_the_right_side(full):
    phantom, _ = full
    hu, labels = phantom.hu, phantom.labels
    left, right = labels == 1, labels == 2
    for lung in (left, right):
        assert lung.sum() * np.prod(phantom.spacing) > 1.0e6  # each lung more than a litre
        values = hu[lung]
        assert -900 < np.median(values) < -780
        assert (values < -600).mean() > 0.8  # the rest: vessels and their partial-volume rims
    # patient's left is +x (LPS): label 1 lies at larger x than label 2, and each on its own side of the midline
    xs = np.arange(hu.shape[2])
    x_left = (left.sum((0, 1)) * xs).sum() / left.sum()
    x_right = (right.sum((0, 1)) * xs).sum() / right.sum()
    assert x_left > hu.shape[2] / 2 > x_right
    assert not (left.any((0, 1)) & right.any((0, 1)) & (xs > x_left)).any()


def test_airways_are_air_and_reach_from_the_trachea_into_both_lungs(full):
    phantom, _ = full
    airway = phantom.labels == 3
    assert np.median(phantom.hu[airway]) < -600
    assert airway[-1].any()  # the trachea enters at the top of the field
    x = np.nonzero(airway)[2]
    mid = phantom.hu.shape[2] / 2
    assert (x > mid + 40).sum() > 50 and (x < mid - 40).sum() > 50  # bronchi out into both lungs


def test_bone_and_soft_tissue_have_their_hu(full):
    phantom, _ = full
    hu, labels = phantom.hu, phantom.labels
    body = hu > -300
    bone = hu > 300
    fraction = bone.sum() / body.sum()
    assert 0.005 < fraction < 0.08
    assert np.percentile(hu[bone], 90) > 500  # cortical shells
    assert (bone & ((labels == 1) | (labels == 2))).sum() < 0.002 * ((labels == 1) | (labels == 2)).sum()
    soft = hu[(hu > -200) & (hu < 200)]
    assert 0 < np.median(soft) < 80


def test_nodules_are_in_range_and_have_nodule_hu():
    seen = {"solid": 0, "part-solid": 0, "juxtapleural": 0, "vessel": 0}
    counts = []
    for seed in range(1, 7):
        phantom = generate_phantom(seed, **SMALL)
        counts.append(len(phantom.nodules))
        assert 0 <= len(phantom.nodules) <= 6
        affine_inv = np.linalg.inv(phantom.affine)
        for nodule in phantom.nodules:
            assert 4 <= nodule.diameter_mm <= 30
            assert nodule.type in ("solid", "part-solid")
            seen[nodule.type] += 1
            seen["juxtapleural"] += nodule.juxtapleural
            seen["vessel"] += nodule.touches_vessel
            x, y, z = np.rint(affine_inv[:3, :3] @ nodule.center_lps + affine_inv[:3, 3]).astype(int)
            assert phantom.labels[z, y, x] == 4
        assert (phantom.labels == 4).any() == bool(phantom.nodules)
    assert len(set(counts)) > 2
    assert all(seen.values()), seen


@pytest.mark.parametrize("writer", ["nibabel", "SimpleITK"])
def test_ground_truth_files(tmp_path, monkeypatch, writer):
    nib = pytest.importorskip("nibabel")
    phantom = generate_phantom(5, **SMALL)
    if writer == "SimpleITK":  # the fallback where nibabel is not installed
        pytest.importorskip("SimpleITK")
        monkeypatch.setitem(sys.modules, "nibabel", None)
    save_ground_truth(phantom, tmp_path)
    monkeypatch.undo()
    image = nib.load(tmp_path / "labels.nii.gz")
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ image.affine
    np.testing.assert_allclose(lps, phantom.affine, atol=1e-4)
    assert np.array_equal(np.asarray(image.dataobj).transpose(2, 1, 0), phantom.labels)
    table = json.loads((tmp_path / "labels.json").read_text())
    assert {entry["value"]: entry["name"] for entry in table["labels"]} == LABELS
    nodules = json.loads((tmp_path / "nodules.json").read_text())["nodules"]
    assert [n["center_lps"] for n in nodules] == [[round(v, 3) for v in n.center_lps] for n in phantom.nodules]
