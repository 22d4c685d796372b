"""``hounsfield evaluate``: references, scoring and the report, on real data with the built-in models."""
from __future__ import annotations

import json

import numpy as np
import pytest

from viewer.cli import main
from viewer.core.evaluation import lung_reference, parse_seeds
from viewer.core.sample import DEMO_MODELS


def test_seed_ranges():
    assert parse_seeds("5000-5002,7") == [5000, 5001, 5002, 7]


def test_threshold_lung_reference_on_lidc(lidc_dir):
    from tests.inference.helpers import real_volume

    _, volume = real_volume("lidc-idri-0001")
    lungs = lung_reference(volume.array)
    ml = lungs.sum() * np.prod(volume.spacing) / 1000
    assert 3000 < ml < 8000, ml  # an adult pair of lungs
    assert not lungs[:, :5].any() and not lungs[:, :, :5].any()  # nothing of the air around the patient
    assert np.median(volume.array[lungs]) < -700  # mostly aerated lung, vessels put back


def test_evaluate_cli_on_phantoms_and_lidc(lidc_dir, tmp_path, capsys):
    """The reduced evaluation CI runs: two unseen phantoms and LIDC-0001, both built-in models, issue targets."""
    out = tmp_path / "report.json"
    assert main(["evaluate", "--model", DEMO_MODELS[1], "--model", DEMO_MODELS[0], "phantom:5001,5003",
                 str(lidc_dir), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "sensitivity at 1/8 1/4 1/2 1 2 4 8 FP per scan" in printed and "Dice lung_left" in printed
    assert "CPM" in printed and "expected calibration error" in printed and "operating point" in printed
    report = json.loads(out.read_text())
    seg, det = report[DEMO_MODELS[1]], report[DEMO_MODELS[0]]
    phantoms = [c for c in seg["cases"] if c["case"].startswith("phantom")]
    for case in phantoms:
        assert case["dice"]["lung_left"] >= 0.95 and case["dice"]["lung_right"] >= 0.95, case["dice"]
    lidc = [c for c in seg["cases"] if not c["case"].startswith("phantom")][0]
    assert lidc["dice"]["lungs+airways"] >= 0.9, lidc["dice"]
    lidc_det = [c for c in det["cases"] if not c["case"].startswith("phantom")][0]
    assert lidc_det["nodules"] and lidc_det["nodules"][0]["found"], lidc_det["nodules"]
    # the issue's bar on the one real scan: the readers' nodule with at most 2 other findings at the default threshold
    op = lidc_det["at_operating_point"]
    assert lidc_det["nodules"][0]["score"] >= op["score"] and op["false_positives"] <= 2, op
    sensitivity = det["summary"]["detection"]["sensitivity_at_fp_per_scan"]
    assert sensitivity["1"] >= 0.75, sensitivity  # 4 nodules of 12-33 mm in three scans
    assert det["summary"]["detection"]["calibration"]["n"] == det["summary"]["detection"]["detections"]


def test_detector_summary_reports_cpm_bands_calibration_and_the_operating_point():
    """Two scans by hand: a 4 mm nodule found at 0.9, a 25 mm one at 0.6, a false positive at 0.7 and one at
    0.1. At the operating point 0.5 both nodules are found with 0.5 false positives per scan."""
    from inference.metrics import ScanDetections, froc
    from viewer.core.evaluation import _detector_lines, detector_summary

    scans = [ScanDetections([[0, 0, 0], [60, 0, 0]], [0.9, 0.7], [[0, 0, 0]], [4.0]),
             ScanDetections([[0, 0, 0], [80, 80, 0]], [0.6, 0.1], [[1, 0, 0]], [25.0])]
    summary = detector_summary(scans, froc(scans), operating_point=0.5)
    assert summary["sensitivity_at_fp_per_scan"]["0.5"] == 1.0 and summary["cpm"] == pytest.approx(
        np.mean([0.5, 0.5, 1, 1, 1, 1, 1]))
    assert summary["by_size_mm"]["3-6"]["nodules"] == 1 and summary["by_size_mm"]["20-40"]["nodules"] == 1
    assert summary["by_size_mm"]["6-10"]["nodules"] == 0
    assert summary["operating_point"] == {"score": 0.5, "found": 2, "sensitivity": 1.0,
                                          "false_positives_per_scan": 0.5}
    assert summary["calibration"]["n"] == 4
    # bins 0.1 (FP), 0.6 (TP), 0.7 (FP), 0.9 (TP): |0-0.1| + |1-0.6| + |0-0.7| + |1-0.9| over 4
    assert summary["calibration"]["ece"] == pytest.approx((0.1 + 0.4 + 0.7 + 0.1) / 4)
    # resampling two scans: both nodules found in every draw below 1 FP/scan, so the interval is a point there
    assert summary["ci95"]["sensitivity_at_fp_per_scan"]["1"] == (1.0, 1.0)
    assert summary["ci95"]["cpm"][0] <= summary["cpm"] <= summary["ci95"]["cpm"][1]
    assert summary["by_size_mm"]["3-6"]["ci95"]["sensitivity_at_fp_per_scan"]["1"] == (1.0, 1.0)
    text = "\n".join(_detector_lines({"nodules": 2, **summary}))
    assert "CPM" in text and "3-6 mm" in text and "operating point" in text and "expected calibration error" in text
    assert "95 % intervals (scans resampled 1000 times): sensitivity at 1 FP/scan [1.00, 1.00]" in text
