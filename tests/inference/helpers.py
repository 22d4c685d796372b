"""Shared test helpers: tiny bundles written to tmp dirs, real volumes from ../shared/data, crops."""
from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from tests.conftest import SHARED, data_path

ZOO = SHARED / "monai-model-zoo"
SPLEEN = ZOO / "spleen_ct_segmentation"
LUNG = ZOO / "lung_nodule_ct_detection"


def zoo_bundle(name: str) -> Path:
    """A Model Zoo bundle folder from ../shared (skips when absent)."""
    import pytest

    path = ZOO / name
    if not (path / "configs" / "inference.json").is_file():
        pytest.skip(f"Model Zoo configs not available: {path}")
    return path


def write_bundle(folder: Path, config: dict, metadata: dict | None = None, state_dict=None) -> Path:
    """A bundle folder in the Model Zoo layout; ``state_dict`` (if any) saved as models/model.pt."""
    (folder / "configs").mkdir(parents=True, exist_ok=True)
    (folder / "configs" / "inference.json").write_text(json.dumps(config, indent=1))
    (folder / "configs" / "metadata.json").write_text(json.dumps(metadata or {"name": folder.name, "version": "0.1"}))
    if state_dict is not None:
        import torch

        (folder / "models").mkdir(exist_ok=True)
        torch.save(state_dict, folder / "models" / "model.pt")
    return folder


def tiny_unet_config(spacing=None, roi=(32, 32, 32)) -> dict:
    """A small 3D UNet segmentation bundle config using only allow-listed targets."""
    pre = [{"_target_": "LoadImaged", "keys": "image"},
           {"_target_": "EnsureChannelFirstd", "keys": "image"},
           {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"}]
    if spacing:
        pre.append({"_target_": "Spacingd", "keys": "image", "pixdim": list(spacing), "mode": "bilinear"})
    pre.append({"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -1000, "a_max": 1000,
                "b_min": 0.0, "b_max": 1.0, "clip": True})
    return {
        "image_key": "image",
        "network_def": {"_target_": "UNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 3,
                        "channels": [4, 8], "strides": [2], "num_res_units": 0},
        "preprocessing": {"_target_": "Compose", "transforms": pre},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": list(roi), "sw_batch_size": 2, "overlap": 0.25},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "@image_key",
             "nearest_interp": False, "to_tensor": True},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
            {"_target_": "SaveImaged", "keys": "pred", "output_dir": "/nonexistent"}]},
    }


def tiny_unet_state(seed: int = 0) -> dict:
    import torch
    from monai.networks.nets import UNet

    torch.manual_seed(seed)
    net = UNet(spatial_dims=3, in_channels=1, out_channels=3, channels=[4, 8], strides=[2], num_res_units=0)
    return net.state_dict()


@lru_cache(maxsize=4)
def _load(folder: str):
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan

    catalog = scan([folder])
    series = max((s for s in catalog.all_series() if s.kind == "image"), key=lambda s: s.n_frames)
    return series, load_series(series)


def real_volume(name: str):
    """``(series, volume)`` of a folder under ../shared/data (skips when absent); cached per session."""
    folder = data_path(name)
    return _load(str(folder))


def crop(array: np.ndarray, affine: np.ndarray, zs: slice, ys: slice, xs: slice):
    """A sub-volume and its affine (same directions and spacing, origin moved to the crop's first voxel)."""
    shift = np.eye(4)
    shift[:3, 3] = [xs.start or 0, ys.start or 0, zs.start or 0]
    return np.ascontiguousarray(array[zs, ys, xs]), affine @ shift


def lps_grid(shape, affine) -> np.ndarray:
    """``(z, y, x, 3)`` LPS position of every voxel centre."""
    zz, yy, xx = np.indices(shape, dtype=np.float64)
    return np.stack([xx, yy, zz], axis=-1) @ affine[:3, :3].T + affine[:3, 3]


def run_in_subprocess(code: str, timeout: float = 240.0) -> str:
    """Run ``code`` in a fresh interpreter (repo on sys.path); returns stdout, raises on failure."""
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"subprocess failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


# ---------------------------------------------------------------------------------------------------------------
# Tiny detection / saliency bundles (as tests/core/test_run_model.py builds them), for tests that need a real
# bundle of every task.

def resampling_preprocessing(pixdim=(4.0, 4.0, 4.0), a_min: float = 0, a_max: float = 1000) -> dict:
    """Channel, RAS orientation, resampling to ``pixdim`` and intensity scaling (allow-listed targets only)."""
    return {"_target_": "Compose", "transforms": [
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
        {"_target_": "Spacingd", "keys": "image", "pixdim": list(pixdim)},
        {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": a_min, "a_max": a_max, "b_min": 0, "b_max": 1,
         "clip": True}]}


def tiny_detector_config(pixdim=(4.0, 4.0, 4.0), roi=(32, 32, 16), detections_per_img: int = 5) -> dict:
    """A small RetinaNet detector bundle (our torchvision-free ResNet+FPN), sliding windows forced."""
    return {
        "force_sliding_window": True,
        "feature_extractor": {"_target_": "inference.models.resnet_fpn.ResNetFPNFeatureExtractor", "arch": "resnet10",
                              "conv1_t_stride": [2, 2, 1], "returned_layers": [1], "block_inplanes": [8, 16, 32, 64],
                              "out_channels": 16},
        "anchor_generator": {"_target_": "monai.apps.detection.utils.anchor_utils.AnchorGeneratorWithAnchorShape",
                             "feature_map_scales": [1, 2], "base_anchor_shapes": [[6, 8, 4], [8, 6, 5], [10, 10, 6]]},
        "network_def": {"_target_": "RetinaNet", "spatial_dims": 3, "num_classes": 1, "num_anchors": 3,
                        "feature_extractor": "@feature_extractor", "size_divisible": [8, 8, 4]},
        "detector": {"_target_": "RetinaNetDetector", "network": "@network_def",
                     "anchor_generator": "@anchor_generator", "spatial_dims": 3, "num_classes": 1,
                     "size_divisible": [8, 8, 4]},
        "detector_ops": [
            "$@detector.set_box_selector_parameters(score_thresh=0.0, topk_candidates_per_level=20, nms_thresh=0.2,"
            f" detections_per_img={int(detections_per_img)})",
            f"$@detector.set_sliding_window_inferer(roi_size={list(roi)}, overlap=0.25, sw_batch_size=1,"
            " mode='constant', device='cpu')"],
        "preprocessing": resampling_preprocessing(pixdim),
    }


def tiny_saliency_config(pixdim=(4.0, 4.0, 4.0)) -> dict:
    """A one-voxel convolution whose output the pipeline treats as a heat map."""
    return {"network_def": {"_target_": "torch.nn.Conv3d", "in_channels": 1, "out_channels": 1, "kernel_size": 1},
            "preprocessing": resampling_preprocessing(pixdim)}


def save_seeded_weights(bundle: Path, seed: int = 0) -> Path:
    """Build the bundle's network with seeded random weights and save them as models/model.pt (a real bundle)."""
    import torch

    from inference.bundle import load_bundle

    torch.manual_seed(seed)
    network = load_bundle(bundle, device="cpu", random_weights=True).network
    (bundle / "models").mkdir(exist_ok=True)
    torch.save(network.state_dict(), bundle / "models" / "model.pt")
    return bundle
