"""Results ``hounsfield batch`` left for the shown series, shown when it loads: the reader opens a study the batch
already ran on and sees its segmentation and findings, labelled by model and time, without running anything.

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
        The labels of the results just shown (``"<model name> (batch <date time>)"``).
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
        """Look for the loaded series' batch results (None when there is nothing to look for)."""
        state = self.window.session.current
        volume = state.volume if state is not None else None
        if state is None or state.key != key or volume is None or not os.path.isdir(self.folder()):
            return None
        from viewer.services.batch.results import batch_results_job, find_batch_results

        wanted = [r for r in find_batch_results(self.folder(), volume.study_uid, key) if r.task not in state.results]
        if not wanted:
            return None
        folder = self.folder()
        self.job = start_job(lambda _token: batch_results_job(folder, volume.study_uid, key, volume),
                             "batch results", parent=self)
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
            self.window.statusBar().showMessage("Batch results shown: " + "; ".join(shown), 15000)
            self.results_shown.emit(shown)
