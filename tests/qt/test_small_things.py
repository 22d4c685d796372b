"""Small things a reader notices: keys reach the views from any panel, the read-out follows the slice, the title
names the app once, single click opens a series and look-alike series are told apart, the Min. score control
works with the mouse, rejected findings look different and can be hidden, exports default to a user folder and
NIfTI export of overlapping segments asks how."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit

from tests.qt.conftest import open_and_wait, wheel, widget_pos_of_voxel

APP = "Hounsfield"


def axial_slice(window) -> int:
    return window.viewer.state.slice_index("axial")


# ---- keys from any panel --------------------------------------------------------------------------------------------
def _focus(qtbot, widget):
    widget.window().activateWindow()
    widget.setFocus(Qt.FocusReason.OtherFocusReason)
    qtbot.waitUntil(widget.hasFocus, timeout=2000)


def test_slice_keys_work_with_focus_in_the_panels(lidc_window, qtbot):
    window = lidc_window
    window.viewer.state.set_slice("axial", 60)
    for dock, widget, arrows in ((window.series_dock, window.browser, True),
                                 (window.findings_dock, window.findings_panel.tree, False),
                                 (window.tags_dock, window.tags, True)):
        dock.show()
        dock.raise_()
        qtbot.wait(10)
        _focus(qtbot, widget)
        before = axial_slice(window)
        if arrows:
            qtbot.keyClick(widget, Qt.Key.Key_Down)
            assert abs(axial_slice(window) - before) == 1, f"Down in {widget.objectName()} did not move the slice"
            qtbot.keyClick(widget, Qt.Key.Key_Up)
            assert axial_slice(window) == before
        qtbot.keyClick(widget, Qt.Key.Key_PageDown)
        assert abs(axial_slice(window) - before) == 10, f"PageDown in {widget.objectName()} did not page"
        assert widget.hasFocus(), "the key took the focus away from the panel"
        qtbot.keyClick(widget, Qt.Key.Key_PageUp)
        assert axial_slice(window) == before
        qtbot.keyClick(widget, Qt.Key.Key_1)  # the first window preset
        assert window.viewer.state.window_name == window.viewer.presets[0].name
        window.viewer.state.reset_window()


def test_up_down_walk_the_findings_list(lidc_window, qtbot):
    from tests.qt.conftest import two_detections

    window = lidc_window
    window.findings_panel.set_min_score(0.5)
    window.inference.apply_result(two_detections(window.viewer.volume), "Test detector")
    window.findings_dock.raise_()
    tree = window.findings_panel.tree
    _focus(qtbot, tree)
    tree.setCurrentItem(tree.topLevelItem(0))
    first = axial_slice(window)
    qtbot.keyClick(tree, Qt.Key.Key_Down)
    assert tree.currentItem() is tree.topLevelItem(1), "Down in the findings list walks to the next finding"
    assert axial_slice(window) != first  # ... which jumps to it
    at_second = axial_slice(window)
    qtbot.keyClick(tree, Qt.Key.Key_PageDown)
    assert abs(axial_slice(window) - at_second) == 10 and tree.currentItem() is tree.topLevelItem(1)


def test_slice_keys_stay_in_text_fields_and_spin_boxes(lidc_window, qtbot):
    window = lidc_window
    window.viewer.state.set_slice("axial", 60)
    window.tags_dock.show()
    window.tags_dock.raise_()
    fields = window.tags.findChildren(QLineEdit)
    assert fields, "the tag browser has a search field"
    field = fields[0]
    _focus(qtbot, field)
    field.setText("Patient")
    field.setCursorPosition(3)
    for key in (Qt.Key.Key_Down, Qt.Key.Key_PageDown, Qt.Key.Key_Up, Qt.Key.Key_End, Qt.Key.Key_1):
        qtbot.keyClick(field, key)
    assert axial_slice(window) == 60, "a key typed in a text field moved the slice"
    assert field.text() == "Patient1" and field.cursorPosition() == 8  # End, then the 1 went into the text
    fps = window.fps_box
    _focus(qtbot, fps)
    value = fps.value()
    qtbot.keyClick(fps, Qt.Key.Key_Up)
    assert fps.value() == value + 1 and axial_slice(window) == 60


# ---- status-bar read-out ---------------------------------------------------------------------------------------------
def test_readout_follows_slice_changes_under_a_still_mouse(lidc_window, qtbot):
    viewer = lidc_window.viewer
    view = viewer.active_view
    viewer.state.set_slice("axial", 66)
    pos = widget_pos_of_voxel(view, (256.0, 200.0, 66.0))
    view.scene().sigMouseMoved.emit(view.mapToScene(pos.toPoint()))
    assert viewer.last_cursor["voxel"][2] == 66
    _focus(qtbot, lidc_window.browser)
    qtbot.keyClick(lidc_window.browser, Qt.Key.Key_PageDown)  # the mouse does not move
    k = axial_slice(lidc_window)
    assert k != 66
    x, y, z = viewer.last_cursor["voxel"]
    assert z == k and abs(x - 256) <= 1 and abs(y - 200) <= 1
    assert viewer.last_cursor["value"] == float(viewer.volume.array[z, y, x])
    assert f"Voxel ({x}, {y}, {k})" in lidc_window.cursor_label.text()
    viewer.state.set_slice("axial", 3)  # any other way of changing the slice (cine, a finding, a click elsewhere)
    assert viewer.last_cursor["voxel"][2] == 3 and ", 3)" in lidc_window.cursor_label.text()
    wheel(view.viewport(), pos, -2)  # the wheel under the still mouse
    k = axial_slice(lidc_window)
    assert k != 3 and viewer.last_cursor["voxel"][2] == k and f", {k})" in lidc_window.cursor_label.text()


# ---- window title ---------------------------------------------------------------------------------------------------
def shown_title(window) -> str:
    """The title as the window manager shows it: Qt appends the application display name to a title that does not
    already end with it (QPlatformWindow::formatWindowTitle)."""
    from PySide6.QtGui import QGuiApplication

    title, name = window.windowTitle(), QGuiApplication.applicationDisplayName()
    return title if not name or title.endswith(name) else f"{title} \u2014 {name}"


def test_title_names_the_app_once(main_window, qtbot, lidc_dir, qapp):
    qapp.setApplicationDisplayName(APP)  # as create_application does
    try:
        assert shown_title(main_window).count(APP) == 1
        open_and_wait(qtbot, main_window, [lidc_dir])
        title = shown_title(main_window)
        assert title.count(APP) == 1 and title.endswith(APP)
        assert main_window.current_series.description in title or "LIDC" in title
        assert "Research use only" in title
    finally:
        qapp.setApplicationDisplayName("")


# ---- series browser -------------------------------------------------------------------------------------------------
def twin_series(lidc_dir, folder, n=3, same_file_names=False):
    """Two series of ``n`` LIDC slices that read the same (description, number, count): the second is a copy with a
    new SeriesInstanceUID (and SOP instance UIDs)."""
    import pydicom
    from pydicom.uid import generate_uid

    files = sorted(lidc_dir.rglob("*.dcm"))[:n]
    series_uid = generate_uid()
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.save_as(folder / "a" / path.name)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(folder / "b" / (path.name if same_file_names else f"copy-{path.name}"))
    return folder


def series_entries(window):
    browser = window.browser
    return {s.uid: browser.item_for(s.key).text(0) for s in window.catalog.all_series()}


def test_look_alike_series_are_told_apart(main_window, qtbot, lidc_dir, tmp_path):
    open_and_wait(qtbot, main_window, [twin_series(lidc_dir, tmp_path / "named")])
    texts = list(series_entries(main_window).values())
    assert len(texts) == 2 and texts[0] != texts[1]
    assert all("3 images" in t for t in texts)
    assert {t.splitlines()[-1] for t in texts} == {"000001.dcm", "copy-000001.dcm"}
    for series in main_window.catalog.all_series():
        tip = main_window.browser.item_for(series.key).toolTip(0)
        assert "CT Image" in tip and series.uid in tip and "First file" in tip


def test_look_alike_series_with_the_same_file_names(main_window, qtbot, lidc_dir, tmp_path):
    open_and_wait(qtbot, main_window, [twin_series(lidc_dir, tmp_path / "same", same_file_names=True)])
    entries = series_entries(main_window)
    assert len(set(entries.values())) == 2
    for uid, text in entries.items():
        assert text.splitlines()[-1].endswith(uid[-8:])


def test_distinguishing_line_names_the_sop_class_when_it_differs():
    from viewer.core.dicom.model import Series
    from viewer.qt.series_browser import distinguishing_lines

    ct = Series(key="1", uid="1.2.3.1", modality="CT", description="Chest", series_number=2,
                sop_class_uid="1.2.840.10008.5.1.4.1.1.2")
    enhanced = Series(key="2", uid="1.2.3.2", modality="CT", description="Chest", series_number=2,
                      sop_class_uid="1.2.840.10008.5.1.4.1.1.2.1")
    other = Series(key="3", uid="1.2.3.3", modality="CT", description="Abdomen", series_number=3,
                   sop_class_uid="1.2.840.10008.5.1.4.1.1.2")
    extra = distinguishing_lines([ct, enhanced, other])
    assert extra["1"].startswith("CT Image") and extra["2"].startswith("Enhanced CT Image")
    assert "3" not in extra  # an entry that reads differently gets no extra line


def test_a_single_click_opens_a_series(main_window, qtbot, lidc_dir, tmp_path):
    open_and_wait(qtbot, main_window, [twin_series(lidc_dir, tmp_path / "click")])
    browser = main_window.browser
    other = next(s for s in main_window.catalog.all_series() if s.key != main_window.current_series.key)
    item = browser.item_for(other.key)
    browser.scrollToItem(item)
    opened = []
    browser.series_activated.connect(opened.append)
    with qtbot.waitSignal(main_window.series_loaded, timeout=30000) as blocker:
        qtbot.mouseClick(browser.viewport(), Qt.MouseButton.LeftButton, pos=browser.visualItemRect(item).center())
    assert blocker.args == [other.key] and main_window.current_series.key == other.key
    qtbot.mouseDClick(browser.viewport(), Qt.MouseButton.LeftButton, pos=browser.visualItemRect(item).center())
    qtbot.wait(50)
    assert opened == [other.key], "a click on the shown series, or a double click, asked to open it again"


# ---- findings: Min. score with the mouse, rejected findings ---------------------------------------------------------
@pytest.fixture
def reviewed(lidc_window, qtbot, monkeypatch):
    """LIDC with two detections (scores 0.9 and 0.8) under review, the Findings panel in front."""
    from tests.qt.conftest import two_detections
    from viewer.qt.main_window import MainWindow

    monkeypatch.setattr(MainWindow, "ask_unsaved", lambda self, action: "discard")
    window = lidc_window
    window.findings_panel.set_min_score(0.5)
    window.inference.apply_result(two_detections(window.viewer.volume), "Test detector")
    window.inference.result_applied.emit("detection")
    window.findings_dock.raise_()
    qtbot.wait(20)
    assert len(window.annotation.editor.review) == 2
    return window


def _groove_x(slider, fraction):
    """Widget x of a value (as a fraction of the range) on a slider: where its handle's centre would be."""
    from PySide6.QtWidgets import QStyle, QStyleOptionSlider

    option = QStyleOptionSlider()
    slider.initStyleOption(option)
    groove = slider.style().subControlRect(QStyle.ComplexControl.CC_Slider, option,
                                           QStyle.SubControl.SC_SliderGroove, slider)
    handle = slider.style().subControlRect(QStyle.ComplexControl.CC_Slider, option,
                                           QStyle.SubControl.SC_SliderHandle, slider)
    return groove.x() + handle.width() / 2 + fraction * (groove.width() - handle.width())


def test_min_score_control_works_with_the_mouse(reviewed, qtbot):
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QStyle, QStyleOptionSpinBox

    window, panel = reviewed, reviewed.findings_panel
    layer = window.inference.layer("detection")
    slider = panel.slider
    assert slider.isVisible() and slider.width() >= 100, "the slider has room to be used"
    assert len(panel.rows()) == 2 and panel.below_label.text() == "0 below"
    y = slider.height() // 2
    qtbot.mouseClick(slider, Qt.MouseButton.LeftButton, pos=QPoint(round(_groove_x(slider, 0.85)), y))
    assert panel.min_score == pytest.approx(0.85, abs=0.02), "a click sets the threshold where it lands"
    assert [r[0] for r in panel.rows()] == ["1"] and panel.below_label.text() == "1 below"
    assert layer.min_score == panel.min_score and list(layer.shown_indices()) == [0]
    assert panel.score_box.value() == pytest.approx(panel.min_score, abs=1e-3)
    # drag the handle back down: press on it, move, release
    start = QPoint(round(_groove_x(slider, panel.min_score)), y)
    qtbot.mousePress(slider, Qt.MouseButton.LeftButton, pos=start)
    for fraction in (0.6, 0.4, 0.2):
        qtbot.mouseMove(slider, QPoint(round(_groove_x(slider, fraction)), y))
    qtbot.mouseRelease(slider, Qt.MouseButton.LeftButton, pos=QPoint(round(_groove_x(slider, 0.2)), y))
    assert panel.min_score == pytest.approx(0.2, abs=0.02) and len(panel.rows()) == 2
    assert list(layer.shown_indices()) == [0, 1]
    # the spin box's arrows, by mouse
    box = panel.score_box
    panel.set_min_score(0.85)
    option = QStyleOptionSpinBox()
    box.initStyleOption(option)
    down = box.style().subControlRect(QStyle.ComplexControl.CC_SpinBox, option, QStyle.SubControl.SC_SpinBoxDown, box)
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=down.center())
    assert panel.min_score == pytest.approx(0.80) and len(panel.rows()) == 2 and window.settings.min_score == 0.8


def test_rejected_finding_is_drawn_dashed_grey_and_can_be_hidden(reviewed, qtbot):
    from viewer.qt.overlays import REJECTED_BOX_COLOUR

    window, panel = reviewed, reviewed.findings_panel
    viewer = window.viewer
    layer = window.inference.layer("detection")
    viewer.state.set_slice("axial", 33)  # the second detection spans slices 30-35
    view = viewer.active_view
    item = layer._items[view][0]
    assert item.rejected == [False] and item.colours[0] != REJECTED_BOX_COLOUR
    window.annotation.review_finding(1, "reject")
    qtbot.wait(10)
    assert layer.statuses.get(1) == "rejected"
    assert item.rejected == [True] and item.colours[0] == REJECTED_BOX_COLOUR
    assert panel.item_for(1).foreground(0).color() != panel.item_for(0).foreground(0).color()
    checkbox = panel.show_rejected_box
    assert checkbox.isVisible() and checkbox.isChecked()
    qtbot.mouseClick(checkbox, Qt.MouseButton.LeftButton, pos=checkbox.rect().center())
    assert not checkbox.isChecked() and not layer.show_rejected
    assert list(layer.shown_indices()) == [0] and len(item.rects) == 0, "a rejected box is hidden by the toggle"
    assert panel.item_for(1) is not None, "the list keeps it (to accept it again)"
    window.annotation.review_finding(1, "accept")
    qtbot.wait(10)
    assert list(layer.shown_indices()) == [0, 1] and item.rejected == [False] and len(item.rects) == 1


def painted_fraction_along_top_edge(rejected: bool) -> float:
    """Paint one box as the view would and measure how much of its top edge is inked."""
    import numpy as np
    from PySide6.QtGui import QColor, QImage, QPainter

    from viewer.qt.overlays import BoxesItem

    item = BoxesItem()
    item.set_boxes(np.array([[20.0, 40.0, 180.0, 180.0]]), [""], [QColor(230, 25, 75)], [False], (200.0, 200.0),
                   [rejected])
    image = QImage(200, 200, QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    item.paint(painter, None, None)
    painter.end()
    inked = [image.pixelColor(x, 40).alpha() > 0 for x in range(30, 170)]
    return sum(inked) / len(inked)


def test_rejected_pen_is_dashed():
    assert painted_fraction_along_top_edge(False) > 0.95
    assert 0.2 < painted_fraction_along_top_edge(True) < 0.85


# ---- export dialogs start in a user exports folder ------------------------------------------------------------------
def test_export_dialog_starts_in_the_exports_folder_never_the_source(lidc_window, qtbot, lidc_dir, tmp_path,
                                                                      monkeypatch):
    from viewer.core.paths import user_exports_dir

    window, an = lidc_window, lidc_window.annotation
    source_dirs = {p.parent.resolve() for p in lidc_dir.rglob("*.dcm")} | {lidc_dir.resolve()}
    window.settings.exports_folder = str(next(iter(source_dirs)))  # say an old version remembered the source
    asked = []

    def answer(title, name, filter_, folder):
        asked.append(folder)
        return str(tmp_path / "mine" / name) if len(asked) == 1 else ""

    monkeypatch.setattr(an, "ask_save_path", answer)
    (tmp_path / "mine").mkdir()
    window.export_actions["findings"].trigger()
    start = Path(asked[0]).resolve()
    assert not any(start == s or s in start.parents for s in source_dirs), f"export dialog opened in {start}"
    assert start == user_exports_dir().resolve() and start.is_dir()
    qtbot.waitUntil(lambda: (tmp_path / "mine" / "findings.json").exists() and not an.busy, timeout=20000)
    assert window.settings.exports_folder == str(tmp_path / "mine")
    window.export_actions["seg"].trigger()
    assert Path(asked[1]) == tmp_path / "mine", "the folder exported to last is remembered"


def test_export_start_folder_refuses_folders_inside_the_sources(tmp_path, monkeypatch):
    from viewer.core.paths import export_start_folder, user_exports_dir

    monkeypatch.setenv("HOUNSFIELD_HOME", str(tmp_path / "home"))
    study = tmp_path / "study"
    (study / "series1").mkdir(parents=True)
    (study / "series1" / "IM0001").write_bytes(b"")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert export_start_folder("", [study]) == user_exports_dir()
    assert export_start_folder(study / "series1", [study]) == user_exports_dir()
    assert export_start_folder(study / "series1", [study / "series1" / "IM0001"]) == user_exports_dir()
    assert export_start_folder(elsewhere, [study]) == elsewhere.resolve()
    assert export_start_folder(tmp_path / "gone", [study]) == user_exports_dir()


# ---- NIfTI export of overlapping segments asks how ------------------------------------------------------------------
def test_nifti_export_of_overlapping_segments_asks_one_file_per_segment_or_last_wins(lidc_window, qtbot, tmp_path,
                                                                                      monkeypatch):
    import nibabel
    import numpy as np

    from viewer.core.editing.segmentation import SparseMask

    window, an = lidc_window, lidc_window.annotation
    seg = an.editor.segmentation
    lung = np.zeros(seg.shape, bool)
    lung[50:80, 150:300, 100:250] = True
    nodule = np.zeros(seg.shape, bool)
    nodule[60:66, 200:210, 150:160] = True
    seg.add(seg.new_segment("lung", (200, 80, 80), mask=SparseMask.from_full(lung)))
    seg.add(seg.new_segment("nodule", (255, 200, 0), mask=SparseMask.from_full(nodule)))
    questions, answers = [], ["per_segment", "last_wins", None]
    monkeypatch.setattr(an, "ask_save_path", lambda title, name, filter_, folder: str(tmp_path / name))
    monkeypatch.setattr(an, "ask_nifti_mode", lambda overlaps: (questions.append(overlaps), answers.pop(0))[1])
    messages = []
    an.job_ended.connect(messages.append)
    an.status_message.connect(messages.append)

    def read(name):
        return np.asarray(nibabel.load(str(tmp_path / name)).dataobj).transpose(2, 1, 0)

    window.export_actions["nifti"].trigger()
    qtbot.waitUntil(lambda: any("one per segment" in m for m in messages), timeout=30000)
    assert [(o.earlier_name, o.later_name, o.voxels) for o in questions[0]] == [("lung", "nodule", 600)]
    assert sorted(p.name for p in tmp_path.glob("*.nii.gz")) == ["segmentation_1_lung.nii.gz",
                                                                  "segmentation_2_nodule.nii.gz"]
    assert np.array_equal(read("segmentation_1_lung.nii.gz").astype(bool), lung)
    assert np.array_equal(read("segmentation_2_nodule.nii.gz").astype(bool), nodule)

    window.export_actions["nifti"].trigger()
    qtbot.waitUntil(lambda: (tmp_path / "segmentation.nii.gz").exists() and not an.busy, timeout=30000)
    labels = read("segmentation.nii.gz")
    assert np.array_equal(labels == 2, nodule) and np.array_equal(labels == 1, lung & ~nodule)
    assert any("600 overlapping voxels went to the later segment" in m for m in messages)

    (tmp_path / "segmentation.nii.gz").unlink()
    window.export_actions["nifti"].trigger()  # cancelled: nothing written, and it says so
    qtbot.wait(50)
    assert len(questions) == 3 and not (tmp_path / "segmentation.nii.gz").exists()
    assert messages[-1] == "NIfTI export cancelled"


def test_nifti_export_without_overlaps_asks_nothing(lidc_window, qtbot, tmp_path, monkeypatch):
    import numpy as np

    from viewer.core.editing.segmentation import SparseMask

    an = lidc_window.annotation
    seg = an.editor.segmentation
    mask = np.zeros(seg.shape, bool)
    mask[10:20, 100:120, 100:120] = True
    seg.add(seg.new_segment("lesion", (255, 0, 0), mask=SparseMask.from_full(mask)))
    out = tmp_path / "out"
    monkeypatch.setattr(an, "ask_save_path", lambda title, name, filter_, folder: str(out / name))
    monkeypatch.setattr(an, "ask_nifti_mode", lambda overlaps: pytest.fail("asked although nothing overlaps"))
    lidc_window.export_actions["nifti"].trigger()
    qtbot.waitUntil(lambda: (out / "segmentation.nii.gz").exists() and not an.busy, timeout=30000)
    assert sorted(p.name for p in out.iterdir()) == ["segmentation.nii.gz"]


def test_the_overlap_dialog_explains_both_choices(main_window, qtbot):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from viewer.core.export.nifti_segments import LAST_WINS, PER_SEGMENT, SegmentOverlap

    overlaps = [SegmentOverlap(1, "lung", 2, "nodule", 600)]
    seen = []

    def answer(button_text):
        box = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible())
        seen.append(box.text() + "\n" + box.informativeText())
        next(b for b in box.buttons() if b.text() == button_text).click()

    for text, expected in (("One File per Segment", PER_SEGMENT), ("One Label Map (Last Wins)", LAST_WINS),
                           ("Cancel", None)):
        QTimer.singleShot(50, lambda t=text: answer(t))
        assert main_window.annotation.ask_nifti_mode(overlaps) == expected
    assert "lung (#1) and nodule (#2): 600 voxels" in seen[0]
    assert "later segment" in seen[0] and "every voxel" in seen[0]


def test_ctrl_arrows_and_enter_still_choose_a_series_by_keyboard(main_window, qtbot, lidc_dir, tmp_path):
    open_and_wait(qtbot, main_window, [twin_series(lidc_dir, tmp_path / "keys")])
    browser = main_window.browser
    shown = main_window.current_series.key
    other = next(s.key for s in main_window.catalog.all_series() if s.key != shown)
    _focus(qtbot, browser)
    k = axial_slice(main_window)
    browser.setCurrentItem(browser.item_for(shown))
    target = Qt.Key.Key_Down if browser.indexFromItem(browser.item_for(other)).row() > \
        browser.indexFromItem(browser.item_for(shown)).row() else Qt.Key.Key_Up
    qtbot.keyClick(browser, target, Qt.KeyboardModifier.ControlModifier)
    assert browser.currentItem() is browser.item_for(other) and axial_slice(main_window) == k
    with qtbot.waitSignal(main_window.series_loaded, timeout=30000) as blocker:
        qtbot.keyClick(browser, Qt.Key.Key_Return)
    assert blocker.args == [other]
