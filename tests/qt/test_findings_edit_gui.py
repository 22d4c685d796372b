"""Editing findings by hand in the Findings panel on LIDC-IDRI-0001: Add… (a box centred on the crosshair),
Edit… (move and resize the selected finding); each is a named undo step of the one history, the list shows the
review's state and the detection overlay draws the changed and added boxes."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.qt.conftest import two_detections

SLICE = 66


@pytest.fixture(autouse=True)
def _answer_prompts(monkeypatch):
    from viewer.qt.main_window import MainWindow

    monkeypatch.setattr(MainWindow, "ask_unsaved", lambda self, action: "discard")


@pytest.fixture
def reviewed(lidc_window, qtbot):
    """The window with two detections under review."""

    window, viewer = lidc_window, lidc_window.viewer
    volume, lane = viewer.volume, window.inference
    detections = two_detections(volume)
    window.findings_panel.set_min_score(0.5)
    lane.apply_result(detections, "Test detector")
    lane.result_applied.emit("detection")
    qtbot.wait(10)
    assert len(window.annotation.editor.review) == 2
    return window


def drawn_boxes(window):
    """``{row: voxel box}`` of what the detection overlay draws."""
    layer = window.inference.layer("detection")
    return {i: tuple(int(v) for v in layer.detections.boxes_voxel[i]) for i in layer.shown_indices()}


def test_add_finding_at_the_crosshair_is_an_undo_step(reviewed, qtbot, monkeypatch):
    window, an, panel = reviewed, reviewed.annotation, reviewed.findings_panel
    viewer = window.viewer
    viewer.state.set_position((256.0, 240.0, float(SLICE)))
    crosshair = viewer.state.position_lps
    asked = []

    def answer(title, centre, size):
        asked.append((title, np.asarray(centre, float), tuple(size)))
        return tuple(centre), (12.0, 12.0, 8.0)

    monkeypatch.setattr(panel, "ask_box", answer)
    assert panel.add_button.isEnabled()
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    assert len(asked) == 1 and asked[0][0] == "Add finding"
    assert np.allclose(asked[0][1], crosshair), "Add… defaults to the crosshair point"
    review = an.editor.review
    assert len(review) == 3
    added = review[2]
    assert added.source == "manual" and added.status == "accepted" and added.score is None
    assert np.allclose(added.center_lps, crosshair) and np.allclose(added.size_mm, (12.0, 12.0, 8.0))
    assert an.undo_action.text() == "&Undo Add finding"
    # listed (score "manual", accepted) and drawn around the crosshair voxel
    item = panel.item_for(2)
    assert item is not None and item.text(1) == "manual" and item.text(5) == "accepted"
    box = drawn_boxes(window)[2]
    assert box[0] <= SLICE < box[3] and box[1] <= 240 < box[4] and box[2] <= 256 < box[5]
    layer = window.inference.layer("detection")
    indices, _ = layer.boxes_on(viewer.active_view.geometry_, viewer.active_view.k)
    assert 2 in indices.tolist(), "the added box is drawn on the crosshair slice"

    an.undo()
    assert len(review) == 2 and panel.item_for(2) is None and 2 not in drawn_boxes(window)
    an.redo()
    assert len(review) == 3 and panel.item_for(2) is not None and 2 in drawn_boxes(window)


def test_edit_moves_and_resizes_the_selected_finding(reviewed, qtbot, monkeypatch):
    window, an, panel = reviewed, reviewed.annotation, reviewed.findings_panel
    review = an.editor.review
    before = review[0]
    drawn_before = drawn_boxes(window)
    old_centre, old_size = before.center_lps.copy(), before.size_mm.copy()
    new_centre = old_centre + np.array([10.0, -5.0, 0.0])
    asked = []

    def answer(title, centre, size):
        asked.append((title, np.asarray(centre, float), np.asarray(size, float)))
        return tuple(new_centre), (20.0, 20.0, 12.0)

    monkeypatch.setattr(panel, "ask_box", answer)
    panel.select(0)
    assert panel.edit_button.isEnabled()
    qtbot.mouseClick(panel.edit_button, Qt.MouseButton.LeftButton)
    assert len(asked) == 1 and asked[0][0] == "Edit finding #1"
    assert np.allclose(asked[0][1], old_centre) and np.allclose(asked[0][2], old_size)
    after = review[0]
    assert np.allclose(after.center_lps, new_centre) and np.allclose(after.size_mm, (20.0, 20.0, 12.0))
    assert after.edited and after.status == "pending"
    assert an.undo_action.text() == "&Undo Resize finding"
    # the overlay and the list follow; the other finding keeps its detector box
    drawn = drawn_boxes(window)
    assert drawn[0] != drawn_before[0] and drawn[1] == drawn_before[1]
    layer = window.inference.layer("detection")
    assert np.allclose(layer.detections.boxes_lps[0], after.box_lps)
    assert panel.item_for(0).text(2) == "20.0 x 20.0 x 12.0"

    # two steps: undo the resize, then the move
    an.undo()
    assert np.allclose(review[0].center_lps, new_centre) and np.allclose(review[0].size_mm, old_size)
    assert an.undo_action.text() == "&Undo Move finding"
    an.undo()
    assert np.allclose(review[0].center_lps, old_centre) and drawn_boxes(window)[0] == drawn_before[0]

    # a cancelled dialog changes nothing
    monkeypatch.setattr(panel, "ask_box", lambda *args: None)
    panel.select(1)
    undo_text = an.undo_action.text()
    qtbot.mouseClick(panel.edit_button, Qt.MouseButton.LeftButton)
    assert an.undo_action.text() == undo_text and not review[1].edited


def test_finding_box_dialog_returns_what_was_entered(qtbot):
    from viewer.qt.findings_panel import FindingBoxDialog

    dialog = FindingBoxDialog("Add finding", (-85.14, 20.3, -150.2), (10.0, 10.0, 10.0))
    qtbot.addWidget(dialog)
    dialog.size[2].setValue(6.5)
    assert dialog.values() == ((-85.1, 20.3, -150.2), (10.0, 10.0, 6.5))


def test_add_without_a_detector_draws_the_reviewed_findings(lidc_window, qtbot, monkeypatch):
    window, an, panel = lidc_window, lidc_window.annotation, lidc_window.findings_panel
    assert window.inference.layer("detection") is None and panel.add_button.isEnabled()
    monkeypatch.setattr(panel, "ask_box", lambda title, centre, size: (tuple(centre), tuple(size)))
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    assert len(an.editor.review) == 1 and an.undo_action.text() == "&Undo Add finding"
    layer = window.inference.layer("detection")
    assert layer is not None and layer in window.viewer.layers and len(layer.detections) == 1
    assert panel.item_for(0).text(1) == "manual" and panel.item_for(0).text(5) == "accepted"
    an.undo()
    assert len(an.editor.review) == 0 and len(layer.detections) == 0 and panel.item_for(0) is None
    an.redo()
    assert len(layer.detections) == 1 and panel.item_for(0) is not None
