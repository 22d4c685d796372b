"""The networks alone, on CPU (1 thread) or CUDA: what a GPU does to the part of a series' time it can take.

``python -m bench.bench_network cuda 10`` (device, repeats). Needs only torch, MONAI and this repository (no
SimpleITK, no ../shared), so it runs on a bare GPU machine. Times, median of the repeats after one warm-up:

- the built-in UNet (its weights) on LIDC-IDRI-0001's preprocessed size at 1.25 x 1.25 x 2.5 mm
  after the crop to the body (288 x 288 x 136): one pass padded to 144 slices, as ``inference.models.one_pass`` runs it;
- the same on a wide field of view, 336 x 336 x 144: MONAI's sliding windows with the bundle's settings;
- on CUDA also under bf16 autocast;
- the Model Zoo lung_nodule_ct_detection RetinaNet layout (ResNet50 + FPN, random weights) on one 192 x 192 x 80
  patch (its CPU figure is in bench_infer).

Measured 2026-12-04: CPU, 1 thread (this 2-core machine, shared): 3.56 s, 15.5-17.8 s, RetinaNet 19.6-21.6 s per
patch; one NVIDIA H200 (torch 2.11 + CUDA 13, median of 10): 0.034 s, 0.135 s (bf16 no faster: 0.034 / 0.139 s),
RetinaNet 0.038 s; 7.0 GB peak - about 100x the one-thread CPU for the UNet, 500x for the RetinaNet.
"""
import json
import statistics
import sys
import time
from collections.abc import Callable

import torch

SEG_WEIGHTS = "resources/models/chest_ct_lung_nodule_segmentation/models/model.pt"
#: LIDC-0001 after the crop to the body at 1.25 x 1.25 x 2.5 mm (one padded pass), and a wide field of view (windows)
SHAPES = {"lidc_288x288x136_one_pass": (288, 288, 136), "wide_fov_336x336x144_windows": (336, 336, 144)}


def timed(fn: Callable[[], object], device: str, repeats: int) -> dict[str, float]:
    """Median and best of ``repeats`` calls after one warm-up, waiting for the GPU after each."""
    def once() -> float:
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    once()
    seconds = [once() for _ in range(repeats)]
    return {"median_s": round(statistics.median(seconds), 4), "best_s": round(min(seconds), 4)}


def unet_figures(device: str, repeats: int) -> dict[str, dict[str, float]]:
    """The built-in UNet on :data:`SHAPES`, run as its bundle runs it (fp32; on CUDA also bf16 autocast)."""
    from monai.networks.nets import UNet

    from inference.models.one_pass import OnePassInferer

    unet = UNet(spatial_dims=3, in_channels=1, out_channels=4, channels=(16, 32, 64, 128, 256),
                strides=(2, 2, 2, 2), num_res_units=1)
    unet.load_state_dict(torch.load(SEG_WEIGHTS, map_location="cpu", weights_only=True))
    unet = unet.to(device).eval()
    inferer = OnePassInferer(roi_size=(288, 288, 144), size_divisible=(16, 16, 16), sw_batch_size=1, overlap=0.125,
                             mode="gaussian")
    figures = {}
    for name, shape in SHAPES.items():
        x = torch.rand(1, 1, *shape, device=device)
        with torch.no_grad():
            figures[name] = timed(lambda x=x: inferer(x, unet), device, repeats)
            if device == "cuda":
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    figures[name + "_bf16"] = timed(lambda x=x: inferer(x, unet), device, repeats)
        print(json.dumps({name: figures[name]}), flush=True)
    return figures


def retinanet_figure(device: str, repeats: int) -> dict[str, float]:
    """The Model Zoo detector's layout (RetinaNet over ResNet50 + FPN, random weights) on one 192 x 192 x 80 patch."""
    from monai.apps.detection.networks.retinanet_network import RetinaNet

    from inference.models.resnet_fpn import ResNetFPNFeatureExtractor

    features = ResNetFPNFeatureExtractor(conv1_t_size=(7, 7, 7), conv1_t_stride=(2, 2, 1))
    retina = RetinaNet(spatial_dims=3, num_classes=1, num_anchors=3, feature_extractor=features,
                       size_divisible=(16, 16, 8)).to(device).eval()
    x = torch.rand(1, 1, 192, 192, 80, device=device)
    with torch.no_grad():
        return timed(lambda: retina(x), device, repeats if device == "cuda" else 1)


def main(device: str = "cpu", repeats: int = 5) -> dict:
    """Every figure as one JSON-ready dict."""
    if device == "cpu":
        torch.set_num_threads(1)
    torch.backends.cudnn.benchmark = True
    results: dict = {"device": device, "torch": torch.__version__,
                     "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None}
    results.update(unet_figures(device, repeats))
    results["zoo_retinanet_patch_192x192x80"] = retinanet_figure(device, repeats)
    if device == "cuda":
        results["peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    return results


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:2], *map(int, sys.argv[2:3])), indent=1))
