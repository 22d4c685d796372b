"""View > Hanging Protocols…: the rule table of :mod:`viewer.core.hanging` as JSON, checked before it is kept."""
from __future__ import annotations

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
)

from viewer.core.hanging import HangingProtocolError, HangingProtocols

SCHEMA_HELP = (
    "Rules are tried in order; the first that fits a series decides how it is first shown. Fields: "
    "<b>name</b>; conditions <b>modality</b> (list, e.g. [\"CT\"]), <b>keywords</b> (any of them in body part, "
    "series or study description), <b>plane</b> (axial | coronal | sagittal, the acquisition plane); what it "
    "does: <b>layout</b> (1x1 | 1x3 | 2x2), <b>window</b> (a preset name, \"default\" or \"auto\"), <b>slab</b> "
    "(\"off\" or {\"projection\": \"mip\", \"mm\": 10}), <b>start</b> (first | middle). A missing condition "
    "matches anything; null leaves that choice as it is."
)


class HangingProtocolsDialog(QDialog):
    """Edit the hanging-protocol JSON; OK only accepts a table that passes the checks (the error is shown)."""

    def __init__(self, protocols: HangingProtocols, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Hanging protocols")
        help_label = QLabel(SCHEMA_HELP, self)
        help_label.setWordWrap(True)
        self.editor = QPlainTextEdit(self)
        self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.editor.setPlainText(protocols.to_json())
        self.error_label = QLabel(self)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #ff6b6b;")
        defaults = QPushButton("Restore Defaults", self)
        defaults.clicked.connect(lambda: self.editor.setPlainText(HangingProtocols().to_json()))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
                                   parent=self)
        buttons.addButton(defaults, QDialogButtonBox.ButtonRole.ResetRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(help_label)
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)
        self.resize(640, 620)

    def text(self) -> str:
        """The JSON as typed."""
        return self.editor.toPlainText()

    def check(self) -> str:
        """The reason the table cannot be used ("" when it can); shown under the editor."""
        try:
            HangingProtocols.from_json(self.text())
            message = ""
        except HangingProtocolError as exc:
            message = str(exc)
        self.error_label.setText(message)
        return message

    def accept(self) -> None:  # noqa: D102 - refuse a table that fails the checks
        if not self.check():
            super().accept()
