"""Dice and FROC on small hand-computed cases."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from inference.metrics import MIN_MATCH_RADIUS_MM, ScanDetections, best_hits, dice, froc, match_radius


def test_dice_values():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert dice(a, b) is None
    b[0, :3] = True
    assert dice(a, b) == 0.0
    assert dice(b, a) == 0.0
    a[0, :4] = True  # 4 voxels
    b[1, :3] = True  # 6 voxels, 3 shared
    assert dice(a, b) == pytest.approx(0.6)
    assert dice(a, a) == 1.0
    with pytest.raises(ValueError):
        dice(a, np.zeros((3, 3), bool))


def test_match_radius_floor():
    assert MIN_MATCH_RADIUS_MM == 4.0
    assert match_radius(4.0) == 4.0
    assert match_radius(6.0) == 4.0
    assert match_radius(20.0) == 10.0


def _two_scans() -> list[ScanDetections]:
    # Scan A: nodule 1 (d 10, r 5) at origin, nodule 2 (d 6, radius 3 but floor 4) at x=50.
    a = ScanDetections(
        centers_lps=[[1, 0, 0], [0, 2, 0], [100, 0, 0], [53.5, 0, 0]],
        scores=[0.9, 0.8, 0.7, 0.3],  # TP, duplicate of nodule 1, FP, TP only thanks to the 4 mm floor
        truth_lps=[[0, 0, 0], [50, 0, 0]],
        truth_diameters_mm=[10, 6])
    # Scan B: one nodule (d 20, r 10) at origin.
    b = ScanDetections(
        centers_lps=[[30, 0, 0], [0, 0, 9], [200, 0, 0], [-300, 0, 0]],
        scores=[0.85, 0.6, 0.5, 0.2],  # FP, TP at 9 mm, FP, FP
        truth_lps=[[0, 0, 0]],
        truth_diameters_mm=[20])
    return [a, b]


def test_froc_hand_computed():
    # Pooled by score: .9 TP | .85 FP | .8 dup | .7 FP | .6 TP | .5 FP | .3 TP | .2 FP, 3 nodules, 2 scans.
    result = froc(_two_scans())
    assert (result["n_scans"], result["n_nodules"], result["n_detections"]) == (2, 3, 8)
    expected_curve = [(0.0, 1 / 3, 0.9), (0.5, 1 / 3, 0.85), (0.5, 1 / 3, 0.8), (1.0, 1 / 3, 0.7),
                      (1.0, 2 / 3, 0.6), (1.5, 2 / 3, 0.5), (1.5, 1.0, 0.3), (2.0, 1.0, 0.2)]
    assert np.allclose(result["curve"], expected_curve)
    sens = result["sensitivity_at"]
    # A duplicate counted as FP would give 1/3 at 1 FP/scan; no 4 mm floor would give 2/3 at 2.
    assert sens[0.125] == pytest.approx(1 / 3)
    assert sens[0.5] == pytest.approx(1 / 3)
    assert sens[1] == pytest.approx(2 / 3)
    assert sens[2] == pytest.approx(1.0)
    assert sens[4] == pytest.approx(1.0)
    assert sens[8] == pytest.approx(1.0)


def test_froc_scan_without_nodules_adds_fps_and_scans():
    empty = ScanDetections(centers_lps=[[0, 0, 0]], scores=[0.95], truth_lps=np.zeros((0, 3)),
                           truth_diameters_mm=np.zeros(0))
    result = froc(_two_scans() + [empty])
    # 3 scans now: the .95 FP costs 1/3 FP/scan before the first TP, so at 0.25 nothing is found.
    assert result["n_scans"] == 3
    assert result["sensitivity_at"][0.25] == 0.0
    assert result["sensitivity_at"][0.5] == pytest.approx(1 / 3)
    # 3 FPs / 3 scans at the second TP (.6); 4 FPs / 3 scans = 1.33 at the last TP (.3).
    assert result["sensitivity_at"][1] == pytest.approx(2 / 3)
    assert result["sensitivity_at"][2] == pytest.approx(1.0)


def test_froc_edge_cases():
    no_truth = ScanDetections(centers_lps=[[0, 0, 0]], scores=[0.5], truth_lps=np.zeros((0, 3)),
                              truth_diameters_mm=np.zeros(0))
    result = froc([no_truth], fp_rates=(1, 2))
    assert result["sensitivity_at"] == {1: None, 2: None}
    no_dets = ScanDetections(centers_lps=np.zeros((0, 3)), scores=np.zeros(0), truth_lps=[[0, 0, 0]],
                             truth_diameters_mm=[8])
    result = froc([no_dets], fp_rates=(1,))
    assert result["sensitivity_at"] == {1: 0.0}
    assert result["curve"] == []


def test_best_hits():
    a, b = _two_scans()
    hits = best_hits(a)
    assert [h["found"] for h in hits] == [True, True]
    assert hits[0]["score"] == pytest.approx(0.9) and hits[0]["distance_mm"] == pytest.approx(1.0)
    assert hits[1]["score"] == pytest.approx(0.3) and hits[1]["distance_mm"] == pytest.approx(3.5)
    missed = ScanDetections(centers_lps=[[12, 0, 0], [40, 0, 0]], scores=[0.9, 0.8], truth_lps=[[0, 0, 0]],
                            truth_diameters_mm=[20])
    assert best_hits(missed) == [{"found": False, "score": None, "distance_mm": 12.0}]


def test_metrics_imports_no_torch_qt_or_viewer():
    source = Path(__file__).resolve().parents[2] / "inference" / "metrics.py"
    roots = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    assert not roots & {"torch", "PySide6", "pyqtgraph", "viewer", "scipy"}


def test_cpm_is_the_mean_over_the_seven_rates():
    from inference.metrics import cpm

    assert cpm({0.125: 0.1, 0.25: 0.2, 0.5: 0.3, 1: 0.4, 2: 0.5, 4: 0.6, 8: 0.7}) == pytest.approx(0.4)
    assert cpm({0.125: None, 0.25: 0.2, 0.5: 0.3, 1: 0.4, 2: 0.5, 4: 0.6, 8: 0.7}) is None


def test_froc_by_size_counts_each_band_against_all_false_positives():
    """A 4 mm nodule found at 0.9, a 15 mm nodule found at 0.3, one FP at 0.5: the small band reaches 1.0 at
    0 FP, the 10-20 band only once the FP is allowed (1 FP/scan); a hit on the other band's nodule is no FP."""
    from inference.metrics import froc_by_size

    scan = ScanDetections([[0, 0, 0], [100, 0, 0], [50, 50, 50]], [0.9, 0.3, 0.5],
                          [[0, 0, 0], [100, 0, 0]], [4.0, 15.0])
    bands = froc_by_size([scan])
    assert bands["3-6"]["nodules"] == 1 and bands["3-6"]["sensitivity_at"][0.125] == 1.0
    assert bands["10-20"]["nodules"] == 1
    assert bands["10-20"]["sensitivity_at"][0.5] == 0.0 and bands["10-20"]["sensitivity_at"][1] == 1.0
    assert bands["20-40"]["nodules"] == 0 and bands["20-40"]["cpm"] is None
    assert froc_by_size([ScanDetections([[0, 0, 0]], [0.5], [[0, 0, 0]], [45.0])])["20-40"]["nodules"] == 1


def test_calibration_table_and_ece_by_hand():
    from inference.metrics import calibration, detection_outcomes

    scores = [0.05, 0.05, 0.95, 0.95, 0.55, 0.55]
    outcomes = [0, 0, 1, 0, 1, 1]
    result = calibration(scores, outcomes, bins=10)
    # bins: 0.0-0.1 (2, mean 0.05, observed 0), 0.5-0.6 (2, 0.55, 1.0), 0.9-1.0 (2, 0.95, 0.5)
    assert result["ece"] == pytest.approx((2 * 0.05 + 2 * 0.45 + 2 * 0.45) / 6)
    assert [row[2] for row in result["table"]] == [2, 0, 0, 0, 0, 2, 0, 0, 0, 2]
    assert calibration([1.0], [1])["ece"] == 0.0  # a score of exactly 1 falls in the last bin
    scan = ScanDetections([[0, 0, 0], [30, 0, 0]], [0.9, 0.8], [[1, 0, 0]], [10.0])
    assert detection_outcomes(scan).tolist() == [1, 0]


def _random_scans(rng, n_scans: int) -> list[ScanDetections]:
    """Scans with 0-3 nodules, 0-14 detections (scores rounded, so ties occur), some detections on nodules,
    scored higher than most of the others (as a detector worth evaluating)."""
    scans = []
    for _ in range(n_scans):
        m, n = int(rng.integers(0, 4)), int(rng.integers(0, 15))
        truth, centres = rng.uniform(0, 100, (m, 3)), rng.uniform(0, 100, (n, 3))
        scores = rng.uniform(0, 1, n) ** 4
        for j in range(m):
            if n and rng.random() < 0.6:
                k = rng.integers(0, n)
                centres[k], scores[k] = truth[j] + rng.normal(0, 1, 3), rng.uniform(0.2, 1)
        scans.append(ScanDetections(centres, np.round(scores, 2), truth, rng.uniform(3, 30, m)))
    return scans


def test_the_bootstrap_counts_sensitivity_as_froc_does():
    """The bootstrap's fast sensitivities (no curve) equal froc's on random scans with tied scores, second hits
    and scans without nodules."""
    from inference.metrics import DEFAULT_FP_RATES, _scan_outcomes, _sensitivities

    rng = np.random.default_rng(3)
    compared = 0
    for _ in range(200):
        scans = _random_scans(rng, int(rng.integers(1, 10)))
        curve = froc(scans)
        if not curve["n_nodules"]:
            continue
        outcomes = [_scan_outcomes(s) for s in scans]
        fast = _sensitivities(np.concatenate([n for n, _ in outcomes]), np.concatenate([f for _, f in outcomes]),
                              len(scans), DEFAULT_FP_RATES)
        assert fast == pytest.approx([curve["sensitivity_at"][r] for r in DEFAULT_FP_RATES])
        compared += 1
    assert compared > 150


def test_froc_confidence_brackets_the_figure_and_narrows_with_more_scans():
    from inference.metrics import cpm, froc_confidence

    rng = np.random.default_rng(4)
    few, many = _random_scans(rng, 15), _random_scans(rng, 240)
    for scans in (few, many):
        ci, curve = froc_confidence(scans), froc(scans)
        lo, hi = ci["sensitivity_at"][1]
        assert lo <= curve["sensitivity_at"][1] <= hi and lo < hi
        assert ci["cpm"][0] <= cpm(curve["sensitivity_at"]) <= ci["cpm"][1]
    width = [froc_confidence(s)["cpm"][1] - froc_confidence(s)["cpm"][0] for s in (few, many)]
    assert width[1] < 0.6 * width[0]  # 16x the scans: about a quarter of the width
    assert froc_confidence(few) == froc_confidence(few)  # seeded
    # a perfect detector: every resample finds every nodule
    perfect = [ScanDetections([[0, 0, 0]], [0.9], [[0, 0, 0]], [8.0]) for _ in range(5)]
    assert froc_confidence(perfect)["sensitivity_at"][0.125] == (1.0, 1.0)
    assert froc_confidence([])["cpm"] is None and froc_confidence(perfect[:1])["cpm"] is None
    assert froc_confidence([ScanDetections([[0, 0, 0]], [0.5], np.zeros((0, 3)), [])])["cpm"] is None


def test_wilson_interval_by_hand():
    from inference.metrics import wilson_interval

    # 69 of 106 (p = 0.651, z = 1.96): centre 0.6457, half-width 0.0893
    assert wilson_interval(69, 106) == (0.556, 0.735)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) is None
