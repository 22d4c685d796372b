"""Text over the views never collides, at small and large windows; failures and warnings are said in the view."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from tests.conftest import data_path
from tests.core.test_load_report import truncated_lidc
from tests.qt.conftest import LOAD_TIMEOUT_MS, click, open_and_wait, two_detections
from viewer.qt.overlays import BoxesItem
from viewer.qt.text_layout import overlapping_pairs

SIZES = [(1024, 700), (1440, 900), (1920, 1080)]  # 1440 x 900: where the issue saw 1x3 texts overlap


def settle(qtbot, ms: int = 60) -> None:
    for _ in range(3):
        QApplication.processEvents()
    qtbot.wait(ms)


def drawn_text_boxes(view) -> list:
    """Every text box the view painted in its last frame: its own (corner texts, letters, scale bar, notice) and
    its finding labels."""
    view.viewport().grab()  # paints the scene (labels) and then the foreground (the view's texts)
    boxes = list(view.overlay_texts())
    for item in view.view_box.childGroup.childItems():
        if isinstance(item, BoxesItem) and item.isVisible():
            boxes += [box for box, _colour, _selected in item.label_boxes]
    return boxes


@pytest.fixture
def lidc_with_findings(main_window, qtbot, lidc_dir):
    """LIDC-IDRI-0001 with two detections; the linked point on finding #1 so every plane cuts its box."""
    open_and_wait(qtbot, main_window, [lidc_dir])
    main_window.inference.apply_result(two_detections(main_window.viewer.volume), "Test detector")
    main_window.viewer.go_to((210, 210, 65))
    return main_window


def test_no_text_box_overlaps_another_or_leaves_its_view(lidc_with_findings, qtbot):
    window = lidc_with_findings
    viewer = window.viewer
    seen = []
    for size in SIZES:
        window.resize(*size)
        for layout in ("1x1", "1x3"):
            viewer.set_layout(layout)
            settle(qtbot)
            for view in viewer.visible_views():
                boxes = drawn_text_boxes(view)
                width, height = view.viewport().width(), view.viewport().height()
                where = f"{layout} at {size}, {view.plane.value} ({width}x{height})"
                assert overlapping_pairs(boxes) == [], where
                assert [b for b in boxes if not b.inside(width, height)] == [], where
                kinds = [b.kind for b in boxes]
                assert kinds.count("letter") == 4, where
                assert kinds.count("corner") >= 6, f"{where}: corner texts were dropped: {boxes}"
                assert kinds.count("label") >= 1, f"{where}: the finding's label found no place"
                seen.append((size, layout, kinds.count("scale")))
    assert all(n == 1 for size, _, n in seen if size == (1920, 1080)), "a large view always has its scale bar"


def test_small_window_keeps_the_image_large_and_panels_collapse(lidc_with_findings, qtbot):
    window = lidc_with_findings
    viewer = window.viewer
    viewer.set_layout("1x3")
    window.resize(1024, 700)
    settle(qtbot, 120)
    with_panels = viewer.active_view.zoom()
    window.action_hide_panels.trigger()
    settle(qtbot, 120)
    assert not any(d.isVisible() for d in window.docks())
    viewer.fit()
    settle(qtbot)
    collapsed = viewer.active_view.zoom()
    window.action_hide_panels.trigger()
    settle(qtbot, 120)
    assert window.series_dock.isVisible() and window.ai_dock.isVisible()
    # measured here: about 0.37 with the panels and 0.64 without (0.23 before the docks were capped)
    assert with_panels >= 0.5 * collapsed, (with_panels, collapsed)
    # every toolbar button is on screen at 1024 px (the tools wrap to a second row instead of overflowing)
    for bar in (window.toolbar, window.tools_toolbar):
        for action in bar.actions():
            if not action.isSeparator():
                assert bar.widgetForAction(action).isVisible(), action.text()


def test_truncated_file_shows_an_error_in_the_view_and_blocks_run(main_window, qtbot, tmp_path):
    folder, _victim = truncated_lidc(tmp_path)
    window = open_and_wait(qtbot, main_window, [folder])
    volume = window.viewer.volume
    assert len(volume.failed_slices) == 1
    banner = window.banner
    assert banner.isVisible() and banner.level == "error"
    number = window.viewer.state.display_number(window.viewer.state.native_plane, volume.failed_slices[0])
    assert banner.text.startswith(f"Image {number} of 133 could not be decoded"), "numbered as the views number it"
    run = window.ai_panel.run_button
    assert window.ai_panel.current_model() is not None, "the built-in models are listed"
    assert not run.isEnabled()
    assert "could not be decoded" in run.toolTip()
    from viewer.qt import window_chrome

    window_chrome.update_ai_menu(window)
    assert not window.action_run_model.isEnabled()
    assert window.inference.start() is None
    # on the blank slice itself, the view says so in its middle
    window.viewer.set_layout("1x1")
    window.viewer.go_to((256, 256, volume.failed_slices[0]))
    settle(qtbot)
    view = window.viewer.active_view
    notices = [b for b in drawn_text_boxes(view) if b.kind == "notice"]
    assert [b.text for b in notices] == ["This slice could not be decoded (left blank)"]
    assert any(b.text.startswith(f"Im {number}/") for b in drawn_text_boxes(view)), "the same number in the corner"
    window.viewer.go_to((256, 256, (volume.failed_slices[0] + 5) % volume.shape[0]))
    settle(qtbot)
    assert not [b for b in drawn_text_boxes(view) if b.kind == "notice"]
    dialog = banner.show_details()
    assert "[decode_failed]" in dialog.warnings_view.toPlainText()
    dialog.close()


def test_folder_without_dicom_says_so_in_the_views(main_window, qtbot, tmp_path):
    folder = tmp_path / "not-dicom"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(300))
    with qtbot.waitSignal(main_window.catalog_loaded, timeout=LOAD_TIMEOUT_MS):
        main_window.open_paths([str(folder)])
    settle(qtbot)
    banner = main_window.banner
    assert banner.isVisible() and banner.level == "error"
    assert banner.text == "No DICOM images found in not-dicom — 2 files skipped"
    view = main_window.viewer.active_view
    notices = [b.text for b in drawn_text_boxes(view) if b.kind == "notice"]
    assert " ".join(notices) == banner.text, "the views say it in their middle, wrapped, not black"
    assert not main_window.ai_panel.run_button.isEnabled()
    click(view.viewport(), view.viewport().rect().center())  # the view's message opens the details too
    assert banner.dialog is not None and banner.dialog.isVisible()
    banner.dialog.close()
    settle(qtbot)
    qtbot.mouseClick(banner.details_button, Qt.MouseButton.LeftButton)
    dialog = banner.dialog
    assert dialog is not None and dialog.isVisible()
    table = dialog.skipped_table
    rows = {table.item(r, 0).text().rsplit("/", 1)[-1]: table.item(r, 1).text() for r in range(table.rowCount())}
    assert set(rows) == {"notes.txt", "photo.jpg"} and all(rows.values())
    dialog.close()


def test_tilt_warning_is_shown_over_the_view_with_details_on_click(main_window, qtbot):
    folder = data_path("ct-gantry-tilt")
    window = open_and_wait(qtbot, main_window, [folder])
    tilted = next((s for s in window.catalog.all_series() if s.n_instances == 28), None)
    assert tilted is not None
    if window.current_series.key != tilted.key:
        with qtbot.waitSignal(window.series_loaded, timeout=LOAD_TIMEOUT_MS):
            window.open_series(tilted.key)
    settle(qtbot)
    banner = window.banner
    assert banner.isVisible() and banner.level == "warning"
    assert banner.text.startswith("Gantry tilt")
    assert "Gantry tilt" in banner.label.text() or banner.label.text().endswith("…")
    assert "(see above the image)" in window.statusBar().currentMessage()
    qtbot.mouseClick(banner, Qt.MouseButton.LeftButton)  # a click anywhere on the strip opens the details
    dialog = banner.dialog
    assert dialog is not None and dialog.isVisible()
    text = dialog.warnings_view.toPlainText()
    assert "[gantry_tilt]" in text and "[uneven_spacing]" in text
    assert dialog.skipped_table.rowCount() == 3
    dialog.close()
    qtbot.mouseClick(banner.close_button, Qt.MouseButton.LeftButton)
    assert not banner.isVisible()
