"""Train and calibrate the second stage of the built-in nodule detector (:mod:`inference.models.nodule_classifier`).

    python -m inference.training.train_nodule_classifier        # seeded; ~19 min of training once the candidates
                                                                # of 256 phantoms are cached (finding them takes
                                                                # ~30 min on 2 cores)

1. Candidates: the built-in detector's first stage (the segmentation network at its candidate threshold and the
   blob candidates) runs on the training phantoms (:data:`~inference.training.data.CLASSIFIER_TRAIN_SEEDS`) and
   every calibration phantom (:data:`~inference.training.data.CALIBRATION_SEEDS`) at their random acquisition
   grids, as it runs on a study.
   A candidate is positive when it hits a true nodule (the FROC rule of :mod:`inference.metrics`). Each
   candidate's 40^3 patch (a 32^3 crop of it is the input; the margin allows shifts) is cached per seed.
2. Training: each of the classifier's networks apart (seeds ``seed``, ``seed + 1``, ...) on the training candidates,
   positives oversampled to half of each batch, with flips,
   axial quarter turns, shifts of up to 4 voxels and, in 30 %, intravenous contrast (:func:`_contrast`).
3. Calibration: Platt scaling (``a * logit + b``, by Newton's method on the log loss) on the calibration
   candidates, which the classifier never trained on; the display threshold (the operating point) is the lowest
   score keeping at most one false positive per calibration scan.

Writes ``models/classifier.pt`` (``state_dict``) and ``models/classifier.json`` (record, calibration and the
operating point) into the detector bundle, and names the operating point in its model card; the built-in
segmentation bundle gets the same files and operating point (it checks its nodule label with them).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from inference.models.nodule_classifier import PATCH, candidate_scalars, patch_spacing, sample_patch
from inference.resources import builtin_models_dir
from inference.training.data import (
    CALIBRATION_SEEDS,
    CLASSIFIER_TRAIN_SEEDS,
    CONTRAST_NODULE_GAIN_HU,
    CONTRAST_SHARE,
    CONTRAST_TISSUE_HU,
    CONTRAST_VESSEL_GAIN_HU,
    acquisition_grid,
    fill_cache,
)
from inference.training.phantom import GENERATOR_REVISION, PHANTOM_VERSION, generate_phantom

BUNDLE = "chest_ct_nodule_detection"
SEGMENTATION = "chest_ct_lung_nodule_segmentation"
STORED = PATCH + 8  # stored patch: shifts of up to 4 voxels when cropping the 32^3 input
#: Per phantom, besides the first stage's candidates: jittered copies of each true nodule (positives the first stage
#: may have missed, and more of the rare large and ground-glass ones) and random dense lung points (negatives).
EXTRA_POSITIVES, EXTRA_NEGATIVES = 4, 24


def default_cache() -> Path:
    from inference.registry import user_data_dir

    return user_data_dir() / "training-cache" / "nodule-candidates"


def cache_path(cache: Path, seed: int, key: str) -> Path:
    return Path(cache) / f"candidates-{PHANTOM_VERSION}.{GENERATOR_REVISION}-{key[:12]}{key[64:]}-{seed}.npz"


_bundle = None


def _init_worker(bundle_dir: str) -> None:
    global _bundle
    from inference.bundle import load_bundle
    from inference.device import configure_threads

    configure_threads(1)
    _bundle = load_bundle(bundle_dir, device="cpu", trusted=True)
    _bundle.detector.classifier = None  # the first stage alone


def candidates_of(seed: int, bundle, extras: bool = True) -> dict:
    """Examples from phantom ``seed``: stored patches (int16 HU), scalars, labels (1 nodule), the diameter of the
    nodule a positive lies on, and ``source``: 0 a first-stage candidate, 1 a true nodule (centre and size jittered;
    positives the first stage may have missed), 2 a random dense lung point (vessel, scar, fissure: negatives).
    ``extras`` False: the candidates only (what calibration needs)."""
    from inference.jobs import run_job
    from inference.metrics import match_radius
    from inference.task import run_bundle
    from inference.types import Detections

    rng = np.random.default_rng([GENERATOR_REVISION, 31, seed])
    shape, spacing = acquisition_grid(seed)
    phantom = generate_phantom(seed, shape=shape, spacing=spacing)
    found = run_job(run_bundle(bundle, phantom.hu, phantom.affine, threads=1)).result
    if not isinstance(found, Detections):
        raise TypeError(f"the first stage must be a detector, got a {type(found).__name__}")
    truth = np.array([n.center_lps for n in phantom.nodules], float).reshape(-1, 3)
    diameters = np.array([n.diameter_mm for n in phantom.nodules], float)
    radii = np.array([match_radius(v) for v in diameters])
    examples = [(c, float(sz.max()), 0) for c, sz in zip(found.centers_lps, found.sizes_mm)]
    if extras:
        for centre, d in zip(truth, diameters):
            for _ in range(EXTRA_POSITIVES):
                examples.append((centre + rng.normal(0, 0.15 * d / 2 + 0.5, 3), d * rng.uniform(0.9, 1.3), 1))
        lung = np.isin(phantom.labels, (1, 2)) & (phantom.hu > -450)
        points = np.argwhere(lung)
        for zyx in points[rng.integers(0, len(points), EXTRA_NEGATIVES)] if len(points) else []:
            centre = phantom.affine[:3, :3] @ zyx[::-1] + phantom.affine[:3, 3]
            examples.append((centre, rng.uniform(4, 14), 2))
    patches, scalars, labels, hit_mm, sources = [], [], [], [], []
    for centre, extent, source in examples:
        spacing_mm = patch_spacing(extent)
        hu = sample_patch(phantom.hu, phantom.affine, centre, spacing_mm, size=STORED)
        d = np.linalg.norm(truth - centre, axis=1) if len(truth) else np.zeros(0)
        hits = np.flatnonzero(d <= radii)
        if source == 2 and len(hits):
            continue  # a dense point on a nodule is no negative
        patches.append(np.clip(np.rint(hu), -1024, 3071).astype(np.int16))
        scalars.append(candidate_scalars(extent, spacing_mm))
        labels.append(1 if len(hits) else 0)
        hit_mm.append(float(diameters[hits[0]]) if len(hits) else 0.0)
        sources.append(source)
    return {"patches": np.asarray(patches, np.int16).reshape(-1, STORED, STORED, STORED),
            "scalars": np.asarray(scalars, np.float32).reshape(-1, 2), "labels": np.asarray(labels, np.int64),
            "hit_mm": np.asarray(hit_mm, np.float32), "source": np.asarray(sources, np.int64),
            "n_nodules": len(truth), "slice_mm": spacing[0]}


def _write(job: tuple[int, str, bool]) -> str:
    seed, path, extras = job
    data = candidates_of(seed, _bundle, extras)
    tmp = Path(path).with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    tmp.replace(path)
    first = data["source"] == 0
    return (f"seed {seed}: {int(first.sum())} candidates, {int(data['labels'][first].sum())} on nodules "
            f"(+{int((~first).sum())} extra examples)")


def weights_sha(bundle_dir: Path) -> str:
    """sha256 of the first-stage weights (``models/model.pt``)."""
    import hashlib

    return hashlib.sha256((Path(bundle_dir) / "models" / "model.pt").read_bytes()).hexdigest()


def first_stage_key(bundle_dir: Path) -> str:
    """sha256 of what decides the candidates: the first-stage weights, the detector's settings (threshold,
    blob candidates; not the classifier), the largest finding kept and the blob finder's revision. Candidates are
    cached per key."""
    import hashlib

    from inference.models.blob_candidates import REVISION

    detector = dict(json.loads((Path(bundle_dir) / "configs" / "inference.json").read_text())["detector"])
    detector.pop("classifier", None)
    largest = json.loads((Path(bundle_dir) / "configs" / "metadata.json").read_text()).get("max_finding_mm")
    settings = json.dumps([detector, REVISION, largest, EXTRA_POSITIVES, EXTRA_NEGATIVES], sort_keys=True).encode()
    return hashlib.sha256(weights_sha(bundle_dir).encode() + settings).hexdigest()


def load_candidates(seeds, bundle_dir: Path, cache: Path, workers: int, extras: bool = True, log=print) -> list[dict]:
    """Examples of ``seeds`` (made once in ``workers`` processes, then read from ``cache``)."""
    sha = first_stage_key(bundle_dir) + ("" if extras else "-candidates")
    Path(cache).mkdir(parents=True, exist_ok=True)
    fill_cache([(s, str(cache_path(cache, s, sha)), extras) for s in seeds], _write, _init_worker,
               (str(bundle_dir),), workers, log, "phantoms' candidates")
    out = []
    for seed in seeds:
        with np.load(cache_path(cache, seed, sha)) as npz:
            out.append({k: npz[k] for k in npz.files} | {"seed": seed})
    return out


def _crop(rng, patch: np.ndarray, augment: bool) -> np.ndarray:
    m = (STORED - PATCH) // 2
    if not augment:
        return patch[m:m + PATCH, m:m + PATCH, m:m + PATCH]
    z, y, x = rng.integers(0, 2 * m + 1, 3)
    out = patch[z:z + PATCH, y:y + PATCH, x:x + PATCH]
    for axis in range(3):
        if rng.random() < 0.5:
            out = np.flip(out, axis)
    if rng.random() < 0.5:
        out = out.transpose(0, 2, 1)  # an axial quarter turn with the flips
    return out


def _contrast(rng, hu: np.ndarray, label: int) -> np.ndarray:
    """The patch as on a contrast-enhanced CT (the ranges of :func:`inference.training.data.augment_batch`): soft
    tissue (-100..100 HU: vessels) 100-350 HU brighter in a negative, a nodule 0-50 HU brighter. The phantoms have
    no contrast; on LIDC-IDRI-0001 (enhanced) the classifier trained without this called enhanced vessel branchings
    calcified nodules (scores up to 0.95)."""
    soft = (hu > CONTRAST_TISSUE_HU[0]) & (hu < CONTRAST_TISSUE_HU[1])
    gain = rng.uniform(*(CONTRAST_NODULE_GAIN_HU if label else CONTRAST_VESSEL_GAIN_HU))
    return np.where(soft, hu + gain, hu).astype(np.float32)


def _inputs(rng, patches, scalars, augment: bool, labels=None):
    import torch

    from inference.models.nodule_classifier import patch_channels

    def prepare(i, patch):
        hu = _crop(rng, patch.astype(np.float32), augment)
        if augment and labels is not None and rng.random() < CONTRAST_SHARE:
            hu = _contrast(rng, hu, int(labels[i]))
        return patch_channels(hu)

    x = np.stack([prepare(i, p) for i, p in enumerate(patches)])
    return torch.from_numpy(x), torch.from_numpy(np.asarray(scalars, np.float32))


def logits_of(network, patches, scalars, batch: int = 128) -> np.ndarray:
    """Raw logits of ``network`` on stored patches (centre crops)."""
    import torch

    network.eval()
    rng = np.random.default_rng(0)
    out = []
    with torch.no_grad():
        for i in range(0, len(patches), batch):
            x, s = _inputs(rng, patches[i:i + batch], scalars[i:i + batch], augment=False)
            out.append(network(x, s).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def fit_platt(logits: np.ndarray, labels: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """``(a, b)`` minimising the log loss of ``sigmoid(a * logit + b)`` (Newton's method, Platt's smoothed
    targets so a separable set does not send ``a`` to infinity)."""
    n_pos, n_neg = int(labels.sum()), int(len(labels) - labels.sum())
    target = np.where(labels > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(a * logits + b)))
        g = np.array([((p - target) * logits).sum(), (p - target).sum()])
        w = np.maximum(p * (1 - p), 1e-9)
        h = np.array([[(w * logits * logits).sum(), (w * logits).sum()], [(w * logits).sum(), w.sum()]])
        step = np.linalg.solve(h + 1e-6 * np.eye(2), g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-7:
            break
    return float(a), float(b)


def operating_point(scores_per_scan: list[np.ndarray], labels_per_scan: list[np.ndarray],
                    fp_per_scan: float = 1.0) -> float:
    """The lowest score threshold keeping false positives at or under ``fp_per_scan`` on average."""
    negatives = np.sort(np.concatenate([s[y == 0] for s, y in zip(scores_per_scan, labels_per_scan)]))[::-1]
    allowed = int(np.floor(fp_per_scan * len(scores_per_scan)))
    if len(negatives) <= allowed:
        return 0.05
    return float(np.nextafter(negatives[allowed], 1.0))


def train(bundle_dir: Path, *, steps: int, batch: int, lr: float, seed: int, threads: int, cache: Path,
          workers: int, candidates_from: Path | None = None, log=print) -> dict:
    """Train and calibrate; writes ``classifier.pt`` / ``classifier.json`` into ``bundle_dir``; returns the record.

    ``candidates_from``: the bundle whose first stage finds the training candidates (default ``bundle_dir``; the
    classifier does not read first-stage scores, so earlier first-stage weights serve). Calibration candidates
    always come from ``bundle_dir``'s own first stage, the one the classifier will follow.
    """
    import torch

    from inference.device import configure_threads
    from inference.models.nodule_classifier import NoduleClassifier

    candidates_from = Path(candidates_from or bundle_dir)
    training = load_candidates(CLASSIFIER_TRAIN_SEEDS, candidates_from, cache, workers, extras=True, log=log)
    held_out = load_candidates(CALIBRATION_SEEDS, bundle_dir, cache, workers, extras=False, log=log)
    patches = np.concatenate([s["patches"] for s in training])
    scalars = np.concatenate([s["scalars"] for s in training])
    labels = np.concatenate([s["labels"] for s in training])
    positives = np.flatnonzero(labels == 1)
    log(f"{len(labels)} training examples: {len(positives)} on nodules, {len(labels) - len(positives)} not")
    configure_threads(threads)
    network = NoduleClassifier()
    start, curves = time.perf_counter(), []
    for k, member in enumerate(network.members):  # each on its own seed, apart: an ensemble, not one wide network
        def member_log(message: str, k: int = k) -> None:
            log(f"network {k + 1}/{len(network.members)}: {message}")

        curves.append(_train_member(member, patches, scalars, labels, steps=steps, batch=batch, lr=lr,
                                    seed=seed + k, log=member_log))
    seconds = time.perf_counter() - start

    record = {"script": "python -m inference.training.train_nodule_classifier", "seed": seed, "steps": steps,
              "networks": len(network.members), "seeds": [seed + k for k in range(len(network.members))],
              "training_candidates_from_weights_sha256": weights_sha(candidates_from),
              "batch": batch, "lr": lr, "threads": threads, "contrast_share": CONTRAST_SHARE,
              "training_seeds": [min(CLASSIFIER_TRAIN_SEEDS), max(CLASSIFIER_TRAIN_SEEDS)],
              "training_examples": int(len(labels)), "training_positives": int(len(positives)),
              "seconds": round(seconds, 1), "loss_curves": curves, "torch": torch.__version__}
    return calibrate(network, Path(bundle_dir), held_out, record)


def _train_member(network, patches, scalars, labels, *, steps: int, batch: int, lr: float, seed: int, log) -> list:
    """Train one :class:`~inference.models.nodule_classifier.CandidateNet` (seeded); its loss curve."""
    import torch

    from inference.training.data import schedule

    torch.manual_seed(seed)
    network.load_state_dict(type(network)().state_dict())  # the seed's initialisation
    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    optimiser = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    start, curve, running = time.perf_counter(), [], []
    for step in range(steps):
        network.train()
        for group in optimiser.param_groups:
            group["lr"] = schedule(step, steps, lr, warmup=20)
        pick = np.concatenate([rng.choice(positives, batch // 2), rng.choice(negatives, batch - batch // 2)])
        x, s = _inputs(rng, patches[pick], scalars[pick], augment=True, labels=labels[pick])
        loss = loss_fn(network(x, s), torch.from_numpy(labels[pick].astype(np.float32)))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        running.append(loss.item())
        if (step + 1) % 25 == 0 or step + 1 == steps:
            curve.append([step + 1, round(float(np.mean(running)), 4)])
            running = []
            log(f"step {step + 1}/{steps} loss {curve[-1][1]:.4f} ({(time.perf_counter() - start) / 60:.1f} min)")
    return curve


def calibrate(network, bundle_dir: Path, held_out: list[dict], record: dict) -> dict:
    """Fit Platt scaling and the operating point on the calibration candidates of ``bundle_dir``'s first stage,
    then write ``classifier.pt``, ``classifier.json`` (``record`` plus the calibration) and the card's
    operating point. Returns the record."""
    import torch

    logits = [logits_of(network, s["patches"], s["scalars"]) for s in held_out]
    cal_labels = [s["labels"] for s in held_out]
    a, b = fit_platt(np.concatenate(logits), np.concatenate(cal_labels))
    network.platt.copy_(torch.tensor([a, b]))
    probabilities = [1 / (1 + np.exp(-(a * z + b))) for z in logits]
    threshold = operating_point(probabilities, cal_labels)
    models = Path(bundle_dir) / "models"
    tmp = models / "classifier.pt.tmp"
    torch.save({k: v.detach().clone() for k, v in network.state_dict().items()}, tmp)
    tmp.replace(models / "classifier.pt")
    record = {**record, "calibration_candidates_from_weights_sha256": weights_sha(bundle_dir),
              "calibration_seeds": [min(CALIBRATION_SEEDS), max(CALIBRATION_SEEDS)],
              "calibration_candidates": int(sum(len(v) for v in cal_labels)),
              "calibration_positives": int(sum(int(v.sum()) for v in cal_labels)),
              "platt": [round(a, 5), round(b, 5)], "operating_point": round(threshold, 4),
              "operating_point_rule": "lowest score with <= 1 false positive per calibration scan"}
    (models / "classifier.json").write_text(json.dumps(record, indent=1))
    set_operating_point(Path(bundle_dir), round(threshold, 4))
    share_classifier(Path(bundle_dir))
    return record


def share_classifier(bundle_dir: Path, to: Path | None = None) -> None:
    """Copy the detector's classifier and operating point to the segmentation bundle ``to`` (default the built-in
    one, when ``bundle_dir`` is the built-in detector), which checks its nodule label with it
    (:mod:`inference.confirm_nodules`)."""
    import shutil

    if to is None:
        if Path(bundle_dir).resolve() != (builtin_models_dir() / BUNDLE).resolve():
            return
        to = builtin_models_dir() / SEGMENTATION
    for name in ("classifier.pt", "classifier.json"):
        tmp = Path(to) / "models" / f"{name}.tmp"
        shutil.copyfile(Path(bundle_dir) / "models" / name, tmp)
        tmp.replace(Path(to) / "models" / name)
    record = json.loads((Path(bundle_dir) / "models" / "classifier.json").read_text())
    set_operating_point(Path(to), record["operating_point"])


def recalibrate(bundle_dir: Path, cache: Path, workers: int, log=print) -> dict:
    """Calibrate the bundle's trained classifier again for its current first stage (after the shared network
    changed: the classifier does not read the first stage, but which candidates it meets and how often they are
    nodules does)."""
    import torch

    from inference.models.nodule_classifier import NoduleClassifier

    models = Path(bundle_dir) / "models"
    network = NoduleClassifier()
    network.load_state_dict(torch.load(models / "classifier.pt", map_location="cpu", weights_only=True))
    record = json.loads((models / "classifier.json").read_text())
    held_out = load_candidates(CALIBRATION_SEEDS, bundle_dir, cache, workers, extras=False, log=log)
    return calibrate(network, Path(bundle_dir), held_out, record)


def set_operating_point(bundle_dir: Path, score: float) -> None:
    """Name the operating point in the model card (``hounsfield.operating_point`` of ``configs/metadata.json``),
    where the registry and the viewer read it."""
    card = bundle_dir / "configs" / "metadata.json"
    metadata = json.loads(card.read_text())
    metadata.setdefault("hounsfield", {})["operating_point"] = score
    tmp = card.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metadata, indent=2) + "\n")
    tmp.replace(card)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=builtin_models_dir() / BUNDLE)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="processes finding the candidates")
    parser.add_argument("--cache", type=Path, default=None, help="folder of the cached candidates")
    parser.add_argument("--candidates-from", type=Path, default=None,
                        help="bundle whose first stage finds the training candidates (default: --bundle)")
    parser.add_argument("--only-candidates", action="store_true",
                        help="find and cache the training candidates, then stop")
    parser.add_argument("--recalibrate", action="store_true",
                        help="keep the trained classifier; calibrate it again for the bundle's current first stage")
    args = parser.parse_args(argv)
    cache = args.cache or default_cache()
    if args.only_candidates:
        load_candidates(CLASSIFIER_TRAIN_SEEDS, args.candidates_from or args.bundle, cache, args.workers)
        return 0
    if args.recalibrate:
        record = recalibrate(args.bundle, cache, args.workers)
        print(f"recalibrated: Platt {record['platt']}, operating point {record['operating_point']}")
        return 0
    record = train(args.bundle, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                   threads=args.threads, cache=cache, workers=args.workers, candidates_from=args.candidates_from)
    print(f"trained in {record['seconds'] / 60:.1f} min; operating point {record['operating_point']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
