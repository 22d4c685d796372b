"""Measurements that last: "Save Measurements…" (a DICOM SR, TID 1500), "Load Measurements…", an autosave after
every change, and on opening a series its measurements back - from the autosave and from the SRs of the study.

The files themselves are core (:mod:`viewer.core.export.sr_measurements`,
:mod:`viewer.core.editing.measurement_autosave`); this only binds them to the window: the viewer's
``measurements_changed`` (debounced) writes the autosave of the shown series, ``series_loaded`` restores.
Measurements are matched by their SR tracking UID, so one saved, reopened and saved again stays one.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog

from viewer.qt.workers import JobHandle

log = logging.getLogger(__name__)

AUTOSAVE_DELAY_MS = 500
SR_FILTER = "DICOM SR (*.dcm);;All files (*)"


class MeasurementFilesController(QObject):
    """Save, load, autosave and restore the measurements of the window's series.

    Signals
    -------
    restored(int)
        Measurements were added to the shown series from an autosave, an SR of the study or an opened file.
    status_message(str)
        What happened, for the status bar.
    """

    restored = Signal(int)
    status_message = Signal(str)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.viewer = window.viewer
        self.session = window.session
        #: Series keys whose autosave and SRs were already looked at (only these are autosaved: writing before the
        #: restore would overwrite the autosave with an empty list).
        self._checked: set[str] = set()
        #: Series key -> the SR last saved for it (the next save proposes the same file: it is updated).
        self.saved_paths: dict[str, str] = {}
        #: What the last restore or load could not place, for tests and the status bar.
        self.problems: list[str] = []
        self._waiting: dict = {}  # reading job -> (the series state read for, what to do with the result)
        self._pending = None  # the SeriesState whose change waits for the debounce timer
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(AUTOSAVE_DELAY_MS)
        self.timer.timeout.connect(self.autosave_now)
        self.viewer.measurements_changed.connect(self._on_changed)
        window.series_loaded.connect(self.series_loaded)
        # after the window's own handler (which says an SR is not an image series), so this message stays
        window.browser.series_activated.connect(
            lambda key: QTimer.singleShot(0, lambda: self._on_series_activated(key)))
        self.status_message.connect(lambda text: window.statusBar().showMessage(text, 10000))
        window.installEventFilter(self)

    # ---- autosave ---------------------------------------------------------------------------------------------
    @property
    def root(self):
        """The autosave root (the session's; None: the user data dir)."""
        return self.session.autosave_root

    def _shown(self):
        state = self.session.current
        if state is None or state.volume is None or not state.volume.series_uid:
            return None
        return state

    def _on_changed(self) -> None:
        state = self._shown()
        if state is None or state.key not in self._checked:
            return
        if self._pending is not None and self._pending is not state:
            self.autosave_now()  # another series' change is still waiting: write it before it is forgotten
        self._pending = state
        self.timer.start()

    def autosave_now(self) -> bool:
        """Write the measurements of the series changed last (else the shown one) now (the debounce timer calls
        this); True when written."""
        from viewer.core.editing.measurement_autosave import save_measurements

        self.timer.stop()
        state, self._pending = self._pending or self._shown(), None
        if state is None or state.volume is None or state.key not in self._checked:
            return False
        try:
            save_measurements(state.volume.series_uid, state.measurements, state.volume.shape, self.root,
                              self.session.paths)
        except OSError as exc:
            log.warning("measurements autosave failed: %s", exc)
            self.status_message.emit(f"Autosave of the measurements failed: {exc}")
            return False
        return True

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if obj is self.window and event.type() == QEvent.Type.Close and self.timer.isActive():
            self.autosave_now()  # a change within the debounce delay is not lost by closing
        return False

    # ---- restore on open --------------------------------------------------------------------------------------
    def series_loaded(self, key: str) -> int:
        """A series finished loading: once per series and session, add its autosaved measurements and those of
        the SRs in the study that reference it (read on a worker: they arrive later, with ``restored``). Returns
        how many the autosave added."""
        from viewer.core.editing.measurement_autosave import load_measurements

        state = self._shown()
        if state is None or state.key != key or key in self._checked:
            return 0
        self._checked.add(key)
        volume = state.volume
        autosave = load_measurements(volume, self.root)
        self.problems = list(autosave.problems) if autosave is not None else []
        added, sources = 0, []
        if autosave is not None and autosave.measurements:
            added += self._merge(autosave.measurements)
            sources.append("autosave")
        newer = []
        for path in self._study_srs(volume):
            try:
                if autosave is None or os.path.getmtime(path) > autosave.saved_at:
                    newer.append(path)  # else the autosave already holds what it had (and what the user deleted)
            except OSError:
                continue

        def restore(read) -> None:
            total, names = added, list(sources)
            for path, placed in read:
                n = self._add_placed(path, placed)
                if n:
                    total += n
                    names.append(os.path.basename(path))
            if total:
                self._show_added(total, " and ".join(names))
            if autosave is None or total:
                self._pending = state
                self.timer.start()  # from now on the autosave holds them

        if newer:
            self._read_srs(newer, restore)
        else:
            restore([])
        return added

    def _study_srs(self, volume) -> list[str]:
        """Files of the catalog's SR series that reference this series."""
        catalog = self.session.catalog
        if catalog is None:
            return []
        out = []
        for series in catalog.all_series():
            if series.kind == "sr" and (not series.references or volume.series_uid in series.references):
                out += [inst.path for inst in series.instances]
        return out

    def _read_srs(self, paths: list[str], then) -> JobHandle:
        """Read the SRs ``paths`` onto the shown volume on a worker (a 34 MB SR of 3,000 measurement groups took
        59 s, on the GUI thread until now), then ``then([(path, Placed)])`` here - if that series is still shown."""
        from viewer.core.export.sr_measurements import load_measurements_job
        from viewer.qt.workers import start_job

        state = self._shown()
        volume = state.volume
        job = start_job(lambda token: load_measurements_job(paths, volume), "Measurements", parent=self)
        # Bound methods, not lambdas: this controller is then the receiver, and Qt drops a result that arrives
        # after the window was deleted (as the tag browser learnt: a lambda ran on into a torn-down window).
        job.finished.connect(self._on_read)
        job.failed.connect(self._on_read_failed)
        self._waiting[job] = (state, then)
        return job

    def _on_read(self, read) -> None:
        state, then = self._waiting.pop(self.sender(), (None, None))
        if then is not None and self._shown() is state:  # the series read for is still the one shown
            then(read)

    def _on_read_failed(self, reason: str) -> None:
        self._waiting.pop(self.sender(), None)
        self.status_message.emit(f"Measurements not read: {reason}")

    def _add_placed(self, path: str, placed) -> int:
        if placed.measurements:
            self.saved_paths.setdefault(self.session.current.key, str(path))
        self.problems += [f"{os.path.basename(path)}: {p}" for p in placed.problems]
        return self._merge(placed.measurements)

    def _merge(self, measurements) -> int:
        """Add the measurements whose tracking UID the series does not have yet; returns how many."""
        have = {m.uid for m in self.viewer.measurements if m.uid}
        new = [m for m in measurements if not m.uid or m.uid not in have]
        self.viewer.measurements.extend(new)
        return len(new)

    def _show_added(self, n: int, source: str) -> None:
        for view in self.viewer.views.values():
            view.sync_measurements()
        self.viewer.measurements_changed.emit()
        text = f"Restored {n} measurement{'s' if n != 1 else ''} ({source})"
        if self.problems:
            text += f"; {len(self.problems)} not drawn: {self.problems[0]}"
        self.status_message.emit(text)
        self.restored.emit(n)

    # ---- explicit save / load ---------------------------------------------------------------------------------
    def default_path(self) -> str:
        """Where Save proposes to write: the SR saved (or found) for this series before, else
        ``measurements.sr.dcm`` in the study's folder."""
        state = self._shown()
        if state is not None and state.key in self.saved_paths:
            return self.saved_paths[state.key]
        paths = self.session.paths
        folder = Path(paths[0]) if paths else Path(self.window.settings.last_folder or ".")
        folder = folder if folder.is_dir() else folder.parent
        return str(folder / "measurements.sr.dcm")

    def ask_save_path(self) -> str:
        """Ask where to save (tests replace this)."""
        path, _ = QFileDialog.getSaveFileName(self.window, "Save measurements as DICOM SR", self.default_path(),
                                              SR_FILTER)
        return path

    def ask_open_path(self) -> str:
        """Ask which SR to load (tests replace this)."""
        path, _ = QFileDialog.getOpenFileName(self.window, "Load measurements (DICOM SR)",
                                              str(Path(self.default_path()).parent), SR_FILTER)
        return path

    def save_dialog(self) -> str | None:
        """File > Save Measurements…"""
        path = self.ask_save_path()
        return self.save(path) if path else None

    def save(self, path: str | os.PathLike) -> str | None:
        """Write the shown series' measurements and accepted findings as a TID 1500 SR; returns the path written
        (None, with a status message, when there is nothing to save or it failed)."""
        from viewer.core.export.seg import read_sources
        from viewer.core.export.sr_measurements import write_measurements_report

        state = self._shown()
        if state is None:
            self.status_message.emit("Nothing to save: no series is shown")
            return None
        review = state.review if state.review is not None and state.review.with_status("accepted") else None
        followup = self._followup_of(state)
        try:
            sources = read_sources(state.source_paths())
            written = write_measurements_report(path, state.measurements, state.volume, sources, review,
                                                followup=followup[0], followup_days=followup[1])
        except Exception as exc:  # noqa: BLE001 - say why, keep the window
            self.status_message.emit(f"Measurements not saved: {exc}")
            return None
        self.saved_paths[state.key] = str(written)
        self.autosave_now()  # the tracking UIDs made by the save go into the autosave too
        n = len(state.measurements)
        self.status_message.emit(f"Saved {n} measurement{'s' if n != 1 else ''} to {written}")
        return str(written)

    def _followup_of(self, state) -> tuple[list | None, int | None]:
        """The follow-up records (and days) of a comparison whose current series is ``state``, else (None, None)."""
        compare = getattr(self.window, "compare", None)
        document = compare.followup.document if compare is not None and compare.active else None
        if document is None or self.window.session.current is not state:
            return None, None
        return compare.followup.nodules, document.get("days")

    def load_dialog(self) -> JobHandle | None:
        """File > Load Measurements…"""
        path = self.ask_open_path()
        return self.load(path) if path else None

    def load(self, path: str | os.PathLike) -> JobHandle | None:
        """Add the measurements of an SR file to the shown series (those it already has are kept as they are),
        read on a worker; returns the reading job (None without a shown series)."""
        if self._shown() is None:
            self.status_message.emit("Open the series the measurements were made on first")
            return None

        def add(read) -> None:
            self.problems = []
            added = sum(self._add_placed(p, placed) for p, placed in read)
            if added:
                self._show_added(added, os.path.basename(path))
            else:
                self.status_message.emit(f"No new measurements of this series in {os.path.basename(path)}"
                                         + (f" ({self.problems[0]})" if self.problems else ""))

        return self._read_srs([str(path)], add)

    def _on_series_activated(self, key: str) -> None:
        """An SR series chosen in the series browser: its measurements go onto the shown series."""
        series = self.session.find_series(key)
        if series is None or series.kind != "sr" or self._shown() is None:
            return
        for inst in series.instances:
            self.load(inst.path)

    def clear(self) -> None:
        """"Delete all" in the measurements panel."""
        for m in list(self.viewer.measurements):
            self.viewer.remove_measurement(m.id)
