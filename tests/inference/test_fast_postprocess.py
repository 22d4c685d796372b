"""The fast pieces of the segmentation postprocess and the body crop give the answers of the slow ones (issue 11)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.crop import body_box, lung_box, model_grid_box
from inference.geometry import from_monai, resample_argmax, resample_labels
from inference.models.lungs import fill_axial_holes


def _smooth_scores(shape, channels=5, seed=0):
    """Per-channel scores with blob-like regions (so most source cells agree and some boundaries exist)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij"), axis=-1)
    scores = np.zeros((channels, *shape), np.float32)
    for c in range(channels):
        for _ in range(3):
            centre, width = rng.random(3), 0.1 + 0.3 * rng.random()
            scores[c] += np.exp(-np.sum((grid - centre) ** 2, axis=-1) / width ** 2).astype(np.float32)
    scores[0] += 0.6
    return torch.from_numpy(scores)


@pytest.mark.parametrize("flip", [False, True])
def test_resample_labels_is_the_slow_resample_and_argmax(flip):
    from monai.data import MetaTensor

    source = np.diag([1.25, 1.25, 2.5, 1.0])
    if flip:  # our LPS grid seen from MONAI's RAS: x and y run the other way
        source = np.diag([-1.25, -1.25, 2.5, 1.0])
        source[:2, 3] = [40 * 1.25, 36 * 1.25]
    tensor = MetaTensor(_smooth_scores((40, 36, 12)), affine=torch.as_tensor(source))
    target = np.diag([0.7, 0.7, 2.5, 1.0]) * (np.diag([-1, -1, 1, 1]) if flip else 1)
    target[3, 3] = 1.0
    target[:3, 3] = source[:3, 3] + np.array([-3.0, 2.0, -1.3]) * (np.array([-1, -1, 1]) if flip else 1)
    # reaches past the source on every side: zeros there, as grid_sample (not exactly a whole voxel past its last
    # centre, where grid_sample's rounding leaves ~1e-6 of the edge and picks a label from that)
    shape = (80, 70, 14)
    slow = from_monai(resample_argmax(tensor, target, shape).to(torch.uint8))
    fast = resample_labels(tensor, target, shape)
    assert fast.dtype == np.uint8 and fast.shape == shape[::-1]
    assert len(np.unique(slow)) >= 4
    assert np.count_nonzero(fast != slow) <= 2  # a float tie may go either way
    # identity grid: the argmax itself
    same = resample_labels(tensor, source, (40, 36, 12))
    assert np.array_equal(same, from_monai(resample_argmax(tensor, source, (40, 36, 12)).to(torch.uint8)))


def test_fill_axial_holes_is_a_fill_per_slice():
    import SimpleITK as sitk

    rng = np.random.default_rng(3)
    mask = np.zeros((60, 50, 6), bool)
    mask[5:55, 5:45, :] = True
    for _ in range(40):  # holes, some touching the edge of the ring (then not holes)
        x, y, z = rng.integers(0, 60), rng.integers(0, 50), rng.integers(0, 6)
        mask[max(0, x - 3):x + 3, max(0, y - 3):y + 3, z] = False
    mask[0:3, 20:30, 2] = True  # foreground touching the image edge
    expected = mask.copy()
    for z in range(mask.shape[2]):
        expected[:, :, z] = sitk.GetArrayFromImage(
            sitk.BinaryFillhole(sitk.GetImageFromArray(mask[:, :, z].astype(np.uint8)))).astype(bool)
    assert not np.array_equal(expected, mask)
    assert np.array_equal(fill_axial_holes(mask), expected)


def test_body_box_holds_the_patient_and_leaves_out_air_and_a_separate_table():
    volume = np.full((20, 200, 240), -1000, np.int16)
    volume[:, 50:150, 60:190] = 40  # the patient
    volume[:, 170:180, 10:230] = 200  # a table below, apart from the patient
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    box = body_box(volume, affine, margin_mm=8.0)
    z0, y0, x0, z1, y1, x1 = box
    assert (z0, z1) == (0, 20)
    assert y0 <= 50 and y1 >= 150 and x0 <= 60 and x1 >= 190  # the patient inside
    assert y1 < 170  # the table outside
    assert y0 >= 50 - 8 / 0.8 - 4 and x1 <= 190 + 8 / 0.8 + 4  # not much more than the margin
    assert body_box(np.full((4, 16, 16), -1000, np.int16), affine) is None  # nothing there
    full = np.full((4, 64, 64), 40, np.int16)
    assert body_box(full, affine) is None  # the whole image


def test_model_grid_box_starts_on_the_stride_and_holds_the_box():
    image_affine = np.diag([1.25, 1.25, 2.5, 1.0])  # RAS
    ours = np.diag([-0.7, -0.7, 2.5, 1.0])  # LPS of our grid ... as RAS: +0.7
    ours[:2, 3] = 0.0
    from inference.geometry import ras_affine

    box = (0, 100, 150, 40, 300, 400)  # z, y, x voxels of ours
    crop = model_grid_box(box, ours, image_affine @ np.eye(4), (300, 300, 40), multiple=16, min_saving=0.0)
    start, end = np.array(crop[0]), np.array(crop[1])
    assert np.all(start % 16 == 0) and np.all((end % 16 == 0) | (end == [300, 300, 40]))
    index = np.linalg.inv(image_affine) @ ras_affine(ours) @ np.array([[150, 100, 0, 1], [399, 299, 39, 1]]).T
    assert np.all(index[:3].min(axis=1) >= start) and np.all(index[:3].max(axis=1) < end)
    assert model_grid_box(box, ours, image_affine, (300, 300, 40), min_saving=0.9) is None  # not worth it


def test_lung_box_is_the_mask_box_with_its_margin():
    lung = np.zeros((30, 40, 50), bool)
    lung[10:20, 5:25, 20:30] = True
    assert lung_box(lung, np.diag([1.0, 1.0, 2.0, 1.0]), margin_mm=4.0) == (8, 1, 16, 22, 29, 34)
    assert lung_box(np.zeros((3, 3, 3), bool), np.eye(4)) is None
