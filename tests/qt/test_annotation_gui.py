"""Annotating like a user would, offscreen, on the real LIDC-IDRI-0001 CT: brush strokes on the axial and coronal
views land in the voxels under the cursor, one undo removes a whole stroke and redo brings it back (the Edit menu
names them), a DICOM SEG exported from the window reads back voxel-identical, and an autosave is offered and
restored after the annotation was lost."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from tests.qt.conftest import click, drag, open_and_wait, two_detections, widget_pos_of_voxel
from viewer.core.reformat import Plane
from viewer.qt.tools import Tool

SLICE = 66
JOB_TIMEOUT_MS = 60_000


@pytest.fixture(autouse=True)
def _answer_prompts(monkeypatch):
    """Closing the window with unsaved work would ask: discard (the test's own home goes away anyway)."""
    from viewer.qt.main_window import MainWindow

    monkeypatch.setattr(MainWindow, "ask_unsaved", lambda self, action: "discard")




def lps_under(view, pos):
    """The LPS point (mm) under a widget pixel of ``view`` on its current slice."""
    point = view.view_box.mapSceneToView(view.mapToScene(pos.toPoint()))
    index = view.geometry_.index_from_scene(view.k, point.x(), point.y())
    return view.state.volume.index_to_lps(index)


def voxel_of_lps(volume, lps):
    """``(z, y, x)`` of the voxel holding an LPS point (through the inverse affine)."""
    xyz = np.linalg.solve(volume.affine, np.r_[lps, 1.0])[:3]
    x, y, z = np.floor(xyz + 0.5).astype(int)
    return z, y, x


def stroke(view, start_xyz, end_xyz):
    p0, p1 = widget_pos_of_voxel(view, start_xyz), widget_pos_of_voxel(view, end_xyz)
    drag(view.viewport(), p0, p1, steps=10)
    return p0, p1


def test_brush_stroke_paints_under_the_cursor_and_undo_redo_are_one_step(lidc_window, qtbot):
    window, viewer = lidc_window, lidc_window.viewer
    view, an = viewer.active_view, lidc_window.annotation
    viewer.state.set_slice("axial", SLICE)
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_D)
    assert viewer.tool == Tool.BRUSH
    # [ and ] size the brush while it is chosen; the cine speed stays
    fps = viewer.cine_fps
    viewer.set_brush_radius(4.0)
    qtbot.keyClick(view, Qt.Key.Key_BracketRight)
    assert viewer.brush_radius_mm == pytest.approx(5.0) and viewer.cine_fps == fps
    qtbot.keyClick(view, Qt.Key.Key_BracketLeft)
    assert viewer.brush_radius_mm == pytest.approx(4.0)
    assert window.segments_panel.radius.value() == pytest.approx(4.0)

    p0, p1 = stroke(view, (200.0, 250.0, SLICE), (300.0, 250.0, SLICE))
    segmentation = an.editor.segmentation
    assert len(segmentation) == 1 and segmentation.active is not None
    number = segmentation.active
    mask = segmentation.mask(number)
    volume = viewer.volume
    for pos in (p0, (p0 + p1) / 2, p1):
        assert mask[voxel_of_lps(volume, lps_under(view, pos))], "a voxel under the stroke is not painted"
    # a round 4 mm brush on this slice only: nothing beyond the radius, nothing on other slices
    assert mask[SLICE].sum() == mask.sum() > 500
    rows = np.flatnonzero(mask[SLICE].any(axis=1))
    row_mm = volume.spacing[1]
    assert rows.min() >= 250 - 4.0 / row_mm - 2 and rows.max() <= 250 + 4.0 / row_mm + 2
    assert not mask[voxel_of_lps(volume, lps_under(view, p0 + QPointF(0, 60)))]
    # drawn: the annotation layer of the axial view shows the slice
    layer = an.layers[window.current_series.key]
    assert layer._items[view][0].isVisible()
    assert segmentation[number].origin == "MANUAL"
    qtbot.wait(10)
    assert window.segments_panel.numbers() == [number]

    # the Edit menu names the steps; one Ctrl+Z takes the whole stroke away, redo brings it back
    undo, redo = an.undo_action, an.redo_action
    assert window.edit_menu.actions()[0] is undo
    assert undo.text() == "&Undo Brush stroke (Segment 1)" and not redo.isEnabled()
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not segmentation.mask(number).any()
    assert undo.text() == "&Undo Add segment (Segment 1)" and redo.text() == "&Redo Brush stroke (Segment 1)"
    assert not layer._items[view][0].isVisible()
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert np.array_equal(segmentation.mask(number), mask)
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(view, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(segmentation.mask(number), mask)
    assert an.modified

    # the eraser takes voxels away again, as its own step
    qtbot.keyClick(view, Qt.Key.Key_D, Qt.KeyboardModifier.ShiftModifier)
    assert viewer.tool == Tool.ERASER
    click(view.viewport(), (p0 + p1) / 2)
    assert segmentation.mask(number).sum() < mask.sum()
    assert undo.text() == "&Undo Erase stroke (Segment 1)"
    an.undo()
    assert np.array_equal(segmentation.mask(number), mask)


def test_stroke_on_the_coronal_view_lands_in_its_slice(lidc_window, qtbot):
    viewer, an = lidc_window.viewer, lidc_window.annotation
    viewer.set_layout("1x3")
    qtbot.wait(30)
    view = viewer.views[Plane.CORONAL]
    viewer.state.set_position((256.0, 240.0, SLICE))
    assert view.k == 240
    viewer.set_tool("brush")
    viewer.set_brush_radius(3.0)
    p0, p1 = stroke(view, (220.0, 240.0, 40.0), (280.0, 240.0, 90.0))
    mask = an.editor.segmentation.mask(an.editor.segmentation.active)
    assert mask.any() and mask[:, 240, :].sum() == mask.sum(), "painted outside the coronal slice"
    volume = viewer.volume
    for pos in (p0, (p0 + p1) / 2, p1):
        z, y, x = voxel_of_lps(volume, lps_under(view, pos))
        assert y == 240 and mask[z, y, x]
    # the slices cut by the stroke show it in the axial view too (only the touched boxes were recomposed)
    axial = viewer.views[Plane.AXIAL]
    layer = an.layers[lidc_window.current_series.key]
    entry = layer._slices[axial]
    assert entry["key"] == (0, SLICE) and entry["rgba"][..., 3].any() == mask[SLICE].any()


def test_export_seg_from_the_window_and_open_it_again(lidc_window, qtbot, tmp_path, lidc_dir, monkeypatch):
    viewer, an = lidc_window.viewer, lidc_window.annotation
    view = viewer.active_view
    viewer.state.set_slice("axial", SLICE)
    viewer.set_tool("brush")
    stroke(view, (180.0, 200.0, SLICE), (240.0, 260.0, SLICE))
    an.add_segment("nodule")
    viewer.state.set_slice("axial", SLICE + 1)
    stroke(view, (300.0, 300.0, SLICE + 1), (320.0, 300.0, SLICE + 1))
    editor = an.editor
    before = {s.name: s.mask.full() for s in editor.segmentation}
    assert len(before) == 2 and all(m.any() for m in before.values())

    path = tmp_path / "annotation.seg.dcm"
    job = an.export("seg", path)
    with qtbot.waitSignal(job.finished, timeout=JOB_TIMEOUT_MS):
        pass
    assert path.is_file() and not an.modified, "an exported annotation is not 'modified'"
    assert "Exported" in lidc_window.statusBar().currentMessage()

    # a study holding the SEG next to its CT: opening it offers the SEG, which comes back as editable segments
    # (copies, not symlinks: links leaving the scanned folder are listed, never read)
    study = tmp_path / "study"
    study.mkdir()
    for i, source in enumerate(sorted(lidc_dir.rglob("*.dcm"))):
        shutil.copyfile(source, study / f"{i:04d}.dcm")
    shutil.copyfile(path, study / "seg.dcm")
    offered = []
    monkeypatch.setattr(an, "ask_open_seg", lambda series: offered.append(series) or True)
    open_and_wait(qtbot, lidc_window, [study])
    assert len(offered) == 1 and offered[0].kind == "seg"
    qtbot.waitUntil(lambda: len(editor.segmentation) == 4, timeout=JOB_TIMEOUT_MS)
    assert an.editor is editor
    segments = list(editor.segmentation)
    assert len(segments) == 4
    for original, opened in zip(segments[:2], segments[2:]):
        assert opened.name == original.name and opened.color == original.color
        assert np.array_equal(opened.mask.full(), before[original.name])
    assert an.undo_action.text() == "&Undo Open segmentation (seg.dcm)"


def test_autosave_is_offered_and_restored(lidc_window, qtbot, monkeypatch):
    from viewer.core.editing.autosave import find_restorable

    window, viewer, an = lidc_window, lidc_window.viewer, lidc_window.annotation
    view = viewer.active_view
    viewer.state.set_slice("axial", SLICE)
    viewer.set_tool("brush")
    stroke(view, (200.0, 200.0, SLICE), (260.0, 230.0, SLICE))
    painted = an.editor.segmentation.mask(an.editor.segmentation.active)
    assert an.autosave_now(force=True) == 1
    found = find_restorable()
    assert [info.series_uid for info in found] == [viewer.volume.series_uid]

    # the work is lost (as after a crash): no editor left, the autosave still on disk
    key = window.current_series.key
    for layer in an.layers.values():
        viewer.remove_layer(layer)
    an.layers.clear()
    for state in an.session.states.values():  # the editors live in the session
        state.editor = None
    an._asked_restore.clear()
    asked = []
    monkeypatch.setattr(an, "ask_restore", lambda info: asked.append(info) or True)
    with qtbot.waitSignal(window.series_loaded, timeout=JOB_TIMEOUT_MS):
        window.open_series(key)
    assert len(asked) == 1 and asked[0].n_segments == 1
    segmentation = an.editor.segmentation
    assert np.array_equal(segmentation.mask(segmentation.active), painted)
    assert an.layers[key] in viewer.layers and an.modified, "restored work must still count as unsaved"


def test_accept_model_result_and_review_findings(lidc_window, qtbot):
    from inference.types import Label, SegResult

    window, viewer, an = lidc_window, lidc_window.viewer, lidc_window.annotation
    volume, lane, panel = viewer.volume, window.inference, window.segments_panel
    labels = np.zeros(volume.shape, dtype=np.uint8)
    labels[SLICE - 2:SLICE + 3, 200:260, 180:240] = 1
    lane.apply_result(SegResult(labels, volume.affine, {1: Label(1, "nodule", (230, 25, 75))}), "Test model")
    lane.result_applied.emit("segmentation")
    qtbot.wait(10)
    assert panel.accept_model_button.isEnabled()
    qtbot.mouseClick(panel.accept_model_button, Qt.MouseButton.LeftButton)
    segmentation = an.editor.segmentation
    (segment,) = list(segmentation)
    assert segment.origin == "AUTOMATIC" and segment.algorithm_name == "Test model" and segment.name == "nodule"
    assert np.array_equal(segment.mask.full(), labels == 1)
    assert an.undo_action.text() == "&Undo Accept model result" and not lane.layer("segmentation").visible
    # a person's stroke over it makes it SEMIAUTOMATIC, and the panel says so
    viewer.state.set_slice("axial", SLICE)
    viewer.set_tool("brush")
    stroke(viewer.active_view, (250.0, 230.0, SLICE), (280.0, 230.0, SLICE))
    qtbot.wait(10)
    assert segment.algorithm_type == "SEMIAUTOMATIC"
    assert panel.item_for(segment.number).text(3) == "model, edited"

    detections = two_detections(volume)
    lane.findings_panel.set_min_score(0.0)
    lane.apply_result(detections, "Test detector")
    lane.result_applied.emit("detection")
    findings = window.findings_panel
    assert [findings.tree.topLevelItem(i).text(5) for i in range(2)] == ["pending", "pending"]
    findings.select(1)
    qtbot.mouseClick(findings.accept_button, Qt.MouseButton.LeftButton)
    assert an.editor.review[1].status == "accepted" and findings.item_for(1).text(5) == "accepted"
    assert an.undo_action.text() == "&Undo Accept finding"
    findings.select(0)
    qtbot.mouseClick(findings.reject_button, Qt.MouseButton.LeftButton)
    assert findings.item_for(0).text(5) == "rejected"
    an.undo()
    assert findings.item_for(0).text(5) == "pending" and findings.item_for(1).text(5) == "accepted"


def test_the_editors_live_in_the_session_and_discarding_empties_it(lidc_window, qtbot):
    from viewer.core.editing.autosave import find_restorable

    window, viewer, an = lidc_window, lidc_window.viewer, lidc_window.annotation
    key = window.current_series.key
    state = an.session.state(key)
    assert an.editor is state.editor and an.volume is state.volume is viewer.volume
    viewer.state.set_slice("axial", SLICE)
    viewer.set_tool("brush")
    stroke(viewer.active_view, (200.0, 200.0, SLICE), (240.0, 200.0, SLICE))
    assert an.session.editors == {key: an.editor} and an.modified and an.session.modified
    an.series_shown(key, viewer.volume, window.current_series)  # shown again: the same editor, not a new one
    assert an.editor is state.editor and len(an.editor.segmentation) == 1
    assert an.autosave_now(force=True) == 1 and len(find_restorable()) == 1

    an.discard_all()
    assert an.session.editors == {} and an.editor is None and not an.modified
    assert an.layers == {} and find_restorable() == []
