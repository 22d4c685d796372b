"""The main window: menus, toolbar, series browser, viewer, tag browser, measurements, AI panel, findings, status bar.

Opening is always asynchronous: scan (headers) and load (pixels) run as core jobs on worker threads, the status
bar shows their progress with a Cancel button, and the first decoded slice is shown while the rest fill in.
"""
from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QDialog, QDialogButtonBox, QDockWidget, QFileDialog, QHBoxLayout, QInputDialog, QLabel, QMainWindow, QMenu, QMessageBox,
    QProgressBar, QPushButton, QScrollArea, QSpinBox, QTableWidget, QTableWidgetItem, QTextBrowser, QToolBar,
    QToolButton, QVBoxLayout, QWidget,
)

from viewer.core.dicom.catalog import default_image_series
from viewer.core.dicom.load import iter_load
from viewer.core.dicom.scan import iter_scan
from viewer.core.jobs import Progress
from viewer.core.load_report import report_failed, report_no_images, report_volume
from viewer.core.windowing import CT_PRESETS, Preset
from viewer.qt.annotation import AnnotationController, SegmentsWidget
from viewer.qt.findings_panel import FindingsWidget
from viewer.qt.inference_lane import InferenceLane
from viewer.qt.inference_panel import InferencePanelWidget
from viewer.qt.key_routing import install_text_input_guard
from viewer.qt.measurements_panel import MeasurementsWidget
from viewer.qt.rtstruct_layer import RTStructController
from viewer.qt.series_browser import SeriesBrowserWidget
from viewer.qt.settings import Settings
from viewer.qt.status_banner import StatusBannerWidget
from viewer.qt.tag_browser import TagBrowserWidget
from viewer.qt.thumbnails import iter_thumbnails
from viewer.qt.tools import TOOLS, shortcuts_html
from viewer.qt.viewer_widget import ViewerWidget
from viewer.qt.workers import JobHandle, job_pool, start_job

log = logging.getLogger(__name__)

APP_NAME = "Hounsfield"
DISCLAIMER = "Research use only — not for diagnosis."
VOLUME_CACHE_BYTES = 1_500_000_000
VOLUME_CACHE_COUNT = 3
#: Most of the window's width the side docks take by default (left, right), so the image keeps the rest.
DOCK_SHARES = (0.16, 0.25)
DOCK_MIN_WIDTHS = (150, 240)


#: How a series without PixelSpacing is measured, in the status bar's words.
CALIBRATION_WORDS = {"ultrasound_regions": "mm per ultrasound region", "imager_pixel_spacing": "mm at the detector",
                     "none": "no pixel spacing: measured in px"}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("hounsfield")
    except Exception:  # noqa: BLE001 - running from a plain checkout
        return "dev"


def window_title(shown: str = "") -> str:
    """The window title: what is shown, the disclaimer, and the app name once, last.

    Qt appends the application display name to a title that does not already end with it (X11, Windows), so a
    title ending anywhere else would name the app twice.
    """
    parts = [shown] if shown else []
    return " — ".join(parts + [DISCLAIMER.rstrip("."), APP_NAME])


def series_info(patient, study, series) -> dict:
    """What the corner text shows for a series."""
    return {
        "patient_name": str(patient.patient_name or "").replace("^", " ").strip(),
        "patient_id": patient.patient_id or "",
        "study_date": study.date or "",
        "study_description": study.description or "",
        "series_description": series.description or "",
        "series_number": series.series_number,
        "modality": series.modality or "",
    }


class ShortcutsDialog(QDialog):
    """Help > Keyboard and mouse: the conventions table."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard and mouse")
        browser = QTextBrowser(self)
        browser.setHtml(shortcuts_html())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, parent=self)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(browser)
        layout.addWidget(buttons)
        self.resize(640, 720)


class PresetsDialog(QDialog):
    """Edit the window presets: name, width, level; the order is the order of the number keys."""

    def __init__(self, presets, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Window presets")
        self.table = QTableWidget(0, 3, self)
        self.table.setHorizontalHeaderLabels(["Name", "Width", "Level"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(True)
        self._set_rows(presets)
        add = QPushButton("Add", self)
        remove = QPushButton("Remove", self)
        defaults = QPushButton("Restore Defaults", self)
        add.clicked.connect(lambda: self._append(Preset("custom", "Custom", 40, 400)))
        remove.clicked.connect(lambda: self.table.removeRow(self.table.currentRow()))
        defaults.clicked.connect(lambda: self._set_rows(CT_PRESETS))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
                                   parent=self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        for button in (add, remove, defaults):
            row.addWidget(button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Number keys 1-9 apply the presets in this order.", self))
        layout.addWidget(self.table)
        layout.addLayout(row)
        layout.addWidget(buttons)
        self.resize(420, 360)

    def _append(self, preset: Preset) -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        for c, value in enumerate((preset.label, f"{preset.width:g}", f"{preset.center:g}")):
            self.table.setItem(r, c, QTableWidgetItem(value))

    def _set_rows(self, presets) -> None:
        self.table.setRowCount(0)
        for preset in presets:
            self._append(preset)

    def presets(self) -> tuple[Preset, ...]:
        """The valid rows as presets (rows with a bad number or width are skipped)."""
        out, used = [], set()
        for r in range(self.table.rowCount()):
            try:
                label = self.table.item(r, 0).text().strip()
                width, level = float(self.table.item(r, 1).text()), float(self.table.item(r, 2).text())
            except (AttributeError, ValueError):
                continue
            if not label or width <= 0:
                continue
            name = "".join(ch if ch.isalnum() else "-" for ch in label.lower()).strip("-") or f"preset-{r + 1}"
            while name in used:
                name += "-2"
            used.add(name)
            out.append(Preset(name, label, level, width))
        return tuple(out)


class MainWindow(QMainWindow):
    """The application window.

    Signals
    -------
    catalog_loaded(object)
        A scan finished (the Catalog).
    series_loaded(str)
        A series finished loading (its key).
    job_failed(str)
        A scan or load failed (reason).
    """

    catalog_loaded = Signal(object)
    series_loaded = Signal(str)
    job_failed = Signal(str)

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else Settings()
        self.setWindowTitle(window_title())
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.catalog = None
        self.current_series = None
        self.paths: list[str] = []
        self._info: dict[str, dict] = {}
        self._measurements: dict[str, list] = {}
        self._volumes: OrderedDict[str, object] = OrderedDict()
        self._scan_job: JobHandle | None = None
        self._load_job: JobHandle | None = None
        self._thumb_job: JobHandle | None = None
        self._shown_volume = None
        self._load_started = 0.0
        self._body_parts: dict[str, str] = {}  # series key -> BodyPartExamined, for the models' input check

        self.viewer = ViewerWidget(self, presets=self.settings.presets)
        self.banner = StatusBannerWidget(self)
        central = QWidget(self)
        central.setObjectName("central")
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.banner)
        column.addWidget(self.viewer, 1)
        self.setCentralWidget(central)
        self.browser = SeriesBrowserWidget(self)
        self.tags = TagBrowserWidget(self)
        self.measurements_panel = MeasurementsWidget(self)
        self.ai_panel = InferencePanelWidget(self)
        self.findings_panel = FindingsWidget(self)
        self.segments_panel = SegmentsWidget(self)
        self.series_dock = self._dock("Series", "dock-series", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.ai_dock = self._dock("AI", "dock-ai", self.ai_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.measure_dock = self._dock("Measurements", "dock-measurements", self.measurements_panel,
                                       Qt.DockWidgetArea.RightDockWidgetArea)
        self.findings_dock = self._dock("Findings", "dock-findings", self.findings_panel,
                                        Qt.DockWidgetArea.RightDockWidgetArea, scrollable=True)
        self.tags_dock = self._dock("DICOM tags", "dock-tags", self.tags, Qt.DockWidgetArea.RightDockWidgetArea)
        self.segments_dock = self._dock("Segments", "dock-segments", self.segments_panel,
                                        Qt.DockWidgetArea.RightDockWidgetArea, scrollable=True)
        self.tabifyDockWidget(self.measure_dock, self.findings_dock)
        self.tabifyDockWidget(self.findings_dock, self.tags_dock)
        self.tabifyDockWidget(self.tags_dock, self.segments_dock)
        self.measure_dock.raise_()
        self._demo_models: list[str] = []  # built-in models still to run on the sample study
        self.inference = InferenceLane(self.viewer, self.ai_panel, self.findings_panel, self.settings, parent=self)
        # late-bound, so a test can answer by replacing window.confirm_unsuitable
        self.inference.confirm_unsuitable = lambda reasons, name="": self.confirm_unsuitable(reasons, name)
        self.inference.body_part = self._shown_body_part
        self.annotation = AnnotationController(self.viewer, self.segments_panel, self.inference, self.findings_panel,
                                               parent=self, settings=self.settings)
        self.rtstruct = RTStructController(self.viewer, parent=self)
        self._build_status_bar()
        self._build_menus()
        self._build_toolbar()
        self._connect()
        self._restore_settings()
        install_text_input_guard(self)  # slice keys work in every panel; inputs keep theirs
        self._show_placeholder()

    # ------------------------------------------------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------------------------------------------------
    def _dock(self, title: str, name: str, widget: QWidget, area, scrollable: bool = False) -> QDockWidget:
        dock = QDockWidget(title, self)
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
        self.addDockWidget(area, dock)
        return dock

    def docks(self) -> list[QDockWidget]:
        """Every panel dock."""
        return [self.series_dock, self.ai_dock, self.segments_dock, self.measure_dock, self.findings_dock,
                self.tags_dock]

    def set_panels_hidden(self, hidden: bool) -> None:
        """Hide every dock (remembering which were shown) or bring those back: the image gets the whole window."""
        if hidden:
            self._docks_before_hiding = [d for d in self.docks() if d.isVisible()]
            for dock in self._docks_before_hiding:
                dock.hide()
        else:
            for dock in getattr(self, "_docks_before_hiding", None) or self.docks():
                dock.show()
            self._docks_before_hiding = []
            self.fit_docks()
        if self.action_hide_panels.isChecked() != hidden:
            self.action_hide_panels.setChecked(hidden)

    def fit_docks(self) -> None:
        """Narrow side docks wider than their share of the window (:data:`DOCK_SHARES`), so a small window still
        shows the image large; a dock narrower than that is left as the user made it."""
        for area, share, least in zip((Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea),
                                      DOCK_SHARES, DOCK_MIN_WIDTHS):
            cap = max(least, int(self.width() * share))
            wide = [d for d in self.docks() if self.dockWidgetArea(d) == area and d.isVisible() and not d.isFloating()
                    and d.width() > cap]
            if wide:
                self.resizeDocks(wide, [cap] * len(wide), Qt.Orientation.Horizontal)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        old = event.oldSize()
        if not old.isValid() or event.size().width() < old.width():
            QTimer.singleShot(0, self.fit_docks)  # once the layout has given the docks their new widths
        self._wrap_toolbars()

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.cursor_label = QLabel("", self)
        self.cursor_label.setObjectName("cursor-info")
        self.cursor_label.setMinimumWidth(420)
        self.window_label = QLabel("", self)
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.cancel_button = QToolButton(self)
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop scanning / loading")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_by_user)
        bar.addWidget(self.cursor_label, 1)
        bar.addPermanentWidget(self.window_label)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)

    def _menu_action(self, menu: QMenu, text: str, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        va = self.viewer.actions
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.action_open_folder = self._menu_action(file_menu, "Open &Folder…", self.open_folder_dialog, "Ctrl+O")
        self.action_open_files = self._menu_action(file_menu, "Open &Files…", self.open_files_dialog, "Ctrl+Shift+O")
        self.action_open_dicomdir = self._menu_action(file_menu, "Open &DICOMDIR…", self.open_dicomdir_dialog)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self._menu_action(file_menu, "Open Sample Study", self.open_demo)
        file_menu.addSeparator()
        an = self.annotation
        self.action_open_seg = self._menu_action(file_menu, "Open Segmentation (DICOM SEG)…",
                                                 lambda: an.open_seg_dialog(self.settings.last_folder))
        export_menu = file_menu.addMenu("&Export Annotation")
        self.export_actions = {}
        for kind, text in (("seg", "Segmentation as DICOM &SEG…"), ("nifti", "Segmentation as &NIfTI Labels…"),
                           ("findings", "Findings as &JSON…"), ("sr", "Findings as DICOM S&R…")):
            self.export_actions[kind] = self._menu_action(
                export_menu, text, lambda _=False, k=kind: an.export_dialog(k))  # starts in the exports folder
        file_menu.addSeparator()
        self.action_save_screenshot = self._menu_action(file_menu, "&Save Screenshot…", self.save_screenshot_dialog,
                                                        "Ctrl+S")
        self.action_copy_screenshot = self._menu_action(file_menu, "&Copy Screenshot", self.copy_screenshot,
                                                        "Ctrl+Shift+C")
        file_menu.addSeparator()
        self._menu_action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        self._rebuild_recent_menu()

        edit_menu = bar.addMenu("&Edit")
        self.edit_menu = edit_menu
        edit_menu.addAction(self.annotation.undo_action)
        edit_menu.addAction(self.annotation.redo_action)
        edit_menu.addSeparator()
        self._menu_action(edit_menu, "Add Segment", lambda: self.annotation.add_segment())
        edit_menu.addSeparator()
        edit_menu.addAction(self.annotation.threshold_action)
        self._menu_action(edit_menu, "Interpolate Between Edited Slices", lambda: self.annotation.interpolate())
        self._menu_action(edit_menu, "Remove Small Islands", lambda: self.annotation.remove_small_islands())
        edit_menu.addAction(self.annotation.provenance_action)

        view_menu = bar.addMenu("&View")
        for key in ("layout_1x1", "layout_1x3"):
            view_menu.addAction(va[key])
        view_menu.addAction(va["crosshair"])
        view_menu.addSeparator()
        for key in ("fit", "reset", "zoom_in", "zoom_out"):
            view_menu.addAction(va[key])
        self.action_smooth = QAction("Smooth Interpolation", self, checkable=True)
        self.action_smooth.toggled.connect(self._set_smooth)
        view_menu.addAction(self.action_smooth)
        view_menu.addAction(self.rtstruct.action)
        view_menu.addSeparator()
        self.window_menu = view_menu.addMenu("&Window/Level")
        self._fill_window_menu(self.window_menu)
        view_menu.addSeparator()
        for key in ("cine", "cine_faster", "cine_slower", "next_slice", "previous_slice", "page_forward",
                    "page_back", "first_slice", "last_slice"):
            view_menu.addAction(va[key])
        order_menu = view_menu.addMenu("Image &Order")
        self.image_order_actions = {}
        order_group = QActionGroup(self)
        for value, label in (("head_first", "Head First (PACS)"), ("as_acquired", "As Acquired")):
            action = QAction(label, self, checkable=True)
            action.setToolTip("Which image is 1 and which way Down scrolls: axial from the head down as PACS do, "
                              "or in InstanceNumber order")
            action.triggered.connect(lambda _=False, v=value: self.set_image_order(v))
            order_group.addAction(action)
            order_menu.addAction(action)
            self.image_order_actions[value] = action
        view_menu.addSeparator()
        panels = view_menu.addMenu("&Panels")
        self.action_hide_panels = QAction("Hide All Panels", self, checkable=True)
        self.action_hide_panels.setShortcut(QKeySequence("Ctrl+Shift+H"))
        self.action_hide_panels.setIconText("Panels")
        self.action_hide_panels.setToolTip("Hide all panels so the image has the whole window (Ctrl+Shift+H); "
                                           "again to bring them back")
        self.action_hide_panels.toggled.connect(self.set_panels_hidden)
        panels.addAction(self.action_hide_panels)
        panels.addSeparator()
        for dock in self.docks():
            panels.addAction(dock.toggleViewAction())

        ai_menu = bar.addMenu("&AI")
        self.action_run_model = self._menu_action(ai_menu, "&Run Model", self.inference.start, "Ctrl+R")
        self.action_cancel_model = self._menu_action(ai_menu, "&Cancel Model Run", self.inference.cancel)
        ai_menu.addSeparator()
        self.action_explain_finding = self._menu_action(ai_menu, "&Explain Selected Finding (Grad-CAM)",
                                                        self._explain_selected_finding, "Ctrl+E")
        self.action_explain_label = self._menu_action(ai_menu, "Explain &Label (Grad-CAM)…", self._explain_label)
        ai_menu.addSeparator()
        self._menu_action(ai_menu, "Models &Folder…", self.inference.choose_models_folder)
        self._menu_action(ai_menu, "Re&fresh Models", self.inference.refresh_models)
        ai_menu.addSeparator()
        self._menu_action(ai_menu, "Remove AI &Overlays", self.inference.clear_results)
        ai_menu.aboutToShow.connect(self._update_ai_menu)

        tools_menu = bar.addMenu("&Tools")
        for tool, *_ in TOOLS:
            tools_menu.addAction(va[f"tool_{tool.value}"])
        tools_menu.addSeparator()
        tools_menu.addAction(va["delete_measurement"])

        help_menu = bar.addMenu("&Help")
        self._menu_action(help_menu, "&Keyboard and Mouse…", self.show_shortcuts, "F1")
        self._menu_action(help_menu, f"&About {APP_NAME}", self.show_about)

    def _fill_window_menu(self, menu: QMenu) -> None:
        va = self.viewer.actions
        menu.clear()
        for action in self.viewer.preset_actions:
            menu.addAction(action)
        menu.addSeparator()
        for key in ("window_default", "window_image", "window_auto", "invert"):
            menu.addAction(va[key])
        menu.addSeparator()
        menu.addAction("Edit Presets…", self.edit_presets)

    def _refresh_window_menus(self) -> None:
        self._fill_window_menu(self.window_menu)
        self._fill_window_menu(self.presets_menu)

    def edit_presets(self) -> None:
        """The presets dialog; the result is kept in the settings."""
        dialog = PresetsDialog(self.viewer.presets, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.apply_presets(dialog.presets())

    def apply_presets(self, presets) -> None:
        """Use and remember these window presets."""
        self.settings.presets = presets
        self.viewer.set_presets(self.settings.presets)

    def _build_toolbar(self) -> None:
        va = self.viewer.actions
        tb = QToolBar("Tools", self)
        tb.setObjectName("toolbar-main")
        tb.setIconSize(QSize(18, 18))
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        tb.setMovable(False)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)
        tb.addAction(self.action_open_folder)
        tb.addSeparator()
        for key, text in (("layout_1x1", "1x1"), ("layout_1x3", "1x3")):
            action = va[key]
            action.setIconText(text)
            tb.addAction(action)
        tb.addSeparator()
        presets_button = QToolButton(self)
        presets_button.setText("Presets")
        presets_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.presets_menu = QMenu(presets_button)
        self._fill_window_menu(self.presets_menu)
        presets_button.setMenu(self.presets_menu)
        presets_button.setToolTip("Window presets (1-6), default (0), auto (A)")
        tb.addWidget(presets_button)
        tb.addAction(va["invert"])
        tb.addSeparator()
        tb.addAction(va["fit"])
        tb.addAction(va["reset"])
        tb.addSeparator()
        va["cine"].setIconText("Cine")
        tb.addAction(va["cine"])
        self.fps_box = QSpinBox(self)
        self.fps_box.setRange(1, 60)
        self.fps_box.setSuffix(" fps")
        self.fps_box.setToolTip("Cine speed ([ and ] change it)")
        self.fps_box.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        tb.addWidget(self.fps_box)
        tb.addSeparator()
        self.action_save_screenshot.setIconText("Screenshot")
        tb.addAction(self.action_save_screenshot)
        tb.addSeparator()
        tb.addAction(self.action_hide_panels)
        self.toolbar = tb
        # The mouse tools get a bar of their own: side by side when the window is wide enough, on a second row
        # when it is not (see _wrap_toolbars), so no tool hides behind the overflow button at 1024 px.
        tools = QToolBar("Mouse tools", self)
        tools.setObjectName("toolbar-tools")
        tools.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        tools.setMovable(False)
        short = {"window": "W/L", "pan": "Pan", "zoom": "Zoom", "crosshair": "Cross", "length": "Length",
                 "ellipse": "Ellipse", "rectangle": "Rect", "probe": "Probe", "brush": "Brush", "eraser": "Erase",
                 "fill": "Fill", "fill3d": "Fill 3D", "polygon": "Lasso"}
        for tool, label, key, tip in TOOLS:
            action = va[f"tool_{tool.value}"]
            action.setIconText(short[tool.value])
            tools.addAction(action)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, tools)
        self.tools_toolbar = tools
        self._toolbars_wrapped = False
        for bar in (tb, tools):  # the overflow button ("»") of a bar too narrow for its actions: say what it is
            extension = bar.findChild(QToolButton, "qt_toolbar_ext_button")
            if extension is not None:
                extension.setToolTip("More tools")

    def _wrap_toolbars(self) -> None:
        """Put the mouse tools on a second toolbar row when both bars do not fit side by side."""
        if not hasattr(self, "tools_toolbar"):
            return
        need = self.toolbar.sizeHint().width() + self.tools_toolbar.sizeHint().width() + 8
        wrap = need > self.width()
        if wrap == self._toolbars_wrapped:
            return
        self._toolbars_wrapped = wrap
        if wrap:
            self.insertToolBarBreak(self.tools_toolbar)
        else:
            self.removeToolBarBreak(self.tools_toolbar)

    def _connect(self) -> None:
        v = self.viewer
        v.cursor_info.connect(self.cursor_label.setText)
        v.window_text_changed.connect(self.window_label.setText)
        v.files_dropped.connect(self.open_paths)
        v.notice_clicked.connect(self.banner.show_details)
        v.series_dropped.connect(self.open_series)
        v.measurements_changed.connect(self._refresh_measurements)
        v.measurement_selected.connect(self.measurements_panel.select)
        v.position_changed.connect(self._update_tags)
        v.layout_changed.connect(self._on_layout_changed)
        v.presets_changed.connect(self._refresh_window_menus)
        v.cine_changed.connect(lambda running: self.viewer.actions["cine"].setChecked(running))
        v.actions["cine"].setCheckable(True)
        self.fps_box.valueChanged.connect(self._on_fps)
        for key in ("cine_faster", "cine_slower"):
            v.actions[key].triggered.connect(lambda *_: self.fps_box.setValue(self.viewer.cine_fps))
        self.browser.series_activated.connect(self.open_series)
        self.measurements_panel.selected.connect(lambda mid: self.viewer.select_measurement(mid))
        self.measurements_panel.delete_requested.connect(self.viewer.remove_measurement)
        self.measurements_panel.clear_requested.connect(self._clear_measurements)
        self.tags_dock.visibilityChanged.connect(lambda visible: visible and self._update_tags())
        lane = self.inference
        lane.status_message.connect(self.statusBar().showMessage)
        lane.result_applied.connect(lambda task: task == "detection" and self.findings_dock.raise_())
        self.findings_panel.explain_requested.connect(lane.explain_finding)
        lane.run_done.connect(self._run_next_demo_model)
        self.series_loaded.connect(lambda _key: lane.update_actions())
        an = self.annotation
        an.status_message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        an.job_started.connect(self._set_busy)
        an.job_progress.connect(self._on_progress)
        an.job_ended.connect(self._set_idle)
        lane.result_applied.connect(lambda _task: an._refresh_panel())
        self.series_loaded.connect(self._after_series_loaded)
        self.rtstruct.status_message.connect(lambda text: self.statusBar().showMessage(text, 15000))
        v.tool_changed.connect(lambda _tool: self.viewer.editing and self.segments_dock.raise_())

    def _restore_settings(self) -> None:
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1440, 900)
        if state is None or not self.restoreState(state):
            self.resizeDocks([self.series_dock, self.measure_dock], [300, 380], Qt.Orientation.Horizontal)
            self.resizeDocks([self.ai_dock, self.measure_dock], [480, 320], Qt.Orientation.Vertical)
        self.viewer.set_layout(self.settings.layout)
        self.fps_box.setValue(self.settings.cine_fps)
        self.viewer.set_cine_fps(self.settings.cine_fps)
        self.action_smooth.setChecked(self.settings.smooth)
        self._set_smooth(self.settings.smooth)
        self.set_image_order(self.settings.image_order)

    def save_settings(self) -> None:
        """Write layout, cine speed, look and window placement."""
        self.settings.layout = self.viewer.layout_name
        self.settings.cine_fps = self.viewer.user_cine_fps  # not a rate a file asked for
        self.settings.smooth = self.action_smooth.isChecked()
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        self.settings.sync()

    def _show_placeholder(self) -> None:
        self.viewer.empty_text = "Open a DICOM folder (Ctrl+O) or drop files here"
        self.statusBar().showMessage("Open a DICOM folder (Ctrl+O), drop files here, or File > Open Sample Study. "
                                     "F1 lists the keys.")

    # ------------------------------------------------------------------------------------------------------------
    # opening
    # ------------------------------------------------------------------------------------------------------------
    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open DICOM folder", self.settings.last_folder)
        if folder:
            self.open_paths([folder])

    def open_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open DICOM files", self.settings.last_folder,
                                                "DICOM files (*.dcm *.DCM *.ima *.IMA *);;All files (*)")
        if files:
            self.open_paths(files)

    def open_dicomdir_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open DICOMDIR", self.settings.last_folder,
                                              "DICOMDIR (DICOMDIR dicomdir *.dir);;All files (*)")
        if path:
            self.open_paths([path])

    def open_demo(self) -> None:
        """Open the built-in sample study (generated on first use, on a worker)."""
        def job(token):
            yield Progress(0, 1, "Preparing the sample study")
            from viewer.core.sample import demo_study_path

            return str(demo_study_path())

        handle = start_job(job, "sample", parent=self)
        handle.progressed.connect(self._on_progress)
        handle.finished.connect(self._open_demo_study)
        handle.failed.connect(self._on_failed)
        self._set_busy("Preparing the sample study")

    def _open_demo_study(self, path: str) -> None:
        """Open the sample study and queue the built-in models to run on it once it has loaded."""
        from viewer.core.sample import DEMO_MODELS

        self.open_paths([path], remember=False)
        self._demo_models = [m for m in DEMO_MODELS if any(info.id == m for info in self.ai_panel.models)]
        self._demo_jump_pending = bool(self._demo_models)

    def _run_next_demo_model(self) -> None:
        while self._demo_models and not self.inference.busy:
            if self.ai_panel.select_model(self._demo_models.pop(0)) and self.inference.start() is not None:
                return
        if getattr(self, "_demo_jump_pending", False) and not self._demo_models and not self.inference.busy:
            self._demo_jump_pending = False
            self.jump_to_top_finding()

    def jump_to_top_finding(self) -> bool:
        """Show the highest-scoring finding shown, unless the user has scrolled this series; True when it jumped.

        The sample study (``--demo``) calls it when its models finish, so the first thing seen is AI output.
        """
        if self.viewer.user_navigated:
            return False
        shown = self.findings_panel.shown()
        if not shown:
            return False
        top = max(shown, key=lambda f: f.score if isinstance(f.score, (int, float)) else -1.0)
        self.inference.go_to_finding(top.index)
        return True

    def open_paths(self, paths, remember: bool = True) -> None:
        """Scan ``paths`` (folders, files, DICOMDIR) on a worker, then open the largest image series."""
        paths = [str(p) for p in paths if str(p)]
        self._demo_models = []
        self._demo_jump_pending = False
        if not paths:
            return
        if not self.confirm_unsaved("Open another study"):
            return
        self.cancel_jobs()
        self.paths = paths
        self.show_report(None)
        self.annotation.study_paths = list(paths)
        if remember:
            first = Path(paths[0])
            self.settings.last_folder = str(first if first.is_dir() else first.parent)
            self.settings.add_recent(paths)
            self._rebuild_recent_menu()
        job = start_job(lambda token: iter_scan(paths, cancel=token), "scan", parent=self)
        job.progressed.connect(self._on_progress)
        job.finished.connect(lambda catalog, j=job: self._on_scanned(j, catalog))
        job.failed.connect(self._on_failed)
        job.cancelled.connect(self._on_cancelled)
        self._scan_job = job
        self._set_busy("Scanning")

    def _on_scanned(self, job: JobHandle, catalog) -> None:
        if job is not self._scan_job:
            return
        self._scan_job = None
        self.catalog = catalog
        self._info.clear()  # measurements stay: keyed by series, they come back if the study is reopened
        self._volumes.clear()
        for patient in catalog.patients:
            for study in patient.studies:
                for series in study.series:
                    self._info[series.key] = series_info(patient, study, series)
        self.browser.set_catalog(catalog)
        self.catalog_loaded.emit(catalog)
        images = [s for s in catalog.all_series() if s.kind == "image" and s.n_instances]
        if not images:
            report = report_no_images(self.paths, catalog)
            self._set_idle(report.headline)
            self.viewer.set_volume(None)
            self.show_report(report)
            self.inference.series_shown(None, None)
            self.annotation.series_shown(None, None)
            return
        # One rule with the CLI: the most real content, never a header's claims (a lying file must not win).
        approved = [s for s in images if s.uid in self.annotation.restore_approved]  # the start-up restore's series
        best = default_image_series(catalog, approved or images)
        self.open_series(best.key)

    def open_series(self, key: str) -> None:
        """Load a series of the current catalog (progressively) and show it."""
        if self.catalog is None:
            return
        series = self.catalog.find_series(key)
        if series is None:
            self.statusBar().showMessage(f"Unknown series {key}", 5000)
            return
        if series.kind != "image":
            self.statusBar().showMessage(f"{series.kind.upper()} objects are not images: nothing to show yet", 6000)
            return
        if self._load_job is not None and self._load_job.running:
            self._load_job.cancel()
        cached = self._volumes.get(series.key)
        if cached is not None:
            self._volumes.move_to_end(series.key)
            self._load_job = None
            self._show_volume(series, cached)
            self.viewer.volume_complete()
            self.show_report(report_volume(cached, self.catalog, series.warnings, self._image_number))
            self._set_idle(self._loaded_message(series, cached, None))
            self.series_loaded.emit(series.key)
            return
        order = self.settings.image_order  # which end opens on screen, and so is decoded first
        job = start_job(lambda token: iter_load(series, cancel=token, image_order=order), "load", parent=self)
        job.progressed.connect(lambda p, j=job, s=series: self._on_load_progress(j, s, p))
        job.finished.connect(lambda volume, j=job, s=series: self._on_loaded(j, s, volume))
        job.failed.connect(lambda reason, j=job: j is self._load_job and self._on_failed(reason))
        job.cancelled.connect(lambda j=job: j is self._load_job and self._on_cancelled())
        self._load_job = job
        self._shown_volume = None
        self._load_started = time.perf_counter()
        self._set_busy(f"Loading {series.description or series.key}")

    def _on_load_progress(self, job: JobHandle, series, progress: Progress) -> None:
        if job is not self._load_job:
            return
        self._on_progress(progress)
        volume = progress.payload
        if volume is None or volume.slices_loaded < 1:
            return
        if self._shown_volume is not volume:
            self._show_volume(series, volume)
        self.viewer.volume_updated(volume.slices_loaded, volume.shape[0])

    def _on_loaded(self, job: JobHandle, series, volume) -> None:
        if job is not self._load_job:
            return
        self._load_job = None
        if self._shown_volume is not volume:
            self._show_volume(series, volume)
        self.viewer.volume_complete()
        self.browser.set_warnings(series.key, list(series.warnings) + list(volume.warnings or []))
        self.show_report(report_volume(volume, self.catalog, series.warnings, self._image_number))
        self._cache_volume(series.key, volume)
        self._set_idle(self._loaded_message(series, volume, time.perf_counter() - self._load_started))
        self.series_loaded.emit(series.key)
        self._start_thumbnails()

    def _loaded_message(self, series, volume, seconds: float | None) -> str:
        z, y, x = volume.shape
        dz, dy, dx = volume.spacing
        calibration = getattr(volume, "calibration", None)
        if calibration is None or calibration.source == "pixel_spacing":
            text = f"{series.modality} {x}x{y}x{z}, {dx:.2f}x{dy:.2f}x{dz:.2f} mm"
        else:  # the grid is nominal (1 mm a pixel): say how the image is calibrated instead
            text = f"{series.modality} {x}x{y}x{z}, {CALIBRATION_WORDS.get(calibration.source, calibration.source)}"
        if seconds is not None:
            text += f", loaded in {seconds:.2f} s"
        if volume.warnings:  # the whole text is in the banner over the views (a long one was cut off here)
            n = len(volume.warnings)
            text += f"   ⚠ {n} warning{'s' if n != 1 else ''} (see above the image)"
        return text

    def _image_number(self, k: int) -> int:
        """The image number the views show for array slice ``k`` of the acquisition plane (display order)."""
        state = self.viewer.state
        return state.display_number(state.native_plane, k) if state is not None else k + 1

    def show_report(self, report) -> None:
        """Say what went wrong (or what to read with care) over the views; the views themselves say it too
        while nothing is shown. None clears it."""
        self.banner.show_report(report)
        if self.viewer.volume is None or report is None:
            self.viewer.empty_text = report.headline if report is not None else ""
            for view in self.viewer.views.values():
                view.viewport().update()

    def _cache_volume(self, key: str, volume) -> None:
        self._volumes[key] = volume
        self._volumes.move_to_end(key)
        while len(self._volumes) > VOLUME_CACHE_COUNT or (
                len(self._volumes) > 1 and sum(v.array.nbytes for v in self._volumes.values()) > VOLUME_CACHE_BYTES):
            self._volumes.popitem(last=False)

    def _show_volume(self, series, volume) -> None:
        info = dict(self._info.get(series.key, {}))
        info["warnings"] = [w.message for w in (volume.warnings or series.warnings)]
        self.current_series = series
        self._shown_volume = volume
        self.rtstruct.clear()
        self.viewer.set_volume(volume, info, self._measurements.setdefault(series.key, []))
        self.inference.series_shown(series.key, volume)
        self.annotation.series_shown(series.key, volume, series)
        self.browser.set_current(series.key)
        title = " · ".join(t for t in (info.get("patient_name"), info.get("series_description")) if t)
        self.setWindowTitle(window_title(title))
        self._update_tags()

    def _start_thumbnails(self) -> None:
        if self.catalog is None or self._thumb_job is not None:
            return
        series = [s for s in self.catalog.all_series() if s.kind == "image"]
        job = start_job(lambda token: iter_thumbnails(series, token), "thumbnails", parent=self,
                        progress_interval=0.0)
        job.progressed.connect(lambda p: p.payload and self.browser.set_thumbnail(*p.payload))
        job.done.connect(lambda: None)
        self._thumb_job = job

    def cancel_jobs(self) -> None:
        """Cancel scanning, loading and thumbnails."""
        for job in (self._scan_job, self._load_job, self._thumb_job):
            if job is not None and job.running:
                job.cancel()
        self._scan_job = None
        self._load_job = None
        self._thumb_job = None

    def cancel_by_user(self) -> None:
        """The Cancel button: stop everything; what was already decoded stays on screen."""
        volume = self.viewer.volume
        loading = self._load_job is not None and self._load_job.running
        self.cancel_jobs()
        message = "Cancelled"
        if loading and volume is not None and not volume.complete:
            message += f": {volume.slices_loaded} of {volume.shape[0]} slices loaded"
            self.viewer.loading = None
            self.viewer.volume_updated()
            self.show_report(report_volume(volume, self.catalog))
            self.inference.update_actions()
        self._set_idle(message)

    @property
    def busy(self) -> bool:
        """True while a scan or load runs."""
        return any(j is not None and j.running for j in (self._scan_job, self._load_job))

    # ---- progress ---------------------------------------------------------------------------------------------------
    def _set_busy(self, text: str) -> None:
        self.progress.setRange(0, 0)
        self.progress.setFormat(text)
        self.progress.show()
        self.cancel_button.show()
        self.statusBar().showMessage(text + "…")

    def _set_idle(self, message: str = "") -> None:
        self.progress.hide()
        self.cancel_button.hide()
        if message:
            self.statusBar().showMessage(message)
        else:
            self.statusBar().clearMessage()

    def _on_progress(self, progress: Progress) -> None:
        if progress.total:
            self.progress.setRange(0, progress.total)
            self.progress.setValue(progress.done)
            self.progress.setFormat(f"{progress.message} %v/%m" if progress.message else "%v/%m")
        else:
            self.progress.setRange(0, 0)
            self.progress.setFormat(progress.message or "Working")

    def _on_failed(self, reason: str) -> None:
        self._set_idle(f"Failed: {reason}")
        self.show_report(report_failed("Opening" if self.viewer.volume is None else "Loading", reason, self.catalog))
        self.job_failed.emit(reason)

    def _on_cancelled(self) -> None:
        self._set_idle("Cancelled")

    # ------------------------------------------------------------------------------------------------------------
    # panels
    # ------------------------------------------------------------------------------------------------------------
    def _refresh_measurements(self) -> None:
        state = self.viewer.state
        calibration = getattr(state.volume, "calibration", None) if state is not None else None
        self.measurements_panel.set_measurements(self.viewer.measurements, self.viewer.value_unit(),
                                                 self.viewer.selected_measurement_id,
                                                 state.display_number if state is not None else None,
                                                 plane_names=calibration is None or calibration.has_orientation)

    def _clear_measurements(self) -> None:
        for m in list(self.viewer.measurements):
            self.viewer.remove_measurement(m.id)

    def current_instance(self):
        """``(InstanceHeader, frame number)`` of the image on screen in the acquisition plane, or None."""
        state, series = self.viewer.state, self.current_series
        if state is None or series is None:
            return None
        volume = state.volume
        k = state.slice_index(state.native_plane)
        if not volume.slice_sop_uids or k >= len(volume.slice_sop_uids):
            return None
        uid = volume.slice_sop_uids[k]
        frame = volume.slice_frame_numbers[k] if k < len(volume.slice_frame_numbers) else 1
        for inst in series.instances:
            if inst.sop_instance_uid == uid:
                return inst, frame
        return None

    def _update_tags(self) -> None:
        if not self.tags_dock.isVisible() and not self.tags.isVisible():
            return
        found = self.current_instance()
        if found is None:
            self.tags.show_file(None)
            return
        inst, frame = found
        state = self.viewer.state
        k = state.slice_index(state.native_plane)
        n = state.n_slices(state.native_plane)
        caption = f"Image {self._image_number(k)}/{n} — {os.path.basename(inst.path)}"
        if inst.number_of_frames > 1:
            caption += f", frame {frame}"
        self.tags.show_file(inst.path, caption)

    def _update_ai_menu(self) -> None:
        self.action_run_model.setEnabled(self.ai_panel.run_button.isEnabled())
        self.action_cancel_model.setEnabled(self.inference.busy)
        idle = not self.inference.busy
        self.action_explain_finding.setEnabled(idle and self.findings_panel.selected_index() is not None)
        self.action_explain_label.setEnabled(idle and self.inference.layer("segmentation") is not None)

    def _explain_selected_finding(self) -> None:
        index = self.findings_panel.selected_index()
        if index is not None:
            self.inference.explain_finding(index)

    def _explain_label(self) -> None:
        """Ask which label of the shown segmentation to explain, then run Grad-CAM for it."""
        layer = self.inference.layer("segmentation")
        if layer is None or not layer.present:
            return
        names = [layer.label_name(v) for v in layer.present]
        name, ok = QInputDialog.getItem(self, "Explain Label", "Grad-CAM of which label?", names, 0, False)
        if ok:
            self.inference.explain_label(layer.present[names.index(name)])

    def _on_layout_changed(self, name: str) -> None:
        self.settings.layout = name

    def _on_fps(self, fps: int) -> None:
        self.viewer.set_cine_fps(fps)
        self.settings.cine_fps = fps

    def set_image_order(self, order: str) -> None:
        """The "Image order" setting (``head_first`` / ``as_acquired``): applied to the views and remembered."""
        self.viewer.set_image_order(order)
        self.inference.renumber_findings()
        self._refresh_measurements()
        self.settings.image_order = self.viewer.image_order.value
        self.image_order_actions[self.viewer.image_order.value].setChecked(True)

    def _set_smooth(self, smooth: bool) -> None:
        self.viewer.set_smooth(smooth)
        self.settings.smooth = smooth

    # ------------------------------------------------------------------------------------------------------------
    # recent, screenshots, help
    # ------------------------------------------------------------------------------------------------------------
    def _rebuild_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        recent = self.settings.recent
        for paths in recent:
            first = paths[0]
            label = os.path.basename(first.rstrip("/\\")) or first
            if len(paths) > 1:
                label += f" (+{len(paths) - 1})"
            action = menu.addAction(label)
            action.setToolTip("\n".join(paths))
            action.setStatusTip(first)
            action.triggered.connect(lambda _=False, p=paths: self.open_paths(p))
        if recent:
            menu.addSeparator()
            menu.addAction("Clear Recent", self._clear_recent)
        menu.setEnabled(bool(recent))

    def _clear_recent(self) -> None:
        self.settings.clear_recent()
        self._rebuild_recent_menu()

    def screenshot_name(self) -> str:
        """A default file name for the current view."""
        info = self._info.get(self.current_series.key, {}) if self.current_series else {}
        state = self.viewer.state
        k = state.display_number(self.viewer.active_view.plane) if state is not None else 0
        number = info.get("series_number")
        return f"hounsfield-se{number if number is not None else 'x'}-im{k}.png"

    def save_screenshot(self, path: str) -> bool:
        """Save the visible views as PNG."""
        return self.viewer.grab_views().save(path, "PNG")

    def save_screenshot_dialog(self) -> None:
        start = os.path.join(self.annotation.export_folder(), self.screenshot_name())
        path, _ = QFileDialog.getSaveFileName(self, "Save screenshot", start, "PNG image (*.png)")
        if path:
            self.settings.exports_folder = os.path.dirname(os.path.abspath(path))
            if not path.lower().endswith(".png"):
                path += ".png"
            ok = self.save_screenshot(path)
            self.statusBar().showMessage(f"Saved {path}" if ok else f"Could not write {path}", 5000)

    def copy_screenshot(self) -> None:
        """Put a picture of the views on the clipboard."""
        QGuiApplication.clipboard().setPixmap(self.viewer.grab_views())
        self.statusBar().showMessage("Screenshot copied to the clipboard", 3000)

    def show_shortcuts(self) -> None:
        dialog = ShortcutsDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()

    def about_text(self) -> str:
        return (f"<h3>{APP_NAME} {_version()}</h3>"
                f"<p><b>{DISCLAIMER}</b> This software is not a medical device and must not be used "
                "for diagnosis or treatment decisions.</p>"
                "<p>A desktop DICOM viewer with AI assistance. Built with Qt for Python (PySide6, LGPL), "
                "pyqtgraph (MIT), pydicom (MIT), NumPy and SimpleITK.</p>")

    def show_about(self) -> None:
        QMessageBox.about(self, f"About {APP_NAME}", self.about_text())

    # ------------------------------------------------------------------------------------------------------------
    # drag and drop, close
    # ------------------------------------------------------------------------------------------------------------
    def dragEnterEvent(self, event):  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    # ------------------------------------------------------------------------------------------------------------
    # annotation: restore, SEGs of the study, unsaved work
    # ------------------------------------------------------------------------------------------------------------
    def _after_series_loaded(self, _key: str) -> None:
        """A series finished loading: show the RTSTRUCTs referencing it (read-only); offer its autosave, else a SEG
        of the study that references it."""
        self.rtstruct.series_loaded(self.catalog, self.current_series, self._shown_volume)
        if not self.annotation.check_restore():
            self.annotation.offer_segs(self.catalog)
        self._run_next_demo_model()

    def ask_startup_restore(self, info) -> bool:
        """Offer, at start-up, to reopen the study of an autosave and restore it (tests replace this)."""
        import datetime

        when = datetime.datetime.fromtimestamp(info.saved_at).strftime("%Y-%m-%d %H:%M")
        answer = QMessageBox.question(
            self, "Restore annotation",
            f"Unsaved annotation from {when} ({info.n_segments} segments) — reopen its study and restore?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes)
        return answer == QMessageBox.StandardButton.Yes

    def offer_startup_restore(self) -> bool:
        """At start-up without paths: when an autosave newer than its export records study paths that still
        exist, ask once (newest first); yes opens those paths and restores when the series loads, without asking
        again. No leaves it (it is still offered when that series is opened). Returns True when it reopened."""
        from viewer.core.editing.autosave import find_restorable

        try:
            found = [i for i in find_restorable(self.annotation.autosave_root)
                     if i.source_paths and all(os.path.exists(p) for p in i.source_paths)]
        except OSError:
            return False
        if not found:
            return False
        info = found[0]
        if not self.ask_startup_restore(info):
            return False
        self.annotation.restore_approved.add(info.series_uid)
        self.open_paths(list(info.source_paths))
        return True

    def confirm_unsuitable(self, reasons: list, model_name: str = "") -> bool:
        """Ask before running a model on a series it was not made for (tests replace this); True runs it."""
        return self.inference.ask_unsuitable(reasons, model_name or "The model")

    def _shown_body_part(self) -> str:
        """BodyPartExamined of the shown series (one header read, then remembered per series)."""
        from viewer.core.run_model import body_part_of

        series = self.current_series
        if series is None:
            return ""
        if series.key not in self._body_parts:
            self._body_parts[series.key] = body_part_of(series)
        return self._body_parts[series.key]

    def ask_unsaved(self, action: str) -> str:
        """Ask what to do with annotations not exported (tests replace this): ``"keep"`` (go on; the autosave
        is offered again next time), ``"discard"`` or ``"cancel"``."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved annotation",
                          "The annotation has changes that were not exported.", parent=self)
        box.setInformativeText(f"{action}: keep them for later (the autosave is offered at the next start and "
                               "when the series is opened again), discard them, or cancel and export first (File > Export Annotation).")
        keep = box.addButton("Keep for Later", QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(keep)
        box.exec()
        clicked = box.clickedButton()
        return "keep" if clicked is keep else "discard" if clicked is discard else "cancel"

    def confirm_unsaved(self, action: str) -> bool:
        """True when ``action`` (closing, opening another study) may go on; asks first when there is unsaved
        annotation work."""
        an = self.annotation
        an.end_strokes()
        if not an.modified:
            return True
        answer = self.ask_unsaved(action)
        if answer == "cancel":
            return False
        if answer == "discard":
            an.discard_all()
        else:
            an.autosave_now(force=True)
        return True

    def closeEvent(self, event):  # noqa: N802
        if not self.confirm_unsaved("Close"):
            event.ignore()
            return
        self.viewer.stop_cine()
        self.cancel_jobs()
        self.inference.shutdown()
        self.save_settings()
        job_pool().waitForDone(3000)
        super().closeEvent(event)
