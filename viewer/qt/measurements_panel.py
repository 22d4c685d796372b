"""The list of measurements of the shown series: select to jump to it, Delete to remove, copy as text."""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.core.measure import Measurement

KINDS = {"length": "Length", "ellipse": "Ellipse", "rectangle": "Rectangle", "probe": "Probe"}
ID_ROLE = Qt.ItemDataRole.UserRole + 1


class MeasurementsWidget(QWidget):
    """Shows ``viewer.measurements`` and mirrors the viewer's selection.

    Signals
    -------
    selected(object)
        A measurement id chosen in the list (None when the selection was cleared).
    delete_requested(int)
        Delete pressed on a measurement.
    clear_requested()
        "Delete all".
    """

    selected = Signal(object)
    delete_requested = Signal(int)
    clear_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("measurements")
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["#", "Type", "Result", "Slice"])
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setWordWrap(True)
        self.tree.setUniformRowHeights(False)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.delete_button = QPushButton("Delete", self)
        self.clear_button = QPushButton("Delete all", self)
        self.copy_button = QPushButton("Copy", self)
        self.copy_button.setToolTip("Copy all measurements as tab-separated text")
        buttons = QHBoxLayout()
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.tree)
        layout.addLayout(buttons)
        self._unit = ""
        self._measurements: list[Measurement] = []
        self._updating = False
        self.tree.itemSelectionChanged.connect(self._on_selection)
        self.tree.itemClicked.connect(lambda *_: self.selected.emit(self.current_id()))
        self.delete_button.clicked.connect(self._delete_current)
        self.clear_button.clicked.connect(self.clear_requested)
        self.copy_button.clicked.connect(self.copy_to_clipboard)
        for key in (QKeySequence.StandardKey.Delete, QKeySequence(Qt.Key.Key_Backspace)):
            shortcut = QShortcut(QKeySequence(key), self.tree)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(self._delete_current)
        self._update_buttons()

    def sizeHint(self):  # noqa: N802 - Qt override: a panel, not the main attraction
        return QSize(340, 300)

    def set_measurements(self, measurements: list[Measurement], unit: str = "", selected_id: int | None = None,
                         number_of=None, plane_names: bool = True) -> None:
        """Show these measurements (the viewer's list) and select ``selected_id``; ``number_of(plane, k)`` is the
        image number the views show for slice ``k`` (display order; default ``k + 1``). Without patient geometry
        (``plane_names`` False: an ultrasound, a secondary capture) the slice column says "Im", not a plane."""
        self._measurements = list(measurements)
        self._unit = unit
        self._updating = True
        try:
            self.tree.clear()
            for i, m in enumerate(self._measurements, start=1):
                item = QTreeWidgetItem([str(i), KINDS.get(m.kind, m.kind), m.summary(unit, multiline=True),
                                        f"{m.plane[:3].title() if plane_names else 'Im'} "
                                        f"{number_of(m.plane, m.slice_index) if number_of else m.slice_index + 1}"])
                item.setData(0, ID_ROLE, m.id)
                item.setToolTip(2, m.summary(unit, multiline=True))
                self.tree.addTopLevelItem(item)
                if m.id == selected_id:
                    item.setSelected(True)
                    self.tree.setCurrentItem(item)
        finally:
            self._updating = False
        self._update_buttons()

    def select(self, measurement_id: int | None) -> None:
        """Mirror the viewer's selection without re-emitting it."""
        self._updating = True
        try:
            self.tree.clearSelection()
            for i in range(self.tree.topLevelItemCount()):
                item = self.tree.topLevelItem(i)
                if item.data(0, ID_ROLE) == measurement_id:
                    item.setSelected(True)
                    self.tree.setCurrentItem(item)
                    self.tree.scrollToItem(item)
        finally:
            self._updating = False
        self._update_buttons()

    def current_id(self) -> int | None:
        """The selected measurement id."""
        items = self.tree.selectedItems()
        return items[0].data(0, ID_ROLE) if items else None

    def rows(self) -> list[tuple[str, str, str, str]]:
        """The rows as shown (for tests and copying)."""
        out = []
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            out.append(tuple(item.text(c) for c in range(4)))
        return out

    def copy_to_clipboard(self) -> None:
        """All measurements as tab-separated text, one per line."""
        lines = ["#\tType\tResult\tSlice"] + ["\t".join(c.replace("\n", "  ") for c in r) for r in self.rows()]
        QGuiApplication.clipboard().setText("\n".join(lines))

    def _on_selection(self) -> None:
        self._update_buttons()
        if not self._updating:
            self.selected.emit(self.current_id())

    def _delete_current(self) -> None:
        mid = self.current_id()
        if mid is not None:
            self.delete_requested.emit(mid)

    def _update_buttons(self) -> None:
        has = self.tree.topLevelItemCount() > 0
        self.delete_button.setEnabled(self.current_id() is not None)
        self.clear_button.setEnabled(has)
        self.copy_button.setEnabled(has)
