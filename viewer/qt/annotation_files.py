"""Files of the shown annotation: exports (DICOM SEG, NIfTI, findings JSON, DICOM SR) and DICOM SEGs opened into it.

One part of :class:`~viewer.qt.annotation.AnnotationController`. Exports run on the worker pool from a snapshot
(:class:`~viewer.core.export.annotation.AnnotationSnapshot`), so editing goes on while they write; what is written
and what a finished export means for the annotation is core (:mod:`viewer.core.export.annotation`). A SEG that
references the shown series is offered as an editable layer when the series has loaded. Prompts are methods
(``ask_*``) so tests can answer them.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog, QMessageBox

from viewer.core.editing.io import open_seg_job
from viewer.core.export.annotation import AnnotationSnapshot, export_job, note_exported
from viewer.qt.workers import JobHandle, start_job

log = logging.getLogger(__name__)

#: The save dialog of each export: title, file name, filter.
EXPORT_DIALOGS = {
    "seg": ("Export segmentation as DICOM SEG", "segmentation.seg.dcm", "DICOM SEG (*.dcm)"),
    "nifti": ("Export segmentation as NIfTI labels", "segmentation.nii.gz", "NIfTI (*.nii.gz *.nii)"),
    "findings": ("Export findings as JSON", "findings.json", "JSON (*.json)"),
    "sr": ("Export findings as DICOM SR", "findings.sr.dcm", "DICOM SR (*.dcm)"),
}


class AnnotationFilesController(QObject):
    """Export the shown annotation and open SEGs into it, on workers, for ``annotation`` (an
    :class:`~viewer.qt.annotation.AnnotationController`, whose ``job_*`` signals report the jobs)."""

    def __init__(self, annotation) -> None:
        super().__init__(annotation)
        self.annotation = annotation
        self._offered: set[str] = set()  # series whose SEG was offered (once per series and session)

    def _say(self, text: str) -> None:
        self.annotation.status_message.emit(text)

    def _window(self):
        return self.annotation.panel.window()

    # ---- jobs -----------------------------------------------------------------------------------------------
    def _start(self, factory, name: str, on_finished) -> JobHandle:
        an = self.annotation
        job = start_job(factory, name, parent=self)
        job.progressed.connect(an.job_progress)
        job.finished.connect(on_finished)
        job.failed.connect(lambda reason: an.job_ended.emit(f"{name.capitalize()} failed: {reason}"))
        job.cancelled.connect(lambda: an.job_ended.emit(f"{name.capitalize()} cancelled"))
        running = an._jobs  # the controller's list: its ``busy`` says whether any runs
        job.done.connect(lambda j=job: j in running and running.remove(j))
        running.append(job)
        an.job_started.emit(name.capitalize())
        return job

    def source_paths(self) -> list[str]:
        """Files of the shown series (the SEG and SR reference them)."""
        state = self.annotation.state
        return state.source_paths() if state is not None else []

    # ---- exports --------------------------------------------------------------------------------------------
    def export(self, kind: str, path: str | os.PathLike, nifti_mode: str | None = None) -> JobHandle | None:
        """Export the shown annotation on a worker: ``seg`` (DICOM SEG), ``nifti`` (label map), ``findings``
        (reviewed findings JSON) or ``sr`` (DICOM SR of the accepted findings).

        NIfTI of overlapping segments asks how (:meth:`ask_nifti_mode`) unless ``nifti_mode`` is given: one file
        per segment, or one label map where the later segment wins. None when nothing was started."""
        an = self.annotation
        editor, volume = an.editor, an.volume
        if editor is None or volume is None:
            self._say("Nothing to export: open a series")
            return None
        if kind in ("seg", "sr") and not volume.complete:
            self._say("Wait until the series has loaded")
            return None
        snapshot = AnnotationSnapshot.of(editor, self.source_paths())
        if kind == "nifti" and nifti_mode is None:
            from viewer.core.export.nifti_segments import LAST_WINS, segment_overlaps

            overlaps = segment_overlaps(snapshot.segmentation)
            nifti_mode = self.ask_nifti_mode(overlaps) if overlaps else LAST_WINS
            if nifti_mode is None:
                self._say("NIfTI export cancelled")
                return None
        path = str(path)

        def finished(written, e=editor):
            note_exported(e, kind, snapshot)
            an.job_ended.emit(f"Exported {written}")
            an._refresh()

        return self._start(lambda token: export_job(kind, path, snapshot, nifti_mode), f"export {kind}", finished)

    def ask_nifti_mode(self, overlaps) -> str | None:
        """Segments overlap and a NIfTI label map holds one value per voxel: ask how to export (tests replace
        this). Returns ``"per_segment"``, ``"last_wins"`` or None (cancel)."""
        from viewer.core.export.nifti_segments import LAST_WINS, PER_SEGMENT

        box = QMessageBox(QMessageBox.Icon.Question, "Segments overlap",
                          "Some segments share voxels, and a NIfTI label map holds one label per voxel.",
                          QMessageBox.StandardButton.Cancel, self._window())
        lines = [f"• {o.describe()}" for o in overlaps[:12]]
        if len(overlaps) > 12:
            lines.append(f"… and {len(overlaps) - 12} more pairs")
        box.setInformativeText(
            "Overlapping segments:\n" + "\n".join(lines) + "\n\n"
            "One file per segment keeps every voxel (a 0/1 NIfTI per segment, named after it).\n"
            "One label map gives each shared voxel to the later segment in the list: the earlier one loses "
            "those voxels in the file (your annotation is not changed).\n"
            "DICOM SEG keeps overlaps in one file.")
        per_segment = box.addButton("One File per Segment", QMessageBox.ButtonRole.AcceptRole)
        last_wins = box.addButton("One Label Map (Last Wins)", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(per_segment)
        box.exec()
        clicked = box.clickedButton()
        return PER_SEGMENT if clicked is per_segment else LAST_WINS if clicked is last_wins else None

    def ask_save_path(self, title: str, name: str, filter_: str, folder: str = "") -> str:
        """A save dialog (tests replace this); "" when cancelled."""
        path, _ = QFileDialog.getSaveFileName(self._window(), title, os.path.join(folder, name), filter_)
        return path

    def export_folder(self, folder: str = "") -> str:
        """Where an export dialog opens: ``folder``, else the last export folder, unless it lies in a folder the
        study was read from; then the user's exports folder (created when missing)."""
        from viewer.core.paths import export_start_folder

        settings = self.annotation.settings
        remembered = folder or (settings.exports_folder if settings is not None else "")
        sources = list(self.annotation.study_paths) + sorted({os.path.dirname(p) for p in self.source_paths()})
        start = export_start_folder(remembered, sources)
        try:
            start.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only home: the dialog still opens, wherever the platform puts it
            log.warning("cannot create the exports folder %s: %s", start, exc)
        return str(start)

    def export_dialog(self, kind: str, folder: str = "") -> JobHandle | None:
        """Ask where to export (starting in :meth:`export_folder`, never a source folder) and export there."""
        title, name, filter_ = EXPORT_DIALOGS[kind]
        path = self.ask_save_path(title, name, filter_, self.export_folder(folder))
        if not path:
            return None
        settings = self.annotation.settings
        if settings is not None:
            settings.exports_folder = os.path.dirname(os.path.abspath(path))
        return self.export(kind, path)

    # ---- DICOM SEGs opened into the annotation --------------------------------------------------------------
    def open_seg_file(self, path: str | os.PathLike) -> JobHandle | None:
        """Read a DICOM SEG on a worker and add its segments to the shown annotation (one undo step)."""
        an = self.annotation
        editor, volume = an.editor, an.volume
        if editor is None or volume is None or not volume.complete:
            self._say("Open and load the series the SEG belongs to first")
            return None
        path = str(path)

        def finished(loaded, e=editor):
            if e is not an.editor:
                an.job_ended.emit("The series changed: the SEG was not added")
                return
            n = e.merge(loaded, Path(path).name)
            an.job_ended.emit(f"Opened {n} segment{'s' if n != 1 else ''} from {Path(path).name}")

        return self._start(lambda token: open_seg_job(path, volume), "open SEG", finished)

    def open_seg_dialog(self, folder: str = "") -> JobHandle | None:
        """Ask for a DICOM SEG file and open it into the shown annotation."""
        path, _ = QFileDialog.getOpenFileName(self._window(), "Open DICOM SEG", folder,
                                              "DICOM SEG (*.dcm *.DCM *);;All files (*)")
        return self.open_seg_file(path) if path else None

    def ask_open_seg(self, seg_series) -> bool:
        """Offer a SEG that references the shown series (tests replace this)."""
        answer = QMessageBox.question(
            self._window(), "Segmentation found",
            f"This study holds a segmentation of the shown series ({seg_series.description or seg_series.uid}).\n\n"
            "Open it as an editable annotation?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes)
        return answer == QMessageBox.StandardButton.Yes

    def offer_segs(self, catalog) -> JobHandle | None:
        """After the shown series loaded: if the catalog holds a SEG that references it (and is not a model's result,
        shown as such), offer to open it."""
        series = self.annotation.series
        if catalog is None or series is None or self.annotation.editor is None:
            return None
        from viewer.services.batch.study_results import is_model_seg

        # A model's unedited SEG is shown as its result (viewer.qt.batch_results), not offered for editing.
        segs = [s for s in catalog.all_series() if s.kind == "seg" and series.uid in (s.references or [])
                and s.instances and not is_model_seg(s.instances[0].path)]
        if not segs or series.key in self._offered:
            return None
        self._offered.add(series.key)
        if not self.ask_open_seg(segs[0]):
            return None
        return self.open_seg_file(segs[0].instances[0].path)
