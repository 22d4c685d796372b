"""The chrome around the main window's views: menus, toolbars, status bar (with the jobs' progress) and docks,
built and kept up to date here so the window class itself only binds the session, panels and controllers."""
from __future__ import annotations

import os

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMenu,
    QMessageBox,
    QProgressBar,
    QScrollArea,
    QSpinBox,
    QToolBar,
    QToolButton,
    QWidget,
)

from viewer.core.jobs import Progress
from viewer.qt.deid_dialog import export_deidentified_dialog
from viewer.qt.dialogs import PresetsDialog, ShortcutsDialog
from viewer.qt.pacs import build_pacs_menu
from viewer.qt.slab_control import SlabControls
from viewer.qt.tools import TOOLS
from viewer.qt.viewer_actions import SLAB_ACTIONS

#: Most of the window's width the side docks take by default (left, right), so the image keeps the rest.
DOCK_SHARES = (0.16, 0.25)
DOCK_MIN_WIDTHS = (150, 240)


class JobStatus:
    """The status bar's progress bar and Cancel button, for whatever the window is scanning, loading or
    exporting."""

    def __init__(self, window) -> None:
        self.bar = window.statusBar()
        self.progress = window.progress
        self.cancel_button = window.cancel_button

    def busy(self, text: str) -> None:
        """A job started: an indefinite bar, Cancel, the text in the status bar."""
        self.progress.setRange(0, 0)
        self.progress.setFormat(text)
        self.progress.show()
        self.cancel_button.show()
        self.bar.showMessage(text + "…")

    def idle(self, message: str = "") -> None:
        """The job ended: bar and Cancel hidden, ``message`` (if any) shown."""
        self.progress.hide()
        self.cancel_button.hide()
        if message:
            self.bar.showMessage(message)
        else:
            self.bar.clearMessage()

    def show_progress(self, progress: Progress) -> None:
        """How far the job is."""
        if progress.total:
            self.progress.setRange(0, progress.total)
            self.progress.setValue(progress.done)
            self.progress.setFormat(f"{progress.message} %v/%m" if progress.message else "%v/%m")
        else:
            self.progress.setRange(0, 0)
            self.progress.setFormat(progress.message or "Working")


def build_status_bar(window) -> None:
    """The cursor read-out, the window/level text, the progress bar and Cancel (:attr:`window.job_status`)."""
    bar = window.statusBar()
    window.cursor_label = QLabel("", window)
    window.cursor_label.setObjectName("cursor-info")
    window.cursor_label.setMinimumWidth(420)
    window.window_label = QLabel("", window)
    window.progress = QProgressBar(window)
    window.progress.setMaximumWidth(220)
    window.progress.setTextVisible(True)
    window.progress.hide()
    window.cancel_button = QToolButton(window)
    window.cancel_button.setText("Cancel")
    window.cancel_button.setToolTip("Stop scanning / loading")
    window.cancel_button.hide()
    window.cancel_button.clicked.connect(window.cancel_by_user)
    bar.addWidget(window.cursor_label, 1)
    bar.addPermanentWidget(window.window_label)
    bar.addPermanentWidget(window.progress)
    bar.addPermanentWidget(window.cancel_button)
    window.job_status = JobStatus(window)


def menu_action(window, menu: QMenu, text: str, slot, shortcut=None) -> QAction:
    """An action in ``menu`` calling ``slot``."""
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    action.triggered.connect(slot)
    menu.addAction(action)
    return action


def build_menus(window) -> None:
    """File, Edit, View, AI, PACS, Tools and Help."""
    va = window.viewer.actions
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    window.action_open_folder = menu_action(window, file_menu, "Open &Folder…", lambda: open_folder_dialog(window),
                                            "Ctrl+O")
    window.action_open_files = menu_action(window, file_menu, "Open &Files…", lambda: open_files_dialog(window),
                                           "Ctrl+Shift+O")
    window.action_open_dicomdir = menu_action(window, file_menu, "Open &DICOMDIR…",
                                              lambda: open_dicomdir_dialog(window))
    window.recent_menu = file_menu.addMenu("Open &Recent")
    menu_action(window, file_menu, "Open Sample Study", window.open_demo)
    file_menu.addSeparator()
    an = window.annotation
    window.action_open_seg = menu_action(window, file_menu, "Open Segmentation (DICOM SEG)…",
                                         lambda: an.open_seg_dialog(window.settings.last_folder))
    export_menu = file_menu.addMenu("&Export Annotation")
    window.export_actions = {}
    for kind, text in (("seg", "Segmentation as DICOM &SEG…"), ("nifti", "Segmentation as &NIfTI Labels…"),
                       ("findings", "Findings as &JSON…"), ("sr", "Findings as DICOM S&R…")):
        window.export_actions[kind] = menu_action(
            window, export_menu, text, lambda _=False, k=kind: an.export_dialog(k))  # starts in the exports folder
    mf = window.measurement_files
    window.action_save_measurements = menu_action(window, file_menu, "Save &Measurements (DICOM SR)…",
                                                  mf.save_dialog)
    window.action_load_measurements = menu_action(window, file_menu, "&Load Measurements (DICOM SR)…",
                                                  mf.load_dialog)
    window.action_export_deid = menu_action(window, file_menu, "Export De-&identified…",
                                            lambda: export_deidentified_dialog(window))
    file_menu.addSeparator()
    window.action_save_screenshot = menu_action(window, file_menu, "&Save Screenshot…",
                                                lambda: save_screenshot_dialog(window), "Ctrl+S")
    window.action_copy_screenshot = menu_action(window, file_menu, "&Copy Screenshot", window.copy_screenshot,
                                                    "Ctrl+Shift+C")
    file_menu.addSeparator()
    menu_action(window, file_menu, "&Quit", window.close, QKeySequence.StandardKey.Quit)
    rebuild_recent_menu(window)

    edit_menu = bar.addMenu("&Edit")
    window.edit_menu = edit_menu
    edit_menu.addAction(window.annotation.undo_action)
    edit_menu.addAction(window.annotation.redo_action)
    edit_menu.addSeparator()
    menu_action(window, edit_menu, "Add Segment", lambda: window.annotation.add_segment())
    edit_menu.addSeparator()
    edit_menu.addAction(window.annotation.threshold_action)
    menu_action(window, edit_menu, "Interpolate Between Edited Slices", lambda: window.annotation.interpolate())
    menu_action(window, edit_menu, "Remove Small Islands", lambda: window.annotation.remove_small_islands())
    edit_menu.addAction(window.annotation.provenance_action)

    view_menu = bar.addMenu("&View")
    for key in ("layout_1x1", "layout_1x3", "layout_2x2"):
        view_menu.addAction(va[key])
    view_menu.addAction(va["crosshair"])
    view_menu.addSeparator()
    for key in ("fit", "reset", "zoom_in", "zoom_out"):
        view_menu.addAction(va[key])
    window.action_smooth = QAction("Smooth Interpolation", window, checkable=True)
    window.action_smooth.toggled.connect(window.set_smooth)
    view_menu.addAction(window.action_smooth)
    view_menu.addAction(window.rtstruct.action)
    view_menu.addSeparator()
    window.window_menu = view_menu.addMenu("&Window/Level")
    fill_window_menu(window, window.window_menu)
    slab_menu = view_menu.addMenu("Thick &Slab")
    for key in SLAB_ACTIONS:
        slab_menu.addAction(va[key])
    view_menu.addSeparator()
    for key in ("cine", "cine_faster", "cine_slower", "next_slice", "previous_slice", "page_forward",
                "page_back", "first_slice", "last_slice"):
        view_menu.addAction(va[key])
    order_menu = view_menu.addMenu("Image &Order")
    window.image_order_actions = {}
    order_group = QActionGroup(window)
    for value, label in (("head_first", "Head First (PACS)"), ("as_acquired", "As Acquired")):
        action = QAction(label, window, checkable=True)
        action.setToolTip("Which image is 1 and which way Down scrolls: axial from the head down as PACS do, "
                          "or in InstanceNumber order")
        action.triggered.connect(lambda _=False, v=value: window.set_image_order(v))
        order_group.addAction(action)
        order_menu.addAction(action)
        window.image_order_actions[value] = action
    view_menu.addSeparator()
    panels = view_menu.addMenu("&Panels")
    window.action_hide_panels = QAction("Hide All Panels", window, checkable=True)
    window.action_hide_panels.setShortcut(QKeySequence("Ctrl+Shift+H"))
    window.action_hide_panels.setIconText("Panels")
    window.action_hide_panels.setToolTip("Hide all panels so the image has the whole window (Ctrl+Shift+H); "
                                       "again to bring them back")
    window.action_hide_panels.toggled.connect(lambda hidden: set_panels_hidden(window, hidden))
    panels.addAction(window.action_hide_panels)
    panels.addSeparator()
    for dock in window.docks():
        panels.addAction(dock.toggleViewAction())

    ai_menu = bar.addMenu("&AI")
    window.action_run_model = menu_action(window, ai_menu, "&Run Model", window.inference.start, "Ctrl+R")
    window.action_cancel_model = menu_action(window, ai_menu, "&Cancel Model Run", window.inference.cancel)
    ai_menu.addSeparator()
    window.action_explain_finding = menu_action(window, ai_menu, "&Explain Selected Finding",
                                                    lambda: explain_selected_finding(window), "Ctrl+E")
    window.action_explain_label = menu_action(window, ai_menu, "Explain &Label (Grad-CAM)…",
                                              lambda: explain_label(window))
    ai_menu.addSeparator()
    menu_action(window, ai_menu, "Models &Folder…", window.inference.choose_models_folder)
    menu_action(window, ai_menu, "&Batch Results Folder…", window.batch_results.choose_folder)
    menu_action(window, ai_menu, "Re&fresh Models", window.inference.refresh_models)
    ai_menu.addSeparator()
    menu_action(window, ai_menu, "Remove AI &Overlays", window.inference.clear_results)
    ai_menu.aboutToShow.connect(lambda: update_ai_menu(window))
    build_pacs_menu(window)

    tools_menu = bar.addMenu("&Tools")
    for tool, *_ in TOOLS:
        tools_menu.addAction(va[f"tool_{tool.value}"])
    tools_menu.addSeparator()
    tools_menu.addAction(va["delete_measurement"])

    help_menu = bar.addMenu("&Help")
    menu_action(window, help_menu, "&Keyboard and Mouse…", lambda: show_shortcuts(window), "F1")
    menu_action(window, help_menu, f"&About {window.app_name}", lambda: show_about(window))


def fill_window_menu(window, menu: QMenu) -> None:
    """The window presets and window/level actions (in View > Window/Level and the toolbar's Presets)."""
    va = window.viewer.actions
    menu.clear()
    for action in window.viewer.preset_actions:
        menu.addAction(action)
    menu.addSeparator()
    for key in ("window_default", "window_image", "window_auto", "invert"):
        menu.addAction(va[key])
    menu.addSeparator()
    menu.addAction("Edit Presets…", lambda: edit_presets(window))


def build_toolbar(window) -> None:
    """The main toolbar and the mouse tools' bar."""
    va = window.viewer.actions
    tb = QToolBar("Tools", window)
    tb.setObjectName("toolbar-main")
    tb.setIconSize(QSize(18, 18))
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    tb.setMovable(False)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)
    tb.addAction(window.action_open_folder)
    tb.addSeparator()
    for key, text in (("layout_1x1", "1x1"), ("layout_1x3", "1x3"), ("layout_2x2", "2x2")):
        action = va[key]
        action.setIconText(text)
        tb.addAction(action)
    tb.addSeparator()
    presets_button = QToolButton(window)
    presets_button.setText("Presets")
    presets_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    window.presets_menu = QMenu(presets_button)
    fill_window_menu(window, window.presets_menu)
    presets_button.setMenu(window.presets_menu)
    presets_button.setToolTip("Window presets (1-6), default (0), auto (A)")
    tb.addWidget(presets_button)
    tb.addAction(va["invert"])
    tb.addSeparator()
    window.slab_controls = SlabControls(window.viewer, window)
    for box in window.slab_controls.widgets:
        tb.addWidget(box)
    tb.addSeparator()
    tb.addAction(va["fit"])
    tb.addAction(va["reset"])
    tb.addSeparator()
    va["cine"].setIconText("Cine")
    tb.addAction(va["cine"])
    window.fps_box = QSpinBox(window)
    window.fps_box.setRange(1, 60)
    window.fps_box.setSuffix(" fps")
    window.fps_box.setToolTip("Cine speed ([ and ] change it)")
    window.fps_box.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
    tb.addWidget(window.fps_box)
    tb.addSeparator()
    window.action_save_screenshot.setIconText("Screenshot")
    tb.addAction(window.action_save_screenshot)
    tb.addSeparator()
    tb.addAction(window.action_hide_panels)
    window.toolbar = tb
    # The mouse tools get a bar of their own: side by side when the window is wide enough, on a second row
    # when it is not (see _wrap_toolbars), so no tool hides behind the overflow button at 1024 px.
    tools = QToolBar("Mouse tools", window)
    tools.setObjectName("toolbar-tools")
    tools.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    tools.setMovable(False)
    short = {"window": "W/L", "pan": "Pan", "zoom": "Zoom", "crosshair": "Cross", "length": "Length",
             "ellipse": "Ellipse", "rectangle": "Rect", "probe": "Probe", "brush": "Brush", "eraser": "Erase",
             "fill": "Fill", "fill3d": "Fill 3D", "polygon": "Lasso"}
    for tool, _label, _key, _tip in TOOLS:
        action = va[f"tool_{tool.value}"]
        action.setIconText(short[tool.value])
        tools.addAction(action)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, tools)
    window.tools_toolbar = tools
    window.toolbars_wrapped = False
    for bar in (tb, tools):  # the overflow button ("»") of a bar too narrow for its actions: say what it is
        extension = bar.findChild(QToolButton, "qt_toolbar_ext_button")
        if extension is not None:
            extension.setToolTip("More tools")


def wrap_toolbars(window) -> None:
    """Put the mouse tools on a second toolbar row when both bars do not fit side by side."""
    if not hasattr(window, "tools_toolbar"):
        return
    need = window.toolbar.sizeHint().width() + window.tools_toolbar.sizeHint().width() + 8
    wrap = need > window.width()
    if wrap == window.toolbars_wrapped:
        return
    window.toolbars_wrapped = wrap
    if wrap:
        window.insertToolBarBreak(window.tools_toolbar)
    else:
        window.removeToolBarBreak(window.tools_toolbar)


def rebuild_recent_menu(window) -> None:
    """File > Open Recent from the settings."""
    menu = window.recent_menu
    menu.clear()
    recent = window.settings.recent
    for paths in recent:
        first = paths[0]
        label = os.path.basename(first.rstrip("/\\")) or first
        if len(paths) > 1:
            label += f" (+{len(paths) - 1})"
        action = menu.addAction(label)
        action.setToolTip("\n".join(paths))
        action.setStatusTip(first)
        action.triggered.connect(lambda _=False, p=paths: window.open_paths(p))
    if recent:
        menu.addSeparator()
        menu.addAction("Clear Recent", lambda: clear_recent(window))
    menu.setEnabled(bool(recent))


def clear_recent(window) -> None:
    """File > Open Recent > Clear Recent."""
    window.settings.clear_recent()
    rebuild_recent_menu(window)


def update_ai_menu(window) -> None:
    """Enable the AI menu's entries for what can run now."""
    lane = window.inference
    window.action_run_model.setEnabled(window.ai_panel.run_button.isEnabled())
    window.action_cancel_model.setEnabled(lane.busy)
    idle = not lane.busy
    window.action_explain_finding.setEnabled(idle and window.findings_panel.selected_index() is not None)
    window.action_explain_label.setEnabled(idle and lane.layer("segmentation") is not None)


def explain_selected_finding(window) -> None:
    """AI > Explain Selected Finding: the map of the finding selected in the Findings panel."""
    index = window.findings_panel.selected_index()
    if index is not None:
        window.inference.explain_finding(index)


def explain_label(window) -> None:
    """Ask which label of the shown segmentation to explain, then run Grad-CAM for it."""
    layer = window.inference.layer("segmentation")
    if layer is None or not layer.present:
        return
    names = [layer.label_name(v) for v in layer.present]
    name, ok = QInputDialog.getItem(window, "Explain Label", "Grad-CAM of which label?", names, 0, False)
    if ok:
        window.inference.explain_label(layer.present[names.index(name)])


def add_dock(window, title: str, name: str, widget: QWidget, area, scrollable: bool = False) -> QDockWidget:
    """A movable, closable, floatable dock holding ``widget`` (in a scroll area when ``scrollable``)."""
    dock = QDockWidget(title, window)
    dock.setObjectName(name)
    if scrollable:  # a panel with a wide row of buttons scrolls instead of widening the dock (and the image)
        scroll = QScrollArea(dock)
        scroll.setObjectName(f"{name}-scroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(widget)
        dock.setWidget(scroll)
    else:
        dock.setWidget(widget)
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                     | QDockWidget.DockWidgetFeature.DockWidgetClosable
                     | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
    window.addDockWidget(area, dock)
    return dock


def fit_docks(window) -> None:
    """Narrow side docks wider than their share of the window (:data:`DOCK_SHARES`), so a small window still
    shows the image large; a dock narrower than that is left as the user made it."""
    for area, share, least in zip((Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea),
                                  DOCK_SHARES, DOCK_MIN_WIDTHS):
        cap = max(least, int(window.width() * share))
        wide = [d for d in window.docks() if window.dockWidgetArea(d) == area and d.isVisible()
                and not d.isFloating() and d.width() > cap]
        if wide:
            window.resizeDocks(wide, [cap] * len(wide), Qt.Orientation.Horizontal)


def set_panels_hidden(window, hidden: bool) -> None:
    """Hide every dock (remembering which were shown) or bring those back: the image gets the whole window."""
    if hidden:
        window.docks_before_hiding = [d for d in window.docks() if d.isVisible()]
        for dock in window.docks_before_hiding:
            dock.hide()
    else:
        for dock in getattr(window, "docks_before_hiding", None) or window.docks():
            dock.show()
        window.docks_before_hiding = []
        fit_docks(window)
    if window.action_hide_panels.isChecked() != hidden:
        window.action_hide_panels.setChecked(hidden)


def restore_window_settings(window) -> None:
    geometry, state = window.settings.window_state()
    if geometry is not None:
        window.restoreGeometry(geometry)
    else:
        window.resize(1440, 900)
    if state is None or not window.restoreState(state):
        window.resizeDocks([window.series_dock, window.measure_dock], [300, 380], Qt.Orientation.Horizontal)
        window.resizeDocks([window.ai_dock, window.measure_dock], [480, 320], Qt.Orientation.Vertical)
    window.viewer.set_layout(window.settings.layout)
    window.fps_box.setValue(window.settings.cine_fps)
    window.viewer.set_cine_fps(window.settings.cine_fps)
    window.action_smooth.setChecked(window.settings.smooth)
    window.set_smooth(window.settings.smooth)
    window.set_image_order(window.settings.image_order)


def save_window_settings(window) -> None:
    """Write layout, cine speed, look and window placement."""
    window.settings.layout = window.viewer.layout_name
    window.settings.cine_fps = window.viewer.user_cine_fps  # not a rate a file asked for
    window.settings.smooth = window.action_smooth.isChecked()
    window.settings.save_window_state(window.saveGeometry(), window.saveState())
    window.settings.sync()


def screenshot_name(window) -> str:
    """A default file name for the current view."""
    info = window.session.current.info if window.session.current is not None else {}
    state = window.viewer.state
    k = state.display_number(window.viewer.active_view.plane) if state is not None else 0
    number = info.get("series_number")
    return f"hounsfield-se{number if number is not None else 'x'}-im{k}.png"


def save_screenshot_dialog(window) -> None:
    start = os.path.join(window.annotation.export_folder(), screenshot_name(window))
    path, _ = QFileDialog.getSaveFileName(window, "Save screenshot", start, "PNG image (*.png)")
    if path:
        window.settings.exports_folder = os.path.dirname(os.path.abspath(path))
        if not path.lower().endswith(".png"):
            path += ".png"
        ok = window.save_screenshot(path)
        window.statusBar().showMessage(f"Saved {path}" if ok else f"Could not write {path}", 5000)


def show_shortcuts(window) -> None:
    dialog = ShortcutsDialog(window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()


def show_about(window) -> None:
    QMessageBox.about(window, f"About {window.app_name}", window.about_text())


def open_folder_dialog(window) -> None:
    folder = QFileDialog.getExistingDirectory(window, "Open DICOM folder", window.settings.last_folder)
    if folder:
        window.open_paths([folder])


def open_files_dialog(window) -> None:
    files, _ = QFileDialog.getOpenFileNames(window, "Open DICOM files", window.settings.last_folder,
                                            "DICOM files (*.dcm *.DCM *.ima *.IMA *);;All files (*)")
    if files:
        window.open_paths(files)


def open_dicomdir_dialog(window) -> None:
    path, _ = QFileDialog.getOpenFileName(window, "Open DICOMDIR", window.settings.last_folder,
                                          "DICOMDIR (DICOMDIR dicomdir *.dir);;All files (*)")
    if path:
        window.open_paths([path])


def refresh_window_menus(window) -> None:
    """The presets changed: refill View > Window/Level and the toolbar's Presets."""
    fill_window_menu(window, window.window_menu)
    fill_window_menu(window, window.presets_menu)


def edit_presets(window) -> None:
    """The presets dialog; the result is used and kept in the settings."""
    dialog = PresetsDialog(window.viewer.presets, window)
    if dialog.exec() == QDialog.DialogCode.Accepted:
        window.apply_presets(dialog.presets())
