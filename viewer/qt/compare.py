"""Prior and current side by side: a second viewer beside the main one, moving with it through registration.

"Compare with…" (the series browser's menu, or dropping a series on the prior side) loads the other series on a
worker and shows it at the right of the main viewer: 1x2 when the main viewer shows one plane, 2x3 when it shows
three. Scrolling, zoom, pan and window follow in both directions; scrolling maps through the registration
transform (current LPS → prior LPS), so different slice spacings and patient positions stay on the same anatomy.
Registration (lung-focused rigid, SimpleITK) runs on a worker with progress and cancel, is cached per pair, and can
be reset to table position. The keys keep acting on the main viewer; the prior follows it.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QRectF, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSplitter, QToolButton, QVBoxLayout, QWidget

from viewer.core.dicom.load import iter_load
from viewer.core.display import Plane
from viewer.core.linked_display import LinkedDisplays
from viewer.qt import window_chrome
from viewer.qt.followup_panel import FollowUpController
from viewer.qt.overlays import DetectionLayer, SegmentationLayer
from viewer.qt.viewer_actions import WINDOW_WIDE_ACTIONS
from viewer.qt.viewer_widget import ViewerWidget
from viewer.qt.workers import JobHandle, start_job


def describe_series(series, study=None) -> str:
    """A short caption for a compared series: study date, modality, description (cut from the end when narrow)."""
    date = getattr(study, "date", "") or ""
    if len(date) == 8 and date.isdigit():
        date = f"{date[:4]}-{date[4:6]}-{date[6:]}"
    parts = [date, getattr(series, "modality", "") or "", getattr(series, "description", "") or ""]
    return " · ".join(p for p in parts if p) or series.key


class PriorPanel(QWidget):
    """The prior's side: a caption bar (what is shown; the comparison's :attr:`controls`: the registration, Register
    / Reset / Swap / Close) over a passive :class:`ViewerWidget` whose window-wide keys are off (they drive the
    main viewer)."""

    def __init__(self, presets, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("prior-panel")
        self.viewer = ViewerWidget(self, presets=presets)
        self.viewer.show_active_frame = False
        for key, action in self.viewer.actions.items():
            if key in WINDOW_WIDE_ACTIONS or key.startswith("preset_"):
                action.setShortcuts([])  # one owner per key in the window: the main viewer
        self.caption = caption_label("prior-caption")
        self.controls = QWidget(self)
        self.transform_label = QLabel(self.controls)
        self.transform_label.setObjectName("prior-transform")
        self.buttons: dict[str, QToolButton] = {}
        row = QHBoxLayout(self.controls)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)
        row.addWidget(self.transform_label)
        for key, text, tip in (("register", "Register", "Align the prior to the current study (rigid, lungs)"),
                               ("reset", "Reset", "Forget the registration: align by table position"),
                               ("swap", "Swap", "Show the prior as the main study and the current here"),
                               ("close", "Close", "Stop comparing")):
            button = QToolButton(self.controls)
            button.setText(text)
            button.setToolTip(tip)
            row.addWidget(button)
            self.buttons[key] = button
        self.bar = QHBoxLayout()
        self.bar.setContentsMargins(6, 2, 6, 2)
        self.bar.setSpacing(12)
        self.bar.addWidget(self.caption, 1)
        self.bar.addWidget(self.controls)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addLayout(self.bar)
        column.addWidget(self.viewer, 1)


def caption_label(name: str) -> QLabel:
    """A caption that gives way (is cut) rather than widening its side of the split."""
    label = QLabel()
    label.setObjectName(name)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


def captioned(widget: QWidget, caption: QLabel) -> tuple[QWidget, QWidget]:
    """``widget`` under a one-line caption bar as tall as the prior's (so both sides' views line up); returns the
    box and the bar (hidden while nothing is compared)."""
    box, bar = QWidget(), QWidget()
    row = QHBoxLayout(bar)
    row.setContentsMargins(6, 2, 6, 2)
    row.addWidget(caption, 1)
    spacer = QToolButton(bar)  # an invisible button: the bar gets the prior bar's height
    spacer.setText(" ")
    spacer.setEnabled(False)
    spacer.setAutoRaise(True)
    row.addWidget(spacer)
    column = QVBoxLayout(box)
    column.setContentsMargins(0, 0, 0, 0)
    column.setSpacing(0)
    column.addWidget(bar)
    column.addWidget(widget, 1)
    return box, bar


class CompareController(QObject):
    """Owns the comparison of the window's shown series (session slot 0) with a second one (slot 1).

    Signals
    -------
    compare_changed(object)
        The compared series key, or None when the comparison closed.
    registered(object)
        A registration finished (its result object) or was reset (None).
    status_message(str)
        Something for the status bar.
    """

    compare_changed = Signal(object)
    registered = Signal(object)
    status_message = Signal(str)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.panel: PriorPanel | None = None
        self.splitter: QSplitter | None = None
        self.link: LinkedDisplays | None = None
        self.prior_key: str | None = None
        self.registration = None  # the result shown, None: table position
        #: register as soon as a prior is shown (tests turn it off to see table position first)
        self.auto_register = True
        self._registrations: dict[tuple[str, str], object] = {}  # (current, prior) -> result, for this session
        self._cache = None  # RegistrationCache (on disk), made on first use
        self._load_job: JobHandle | None = None
        self._register_job: JobHandle | None = None
        self._syncing_range = False
        self._free_shows_prior = False  # 2x2: the prior is in the main viewer's free view
        #: (main key, prior key): compare once that main series is shown (after a swap)
        self._pending_compare: tuple[str, str] | None = None
        self.session.shown_changed.connect(self._on_shown_changed)
        window.viewer.layout_changed.connect(self._follow_layout)
        window.browser.compare_requested.connect(self.compare_with)
        window.series_loaded.connect(self._on_series_loaded)
        self.followup = FollowUpController(window, self)
        self.followup_dock = window_chrome.add_dock(window, "Follow-up", "dock-followup", self.followup.widget,
                                                    Qt.DockWidgetArea.RightDockWidgetArea)
        window.tabifyDockWidget(window.findings_dock, self.followup_dock)
        window.findings_panel.min_score_changed.connect(self._prior_min_score)
        window.findings_dock.raise_()
        self.status_message.connect(lambda text: window.statusBar().showMessage(text, 8000))

    # ---- opening and closing ----------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """True while a prior is shown."""
        return self.prior_key is not None

    @property
    def prior_viewer(self) -> ViewerWidget | None:
        """The prior's viewer (None before the first comparison)."""
        return self.panel.viewer if self.panel is not None else None

    def compare_with(self, key: str) -> None:
        """Load series ``key`` (on a worker) and show it beside the current series."""
        current = self.session.current
        series = self.session.find_series(key)
        if current is None or series is None or series.kind != "image":
            self.status_message.emit("Open a series first, then compare it with another image series")
            return
        if key == current.key:
            self.status_message.emit("That series is already shown: choose another one to compare with")
            return
        self.cancel()
        cached = self.session.volumes.get(key)
        if cached is not None:
            self._show_prior(key, cached)
            return
        job = start_job(lambda token: iter_load(series, cancel=token), "load prior", parent=self)
        status = self.window.job_status
        job.progressed.connect(status.show_progress)
        job.finished.connect(lambda volume, k=key, j=job: j is self._load_job and self._loaded(k, volume))
        job.failed.connect(lambda reason: status.idle(f"Prior not loaded: {reason}"))
        job.cancelled.connect(lambda: status.idle("Cancelled"))
        self._load_job = job
        status.busy(f"Loading {series.description or key} to compare")

    def _on_series_loaded(self, _key: str) -> None:
        """The main series finished loading: register now if that was what registration waited for."""
        running = self._register_job is not None and self._register_job.running
        if self.active and self.auto_register and self.registration is None and not running:
            self.register()

    def _loaded(self, key: str, volume) -> None:
        self._load_job = None
        self.session.volumes.put(key, volume)
        self.window.job_status.idle("Prior loaded")
        self._show_prior(key, volume)

    def _show_prior(self, key: str, volume) -> None:
        if len(self.session.shown) > 1:  # another prior was compared: let go of it
            self.session.shown[1].results_changed.disconnect(self._prior_results_changed)
        state = self.session.show(key, volume, slot=1)
        series, study = self.series_and_study(key)
        panel = self._ensure_panel()
        text = describe_series(series, study)
        panel.caption.setText(f"Prior: {text}")
        panel.caption.setToolTip(text)
        self.current_caption.setText(self._current_text())
        panel.viewer.set_volume(volume, dict(state.info), state.measurements, state=state.display)
        self._draw_results(state)
        state.results_changed.connect(self._prior_results_changed)
        self.prior_key = key
        self._relink()
        self._follow_layout(self.window.viewer.layout_name)
        panel.viewer.fit()
        self.compare_changed.emit(key)
        self.followup_dock.raise_()
        if self.auto_register:
            self.register()

    def _prior_min_score(self, min_score: float) -> None:
        """The prior's boxes follow the findings threshold the reader set (one threshold for both studies)."""
        for layer in self.panel.viewer.layers if self.panel is not None else ():
            if isinstance(layer, DetectionLayer):
                layer.set_min_score(min_score)

    def _prior_results_changed(self, _task: str) -> None:
        if len(self.session.shown) > 1 and self.panel is not None:
            self._draw_results(self.session.shown[1])

    def _draw_results(self, state) -> None:
        """The prior's own model results (boxes, masks; computed when it was the main series) on its views."""
        viewer = self.panel.viewer
        for layer in list(viewer.layers):
            viewer.remove_layer(layer)
        min_score = self.window.findings_panel.min_score
        for kept in state.results.values():
            if kept.task == "detection":
                viewer.add_layer(DetectionLayer(kept.result, kept.model_name, min_score=min_score))
            elif kept.task == "segmentation":
                viewer.add_layer(SegmentationLayer(kept.result, kept.model_name))

    def _current_text(self) -> str:
        current = self.session.current
        return f"Current: {describe_series(*self.series_and_study(current.key))}" if current is not None else ""

    def close(self) -> None:
        """Stop comparing: the prior side goes, the main viewer takes the whole width."""
        self.cancel()
        self._unlink()
        if self.panel is not None:
            if self._free_shows_prior:
                self.window.viewer.free.show_state(None)
                self._free_shows_prior = False
            self.panel.bar.addWidget(self.panel.controls)
            self.panel.viewer.set_volume(None)
            self.panel.hide()
            self.current_bar.hide()
        if self.prior_key is not None and len(self.session.shown) > 1:
            self.session.shown[1].results_changed.disconnect(self._prior_results_changed)
            self.session.hide(1)
        self.prior_key = None
        self.registration = None
        self.compare_changed.emit(None)

    def swap(self) -> None:
        """Show the prior as the main series and the current on the prior side (to run a model on the prior,
        read its findings, edit it); a registration is inverted, not recomputed."""
        current = self.session.current
        if current is None or self.prior_key is None:
            return
        old_current, old_prior = current.key, self.prior_key
        result = self._registrations.get((old_current, old_prior))
        if result is not None:
            self._registrations[(old_prior, old_current)] = result.inverse()
        self.close()
        self._pending_compare = (old_prior, old_current)
        self.window.open_series(old_prior)

    def cancel(self) -> None:
        """Cancel loading the prior and registering."""
        for job in (self._load_job, self._register_job):
            if job is not None and job.running:
                job.cancel()

    # ---- linking ------------------------------------------------------------------------------------------------
    def series_and_study(self, key: str):
        """The catalog Series and Study of ``key`` (Study None when not found)."""
        catalog = self.session.catalog
        for patient in getattr(catalog, "patients", []):
            for study in patient.studies:
                for series in study.series:
                    if series.key == key:
                        return series, study
        return self.session.find_series(key), None

    def _ensure_panel(self) -> PriorPanel:
        if self.panel is None:
            self.panel = PriorPanel(self.window.viewer.presets)
            main = self.window.viewer
            column = main.parentWidget().layout()
            self.splitter = QSplitter(Qt.Orientation.Horizontal)
            self.splitter.setObjectName("compare-splitter")
            column.replaceWidget(main, self.splitter)
            self.current_caption = caption_label("current-caption")
            box, self.current_bar = captioned(main, self.current_caption)
            self.splitter.addWidget(box)
            self.splitter.addWidget(self.panel)
            self.splitter.setChildrenCollapsible(False)
            buttons = self.panel.buttons
            buttons["register"].clicked.connect(lambda: self.register(force=True))
            buttons["reset"].clicked.connect(self.reset_registration)
            buttons["swap"].clicked.connect(self.swap)
            buttons["close"].clicked.connect(self.close)
            for plane in Plane:
                main.views[plane].view_box.sigRangeChanged.connect(lambda *_, p=plane: self._sync_range(p, True))
                self.panel.viewer.views[plane].view_box.sigRangeChanged.connect(
                    lambda *_, p=plane: self._sync_range(p, False))
        self.panel.show()
        self.current_bar.show()
        half = max(1, self.splitter.width() // 2)
        self.splitter.setSizes([half, half])  # half and half
        return self.panel

    def _relink(self) -> None:
        self._unlink()
        current = self.session.current
        prior = self.session.shown[1] if len(self.session.shown) > 1 else None
        if current is None or prior is None or current.display is None or prior.display is None:
            return
        same_kind = (current.volume.modality or "") == (prior.volume.modality or "")
        self.registration = self._registrations.get((current.key, prior.key))
        matrix = self.registration.current_to_prior if self.registration is not None else None
        self.link = LinkedDisplays(current.display, prior.display, matrix, link_window=same_kind)
        self._show_transform()

    def _unlink(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None

    def _on_shown_changed(self) -> None:
        """The main series changed (another one opened): keep comparing the prior with it."""
        current = self.session.current
        pending, self._pending_compare = self._pending_compare, None
        if pending is not None and current is not None and current.key == pending[0] and self.prior_key is None:
            self.compare_with(pending[1])
            return
        if self.prior_key is None:
            return
        if current is None or current.key == self.prior_key:
            self.close()
            return
        if self.link is None or self.link.current is not current.display:
            self._relink()

    def _follow_layout(self, name: str) -> None:
        """The prior shows what the main viewer shows: one plane (1x2 in all) or three (2x3); in 2x2 it takes the
        free view (bottom right) and the current side takes the whole width."""
        if self.panel is None or not self.active or len(self.session.shown) < 2:
            return
        main, prior = self.window.viewer, self.session.shown[1]
        in_free = name == "2x2"
        self.panel.setVisible(not in_free)
        target_bar = self.current_bar.layout() if in_free else self.panel.bar
        target_bar.addWidget(self.panel.controls)  # the controls go where a bar is shown
        if in_free:
            main.free.show_state(prior.display, Plane.AXIAL, linked=False, info=dict(prior.info))
            self.current_caption.setText(f"{self._current_text()}   ·   bottom right: {self.panel.caption.text()}")
        else:
            if main.free.view.own_info is not None:
                main.free.show_state(None)
            self.current_caption.setText(self._current_text())
            self.panel.viewer.set_layout(name, main.primary_plane)
        self._free_shows_prior = in_free

    def _sync_range(self, plane: Plane, from_main: bool) -> None:
        """Zoom and pan follow: the other side shows the same field of view (mm) around the same anatomy."""
        if self._syncing_range or self.link is None or self.panel is None:
            return
        source = (self.window.viewer if from_main else self.panel.viewer).views[plane]
        target = (self.panel.viewer if from_main else self.window.viewer).views[plane]
        if source.geometry_ is None or target.geometry_ is None or not target.isVisible():
            return
        rect = source.view_box.viewRect()
        centre_index = source.geometry_.index_from_scene(source.k or 0, rect.center().x(), rect.center().y())
        centre_lps = source.state.volume.index_to_lps(centre_index)
        mapped = self.link.prior_point(centre_lps) if from_main else self.link.current_point(centre_lps)
        _, sx, sy = target.geometry_.scene_from_index(target.state.volume.lps_to_index(mapped))
        # the same mm per screen pixel on both sides (the views' shapes may differ)
        px, py = source.view_box.viewPixelSize()
        width, height = px * target.view_box.width(), py * target.view_box.height()
        self._syncing_range = True
        try:
            target.view_box.setRange(QRectF(sx - width / 2, sy - height / 2, width, height), padding=0)
        finally:
            self._syncing_range = False

    # ---- registration ---------------------------------------------------------------------------------------
    def register(self, force: bool = False) -> None:
        """Register the prior to the current series on a worker (cached per pair unless ``force``)."""
        current = self.session.current
        if current is None or self.prior_key is None or self.link is None:
            return
        pair = (current.key, self.prior_key)
        if not force and pair in self._registrations:
            self._apply_registration(pair, self._registrations[pair])
            return
        from viewer.core.followup.cache import RegistrationCache, default_cache_dir
        from viewer.core.followup.registration import register

        if self._cache is None:
            self._cache = RegistrationCache(default_cache_dir())  # the same pair opens registered next time
        fixed, moving, cache = current.volume, self.link.prior.volume, None if force else self._cache
        if not (getattr(fixed, "complete", True) and getattr(moving, "complete", True)):
            self.status_message.emit("Registration waits until both series are loaded")
            return
        job = start_job(lambda token: register(moving, fixed, cancel=token, cache=cache), "register", parent=self)
        status = self.window.job_status
        job.progressed.connect(status.show_progress)
        job.finished.connect(lambda result, p=pair, j=job: j is self._register_job and self._registered(p, result))
        job.failed.connect(lambda reason: status.idle(f"Registration failed: {reason} (aligned by table position)"))
        job.cancelled.connect(lambda: status.idle("Registration cancelled: aligned by table position"))
        self._register_job = job
        status.busy("Registering the prior to the current study")

    def _registered(self, pair: tuple[str, str], result) -> None:
        self._register_job = None
        self._registrations[pair] = result
        self.window.job_status.idle("Registered")
        self._apply_registration(pair, result)

    def _apply_registration(self, pair: tuple[str, str], result) -> None:
        current = self.session.current
        if self.link is None or current is None or (current.key, self.prior_key) != pair:
            return  # the pair changed while registering
        self.registration = result
        self.link.set_transform(result.current_to_prior if result is not None else None)
        self._show_transform()
        self.registered.emit(result)

    def reset_registration(self) -> None:
        """Align by table position again (the registration stays cached: Register brings it back at once)."""
        self.cancel()
        current = self.session.current
        if current is not None and self.prior_key is not None:
            self._apply_registration((current.key, self.prior_key), None)

    def _show_transform(self) -> None:
        if self.panel is None:
            return
        label, result = self.panel.transform_label, self.registration
        if result is None:
            label.setText("Table position")
            label.setToolTip("Aligned by table position (not registered): Register aligns the lungs")
            return
        shift = float(np.linalg.norm(result.translation_mm))
        label.setText(f"{shift:.1f} mm, {result.rotation_deg:.1f}°")
        label.setToolTip(f"Registered ({result.kind}, lungs): the prior is shifted {shift:.1f} mm and rotated "
                         f"{result.rotation_deg:.1f}° against the current study; Reset aligns by table position")
