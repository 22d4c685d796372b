"""The editing tools of issue 6 driven like a user would, offscreen, on the real LIDC-IDRI-0001 CT: the threshold
brush paints only voxels in the HU range, the 2D fill fills the connected in-range region of the clicked slice
only, a clicked polygon and a dragged lasso fill their inside, interpolation fills the slices between two painted
ones, small islands go; each is one undo step named in the Edit menu. Ctrl+wheel sizes the brush, and the
provenance display tells person-set voxels from model voxels."""
from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from tests.qt.conftest import click, drag, send_mouse, wheel
from viewer.qt.tools import Tool

SLICE = 66
LUNG = (-1000.0, -400.0)
LUNG_SEED = (150, 250)  # (x, y) in the right lung on slice 66


@pytest.fixture(autouse=True)
def _answer_prompts(monkeypatch):
    from viewer.qt.main_window import MainWindow

    monkeypatch.setattr(MainWindow, "ask_unsaved", lambda self, action: "discard")


def pos_of(view, x, y, z=SLICE):
    _, sx, sy = view.geometry_.scene_from_index((float(x), float(y), float(z)))
    p = view.view_pos_of_scene(sx, sy)
    return QPointF(round(p.x()), round(p.y()))


def double_click(widget, pos):
    """What Qt sends for a double click: press, release, double-click, release."""
    send_mouse(widget, "press", pos)
    send_mouse(widget, "release", pos)
    local = QPointF(pos)
    event = QMouseEvent(QEvent.Type.MouseButtonDblClick, local, QPointF(widget.mapToGlobal(local.toPoint())),
                        Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)
    send_mouse(widget, "release", pos)
    QApplication.processEvents()


def undo_text(window):
    return window.edit_menu.actions()[0].text()


def components_2d(inside: np.ndarray) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(inside.astype(np.uint8)), False))


@pytest.fixture
def axial(lidc_window, qtbot):
    viewer = lidc_window.viewer
    viewer.state.set_slice("axial", SLICE)
    view = viewer.active_view
    view.setFocus()
    qtbot.wait(10)
    return view


def test_threshold_brush_paints_only_in_range_voxels(lidc_window, axial, qtbot):
    window, viewer, an, panel = lidc_window, lidc_window.viewer, lidc_window.annotation, lidc_window.segments_panel
    qtbot.keyClick(axial, Qt.Key.Key_D)
    qtbot.keyClick(axial, Qt.Key.Key_T)  # T switches the threshold on (the panel follows)
    assert panel.threshold.isChecked() and an.threshold_action.isChecked()
    panel.threshold_preset.setCurrentIndex(2)
    panel.threshold_preset.activated.emit(2)  # "Lung -1000..-400"
    assert an.hu_range() == LUNG
    viewer.set_brush_radius(6.0)
    drag(axial.viewport(), pos_of(axial, 70, 250), pos_of(axial, 150, 250), steps=10)
    segmentation = an.editor.segmentation
    mask = segmentation.mask(segmentation.active)
    image = viewer.volume.array
    assert mask.sum() > 300 and mask[SLICE].sum() == mask.sum()
    values = image[mask]
    assert values.min() >= LUNG[0] and values.max() <= LUNG[1], "painted outside the HU range"
    # the stroke crossed the chest wall (x < 90 is soft tissue): under the brush only the lung is painted
    band, painted = image[SLICE, 247:254, 75:145], mask[SLICE, 247:254, 75:145]
    outside = (band < LUNG[0]) | (band > LUNG[1])
    assert outside.sum() > 50 and not painted[outside].any()
    assert painted[~outside].all()
    assert undo_text(window) == "&Undo Threshold brush stroke (Segment 1)"
    an.undo()
    assert not segmentation.mask(segmentation.active).any()
    # off again: the plain brush paints everything under it
    qtbot.keyClick(axial, Qt.Key.Key_T)
    assert not panel.threshold.isChecked() and an.hu_range() is None


def test_fill_2d_fills_the_connected_in_range_region_of_the_clicked_slice(lidc_window, axial, qtbot):
    window, viewer, an, panel = lidc_window, lidc_window.viewer, lidc_window.annotation, lidc_window.segments_panel
    qtbot.keyClick(axial, Qt.Key.Key_G)
    assert viewer.tool == Tool.FILL
    panel.threshold.setChecked(True)
    panel.set_hu_range(*LUNG)
    assert panel.threshold_preset.currentText().startswith("Lung")
    click(axial.viewport(), pos_of(axial, *LUNG_SEED))
    segmentation = an.editor.segmentation
    mask = segmentation.mask(segmentation.active)
    image = viewer.volume.array
    plane = (image[SLICE] >= LUNG[0]) & (image[SLICE] <= LUNG[1])
    labels = components_2d(plane)
    expected = labels == labels[LUNG_SEED[1], LUNG_SEED[0]]
    assert expected.sum() > 5000
    assert mask[SLICE].sum() == mask.sum(), "filled outside the clicked slice"
    assert np.array_equal(mask[SLICE], expected)
    assert undo_text(window) == "&Undo Fill (Segment 1)"
    qtbot.keyClick(axial, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not segmentation.mask(segmentation.active).any()
    assert undo_text(window) == "&Undo Add segment (Segment 1)"

    # without a threshold the fill takes the same-label region: a painted ring's hole
    panel.threshold.setChecked(False)
    viewer.set_tool("polygon")
    outer = [(180, 200), (260, 200), (260, 280), (180, 280)]
    for x, y in outer[:-1]:
        click(axial.viewport(), pos_of(axial, x, y))
    double_click(axial.viewport(), pos_of(axial, *outer[-1]))
    square = segmentation.mask(segmentation.active)[SLICE].copy()
    an.add_segment("other")
    viewer.set_tool("fill")
    click(axial.viewport(), pos_of(axial, 220, 240))
    filled = segmentation.mask(segmentation.active)[SLICE]
    assert np.array_equal(filled, square), "the same-label fill leaks out of the square"


def test_fill_3d_reaches_other_slices(lidc_window, axial, qtbot):
    viewer, an, panel = lidc_window.viewer, lidc_window.annotation, lidc_window.segments_panel
    qtbot.keyClick(axial, Qt.Key.Key_G, Qt.KeyboardModifier.ShiftModifier)
    assert viewer.tool == Tool.FILL_3D
    panel.threshold.setChecked(True)
    panel.set_hu_range(*LUNG)
    click(axial.viewport(), pos_of(axial, *LUNG_SEED))
    mask = an.editor.segmentation.mask(an.editor.segmentation.active)
    assert mask[SLICE, LUNG_SEED[1], LUNG_SEED[0]] and mask[SLICE - 5].any() and mask[SLICE + 5].any()
    assert an.undo_action.text() == "&Undo Fill (Segment 1)"


def test_polygon_and_lasso_fill(lidc_window, axial, qtbot):
    window, viewer, an = lidc_window, lidc_window.viewer, lidc_window.annotation
    qtbot.keyClick(axial, Qt.Key.Key_O)
    assert viewer.tool == Tool.POLYGON
    layout = viewer.layout_name
    for x, y in ((200, 200), (300, 200), (300, 300)):
        click(axial.viewport(), pos_of(axial, x, y))
    assert axial.polygon_curve.isVisible()
    double_click(axial.viewport(), pos_of(axial, 200, 300))
    assert viewer.layout_name == layout, "the double click closes the polygon, it does not maximise"
    assert not axial.polygon_curve.isVisible()
    segmentation = an.editor.segmentation
    mask = segmentation.mask(segmentation.active)
    assert mask[SLICE].sum() == mask.sum()
    assert mask[SLICE, 250, 250] and mask[SLICE, 205, 205] and not mask[SLICE, 195, 250] and not mask[SLICE, 250, 310]
    assert 90 * 90 < mask.sum() < 110 * 110
    assert undo_text(window) == "&Undo Polygon fill (Segment 1)"
    an.undo()
    assert not segmentation.mask(segmentation.active).any()

    # Esc drops a polygon being drawn
    click(axial.viewport(), pos_of(axial, 100, 100))
    assert axial.polygon_curve.isVisible()
    qtbot.keyClick(axial, Qt.Key.Key_Escape)
    assert not axial.polygon_curve.isVisible()

    # a lasso: press, drag around, release closes it
    widget = axial.viewport()
    path = [(320, 320), (380, 320), (380, 380), (320, 380), (322, 330)]
    send_mouse(widget, "press", pos_of(axial, *path[0]))
    for a, b in zip(path[:-1], path[1:]):
        for t in (0.5, 1.0):
            time.sleep(0.012)  # pyqtgraph drops moves closer than 10 ms
            send_mouse(widget, "move", pos_of(axial, *a) * (1 - t) + pos_of(axial, *b) * t,
                       buttons=Qt.MouseButton.LeftButton)
            QApplication.processEvents()
    send_mouse(widget, "release", pos_of(axial, *path[-1]))
    QApplication.processEvents()
    mask = segmentation.mask(segmentation.active)
    assert mask[SLICE, 350, 350] and not mask[SLICE, 300, 350] and not mask[SLICE, 250, 250]
    assert undo_text(window) == "&Undo Polygon fill (Segment 1)"


def test_interpolate_fills_the_slices_between_two_painted_ones(lidc_window, axial, qtbot):
    window, viewer, an, panel = lidc_window, lidc_window.viewer, lidc_window.annotation, lidc_window.segments_panel
    viewer.set_tool("brush")
    viewer.set_brush_radius(5.0)
    for k in (SLICE - 4, SLICE + 2):
        viewer.state.set_slice("axial", k)
        click(axial.viewport(), pos_of(axial, 250, 250, k))
    segmentation = an.editor.segmentation
    number = segmentation.active
    before = segmentation.mask(number)
    assert [k for k in range(before.shape[0]) if before[k].any()] == [SLICE - 4, SLICE + 2]
    qtbot.mouseClick(panel.interpolate_button, Qt.MouseButton.LeftButton)
    after = segmentation.mask(number)
    assert all(after[k].any() for k in range(SLICE - 4, SLICE + 3)), "a slice between stayed empty"
    assert not after[SLICE - 5].any() and not after[SLICE + 3].any()
    assert undo_text(window) == "&Undo Interpolate (Segment 1)"
    an.undo()
    assert np.array_equal(segmentation.mask(number), before)


def test_remove_small_islands_button(lidc_window, axial, qtbot):
    window, viewer, an, panel = lidc_window, lidc_window.viewer, lidc_window.annotation, lidc_window.segments_panel
    viewer.set_tool("brush")
    viewer.set_brush_radius(8.0)
    click(axial.viewport(), pos_of(axial, 200, 250))
    viewer.set_brush_radius(0.5)
    click(axial.viewport(), pos_of(axial, 350, 350))
    segmentation = an.editor.segmentation
    number = segmentation.active
    before = segmentation.mask(number)
    assert before[SLICE, 350, 350]
    panel.island_volume.setValue(5.0)
    qtbot.mouseClick(panel.islands_button, Qt.MouseButton.LeftButton)
    after = segmentation.mask(number)
    assert not after[SLICE, 350, 350] and after[SLICE, 250, 200]
    assert undo_text(window) == "&Undo Remove small islands (Segment 1)"


def test_ctrl_wheel_sizes_the_brush_only_with_a_paint_tool(lidc_window, axial, qtbot):
    viewer = lidc_window.viewer
    viewer.set_tool("brush")
    viewer.set_brush_radius(4.0)
    zoom = axial.zoom()
    wheel(axial.viewport(), pos_of(axial, 250, 250), 1, Qt.KeyboardModifier.ControlModifier)
    assert viewer.brush_radius_mm == pytest.approx(5.0) and axial.zoom() == pytest.approx(zoom)
    assert lidc_window.segments_panel.radius.value() == pytest.approx(5.0)
    wheel(axial.viewport(), pos_of(axial, 250, 250), -1, Qt.KeyboardModifier.ControlModifier)
    assert viewer.brush_radius_mm == pytest.approx(4.0)
    viewer.set_tool("window")
    wheel(axial.viewport(), pos_of(axial, 250, 250), 1, Qt.KeyboardModifier.ControlModifier)
    assert viewer.brush_radius_mm == pytest.approx(4.0) and axial.zoom() > zoom


def test_provenance_display_tells_person_voxels_from_model_voxels(lidc_window, axial, qtbot):
    from inference.types import Label, SegResult

    window, viewer, an, panel = lidc_window, lidc_window.viewer, lidc_window.annotation, lidc_window.segments_panel
    volume = viewer.volume
    labels = np.zeros(volume.shape, dtype=np.uint8)
    labels[SLICE - 1:SLICE + 2, 200:260, 180:240] = 1
    an.editor.accept_model_result(SegResult(labels, volume.affine, {1: Label(1, "nodule", (200, 40, 40))}), "m")
    viewer.set_tool("brush")
    viewer.set_brush_radius(3.0)
    click(axial.viewport(), pos_of(axial, 300, 300))  # a person's dab into the model segment
    layer = an.layers[window.current_series.key]
    plain = layer._slices[axial]["rgba"].copy()
    assert panel.provenance.isEnabled()
    panel.provenance.setChecked(True)
    assert an.provenance_action.isChecked() and layer.show_provenance
    shown = layer._slices[axial]["rgba"]
    model_px, person_rows = shown[230, 210], shown[297:304, 297:304].reshape(-1, 4)
    assert np.array_equal(model_px, plain[230, 210]), "model voxels are drawn as before"
    colours = {tuple(p) for p in person_rows if p[3]}
    assert len(colours) == 2, "person voxels are hatched (two tints)"
    assert any(c[3] > plain[230, 210][3] for c in colours)
    # a slice change keeps the mode; switching it off restores the plain fill
    viewer.state.set_slice("axial", SLICE + 1)
    assert layer._slices[axial]["key"] == (0, SLICE + 1)
    viewer.state.set_slice("axial", SLICE)
    an.provenance_action.setChecked(False)
    assert not panel.provenance.isChecked() and np.array_equal(layer._slices[axial]["rgba"], plain)
