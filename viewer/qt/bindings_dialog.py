"""View > Key and Mouse Bindings…: the binding table of :mod:`viewer.core.bindings`, editable.

A preset box (Hounsfield, Slicer-like, PACS-like) fills both tables; the keys table takes Qt's key text (several
keys separated by ``;``), the mouse table a drag per button and modifier. A key bound to two actions is named in red
under the tables and OK stays disabled until it is resolved.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
)

from viewer.core.bindings import (
    KEY_ACTIONS,
    MOUSE_CHORDS,
    PRESETS,
    PRESETS_BY_NAME,
    Bindings,
    BindingsError,
    DragOp,
    normalise_key,
)

KEY_SEPARATOR = ";"
UNBOUND = "(not bound)"


def parse_keys(text: str) -> tuple[str, ...]:
    """``"Down; Right"`` -> ``("Down", "Right")`` (each normalised; a :class:`BindingsError` for a bad one)."""
    return tuple(normalise_key(part) for part in text.split(KEY_SEPARATOR) if part.strip())


class BindingsDialog(QDialog):
    """Edit key and mouse bindings; :meth:`bindings` is the result."""

    def __init__(self, bindings: Bindings, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Key and mouse bindings")
        self._filling = False
        self.preset_box = QComboBox(self)
        for preset in PRESETS:
            self.preset_box.addItem(preset.label, preset.name)
        self.preset_box.setToolTip("\n".join(f"{p.label}: {p.description}" for p in PRESETS))
        self.preset_box.activated.connect(lambda _i: self.use_preset(self.preset_box.currentData()))
        self.description = QLabel(self)
        self.description.setWordWrap(True)
        self.keys_table = QTableWidget(len(KEY_ACTIONS), 3, self)
        self.keys_table.setHorizontalHeaderLabels(["Action", "Section", "Keys (; between several)"])
        self.keys_table.horizontalHeader().setStretchLastSection(True)
        self.keys_table.verticalHeader().setVisible(False)
        for row, action in enumerate(KEY_ACTIONS):
            for column, text in enumerate((action.label, action.section)):
                item = QTableWidgetItem(text)
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.keys_table.setItem(row, column, item)
            self.keys_table.setItem(row, 2, QTableWidgetItem(""))
        self.keys_table.resizeColumnToContents(0)
        self.keys_table.itemChanged.connect(lambda _item: self.check())
        self.mouse_table = QTableWidget(len(MOUSE_CHORDS), 2, self)
        self.mouse_table.setHorizontalHeaderLabels(["Button", "Drag does"])
        self.mouse_table.horizontalHeader().setStretchLastSection(True)
        self.mouse_table.verticalHeader().setVisible(False)
        self.mouse_boxes: dict[str, QComboBox] = {}
        for row, chord in enumerate(MOUSE_CHORDS):
            item = QTableWidgetItem(chord.replace("+", " + ").title() + " drag")
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.mouse_table.setItem(row, 0, item)
            box = QComboBox(self.mouse_table)
            box.addItem(UNBOUND, None)
            for op in DragOp:
                box.addItem(op.label, op.value)
            self.mouse_table.setCellWidget(row, 1, box)
            self.mouse_boxes[chord] = box
        self.mouse_table.resizeColumnToContents(0)
        tabs = QTabWidget(self)
        tabs.addTab(self.mouse_table, "Mouse")
        tabs.addTab(self.keys_table, "Keys")
        self.conflict_label = QLabel(self)
        self.conflict_label.setWordWrap(True)
        self.conflict_label.setStyleSheet("color: #ff6b6b;")
        defaults = QPushButton("Restore Defaults", self)
        defaults.clicked.connect(lambda: self.use_preset("hounsfield"))
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
                                        parent=self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        top = QHBoxLayout()
        top.addWidget(QLabel("Preset:", self))
        top.addWidget(self.preset_box, 1)
        top.addWidget(defaults)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.description)
        layout.addWidget(tabs, 1)
        layout.addWidget(QLabel("Unbound mouse chords do what the plain button does; a tool picked in the toolbar "
                                "(Pan, Length, Brush…) always gets the plain left drag.", self))
        layout.addWidget(self.conflict_label)
        layout.addWidget(self.buttons)
        self.resize(620, 640)
        self.set_bindings(bindings)

    def set_bindings(self, bindings: Bindings) -> None:
        """Show ``bindings`` in the tables."""
        self._filling = True
        index = self.preset_box.findData(bindings.preset)
        self.preset_box.setCurrentIndex(max(0, index))
        preset = PRESETS_BY_NAME.get(bindings.preset)
        self.description.setText(preset.description if preset is not None else "")
        for row, action in enumerate(KEY_ACTIONS):
            self.keys_table.item(row, 2).setText(f"{KEY_SEPARATOR} ".join(bindings.keys_of(action.id)))
        for chord, box in self.mouse_boxes.items():
            op = bindings.mouse.get(chord)
            box.setCurrentIndex(box.findData(op.value if op is not None else None))
        self._filling = False
        self.check()

    def use_preset(self, name: str) -> None:
        """Fill the tables from preset ``name``."""
        self.set_bindings(Bindings.from_preset(name))

    def set_keys(self, action_id: str, text: str) -> None:
        """Type ``text`` into the keys cell of ``action_id`` (as the user would)."""
        row = next(i for i, a in enumerate(KEY_ACTIONS) if a.id == action_id)
        self.keys_table.item(row, 2).setText(text)

    def set_mouse(self, chord: str, op: DragOp | None) -> None:
        """Choose what ``chord`` drags do (None: unbound)."""
        box = self.mouse_boxes[chord]
        box.setCurrentIndex(box.findData(op.value if op is not None else None))

    def bindings(self) -> Bindings:
        """The bindings as edited (a :class:`BindingsError` when a key text is not a key)."""
        result = Bindings.from_preset(str(self.preset_box.currentData()))
        for row, action in enumerate(KEY_ACTIONS):
            result.keys[action.id] = parse_keys(self.keys_table.item(row, 2).text())
        result.mouse = {chord: DragOp(box.currentData()) for chord, box in self.mouse_boxes.items()
                        if box.currentData() is not None}
        return result

    def check(self) -> str:
        """Say what is wrong (a key bound twice, a key that is not one) and allow OK only when nothing is; returns
        the message ("" when fine)."""
        if self._filling:
            return ""
        try:
            message = self.bindings().conflict_message()
            if message:
                message = f"Key conflict: {message}. Give one of them another key."
        except BindingsError as exc:
            message = f"Not a key: {exc}"
        self.conflict_label.setText(message)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not message)
        return message

    def accept(self) -> None:  # noqa: D102 - refuse while there is a conflict
        if not self.check():
            super().accept()
