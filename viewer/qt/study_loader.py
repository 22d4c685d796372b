"""Scanning and loading for the window: the session's core jobs on workers, and their results put into the session.

Opening is always asynchronous: scan (headers) and load (pixels) run as core jobs on worker threads; the first
decoded slice is announced while the rest fill in (the session's ``load_progressed`` and ``volume_loaded`` events),
and a volume already loaded comes from the session's cache.
Only the newest scan and load count: a job replaced by another (or cancelled) is ignored when it reports.
"""
from __future__ import annotations

import time

from PySide6.QtCore import QObject, Signal

from viewer.core.dicom.load import iter_load
from viewer.core.jobs import Progress
from viewer.core.session import FolderSource, Session
from viewer.qt.thumbnails import iter_thumbnails
from viewer.qt.workers import JobHandle, start_job


class StudyLoader(QObject):
    """Runs scan, load and thumbnail jobs into a :class:`~viewer.core.session.Session`.

    Signals
    -------
    started(str)
        A scan or load began (what, for the progress bar).
    progressed(object)
        :class:`~viewer.core.jobs.Progress` of the running scan or load.
    scanned(object)
        The scan finished; the session now holds the catalog.
    failed(str), cancelled()
        The scan or load ended without a result.
    thumbnail(object)
        A thumbnail payload for the series browser.
    """

    started = Signal(str)
    progressed = Signal(object)
    scanned = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    thumbnail = Signal(object)

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._scan_job: JobHandle | None = None
        self._load_job: JobHandle | None = None
        self._thumb_job: JobHandle | None = None
        self._started = 0.0

    @property
    def busy(self) -> bool:
        """True while a scan or load runs."""
        return any(j is not None and j.running for j in (self._scan_job, self._load_job))

    @property
    def loading(self) -> bool:
        """True while a load runs."""
        return self._load_job is not None and self._load_job.running

    def scan(self, paths: list[str]) -> None:
        """Scan ``paths`` on a worker; the session gets the catalog, then :attr:`scanned` is emitted."""
        self.cancel()
        source = FolderSource(list(paths))
        job = start_job(source.scan, "scan", parent=self)
        job.progressed.connect(self.progressed)
        job.finished.connect(lambda catalog, j=job: self._on_scanned(j, catalog, paths))
        job.failed.connect(self.failed)
        job.cancelled.connect(self.cancelled)
        self._scan_job = job
        self.started.emit("Scanning")

    def _on_scanned(self, job: JobHandle, catalog, paths: list[str]) -> None:
        if job is not self._scan_job:
            return
        self._scan_job = None
        self.session.set_catalog(catalog, paths)
        self.scanned.emit(catalog)

    def load(self, series, image_order: str) -> None:
        """Show ``series``: from the cache at once, else loaded progressively on a worker (``image_order``: which
        end opens on screen, and so is decoded first)."""
        if self._load_job is not None and self._load_job.running:
            self._load_job.cancel()
        cached = self.session.volumes.get(series.key)
        if cached is not None:
            self._load_job = None
            self.session.loaded(series.key, cached)
            return
        job = start_job(lambda token: iter_load(series, cancel=token, image_order=image_order), "load", parent=self)
        job.progressed.connect(lambda p, j=job, s=series: self._on_load_progress(j, s, p))
        job.finished.connect(lambda volume, j=job, s=series: self._on_loaded(j, s, volume))
        job.failed.connect(lambda reason, j=job: j is self._load_job and self.failed.emit(reason))
        job.cancelled.connect(lambda j=job: j is self._load_job and self.cancelled.emit())
        self._load_job = job
        self._started = time.perf_counter()
        self.started.emit(f"Loading {series.description or series.key}")

    def _on_load_progress(self, job: JobHandle, series, progress: Progress) -> None:
        if job is not self._load_job:
            return
        self.progressed.emit(progress)
        volume = progress.payload
        if volume is not None and volume.slices_loaded >= 1:
            self.session.loading(series.key, volume)

    def _on_loaded(self, job: JobHandle, series, volume) -> None:
        if job is not self._load_job:
            return
        self._load_job = None
        self.session.loaded(series.key, volume, time.perf_counter() - self._started)
        self._start_thumbnails()

    def _start_thumbnails(self) -> None:
        catalog = self.session.catalog
        if catalog is None or self._thumb_job is not None:
            return
        series = [s for s in catalog.all_series() if s.kind == "image"]
        job = start_job(lambda token: iter_thumbnails(series, token), "thumbnails", parent=self,
                        progress_interval=0.0)
        job.progressed.connect(lambda p: p.payload and self.thumbnail.emit(p.payload))
        job.done.connect(lambda: None)
        self._thumb_job = job

    def cancel(self) -> None:
        """Cancel scanning, loading and thumbnails."""
        for job in (self._scan_job, self._load_job, self._thumb_job):
            if job is not None and job.running:
                job.cancel()
        self._scan_job = None
        self._load_job = None
        self._thumb_job = None
