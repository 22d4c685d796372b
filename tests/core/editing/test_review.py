"""Findings review: accept/reject/move/resize/add in LPS mm, each an undo step, and the state in the export."""
from __future__ import annotations

import json

import numpy as np
import pytest

from inference.types import Detections, label_table
from viewer.core.editing.history import EditHistory
from viewer.core.editing.review import FindingsReview
from viewer.core.export.findings import SCHEMA_KEYS, read_findings, review_dict, write_review

AFFINE = np.array([[0.7, 0, 0, -100.0], [0, 0.7, 0, -50.0], [0, 0, 2.5, -300.0], [0, 0, 0, 1]])


def _detections() -> Detections:
    return Detections(boxes_lps=[[-90, -40, -290, -83, -33, -285], [-60, -20, -250, -50, -10, -240]],
                      boxes_voxel=[[4, 15, 15, 7, 25, 25], [20, 43, 58, 25, 58, 72]], scores=[0.9, 0.4],
                      labels=[1, 1], affine=AFFINE, shape=(40, 100, 100), table=label_table({1: "nodule"}),
                      model_id="lung_nodule_ct_detection")


def test_each_review_action_is_a_named_undo_step():
    history = EditHistory()
    review = FindingsReview.from_detections(_detections(), history)
    assert [f.status for f in review.findings] == ["pending", "pending"]
    review.accept(0)
    review.reject(1)
    moved = review.move(0, [1.0, -2.0, 5.0])
    assert np.allclose(moved.center_lps, [-85.5, -38.5, -282.5]) and np.allclose(moved.size_mm, [7, 7, 5])
    resized = review.resize(0, [10, 10, 10])
    assert np.allclose(resized.center_lps, moved.center_lps) and resized.diameter_mm == 10 and resized.edited
    added = review.add([-70, -30, -260], [6, 6, 6])
    assert added.source == "manual" and added.status == "accepted" and added.score is None and added.id == 2
    assert history.names()[0] == ["Accept finding", "Reject finding", "Move finding", "Resize finding",
                                  "Add finding"]
    for _ in range(5):
        history.undo()
    assert [(f.status, f.edited) for f in review.findings] == [("pending", False), ("pending", False)]
    assert np.allclose(review[0].box_lps, _detections().boxes_lps[0])
    history.redo()
    assert review[0].status == "accepted"
    with pytest.raises(ValueError, match="rejected, not deleted"):
        review.remove(0)


def test_the_voxel_box_follows_the_lps_box_like_the_detector_output():
    review = FindingsReview.from_detections(_detections())
    assert np.array_equal(review.box_voxel(review[1]), _detections().boxes_voxel[1])
    review.move(1, [7.0, 0, 0])  # 10 columns of 0.7 mm
    assert np.array_equal(review.box_voxel(review[1]), [20, 43, 68, 25, 58, 82])


def test_the_findings_export_keeps_its_schema_and_adds_the_review_state(tmp_path):
    review = FindingsReview.from_detections(_detections(), EditHistory())
    review.accept(1)
    review.reject(0)
    review.add([-70, -30, -260], [6, 6, 6])
    doc = review_dict(review, "1.2.3")
    assert doc["model"] == "lung_nodule_ct_detection" and doc["series_uid"] == "1.2.3"
    assert [(f["score"], f["status"], f["source"]) for f in doc["findings"]] == [
        (0.9, "rejected", "model"), (0.4, "accepted", "model"), (None, "accepted", "manual")]
    assert all(set(SCHEMA_KEYS) <= set(f) for f in doc["findings"])
    data = read_findings(write_review(tmp_path / "findings.json", review, "1.2.3"))
    assert data == doc
    bad = tmp_path / "bad.json"
    doc["findings"][0]["status"] = "maybe"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="status"):
        read_findings(bad)


def test_review_state_round_trips_for_autosave():
    review = FindingsReview.from_detections(_detections())
    review.accept(0)
    review.add([-70, -30, -260], [6, 6, 6], status="pending")
    again = FindingsReview.from_state(review.to_state())
    assert again.findings == review.findings and again.model_id == review.model_id
    assert again.shape == review.shape and np.array_equal(again.affine, review.affine)


def test_to_detections_is_the_base_until_a_box_changes_then_rows_keep_what_was_not_moved():
    base = _detections()
    base.measurements = [{"volume_mm3": 120.0}, {"volume_mm3": 40.0}]
    review = FindingsReview.from_detections(base, EditHistory())
    assert review.to_detections(base) is base  # nothing moved: nothing to redraw
    review.accept(0)
    assert review.to_detections(base) is base  # a decision is not a box

    review.move(1, [7.0, 0, 0])
    moved = review.to_detections(base)
    assert moved is not base and len(moved) == 2 and moved.model_id == base.model_id
    assert np.array_equal(moved.boxes_voxel[0], base.boxes_voxel[0])  # unmoved: the detector's voxel box
    assert np.array_equal(moved.boxes_voxel[1], review.box_voxel(review[1]))
    assert moved.measurements == [{"volume_mm3": 120.0}, None]  # a moved box lost its measurements
    assert np.allclose(moved.scores, base.scores) and moved.table == base.table

    review.add([-70, -30, -260], [6, 6, 6])
    added = review.to_detections(moved)
    assert len(added) == 3 and added.scores[2] == 1.0  # by hand: above any threshold
    assert added.labels[2] == 1 and np.allclose(added.boxes_lps[2], review[2].box_lps)


def test_to_detections_without_a_base_and_after_a_manual_finding_was_deleted():
    review = FindingsReview(AFFINE, (40, 100, 100), EditHistory())
    first = review.add([-70, -30, -260], [6, 6, 6])
    second = review.add([-60, -20, -250], [4, 4, 4], label="mass")
    drawn = review.to_detections(None)
    assert len(drawn) == 2 and drawn.table[1].name == "nodule" and list(drawn.labels) == [1, 1]
    assert drawn.measurements is None and np.array_equal(drawn.boxes_voxel[1], review.box_voxel(second))
    review.remove(first.id)
    assert review.to_detections(drawn) is None  # ids are no longer rows
