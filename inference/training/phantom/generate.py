"""``generate_phantom``: one seed through anatomy, trees, rendering, nodules, mimics and acquisition.

Every part draws from its own random stream, spawned from ``(PHANTOM_VERSION, seed)``, so a change to one part
(a new lesion type, a wider protocol) leaves the others as they were: the anatomy of every seed, and the whole
demo study, are still those of phantom v1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.training.phantom.acquisition import acquire, widen_protocol
from inference.training.phantom.anatomy import Anatomy
from inference.training.phantom.mimics import render_mimics
from inference.training.phantom.nodules import DEMO_SEED, draw_nodules, nodule_plan, place_nodules
from inference.training.phantom.render import render_anatomy
from inference.training.phantom.trees import Trees, grow_trees
from inference.training.phantom.truth import PHANTOM_VERSION, Phantom
from inference.types import float3, int3

DEFAULT_SHAPE = (128, 384, 384)
"""``(z, y, x)`` voxels of the default grid: 320 x 346 x 346 mm covers apex to upper abdomen of an adult chest."""
DEFAULT_SPACING = (2.5, 0.9, 0.9)
"""``(z, y, x)`` mm: a routine chest CT reconstruction (slices 2.5 mm, pixels 0.9 mm over a 346 mm field)."""


def generate_phantom(seed: int = 0, shape: tuple[int, int, int] = DEFAULT_SHAPE,
                     spacing: tuple[float, float, float] = DEFAULT_SPACING, *, n_nodules: int | None = None,
                     noise: bool = True) -> Phantom:
    """Generate one synthetic chest CT with its ground truth.

    Parameters
    ----------
    seed
        Everything (anatomy, trees, nodules, noise) follows from it: the same seed, shape and spacing give the
        identical volume. Seed ``DEMO_SEED`` (0) has a fixed plan of four clearly visible nodules.
    shape, spacing
        ``(z, y, x)`` grid and voxel size (mm). Anatomy is defined in mm, so a coarser grid (for fast training)
        shows the same kind of chest; the default is a routine 2.5 mm / 0.9 mm chest CT.
    n_nodules
        Force the number of nodules (default: random 0-6, or the demo plan for seed 0).
    noise
        Add CT noise (switch off to get the blurred noiseless image).

    Returns
    -------
    Phantom
        ``hu`` int16 and ``labels`` uint8 ``(z, y, x)``, ``spacing``, ``origin_lps``, ``nodules`` (LPS).
    """
    base = prepare_base(seed, shape, spacing, n_nodules)
    nodules = draw_nodules(base.rng_nodule, base.clean, base.labels, base.spacing, base.placed, base.origin)
    mimics = draw_mimics(base, base.rng_mimic, base.clean, base.labels)
    hu = acquire(base.rng_noise, base.clean, base.anatomy, base.spacing, noise)
    return Phantom(hu=hu, labels=base.labels, spacing=base.spacing, origin_lps=float3(base.origin),
                   nodules=nodules, seed=int(seed), info=phantom_info(base, mimics))


@dataclass(eq=False)
class PhantomBase:
    """A phantom before its nodules, mimics and acquisition: what ``generate_phantom`` and the follow-up study
    (:mod:`inference.training.phantom.followup`) share. ``clean``/``labels`` are the noiseless image and the label
    map without nodules; the ``rng_*`` streams are at the state the nodules, mimics and noise start from."""

    seed: int
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    anatomy: Anatomy
    trees: Trees
    clean: np.ndarray
    labels: np.ndarray
    placed: list
    pool: np.ndarray
    origin: np.ndarray
    demo: bool
    protocol: dict
    rng_nodule: np.random.Generator
    rng_noise: np.random.Generator
    rng_mimic: np.random.Generator


def prepare_base(seed: int, shape, spacing, n_nodules: int | None) -> PhantomBase:
    """Anatomy, trees, the rendered noiseless image and the nodule placement of ``seed`` (see ``generate_phantom``)."""
    shape = int3(shape)
    spacing = float3(spacing)
    # spawn(8)'s first six children are v1's spawn(6): the anatomy of every seed is that of v1
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([PHANTOM_VERSION, int(seed)]).spawn(8)]
    rng_anatomy, rng_tree, rng_plan, rng_nodule, rng_noise, rng_field, rng_protocol, rng_mimic = streams
    anatomy = Anatomy(rng_anatomy, shape, spacing)
    demo = seed == DEMO_SEED and n_nodules is None
    protocol = {} if demo else widen_protocol(rng_protocol, anatomy)
    trees = grow_trees(rng_tree, anatomy)
    clean, labels = render_anatomy(rng_field, anatomy, trees, shape, spacing)

    plan = nodule_plan(rng_plan, int(seed), n_nodules)
    pool = np.concatenate([trees.lung_points[1], trees.lung_points[2]])
    placed = place_nodules(rng_nodule, anatomy, plan, pool, trees.vessels)
    sz, sy, sx = spacing
    origin = np.array([-(shape[2] - 1) * sx / 2, -(shape[1] - 1) * sy / 2, -(shape[0] - 1) * sz - 40.0])
    origin += np.round(rng_plan.uniform(-10, 10, 3), 1)
    return PhantomBase(int(seed), shape, spacing, anatomy, trees, clean, labels, placed, pool, origin, demo, protocol,
                       rng_nodule, rng_noise, rng_mimic)


def draw_mimics(base: PhantomBase, rng, clean: np.ndarray, labels: np.ndarray) -> list:
    """The hard negatives of ``base`` drawn into ``clean`` (none for the demo seed), kept clear of its nodules."""
    if base.demo:
        return []
    return render_mimics(rng, clean, labels, base.spacing, base.pool, base.anatomy,
                         [(c, r) for c, r, *_ in base.placed])


def phantom_info(base: PhantomBase, mimics: list) -> dict:
    """The ``Phantom.info`` of ``base``."""
    anatomy, trees = base.anatomy, base.trees
    return {"contrast": anatomy.contrast, "noise_sigma_hu": round(anatomy.noise_sigma, 1),
            "noise_f0_per_mm": round(anatomy.noise_f0, 3), "psf_mm": round(anatomy.psf_mm, 2),
            "inspiration": round(anatomy.inspiration, 3), "lung_hu": round(anatomy.hu["lung"], 1),
            "fov_circle": anatomy.fov_circle, "table": anatomy.table,
            "vessel_segments": int(len(trees.vessels[0])),
            "airway_segments": int(len(trees.airway_lumen[0])),
            "mimics": mimics, **base.protocol}
