"""The training scripts: seeded (same seed, same weights), and what they write is a bundle the app loads."""
from __future__ import annotations

import json
import shutil

import numpy as np

from inference.resources import builtin_models_dir
from inference.training import train_segmentation
from inference.training.data import SLICE_MM, TRAIN_SEEDS, acquisition_grid, nodule_boxes


def _copy_configs(name: str, dest):
    shutil.copytree(builtin_models_dir() / name / "configs", dest / "configs")
    return dest


def test_training_is_seeded_and_writes_loadable_bundles(tmp_path):
    """Two short runs with one seed give the same weights, written to the segmentation bundle and the detector."""
    import torch

    from inference.bundle import load_bundle

    module = train_segmentation
    cache = tmp_path / "cache"
    weights = []
    for run in ("a", "b"):
        bundle = _copy_configs(module.BUNDLE, tmp_path / run)
        detector = _copy_configs(module.DETECTOR_BUNDLE, tmp_path / f"{run}-detector")
        record = module.train(bundle, steps=2, batch=1, patch=(48, 48, 32), lr=1e-3, seed=3, threads=1,
                              cache=cache, workers=1, seeds=TRAIN_SEEDS[:1], also_to=[detector],
                              log=lambda _m: None)
        assert record["steps"] == 2 and record["seed"] == 3
        assert json.loads((bundle / "models" / "training.json").read_text())["cases"] == 1
        weights.append(torch.load(bundle / "models" / "model.pt", weights_only=True))
        assert (detector / "models" / "model.pt").read_bytes() == (bundle / "models" / "model.pt").read_bytes()
        for folder in (bundle, detector):  # strict loads: no random_weights
            assert load_bundle(folder, device="cpu").weights.endswith("model.pt")
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
    # training moved the weights away from the seeded initialisation
    torch.manual_seed(3)
    untrained = _copy_configs(module.BUNDLE, tmp_path / "untrained")
    fresh = load_bundle(untrained, device="cpu", random_weights=True).network.state_dict()
    assert any(not torch.equal(fresh[k].half(), weights[0][k]) for k in fresh if fresh[k].is_floating_point())


def test_training_grids_vary_and_boxes_follow_the_labels():
    grids = {acquisition_grid(seed) for seed in TRAIN_SEEDS[:8]}
    assert len(grids) == 8
    assert {acquisition_grid(seed)[1][0] for seed in TRAIN_SEEDS} == set(SLICE_MM)  # thin to thick, all drawn
    for shape, spacing in grids:
        assert 0.6 <= spacing[1] <= 0.95 and spacing[0] in SLICE_MM
        assert 300 <= shape[1] * spacing[1] <= 385
    labels = np.zeros((40, 30, 20), np.uint8)
    labels[5:9, 10:12, 3:4] = 4
    labels[30:33, 20:25, 10:15] = 4
    labels[0:40, 0:2, 0:2] = 1  # other labels are not nodules
    boxes = sorted(nodule_boxes(labels).tolist())
    assert boxes == [[4.5, 9.5, 2.5, 8.5, 11.5, 3.5], [29.5, 19.5, 9.5, 32.5, 24.5, 14.5]]


def test_contrast_augmentation_brightens_soft_tissue_but_not_nodules():
    """In a contrast patch, vessels (soft tissue) get 100-350 HU and nodules 0-50 HU; lung and fat do not."""
    import torch

    from inference.training import data

    hu = np.full((1, 1, 16, 16, 16), -850.0, np.float32)  # lung
    hu[..., 4:8] = -300.0  # not soft tissue either: with the lung, it gives the scaling of each patch
    hu[..., 8:12] = 40.0  # soft tissue: vessel
    hu[..., 12:] = 20.0  # nodule
    labels = np.zeros(hu.shape, np.uint8)
    labels[..., 12:] = data.NODULE
    images = torch.from_numpy((hu + 1000) / data.HU_PER_UNIT)
    enhanced = 0
    for seed in range(40):
        out = data.augment_batch(images, torch.from_numpy(labels), np.random.default_rng(seed),
                                 torch.Generator().manual_seed(seed))
        assert out.shape == images.shape and 0 <= out.min() and out.max() <= 1
        level = [float(np.median(out.numpy()[..., a:a + 4])) * data.HU_PER_UNIT for a in (0, 4, 8, 12)]
        scale = (level[1] - level[0]) / 550.0
        vessel = (level[2] - level[0]) / scale - 890.0  # HU added beyond the patch's scaling
        nodule = (level[3] - level[0]) / scale - 870.0
        assert -25 < nodule < 75, nodule
        if vessel > 50:
            enhanced += 1
            assert 75 < vessel < 375, vessel
        else:
            assert abs(vessel) < 25, vessel
    assert 0.1 < enhanced / 40 < 0.6  # about data.CONTRAST_SHARE of the patches
