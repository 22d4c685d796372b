"""File > Export De-identified…: choose a study, a profile, a pseudonym and a folder; the export runs on a worker
(:func:`viewer.services.deid.anonymize_job`) with progress and Cancel, and ends with its report (written, flagged
with the reason, skipped with the reason) in the dialog."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from viewer.core.paths import user_exports_dir

ALL_STUDIES = "__all__"
SERIES_PREFIX = "series:"


def _study_label(study) -> str:
    kinds = ", ".join(sorted({s.modality or s.kind for s in study.series}))
    description = study.description or "(no description)"
    return f"{study.date or 'no date'}  {description}  [{kinds}, {len(study.series)} series]"


class DeidExportDialog(QDialog):
    """The export's options, its progress and its report.

    Signals
    -------
    export_finished(object)
        The :class:`~viewer.services.deid.DeidReport` of a run (also after a cancel).
    """

    export_finished = Signal(object)

    def __init__(self, catalog, current_study_uid: str | None = None, parent: QWidget | None = None,
                 shown_series=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export De-identified")
        self.catalog = catalog
        self.handle = None
        self.report = None
        self.study = QComboBox()
        studies = [st for p in catalog.patients for st in p.studies] if catalog is not None else []
        for st in studies:
            self.study.addItem(_study_label(st), st.uid)
        if len(studies) > 1:
            self.study.addItem(f"All {len(studies)} studies open", ALL_STUDIES)
        if shown_series is not None:
            self.study.addItem(f"Only the shown series: {shown_series.description or shown_series.modality} "
                               "(with the SEG / SR / RTSTRUCT that reference it)", SERIES_PREFIX + shown_series.uid)
        if current_study_uid and self.study.findData(current_study_uid) >= 0:
            self.study.setCurrentIndex(self.study.findData(current_study_uid))
        self.profile = QComboBox()
        self.profile.addItem("Basic (dates removed)", "basic")
        self.profile.addItem("Retain dates (longitudinal studies)", "retain-dates")
        self.clean_descriptors = QCheckBox("Keep study/series descriptions, cleaned of names, IDs and dates")
        self.clean_descriptors.setChecked(True)
        self.pseudonym = QLineEdit()
        self.pseudonym.setPlaceholderText("automatic: ANON^<code> per patient")
        self.folder = QLineEdit(str(user_exports_dir() / "de-identified"))
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        self.include_flagged = QCheckBox("Also export images that may show identity in their pixels (flagged)")
        form = QFormLayout()
        form.addRow("Study", self.study)
        form.addRow("Profile", self.profile)
        form.addRow("", self.clean_descriptors)
        form.addRow("Pseudonym", self.pseudonym)
        form.addRow("Output folder", folder_row)
        form.addRow("", self.include_flagged)
        self.progress = QProgressBar()
        self.status = QLabel("The UID map (it links the copies back to the patient) stays in your user data folder.")
        self.status.setWordWrap(True)
        self.report_text = QPlainTextEdit()
        self.report_text.setReadOnly(True)
        self.report_text.setPlaceholderText("The report appears here: files written, flagged and skipped.")
        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.export_button.clicked.connect(self.start)
        self.close_button.clicked.connect(self._close_or_cancel)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.report_text, 1)
        layout.addWidget(self.buttons)
        self.export_button.setEnabled(bool(studies))
        self.resize(720, 520)

    def sources(self) -> list[str]:
        """The files chosen: a study (every series: images, SEG, SR, RTSTRUCT...), all studies, or one series with
        the objects that reference it."""
        chosen = str(self.study.currentData())
        series = [s for p in self.catalog.patients for st in p.studies for s in st.series
                  if chosen in (ALL_STUDIES, st.uid)]
        if chosen.startswith(SERIES_PREFIX):
            uid = chosen[len(SERIES_PREFIX):]
            series = [s for s in self.catalog.all_series() if s.uid == uid or uid in (s.references or [])]
        return [i.path for s in series for i in s.instances]

    def options(self):
        """The :class:`~viewer.services.deid.DeidOptions` the form describes."""
        from viewer.services.deid import DeidOptions

        return DeidOptions(profile=self.profile.currentData(), clean_descriptors=self.clean_descriptors.isChecked(),
                           pseudonym=self.pseudonym.text().strip(), include_flagged=self.include_flagged.isChecked())

    def start(self):
        """Start the export on a worker; returns its job handle (None when the form is refused)."""
        from viewer.qt.workers import start_job
        from viewer.services.deid import anonymize_job
        from viewer.services.deid.export import output_folder_problem

        sources, out, options = self.sources(), Path(self.folder.text().strip()), self.options()
        problem = "choose an output folder" if not self.folder.text().strip() else \
            output_folder_problem(out, {str(Path(p).parent) for p in sources})
        if problem:
            self.status.setText(f"Cannot export: {problem}.")
            return None
        self.report_text.clear()
        self.export_button.setEnabled(False)
        self.close_button.setText("Cancel")
        self.handle = start_job(lambda token: anonymize_job(sources, out, options, cancel=token), "deid-export",
                                parent=self)
        self.handle.progressed.connect(self._on_progress)
        self.handle.finished.connect(self._on_finished)
        self.handle.failed.connect(lambda reason: self._on_failed(reason))
        self.handle.done.connect(self._on_done)
        return self.handle

    def _on_progress(self, progress) -> None:
        self.progress.setMaximum(max(progress.total, 0))
        self.progress.setValue(progress.done)
        self.status.setText(progress.message)

    def _on_finished(self, report) -> None:
        from viewer.services.deid import iter_report_lines

        self.report = report
        self.status.setText(f"{len(report.written)} written, {len(report.flagged)} flagged, "
                            f"{len(report.skipped)} skipped{' (cancelled)' if report.cancelled else ''}.")
        self.report_text.setPlainText("\n".join(iter_report_lines(report)))
        self.export_finished.emit(report)

    def _on_failed(self, reason: str) -> None:
        self.status.setText(f"Export failed: {reason}")

    def _on_done(self) -> None:
        self.handle = None
        self.export_button.setEnabled(True)
        self.close_button.setText("Close")

    def _close_or_cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()  # the job stops between two files; its report still comes
        else:
            self.reject()

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.folder.text())
        if folder:
            self.folder.setText(folder)


def export_deidentified_dialog(window) -> DeidExportDialog:
    """The File menu's slot: the dialog over the window's open catalog, on the study shown."""
    session = window.session
    current = session.current
    series_uid = current.series.uid if current is not None and current.series is not None else None
    study_uid = next((st.uid for p in (session.catalog.patients if session.catalog else []) for st in p.studies
                      if any(s.uid == series_uid for s in st.series)), None)
    shown = current.series if current is not None else None
    dialog = DeidExportDialog(session.catalog, study_uid, window, shown_series=shown)
    dialog.open()
    return dialog
