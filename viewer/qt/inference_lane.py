"""The one inference lane of the window: runs a model on the shown series on a worker and keeps its results as
overlays, per series.

- **One job at a time.** Run is off while a job runs; the job is :func:`inference_job` drained on the worker pool
  (:mod:`viewer.qt.workers`), so the GUI thread only sees queued progress, and Cancel stops it at the engine's
  next check (within about half a second, see :mod:`inference.task`).
- **Stale results are dropped.** Every time a series (or a new copy of one) is shown, :attr:`InferenceLane.generation`
  goes up; a run remembers the generation it started in, and a result that comes back in another one is
  discarded with a message, never drawn on a series it was not computed on.
- **Failures change nothing.** Results are only ever added when a job finished; a failure shows a dialog (the
  reason in the text, the traceback in "Show Details…") and leaves the images, measurements and overlays as they
  were. So does Cancel.
- Results are kept per series in the session (:class:`~viewer.core.session.SeriesState`, one per task: running
  a second segmentation model replaces the first) and come back when the series is shown again, like
  measurements; the lane only keeps the layers that draw them, rebuilt when a result changes.
- **Models only on what they were made for.** Before a run, the series is checked against the model's expected
  input (:mod:`inference.suitability`: modality, spacing, extent, lung-like air for a chest model; a few ms on the
  GUI thread); when it does not fit, :attr:`InferenceLane.confirm_unsuitable` asks first (the window answers with
  :meth:`~viewer.qt.main_window.MainWindow.confirm_unsuitable`), and "no" runs nothing.
"""
from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox

from inference.types import Detections, SaliencyMap
from viewer.core.jobs import Job, Progress
from viewer.core.layers import Finding, findings
from viewer.core.load_report import blocked_reason
from viewer.core.session import Session, result_shape, result_task
from viewer.qt.findings_panel import FindingsWidget
from viewer.qt.inference_panel import InferencePanelWidget, format_elapsed
from viewer.qt.layers import ViewLayer
from viewer.qt.overlays import DetectionLayer, SaliencyLayer, SegmentationLayer
from viewer.qt.workers import JobHandle, start_job

log = logging.getLogger(__name__)

ELAPSED_TICK_MS = 100


def inference_job(info, array, affine, device: str | None, cancel, threads: int | None = None) -> Job:
    """The worker's job: leave the GUI a core, then load and run the model (see :func:`inference.task.run_model`).

    Runs entirely on the worker thread, torch import included. Returns the
    :class:`~inference.task.InferenceResult`.
    """
    yield Progress(0, 0, "Starting the inference engine")
    from inference.device import configure_threads
    from inference.task import run_model

    threads = configure_threads(threads)
    device = None if device in (None, "", "auto") else device
    return (yield from run_model(info, array, affine, device=device, cancel=cancel, threads=threads))


def explain_job(info, array, affine, device: str | None, cancel, *, target_name: str, box_lps=None,
                label: int | None = None, mask=None) -> Job:
    """The worker's job for one finding or label map (see :func:`inference.gradcam.explain`); returns an
    :class:`~inference.task.InferenceResult` holding the :class:`~inference.types.SaliencyMap`."""
    yield Progress(0, 0, "Starting the inference engine")
    from inference.bundle import load_bundle
    from inference.device import configure_threads
    from inference.gradcam import explain
    from inference.task import InferenceResult

    configure_threads()
    start = time.perf_counter()
    bundle = load_bundle(info, device=None if device in (None, "", "auto") else device)
    loaded = time.perf_counter()
    saliency = yield from explain(bundle, array, affine, box_lps=box_lps, label=label, mask=mask,
                                  target_name=target_name, cancel=cancel)
    timings = {"model": loaded - start, "map": time.perf_counter() - loaded}
    return InferenceResult(saliency, timings, str(bundle.device))


def result_summary(layer) -> str:
    """What a drawn result holds, for the status bar (labels and volumes, findings, the heat map's span)."""
    if isinstance(layer, SegmentationLayer):
        names = [f"{layer.label_name(v)} {layer.volumes_ml[v]:.1f} mL" for v in layer.present]
        return ", ".join(names) if names else "nothing segmented"
    if isinstance(layer, DetectionLayer):
        n = len(layer.detections)
        return f"{n} finding{'s' if n != 1 else ''}, {len(layer.shown_indices())} at or above " \
               f"{layer.min_score:.2f}"
    lo, hi = layer.span
    target = layer.saliency.target
    if not target:
        return f"saliency map ({lo:.3g} to {hi:.3g})"
    if hi <= 0:  # an occlusion map is empty when hiding no part of the patch lowers the score
        why = " - no part of the patch lowers the score when hidden" if layer.saliency.method == "occlusion" else ""
        return f"{layer.saliency.method} of {target}: empty{why}"
    return f"{layer.saliency.method} of {target} ({lo:.3g} to {hi:.3g})"


@dataclass
class _Run:
    handle: JobHandle
    generation: int
    series_key: str | None
    info: object
    started: float
    ended: float | None = None


class InferenceLane(QObject):
    """Runs models for the main window and owns their overlays.

    Signals
    -------
    run_started(str)
        A model (id) started on the shown series.
    result_applied(str)
        A result was drawn (its task: ``segmentation``, ``detection``, ``saliency``).
    result_dropped(str)
        A result came back for a series no longer shown and was discarded (the message says so).
    run_failed(str), run_cancelled()
        The run ended without a result.
    run_done()
        After any of the above: the lane is free.
    status_message(str)
        Text for the status bar (timings, the engine's notices such as a CPU fallback).
    """

    run_started = Signal(str)
    result_applied = Signal(str)
    result_dropped = Signal(str)
    run_failed = Signal(str)
    run_cancelled = Signal()
    run_done = Signal()
    status_message = Signal(str)

    def __init__(self, viewer, panel: InferencePanelWidget, findings_panel: FindingsWidget, settings,
                 parent: QObject | None = None, session: Session | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.panel = panel
        self.findings_panel = findings_panel
        self.settings = settings
        self.generation = 0
        self.series_key: str | None = None
        #: Where results are kept (the window's session; a lane on its own makes one).
        self.session = session if session is not None else Session()
        self._layers: dict[str, dict[str, ViewLayer]] = {}  # series key -> task -> the layer drawing its result
        self._findings: list[Finding] = []  # the rows of the shown detection result
        self._state = None  # the SeriesState shown (its results_changed is connected)
        self.run: _Run | None = None
        self.last_elapsed = 0.0
        self.error_dialog: QMessageBox | None = None
        #: ``(reasons, model_name) -> bool``: run a model on a series it was not made for? (the window sets it)
        self.confirm_unsuitable: Callable[[list, str], bool] = self.ask_unsuitable
        #: ``() -> str``: BodyPartExamined of the shown series (the window sets it; "" when unknown)
        self.body_part: Callable[[], str] = lambda: ""
        self._tick = QTimer(self)
        self._tick.setInterval(ELAPSED_TICK_MS)
        self._tick.timeout.connect(self._show_elapsed)
        panel.run_requested.connect(self.start)
        panel.cancel_requested.connect(self.cancel)
        panel.refresh_requested.connect(self.refresh_models)
        panel.folder_requested.connect(self.choose_models_folder)
        panel.clear_requested.connect(self.clear_results)
        panel.model_changed.connect(self._on_model_changed)
        panel.device_changed.connect(self._on_device_changed)
        findings_panel.finding_activated.connect(self.go_to_finding)
        findings_panel.min_score_changed.connect(self._on_min_score)
        panel.set_device(settings.device)
        findings_panel.set_min_score(settings.min_score)
        self.refresh_models()

    # ------------------------------------------------------------------------------------------------------------
    # models
    # ------------------------------------------------------------------------------------------------------------
    def model_dirs(self) -> list[str]:
        """Extra folders searched besides the built-in ones, HOUNSFIELD_MODELS and the user data folder."""
        folder = self.settings.models_folder
        return [folder] if folder else []

    def refresh_models(self) -> list:
        """Re-read the models folders (JSON only: no torch) and refill the picker."""
        from inference.registry import scan_models

        models, problems = scan_models(self.model_dirs())
        current = self.panel.current_model()
        selected = current.id if current is not None else self.settings.model_id
        self.panel.set_models(models, selected, problems)
        self.update_actions()
        return models

    def set_models_folder(self, folder: str) -> None:
        """Use (and remember) ``folder`` as the extra models folder ("" for none), and list its bundles."""
        self.settings.models_folder = str(folder or "")
        models = self.refresh_models()
        self.status_message.emit(f"Models folder: {folder or 'none'} — {len(models)} model"
                                 f"{'s' if len(models) != 1 else ''} available")

    def choose_models_folder(self) -> None:
        """Settings: ask for the extra models folder."""
        start = self.settings.models_folder or self.settings.last_folder
        folder = QFileDialog.getExistingDirectory(self.panel.window(), "Folder of model bundles", start)
        if folder:
            self.set_models_folder(folder)

    def _on_model_changed(self, model_id: str) -> None:
        if model_id:
            self.settings.model_id = model_id
        self.update_actions()

    def _on_device_changed(self, kind: str) -> None:
        self.settings.device = kind

    # ------------------------------------------------------------------------------------------------------------
    # the shown series
    # ------------------------------------------------------------------------------------------------------------
    def series_shown(self, key: str | None, volume) -> None:
        """The window now shows ``volume`` of series ``key`` (None: nothing). Bumps the generation, so a run
        still going for what was shown before is dropped when it returns, and swaps the overlays."""
        self.generation += 1
        if key != self.series_key:
            for layer in self._layers.get(self.series_key, {}).values():
                self.viewer.remove_layer(layer)
            if self._state is not None:
                self._state.results_changed.disconnect(self._on_result_changed)
            self._state = self.session.state(key) if key is not None else None
            if self._state is not None:
                self._state.results_changed.connect(self._on_result_changed)
        self.series_key = key
        if self._state is not None:
            self._state.volume = volume
        self._draw_results()
        self._show_controls()
        self.update_actions()

    def _draw_results(self) -> None:
        """Bring the shown series' layers in line with its results: each result on the shown grid drawn once by
        its layer (kept while the result is the same object), the others' layers dropped."""
        state, volume = self._state, self.volume
        layers = self._layers.setdefault(self.series_key, {}) if state is not None else {}
        results = state.results if state is not None else {}
        shape = tuple(volume.shape) if volume is not None else None
        for task in list(layers):
            entry = results.get(task)
            if entry is None or self._result_of(layers[task]) is not entry.result:
                self.viewer.remove_layer(layers.pop(task))
        for task, entry in results.items():
            if result_shape(entry.result) != shape:
                if task in layers:
                    self.viewer.remove_layer(layers[task])
                continue
            layer = layers.get(task)
            if layer is None:
                layer = layers[task] = self._make_layer(entry.result, entry.model_name)
            if layer not in self.viewer.layers:
                self.viewer.add_layer(layer)
        self._list_findings()

    @property
    def volume(self):
        """The shown series' volume (the session's), None when nothing is shown."""
        return self._state.volume if self._state is not None else None

    def update_actions(self) -> None:
        """Enable Run when it can run: idle, a model chosen, a whole grey series shown."""
        reason = ""
        volume = self.volume
        if self.run is not None:
            reason = "A model is running"
        elif self.panel.current_model() is None:
            reason = "No model: add a bundle folder with AI > Models Folder…"
        elif volume is None:
            reason = "Open a series first"
        elif not volume.complete and self.viewer.loading is not None:
            reason = "Wait until the series has loaded"
        elif blocked_reason(volume):  # stopped part-way, or slices that could not be decoded (left blank)
            reason = f"Not on this series: {blocked_reason(volume)}"
        elif volume.is_rgb:
            reason = "Colour images cannot be run through the models"
        self.panel.set_run_enabled(not reason, reason)

    # ------------------------------------------------------------------------------------------------------------
    # running
    # ------------------------------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a job runs."""
        return self.run is not None

    def start(self) -> JobHandle | None:
        """Run the chosen model on the shown series (None when it cannot start: busy, nothing to run on)."""
        info, volume = self.panel.current_model(), self.volume
        if (self.run is not None or info is None or volume is None or not volume.complete or volume.is_rgb
                or blocked_reason(volume)):
            self.update_actions()
            return None
        reasons = self.unsuitable_reasons(info, volume)
        if reasons and not self.confirm_unsuitable(reasons, info.name):
            self.status_message.emit(f"{info.name} not run: {'; '.join(str(r) for r in reasons)}")
            return None
        device = self.panel.device
        array, affine = volume.array, volume.affine
        return self._launch(info, lambda token: inference_job(info, array, affine, device, token),
                            f"Running {info.name}…")

    def unsuitable_reasons(self, info, volume) -> list:
        """Why the shown ``volume`` is not what model ``info`` was made for (empty: it fits)."""
        from viewer.core.run_model import unsuitable_reasons

        try:
            body_part = self.body_part() or ""
        except Exception:  # noqa: BLE001 - an unknown body part is no reason to stop; the content still decides
            body_part = ""
        return unsuitable_reasons(info, volume, body_part)

    def ask_unsuitable(self, reasons: list, model_name: str = "The model") -> bool:
        """Ask whether to run a model on a series it was not made for (default No)."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Not what the model was made for",
                          f"{model_name} is not made for this series.", parent=self.panel.window())
        box.setInformativeText("\n".join(f"• {r}" for r in reasons)
                               + "\n\nWhat it finds here may be meaningless. Run it anyway?")
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        return box.exec() == QMessageBox.StandardButton.Yes

    def explain_finding(self, index: int) -> JobHandle | None:
        """The map of finding ``index`` by the detector that found it (:func:`inference.gradcam.explain`: occlusion or
        Grad-CAM), shown as the saliency overlay."""
        layer = self.layer("detection")
        rows = {f.index: f for f in self.findings()}
        if layer is None or index not in rows:
            return None
        box = layer.detections.boxes_lps[index]
        return self._explain(layer.detections.model_id, f"finding #{index + 1}", box_lps=box)

    def explain_label(self, value: int) -> JobHandle | None:
        """Grad-CAM of one label of the shown segmentation (over the voxels the model gave that label)."""
        layer = self.layer("segmentation")
        if layer is None:
            return None
        result = layer.result
        return self._explain(result.model_id, layer.label_name(value), label=int(value),
                             mask=result.labels == value)

    def _explain(self, model_id: str, target_name: str, **target) -> JobHandle | None:
        from inference.registry import ModelNotFound, find_model

        volume = self.volume
        if self.run is not None or volume is None:
            return None
        try:
            info = find_model(model_id, self.model_dirs())
        except ModelNotFound:
            self.status_message.emit(f"Explain: the model {model_id} is no longer available")
            return None
        if not info.gradcam_layer and info.task != "detection":  # (RetinaNet detectors have a default layer)
            self.status_message.emit(f"Explain: {info.name} does not name a layer to explain at")
            return None
        array, affine, device = volume.array, volume.affine, self.panel.device
        return self._launch(info, lambda token: explain_job(info, array, affine, device, token,
                                                            target_name=target_name, **target),
                            f"Explaining {target_name} ({info.name})…")

    def _launch(self, info, job_factory, status: str) -> JobHandle:
        handle = start_job(job_factory, "inference", parent=self)
        run = _Run(handle, self.generation, self.series_key, info, time.perf_counter())
        handle.progressed.connect(lambda p, r=run: self._on_progress(r, p))
        handle.finished.connect(lambda outcome, r=run: self._on_finished(r, outcome))
        handle.failed.connect(lambda reason, r=run: self._on_failed(r, reason))
        handle.cancelled.connect(lambda r=run: self._on_cancelled(r))
        handle.done.connect(lambda r=run: self._on_done(r))
        self.run = run
        self.panel.set_running(True)
        self.update_actions()
        self._tick.start()
        self.status_message.emit(status)
        self.run_started.emit(info.id)
        return handle

    def cancel(self) -> None:
        """Ask the running job to stop (it returns within about half a second; nothing is applied)."""
        if self.run is not None and self.run.handle.running:
            self.run.handle.cancel()
            self.panel.set_cancelling()
            self.status_message.emit(f"Cancelling {self.run.info.name}…")

    def shutdown(self) -> None:
        """The window closes: cancel the job."""
        if self.run is not None:
            self.run.handle.cancel()

    def _elapsed(self, run: _Run) -> float:
        return (run.ended if run.ended is not None else time.perf_counter()) - run.started

    @staticmethod
    def _end(run: _Run) -> None:
        if run.ended is None:
            run.ended = time.perf_counter()

    def _show_elapsed(self) -> None:
        if self.run is not None:
            self.panel.set_elapsed(self._elapsed(self.run))

    def _on_progress(self, run: _Run, progress: Progress) -> None:
        if run is self.run and not run.handle.is_cancelled:
            self.panel.set_progress(progress)

    def _on_finished(self, run: _Run, outcome) -> None:
        self._end(run)
        elapsed = self._elapsed(run)
        name = run.info.name
        if run.generation != self.generation:
            message = f"{name}: result dropped — the series it ran on is no longer shown"
            log.info("inference result dropped (generation %d, now %d)", run.generation, self.generation)
            self.panel.set_finished("Dropped: the series changed")
            self.status_message.emit(message)
            self.result_dropped.emit(message)
            return
        try:
            layer = self.apply_result(outcome.result, name)
        except Exception as exc:  # noqa: BLE001 - a result we cannot show: say so, change nothing
            self.panel.set_finished("Failed")
            self.show_error(name, f"{type(exc).__name__}: {exc}", traceback.format_exc())
            self.run_failed.emit(str(exc))
            return
        text = f"{name}: {result_summary(layer)} in {format_elapsed(elapsed)} on {outcome.device}"
        timings = ", ".join(f"{k} {v:.2f} s" for k, v in outcome.timings.items())
        if timings:
            text += f" ({timings})"
        if outcome.messages:
            text += "   ⚠ " + "; ".join(outcome.messages)
        self.panel.set_finished(f"Done in {format_elapsed(elapsed)}")
        self.status_message.emit(text)
        self.result_applied.emit(result_task(outcome.result))

    def _on_failed(self, run: _Run, reason: str) -> None:
        self._end(run)
        self.panel.set_finished("Failed")
        self.status_message.emit(f"{run.info.name} failed: {reason}")
        self.show_error(run.info.name, reason, run.handle.error_details)
        self.run_failed.emit(reason)

    def _on_cancelled(self, run: _Run) -> None:
        self._end(run)
        self.panel.set_finished("Cancelled")
        self.status_message.emit(f"{run.info.name} cancelled after {format_elapsed(self._elapsed(run))}; "
                                 "nothing was changed")
        self.run_cancelled.emit()

    def _on_done(self, run: _Run) -> None:
        if run is not self.run:
            return
        self._end(run)
        self.run = None
        self.last_elapsed = self._elapsed(run)
        self._tick.stop()
        self.panel.set_elapsed(self.last_elapsed)
        self.panel.set_running(False)
        self.update_actions()
        self.run_done.emit()

    def show_error(self, model_name: str, reason: str, details: str = "") -> QMessageBox:
        """A non-blocking dialog: what failed and why; the traceback only under "Show Details…"."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Model failed", f"{model_name} could not run on this series.",
                          QMessageBox.StandardButton.Close, self.panel.window())
        box.setObjectName("inference-error")
        box.setInformativeText(f"{reason}\n\nThe images, measurements and overlays are unchanged.")
        if details:
            box.setDetailedText(details)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda *_: setattr(self, "error_dialog", None))
        box.show()
        self.error_dialog = box
        return box

    # ------------------------------------------------------------------------------------------------------------
    # results
    # ------------------------------------------------------------------------------------------------------------
    @staticmethod
    def _result_of(layer):
        for attr in ("result", "detections", "saliency"):
            if hasattr(layer, attr):
                return getattr(layer, attr)
        raise TypeError(f"not a result layer: {layer!r}")

    def layer(self, task: str) -> ViewLayer | None:
        """The shown series' layer of a task (``segmentation``, ``detection``, ``saliency``)."""
        return self._layers.get(self.series_key, {}).get(task)

    def _make_layer(self, result, model_name: str) -> ViewLayer:
        if isinstance(result, Detections):
            return DetectionLayer(result, model_name, min_score=self.findings_panel.min_score)
        if isinstance(result, SaliencyMap):
            return SaliencyLayer(result, model_name)
        return SegmentationLayer(result, model_name)

    def apply_result(self, result, model_name: str = "Model", created: float | None = None) -> ViewLayer:
        """Keep a model result on the shown series (replacing an earlier result of the same task) and draw it;
        ``created``: when it was computed (default now).

        Raises
        ------
        ValueError
            When no series is shown, or the result is not on the shown volume's grid.
        """
        if self._state is None or self.volume is None:
            raise ValueError("no series is shown")
        if result_shape(result) == tuple(self.volume.shape) and isinstance(result, Detections):
            self._use_operating_point(result.model_id)
        self._state.set_result(result, model_name, created)  # -> _on_result_changed draws it
        return self.layer(result_task(result))

    def _on_result_changed(self, task: str) -> None:
        layer, entry = self.layer(task), self._state.results.get(task)
        if layer is not None and entry is not None and self._result_of(layer) is entry.result:
            layer.redraw()  # the layer's own result was edited (reviewed findings): selection and filter kept
            self._list_findings()
        else:
            self._draw_results()
        self._show_controls()

    def clear_results(self) -> None:
        """Remove every AI result (and overlay) of the shown series."""
        if self._state is not None:
            self._state.clear_results()
        self._show_controls()

    def _image_number(self, k: int) -> int:
        """The image number the views show for array slice ``k`` (display order: head first for axial)."""
        state = self.viewer.state
        return state.display_number(state.native_plane, k) if state is not None else k + 1

    def _list_findings(self) -> None:
        layer = self.layer("detection")
        self._findings = [] if layer is None or self.volume is None else findings(
            layer.detections, self.volume.affine, self.volume.shape, self._image_number)

    def renumber_findings(self) -> None:
        """Count the findings' slices again as the views do (after the image order setting changed)."""
        layer = self.layer("detection")
        if layer is None or self.volume is None:
            return
        self._list_findings()
        self.findings_panel.set_findings(self.findings(), layer.name)
        self.findings_panel.select(layer.selected)

    def replace_detections(self, layer, detections: Detections) -> None:
        """Show edited detections (e.g. the reviewed findings) in ``layer`` and in the findings panel."""
        layer.detections = detections
        self._state.replace_result("detection", detections)

    def _use_operating_point(self, model_id: str) -> None:
        """A detector's findings are first shown from its operating point (its model card names it), so the list
        a reader sees is the one its figures describe; the threshold can be moved from there."""
        info = next((m for m in self.panel.models if m.id == model_id), None)
        point = getattr(info, "operating_point", None)
        if point is not None:
            self.findings_panel.set_min_score(point)
            self.status_message.emit(f"Findings from score {point:.2f}: {info.name}'s operating point "
                                     f"(see its model card); move the threshold to see more or fewer")

    def findings(self) -> list[Finding]:
        """All findings of the shown series' detection result (the threshold not applied)."""
        return list(self._findings)

    def _show_controls(self) -> None:
        detection = self.layer("detection")
        self.panel.show_layers(self.layer("segmentation"), self.layer("saliency"), detection)
        if detection is not None:
            detection.set_min_score(self.findings_panel.min_score)
            self.findings_panel.set_findings(self.findings(), detection.name)
            self.findings_panel.select(detection.selected)
            self.panel.update_detection_summary()
        else:
            self.findings_panel.set_findings([], "")

    def go_to_finding(self, index: int) -> None:
        """Jump to a finding: every plane's slice through its centre, each view centred on it, its box
        highlighted."""
        layer = self.layer("detection")
        rows = {f.index: f for f in self.findings()}
        if layer is None or index not in rows:
            return
        finding = rows[index]
        self.viewer.go_to(finding.centre_index)
        layer.select(index)
        self.findings_panel.select(index)
        self.status_message.emit(f"Finding #{index + 1}: score {finding.score:.3f}, {finding.size_text} mm, "
                                 f"{finding.description}, {finding.lps_text}")

    def _on_min_score(self, min_score: float) -> None:
        self.settings.min_score = min_score
        layer = self.layer("detection")
        if layer is not None:
            layer.set_min_score(min_score)
            self.panel.update_detection_summary()
