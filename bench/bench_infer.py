"""Inference timings on the real LIDC-0001 chest CT (133 slices), and the Model Zoo RetinaNet as reference.

1. The Model Zoo's spleen_ct_segmentation config (random weights: the zoo weights are not shipped) run end to
   end through ``viewer.core.run_model.infer_to_dir`` on the whole of LIDC-0001: per-stage wall-clock times
   (load, model, preprocess, network, postprocess, export) and seconds per 96^3 sliding window.
2. The Model Zoo's lung_nodule_ct_detection network (RetinaNet, 3D ResNet50 + FPN, random weights) on one
   192x192x80 patch: the reference the built-in detector is compared with (issue 5 quotes ~18.7 s here).
3. The built-in models on the whole of LIDC-0001, wall clock from the volume in memory to the result on its grid
   (model load included): segmentation, nodule detection, and one Grad-CAM map each for the top finding and for
   the nodule and left-lung labels. Targets (issue 5): 15 s, 20 s, 5 s.
4. The built-in segmentation, detection and "run all" (both: one network run, issue 11) on LIDC-0001 with one
   torch thread, per stage beside the figures before issue 11 (``python -m bench.bench_infer --one-thread``).

torch uses ``max(1, cores - 1)`` threads, as in the app. Needs ../shared (skips with a line when absent).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HOUNSFIELD_SHARED", REPO.parent / "shared"))
LIDC = SHARED / "data" / "lidc-idri-0001"
ZOO = SHARED / "monai-model-zoo"
PATCH = (192, 192, 80)


def _retinanet_patch_seconds(repeats: int = 1) -> float:
    import torch

    from inference.bundle import load_bundle

    bundle = load_bundle(ZOO / "lung_nodule_ct_detection", device="cpu", random_weights=True)
    x = torch.rand(1, 1, *PATCH)
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            bundle.network(x)
            best = min(best, time.perf_counter() - start)
    return best


def _builtin_lines() -> list[str]:
    from inference.bundle import load_bundle
    from inference.gradcam import explain
    from inference.jobs import run_job
    from inference.registry import find_model
    from inference.task import run_model
    from viewer.core.evaluation import load_largest_series
    from viewer.core.sample import DEMO_MODELS

    volume = load_largest_series(LIDC)
    array, affine = volume.array, volume.affine
    lines = []
    results = {}
    for model_id in DEMO_MODELS[::-1]:
        info = find_model(model_id)
        if not info.has_weights:
            lines.append(f"{model_id}: no weights (train it first)")
            continue
        start = time.perf_counter()
        outcome = run_job(run_model(info, array, affine, device="cpu"))
        total = time.perf_counter() - start
        results[info.task] = (info, outcome.result)
        stages = ", ".join(f"{k} {v:.2f}" for k, v in outcome.timings.items())
        lines.append(f"built-in {info.task} on LIDC-0001: {total:.2f} s ({stages})")
    for task, (info, result) in results.items():
        bundle = load_bundle(info, device="cpu")
        targets = ([("top finding", {"box_lps": result.boxes_lps[0]})] if task == "detection" and len(result)
                   else [(name, {"label": v, "mask": result.labels == v}) for v, name in
                         ((4, "nodule label"), (1, "left-lung label")) if task == "segmentation"])
        for name, target in targets:
            start = time.perf_counter()
            run_job(explain(bundle, array, affine, **target))
            lines.append(f"  Grad-CAM of the {name} ({info.task} model): {time.perf_counter() - start:.2f} s")
    return lines


#: The same runs before issue 11's "Run once, fast" (commit d717402, this machine, 1 torch thread): seconds.
PREVIOUS_ONE_THREAD = {
    "segmentation": {"preprocess": 2.57, "network": 6.61, "postprocess": 11.34},
    "detection": {"preprocess": 2.42, "network": 7.29, "postprocess": 0.00},  # its boxes were in "network"
}


def _one_thread_lines() -> list[str]:
    """Segmentation, detection and "run all" (one after the other) on LIDC-0001 with 1 torch thread, the stage
    times beside the previous figures. Target (issue 11): "run all" <= 10 s, postprocess <= 1.5 s."""
    from inference.jobs import run_job
    from inference.task import run_model
    from viewer.core.evaluation import load_largest_series

    volume = load_largest_series(LIDC)
    array, affine = volume.array, volume.affine
    stages = ("preprocess", "network", "postprocess")

    def timed(model_id):
        outcome = run_job(run_model(model_id, array, affine, device="cpu", threads=1))
        return {k: outcome.timings.get(k, 0.0) for k in ("model", *stages)}, outcome.patches

    def fmt(t, before=None):
        line = ", ".join(f"{k} {t[k]:.2f}" + (f" (was {before[k]:.2f})" if before else "") for k in stages)
        return f"{sum(t.values()):.2f} s: {line}"

    lines = ["built-in models on LIDC-0001, 1 torch thread (model load included in the totals):"]
    seg_id, det_id = "hounsfield-chest-ct-segmentation", "hounsfield-chest-ct-nodule-detection"
    cold = {}
    for task, model_id in (("segmentation", seg_id), ("detection", det_id)):
        cold[task], _ = timed(model_id)
        before = PREVIOUS_ONE_THREAD[task]
        lines.append(f"  {task} alone: {fmt(cold[task], before)}; was {sum(before.values()):.2f} s + load")
    seg, det = cold["segmentation"], cold["detection"]
    was = sum(sum(v.values()) for v in PREVIOUS_ONE_THREAD.values())
    lines.append(f"  run all (segmentation then detection): {sum(seg.values()) + sum(det.values()):.2f} s "
                 f"(was {was:.2f} s + loads; target 10 s)")
    lines.append(f"    segmentation {fmt(seg)}")
    lines.append(f"    detection    {fmt(det)}")
    return lines


def run(workdir: Path) -> list[str]:
    """Run both measurements; lines to print."""
    if not (LIDC.is_dir() and (ZOO / "spleen_ct_segmentation").is_dir()):
        return [f"skipped: needs {LIDC} and {ZOO}"]
    from inference.device import configure_threads
    from viewer.core.run_model import format_timings, infer_to_dir

    threads = configure_threads()
    lines = [f"torch threads: {threads} (cores - 1)"]
    Path(workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench_infer_", dir=workdir) as out:
        # forced: an abdomen model on a CT labelled CHEST is refused otherwise; this times the pipeline, not the answer
        report = infer_to_dir(LIDC, str(ZOO / "spleen_ct_segmentation"), out, device="cpu", random_weights=True,
                              force=True)
    timings = report["timings"]
    lines.append(f"spleen_ct_segmentation (zoo config, random weights) on LIDC-0001 133x512x512, "
                 f"{report['patches']} windows of 96^3:")
    lines += [f"  {line}" for line in format_timings(timings)]
    lines.append(f"  network per 96^3 window: {timings['network'] / max(1, report['patches']):.2f} s")
    seconds = _retinanet_patch_seconds()
    lines.append(f"lung_nodule_ct_detection RetinaNet (ResNet50-FPN, random weights): {seconds:.2f} s per "
                 f"{'x'.join(map(str, PATCH))} patch (reference for the built-in detector)")
    lines += _builtin_lines()
    lines += _one_thread_lines()
    return lines


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--one-thread"]:  # only the issue 11 figures (no Model Zoo needed)
        for line in _one_thread_lines() if LIDC.is_dir() else [f"skipped: needs {LIDC}"]:
            print(line)
    else:
        for line in run(Path(__file__).resolve().parent / "out"):
            print(line)
