"""Results ``hounsfield batch`` left for the shown series, shown when it loads: the reader opens a study the batch
already ran on and sees its segmentation and findings, labelled by model and time, without running anything.

Two places hold such results: the batch sink folder, and the study itself - a model's SEG and findings SR that
``--out pacs:NODE`` stored in a PACS and a whole-study retrieve brought back (or a local folder holding them,
:mod:`viewer.services.batch.study_results`). Both go through this one controller, newest per task first.

Where to look is the setting ``batch_results_folder`` (AI > Batch Results Folder…; by default the folder
``hounsfield batch`` writes to without ``--out``). Reading runs on the worker pool
(:func:`viewer.services.batch.results.batch_results_job`); a result comes in only while its series is still the
one shown and only for a task the series has no result of yet (a model the user ran here is never replaced).
"""
from __future__ import annotations

import os

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog

from viewer.qt.workers import JobHandle, start_job


class BatchResultsController(QObject):
    """Puts a series' batch results into the inference lane of ``window`` (a
    :class:`~viewer.qt.main_window.MainWindow`) when the series has loaded.

    Signals
    -------
    results_shown(list)
        The labels of the results just shown (``"<model name> (batch <date time>)"``, ``(PACS ...)`` for a SEG /
        SR retrieved with the study, ``(study ...)`` for one found in a local study).
    """

    results_shown = Signal(list)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.job: JobHandle | None = None
        window.series_loaded.connect(self.series_loaded)

    def folder(self) -> str:
        """The batch results folder in use (the setting, else ``hounsfield batch``'s default)."""
        from viewer.services.batch.run import default_sink_folder

        return self.window.settings.batch_results_folder or str(default_sink_folder())

    def choose_folder(self) -> None:
        """AI > Batch Results Folder…: ask where batch results are (and look there for the shown series now)."""
        folder = QFileDialog.getExistingDirectory(self.window, "Folder of batch results", self.folder())
        if folder:
            self.set_folder(folder)

    def set_folder(self, folder: str) -> None:
        """Use (and remember) ``folder``; the shown series' results there are shown."""
        self.window.settings.batch_results_folder = str(folder or "")
        current = self.window.session.current
        if current is not None:
            self.series_loaded(current.key)

    def series_loaded(self, key: str) -> JobHandle | None:
        """Look for the loaded series' stored results (None when there is nothing to look for)."""
        state = self.window.session.current
        volume = state.volume if state is not None else None
        if state is None or state.key != key or volume is None:
            return None
        from viewer.services.batch.results import find_batch_results
        from viewer.services.batch.study_results import result_series

        folder = self.folder()
        stored = find_batch_results(folder, volume.study_uid, key) if os.path.isdir(folder) else []
        catalog = self.window.catalog
        # Only which series reference this one is known here; their headers are read on the worker.
        in_study = result_series(catalog.all_series(), volume.series_uid) if catalog is not None else []
        if not in_study and not any(r.task not in state.results for r in stored):
            return None
        retriever = self.window.pacs.retriever
        pacs_root = retriever.cache_root or _default_pacs_root()
        done = set(state.results)
        self.job = start_job(lambda _token: _stored_results_job(stored, in_study, volume, key, pacs_root, done),
                             "stored results", parent=self)
        self.job.finished.connect(lambda read: self._show(key, volume, read))
        return self.job

    def _show(self, key: str, volume, read: list) -> None:
        lane = self.window.inference
        if lane.series_key != key or lane.volume is not volume:  # the user moved on meanwhile
            return
        state = self.window.session.current
        shown = []
        for stored, result in read:
            if state is None or stored.task in state.results:
                continue
            lane.apply_result(result, stored.label, created=stored.created)
            shown.append(stored.label)
        if shown:
            self.window.statusBar().showMessage("Stored results shown: " + "; ".join(shown), 15000)
            self.results_shown.emit(shown)


def _default_pacs_root():
    from viewer.services.pacs.cache import default_cache_root

    return default_cache_root()


def _stored_results_job(stored: list, in_study: list, volume, key: str, pacs_root, done: set):
    """On the worker: the study's model SEG / SR (headers read here), then per task the newest of those and the
    batch folder's, read onto ``volume`` - tasks in ``done`` (a result already shown) left out."""
    from viewer.services.batch.results import batch_results_job
    from viewer.services.batch.study_results import find_study_results

    newest = {}
    for entry in [*stored, *find_study_results(in_study, volume.series_uid, pacs_root)]:
        if entry.task not in done and (entry.task not in newest or entry.created > newest[entry.task].created):
            newest[entry.task] = entry
    return (yield from batch_results_job(None, volume.study_uid, key, volume, stored=list(newest.values())))
