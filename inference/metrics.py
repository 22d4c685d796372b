"""Evaluation metrics: Dice overlap for masks and LUNA16-style FROC for nodule detections.

Pure numpy on purpose: the evaluation scripts and tests use it without torch, Qt or the viewer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# With 2.5 mm slices a 4 mm nodule's radius is under one slice, so a radius-only criterion (as LUNA16)
# would reject detections one slice off; the floor keeps small nodules matchable.
MIN_MATCH_RADIUS_MM = 4.0
DEFAULT_FP_RATES = (0.125, 0.25, 0.5, 1, 2, 4, 8)


def dice(pred: np.ndarray, ref: np.ndarray) -> float | None:
    """Dice coefficient of two boolean masks of the same shape.

    Returns None when both masks are empty (undefined, not perfect) and 0.0 when only one is.
    """
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {ref.shape}")
    total = int(pred.sum()) + int(ref.sum())
    if total == 0:
        return None
    return 2.0 * int(np.logical_and(pred, ref).sum()) / total


@dataclass
class ScanDetections:
    """One scan's detections and its reference nodules, all in LPS mm."""

    centers_lps: np.ndarray  # (n, 3)
    scores: np.ndarray  # (n,)
    truth_lps: np.ndarray  # (m, 3)
    truth_diameters_mm: np.ndarray  # (m,)

    def __post_init__(self):
        self.centers_lps = np.asarray(self.centers_lps, dtype=float).reshape(-1, 3)
        self.scores = np.asarray(self.scores, dtype=float).reshape(-1)
        self.truth_lps = np.asarray(self.truth_lps, dtype=float).reshape(-1, 3)
        self.truth_diameters_mm = np.asarray(self.truth_diameters_mm, dtype=float).reshape(-1)
        if len(self.centers_lps) != len(self.scores):
            raise ValueError("centers_lps and scores differ in length")
        if len(self.truth_lps) != len(self.truth_diameters_mm):
            raise ValueError("truth_lps and truth_diameters_mm differ in length")


def match_radius(diameter_mm) -> float:
    """Distance (mm) within which a detection centre hits a nodule of this diameter: max(d/2, 4 mm)."""
    return max(float(diameter_mm) / 2.0, MIN_MATCH_RADIUS_MM)


def _hit_matrix(scan: ScanDetections) -> tuple[np.ndarray, np.ndarray]:
    """``(distances, hits)``, both ``(n_detections, n_nodules)``."""
    dist = np.linalg.norm(scan.centers_lps[:, None, :] - scan.truth_lps[None, :, :], axis=-1)
    radii = np.array([match_radius(d) for d in scan.truth_diameters_mm])
    return dist, dist <= radii[None, :]


def froc(scans: list[ScanDetections], fp_rates=DEFAULT_FP_RATES) -> dict:
    """Free-response ROC over pooled scans, as LUNA16 computes it.

    A nodule is found at threshold t when some detection with score >= t hits it, so its effective score is
    the best score among hitting detections. A detection hitting no nodule is a false positive; one that only
    re-detects a nodule is neither TP nor FP. ``sensitivity_at[rate]`` is the highest sensitivity reached with
    FP/scan <= rate (0.0 if none); all sensitivities are None when there are no true nodules.
    ``curve`` lists ``(fp_per_scan, sensitivity, threshold)`` for each distinct score, highest first.
    """
    outcomes = [_scan_outcomes(scan) for scan in scans]
    all_scores = [float(v) for scan in scans for v in scan.scores]
    n_scans = len(scans)
    nod = np.concatenate([n for n, _ in outcomes]) if outcomes else np.zeros(0)
    fps = np.concatenate([f for _, f in outcomes]) if outcomes else np.zeros(0)
    n_nodules = len(nod)
    curve = []
    if n_nodules and n_scans:
        for threshold in sorted(set(all_scores), reverse=True):
            sens = float((nod >= threshold).sum()) / n_nodules
            fp_rate = float((fps >= threshold).sum()) / n_scans
            curve.append((fp_rate, sens, float(threshold)))

    sensitivity_at: dict = {}
    for rate in fp_rates:
        if not n_nodules:
            sensitivity_at[rate] = None
            continue
        reached = [sens for fp_rate, sens, _ in curve if fp_rate <= rate]
        sensitivity_at[rate] = max(reached) if reached else 0.0
    return {"sensitivity_at": sensitivity_at, "n_scans": n_scans, "n_nodules": n_nodules,
            "n_detections": len(all_scores), "curve": curve}


def _scan_outcomes(scan: ScanDetections) -> tuple[np.ndarray, np.ndarray]:
    """``(nodule_scores, fp_scores)`` of one scan: each true nodule's best hitting score (-inf when none hits it)
    and the scores of the detections that hit no nodule."""
    _, hits = _hit_matrix(scan)
    fp_scores = scan.scores[~hits.any(axis=1)]
    nodule_scores = np.where(hits, scan.scores[:, None], -np.inf).max(axis=0, initial=-np.inf)
    return nodule_scores.astype(float), fp_scores.astype(float)


def _sensitivities(nodule_scores: np.ndarray, fp_scores: np.ndarray, n_scans: int, fp_rates) -> np.ndarray:
    """:func:`froc`'s ``sensitivity_at`` from pooled outcomes, without the curve: at ``r`` false positives per
    scan, the nodules scoring above the ``floor(r * n_scans) + 1``-th highest false positive (a threshold at or
    below it would let one too many through)."""
    fps = np.sort(fp_scores)[::-1]
    out = np.empty(len(fp_rates))
    for i, rate in enumerate(fp_rates):
        allowed = int(np.floor(rate * n_scans + 1e-9))
        bar = fps[allowed] if allowed < len(fps) else -np.inf
        out[i] = np.count_nonzero(nodule_scores > bar) / len(nodule_scores)
    return out


def froc_confidence(scans: list[ScanDetections], fp_rates=DEFAULT_FP_RATES, resamples: int = 1000,
                    level: float = 0.95, seed: int = 0) -> dict:
    """Bootstrap confidence intervals of :func:`froc`'s sensitivities and of the CPM, as LUNA16's evaluation
    script computes them: the scans are drawn with replacement ``resamples`` times (nodules and false positives
    go with their scan, so a few hard scans widen the interval as they should) and each figure's central
    ``level`` range is reported. Seeded: the same scans give the same interval.

    Returns ``{"level", "resamples", "sensitivity_at": {rate: (lo, hi)}, "cpm": (lo, hi)}``; the intervals are
    None without nodules or with fewer than two scans (one scan drawn again and again says nothing of the next; a
    resample without nodules is skipped).
    """
    outcomes = [_scan_outcomes(scan) for scan in scans]
    empty = {"level": level, "resamples": resamples, "sensitivity_at": {rate: None for rate in fp_rates},
             "cpm": None}
    if len(outcomes) < 2 or not sum(len(n) for n, _ in outcomes):
        return empty
    rng = np.random.default_rng(seed)
    draws = np.full((resamples, len(fp_rates)), np.nan)
    for b in range(resamples):
        pick = rng.integers(0, len(outcomes), len(outcomes))
        nod = np.concatenate([outcomes[i][0] for i in pick])
        if len(nod):
            draws[b] = _sensitivities(nod, np.concatenate([outcomes[i][1] for i in pick]), len(pick), fp_rates)
    tail = 100 * (1 - level) / 2

    def interval(values: np.ndarray) -> tuple[float, float]:
        lo, hi = np.nanpercentile(values, [tail, 100 - tail])
        return round(float(lo), 3), round(float(hi), 3)

    columns = [list(fp_rates).index(rate) for rate in CPM_FP_RATES if rate in fp_rates]
    cpm_draws = draws[:, columns].mean(axis=1) if len(columns) == len(CPM_FP_RATES) else None
    return {"level": level, "resamples": resamples,
            "sensitivity_at": {rate: interval(draws[:, i]) for i, rate in enumerate(fp_rates)},
            "cpm": None if cpm_draws is None else interval(cpm_draws)}


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (e.g. the share of nodules measured within target); None for n = 0."""
    from statistics import NormalDist

    if n <= 0:
        return None
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(float(max(0.0, centre - half)), 3), round(float(min(1.0, centre + half)), 3)


def best_hits(scan: ScanDetections) -> list[dict]:
    """Per true nodule: ``found``, the best ``score`` among hitting detections (None if none) and
    ``distance_mm`` from that detection (when not found: from the nearest detection; None without detections).
    """
    dist, hits = _hit_matrix(scan)
    out: list[dict[str, Any]] = []
    for j in range(hits.shape[1]):
        idx = np.flatnonzero(hits[:, j])
        if idx.size:
            best = idx[np.argmax(scan.scores[idx])]
            out.append({"found": True, "score": float(scan.scores[best]), "distance_mm": float(dist[best, j])})
        else:
            nearest = float(dist[:, j].min()) if dist.shape[0] else None
            out.append({"found": False, "score": None, "distance_mm": nearest})
    return out


# LUNA16's competition performance metric averages the FROC sensitivity at these rates.
CPM_FP_RATES = DEFAULT_FP_RATES
SIZE_BANDS_MM = ((3.0, 6.0), (6.0, 10.0), (10.0, 20.0), (20.0, 40.0))


def cpm(sensitivity_at: dict) -> float | None:
    """Competition performance metric (LUNA16): mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 and 8 FP per scan."""
    values = [sensitivity_at[rate] for rate in CPM_FP_RATES if sensitivity_at.get(rate) is not None]
    return float(np.mean(values)) if len(values) == len(CPM_FP_RATES) else None


def banded_scans(scans: list[ScanDetections], lo: float, hi: float, last: bool = False) -> list[ScanDetections]:
    """The scans with only their nodules of ``lo`` <= d < ``hi`` mm (``last``: no upper edge) as truth, and without
    the detections that hit only other nodules (neither a hit nor a false positive for this band)."""
    banded = []
    for scan in scans:
        _, hits = _hit_matrix(scan)
        d = scan.truth_diameters_mm
        inside = (d >= lo) & ((d < hi) | last)
        other = hits[:, ~inside].any(axis=1) & ~hits[:, inside].any(axis=1)
        banded.append(ScanDetections(scan.centers_lps[~other], scan.scores[~other], scan.truth_lps[inside],
                                     scan.truth_diameters_mm[inside]))
    return banded


def froc_by_size(scans: list[ScanDetections], bands=SIZE_BANDS_MM, fp_rates=DEFAULT_FP_RATES,
                 confidence: bool = False) -> dict:
    """FROC per nodule size band: the same false positives (every detection that hits no nodule of any size)
    against the nodules of one band at a time. Keys ``"3-6"`` ...; a band includes its lower edge, the last band
    everything above it. With ``confidence``, each band also has its :func:`froc_confidence` (``"confidence"``)."""
    out = {}
    for lo, hi in bands:
        banded = banded_scans(scans, lo, hi, last=hi == bands[-1][1])
        curve = froc(banded, fp_rates)
        out[f"{lo:g}-{hi:g}"] = {"nodules": curve["n_nodules"],
                                 "sensitivity_at": curve["sensitivity_at"], "cpm": cpm(curve["sensitivity_at"])}
        if confidence:
            out[f"{lo:g}-{hi:g}"]["confidence"] = froc_confidence(banded, fp_rates)
    return out


def detection_outcomes(scan: ScanDetections) -> np.ndarray:
    """Per detection: 1 when it hits a true nodule, else 0 (the label a calibrated score predicts)."""
    if not len(scan.centers_lps):
        return np.zeros(0, int)
    if not len(scan.truth_lps):
        return np.zeros(len(scan.centers_lps), int)
    return _hit_matrix(scan)[1].any(axis=1).astype(int)


def calibration(scores, outcomes, bins: int = 10) -> dict:
    """Reliability table and expected calibration error of probabilities ``scores`` against 0/1 ``outcomes``.

    Equal-width bins over [0, 1]; ECE is the mean |observed frequency - mean score| over the bins, weighted by
    how many scores fall in each (Guo et al. 2017). Rows: ``(lo, hi, n, mean_score, observed)``.
    """
    scores = np.asarray(scores, float).reshape(-1)
    outcomes = np.asarray(outcomes, float).reshape(-1)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    rows: list[tuple[float, float, int, float | None, float | None]] = []
    ece = 0.0
    for k in range(bins):
        members = which == k
        n = int(members.sum())
        if not n:
            rows.append((float(edges[k]), float(edges[k + 1]), 0, None, None))
            continue
        mean, observed = float(scores[members].mean()), float(outcomes[members].mean())
        ece += n * abs(observed - mean)
        rows.append((float(edges[k]), float(edges[k + 1]), n, mean, observed))
    return {"ece": ece / len(scores) if len(scores) else None, "n": int(len(scores)), "table": rows}
