"""Occlusion sensitivity of a finding's score: which part of the finding's patch the nodule classifier relies on.

A finding of the built-in nodule detector is scored by its second stage
(:class:`inference.models.nodule_classifier.NoduleClassifier`) on a 32^3 patch around the finding. Its map is made
the direct way (Zeiler & Fergus 2014; ``monai.visualize.OcclusionSensitivity``): a Gaussian occluder is slid over the
patch (stride half its size) and each voxel gets the mean drop of the classifier's logit while the voxels around it
are hidden; two occluder sizes (:data:`MASK_VOXELS`) are averaged. Hot means "without this, the finding scores
lower".

Why occlusion rather than the Grad-CAM family that explains the segmentation network:

* it explains the score the reader is shown (the classifier's), not the first stage's nodule logit;
* it passes the model-randomisation sanity check (Adebayo et al. 2018). On the 36 nodules found on the evaluation
  phantoms (``make evaluate``) the Spearman correlation of the trained and the re-initialised classifier's maps is
  0.039 (HiResCAM of the segmentation network: 0.450, because the image and the box shape those maps more than the
  weights); the trained maps peak inside the nodule for all 36, the re-initialised ones for none.

A finding whose score does not drop wherever an occluder goes gets an empty map, and the job says so; an empty map
is the honest answer there. It happens to large nodules: the classifier pools its features by their maximum, and an
8-voxel hole leaves enough nodule (2 of 33 found nodules measured with that occluder alone; 1 with both sizes).

The map is resampled from the patch onto the study's grid (trilinear), fades to zero over the patch's outer
:data:`TAPER_VOXELS` (no hard edge) and is scaled to a maximum of 1.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Generator
from typing import Any

import numpy as np

from inference.jobs import Progress
from inference.task import Reporter, drive
from inference.types import SaliencyMap

MASK_VOXELS = (8, 16)
"""Sides of the occluders, in patch voxels (1-2 mm each): about a small nodule, and half the patch. The map is the
mean of both: the larger one also lowers the score of a large nodule, where every small hole leaves enough of it."""
OVERLAP = 0.5
MIN_DROP = 0.01
"""A largest drop of the logit below this (about 1 % of the odds) is no drop: the map is empty."""
TAPER_VOXELS = 4
METHOD = "occlusion"


def explained_by_occlusion(bundle) -> bool:
    """Whether ``bundle``'s findings are explained here: a detector with a nodule classifier as its second stage."""
    return bundle.task == "detection" and getattr(bundle.detector, "classifier", None) is not None


def drop_map(classifier, patch: np.ndarray, scalars: np.ndarray) -> np.ndarray:
    """``(32, 32, 32)`` float32, axes (S, P, L): the classifier's logit minus its logit with each voxel's
    neighbourhood occluded (positive: hiding it lowers the score), the mean over :data:`MASK_VOXELS`. Signed,
    unscaled, smooth: each occluder's map is constant between its steps, so it is smoothed over half a step."""
    import torch
    from monai.visualize import OcclusionSensitivity

    device = next(classifier.parameters()).device
    extra = torch.from_numpy(np.asarray(scalars, np.float32))[None].to(device)

    class Logit(torch.nn.Module):  # OcclusionSensitivity calls a model of the image alone, (B, classes) out
        def forward(self, x):
            return classifier(x, extra.expand(len(x), -1))[:, None]

    x = torch.from_numpy(np.asarray(patch, np.float32))[None].to(device)
    classifier.eval()
    total = np.zeros(x.shape[2:], np.float64)
    with torch.no_grad():
        base = float(classifier(x, extra)[0])
        for size in MASK_VOXELS:
            with warnings.catch_warnings():  # MONAI indexes tensors with lists: a torch deprecation warning per
                # call, from MONAI's code (the maps are checked against the nodules in tests/inference/test_occlusion)
                warnings.filterwarnings("ignore", "Using a non-tuple sequence", UserWarning)
                occluded, _ = OcclusionSensitivity(Logit(), mask_size=size, n_batch=64, verbose=False,
                                                   mode="gaussian", overlap=OVERLAP, activate=False)(x)
            total += smoothed(base - occluded[0, 0].cpu().numpy().astype(np.float64), size * (1 - OVERLAP) / 2)
    return (total / len(MASK_VOXELS)).astype(np.float32)


def smoothed(values: np.ndarray, sigma: float) -> np.ndarray:
    """``values`` convolved with a Gaussian of ``sigma`` voxels along each axis (edges extended)."""
    radius = int(np.ceil(2.5 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    for axis in range(values.ndim):
        padded = np.pad(values, [(radius, radius) if a == axis else (0, 0) for a in range(values.ndim)], mode="edge")
        n = values.shape[axis]
        values = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(kernel))
    return values


def finding_drop_map(classifier, array: np.ndarray, affine: np.ndarray, box_lps) -> tuple[np.ndarray, np.ndarray,
                                                                                          float]:
    """:func:`drop_map` of the finding in ``box_lps``, with the patch's centre (LPS mm) and spacing (mm)."""
    from inference.models.nodule_classifier import candidate_inputs, patch_spacing

    box = np.asarray(box_lps, float)
    centre, extent = (box[:3] + box[3:]) / 2, float((box[3:] - box[:3]).max())
    patch, scalars = candidate_inputs(array, affine, centre, extent)
    return drop_map(classifier, patch, scalars), centre, patch_spacing(extent)


def _taper(size: int, width: int = TAPER_VOXELS) -> np.ndarray:
    """``(size,)`` raised-cosine weights: 0 at the patch's faces, 1 from ``width`` voxels in."""
    index = np.arange(size, dtype=np.float64)
    ramp = np.clip(np.minimum(index + 0.5, size - 0.5 - index) / width, 0, 1)
    return (0.5 - 0.5 * np.cos(np.pi * ramp)).astype(np.float32)


def place_on_grid(values: np.ndarray, centre_lps, spacing_mm: float, shape, affine: np.ndarray) -> np.ndarray:
    """A patch map (axes S, P, L around ``centre_lps``) on the study grid ``shape`` / ``affine``, trilinear,
    zero outside the patch. SimpleITK's ``Resample`` gives the same values (tests/inference/test_occlusion.py) but
    visits every voxel of the study; this visits the patch's block only."""
    from inference.models.nodule_classifier import trilinear

    size = values.shape[0]
    centre = np.asarray(centre_lps, float)
    half = size / 2 * spacing_mm
    corners = np.array([[x, y, z] for x in (-half, half) for y in (-half, half) for z in (-half, half)]) + centre
    inverse = np.linalg.inv(affine)
    ijk = corners @ inverse[:3, :3].T + inverse[:3, 3]  # x, y, z
    low = np.maximum(np.floor(ijk.min(axis=0)), 0).astype(int)
    high = np.minimum(np.ceil(ijk.max(axis=0)) + 1, np.array(shape[::-1])).astype(int)
    out = np.zeros(shape, np.float32)
    if np.any(high <= low):
        return out
    xs, ys = np.meshgrid(np.arange(low[0], high[0]), np.arange(low[1], high[1]), indexing="xy")  # (y, x) planes
    plane = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], axis=1) @ affine[:3, :3].T + affine[:3, 3]
    for z in range(low[2], high[2]):  # slice by slice: a fine grid's block would take a GB as one array
        lps = plane + z * affine[:3, 2]
        at = (lps - centre) / spacing_mm + (size - 1) / 2  # patch index along L, P, S
        out[z, low[1]:high[1], low[0]:high[0]] = trilinear(values, at[:, ::-1], outside=0.0).reshape(xs.shape)
    return out


def finding_map(classifier, array: np.ndarray, affine: np.ndarray, box_lps) -> tuple[np.ndarray, np.ndarray]:
    """``(shown, signed)``: the map shown for the finding in ``box_lps`` - the drops, tapered, on the study's grid,
    scaled to a maximum of 1, all zero when none reaches :data:`MIN_DROP` - and the signed :func:`drop_map` over the
    patch it came from (what the randomisation check compares)."""
    drop, centre, spacing = finding_drop_map(classifier, array, affine, box_lps)
    taper = _taper(drop.shape[0])
    shown = np.clip(drop, 0, None) * taper[:, None, None] * taper[None, :, None] * taper[None, None, :]
    if shown.max() < MIN_DROP:
        return np.zeros(array.shape, np.float32), drop
    values = place_on_grid(shown, centre, spacing, array.shape, affine)
    values /= max(float(values.max()), 1e-12)  # scaled on the study's grid, whose voxels miss the patch's peak a bit
    return values, drop


def explain_finding(bundle, array: np.ndarray, affine: np.ndarray, box_lps, *, target_name: str | None = None,
                    cancel: Any = None) -> Generator[Progress, None, SaliencyMap]:
    """Occlusion map of one finding of ``bundle`` (:func:`explained_by_occlusion`) as a job returning a
    :class:`SaliencyMap` on the study's grid (all zero when no occlusion lowers the score)."""
    array = np.asarray(array)
    affine = np.asarray(affine, dtype=np.float64)

    def work(reporter: Reporter) -> SaliencyMap:
        start = time.perf_counter()
        reporter.progress(0, 2, "Hiding each part of the finding's patch")
        values, _ = finding_map(bundle.detector.classifier, array, affine, box_lps)
        reporter.check()
        seconds = time.perf_counter() - start
        reporter.progress(2, 2, f"Done in {seconds:.1f} s" if values.any() else
                          "No part of the finding's patch lowers its score when hidden: the map is empty")
        return SaliencyMap(values, affine, target=target_name, model_id=bundle.info.id, method=METHOD)

    return (yield from drive(work, cancel))
