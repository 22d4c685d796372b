"""The strip over the views that says what went wrong with an open (or what to read with care), with the details
one click away: every warning with its code, every skipped file with its reason."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontMetrics, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from viewer.core.load_report import ERROR, WARNING, LoadReport

COLOURS = {ERROR: ("#5a1d1d", "#ffb4a8"), WARNING: ("#4a3b12", "#ffd27a"), "info": ("#1d3346", "#b8dcff")}
SYMBOLS = {ERROR: "✖", WARNING: "⚠", "info": "ℹ"}


class LoadDetailsDialog(QDialog):
    """The details of a :class:`~viewer.core.load_report.LoadReport`: warnings, skipped files and reasons."""

    def __init__(self, report: LoadReport, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("load-details")
        self.setWindowTitle("What happened while opening")
        self.report = report
        layout = QVBoxLayout(self)
        headline = QLabel(report.headline, self)
        headline.setWordWrap(True)
        headline.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(headline)
        if report.models_blocked:
            layout.addWidget(QLabel(f"AI models are off: {report.models_blocked}.", self))
        self.warnings_view = QPlainTextEdit(self)
        self.warnings_view.setReadOnly(True)
        self.warnings_view.setPlainText("\n".join(f"[{w.code}] {w.message}" for w in report.warnings)
                                        or "No warnings.")
        self.warnings_view.setMaximumHeight(140)
        layout.addWidget(QLabel("Warnings", self))
        layout.addWidget(self.warnings_view)
        self.skipped_table = QTableWidget(len(report.skipped), 2, self)
        self.skipped_table.setHorizontalHeaderLabels(["File", "Why it was skipped"])
        self.skipped_table.horizontalHeader().setStretchLastSection(True)
        self.skipped_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, (path, reason) in enumerate(report.skipped):
            for col, text in enumerate((path, reason)):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.skipped_table.setItem(row, col, item)
        self.skipped_table.resizeColumnToContents(0)
        layout.addWidget(QLabel(f"Skipped files ({len(report.skipped)})", self))
        layout.addWidget(self.skipped_table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, parent=self)
        copy = QPushButton("Copy", self)
        copy.setToolTip("Copy these details as text")
        copy.setAutoDefault(False)  # Enter closes; copying is a deliberate click
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(report.details_text()))
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)
        self.resize(720, 420)


class StatusBannerWidget(QFrame):
    """One line over the views: a failed or partial load, "no DICOM found", loader warnings, skipped files.

    Hidden while there is nothing to say. The text is elided to the width (the whole of it is the tooltip);
    Details… opens :class:`LoadDetailsDialog`; × hides the banner until the next open.

    Signals
    -------
    details_shown(object)
        The details dialog was opened (the dialog).
    """

    details_shown = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("status-banner")
        self.report: LoadReport | None = None
        self.dialog: LoadDetailsDialog | None = None
        self.label = QLabel(self)
        self.label.setObjectName("status-banner-text")
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.details_button = QToolButton(self)
        self.details_button.setText("Details…")
        self.details_button.setToolTip("Every warning and every skipped file, with the reason")
        self.details_button.clicked.connect(self.show_details)
        self.close_button = QToolButton(self)
        self.close_button.setText("×")
        self.close_button.setToolTip("Hide this message (it comes back with the next problem)")
        self.close_button.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 2, 4, 2)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.details_button)
        layout.addWidget(self.close_button)
        self.hide()

    @property
    def level(self) -> str:
        """The shown report's level ("" when hidden)."""
        return self.report.level if self.report is not None and self.isVisibleTo(self.parentWidget()) else ""

    @property
    def text(self) -> str:
        """The whole headline (the label may show it elided)."""
        return self.report.headline if self.report is not None else ""

    def show_report(self, report: LoadReport | None) -> None:
        """Show ``report`` (None hides the banner)."""
        self.report = report
        if report is None:
            self.hide()
            return
        background, colour = COLOURS.get(report.level, COLOURS["info"])
        self.setStyleSheet(f"QFrame#status-banner {{ background: {background}; }}"
                           f"QLabel#status-banner-text {{ color: {colour}; }}")
        self.label.setToolTip(report.details_text())
        self._elide()
        self.show()

    def show_details(self) -> LoadDetailsDialog | None:
        """Open the details of the shown report (non-modal; returns the dialog)."""
        if self.report is None:
            return None
        if self.dialog is not None:
            self.dialog.close()
        self.dialog = LoadDetailsDialog(self.report, self.window())
        self.dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialog.destroyed.connect(self._forget_dialog)
        self.dialog.show()
        self.details_shown.emit(self.dialog)
        return self.dialog

    def _forget_dialog(self, *_args) -> None:
        self.dialog = None

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt override: a click anywhere shows the details
        if event.button() == Qt.MouseButton.LeftButton:
            self.show_details()
        super().mouseReleaseEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        if self.report is None:
            return
        text = f"{SYMBOLS.get(self.report.level, '')} {self.report.headline}"
        width = max(40, self.label.width())
        self.label.setText(QFontMetrics(self.label.font()).elidedText(text, Qt.TextElideMode.ElideRight, width))
