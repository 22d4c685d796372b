"""Retrieving from a PACS into the local cache, with the first image on screen while the rest arrive, then the
series opened like a local folder.

The job is :func:`~viewer.services.pacs.preview.retrieve_with_preview` on a worker: the node's client streams the
instances into the cache's staging folder and, as soon as the first image lands, the worker reads it into a one-slice
volume that is shown at once (the views say how many instances have arrived). Until the retrieve is complete the
window shows nothing else of the old study: the session hides its series, as when a scan finds no image, so no
panel edits a series that is no longer on screen. When the retrieve finishes, its series folders (now in the cache,
complete) are opened through the window's normal path (scan, progressive load, series browser), so a retrieved
series is in every way a local one; it is pinned in the cache while open. A cancel or a failure leaves nothing in the
cache (the client's staging folder is dropped when the job is closed) and takes the preview off the screen.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from viewer.qt.pacs_browser import reason_text
from viewer.services.pacs.cache import RetrieveCache, default_cache_root
from viewer.services.pacs.model import RetrieveResult
from viewer.services.pacs.nodes import PacsNode
from viewer.services.pacs.preview import RetrievePreview


class PacsRetriever(QObject):
    """Runs one retrieve at a time for ``window`` (a :class:`~viewer.qt.main_window.MainWindow`).

    Signals
    -------
    started(object)
        The retrieve's :class:`~viewer.qt.workers.JobHandle` (the PACS dock shows its progress and Cancel).
    preview_shown(object)
        The :class:`~viewer.services.pacs.preview.RetrievePreview` just put on screen.
    retrieved(object)
        The :class:`~viewer.services.pacs.model.RetrieveResult`; its series are being opened.
    ended(str)
        What became of the retrieve, in words (also after a failure or a cancel).
    """

    started = Signal(object)
    preview_shown = Signal(object)
    retrieved = Signal(object)
    ended = Signal(str)

    def __init__(self, window, cache_root: Path | None = None) -> None:
        super().__init__(window)
        self.window = window
        #: The cache's folder (None: the user cache's ``pacs`` folder).
        self.cache_root = cache_root
        self._cache: RetrieveCache | None = None
        self.job = None
        self._preview_volume = None
        self._retrieved: RetrieveResult | None = None  # the series asked for, complete while the AI results come
        self._pinned: set[str] = set()
        #: Seconds from the request to the first image on screen, to the retrieve's end, to the series loaded.
        self.timings: dict[str, float] = {}
        self._started = 0.0
        window.series_loaded.connect(self._on_series_loaded)

    @property
    def busy(self) -> bool:
        """True while a retrieve runs."""
        return self.job is not None

    def cache(self) -> RetrieveCache:
        """The retrieve cache, capped by the settings' ``pacs_cache_gb`` (read at each retrieve)."""
        root = self.cache_root or default_cache_root()
        if self._cache is None or self._cache.root != Path(root):
            self._cache = RetrieveCache(Path(root))
        self._cache.max_bytes = int(self.window.settings.pacs_cache_gb * 1024**3)
        return self._cache

    def retrieve(self, node: PacsNode, study_uid: str, series_uid: str | None = None):
        """Retrieve a study (``series_uid`` None) or one series from ``node`` and open it; returns the job handle, or
        None when another retrieve runs or the user kept the unsaved work on screen."""
        from viewer.qt.workers import start_job
        from viewer.services.pacs.client import open_client
        from viewer.services.pacs.preview import retrieve_with_preview

        if self.job is not None:
            self.ended.emit("A retrieve is running: cancel it first")
            return None
        if not self.window.confirm_unsaved("Retrieve from PACS"):
            return None
        cache = self.cache()

        def factory(token):  # on the worker: opening the client imports pynetdicom, the clean-up lists folders
            cache.clear_stale_staging()
            return retrieve_with_preview(open_client(node), study_uid, series_uid, cache, token)

        what = "series" if series_uid else "study"
        self._started = time.perf_counter()
        self.timings = {}
        self._preview_volume = None
        self._retrieved = None
        job = start_job(factory, "pacs-retrieve", parent=self)
        job.progressed.connect(lambda progress, j=job: self._on_progress(j, progress))
        job.finished.connect(lambda result, j=job: self._on_finished(j, result))
        job.failed.connect(lambda reason, j=job: self._on_stopped(j, f"Retrieve failed: {reason_text(reason)}",
                                                                  f"failed: {reason_text(reason)}"))
        job.cancelled.connect(lambda j=job: self._on_stopped(j, "Retrieve cancelled: nothing was kept", "cancelled"))
        self.job = job
        self.window.statusBar().showMessage(f"Retrieving a {what} from {node.name}…")
        self.started.emit(job)
        return job

    def cancel(self) -> None:
        """Stop the retrieve at its next step (nothing of it stays in the cache)."""
        if self.job is not None:
            self.job.cancel()

    # ---- while it runs ------------------------------------------------------------------------------------------
    def _on_progress(self, job, progress) -> None:
        if job is not self.job:
            return
        if isinstance(progress.payload, RetrievePreview):
            self._show_preview(progress.payload)
        elif isinstance(progress.payload, RetrieveResult):  # all of it is in the cache; the study's AI results next
            self._retrieved = progress.payload
        viewer = self.window.viewer
        if self._preview_volume is not None and viewer.volume is self._preview_volume:
            viewer.volume_updated(progress.done, progress.total)  # the views say "Loading 12/133" meanwhile

    def _show_preview(self, preview: RetrievePreview) -> None:
        """Put the first image on screen, the old study's series hidden (see the module doc)."""
        window = self.window
        window.loader.cancel()  # a local load still running would replace it
        window.session.hide()
        window.inference.series_shown(None, None)
        window.annotation.series_shown(None, None)
        window.rtstruct.clear()
        window.browser.set_current(None)
        window.viewer.set_volume(preview.volume, dict(preview.info))
        self._preview_volume = preview.volume
        self.timings["first_image"] = time.perf_counter() - self._started
        self.preview_shown.emit(preview)

    # ---- when it ends -------------------------------------------------------------------------------------------
    def _on_finished(self, job, result) -> None:
        if job is not self.job:
            return
        self.job = None
        self.timings["complete"] = time.perf_counter() - self._started
        window = self.window
        cache = self.cache()
        for uid in self._pinned - set(result.series_dirs):
            cache.pin(uid, False)
        self._pinned = set(result.series_dirs)
        for uid in self._pinned:
            cache.pin(uid)  # not evicted by the next retrieve while it is open
        if window.viewer.volume is self._preview_volume:
            window.viewer.loading = None
        text = f"Retrieved {result.n_instances} instances ({result.n_bytes / 1e6:.1f} MB) in {result.seconds:.1f} s"
        if result.warnings:
            text += "; " + "; ".join(result.warnings)
        self.ended.emit(text)
        window.statusBar().showMessage(text, 10000)
        self.retrieved.emit(result)
        # the unsaved work was asked about when the retrieve started
        window.open_paths([str(path) for path in result.series_dirs.values()], remember=False, confirm=False)

    def _on_stopped(self, job, text: str, why: str) -> None:
        if job is not self.job:
            return
        if self._retrieved is not None:  # only the search for the study's AI results stopped: open what came
            result, self._retrieved = self._retrieved, None
            self._on_finished(job, replace(result, warnings=(*result.warnings,
                                                             f"looking for the study's AI results {why}")))
            return
        self.job = None
        viewer = self.window.viewer
        if self._preview_volume is not None and viewer.volume is self._preview_volume:
            viewer.set_volume(None)  # its file is gone from the cache: nothing half-retrieved stays on screen
            viewer.empty_text = text
        self._preview_volume = None
        self.window.statusBar().showMessage(text, 10000)
        self.ended.emit(text)

    def _on_series_loaded(self, _key: str) -> None:
        if "complete" in self.timings and "opened" not in self.timings:
            self.timings["opened"] = time.perf_counter() - self._started
