"""Train the built-in lung-nodule detector (MONAI RetinaNet, small ResNet10-FPN backbone) on synthetic phantoms.

    python -m inference.training.train_detection               # ~40 min on 2 CPU cores, seeded

Network, anchors and preprocessing come from the bundle's own ``configs/inference.json``
(``resources/models/chest_ct_nodule_detection``), built by the same loader the app uses; training follows the
MONAI LUNA16 recipe (ATSS matching, hard negative sampling, focal classification + smooth-L1 box loss).
Ground-truth boxes are the connected nodule components of the phantom label map on the preprocessed grid.
Writes ``models/model.pt`` and ``models/training.json``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from inference.resources import builtin_models_dir
from inference.training.data import TRAIN_SEEDS, augment_intensity, load_cases, random_patch, schedule
from inference.training.train_segmentation import default_cache

BUNDLE = "chest_ct_nodule_detection"


def patch_boxes(boxes: np.ndarray, offset: np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    """The boxes whose centre lies in the patch, moved into patch coordinates and clipped to it."""
    if not len(boxes):
        return np.zeros((0, 6), np.float32)
    moved = boxes - np.concatenate([offset, offset])
    centre = (moved[:, :3] + moved[:, 3:]) / 2
    inside = np.all((centre >= 0) & (centre < np.array(size)), axis=1)
    moved = moved[inside]
    upper = np.array(size, np.float32) - 0.5
    moved[:, :3] = np.maximum(moved[:, :3], -0.5)
    moved[:, 3:] = np.minimum(moved[:, 3:], upper)
    return moved.astype(np.float32)


def _without_torchvision() -> None:
    """MONAI's detector asks ``isinstance(matcher, torchvision Matcher)`` while computing the loss; torchvision is
    not a dependency (we use MONAI's ATSS matcher), so give that check a class nothing is an instance of."""
    import monai.apps.detection.networks.retinanet_detector as retinanet_detector

    try:
        import torchvision.models.detection._utils  # noqa: F401
    except ImportError:
        retinanet_detector.Matcher = type("TorchvisionMatcherUnavailable", (), {})


def train(bundle_dir: Path, *, steps: int, batch: int, patch: tuple[int, int, int], lr: float, seed: int,
          threads: int, cache: Path, workers: int, seeds=TRAIN_SEEDS, log=print) -> dict:
    """Train the bundle's detector; returns the training record (also written to models/training.json)."""
    import torch

    from inference.bundle import load_bundle
    from inference.device import configure_threads

    cases = load_cases(seeds, bundle_dir, cache, workers=workers, log=log)
    configure_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    _without_torchvision()
    detector = load_bundle(bundle_dir, device="cpu", random_weights=True).detector
    detector.set_atss_matcher(num_candidates=4, center_in_gt=False)
    detector.set_hard_negative_sampler(batch_size_per_image=64, positive_fraction=0.3, pool_size=20, min_neg=16)
    detector.set_target_keys(box_key="box", label_key="label")
    detector.train()
    optimiser = torch.optim.AdamW(detector.network.parameters(), lr=lr, weight_decay=1e-4)
    boxes = [case.nodule_boxes() for case in cases]
    with_nodules = [k for k, b in enumerate(boxes) if len(b)]
    curve, start, running = [], time.perf_counter(), []
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = schedule(step, steps, lr)
        images, targets = [], []
        for _ in range(batch):
            # two thirds of the patches hold a nodule: positives are rare, negatives are everywhere else anyway
            pool = with_nodules if rng.random() < 0.67 else range(len(cases))
            k = int(rng.choice(list(pool)))
            image, _, offset = random_patch(rng, cases[k], patch, nodule_fraction=1.0, boxes=boxes[k])
            images.append(augment_intensity(rng, image))
            inside = patch_boxes(boxes[k], offset, patch)
            targets.append({"box": torch.from_numpy(inside),
                            "label": torch.zeros(len(inside), dtype=torch.long)})
        outputs = detector(torch.from_numpy(np.stack(images)[:, None]), targets)
        loss = outputs[detector.cls_key] + outputs[detector.box_reg_key]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        running.append([outputs[detector.cls_key].item(), outputs[detector.box_reg_key].item()])
        if (step + 1) % 25 == 0 or step + 1 == steps:
            cls, reg = np.mean(running, axis=0)
            running = []
            curve.append([step + 1, round(float(cls), 4), round(float(reg), 4)])
            elapsed = time.perf_counter() - start
            log(f"step {step + 1}/{steps} cls {cls:.4f} box {reg:.4f} "
                f"({elapsed / (step + 1):.2f} s/step, {elapsed / 60:.1f} min)")
    seconds = time.perf_counter() - start
    models = bundle_dir / "models"
    models.mkdir(exist_ok=True)
    state = {k: v.detach().clone() for k, v in detector.network.state_dict().items()}
    tmp = models / "model.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(models / "model.pt")
    record = {"script": "python -m inference.training.train_detection", "seed": seed, "steps": steps,
              "batch": batch, "patch": list(patch), "lr": lr, "threads": threads,
              "training_seeds": [min(seeds), max(seeds)], "cases": len(cases),
              "seconds": round(seconds, 1), "loss_curve": {"columns": ["step", "classification", "box"],
                                                           "rows": curve},
              "torch": torch.__version__}
    (models / "training.json").write_text(json.dumps(record, indent=1))
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=builtin_models_dir() / BUNDLE)
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--patch", type=int, nargs=3, default=(112, 112, 48))
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="processes generating the phantom cases")
    parser.add_argument("--cache", type=Path, default=None, help="folder of the preprocessed phantom cases")
    args = parser.parse_args(argv)
    record = train(args.bundle, steps=args.steps, batch=args.batch, patch=tuple(args.patch), lr=args.lr,
                   seed=args.seed, threads=args.threads, cache=args.cache or default_cache(), workers=args.workers)
    print(f"trained in {record['seconds'] / 60:.1f} min; weights in {args.bundle / 'models' / 'model.pt'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
