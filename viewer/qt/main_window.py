"""The main window: the views, the panels in docks, menus and toolbars, bound to one Qt-free
:class:`~viewer.core.session.Session` (what is open, shown and computed).

Opening is always asynchronous (:class:`~viewer.qt.study_loader.StudyLoader`): scan and load run as core jobs on
worker threads, the status bar shows their progress with a Cancel button, and the first decoded slice is shown while
the rest fill in. The menus, toolbars and docks are built by :mod:`viewer.qt.window_chrome`.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDockWidget, QMainWindow, QVBoxLayout, QWidget

from viewer.core.load_report import loaded_message, report_failed, report_no_images, report_volume
from viewer.core.session import Session
from viewer.qt import dialogs, window_chrome
from viewer.qt.annotation import AnnotationController, SegmentsWidget
from viewer.qt.batch_results import BatchResultsController
from viewer.qt.compare import CompareController
from viewer.qt.demo import DemoRunner
from viewer.qt.findings_panel import FindingsWidget
from viewer.qt.habits import ReadingHabits
from viewer.qt.inference_lane import InferenceLane
from viewer.qt.inference_panel import InferencePanelWidget
from viewer.qt.key_routing import install_text_input_guard
from viewer.qt.measurement_files import MeasurementFilesController
from viewer.qt.measurements_panel import MeasurementsWidget
from viewer.qt.pacs import PacsController
from viewer.qt.rtstruct_layer import RTStructController
from viewer.qt.series_browser import SeriesBrowserWidget
from viewer.qt.settings import Settings
from viewer.qt.status_banner import StatusBannerWidget
from viewer.qt.study_loader import StudyLoader
from viewer.qt.tag_browser import TagBrowserWidget
from viewer.qt.viewer_widget import ViewerWidget
from viewer.qt.workers import job_pool

log = logging.getLogger(__name__)

APP_NAME = "Hounsfield"
DISCLAIMER = "Research use only — not for diagnosis."


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
    app_name = APP_NAME

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else Settings()
        self.setWindowTitle(window_title())
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        #: What is open, shown and computed (plain data; the widgets below bind to it).
        self.session = Session()
        self.session.presets = self.settings.presets
        self.loader = StudyLoader(self.session, self)
        self._show_pending = False  # a series was asked for: its volume is shown when it arrives, even from cache

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
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        add_dock = window_chrome.add_dock
        self.series_dock = add_dock(self, "Series", "dock-series", self.browser, left)
        self.ai_dock = add_dock(self, "AI", "dock-ai", self.ai_panel, right)
        self.measure_dock = add_dock(self, "Measurements", "dock-measurements", self.measurements_panel, right)
        self.findings_dock = add_dock(self, "Findings", "dock-findings", self.findings_panel, right, scrollable=True)
        self.tags_dock = add_dock(self, "DICOM tags", "dock-tags", self.tags, right)
        self.segments_dock = add_dock(self, "Segments", "dock-segments", self.segments_panel, right, scrollable=True)
        self.tabifyDockWidget(self.measure_dock, self.findings_dock)
        self.tabifyDockWidget(self.findings_dock, self.tags_dock)
        self.tabifyDockWidget(self.tags_dock, self.segments_dock)
        self.measure_dock.raise_()
        self.demo = DemoRunner(self)
        self.inference = InferenceLane(self.viewer, self.ai_panel, self.findings_panel, self.settings, parent=self,
                                       session=self.session)
        # late-bound, so a test can answer by replacing window.confirm_unsuitable
        self.inference.confirm_unsuitable = lambda reasons, name="": self.confirm_unsuitable(reasons, name)
        self.inference.body_part = self._shown_body_part
        self.annotation = AnnotationController(self.viewer, self.segments_panel, self.inference, self.findings_panel,
                                               parent=self, settings=self.settings, session=self.session)
        self.rtstruct = RTStructController(self.viewer, parent=self)
        self.measurement_files = MeasurementFilesController(self)  # save/load/autosave/restore (DICOM SR)
        self.compare = CompareController(self)  # a prior beside the views (series browser > Compare with Current)
        self.pacs = PacsController(self)  # the PACS dock (query, retrieve) and the Send / Nodes dialogs
        self.batch_results = BatchResultsController(self)  # `hounsfield batch` results shown when a series loads
        window_chrome.build_status_bar(self)
        window_chrome.build_menus(self)
        window_chrome.build_toolbar(self)
        self._connect()
        self.habits = ReadingHabits(self)  # bindings, hanging protocols, the last slab (before the layout)
        window_chrome.restore_window_settings(self)
        install_text_input_guard(self)  # slice keys work in every panel; inputs keep theirs
        self._show_placeholder()

    # ---- what is open (the session) -----------------------------------------------------------------------------
    @property
    def catalog(self):
        """The open catalog (None before a scan finished)."""
        return self.session.catalog

    @property
    def current_series(self):
        """The catalog Series shown (None when nothing is)."""
        current = self.session.current
        return current.series if current is not None else None

    @property
    def paths(self) -> list[str]:
        """What the open study was scanned from."""
        return self.session.paths

    @property
    def busy(self) -> bool:
        """True while a scan or load runs."""
        return self.loader.busy

    # ---- docks ------------------------------------------------------------------------------------------------
    def docks(self) -> list[QDockWidget]:
        """Every panel dock."""
        return [self.series_dock, self.ai_dock, self.segments_dock, self.measure_dock, self.findings_dock,
                self.tags_dock, self.compare.followup_dock, self.pacs.dock]

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        old = event.oldSize()
        if not old.isValid() or event.size().width() < old.width():
            QTimer.singleShot(0, lambda: window_chrome.fit_docks(self))  # once the docks have their new widths
        window_chrome.wrap_toolbars(self)

    def _connect(self) -> None:
        v, status = self.viewer, self.job_status
        v.cursor_info.connect(self.cursor_label.setText)
        v.window_text_changed.connect(self.window_label.setText)
        v.files_dropped.connect(self.open_paths)
        v.notice_clicked.connect(self.banner.show_details)
        v.series_dropped.connect(self.open_series)
        v.measurements_changed.connect(self._refresh_measurements)
        v.measurement_selected.connect(self.measurements_panel.select)
        v.position_changed.connect(self._update_tags)
        v.layout_changed.connect(lambda name: setattr(self.settings, "layout", name))
        v.presets_changed.connect(lambda: window_chrome.refresh_window_menus(self))
        v.cine_changed.connect(lambda running: self.viewer.actions["cine"].setChecked(running))
        v.actions["cine"].setCheckable(True)
        v.tool_changed.connect(lambda _tool: self.viewer.editing and self.segments_dock.raise_())
        self.fps_box.valueChanged.connect(self._on_fps)
        for key in ("cine_faster", "cine_slower"):
            v.actions[key].triggered.connect(lambda *_: self.fps_box.setValue(self.viewer.cine_fps))
        loader = self.loader
        loader.started.connect(status.busy)
        loader.progressed.connect(status.show_progress)
        loader.scanned.connect(self._on_scanned)
        self.session.load_progressed.connect(self._on_slices_arrived)
        self.session.volume_loaded.connect(self._on_loaded)
        loader.failed.connect(self.on_job_failed)
        loader.cancelled.connect(lambda: status.idle("Cancelled"))
        loader.thumbnail.connect(lambda payload: self.browser.set_thumbnail(*payload))
        self.browser.series_activated.connect(self.open_series)
        self.measurements_panel.selected.connect(lambda mid: self.viewer.select_measurement(mid))
        self.measurements_panel.delete_requested.connect(self.viewer.remove_measurement)
        self.measurements_panel.clear_requested.connect(self.measurement_files.clear)
        self.tags_dock.visibilityChanged.connect(lambda visible: visible and self._update_tags())
        lane, an = self.inference, self.annotation
        lane.status_message.connect(self.statusBar().showMessage)
        lane.result_applied.connect(lambda task: task == "detection" and self.findings_dock.raise_())
        lane.result_applied.connect(lambda _task: an._refresh_panel())
        self.findings_panel.explain_requested.connect(lane.explain_finding)
        lane.run_done.connect(self.demo.run_next)
        self.series_loaded.connect(lambda _key: lane.update_actions())
        an.status_message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        an.job_started.connect(status.busy)
        an.job_progress.connect(status.show_progress)
        an.job_ended.connect(status.idle)
        self.series_loaded.connect(self._after_series_loaded)
        self.rtstruct.status_message.connect(lambda text: self.statusBar().showMessage(text, 15000))

    def apply_presets(self, presets) -> None:
        """Use and remember these window presets."""
        self.settings.presets = presets
        self.session.presets = self.settings.presets
        self.viewer.set_presets(self.settings.presets)

    def _show_placeholder(self) -> None:
        self.viewer.empty_text = "Open a DICOM folder (Ctrl+O) or drop files here"
        self.statusBar().showMessage("Open a DICOM folder (Ctrl+O), drop files here, or File > Open Sample Study. "
                                     "F1 lists the keys.")

    # ---- opening ------------------------------------------------------------------------------------------------
    def open_demo(self) -> None:
        """Open the built-in sample study and run the built-in models on it."""
        self.demo.open()

    def jump_to_top_finding(self) -> bool:
        """Show the highest-scoring finding shown unless the user has scrolled; True when it jumped."""
        return self.demo.jump_to_top_finding()

    def open_paths(self, paths, remember: bool = True, confirm: bool = True) -> None:
        """Scan ``paths`` (folders, files, DICOMDIR) on a worker, then open the largest image series (``confirm``
        False: the caller has already asked about unsaved work)."""
        paths = [str(p) for p in paths if str(p)]
        self.demo.reset()
        if not paths or (confirm and not self.confirm_unsaved("Open another study")):
            return
        self.show_report(None)
        self.annotation.study_paths = list(paths)
        if remember:
            first = Path(paths[0])
            self.settings.last_folder = str(first if first.is_dir() else first.parent)
            self.settings.add_recent(paths)
            window_chrome.rebuild_recent_menu(self)
        self.loader.scan(paths)

    def _on_scanned(self, catalog) -> None:
        self.browser.set_catalog(catalog)
        self.catalog_loaded.emit(catalog)
        # One rule with the CLI: the most real content, never a header's claims (a lying file must not win); an
        # autosave the user chose to restore at start-up picks its series.
        best = self.session.default_image_series(self.annotation.restore_approved)
        if best is None:
            report = report_no_images(self.paths, catalog)
            self.job_status.idle(report.headline)
            self.viewer.set_volume(None)
            self.session.hide()
            self.show_report(report)
            self.inference.series_shown(None, None)
            self.annotation.series_shown(None, None)
            return
        self.open_series(best.key)

    def open_series(self, key: str) -> None:
        """Load a series of the current catalog (progressively) and show it."""
        series = self.session.find_series(key)
        if self.catalog is None:
            return
        if series is None:
            self.statusBar().showMessage(f"Unknown series {key}", 5000)
            return
        if series.kind != "image":
            self.statusBar().showMessage(f"{series.kind.upper()} objects are not images: nothing to show yet", 6000)
            return
        self._show_pending = True
        self.loader.load(series, self.settings.image_order)  # which end opens on screen is decoded first

    def _on_slices_arrived(self, key: str, volume) -> None:
        series = self.session.find_series(key)
        if self._needs_showing(key, volume):
            self._show_volume(series, volume)
        self.viewer.volume_updated(volume.slices_loaded, volume.shape[0])

    def _on_loaded(self, key: str, volume, seconds) -> None:
        series = self.session.find_series(key)
        if self._needs_showing(key, volume):
            self._show_volume(series, volume)
        self.viewer.volume_complete()
        if seconds is not None:  # read now, not from the cache
            self.browser.set_warnings(series.key, list(series.warnings) + list(volume.warnings or []))
        self.show_report(report_volume(volume, self.catalog, series.warnings, self._image_number))
        self.job_status.idle(loaded_message(series, volume, seconds))
        self.series_loaded.emit(series.key)

    def _needs_showing(self, key: str, volume) -> bool:
        shown = self.session.current
        return self._show_pending or shown is None or shown.key != key or shown.volume is not volume

    def _show_volume(self, series, volume) -> None:
        self._show_pending = False
        state = self.session.show(series.key, volume)
        info = dict(state.info)
        info["warnings"] = [w.message for w in (volume.warnings or series.warnings)]
        self.rtstruct.clear()
        self.viewer.set_volume(volume, info, state.measurements, state=state.display)
        self.inference.series_shown(series.key, volume)
        self.annotation.series_shown(series.key, volume, series)
        self.browser.set_current(series.key)
        title = " · ".join(t for t in (info.get("patient_name"), info.get("series_description")) if t)
        self.setWindowTitle(window_title(title))
        self._update_tags()

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

    def cancel_jobs(self) -> None:
        """Cancel scanning, loading (also of a prior) and thumbnails."""
        self.loader.cancel()
        self.compare.cancel()
        self.pacs.cancel()

    def cancel_by_user(self) -> None:
        """The Cancel button: stop everything; what was already decoded stays on screen."""
        volume = self.viewer.volume
        loading = self.loader.loading
        self.cancel_jobs()
        message = "Cancelled"
        if loading and volume is not None and not volume.complete:
            message += f": {volume.slices_loaded} of {volume.shape[0]} slices loaded"
            self.viewer.loading = None
            self.viewer.volume_updated()
            self.show_report(report_volume(volume, self.catalog))
            self.inference.update_actions()
        self.job_status.idle(message)

    def on_job_failed(self, reason: str) -> None:
        """A scan, load or the sample study failed: say why, over the views too."""
        self.job_status.idle(f"Failed: {reason}")
        self.show_report(report_failed("Opening" if self.viewer.volume is None else "Loading", reason, self.catalog))
        self.job_failed.emit(reason)

    # ---- panels -------------------------------------------------------------------------------------------------

    def _refresh_measurements(self) -> None:
        state = self.viewer.state
        calibration = getattr(state.volume, "calibration", None) if state is not None else None
        self.measurements_panel.set_measurements(self.viewer.measurements, self.viewer.value_unit(),
                                                 self.viewer.selected_measurement_id,
                                                 state.display_number if state is not None else None,
                                                 plane_names=calibration is None or calibration.has_orientation)

    def current_instance(self):
        """``(InstanceHeader, frame number)`` of the image on screen in the acquisition plane, or None."""
        current = self.session.current
        return current.current_instance() if current is not None else None

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

    def _on_fps(self, fps: int) -> None:
        self.viewer.set_cine_fps(fps)
        self.settings.cine_fps = fps

    def set_image_order(self, order: str) -> None:
        """The "Image order" setting (``head_first`` / ``as_acquired``): applied to the views and remembered."""
        self.viewer.set_image_order(order)
        self.inference.renumber_findings()
        self._refresh_measurements()
        self.settings.image_order = self.session.image_order = self.viewer.image_order.value
        self.image_order_actions[self.viewer.image_order.value].setChecked(True)

    def set_smooth(self, smooth: bool) -> None:
        """Smooth (bilinear) or nearest-neighbour display, remembered."""
        self.viewer.set_smooth(smooth)
        self.settings.smooth = smooth

    # ---- screenshots, help, drag and drop -------------------------------------------------------------------------

    def save_screenshot(self, path: str) -> bool:
        """Save the visible views as PNG."""
        return self.viewer.grab_views().save(path, "PNG")

    def copy_screenshot(self) -> None:
        """Put a picture of the views on the clipboard."""
        QGuiApplication.clipboard().setPixmap(self.viewer.grab_views())
        self.statusBar().showMessage("Screenshot copied to the clipboard", 3000)

    def about_text(self) -> str:
        return dialogs.about_html(APP_NAME, _version(), DISCLAIMER)

    def dragEnterEvent(self, event):  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    # ---- annotation: restore, SEGs of the study, unsaved work ------------------------------------------------------

    def _after_series_loaded(self, _key: str) -> None:
        """A series finished loading: show the RTSTRUCTs referencing it (read-only); offer its autosave, else a SEG
        of the study that references it."""
        self.rtstruct.series_loaded(self.catalog, self.current_series, self.session.current.volume)
        if not self.annotation.check_restore():
            self.annotation.offer_segs(self.catalog)
        self.demo.run_next()

    def ask_startup_restore(self, info) -> bool:
        """Offer, at start-up, to reopen the study of an autosave and restore it (tests replace this)."""
        return dialogs.ask_startup_restore(self, info)

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
        current = self.session.current
        return current.read_body_part() if current is not None else ""

    def ask_unsaved(self, action: str) -> str:
        """Ask what to do with annotations not exported (tests replace this): ``"keep"``, ``"discard"``,
        ``"cancel"``."""
        return dialogs.ask_unsaved(self, action)

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
        window_chrome.save_window_settings(self)
        job_pool().waitForDone(3000)
        super().closeEvent(event)
