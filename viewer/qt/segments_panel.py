"""The Segments panel: the shown series' segments (colour, name, shown, locked, where each came from), the brush
radius, the threshold range with its presets, interpolate / remove islands and the provenance display.

It only shows and asks: :class:`~viewer.qt.annotation_segments.SegmentsController` binds it to the annotation.
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.core.editing.segmentation import Segmentation

NUMBER_ROLE = Qt.ItemDataRole.UserRole + 1
SOURCE_TEXT = {"MANUAL": "manual", "AUTOMATIC": "model", "SEMIAUTOMATIC": "model, edited"}
#: HU ranges of the threshold brush and fill: (label, low, high)
THRESHOLD_PRESETS = (("Nodule -600..200", -600.0, 200.0), ("Lung -1000..-400", -1000.0, -400.0),
                     ("Soft tissue -100..300", -100.0, 300.0), ("Bone 200..3000", 200.0, 3000.0))
DEFAULT_ISLAND_MM3 = 10.0


def colour_icon(rgb, size: int = 14) -> QIcon:
    """A filled square of ``rgb`` (0-255)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(*rgb))
    return QIcon(pixmap)


class SegmentsWidget(QWidget):
    """The segments of the shown series: colour, name (double-click to rename), shown, locked, where it came from;
    the current row is the active segment (what the brush paints).

    Signals
    -------
    add_requested(), delete_requested(int), colour_requested(int)
        The buttons (the segment number).
    renamed(int, str), visibility_changed(int, bool), lock_changed(int, bool), active_changed(object)
        Edits in the list (active: a number or None).
    radius_changed(float)
        The brush radius box (mm).
    accept_model_requested()
        "Accept model result into the annotation".
    threshold_changed()
        The threshold check box or its HU range changed (:meth:`hu_range`).
    interpolate_requested(), remove_islands_requested(float)
        "Interpolate" / "Remove islands" (the minimum volume in mm³).
    provenance_toggled(bool)
        "Show who set the voxels".
    """

    add_requested = Signal()
    delete_requested = Signal(int)
    colour_requested = Signal(int)
    renamed = Signal(int, str)
    visibility_changed = Signal(int, bool)
    lock_changed = Signal(int, bool)
    active_changed = Signal(object)
    radius_changed = Signal(float)
    accept_model_requested = Signal()
    threshold_changed = Signal()
    interpolate_requested = Signal()
    remove_islands_requested = Signal(float)
    provenance_toggled = Signal(bool)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("segments")
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["Show", "Name", "Lock", "Source"])
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                  | QAbstractItemView.EditTrigger.EditKeyPressed)
        header = self.tree.header()
        header.setStretchLastSection(False)
        for column in (0, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.tree.itemChanged.connect(self._on_item_changed)
        self.tree.currentItemChanged.connect(self._on_current_changed)
        self.add_button = QPushButton("Add", self)
        self.add_button.setToolTip("New manual segment (made active)")
        self.delete_button = QPushButton("Delete", self)
        self.colour_button = QPushButton("Colour…", self)
        self.add_button.clicked.connect(self.add_requested)
        self.delete_button.clicked.connect(lambda: self._emit_for_current(self.delete_requested))
        self.colour_button.clicked.connect(lambda: self._emit_for_current(self.colour_requested))
        self.radius = QDoubleSpinBox(self)
        self.radius.setObjectName("brush-radius")
        self.radius.setRange(0.5, 50.0)
        self.radius.setDecimals(1)
        self.radius.setSingleStep(0.5)
        self.radius.setSuffix(" mm")
        self.radius.setToolTip("Brush radius ([ and ] with the Brush or Eraser tool)")
        self.radius.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.radius.valueChanged.connect(self.radius_changed)
        self.accept_model_button = QPushButton("Accept model result into annotation", self)
        self.accept_model_button.setToolTip("Add the AI segmentation of this series as model (AUTOMATIC) segments")
        self.accept_model_button.clicked.connect(self.accept_model_requested)
        self._build_tools()
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        buttons = QHBoxLayout()
        for button in (self.add_button, self.delete_button, self.colour_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        brush = QHBoxLayout()
        brush.addWidget(QLabel("Brush radius", self))
        brush.addWidget(self.radius)
        brush.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.tree)
        layout.addLayout(buttons)
        layout.addLayout(brush)
        layout.addLayout(self.threshold_row)
        layout.addLayout(self.tools_row)
        layout.addWidget(self.provenance)
        layout.addWidget(self.accept_model_button)
        layout.addWidget(self.summary)
        self.set_segmentation(None)

    def _build_tools(self) -> None:
        """Threshold (HU range with presets), interpolate, remove islands, provenance display."""
        self.threshold = QCheckBox("Threshold", self)
        self.threshold.setObjectName("threshold")
        self.threshold.setToolTip("T: the brush and the fills touch only voxels inside this HU range")
        self.hu_min, self.hu_max = QDoubleSpinBox(self), QDoubleSpinBox(self)
        for box, name, value in ((self.hu_min, "hu-min", THRESHOLD_PRESETS[0][1]),
                                 (self.hu_max, "hu-max", THRESHOLD_PRESETS[0][2])):
            box.setObjectName(name)
            box.setRange(-4000.0, 40000.0)
            box.setDecimals(0)
            box.setSingleStep(10.0)
            box.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
            box.setValue(value)
            box.valueChanged.connect(self._on_range_edited)
        self.hu_min.setToolTip("Lowest value painted (HU for CT)")
        self.hu_max.setToolTip("Highest value painted (HU for CT)")
        self.threshold_preset = QComboBox(self)
        self.threshold_preset.setObjectName("threshold-preset")
        self.threshold_preset.addItem("Custom")
        for label, *_ in THRESHOLD_PRESETS:
            self.threshold_preset.addItem(label)
        self.threshold_preset.setCurrentIndex(1)
        self.threshold_preset.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.threshold_preset.activated.connect(self._on_preset_chosen)
        self.threshold.toggled.connect(lambda _on: self.threshold_changed.emit())
        self.threshold_row = QHBoxLayout()
        self.threshold_row.addWidget(self.threshold)
        self.threshold_row.addWidget(self.hu_min)
        self.threshold_row.addWidget(QLabel("..", self))
        self.threshold_row.addWidget(self.hu_max)
        self.threshold_row.addWidget(self.threshold_preset, 1)
        self.interpolate_button = QPushButton("Interpolate", self)
        self.interpolate_button.setObjectName("interpolate")
        self.interpolate_button.setToolTip("Fill the slices between edited slices of the active segment, along "
                                           "the active view's slice direction")
        self.interpolate_button.clicked.connect(self.interpolate_requested)
        self.island_volume = QDoubleSpinBox(self)
        self.island_volume.setObjectName("island-volume")
        self.island_volume.setRange(0.1, 100000.0)
        self.island_volume.setDecimals(1)
        self.island_volume.setValue(DEFAULT_ISLAND_MM3)
        self.island_volume.setSuffix(" mm³")
        self.island_volume.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.island_volume.setToolTip("Pieces of the active segment smaller than this are removed")
        self.islands_button = QPushButton("Remove islands <", self)
        self.islands_button.setObjectName("remove-islands")
        self.islands_button.clicked.connect(lambda: self.remove_islands_requested.emit(self.island_volume.value()))
        self.tools_row = QHBoxLayout()
        self.tools_row.addWidget(self.interpolate_button)
        self.tools_row.addWidget(self.islands_button)
        self.tools_row.addWidget(self.island_volume)
        self.tools_row.addStretch(1)
        self.provenance = QCheckBox("Show who set the voxels (person: hatched)", self)
        self.provenance.setObjectName("provenance")
        self.provenance.setToolTip("Voxels from a model drawn plain, voxels a person painted hatched and brighter")
        self.provenance.toggled.connect(self.provenance_toggled)

    def hu_range(self) -> tuple[float, float] | None:
        """The threshold's ``(low, high)`` when Threshold is on, else None."""
        if not self.threshold.isChecked():
            return None
        low, high = self.hu_min.value(), self.hu_max.value()
        return (min(low, high), max(low, high))

    def set_hu_range(self, low: float, high: float) -> None:
        """Set the range (the preset box shows the matching preset, or Custom)."""
        for box, value in ((self.hu_min, low), (self.hu_max, high)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        self._on_range_edited()

    def _on_preset_chosen(self, index: int) -> None:
        if index > 0:
            _, low, high = THRESHOLD_PRESETS[index - 1]
            self.set_hu_range(low, high)

    def _on_range_edited(self, *_args) -> None:
        current = (self.hu_min.value(), self.hu_max.value())
        index = next((i + 1 for i, (_, lo, hi) in enumerate(THRESHOLD_PRESETS) if (lo, hi) == current), 0)
        self.threshold_preset.setCurrentIndex(index)
        self.threshold_changed.emit()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(320, 260)

    def set_segmentation(self, segmentation: Segmentation | None) -> None:
        """Show these segments (None: no series)."""
        self.tree.blockSignals(True)
        try:
            self.tree.clear()
            current = None
            for segment in (segmentation or []):
                item = QTreeWidgetItem(["", segment.name, "", SOURCE_TEXT.get(segment.algorithm_type, "")])
                item.setData(0, NUMBER_ROLE, segment.number)
                item.setIcon(0, colour_icon(segment.color))
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(0, Qt.CheckState.Checked if segment.visible else Qt.CheckState.Unchecked)
                item.setCheckState(2, Qt.CheckState.Checked if segment.locked else Qt.CheckState.Unchecked)
                if segment.algorithm_name:
                    item.setToolTip(3, f"{segment.algorithm_name} {segment.algorithm_version}".strip())
                self.tree.addTopLevelItem(item)
                if segmentation.active == segment.number:
                    current = item
            if current is not None:
                self.tree.setCurrentItem(current)
        finally:
            self.tree.blockSignals(False)
        n = len(segmentation) if segmentation is not None else 0
        self.delete_button.setEnabled(n > 0)
        self.colour_button.setEnabled(n > 0)
        self.interpolate_button.setEnabled(n > 0)
        self.islands_button.setEnabled(n > 0)
        self.add_button.setEnabled(segmentation is not None)
        if segmentation is None:
            self.summary.setText("Open a series to annotate it.")
        elif not n:
            self.summary.setText("No segments: Add one, or paint with the Brush (D) to start one.")
        else:
            self.summary.setText(f"{n} segment{'s' if n != 1 else ''}; the selected one is painted.")

    def set_model_available(self, available: bool) -> None:
        """Enable "Accept model result" when the shown series has an AI segmentation."""
        self.accept_model_button.setEnabled(bool(available))

    def numbers(self) -> list[int]:
        """Segment numbers in list order."""
        return [self.tree.topLevelItem(i).data(0, NUMBER_ROLE) for i in range(self.tree.topLevelItemCount())]

    def item_for(self, number: int) -> QTreeWidgetItem | None:
        """The row of segment ``number``."""
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, NUMBER_ROLE) == number:
                return item
        return None

    def _emit_for_current(self, signal) -> None:
        item = self.tree.currentItem()
        if item is not None:
            signal.emit(int(item.data(0, NUMBER_ROLE)))

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        number = int(item.data(0, NUMBER_ROLE))
        if column == 0:
            self.visibility_changed.emit(number, item.checkState(0) == Qt.CheckState.Checked)
        elif column == 1:
            self.renamed.emit(number, item.text(1).strip())
        elif column == 2:
            self.lock_changed.emit(number, item.checkState(2) == Qt.CheckState.Checked)

    def _on_current_changed(self, item, _previous) -> None:
        self.active_changed.emit(None if item is None else int(item.data(0, NUMBER_ROLE)))
