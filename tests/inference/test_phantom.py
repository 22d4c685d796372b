"""The synthetic chest-CT phantom: reproducible, anatomically labelled, HU-consistent, nodules as specified, fast."""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest

from inference.training.phantom import (
    DEFAULT_SHAPE,
    DEFAULT_SPACING,
    GENERATOR_REVISION,
    LABELS,
    PHANTOM_VERSION,
    Phantom,
    generate_phantom,
    save_ground_truth,
)
from inference.training.phantom.nodules import nodule_plan

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
    c = generate_phantom(12, **SMALL)  # drawn in between: no state carries over from one phantom to the next
    b = generate_phantom(11, **SMALL)
    assert np.array_equal(a.hu, b.hu) and np.array_equal(a.labels, b.labels)
    assert a.nodules == b.nodules and a.origin_lps == b.origin_lps
    assert not np.array_equal(a.labels, c.labels)
    assert a.hu.shape == (56, 128, 128)


def test_a_seed_draws_what_it_drew_at_this_revision():
    """Seed 11 on the coarse grid (six nodules of all four types, contrast, mimics, the protocol stream) as generator
    v1.2 draws it.

    Cached training cases are keyed by version and revision only (``inference.training.data.cache_path``) and the
    sample study by its seed, so a change to what a seed draws - a random draw added, moved or reordered anywhere in
    anatomy, trees, lesions or protocol - must come with a new ``GENERATOR_REVISION`` and new values here. The plan
    and the anatomy's scalars are float64 draws and pinned as ``info`` rounds them; what passes through float32
    arithmetic, which another CPU may round differently in the last place, to within a voxel or so.
    """
    phantom = generate_phantom(11, **SMALL)
    assert (PHANTOM_VERSION, GENERATOR_REVISION) == (1, 2), "a new revision: pin what it draws below"
    info = dict(phantom.info)
    mimics, segments = info.pop("mimics"), (info.pop("vessel_segments"), info.pop("airway_segments"))
    assert info == {"contrast": True, "noise_sigma_hu": 42.4, "noise_f0_per_mm": 0.3, "psf_mm": 0.78,
                    "inspiration": 0.177, "lung_hu": -844.1, "fov_circle": False, "table": True, "fat_mm": 18.1}
    np.testing.assert_allclose(segments, (14252, 636), rtol=0.002)
    assert [m["kind"] for m in mimics] == ["scar", "atelectasis", "scar"]
    np.testing.assert_allclose([m["center_mm"] for m in mimics],
                               [[109.1, 169.1, 251.2], [152.6, 134.6, 139.0], [86.9, 224.3, 97.6]], atol=0.11)
    assert phantom.origin_lps == pytest.approx((-178.65, -175.55, -364.8))
    assert [(n.type, n.juxtapleural, n.touches_vessel, n.perifissural) for n in phantom.nodules] == [
        ("solid", True, False, False), ("part-solid", True, False, False), ("part-solid", False, True, False),
        ("calcified", False, False, False), ("solid", False, False, True), ("solid", False, False, False)]
    np.testing.assert_allclose([(n.diameter_mm, n.solid_core_mm) for n in phantom.nodules],
                               [(4.3025, 0), (6.3164, 2.6083), (23.5522, 9.7884), (4.1559, 0), (5.6060, 0),
                                (7.8755, 0)], atol=1e-4)
    np.testing.assert_allclose([n.center_lps for n in phantom.nodules],
                               [(34.65, -37.85, -260.4), (-53.55, -42.35, -167.6), (-37.584, 22.162, -186.895),
                                (-97.65, -29.75, -179.2), (88.65, -29.75, -243.0), (-32.31, 15.07, -243.0)], atol=1.0)
    np.testing.assert_allclose(np.bincount(phantom.labels.ravel(), minlength=5), [845807, 31848, 38421, 1267, 161],
                               rtol=0.002, atol=3)
    assert phantom.hu.mean() == pytest.approx(-586.266, abs=0.05)
    assert phantom.hu.std() == pytest.approx(485.49, abs=0.05)
    # a row through both lungs and the mediastinum: another draw of the noise or the lung texture keeps the
    # statistics above but not the values of single voxels
    np.testing.assert_allclose(phantom.hu[28, 64, 16:112:12], [48, -696, 23, -496, 272, 303, 261, -696], atol=1)


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
    seen = {"solid": 0, "part-solid": 0, "ground-glass": 0, "calcified": 0, "juxtapleural": 0, "vessel": 0,
            "perifissural": 0, "3-6": 0, "30-40": 0}
    counts = []
    for seed in range(1, 13):  # 12 phantoms, 38 nodules: every kind by seed 9
        phantom = generate_phantom(seed, **SMALL)
        counts.append(len(phantom.nodules))
        assert 0 <= len(phantom.nodules) <= 6
        affine_inv = np.linalg.inv(phantom.affine)
        for nodule in phantom.nodules:
            assert 3 <= nodule.diameter_mm <= 40
            seen[nodule.type] += 1
            seen["juxtapleural"] += nodule.juxtapleural
            seen["vessel"] += nodule.touches_vessel
            seen["perifissural"] += nodule.perifissural
            seen["3-6"] += nodule.diameter_mm < 6
            seen["30-40"] += nodule.diameter_mm >= 30
            assert (nodule.solid_core_mm > 0) == (nodule.type == "part-solid")
            assert nodule.solid_core_mm < nodule.diameter_mm
            x, y, z = np.rint(affine_inv[:3, :3] @ nodule.center_lps + affine_inv[:3, 3]).astype(int)
            assert phantom.labels[z, y, x] == 4
        assert (phantom.labels == 4).any() == bool(phantom.nodules)
        assert {m["kind"] for m in phantom.info["mimics"]} <= {"scar", "atelectasis"}
    assert len(set(counts)) > 2
    assert all(seen.values()), seen


def _nodule_voxels(phantom, nodule):
    """HU of the label-4 component under the nodule's centre."""
    import SimpleITK as sitk

    components = sitk.GetArrayFromImage(sitk.ConnectedComponent(
        sitk.GetImageFromArray((phantom.labels == 4).astype(np.uint8)), True))
    x, y, z = np.rint(np.linalg.inv(phantom.affine)[:3] @ np.r_[nodule.center_lps, 1]).astype(int)
    mask = components == components[z, y, x]
    return phantom.hu[mask], mask


def test_each_nodule_type_has_its_attenuation():
    """Ground glass stays well below soft tissue, a calcified nodule is dense, part-solid has both, solid is
    soft tissue (seeds picked by type from the generator; fine 1 mm grid so partial volume does not blur them)."""
    wanted = {"solid", "part-solid", "ground-glass", "calcified"}
    found = {}
    grid = dict(shape=(100, 240, 240), spacing=(3.0, 1.45, 1.45))
    for seed in range(40, 140):
        plan = nodule_plan(np.random.default_rng(np.random.SeedSequence([1, seed]).spawn(8)[2]), seed, None)
        missing = {t for _, d, t, _ in plan if d >= 8} & (wanted - set(found))
        if not missing:
            continue
        phantom = generate_phantom(seed, **grid)
        for nodule in phantom.nodules:
            if nodule.type in missing and nodule.diameter_mm >= 8 and not nodule.juxtapleural:
                found[nodule.type] = _nodule_voxels(phantom, nodule)[0]
        if set(found) == wanted:
            break
    assert set(found) == wanted
    # vessels run on through ground glass (they stay dense), so only most of it is faint
    assert -850 < np.median(found["ground-glass"]) < -300 and np.percentile(found["ground-glass"], 75) < -250
    assert np.percentile(found["calcified"], 90) > 200
    assert np.median(found["solid"]) > -250
    part = found["part-solid"]
    assert (part < -300).mean() > 0.2 and (part > -150).mean() > 0.02  # the core is 0.3-0.55 of the diameter


def test_perifissural_nodules_are_lentiform():
    """Flattened across their fissure: the thinnest extent through the centroid is well under the widest."""
    for seed in range(1, 60):
        phantom = generate_phantom(seed, **SMALL)
        nodules = [n for n in phantom.nodules if n.perifissural and n.diameter_mm >= 8]
        if nodules:
            break
    else:
        pytest.skip("no perifissural nodule of 8 mm or more in the seeds tried")
    phantom = generate_phantom(seed, shape=(150, 320, 320), spacing=(1.0, 1.0, 1.0))
    nodule = next(n for n in phantom.nodules if n.perifissural and n.diameter_mm >= 8)
    _, mask = _nodule_voxels(phantom, nodule)
    points = np.argwhere(mask).astype(float)
    extents = np.sqrt(np.linalg.eigvalsh(np.cov(points.T)))
    assert extents.min() < 0.75 * extents.max()


def test_mimics_are_drawn_but_not_labelled_nodule():
    """Scars and atelectasis raise lung voxels to soft tissue without becoming label 4 (hard negatives)."""
    phantom = generate_phantom(5, **SMALL)
    clean = generate_phantom(5, **SMALL, noise=False)
    assert phantom.info["mimics"]
    affine_inv = np.linalg.inv(phantom.affine)
    dense = 0
    for mimic in phantom.info["mimics"]:
        centre = np.array(mimic["center_mm"]) + np.array(phantom.origin_lps)
        x, y, z = np.rint(affine_inv[:3] @ np.r_[centre, 1]).astype(int)
        around = (slice(max(z - 2, 0), z + 3), slice(max(y - 4, 0), y + 5), slice(max(x - 4, 0), x + 5))
        assert not (phantom.labels[around] == 4).any()
        dense += clean.hu[around].max() > -500
    assert dense >= len(phantom.info["mimics"]) // 2


def test_the_demo_study_keeps_its_v1_nodules():
    """Seed 0 (the built-in sample) keeps its fixed plan: widening the generator changed no demo voxel's meaning."""
    phantom = generate_phantom(0, **SMALL)
    assert [(n.type, n.juxtapleural, n.touches_vessel) for n in phantom.nodules] == [
        ("solid", False, False), ("solid", True, False), ("solid", False, True), ("part-solid", False, False)]
    assert not phantom.info["mimics"] and "fat_mm" not in phantom.info


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
