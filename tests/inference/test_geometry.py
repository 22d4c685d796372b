"""A known LPS region comes back exactly where it is: our grid -> MONAI transforms -> network -> back.

Stand-in networks (tests/inference/standins.py) mark a sphere around an LPS point computed from the affine
the MONAI transforms give them; the pipeline must return a mask at exactly those voxels of our volume - on the
axial LIDC CT (L/R and A/P flipped against RAS) and on the sagittal MR acquired decubitus (axes permuted).
"""
from __future__ import annotations

import numpy as np
import pytest

from inference.bundle import load_bundle
from inference.task import run_bundle, run_job
from tests.inference.helpers import crop, lps_grid, real_volume, write_bundle

CASES = {
    "lidc": ("lidc-idri-0001", (slice(40, 100), slice(150, 350), slice(150, 350))),
    "mr": ("mr-decubitus-hfdr", (slice(None), slice(None), slice(None))),
}


def _volume(case):
    name, region = CASES[case]
    _, volume = real_volume(name)
    return crop(volume.array, volume.affine, *region)


def _sphere_bundle(tmp_path, center, radius, spacing=None, name="sphere"):
    pre = [{"_target_": "LoadImaged", "keys": "image"}, {"_target_": "EnsureChannelFirstd", "keys": "image"},
           {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"}]
    if spacing:
        pre.append({"_target_": "Spacingd", "keys": "image", "pixdim": list(spacing), "mode": "bilinear"})
    config = {
        "network_def": {"_target_": "tests.inference.standins.SphereMarker", "center_lps": [float(c) for c in center],
                        "radius": radius},
        "preprocessing": {"_target_": "Compose", "transforms": pre},
        "inferer": {"_target_": "SimpleInferer"},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
             "nearest_interp": False},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True}]},
    }
    return write_bundle(tmp_path / name, config, {"name": name, "hounsfield": {"labels": {"1": "sphere"}}})


def _target(array, affine):
    """An LPS point off the voxel centres, and a radius whose sphere passes no voxel centre closer than 1 um."""
    shape = array.shape
    index = np.array([shape[2] * 0.6, shape[1] * 0.35, shape[0] * 0.55])
    center = index @ affine[:3, :3].T + affine[:3, 3] + np.array([0.31, -0.27, 0.43])
    dist = np.linalg.norm(lps_grid(shape, affine) - center, axis=-1)
    radius = 12.0
    while np.abs(dist - radius).min() < 1e-3:
        radius += 0.01
    return center, radius, dist


@pytest.mark.parametrize("case", ["lidc", "mr"])
def test_stand_in_sphere_lands_exactly_on_the_same_voxels(tmp_path, case):
    array, affine = _volume(case)
    center, radius, dist = _target(array, affine)
    bundle = load_bundle(_sphere_bundle(tmp_path, center, radius), device="cpu", trusted=True, random_weights=True)
    result = run_job(run_bundle(bundle, array, affine)).result
    expected = dist <= radius
    assert expected.sum() > 100
    assert result.labels.shape == array.shape
    assert np.array_equal(result.labels == 1, expected)
    assert result.table[1].name == "sphere"


@pytest.mark.parametrize("case", ["lidc", "mr"])
def test_sphere_survives_resampling_to_model_spacing_and_back(tmp_path, case):
    array, affine = _volume(case)
    center, radius, dist = _target(array, affine)
    spacing = (1.5, 1.5, 2.0)
    bundle = load_bundle(_sphere_bundle(tmp_path, center, radius, spacing), device="cpu", trusted=True,
                         random_weights=True)
    mask = run_job(run_bundle(bundle, array, affine)).result.labels == 1
    expected = dist <= radius
    # Linear resampling moves the surface by at most half a model voxel diagonal; the centre stays put.
    tolerance = 0.5 * float(np.linalg.norm(spacing))
    assert mask[dist <= radius - tolerance].all()
    assert not mask[dist >= radius + tolerance].any()
    points = lps_grid(array.shape, affine)
    shift = points[mask].mean(axis=0) - points[expected].mean(axis=0)
    assert np.abs(shift).max() < 0.3, shift
    assert abs(int(mask.sum()) - int(expected.sum())) < 0.05 * expected.sum()


def test_sliding_windows_and_their_inverse_are_exact(tmp_path):
    # A voxel-wise stand-in gives the same answer in every window: the stitched, re-oriented result must equal
    # the painted region voxel for voxel, and the job reports one progress step per window.
    from inference.task import count_windows

    array, affine = _volume("mr")
    center, radius, dist = _target(array, affine)
    painted = np.where(dist <= radius, 1000, -1000).astype(np.int16)
    config = {
        "network_def": {"_target_": "tests.inference.standins.ThresholdMarker", "level": 0.5},
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
            {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
            {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -1000, "a_max": 1000, "b_min": 0,
             "b_max": 1, "clip": True}]},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [96, 96, 16], "sw_batch_size": 4,
                    "overlap": 0.25, "mode": "gaussian"},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image"},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True}]},
    }
    bundle = load_bundle(write_bundle(tmp_path / "sw", config), device="cpu", trusted=True, random_weights=True)
    steps = []
    outcome = run_job(run_bundle(bundle, painted, affine), steps.append)
    assert np.array_equal(outcome.result.labels == 1, dist <= radius)
    from inference.geometry import to_monai

    reoriented = bundle.preprocessing({"image": to_monai(painted, affine)})["image"].shape[1:]
    windows = count_windows(tuple(reoriented), (96, 96, 16), 0.25)
    assert windows > 10 and outcome.patches == windows
    patch_steps = [p for p in steps if p.message.startswith("Running the model")]
    assert len(patch_steps) == windows
    assert [p.done for p in patch_steps] == sorted(p.done for p in patch_steps)
    assert steps[-1].done == steps[-1].total


def test_detector_boxes_map_to_lps_and_to_our_voxels(tmp_path):
    # A box the detector would report around P on the preprocessed (reoriented, resampled) image must come back
    # centred on P in LPS, and its voxel box must hold P's voxel on our grid.
    from types import SimpleNamespace

    from monai.transforms import Compose, EnsureChannelFirstd, Orientationd, Spacingd

    from inference.geometry import lps_affine, to_monai
    from inference.registry import ModelInfo
    from inference.task import _detections

    array, affine = _volume("mr")
    center, _, _ = _target(array, affine)
    pre = Compose([EnsureChannelFirstd("image"), Orientationd("image", axcodes="RAS"),
                   Spacingd("image", pixdim=(0.7, 0.7, 1.25))])
    image = pre({"image": to_monai(array, affine)})["image"]
    pre_affine = image.affine.numpy().astype(np.float64)
    to_index = np.linalg.inv(lps_affine(pre_affine))
    p_index = to_index[:3, :3] @ center + to_index[:3, 3]
    half = np.array([5.0, 7.0, 3.0])
    boxes = np.array([np.concatenate([p_index - half, p_index + half])])
    info = ModelInfo(id="det", name="det", task="detection", path=str(tmp_path), labels={1: "nodule"})
    raw = (boxes, np.array([0]), np.array([0.9]), pre_affine, tuple(image.shape[1:]))
    detections = _detections(SimpleNamespace(info=info), raw, array.shape, affine)
    assert len(detections) == 1 and detections.labels[0] == 1 and detections.table[1].name == "nodule"
    assert np.allclose(detections.centers_lps[0], center, atol=1e-6)
    assert np.allclose(np.sort(detections.sizes_mm[0]), np.sort(2 * half * np.array([0.7, 0.7, 1.25])), atol=1e-6)
    z0, y0, x0, z1, y1, x1 = detections.boxes_voxel[0]
    voxel = np.linalg.inv(affine)[:3, :3] @ center + np.linalg.inv(affine)[:3, 3]  # (x, y, z)
    vx, vy, vz = np.rint(voxel).astype(int)
    assert z0 <= vz < z1 and y0 <= vy < y1 and x0 <= vx < x1
    # ... and nothing outside the box in LPS: every voxel centre in the voxel box lies inside the LPS box.
    points = lps_grid(array.shape, affine)[z0:z1, y0:y1, x0:x1].reshape(-1, 3)
    lo, hi = detections.boxes_lps[0][:3], detections.boxes_lps[0][3:]
    assert np.all(points >= lo - 1e-6) and np.all(points <= hi + 1e-6)


def test_slab_wise_resample_argmax_equals_the_whole_volume_at_once():
    import torch
    from monai.data import MetaTensor

    from inference.geometry import resample_argmax, resample_to_grid

    torch.manual_seed(0)
    source = MetaTensor(torch.rand(4, 20, 18, 11), affine=torch.tensor(np.diag([-1.5, -1.5, 2.5, 1.0])))
    target = np.diag([-0.7, -0.7, 1.25, 1.0])
    target[:3, 3] = [0.3, -0.4, 0.6]
    whole = torch.argmax(resample_to_grid(source, target, (41, 37, 21), mode="bilinear"), dim=0)
    slabs = resample_argmax(source, target, (41, 37, 21), slab=4)
    assert slabs.shape == (41, 37, 21) and torch.equal(slabs, whole)


def test_resample_argmax_skips_only_voxels_that_interpolate_from_channel_0_alone():
    """The box around the foreground (best channel not 0) is all that is resampled: the same labels as the whole."""
    import torch
    from monai.data import MetaTensor

    from inference.geometry import resample_argmax, resample_to_grid

    torch.manual_seed(1)
    scores = torch.rand(3, 30, 26, 14) * 0.4
    scores[0] += 0.5  # background wins everywhere...
    scores[1, 8:13, 5:9, 3:6] += 1.0  # ...but in two small blobs, one at the edge of the grid
    scores[2, 25:30, 20:26, 10:14] += 1.0
    source = MetaTensor(scores, affine=torch.tensor(np.diag([-1.5, 1.5, 2.5, 1.0])))
    target = np.diag([-0.7, 0.7, 1.25, 1.0])
    target[:3, 3] = [0.3, -0.4, 0.6]
    shape = (64, 56, 29)
    whole = torch.argmax(resample_to_grid(source, target, shape, mode="bilinear"), dim=0)
    fast = resample_argmax(source, target, shape, slab=5)
    assert torch.equal(fast, whole) and set(torch.unique(fast).tolist()) == {0, 1, 2}
    empty = MetaTensor(torch.stack([torch.ones(30, 26, 14), torch.zeros(30, 26, 14)]), affine=source.affine)
    assert not resample_argmax(empty, target, shape).any()


@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 130, 65), (3, 64, 64), (5, 1, 200)])
def test_the_blocked_xyz_copy_is_the_plain_transpose(shape):
    """to_monai's blocked transpose gives numpy's transpose exactly, for shapes off and on the block size."""
    from inference.geometry import xyz_copy

    array = np.random.default_rng(0).integers(-1024, 3071, shape).astype(np.int16)
    for dtype in (np.float32, np.int16):
        got = xyz_copy(array, dtype)
        assert got.flags.c_contiguous and got.dtype == dtype
        np.testing.assert_array_equal(got, np.ascontiguousarray(array.transpose(2, 1, 0), dtype=dtype))
