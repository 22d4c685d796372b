"""Is a finding's map honest? The two checks ``hounsfield evaluate --explain`` runs on a detector's findings.

The map is the one the viewer shows for the finding (:func:`inference.gradcam.explain`): occlusion of the nodule
classifier's patch for the built-in detector (:mod:`inference.occlusion`), Grad-CAM otherwise.

* **Pointing game** (Zhang et al. 2016, "Top-down neural attention by excitation backprop"): for each true nodule
  the detector found, the finding's map is a *hit* when its peak - the voxel of its maximum - lies inside that
  nodule; an empty map is a miss. The nodule is the connected component of the reference nodule mask (phantoms:
  label 4) holding the nodule, dilated by :data:`DILATE_VOXELS` voxel so a peak on the partial-volume rim of the
  nodule still counts.
* **Model-randomisation check** (Adebayo et al. 2018, "Sanity checks for saliency maps"): the same finding is
  explained again by the same model with all weights re-initialised (network and classifier; seeded by
  :data:`RANDOM_SEED`). An explanation that reflects what the model learnt must change: the Spearman rank
  correlation of the two maps is reported, and its mean over the findings should stay below
  :data:`SPEARMAN_LIMIT`. Grad-CAM maps are compared over the explained crop; occlusion maps over the classifier's
  patch, signed (the shown map keeps only the drops, and a re-initialised classifier's drops are mostly none).

Only cases with a voxel truth of the nodules (phantoms, ``hounsfield sample`` folders) are scored; LIDC studies have
readers' contours only in their XML and are skipped here. Pure numpy + the inference package: no Qt.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

DILATE_VOXELS = 1
"""The true nodule is widened by this many voxels (26-connected) before the peak is tested against it."""
RANDOM_SEED = 0
SPEARMAN_LIMIT = 0.3
POINTING_TARGET = 0.9


def rank(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ties sharing their mean rank (as ``scipy.stats.rankdata``)."""
    values = np.asarray(values).ravel()
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2.0  # ranks start..end-1 (0-based) -> mean of 1-based ranks
    ranks = np.empty(len(values), np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equally shaped arrays (0.0 when either is constant)."""
    ra, rb = rank(a), rank(b)
    ra -= ra.mean()
    rb -= rb.mean()
    norm = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / norm) if norm > 0 else 0.0


def nodule_components(mask: np.ndarray) -> np.ndarray:
    """Connected components (26-connected, 1..n; 0 = background) of a boolean nodule mask."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.asarray(mask, np.uint8))
    return sitk.GetArrayFromImage(sitk.ConnectedComponent(image, True))


def true_nodule(components: np.ndarray, affine: np.ndarray, centre_lps, diameter_mm: float,
                dilate: int = DILATE_VOXELS) -> np.ndarray | None:
    """The component of ``components`` that is the nodule at ``centre_lps``, dilated by ``dilate`` voxels.

    The component under the centre voxel; for a nodule whose centre voxel is not labelled (a thin or
    partial-volume one), the component with the most voxels within its radius. None when there is none.
    """
    inverse = np.linalg.inv(affine)
    xyz = np.asarray(centre_lps, float) @ inverse[:3, :3].T + inverse[:3, 3]
    zyx = np.clip(np.round(xyz[::-1]).astype(int), 0, np.array(components.shape) - 1)
    value = int(components[tuple(zyx)])
    if not value:
        spacing = np.linalg.norm(affine[:3, :3], axis=0)[::-1]  # z, y, x mm
        reach = np.ceil((diameter_mm / 2 + 1) / spacing).astype(int)
        low, high = np.maximum(zyx - reach, 0), zyx + reach + 1
        near = components[low[0]:high[0], low[1]:high[1], low[2]:high[2]]
        counts = np.bincount(near.ravel())
        counts[0] = 0
        if not counts.any():
            return None
        value = int(counts.argmax())
    region = components == value
    if dilate:
        import SimpleITK as sitk

        dilated = sitk.BinaryDilate(sitk.GetImageFromArray(region.astype(np.uint8)), [int(dilate)] * 3,
                                    sitk.sitkBox)
        region = sitk.GetArrayFromImage(dilated).astype(bool)
    return region


def randomised_bundle(bundle, seed: int = RANDOM_SEED):
    """A copy of ``bundle`` whose network - and its detector's classifier, when it has one - has every layer
    re-initialised (``reset_parameters``), seeded."""
    import torch

    def reinitialise(model) -> None:
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    twin = copy.copy(bundle)
    network = copy.deepcopy(bundle.network)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        reinitialise(network)
        twin.network = network
        if bundle.detector is not None:  # its own copy, reading the randomised network (a shallow copy of a torch
            # Module would share the original's submodule table, and setting its network would randomise the original)
            twin.detector = copy.deepcopy(bundle.detector, memo={id(bundle.detector.network): network})
            if getattr(twin.detector, "classifier", None) is not None:
                reinitialise(twin.detector.classifier)
    return twin


def _matched_findings(detections, nodules_lps: np.ndarray, diameters: np.ndarray) -> list[tuple[int, int]]:
    """``(nodule, detection)`` pairs: each true nodule with the highest-scoring detection that hits it."""
    from inference.metrics import match_radius

    pairs = []
    centres = detections.centers_lps
    for j, (centre, diameter) in enumerate(zip(nodules_lps, diameters)):
        if not len(centres):
            break
        hits = np.flatnonzero(np.linalg.norm(centres - centre, axis=1) <= match_radius(diameter))
        if len(hits):
            pairs.append((j, int(hits[np.argmax(detections.scores[hits])])))
    return pairs


def explain_case(bundle, case, detections, *, randomised=None, check_randomisation: bool = True) -> list[dict]:
    """Pointing game and randomisation check on the findings of ``detections`` that hit a nodule of ``case``.

    Parameters
    ----------
    bundle
        The loaded detection bundle that produced ``detections`` (:func:`inference.bundle.load_bundle`).
    case
        A :class:`viewer.core.evaluation.EvalCase` whose ``masks["nodule"]`` is the voxel truth.
    randomised
        The randomised twin of ``bundle`` (:func:`randomised_bundle`); made here when not given.

    Returns
    -------
    list of dict
        Per found nodule: ``diameter_mm``, ``score``, ``hit`` (peak inside the nodule; ``hit_undilated``: inside
        its voxels proper), ``peak_distance_mm`` (peak to nodule centre; None for an empty map), ``spearman``
        (trained vs randomised map; None when not checked) and, when checked, ``hit_randomised`` (the randomised
        model's map is a hit).
    """
    from inference.gradcam import DEFAULT_MARGIN_MM, _region, explain
    from inference.jobs import run_job
    from inference.occlusion import METHOD, explained_by_occlusion, finding_map

    truth = case.masks.get("nodule")
    if truth is None or detections is None or not len(case.nodules_lps):
        return []
    components = nodule_components(truth)
    by_occlusion = explained_by_occlusion(bundle)
    if check_randomisation and randomised is None:
        randomised = randomised_bundle(bundle)
    rows = []
    for j, k in _matched_findings(detections, case.nodules_lps, case.nodule_diameters):
        core = true_nodule(components, case.affine, case.nodules_lps[j], case.nodule_diameters[j], dilate=0)
        region = true_nodule(components, case.affine, case.nodules_lps[j], case.nodule_diameters[j])
        if region is None or core is None:
            continue
        box = detections.boxes_lps[k]
        if by_occlusion:  # the shown map and the signed one the randomisation check compares, from one pass
            (values, drop), method = finding_map(bundle.detector.classifier, case.array, case.affine, box), METHOD
        else:
            saliency = run_job(explain(bundle, case.array, case.affine, box_lps=box))
            values, method = saliency.values, saliency.method
        peak = _peak(values)
        distance = None if peak is None else float(np.linalg.norm(
            np.array(peak[::-1], float) @ case.affine[:3, :3].T + case.affine[:3, 3] - case.nodules_lps[j]))
        row: dict[str, Any] = {
            "diameter_mm": round(float(case.nodule_diameters[j]), 1),
            "score": round(float(detections.scores[k]), 3),
            "method": method,
            "hit": peak is not None and bool(region[peak]),
            "hit_undilated": peak is not None and bool(core[peak]),
            "peak_distance_mm": None if distance is None else round(distance, 1),
            "spearman": None,
        }
        if check_randomisation:
            if by_occlusion:  # the signed maps over the patch: the shown ones are clipped at 0
                other, other_drop = finding_map(randomised.detector.classifier, case.array, case.affine, box)
                row["spearman"] = round(spearman(drop, other_drop), 4)
            else:
                other = run_job(explain(randomised, case.array, case.affine, box_lps=box)).values
                crop = _region(case.array.shape, case.affine, box, None, DEFAULT_MARGIN_MM)
                row["spearman"] = round(spearman(values[crop], other[crop]), 4)
            other_peak = _peak(other)
            row["hit_randomised"] = other_peak is not None and bool(region[other_peak])
        rows.append(row)
    return rows


def _peak(values: np.ndarray) -> tuple[int, ...] | None:
    """The index of a map's maximum; None for an empty map, which points nowhere (a miss)."""
    peak = tuple(int(i) for i in np.unravel_index(int(np.argmax(values)), values.shape))
    return peak if values[peak] > 0 else None


_BUNDLES: dict[str, tuple[Any, Any]] = {}


def _bundles(info) -> tuple[Any, Any]:
    """The loaded bundle of ``info`` and its randomised twin, loaded once per evaluation process (CPU)."""
    from inference.bundle import load_bundle

    key = f"{info.id}:{info.path}"
    if key not in _BUNDLES:
        bundle = load_bundle(info, device="cpu")
        _BUNDLES[key] = (bundle, randomised_bundle(bundle))
    return _BUNDLES[key]


def explain_row(info, case, result) -> list[dict] | None:
    """:func:`explain_case` for one model's result on one case in ``hounsfield evaluate`` (None when there is
    nothing to check: not a detection, or no voxel truth of the nodules). Findings below the model's operating point
    (its model card's threshold, when it names one) are not what a reader is shown and are left out."""
    from inference.types import Detections

    if not isinstance(result, Detections) or "nodule" not in case.masks:
        return None
    point = getattr(info, "operating_point", None)
    if point is not None:
        keep = result.scores >= point
        result = copy.copy(result)
        result.boxes_lps, result.scores = result.boxes_lps[keep], result.scores[keep]
    bundle, randomised = _bundles(info)
    return explain_case(bundle, case, result, randomised=randomised)


def summarise_explain(rows: list[dict]) -> dict:
    """Pointing-game rate and mean Spearman correlation over all explained findings (JSON-ready)."""
    hits = [r["hit"] for r in rows]
    strict = [r.get("hit_undilated", r["hit"]) for r in rows]
    rhos = [r["spearman"] for r in rows if r.get("spearman") is not None]
    random_hits = [r["hit_randomised"] for r in rows if "hit_randomised" in r]
    return {
        "map": ", ".join(sorted({r.get("method", "Grad-CAM") for r in rows})) or "finding map",
        "pointing_game": {"hits": int(sum(hits)), "findings": len(hits),
                          "rate": round(float(np.mean(hits)), 4) if hits else None,
                          "target": POINTING_TARGET, "dilate_voxels": DILATE_VOXELS,
                          "rate_undilated": round(float(np.mean(strict)), 4) if strict else None,
                          "randomised_hits": int(sum(random_hits)) if random_hits else None},
        "randomisation": {"spearman_mean": round(float(np.mean(rhos)), 4) if rhos else None,
                          "spearman_max": round(float(np.max(rhos)), 4) if rhos else None,
                          "findings": len(rhos), "limit": SPEARMAN_LIMIT, "seed": RANDOM_SEED,
                          "method": "full re-initialisation"},
    }


def format_explain(summary: dict) -> list[str]:
    """The lines ``hounsfield evaluate --explain`` prints for one model."""
    game, rand = summary["pointing_game"], summary["randomisation"]
    name = summary.get("map", "finding map")
    name = name[0].upper() + name[1:]
    lines = []
    if game["findings"]:
        verdict = "ok" if game["rate"] >= game["target"] else f"below {game['target']}"
        lines.append(f"  {name} pointing game {game['hits']}/{game['findings']} found nodules = {game['rate']:.3f} "
                     f"(peak inside the true nodule, dilated {game['dilate_voxels']} voxel; {verdict}; "
                     f"{game['rate_undilated']:.3f} undilated)")
        if game.get("randomised_hits") is not None:
            lines.append(f"    the same with re-initialised weights: {game['randomised_hits']}/{game['findings']} "
                         f"(a map that follows the image, not the model, would score as high)")
    else:
        lines.append(f"  {name} pointing game: no found nodule with a voxel truth")
    if rand["findings"]:
        verdict = "ok" if rand["spearman_mean"] < rand["limit"] else f"not below {rand['limit']}"
        lines.append(f"  {name} randomisation check: Spearman trained vs re-initialised weights mean "
                     f"{rand['spearman_mean']:.3f}, max {rand['spearman_max']:.3f} over {rand['findings']} "
                     f"findings ({verdict})")
    return lines
