"""The nodule detector's second stage: patch geometry (against SimpleITK), calibration maths, the operating point."""
from __future__ import annotations

import numpy as np
import pytest

from inference.models.nodule_classifier import PATCH, patch_spacing, sample_patch


def _sitk_patch(array, affine, centre, spacing, size):
    """The same patch by SimpleITK: linear resampling onto an axis-aligned LPS grid around ``centre``."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array.astype(np.float32))
    steps = np.linalg.norm(affine[:3, :3], axis=0)
    image.SetSpacing([float(v) for v in steps])
    image.SetOrigin([float(v) for v in affine[:3, 3]])
    image.SetDirection([float(v) for v in (affine[:3, :3] / steps).ravel()])
    reference = sitk.Image([size] * 3, sitk.sitkFloat32)
    reference.SetSpacing([spacing] * 3)
    reference.SetOrigin([float(c - (size - 1) / 2 * spacing) for c in centre])
    out = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, -1024.0)
    return sitk.GetArrayFromImage(out)


@pytest.mark.parametrize("flip", [False, True])
def test_patch_lands_where_simpleitk_puts_it(flip):
    """Anisotropic voxels, an offset origin and (flip) rows running anterior: the patch equals SimpleITK's linear
    resampling of the same LPS points wherever both interpolate (SimpleITK extrapolates the outermost half voxel,
    we blend it with air), and is air beyond the volume."""
    rng = np.random.default_rng(0)
    array = rng.normal(0, 300, (30, 50, 60)).astype(np.float32)
    affine = np.diag([0.7, 0.8, 2.5, 1.0])
    affine[:3, 3] = (-20.0, 15.0, 100.0)
    if flip:
        affine[1, 1] = -0.8
    centre = affine[:3, :3] @ np.array([30.3, 20.6, 14.2]) + affine[:3, 3]
    for spacing, size in ((1.0, 12), (2.0, 24)):
        ours = sample_patch(array, affine, centre, spacing, size=size)
        theirs = _sitk_patch(array, affine, centre, spacing, size)
        offsets = (np.arange(size) - (size - 1) / 2) * spacing
        zz, yy, xx = np.meshgrid(offsets, offsets, offsets, indexing="ij")
        lps = np.stack([xx, yy, zz], axis=-1) + centre
        index = (lps - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T
        inside = np.all((index >= 0) & (index <= np.array(array.shape[::-1]) - 1), axis=-1)
        outside = np.any((index < -1) | (index > np.array(array.shape[::-1])), axis=-1)
        assert inside.mean() > 0.3 and (outside.any() or size == 12)
        np.testing.assert_allclose(ours[inside], theirs[inside], atol=0.05)
        np.testing.assert_allclose(ours[outside], -1024.0, atol=1e-3)


def test_a_bright_voxel_sits_at_the_patch_centre():
    array = np.full((20, 40, 40), -1000.0, np.float32)
    array[10, 22, 17] = 1000.0
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    centre = affine[:3, :3] @ np.array([17, 22, 10]) + affine[:3, 3]
    patch = sample_patch(array, affine, centre, 0.8, size=PATCH + 1)  # odd: a sample falls on the centre
    assert np.unravel_index(np.argmax(patch), patch.shape) == (PATCH // 2,) * 3


def _rotation(axis, angle):
    """A 3x3 rotation by ``angle`` (radians) about the unit vector ``axis``."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


@pytest.mark.parametrize("geometry", ["as-acquired", "flipped", "sagittal", "coronal", "tilted-1e-9", "oblique",
                                      "tilted-1e-4"])
def test_the_separable_patch_equals_the_generic_one_on_lidc(geometry):
    """On a crop of the real LIDC CT seen through axis-aligned affines (as acquired, rows and slices flipped, the axes
    permuted as a sagittal or a coronal acquisition, a rotation of 1e-9 rad) the fast separable sampler gives the
    generic sampler's patch to 1e-3 HU, also for patches that run over the volume's edge into air; oblique affines
    (20 degrees, and 1e-4 rad: an index error of ~1e-3 voxel if ignored) take the generic path."""
    from inference.models.nodule_classifier import _aligned_axes, sample_patch_generic
    from tests.inference.helpers import crop, real_volume

    _, volume = real_volume("lidc-idri-0001")
    array, affine = crop(volume.array, volume.affine, slice(40, 80), slice(150, 310), slice(90, 250))
    linear = affine[:3, :3].copy()
    if geometry == "flipped":
        linear = linear @ np.diag([1.0, -1.0, -1.0])
    elif geometry == "sagittal":  # columns run posterior, rows inferior, slices left
        linear = linear[:, [1, 2, 0]] @ np.diag([1.0, -1.0, 1.0])
    elif geometry == "coronal":  # columns run left, rows inferior, slices posterior
        linear = linear[:, [0, 2, 1]] @ np.diag([1.0, -1.0, 1.0])
    elif geometry.startswith("tilted"):
        linear = _rotation([1, 2, 3], float(geometry.split("-", 1)[1])) @ linear
    elif geometry == "oblique":
        linear = _rotation([1, 2, 3], np.radians(20)) @ linear
    affine = affine.copy()
    affine[:3, :3] = linear
    aligned = _aligned_axes(np.linalg.inv(linear), (PATCH - 1) / 2 * 2.0) is not None
    assert aligned == (geometry not in ("oblique", "tilted-1e-4"))

    rng = np.random.default_rng(7)
    shape_xyz = np.array(array.shape[::-1], float)
    indices = [rng.uniform(0, shape_xyz - 1) for _ in range(4)]
    indices += [np.array([-3.2, 70.4, 20.1]), shape_xyz + [1.7, -40.3, -18.9], np.array([80.0, 80.0, 0.0])]
    edge = 0
    for n, index in enumerate(indices):
        centre = linear @ index + affine[:3, 3]
        spacing = (1.0, 1.37, 2.0)[n % 3]
        fast = sample_patch(array, affine, centre, spacing)
        generic = sample_patch_generic(array, affine, centre, spacing)
        assert fast.dtype == np.float32 and fast.shape == (PATCH,) * 3
        np.testing.assert_allclose(fast, generic, rtol=0, atol=1e-3)
        assert np.ptp(generic) > 50  # real structure, not a patch of air
        corners = np.array(np.meshgrid(*[[-1, 1]] * 3)).reshape(3, -1).T * (PATCH - 1) / 2 * spacing + centre
        corner_index = np.linalg.solve(linear, (corners - affine[:3, 3]).T).T
        edge += bool(np.any((corner_index < -1) | (corner_index > shape_xyz)))
    assert edge >= 2  # some patches reach beyond the volume by more than a voxel: air there


def test_patch_spacing_grows_with_the_candidate():
    assert patch_spacing(4.0) == 1.0 and patch_spacing(24.0) == 1.0
    assert patch_spacing(36.0) == pytest.approx(1.5) and patch_spacing(80.0) == 2.0


def test_platt_scaling_recovers_a_known_calibration():
    from inference.training.train_nodule_classifier import fit_platt

    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, 20000)
    labels = (rng.random(20000) < 1 / (1 + np.exp(-(0.5 * logits - 1.0)))).astype(int)
    a, b = fit_platt(logits, labels)
    assert a == pytest.approx(0.5, abs=0.05) and b == pytest.approx(-1.0, abs=0.08)


def test_operating_point_allows_one_false_positive_per_scan():
    from inference.training.train_nodule_classifier import operating_point

    scores = [np.array([0.9, 0.8, 0.3]), np.array([0.7, 0.6, 0.2])]
    labels = [np.array([1, 0, 0]), np.array([0, 1, 0])]
    # negatives 0.8, 0.7, 0.3, 0.2: two scans allow two, so the threshold sits just above the third (0.3)
    threshold = operating_point(scores, labels)
    assert 0.3 < threshold < 0.31
    kept_fp = sum(int(((s >= threshold) & (y == 0)).sum()) for s, y in zip(scores, labels))
    assert kept_fp == 2


def _detector_copy(tmp_path):
    import shutil

    from inference.resources import builtin_models_dir

    folder = tmp_path / "detector"
    shutil.copytree(builtin_models_dir() / "chest_ct_nodule_detection", folder)
    return folder


def test_the_classifier_weights_load_strictly_or_not_at_all(tmp_path):
    """No classifier.pt: the first stage alone; a classifier.pt that does not fit is refused with a clear error;
    one that fits is loaded (plain weights, weights_only=True) and carries its calibration."""
    import torch

    from inference.bundle import BundleError, load_bundle
    from inference.models.nodule_classifier import NoduleClassifier

    folder = _detector_copy(tmp_path)
    (folder / "models" / "classifier.pt").unlink(missing_ok=True)
    assert load_bundle(folder, device="cpu").detector.classifier is None

    torch.save({"head.0.weight": torch.zeros(3, 3)}, folder / "models" / "classifier.pt")
    with pytest.raises(BundleError, match="classifier.pt"):
        load_bundle(folder, device="cpu")

    good = NoduleClassifier()
    good.platt.copy_(torch.tensor([0.7, -0.2]))
    torch.save(good.state_dict(), folder / "models" / "classifier.pt")
    loaded = load_bundle(folder, device="cpu").detector.classifier
    assert isinstance(loaded, NoduleClassifier) and loaded.platt.tolist() == pytest.approx([0.7, -0.2])


def test_rescore_orders_by_the_classifier_and_keeps_boxes_with_their_scores():
    """A classifier whose logit is the brightness of the patch centre ranks a dense blob above an empty lung
    point, and every box keeps its own measurement entry."""
    import torch

    from inference.models.nodule_classifier import NoduleClassifier, rescore
    from inference.types import Detections

    class Brightness(NoduleClassifier):
        def forward(self, patches, scalars):
            return (patches[:, 0, 12:20, 12:20, 12:20].mean(dim=(1, 2, 3)) - 0.3) * 40

    array = np.full((40, 64, 64), -900, np.int16)
    array[18:23, 28:37, 28:37] = 40  # a 5 x 9 x 9 voxel blob
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    boxes_voxel = np.array([[5, 5, 5, 11, 11, 11], [27.5, 27.5, 17.5, 36.5, 36.5, 22.5]], float)
    boxes_lps = np.concatenate([boxes_voxel[:, :3] * [0.8, 0.8, 2.0], boxes_voxel[:, 3:] * [0.8, 0.8, 2.0]], axis=1)
    found = Detections(boxes_lps, boxes_voxel, np.array([0.9, 0.2]), np.array([1, 1]), affine, array.shape,
                       measurements=[{"n": "empty"}, {"n": "blob"}])
    out = rescore(Brightness().eval(), found, array, affine, floor=0.0)
    assert [m["n"] for m in out.measurements] == ["blob", "empty"]
    assert out.scores[0] > 0.5 > out.scores[1]
    np.testing.assert_array_equal(out.boxes_voxel[0], found.boxes_voxel[1])
    with torch.no_grad():
        assert len(rescore(Brightness().eval(), found, array, affine, floor=0.5)) == 1


def test_calibration_writes_weights_record_and_the_cards_operating_point(tmp_path):
    """calibrate(): Platt parameters fitted on held-out candidates land in classifier.pt (buffers), the record in
    classifier.json, the operating point in the model card, where the registry reads it."""
    import json

    import torch

    from inference.bundle import load_bundle
    from inference.models.nodule_classifier import NoduleClassifier
    from inference.registry import read_bundle
    from inference.training.train_nodule_classifier import STORED, calibrate

    folder = _detector_copy(tmp_path)
    rng = np.random.default_rng(2)
    held_out = []
    for _ in range(3):
        labels = np.array([1, 0, 0, 0, 0, 0])
        patches = np.full((6, STORED, STORED, STORED), -850, np.int16)
        patches[labels == 1, 14:26, 14:26, 14:26] = 30  # a 12-voxel cube where there is a nodule
        patches += rng.normal(0, 20, patches.shape).astype(np.int16)
        held_out.append({"patches": patches, "scalars": np.zeros((6, 2), np.float32), "labels": labels})
    torch.manual_seed(0)
    record = calibrate(NoduleClassifier(), folder, held_out, {"note": "test"})
    assert record["note"] == "test" and record["calibration_candidates"] == 18
    assert json.loads((folder / "models" / "classifier.json").read_text())["platt"] == record["platt"]
    assert read_bundle(folder).operating_point == record["operating_point"]
    loaded = load_bundle(folder, device="cpu").detector.classifier
    assert loaded.platt.tolist() == pytest.approx(record["platt"], rel=1e-4, abs=1e-4)  # the record rounds


def test_contrast_augmentation_brightens_soft_tissue_of_negatives_far_more_than_nodules():
    """Training's intravenous contrast: vessels (soft tissue) of a negative patch go to enhanced-vessel levels, a
    nodule brightens a little, air and calcium stay."""
    from inference.training.train_nodule_classifier import _contrast

    hu = np.array([-850.0, 40.0, -60.0, 600.0], np.float32)  # lung, vessel or nodule, fat-like edge, calcium
    for seed in range(20):
        negative = _contrast(np.random.default_rng(seed), hu, 0)
        positive = _contrast(np.random.default_rng(seed), hu, 1)
        assert negative[0] == -850 and negative[3] == 600 and positive[0] == -850 and positive[3] == 600
        assert 100 <= negative[1] - 40 <= 350 and negative[1] - 40 == pytest.approx(negative[2] + 60)
        assert 0 <= positive[1] - 40 <= 50
