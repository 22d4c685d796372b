"""Train the built-in lung / airway / nodule network (MONAI UNet) on synthetic phantoms.

    python -m inference.training.train_segmentation            # ~25 min on 2 CPU cores, seeded

The network and the preprocessing come from the bundle's own ``configs/inference.json``
(``resources/models/chest_ct_lung_nodule_segmentation``), so what is trained is exactly what the app runs.
Writes ``models/model.pt`` (``state_dict``, loaded with ``weights_only=True``) and ``models/training.json``
(seed, steps, data, time and the loss curve) into that bundle and into the built-in nodule detector
(``chest_ct_nodule_detection``), which reads the nodule label of the same network. Same seed, same steps, same
machine type: the same weights.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from inference.resources import builtin_models_dir
from inference.training.data import NODULE, TRAIN_SEEDS, augment_batch, load_cases, random_patch, schedule

BUNDLE = "chest_ct_lung_nodule_segmentation"
DETECTOR_BUNDLE = "chest_ct_nodule_detection"  # reads the nodule label of the same network
# The network learns lung / airway / nodule; which lung is left and which right is decided after it, from the
# anatomy (inference.models.lungs.SplitLungsd): patches too small to hold both lungs cannot tell them apart.
CLASSES = np.array([0, 1, 1, 2, 3], np.int64)  # phantom label (0 bg, 1 L lung, 2 R lung, 3 airway, 4 nodule) -> class


def default_cache() -> Path:
    from inference.registry import user_data_dir

    return user_data_dir() / "training-cache" / "chest-ct-1.25x1.25x2.5"


def save_weights(network, bundle_dir: Path) -> Path:
    """``models/model.pt`` of ``bundle_dir``: the ``state_dict`` in float16 (half the download; the loader copies
    it into the float32 network), written atomically."""
    import torch

    models = Path(bundle_dir) / "models"
    models.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().half() if v.is_floating_point() else v.detach()).cpu().clone()
             for k, v in network.state_dict().items()}
    tmp = models / "model.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(models / "model.pt")
    return models / "model.pt"


def train(bundle_dir: Path, *, steps: int, batch: int, patch: tuple[int, int, int], lr: float, seed: int,
          threads: int, cache: Path, workers: int, seeds=TRAIN_SEEDS, also_to=(), nodule_fraction: float = 0.6,
          init: Path | None = None, device: str = "cpu", deadline_s: float | None = None, log=print) -> dict:
    """Train the bundle's network; returns the training record (also written to models/training.json).

    ``also_to``: more bundle folders that run the same network (the built-in nodule detector) get the weights too.
    ``init``: start from these weights (a ``model.pt``) instead of the seeded initialisation (a second stage).
    ``device``: where the network trains (``cuda`` for a longer training; patches are cut on the CPU).
    ``deadline_s``: stop after this many seconds of training even if ``steps`` are not done (a lent GPU's time is
    counted); the record says where it stopped.
    """
    import torch
    from monai.losses import DiceCELoss

    from inference.bundle import load_bundle
    from inference.device import configure_threads

    cases = load_cases(seeds, bundle_dir, cache, workers=workers, log=log)
    configure_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = load_bundle(bundle_dir, device="cpu", random_weights=True).network
    if init is not None:
        state = torch.load(init, map_location="cpu", weights_only=True)
        network.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    network.to(device).train()
    generator = torch.Generator(device=device).manual_seed(seed)
    # smooth_nr=0: a label absent from the batch adds a constant, not a push towards predicting nothing anywhere
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True,
                         smooth_nr=0.0, smooth_dr=1e-5, lambda_dice=1.0, lambda_ce=1.0)
    optimiser = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=1e-4)
    boxes = [case.nodule_boxes() for case in cases]
    curve, start, running = [], time.perf_counter(), []
    done = 0
    for step in range(steps):
        if deadline_s is not None and time.perf_counter() - start > deadline_s:
            log(f"deadline of {deadline_s:g} s reached after {step} steps")
            break
        done = step + 1
        for group in optimiser.param_groups:
            group["lr"] = schedule(step, steps, lr)
        images, labels = [], []
        for _ in range(batch):
            k = int(rng.integers(len(cases)))
            image, label, _ = random_patch(rng, cases[k], patch, nodule_fraction=nodule_fraction, boxes=boxes[k])
            images.append(image)
            labels.append(label)
        label_batch = torch.from_numpy(np.stack(labels)[:, None]).to(device)
        x = augment_batch(torch.from_numpy(np.stack(images)[:, None]).to(device), label_batch, rng, generator)
        y = torch.from_numpy(CLASSES).to(device)[label_batch.long()]
        loss = loss_fn(network(x), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        running.append(loss.item())
        if (step + 1) % 25 == 0 or step + 1 == steps:
            mean = float(np.mean(running))
            running = []
            curve.append([step + 1, round(mean, 4)])
            elapsed = time.perf_counter() - start
            log(f"step {step + 1}/{steps} loss {mean:.4f} ({elapsed / (step + 1):.2f} s/step, {elapsed / 60:.1f} min)")
    seconds = time.perf_counter() - start
    for folder in (bundle_dir, *also_to):
        save_weights(network, folder)
    record = {"script": "python -m inference.training.train_segmentation", "seed": seed, "steps": steps,
              "steps_done": done,
              "batch": batch, "patch": list(patch), "lr": lr, "threads": threads, "nodule_fraction": nodule_fraction,
              "init": str(init) if init else None,
              "training_seeds": [min(seeds), max(seeds)], "cases": len(cases),
              "nodule_label": NODULE, "seconds": round(seconds, 1), "loss_curve": curve,
              "torch": torch.__version__, "device": _device_name(device)}
    for folder in (bundle_dir, *also_to):
        (Path(folder) / "models" / "training.json").write_text(json.dumps(record, indent=1))
    return record


def _device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(torch.device(device)) if str(device).startswith("cuda") else str(device)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=builtin_models_dir() / BUNDLE)
    parser.add_argument("--steps", type=int, default=1600)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--patch", type=int, nargs=3, default=(128, 128, 64))
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="processes generating the phantom cases")
    parser.add_argument("--cache", type=Path, default=None, help="folder of the preprocessed phantom cases")
    parser.add_argument("--nodule-fraction", type=float, default=0.6, help="share of patches centred on a nodule")
    parser.add_argument("--init", type=Path, help="start from these weights (model.pt): a second training stage")
    parser.add_argument("--device", default="cpu", help="where the network trains: cpu or cuda")
    parser.add_argument("--no-detector", action="store_true",
                        help=f"do not copy the weights into the built-in detector ({DETECTOR_BUNDLE})")
    args = parser.parse_args(argv)
    also = [] if args.no_detector else [builtin_models_dir() / DETECTOR_BUNDLE]
    record = train(args.bundle, steps=args.steps, batch=args.batch, patch=tuple(args.patch), lr=args.lr,
                   seed=args.seed, threads=args.threads, cache=args.cache or default_cache(), workers=args.workers,
                   also_to=also, nodule_fraction=args.nodule_fraction, init=args.init, device=args.device)
    print(f"trained in {record['seconds'] / 60:.1f} min; weights in {args.bundle / 'models' / 'model.pt'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
