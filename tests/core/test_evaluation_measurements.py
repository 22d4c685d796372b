"""``hounsfield evaluate`` scores the nodule measurements against the phantom's exact masks (issue 11)."""
from __future__ import annotations

import numpy as np
import pytest

from inference.geometry import box_corners, voxel_box
from inference.metrics import ScanDetections, best_hits
from inference.nodule_measurements import axial_axes_mm, measure_detections
from inference.types import Detections, label_table
from viewer.core.evaluation import format_report, phantom_case, summarise
from viewer.core.evaluation_measurements import band_of, measurement_row, measurement_summary


@pytest.fixture(scope="module")
def demo_case():
    return phantom_case(0)


def _detections_on_truth(case, extra_lps=None):
    """Boxes around each true nodule (as a detector draws them) plus optional false ones, measured for real."""
    boxes = [np.r_[c - 0.55 * d, c + 0.55 * d] for c, d in zip(case.nodules_lps, case.nodule_diameters)]
    if extra_lps is not None:
        boxes.append(np.r_[extra_lps - 5, extra_lps + 5])
    boxes_voxel = [voxel_box(box_corners(b), case.affine, case.array.shape) for b in boxes]
    scores = np.linspace(0.95, 0.6, len(boxes))
    detections = Detections(boxes, boxes_voxel, scores, np.ones(len(boxes), int), case.affine,
                            case.array.shape, label_table({1: "nodule"}), "hounsfield-chest-ct-nodule-detection")
    detections.measurements = measure_detections(case.array, case.affine, detections)
    return detections


def test_measurement_errors_against_the_phantom_truth(demo_case):
    case = demo_case
    detections = _detections_on_truth(case, extra_lps=case.nodules_lps[0] + np.array([60.0, 0, 0]))
    extra = measurement_row(detections, case)
    rows = extra["measurements"]
    assert len(rows) == len(case.nodules_lps) == 4 and all(r["found"] for r in rows)
    # the truth is the same axial long/short-axis function applied to the nodule's own label-4 component
    import SimpleITK as sitk

    components = sitk.GetArrayFromImage(sitk.ConnectedComponent(
        sitk.GetImageFromArray(case.masks["nodule"].astype(np.uint8)), True))
    index = np.rint(np.linalg.solve(case.affine, np.r_[case.nodules_lps[0], 1.0])[:3][::-1]).astype(int)
    long_mm, short_mm, _ = axial_axes_mm(components == components[tuple(index)], case.affine)
    assert rows[0]["truth"]["mean_diameter_mm"] == pytest.approx((long_mm + short_mm) / 2, abs=0.01)
    for r in rows:
        assert r["band"] == band_of(r["diameter_mm"])
        assert r["volume_error_pct"] == pytest.approx(
            100 * (r["measured"]["volume_mm3"] / r["truth"]["volume_mm3"] - 1), abs=0.1)
    summary = measurement_summary([extra])["measurement"]
    assert summary[">=6"]["measured"] == 4
    # the juxtavascular one (boxes here are 10 % larger than the nodule) may keep a piece of its vessel
    assert summary[">=6"]["within_target"] >= 0.75
    assert summary[">=6"]["diameter_within_1_5mm"] >= 0.75 and summary[">=6"]["mean_diameter_mae_mm"] > 0
    # through summarise and format_report, as `hounsfield evaluate` prints it
    scan = ScanDetections(detections.centers_lps, detections.scores, case.nodules_lps, case.nodule_diameters)
    row = {"case": case.name, "seconds": 1.0, "n_nodules": 4, "scan": scan, "nodules": best_hits(scan), **extra}
    report = {"detector": {"summary": summarise([row]), "cases": []}}
    assert report["detector"]["summary"]["measurement"] == measurement_summary([extra])["measurement"]
    text = format_report(report)
    assert "mean diameter +-1.5 mm" in text and ">= 6 mm" in text and "10-20 mm" in text


def test_no_measurement_figures_without_an_exact_truth_or_measurements(demo_case):
    case = demo_case
    detections = _detections_on_truth(case)
    plain = Detections(detections.boxes_lps, detections.boxes_voxel, detections.scores, detections.labels,
                       detections.affine, detections.shape, detections.table)
    assert measurement_row(plain, case) == {}
    case_lidc_like = type(case)(case.name, case.array, case.affine, case.masks, case.nodules_lps,
                                case.nodule_diameters, "LIDC readers + threshold lungs")
    assert measurement_row(detections, case_lidc_like) == {}
    assert measurement_summary([{}]) == {}
    assert [band_of(d) for d in (2.0, 3.0, 5.9, 6.0, 19.9, 20.0, 45.0)] == [None, "3-6", "3-6", "6-10", "10-20",
                                                                            "20-40", "20-40"]


def test_the_share_within_target_comes_with_its_interval():
    """Two of four nodules >= 6 mm within target: 0.50 with its 95 % Wilson interval, printed beside it."""
    from viewer.core.evaluation_measurements import measurement_lines

    def item(within: bool) -> dict:
        return {"band": "6-10", "diameter_mm": 8.0, "found": True, "within_target": within,
                "volume_error_pct": 5.0 if within else 30.0, "mean_diameter_error_mm": 0.5}

    summary = measurement_summary([{"measurements": [item(True), item(True), item(False), item(False)]}])
    large = summary["measurement"][">=6"]
    assert large["within_target"] == 0.5 and large["within_target_ci95"] == (0.15, 0.85)
    assert "within target 0.50 [0.15, 0.85] (volume 0.50" in "\n".join(measurement_lines(summary))
