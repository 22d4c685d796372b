"""PACS > Send to PACS…: send the shown series' DICOM SEG, its TID 1500 SR (measurements and accepted findings) and,
when asked, its images to a node, with one result per object.

The dialog takes a snapshot on the GUI thread (:class:`~viewer.services.pacs.outbox.SendRequest`: copies of the
segments, measurements and review), then :func:`~viewer.services.pacs.outbox.send_job` writes the SEG and the SR and
sends them on a worker (STOW-RS or C-STORE). Images are off by default: the PACS usually has them already.
"""
from __future__ import annotations

import copy

from PySide6.QtCore import Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QProgressBar,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.qt.pacs_browser import reason_text

FAILED_COLOUR = QColor(255, 120, 100)


class PacsSendDialog(QDialog):
    """Choose a node and what to send; Send runs it on a worker and lists what the PACS said of each object.

    Signals
    -------
    sent(list)
        The :class:`~viewer.services.pacs.outbox.SentObject` of each object, when a send ended.
    """

    sent = Signal(list)

    def __init__(self, window, parent: QWidget | None = None) -> None:
        super().__init__(parent or window)
        self.setWindowTitle("Send to PACS")
        self.window_ = window
        self.handle = None
        self.nodes = list(window.settings.pacs_nodes())
        self.node_box = QComboBox()
        for node in self.nodes:
            self.node_box.addItem(node.describe(), node.name)
        state = window.session.current
        self.state = state
        editor = state.editor if state is not None else None
        n_segments = len(editor.segmentation) if editor is not None else 0
        n_measurements = len(state.measurements) if state is not None else 0
        n_findings = len(editor.review.with_status("accepted")) if editor is not None else 0
        n_images = len(state.source_paths()) if state is not None else 0
        self.seg = QCheckBox(f"Segmentation as DICOM SEG ({n_segments} segment{'s' if n_segments != 1 else ''})")
        self.seg.setEnabled(n_segments > 0)
        self.seg.setChecked(n_segments > 0)
        self.sr = QCheckBox(f"Measurements and findings as DICOM SR ({n_measurements} measurements, "
                            f"{n_findings} accepted findings)")
        self.sr.setEnabled(n_measurements + n_findings > 0)
        self.sr.setChecked(n_measurements + n_findings > 0)
        self.images = QCheckBox(f"The series' images ({n_images} files)")
        self.images.setEnabled(n_images > 0)
        self.images.setChecked(False)  # the PACS most often has them already
        shown = state.info.get("series_description") if state is not None else ""
        self.what = QLabel(f"From the shown series{': ' + shown if shown else ''}" if state is not None
                           else "Nothing is shown: open a series first")
        form = QFormLayout()
        form.addRow("Node", self.node_box)
        form.addRow("", self.what)
        form.addRow("Send", self.seg)
        form.addRow("", self.sr)
        form.addRow("", self.images)
        self.progress = QProgressBar()
        self.progress.hide()
        self.status = QLabel("" if self.nodes else "No PACS node yet: add one with PACS > PACS Nodes…")
        self.status.setWordWrap(True)
        self.results = QTreeWidget()
        self.results.setHeaderLabels(["Object", "Result", "Message"])
        self.results.setRootIsDecorated(False)
        self.buttons = QDialogButtonBox()
        self.send_button = self.buttons.addButton("Send", QDialogButtonBox.ButtonRole.AcceptRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.send_button.clicked.connect(self.start)
        self.close_button.clicked.connect(self._close_or_cancel)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.results, 1)
        layout.addWidget(self.buttons)
        self.send_button.setEnabled(bool(self.nodes) and state is not None)
        self.resize(720, 460)

    def request(self):
        """The :class:`~viewer.services.pacs.outbox.SendRequest` the form asks for; None (reason shown) when there
        is nothing to send or the series has not finished loading."""
        from pydicom.uid import generate_uid

        from viewer.core.export.annotation import AnnotationSnapshot
        from viewer.services.pacs.outbox import SendRequest

        state = self.state
        if state is None or state.volume is None:
            self.status.setText("Nothing to send: open a series first")
            return None
        if not state.volume.complete:
            self.status.setText("Wait until the series has loaded")
            return None
        if not (self.seg.isChecked() or self.sr.isChecked() or self.images.isChecked()):
            self.status.setText("Tick what to send")
            return None
        paths = tuple(state.source_paths())
        snapshot = AnnotationSnapshot.of(state.editor, paths) if state.editor is not None else None
        for measurement in state.measurements:  # the tracking UIDs the SR carries stay with the measurements, so a
            measurement.uid = measurement.uid or generate_uid()  # later save or send updates the same ones
        return SendRequest(
            volume=state.volume, source_paths=paths,
            segmentation=snapshot.segmentation if snapshot is not None and self.seg.isChecked() else None,
            measurements=tuple(copy.deepcopy(m) for m in state.measurements),
            review=snapshot.review if snapshot is not None else None,
            sr=self.sr.isChecked(), images=self.images.isChecked())

    def start(self):
        """Send on a worker; returns the job handle (None when nothing was started)."""
        from viewer.qt.workers import start_job
        from viewer.services.pacs.client import open_client
        from viewer.services.pacs.outbox import send_job

        index = self.node_box.currentIndex()
        if not 0 <= index < len(self.nodes):
            return None
        node = self.nodes[index]
        request = self.request()
        if request is None:
            return None
        self.results.clear()
        self.send_button.setEnabled(False)
        self.close_button.setText("Cancel")
        self.progress.setRange(0, 0)
        self.progress.show()
        self.status.setText(f"Sending to {node.describe()}…")
        self.handle = start_job(lambda token: send_job(open_client(node), request, token), "pacs-send", parent=self)
        self.handle.progressed.connect(self._on_progress)
        self.handle.finished.connect(self._on_finished)
        self.handle.failed.connect(lambda reason: self.status.setText(f"Send failed: {reason_text(reason)}"))
        self.handle.cancelled.connect(lambda: self.status.setText("Send cancelled (what was sent stays sent)"))
        self.handle.done.connect(self._on_done)
        return self.handle

    def _on_progress(self, progress) -> None:
        if progress.total:
            self.progress.setRange(0, progress.total)
            self.progress.setValue(progress.done)
        self.progress.setFormat(progress.message or "Sending")

    def _on_finished(self, sent: list) -> None:
        from viewer.services.pacs.outbox import summary

        for obj in sent:
            item = QTreeWidgetItem([f"{obj.kind}: {obj.name}", "stored" if obj.ok else "FAILED", obj.message])
            if not obj.ok:
                item.setForeground(1, QBrush(FAILED_COLOUR))
            item.setToolTip(2, obj.message)
            self.results.addTopLevelItem(item)
        for column in range(2):
            self.results.resizeColumnToContents(column)
        self.status.setText(summary(sent))
        self.window_.statusBar().showMessage(f"Send to PACS: {summary(sent)}", 10000)
        self.sent.emit(list(sent))

    def _on_done(self) -> None:
        self.handle = None
        self.progress.hide()
        self.send_button.setEnabled(True)
        self.close_button.setText("Close")

    def _close_or_cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
        else:
            self.reject()
