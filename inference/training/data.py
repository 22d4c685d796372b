"""Training data for the built-in models: phantoms pushed through a bundle's own preprocessing, and patches.

Each training case is a phantom generated at a randomised acquisition grid (pixel 0.6-0.95 mm, slices 0.625-5
mm, field of view 320-380 mm) and then passed through *the bundle's* ``preprocessing`` exactly as
:mod:`inference.task` passes a study, so the network is trained on the tensors it will see at run time. The
label map is resampled (nearest) onto the same grid. Cases are cached as ``.npz`` (``image`` float16 and
``labels`` uint8, both ``(x, y, z)`` in the bundle's RAS tensor order).

Seeds: training uses :data:`TRAIN_SEEDS`; the nodule classifier is calibrated on :data:`CALIBRATION_SEEDS`;
evaluation uses :data:`EVAL_SEEDS` and the demo seed. The three sets are disjoint.
The nodule classifier trains on the network's phantoms and 100 more (:data:`CLASSIFIER_TRAIN_SEEDS`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.training.phantom import DEMO_SEED, GENERATOR_REVISION, PHANTOM_VERSION, generate_phantom

TRAIN_SEEDS = tuple(range(1000, 1096))
CALIBRATION_SEEDS = tuple(range(4000, 4060))  # 160 nodules to fit the calibration on (20 phantoms had 56)
# 60 phantoms (185 nodules): with 20 (57 nodules) one nodule moved sensitivity by 0.018, and two sets of 20 differed by
# 0.17 at 1 FP per scan, more than any change being measured
EVAL_SEEDS = tuple(range(5000, 5060))
# The classifier also learns from phantoms the network never saw: 24 phantoms (some 240 positives) left it scoring
# half of the proposed nodules under 0.15; 196 instead of 96 found 7 more of the evaluation phantoms' 185 nodules
# at 1 FP per scan (0.659 -> 0.697)
CLASSIFIER_TRAIN_SEEDS = tuple(range(1000, 1196))
NODULE = 4
assert DEMO_SEED not in TRAIN_SEEDS and not set(EVAL_SEEDS) & set(TRAIN_SEEDS)
assert not set(CALIBRATION_SEEDS) & (set(CLASSIFIER_TRAIN_SEEDS) | set(EVAL_SEEDS) | {DEMO_SEED})
assert not set(CLASSIFIER_TRAIN_SEEDS) & (set(EVAL_SEEDS) | {DEMO_SEED})

# Reconstructed slice intervals of chest CTs (thin 0.625-1.25 mm for screening and nodules, 2-3 mm routine,
# 5 mm old or overview series) and how often a phantom gets each.
SLICE_MM = (0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0)
SLICE_WEIGHTS = (0.1, 0.15, 0.2, 0.15, 0.2, 0.1, 0.1)


def acquisition_grid(seed: int) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """A random but reproducible ``(shape, spacing)`` ``(z, y, x)`` for phantom ``seed``."""
    rng = np.random.default_rng([PHANTOM_VERSION, GENERATOR_REVISION, 77, int(seed)])
    pixel = float(np.round(rng.uniform(0.6, 0.95), 3))
    slice_mm = float(rng.choice(SLICE_MM, p=SLICE_WEIGHTS))
    fov = float(rng.uniform(320, 380))
    n_xy = int(round(fov / pixel))
    n_z = int(round(rng.uniform(280, 340) / slice_mm))
    return (n_z, n_xy, n_xy), (slice_mm, pixel, pixel)


@dataclass
class Case:
    """One preprocessed training case: ``image`` float32 and ``labels`` uint8, ``(x, y, z)`` tensor order."""

    image: np.ndarray
    labels: np.ndarray
    seed: int
    affine_ras: np.ndarray

    def nodule_boxes(self) -> np.ndarray:
        """``(n, 6)`` voxel boxes ``x0 y0 z0 x1 y1 z1`` of the nodules (connected label-4 components).

        Edges lie half a voxel outside the outermost voxel centres, the convention of MONAI's box transforms
        (voxel ``i`` is centred at coordinate ``i``).
        """
        return nodule_boxes(self.labels)


def nodule_boxes(labels_xyz: np.ndarray) -> np.ndarray:
    """Boxes of the 26-connected label-:data:`NODULE` components of a ``(x, y, z)`` label map."""
    import SimpleITK as sitk

    mask = (labels_xyz == NODULE).astype(np.uint8)
    if not mask.any():
        return np.zeros((0, 6), np.float32)
    components = sitk.ConnectedComponent(sitk.GetImageFromArray(mask), True)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(components)
    boxes = []
    for label in stats.GetLabels():
        # SimpleITK sees the (x, y, z) array as (k, j, i): reverse its bounding box back to our axis order
        i0, j0, k0, si, sj, sk = stats.GetBoundingBox(label)
        start = np.array([k0, j0, i0], float)
        size = np.array([sk, sj, si], float)
        boxes.append(np.concatenate([start - 0.5, start + size - 0.5]))
    return np.asarray(boxes, np.float32)


def prepare_case(seed: int, preprocessing, grid: tuple | None = None) -> Case:
    """Generate phantom ``seed`` and pass it through ``preprocessing`` (a bundle's, keyed ``image``)."""
    from monai.transforms import EnsureChannelFirst

    from inference.geometry import resample_to_grid, to_monai

    shape, spacing = grid or acquisition_grid(seed)
    phantom = generate_phantom(seed, shape=shape, spacing=spacing)
    data = preprocessing({"image": to_monai(phantom.hu, phantom.affine)})
    image = data["image"]
    labels = EnsureChannelFirst()(to_monai(phantom.labels, phantom.affine))
    target = image.affine.detach().cpu().numpy().astype(np.float64)
    labels = resample_to_grid(labels, target, tuple(image.shape[1:]), mode="nearest")
    return Case(image[0].numpy().astype(np.float32), np.rint(labels[0].numpy()).astype(np.uint8), seed, target)


def cache_path(cache_dir: Path, seed: int) -> Path:
    return Path(cache_dir) / f"case-{PHANTOM_VERSION}.{GENERATOR_REVISION}-{seed}.npz"


_worker_preprocessing = None


def _init_worker(bundle_dir: str) -> None:
    global _worker_preprocessing
    from inference.bundle import load_bundle
    from inference.device import configure_threads

    configure_threads(1)
    _worker_preprocessing = load_bundle(bundle_dir, device="cpu", random_weights=True).preprocessing


def _write_case(job: tuple[int, str]) -> str:
    seed, path = job
    case = prepare_case(seed, _worker_preprocessing)
    tmp = Path(path).with_suffix(".tmp.npz")
    np.savez(tmp, image=case.image.astype(np.float16), labels=case.labels, affine=case.affine_ras)
    tmp.replace(path)
    return f"seed {seed}: {case.image.shape}"


def fill_cache(jobs: list[tuple], write, initializer, initargs, workers: int, log, what: str) -> None:
    """Make the cached files that are missing: ``write(job)`` in ``workers`` processes (each set up once by
    ``initializer(*initargs)``) for every job whose file, ``job[1]``, does not exist yet; logs one line per file."""
    from concurrent.futures import ProcessPoolExecutor

    missing = [job for job in jobs if not Path(job[1]).is_file()]
    if not missing:
        return
    log(f"{what}: {len(missing)} to make")
    with ProcessPoolExecutor(max(1, workers), initializer=initializer, initargs=initargs) as pool:
        for n, message in enumerate(pool.map(write, missing)):
            log(f"  {n + 1}/{len(missing)} {message}")


def load_cases(seeds, bundle_dir: str | Path, cache_dir: str | Path, workers: int = 2, log=print) -> list[Case]:
    """The cases of ``seeds`` preprocessed by the bundle in ``bundle_dir``; generated once (in ``workers``
    processes), then read from ``cache_dir``.

    The cache key is the seed and phantom version only: use one cache folder per preprocessing.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fill_cache([(seed, str(cache_path(cache_dir, seed))) for seed in seeds], _write_case, _init_worker,
               (str(bundle_dir),), workers, log, f"phantom cases in {cache_dir}")
    cases = []
    for seed in seeds:
        with np.load(cache_path(cache_dir, seed)) as npz:
            cases.append(Case(npz["image"].astype(np.float32), npz["labels"], seed, npz["affine"]))
    return cases


def random_patch(rng: np.random.Generator, case: Case, size: tuple[int, int, int], nodule_fraction: float,
                 boxes: np.ndarray | None = None):
    """A ``size`` crop of ``case`` (zero padded where it leaves the volume), centred on a nodule with
    probability ``nodule_fraction``, else on a random point of the body.

    Returns ``(image, labels, offset)``; ``offset`` is the volume voxel at the crop's first voxel.
    """
    shape = np.array(case.image.shape)
    extent = np.array(size)
    boxes = case.nodule_boxes() if boxes is None else boxes
    if len(boxes) and rng.random() < nodule_fraction:
        box = boxes[rng.integers(len(boxes))]
        centre = (box[:3] + box[3:]) / 2 + rng.uniform(-0.35, 0.35, 3) * extent
    else:
        centre = rng.uniform(0.15, 0.85, 3) * shape
    start = np.rint(centre - extent / 2).astype(int)
    image = np.zeros(tuple(extent), np.float32)
    labels = np.zeros(tuple(extent), np.uint8)
    src = [slice(max(s, 0), min(s + n, m)) for s, n, m in zip(start, extent, shape)]
    dst = [slice(a.start - s, a.stop - s) for a, s in zip(src, start)]
    image[tuple(dst)] = case.image[tuple(src)]
    labels[tuple(dst)] = case.labels[tuple(src)]
    return image, labels, start


#: The network's input scale: image = (HU + 1000) / 1400 (the bundles' ScaleIntensityRanged over -1000..400 HU).
HU_PER_UNIT = 1400.0
#: Share of training patches given intravenous contrast (:func:`augment_batch`, and the nodule classifier's).
CONTRAST_SHARE = 0.3
#: Intravenous contrast as the augmentations draw it: soft tissue in this HU range (vessels, heart) ...
CONTRAST_TISSUE_HU = (-100.0, 100.0)
#: ... gets this much brighter (HU, uniform) outside a nodule, and a nodule this much.
CONTRAST_VESSEL_GAIN_HU = (100.0, 350.0)
CONTRAST_NODULE_GAIN_HU = (0.0, 50.0)


def augment_batch(images, labels, rng: np.random.Generator, generator, nodule_label: int = NODULE):
    """Scanner-to-scanner variation on a batch of scaled images ``(B, 1, x, y, z)`` (a torch tensor on any device):
    contrast, offset and, in half, extra noise; in :data:`CONTRAST_SHARE`, intravenous contrast - soft tissue
    (-100..100 HU: vessels, heart) 100-350 HU brighter, nodules (``labels == nodule_label``) 0-50 HU. The phantoms
    have no contrast, and real chest CTs often do: a network that never saw an enhanced vessel calls its branchings
    nodules. Per-sample draws come from ``rng``, the noise from the torch ``generator`` (on the images' device)."""
    import torch

    out = images.clone()
    soft = [(hu + 1000) / HU_PER_UNIT for hu in CONTRAST_TISSUE_HU]
    for b in range(out.shape[0]):
        x = out[b]
        if rng.random() < CONTRAST_SHARE:
            vessel = rng.uniform(*CONTRAST_VESSEL_GAIN_HU) / HU_PER_UNIT
            nodule = rng.uniform(*CONTRAST_NODULE_GAIN_HU) / HU_PER_UNIT
            tissue = (x > soft[0]) & (x < soft[1])
            x += torch.where(labels[b] == nodule_label, nodule, vessel) * tissue
        x.mul_(float(rng.uniform(0.92, 1.08))).add_(float(rng.uniform(-0.03, 0.03)))
        if rng.random() < 0.5:
            sigma = float(rng.uniform(0.005, 0.025))
            x += sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return out.clamp_(0, 1)


def schedule(step: int, total: int, base: float, warmup: int = 50) -> float:
    """Learning rate: linear warm-up then cosine decay to 2 % of ``base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))
