"""The main window's dialogs: keyboard help, window presets, and the questions asked about unsaved or autosaved
annotations (module functions, so the window's ``ask_*`` methods, which tests replace, stay one line)."""
from __future__ import annotations

import datetime

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
)

from viewer.core.windowing import CT_PRESETS, Preset
from viewer.qt.tools import shortcuts_html


class ShortcutsDialog(QDialog):
    """Help > Keyboard and mouse: the conventions table."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard and mouse")
        browser = QTextBrowser(self)
        browser.setHtml(shortcuts_html())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, parent=self)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(browser)
        layout.addWidget(buttons)
        self.resize(640, 720)


class PresetsDialog(QDialog):
    """Edit the window presets: name, width, level; the order is the order of the number keys."""

    def __init__(self, presets, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Window presets")
        self.table = QTableWidget(0, 3, self)
        self.table.setHorizontalHeaderLabels(["Name", "Width", "Level"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(True)
        self._set_rows(presets)
        add = QPushButton("Add", self)
        remove = QPushButton("Remove", self)
        defaults = QPushButton("Restore Defaults", self)
        add.clicked.connect(lambda: self._append(Preset("custom", "Custom", 40, 400)))
        remove.clicked.connect(lambda: self.table.removeRow(self.table.currentRow()))
        defaults.clicked.connect(lambda: self._set_rows(CT_PRESETS))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
                                   parent=self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        for button in (add, remove, defaults):
            row.addWidget(button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Number keys 1-9 apply the presets in this order.", self))
        layout.addWidget(self.table)
        layout.addLayout(row)
        layout.addWidget(buttons)
        self.resize(420, 360)

    def _append(self, preset: Preset) -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        for c, value in enumerate((preset.label, f"{preset.width:g}", f"{preset.center:g}")):
            self.table.setItem(r, c, QTableWidgetItem(value))

    def _set_rows(self, presets) -> None:
        self.table.setRowCount(0)
        for preset in presets:
            self._append(preset)

    def presets(self) -> tuple[Preset, ...]:
        """The valid rows as presets (rows with a bad number or width are skipped)."""
        out, used = [], set()
        for r in range(self.table.rowCount()):
            try:
                label = self.table.item(r, 0).text().strip()
                width, level = float(self.table.item(r, 1).text()), float(self.table.item(r, 2).text())
            except (AttributeError, ValueError):
                continue
            if not label or width <= 0:
                continue
            name = "".join(ch if ch.isalnum() else "-" for ch in label.lower()).strip("-") or f"preset-{r + 1}"
            while name in used:
                name += "-2"
            used.add(name)
            out.append(Preset(name, label, level, width))
        return tuple(out)


def ask_startup_restore(parent, info) -> bool:
    """At start-up: reopen the study of an autosave and restore it? True for yes."""
    when = datetime.datetime.fromtimestamp(info.saved_at).strftime("%Y-%m-%d %H:%M")
    answer = QMessageBox.question(
        parent, "Restore annotation",
        f"Unsaved annotation from {when} ({info.n_segments} segments) — reopen its study and restore?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes)
    return answer == QMessageBox.StandardButton.Yes


def ask_unsaved(parent, action: str) -> str:
    """Annotations were not exported and ``action`` would leave them: ``"keep"`` (go on; the autosave is offered
    again next time), ``"discard"`` or ``"cancel"``."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved annotation",
                      "The annotation has changes that were not exported.", parent=parent)
    box.setInformativeText(f"{action}: keep them for later (the autosave is offered at the next start and when "
                           "the series is opened again), discard them, or cancel and export first "
                           "(File > Export Annotation).")
    keep = box.addButton("Keep for Later", QMessageBox.ButtonRole.AcceptRole)
    discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(keep)
    box.exec()
    clicked = box.clickedButton()
    return "keep" if clicked is keep else "discard" if clicked is discard else "cancel"


def about_html(app_name: str, version: str, disclaimer: str) -> str:
    """The Help > About text."""
    return (f"<h3>{app_name} {version}</h3>"
            f"<p><b>{disclaimer}</b> This software is not a medical device and must not be used "
            "for diagnosis or treatment decisions.</p>"
            "<p>A desktop DICOM viewer with AI assistance. Built with Qt for Python (PySide6, LGPL), "
            "pyqtgraph (MIT), pydicom (MIT), NumPy and SimpleITK.</p>")
