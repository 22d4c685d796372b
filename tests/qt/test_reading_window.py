"""The reading window driven like a user would, offscreen, on the real LIDC-IDRI-0001 chest CT."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from tests.qt.conftest import click, drag, open_and_wait, wheel, widget_pos_of_voxel
from viewer.core.reformat import Plane
from viewer.core.windowing import Window


def centre_of(view):
    return QPointF(view.viewport().width() / 2, view.viewport().height() / 2)




def scene_of_widget_pos(view, pos):
    point = view.view_box.mapSceneToView(view.mapToScene(pos.toPoint()))
    return point.x(), point.y()


def test_open_shows_the_series_progressively(main_window, qtbot, lidc_dir, monkeypatch):
    shown_at = []
    original = main_window.viewer.set_volume

    notices = []

    def spy(volume, *args, **kwargs):
        if volume is not None:
            shown_at.append((volume.slices_loaded, volume.shape[0]))
        result = original(volume, *args, **kwargs)
        notices.append(main_window.viewer.views[Plane.AXIAL].notice_text())
        return result

    monkeypatch.setattr(main_window.viewer, "set_volume", spy)
    open_and_wait(qtbot, main_window, [lidc_dir])
    viewer = main_window.viewer
    assert viewer.volume.shape == (133, 512, 512)
    assert shown_at and 1 <= shown_at[0][0] < 133, "the first slice was not shown before the whole series loaded"
    view = viewer.views[Plane.AXIAL]
    assert view.isVisible() and view.k == 132  # image 1 of axial CT: the most superior slice (head first)
    # the loader starts at the end the series opens at: image 1 is on screen with the first progress step
    assert notices[0] == "" and view.notice_text() == ""
    assert main_window.viewer.volume.loads_from_top
    image = view.image_item.image
    assert image.dtype == np.uint8 and image.shape == (512, 512) and image.std() > 10
    lines = viewer.overlay_lines(view)
    assert lines["bottom-left"][0] == "Im 1/133"
    assert "W 1600 L -600 (VOI)" in lines["bottom-right"][0]
    item = main_window.browser.item_for(main_window.current_series.key)
    assert item is not None and main_window.browser.modality_and_count(main_window.current_series.key) == ("CT", 133)
    assert "CT" in item.text(0) and "133 images" in item.text(0)
    assert "loaded" in main_window.statusBar().currentMessage()
    assert view.geometry_.orientation_labels() == {"left": "R", "right": "L", "top": "A", "bottom": "P"}


def test_status_bar_shows_voxel_lps_and_hu_under_the_cursor(lidc_window, qtbot):
    viewer = lidc_window.viewer
    view = viewer.active_view
    viewer.state.set_slice("axial", 66)
    target = (256.0, 200.0, 66.0)
    pos = widget_pos_of_voxel(view, target)
    view.scene().sigMouseMoved.emit(view.mapToScene(pos.toPoint()))
    cursor = viewer.last_cursor
    assert cursor is not None
    x, y, z = cursor["voxel"]
    assert abs(x - 256) <= 1 and abs(y - 200) <= 1 and z == 66
    assert cursor["value"] == float(viewer.volume.array[z, y, x])
    np.testing.assert_allclose(cursor["lps"], viewer.volume.index_to_lps(
        view.geometry_.index_from_scene(66, *scene_of_widget_pos(view, pos))), atol=1e-6)
    text = lidc_window.cursor_label.text()
    assert f"Voxel ({x}, {y}, {z})" in text and "LPS (" in text and text.endswith("HU")


def test_scroll_with_keys_and_wheel(lidc_window, qtbot):
    viewer = lidc_window.viewer
    view = viewer.active_view
    view.setFocus()
    state = viewer.state
    volume = viewer.volume
    z_mm = lambda: float(volume.index_to_lps((0, 0, state.slice_index("axial")))[2])  # noqa: E731 (LPS +z: head)
    # head first, as PACS: image 1 is the most superior slice (the array ascends towards the head: index 132)
    assert state.slice_index("axial") == 132 and state.display_number("axial") == 1
    top = z_mm()
    assert top == max(float(volume.index_to_lps((0, 0, k))[2]) for k in range(133))
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert z_mm() < top  # Down goes towards the feet
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert state.display_number("axial") == 3 and state.slice_index("axial") == 130
    qtbot.keyClick(view, Qt.Key.Key_PageDown)
    assert state.display_number("axial") == 13
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert state.display_number("axial") == 12
    qtbot.keyClick(view, Qt.Key.Key_End)
    assert state.slice_index("axial") == 0 and view.k == 0  # the last image: the most inferior slice
    assert viewer.overlay_lines(view)["bottom-left"][0] == "Im 133/133"
    qtbot.keyClick(view, Qt.Key.Key_PageUp)
    assert state.display_number("axial") == 123
    qtbot.keyClick(view, Qt.Key.Key_Home)
    assert state.display_number("axial") == 1
    assert viewer.overlay_lines(view)["bottom-left"][0] == "Im 1/133"
    wheel(view.viewport(), centre_of(view), -3)  # three notches wheel-down (towards the user): three images on
    assert state.display_number("axial") == 4 and z_mm() < top
    wheel(view.viewport(), centre_of(view), 1)
    assert state.display_number("axial") == 3
    before = view.image_item.image.copy()
    wheel(view.viewport(), centre_of(view), -40)
    assert state.display_number("axial") == 43 and not np.array_equal(before, view.image_item.image)
    np.testing.assert_array_equal(view.image_item.image, viewer.display_image(viewer.volume.array[133 - 43]))
    # "as acquired" counts in InstanceNumber order: LIDC's InstanceNumber 1 is also its top slice
    viewer.set_image_order("as_acquired")
    assert volume.instance_numbers[state.slice_for_number("axial", 1)] == 1
    viewer.set_image_order("head_first")


def test_cine_plays_and_pauses_with_space(lidc_window, qtbot):
    viewer = lidc_window.viewer
    view = viewer.active_view
    view.setFocus()
    viewer.set_cine_fps(50)
    qtbot.keyClick(view, Qt.Key.Key_Space)
    assert viewer.cine_running
    qtbot.waitUntil(lambda: viewer.state.display_number("axial") >= 4, timeout=3000)  # plays head to feet
    qtbot.keyClick(view, Qt.Key.Key_Space)
    assert not viewer.cine_running
    k = viewer.state.slice_index("axial")
    qtbot.wait(100)
    assert viewer.state.slice_index("axial") == k


def test_window_level_by_left_drag(lidc_window, qtbot):
    viewer = lidc_window.viewer
    view = viewer.active_view
    start = viewer.state.window
    before = view.image_item.image.copy()
    c = centre_of(view)
    drag(view.viewport(), c, c + QPointF(120, 0))  # right: wider
    wider = viewer.state.window
    assert wider.width > start.width + 100 and wider.center == pytest.approx(start.center)
    assert viewer.state.window_name == "custom"
    drag(view.viewport(), c, c + QPointF(0, 80))  # down: higher level
    assert viewer.state.window.center > wider.center + 50
    assert not np.array_equal(before, view.image_item.image)
    np.testing.assert_array_equal(view.image_item.image, viewer.display_image(viewer.volume.array[view.k]))
    assert lidc_window.window_label.text().startswith("W ")
    # the middle button pans and does not touch the window
    window = viewer.state.window
    x_range = view.view_box.viewRange()[0]
    drag(view.viewport(), c, c + QPointF(60, 0), button=Qt.MouseButton.MiddleButton)
    assert viewer.state.window == window
    assert view.view_box.viewRange()[0][0] < x_range[0] - 10
    # the right button zooms (drag up = in)
    zoom = view.zoom()
    drag(view.viewport(), c, c - QPointF(0, 60), button=Qt.MouseButton.RightButton)
    assert view.zoom() > zoom * 1.5 and viewer.state.zoom("axial") == pytest.approx(view.zoom())
    qtbot.keyClick(view, Qt.Key.Key_R)  # reset: fit and DICOM window
    assert viewer.state.window == Window(-600, 1600)
    assert view.zoom() == pytest.approx(zoom, rel=0.01)


def test_preset_keys(lidc_window, qtbot):
    viewer = lidc_window.viewer
    view = viewer.active_view
    view.setFocus()
    expected = {Qt.Key.Key_1: Window(-600, 1500), Qt.Key.Key_2: Window(50, 350), Qt.Key.Key_3: Window(480, 2500),
                Qt.Key.Key_4: Window(40, 80), Qt.Key.Key_5: Window(50, 400), Qt.Key.Key_6: Window(90, 150)}
    for key, window in expected.items():
        qtbot.keyClick(view, key)
        assert viewer.state.window == window
    assert viewer.state.window_name == "liver"
    assert "(liver)" in viewer.overlay_lines(view)["bottom-right"][0]
    qtbot.keyClick(view, Qt.Key.Key_0)
    assert viewer.state.window == Window(-600, 1600) and viewer.state.window_name == "VOI"
    grey = view.image_item.image.copy()
    qtbot.keyClick(view, Qt.Key.Key_I)
    assert viewer.state.invert
    np.testing.assert_array_equal(view.image_item.image, 255 - grey)
    qtbot.keyClick(view, Qt.Key.Key_I)
    qtbot.keyClick(view, Qt.Key.Key_A)
    assert viewer.state.window_name == "auto"
    # typing digits into the tag search must not change the window
    lidc_window.tags_dock.show()
    lidc_window.tags_dock.raise_()
    lidc_window.tags.search.setFocus()
    window = viewer.state.window
    qtbot.keyClicks(lidc_window.tags.search, "13")
    assert viewer.state.window == window and lidc_window.tags.search.text() == "13"


def test_mpr_click_moves_the_crosshair_to_the_same_lps_point_in_all_views(lidc_window, qtbot):
    viewer = lidc_window.viewer
    viewer.set_layout("1x3")
    qtbot.wait(50)
    views = viewer.views
    assert all(v.isVisible() for v in views.values())
    viewer.set_tool("crosshair")
    axial = views[Plane.AXIAL]
    viewer.state.set_slice("axial", 70)
    pos = widget_pos_of_voxel(axial, (310.0, 240.0, 70.0))
    click(axial.viewport(), pos)
    expected = axial.geometry_.lps_from_index(axial.geometry_.index_from_scene(70, *scene_of_widget_pos(axial, pos)))
    np.testing.assert_allclose(viewer.state.position_lps, expected, atol=1e-6)
    spacing = viewer.volume.spacing  # (z, y, x)
    for plane, view in views.items():
        lps = view.crosshair_lps()
        # each view shows its nearest slice, so the through-plane coordinate is within half a voxel
        np.testing.assert_allclose(lps, expected, atol=0.5 * spacing.max() + 1e-6, err_msg=plane.value)
    index = viewer.volume.lps_to_index(expected)
    assert views[Plane.AXIAL].k == 70
    assert views[Plane.CORONAL].k == int(np.floor(index[1] + 0.5))
    assert views[Plane.SAGITTAL].k == int(np.floor(index[0] + 0.5))
    # and back: a click in the sagittal view moves the axial slice and the coronal slice
    sagittal = views[Plane.SAGITTAL]
    pos = widget_pos_of_voxel(sagittal, (index[0], 100.0, 30.0))
    click(sagittal.viewport(), pos)
    expected = sagittal.geometry_.lps_from_index(
        sagittal.geometry_.index_from_scene(sagittal.k, *scene_of_widget_pos(sagittal, pos)))
    for plane, view in views.items():
        np.testing.assert_allclose(view.crosshair_lps(), expected, atol=0.5 * spacing.max() + 1e-6,
                                   err_msg=plane.value)
    assert abs(views[Plane.AXIAL].k - 30) <= 1 and abs(views[Plane.CORONAL].k - 100) <= 1


def test_reformats_have_physical_aspect(lidc_window, qtbot):
    viewer = lidc_window.viewer
    viewer.set_layout("1x3")
    qtbot.wait(50)
    coronal = viewer.views[Plane.CORONAL]
    # 133 slices of 2.5 mm against 512 columns of 0.703 mm: on screen the image is 332.5 mm by 360 mm
    rect = coronal.image_item.mapRectToView(coronal.image_item.boundingRect())
    assert rect.width() == pytest.approx(512 * 0.703125) and rect.height() == pytest.approx(133 * 2.5)
    top_left = coronal.view_pos_of_scene(0, 0)
    bottom_right = coronal.view_pos_of_scene(rect.width(), rect.height())
    on_screen = (bottom_right.y() - top_left.y()) / (bottom_right.x() - top_left.x())
    assert on_screen == pytest.approx(332.5 / 360.0, rel=0.01)
    assert coronal.geometry_.orientation_labels() == {"left": "R", "right": "L", "top": "S", "bottom": "I"}


def test_double_click_maximises_a_view_and_back(lidc_window, qtbot):
    viewer = lidc_window.viewer
    viewer.set_layout("1x3")
    qtbot.wait(30)
    sagittal = viewer.views[Plane.SAGITTAL]
    viewer.toggle_maximized(sagittal)
    assert viewer.layout_name == "1x1" and viewer.visible_views() == [sagittal]
    viewer.toggle_maximized(sagittal)
    assert viewer.layout_name == "1x3" and len(viewer.visible_views()) == 3


def test_length_measurement_equals_the_known_distance(lidc_window, qtbot):
    viewer = lidc_window.viewer
    view = viewer.active_view
    viewer.state.set_slice("axial", 60)
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_L)
    assert viewer.tool.value == "length"
    # voxel centres 200 columns apart on one row: 200 x 0.703125 mm = 140.625 mm
    p0 = widget_pos_of_voxel(view, (150.0, 250.0, 60.0))
    p1 = widget_pos_of_voxel(view, (350.0, 250.0, 60.0))
    drag(view.viewport(), p0, p1)
    assert len(viewer.measurements) == 1
    m = viewer.measurements[0]
    assert m.kind == "length" and m.plane == "axial" and m.slice_index == 60
    # exactly the distance between the points the mouse gave, through the affine ...
    a = viewer.volume.index_to_lps(view.geometry_.index_from_scene(60, *scene_of_widget_pos(view, p0)))
    b = viewer.volume.index_to_lps(view.geometry_.index_from_scene(60, *scene_of_widget_pos(view, p1)))
    assert m.result["length_mm"] == pytest.approx(float(np.linalg.norm(b - a)), abs=1e-6)
    # ... which is the known 140.625 mm to within one screen pixel
    mm_per_screen_pixel = view.view_box.viewPixelSize()[0]
    assert abs(m.result["length_mm"] - 140.625) <= 1.5 * mm_per_screen_pixel
    rows = lidc_window.measurements_panel.rows()
    assert len(rows) == 1 and rows[0][1] == "Length" and rows[0][2].endswith(" mm") and rows[0][3] == "Axi 73"
    assert viewer.overlay_lines(view)["bottom-left"][0] == "Im 73/133"  # the list names the image as the view does
    assert view.graphics[m.id].label.toPlainText() == m.summary()
    # only on its own slice
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert not view.graphics[m.id].roi.isVisible()
    # selecting it in the list jumps back to its slice; Delete removes it
    tree = lidc_window.measurements_panel.tree
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=tree.visualItemRect(tree.topLevelItem(0)).center())
    assert viewer.state.slice_index("axial") == 60 and view.graphics[m.id].roi.isVisible()
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert viewer.measurements == [] and lidc_window.measurements_panel.rows() == []
    assert m.id not in view.graphics


def test_ellipse_rectangle_and_probe(lidc_window, qtbot):
    viewer = lidc_window.viewer
    view = viewer.active_view
    volume = viewer.volume
    viewer.state.set_slice("axial", 80)
    viewer.set_tool("ellipse")
    p0 = widget_pos_of_voxel(view, (300.0, 200.0, 80.0))
    p1 = widget_pos_of_voxel(view, (360.0, 240.0, 80.0))
    drag(view.viewport(), p0, p1)
    ellipse = viewer.measurements[-1]
    r = ellipse.result
    assert ellipse.kind == "ellipse" and r["n_pixels"] > 1000
    assert r["area_mm2"] == pytest.approx(np.pi * 30 * 20 * 0.703125**2, rel=0.05)
    (_, r0, c0), (_, r1, c1) = (view.geometry_.display_from_index(p) for p in ellipse.points)
    rows, cols = np.mgrid[0:512, 0:512]
    inside = (((rows - (r0 + r1) / 2) / (abs(r1 - r0) / 2)) ** 2
              + ((cols - (c0 + c1) / 2) / (abs(c1 - c0) / 2)) ** 2 <= 1)
    values = volume.array[80][inside].astype(float)
    assert r["mean"] == pytest.approx(values.mean()) and r["sd"] == pytest.approx(values.std())
    assert (r["min"], r["max"]) == (values.min(), values.max())
    viewer.set_tool("rectangle")  # drawn elsewhere: a press on the ellipse's handle would edit the ellipse
    drag(view.viewport(), widget_pos_of_voxel(view, (150.0, 300.0, 80.0)),
         widget_pos_of_voxel(view, (210.0, 340.0, 80.0)))
    assert viewer.measurements[-1].kind == "rectangle"
    rect = viewer.measurements[-1].result
    assert rect["area_mm2"] == pytest.approx(60 * 40 * 0.703125**2, rel=0.05) and rect["n_pixels"] > r["n_pixels"]
    viewer.set_tool("probe")
    pos = widget_pos_of_voxel(view, (256.0, 256.0, 80.0))
    click(view.viewport(), pos)
    probe = viewer.measurements[-1]
    x, y, z = np.floor(np.asarray(probe.points[0]) + 0.5).astype(int)
    assert probe.kind == "probe" and probe.result["value"] == float(volume.array[z, y, x])
    assert [row[1] for row in lidc_window.measurements_panel.rows()] == ["Ellipse", "Rectangle", "Probe"]
    # measurements stay with the series for the session
    key = lidc_window.current_series.key
    with qtbot.waitSignal(lidc_window.series_loaded, timeout=30000):
        lidc_window.open_series(key)
    assert len(viewer.measurements) == 3


def test_tag_browser_search_finds_a_tag(lidc_window, qtbot):
    window = lidc_window
    window.tags_dock.show()
    window.tags_dock.raise_()
    window.viewer.state.set_slice("axial", 10)
    inst, _frame = window.current_instance()
    qtbot.waitUntil(lambda: window.tags.shown_path == inst.path, timeout=10000)
    # as the view: head first
    assert window.tags.model.rowCount() > 20 and "Image 123/133" in window.tags.caption.text()
    assert window.viewer.overlay_lines(window.viewer.active_view)["bottom-left"][0] == "Im 123/133"
    window.tags.search.setText("0028,0030")
    rows = window.tags.visible_rows()
    assert [r[:2] for r in rows] == [("(0028,0030)", "Pixel Spacing")] and "0.703125" in rows[0][2]
    window.tags.search.setText("sopinstanceuid")
    assert any(r[0] == "(0008,0018)" and r[2] == inst.sop_instance_uid for r in window.tags.visible_rows())
    window.tags.search.setText("00200032")  # compact tag form
    assert [r[1] for r in window.tags.visible_rows()] == ["Image Position (Patient)"]
    window.tags.search.setText("no such attribute at all")
    assert window.tags.visible_rows() == []
    window.tags.search.clear()
    # scrolling to another image shows that image's tags
    window.viewer.state.set_slice("axial", 11)
    def shows_current_image():
        assert window.tags.shown_path == window.current_instance()[0].path, window.tags.caption.text()

    qtbot.waitUntil(shows_current_image, timeout=10000)


def test_series_browser_thumbnail_and_drop_on_a_view(lidc_window, qtbot):
    from PySide6.QtGui import QDropEvent

    from viewer.qt.canvas import SERIES_MIME
    from viewer.qt.series_browser import COL_SERIES

    window = lidc_window
    key = window.current_series.key
    item = window.browser.item_for(key)

    def has_thumbnail():  # the placeholder is flat dark grey; the thumbnail shows the chest
        image = item.icon(COL_SERIES).pixmap(48, 48).toImage()
        assert len({image.pixelColor(x, 24).lightness() for x in range(0, 48, 3)}) > 4

    qtbot.waitUntil(has_thumbnail, timeout=10000)
    mime = window.browser.mimeData([item])
    assert bytes(mime.data(SERIES_MIME)).decode() == key
    view = window.viewer.views[Plane.AXIAL]
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.series_loaded, timeout=30000) as blocker:
        view.dropEvent(event)
    assert blocker.args == [key]


def test_warning_badge_for_gantry_tilt(main_window, qtbot, shared_data):
    tilt = shared_data / "ct-gantry-tilt" / "GE_head_tilt_uneven"
    if not tilt.exists():
        pytest.skip("ct-gantry-tilt data not available")
    open_and_wait(qtbot, main_window, [tilt])
    key = main_window.current_series.key
    text = main_window.browser.warnings_text(key)
    assert "tilt" in text.lower()
    assert "⚠" in main_window.statusBar().currentMessage()


def test_sagittal_decubitus_mr_opens_in_its_plane_upright(main_window, qtbot, mr_sagittal_dir):
    open_and_wait(qtbot, main_window, [mr_sagittal_dir])
    viewer = main_window.viewer
    assert viewer.state.native_plane is Plane.SAGITTAL
    assert viewer.visible_views() == [viewer.views[Plane.SAGITTAL]]
    view = viewer.views[Plane.SAGITTAL]
    assert view.geometry_.orientation_labels() == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    assert viewer.state.window_name == "VOI" and viewer.value_unit() == ""
    viewer.set_layout("1x3")
    qtbot.wait(30)
    axial = viewer.views[Plane.AXIAL]
    assert axial.geometry_.orientation_labels() == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    # the axial reformat of 4.8 mm sagittal slices is wide pixels, drawn at their physical size
    assert axial.geometry_.pixel_spacing == pytest.approx((1.015625, viewer.volume.spacing[0]), rel=1e-3)


def test_overlay_layers_follow_the_slice_in_every_view(lidc_window, qtbot):
    from viewer.qt.layers import VolumeImageLayer

    viewer = lidc_window.viewer
    viewer.set_layout("1x3")
    shape = viewer.volume.shape
    rgba = np.zeros(shape + (4,), np.uint8)
    rgba[40:60, 200:260, 220:300] = (255, 0, 0, 120)
    layer = VolumeImageLayer("test mask", rgba)
    viewer.add_layer(layer)
    viewer.state.set_position((250.0, 230.0, 50.0))
    for view in viewer.views.values():
        item = layer._items[view][0]
        np.testing.assert_array_equal(item.image, view.geometry_.take(rgba, view.k))
        assert item.image[..., 3].max() == 120
        rect = item.mapRectToView(item.boundingRect())
        assert (rect.width(), rect.height()) == pytest.approx(view.geometry_.scene_size)
    viewer.state.set_slice("axial", 10)
    assert layer._items[viewer.views[Plane.AXIAL]][0].image[..., 3].max() == 0
    viewer.remove_layer(layer)
    assert not layer._items


def test_settings_persist_layout_recent_and_folder(main_window, qtbot, lidc_dir, settings):
    open_and_wait(qtbot, main_window, [lidc_dir])
    main_window.viewer.set_layout("1x3")
    main_window.fps_box.setValue(17)
    main_window.close()
    from viewer.qt.settings import Settings

    again = Settings(type(settings.q)(settings.q.fileName(), settings.q.format()))
    assert again.layout == "1x3" and again.cine_fps == 17
    assert again.recent[0] == [str(lidc_dir)] and again.last_folder == str(lidc_dir)


def test_about_says_research_use_only(main_window):
    text = main_window.about_text().lower()
    assert "research use only" in text and "not for diagnosis" in text
    assert "research use only" in main_window.windowTitle().lower()


def test_screenshot_to_png_and_clipboard(lidc_window, qtbot, tmp_path):
    from PySide6.QtGui import QGuiApplication, QImage

    out = tmp_path / "shot.png"
    assert lidc_window.save_screenshot(str(out))
    image = QImage(str(out))
    assert image.width() == lidc_window.viewer.width() and image.height() == lidc_window.viewer.height()
    lidc_window.copy_screenshot()
    assert not QGuiApplication.clipboard().pixmap().isNull()


def test_empty_folder_reports_no_images(main_window, qtbot, tmp_path):
    (tmp_path / "notes.txt").write_text("not dicom")
    with qtbot.waitSignal(main_window.catalog_loaded, timeout=10000):
        main_window.open_paths([str(tmp_path)])
    qtbot.wait(20)
    assert "No DICOM images" in main_window.statusBar().currentMessage()
    assert main_window.viewer.state is None


def test_window_presets_can_be_edited_and_persist(lidc_window, qtbot, settings):
    from viewer.core.windowing import CT_PRESETS, Preset
    from viewer.qt.dialogs import PresetsDialog
    from viewer.qt.settings import Settings

    dialog = PresetsDialog(CT_PRESETS)
    assert [p.label for p in dialog.presets()] == [p.label for p in CT_PRESETS]
    dialog.table.item(0, 1).setText("1400")  # lung width
    assert dialog.presets()[0] == Preset("lung", "Lung", -600, 1400)
    dialog.deleteLater()
    lidc_window.apply_presets((Preset("wide", "Wide", 0, 4000), Preset("lung", "Lung", -500, 1400)))
    viewer = lidc_window.viewer
    view = viewer.active_view
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_1)
    assert viewer.state.window == Window(0, 4000)
    qtbot.keyClick(view, Qt.Key.Key_2)
    assert viewer.state.window == Window(-500, 1400)
    qtbot.keyClick(view, Qt.Key.Key_3)  # no third preset any more
    assert viewer.state.window == Window(-500, 1400)
    assert any("Wide" in a.text() for a in lidc_window.window_menu.actions())
    again = Settings(type(settings.q)(settings.q.fileName(), settings.q.format()))
    assert [p.name for p in again.presets] == ["wide", "lung"]
