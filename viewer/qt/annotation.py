"""Editing the annotation of the shown series: its overlay, the Segments panel, and the controller that binds the
views, the panels and the menus to one :class:`~viewer.core.editing.editor.AnnotationEditor` per series.

- **Drawing.** :class:`AnnotationLayer` draws the editor's overlapping segments in every view and plane. Each view
  keeps its current slice composed as RGBA in array order; a dab (or an undo) re-composes only the box it changed,
  on the views whose slice it cuts, and a slice change composes one slice from the segments' sparse boxes.
- **One history.** Every stroke, fill, segment change, accepted model result and finding decision is a named step of
  the editor's :class:`~viewer.core.editing.history.EditHistory`; the Edit menu's Undo/Redo actions live here and
  are renamed from its listeners ("Undo Brush stroke (nodule)").
- **Files.** Exports (DICOM SEG, NIfTI labels, findings JSON, DICOM SR) run on the worker pool from a frozen copy of
  the annotation, so editing can go on while they write; a SEG that references the shown series is offered as an
  editable layer when the series has loaded.
- **Never lose work.** Each editor autosaves (:class:`~viewer.core.editing.autosave.Autosave`) from a timer; when a
  series with an autosave newer than its last export is shown, :meth:`AnnotationController.ask_restore` offers it.
  Prompts are methods (``ask_*``) so tests can answer them.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QColorDialog, QComboBox, QDoubleSpinBox, QFileDialog, QHBoxLayout, QHeaderView,
    QInputDialog, QLabel, QMessageBox, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget,
)

from viewer.core.editing.segmentation import Segmentation, SegmentLockedError, box_intersection
from viewer.core.interaction import PointerDrag, PointerEvent
from viewer.core.jobs import Progress
from viewer.core.layers import FILL_OPACITY
from viewer.core.reformat import PlaneGeometry
from viewer.qt.layers import ViewLayer
from viewer.qt.workers import JobHandle, start_job

log = logging.getLogger(__name__)

ANNOTATION_Z = 12.0  # above the model's segmentation (10)
AUTOSAVE_TICK_MS = 2000
NUMBER_ROLE = Qt.ItemDataRole.UserRole + 1
SOURCE_TEXT = {"MANUAL": "manual", "AUTOMATIC": "model", "SEMIAUTOMATIC": "model, edited"}
#: HU ranges of the threshold brush and fill: (label, low, high)
THRESHOLD_PRESETS = (("Nodule -600..200", -600.0, 200.0), ("Lung -1000..-400", -1000.0, -400.0),
                     ("Soft tissue -100..300", -100.0, 300.0), ("Bone 200..3000", 200.0, 3000.0))
DEFAULT_ISLAND_MM3 = 10.0
REVIEWED_FINDINGS = "Reviewed findings"  # the detection overlay of findings added without a detector
PERSON_ALPHA = 235  # provenance display: the hatch stripes of person-set voxels


# ------------------------------------------------------------------------------------------------------------------
# the overlay
# ------------------------------------------------------------------------------------------------------------------
def _in_plane_axes(axis: int) -> tuple[int, int]:
    return tuple(a for a in range(3) if a != axis)  # type: ignore[return-value]


class AnnotationLayer(ViewLayer):
    """The segments of a :class:`~viewer.core.editing.segmentation.Segmentation`, filled in their colours (later
    segments drawn over earlier ones where they overlap), in every view and plane.

    Listens to the segmentation: a change with a box re-composes that box of the slices it cuts; a change without
    one (a segment added, removed, recoloured, shown or hidden) recomposes the slices on screen.
    """

    def __init__(self, segmentation: Segmentation, name: str = "Annotation", z: float = ANNOTATION_Z) -> None:
        super().__init__(name, z)
        self.segmentation = segmentation
        self.alpha = int(round(FILL_OPACITY * 255))
        self.show_provenance = False
        self._slices: dict[object, dict] = {}  # view -> {"key": (axis, k), "rgba": (n_b, n_c, 4) uint8 array order}
        segmentation.changed.connect(self.on_changed)

    def close(self) -> None:
        """Stop listening to the segmentation (the layer is dropped)."""
        self.segmentation.changed.disconnect(self.on_changed)

    def create_items(self, view) -> list:
        return [pg.ImageItem(axisOrder="row-major")]

    def detach(self, view) -> None:
        self._slices.pop(view, None)
        super().detach(view)

    # ---- composing ------------------------------------------------------------------------------------------
    def compose(self, axis: int, k: int, rect: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """RGBA ``(n_b, n_c, 4)`` of slice ``k`` along array ``axis`` over ``rect = (b0, c0, b1, c1)`` (in-plane
        array axes in order; the whole slice by default)."""
        b, c = _in_plane_axes(axis)
        shape = self.segmentation.shape
        b0, c0, b1, c1 = rect if rect is not None else (0, 0, shape[b], shape[c])
        lo, hi = [0, 0, 0], [0, 0, 0]
        lo[axis], hi[axis] = k, k + 1
        lo[b], hi[b], lo[c], hi[c] = b0, b1, c0, c1
        box = (*lo, *hi)
        out = np.zeros((b1 - b0, c1 - c0, 4), dtype=np.uint8)
        for segment in self.segmentation:
            stored = segment.mask.box
            if not segment.visible or stored is None or box_intersection(stored, box) is None:
                continue
            if not self.show_provenance:
                mask = segment.mask.region(box).reshape(out.shape[:2])
                out[mask] = (*segment.color, self.alpha)
                continue
            # provenance: model voxels plain, voxels a person set hatched in a brighter tint (stripes fixed to
            # the grid, so a partly recomposed box matches the rest of the slice)
            provenance = segment.provenance(box).reshape(out.shape[:2])
            out[provenance == 1] = (*segment.color, self.alpha)
            person = provenance == 2
            if person.any():
                rows, cols = np.ogrid[b0:b1, c0:c1]
                stripe = ((rows + cols) % 4) < 2
                bright = tuple(min(255, int(v) // 2 + 128) for v in segment.color)
                out[person & stripe] = (*bright, PERSON_ALPHA)
                out[person & ~stripe] = (*segment.color, self.alpha)
        return out

    def _show(self, view, item, geometry: PlaneGeometry, entry: dict) -> None:
        rgba = entry["rgba"]
        axis = entry["key"][0]
        if not rgba[..., 3].any():
            item.setVisible(False)
            return
        image = geometry.take(np.expand_dims(rgba, axis), 0)
        item.setImage(np.ascontiguousarray(image), autoLevels=False, levels=None)
        width, height = geometry.scene_size
        key = (item.width(), item.height(), width, height)
        if key != getattr(item, "_hf_rect_key", None):
            from PySide6.QtCore import QRectF

            item.setRect(QRectF(0, 0, width, height))
            item._hf_rect_key = key
        item.setVisible(self.visible)

    def update(self, view, items: list, geometry: PlaneGeometry, k: int) -> None:
        item = items[0]
        if tuple(geometry.volume_shape) != self.segmentation.shape:
            item.setVisible(False)
            self._slices.pop(view, None)
            return
        axis = geometry.array_axis
        entry = {"key": (axis, int(k)), "rgba": self.compose(axis, int(k))}
        self._slices[view] = entry
        self._show(view, item, geometry, entry)

    def on_changed(self, number, box) -> None:
        """The segmentation changed (segment ``number``, over ``box``, or everything when ``box`` is None)."""
        if box is None:
            self.redraw()
            return
        for view, items in self._items.items():
            entry = self._slices.get(view)
            geometry = getattr(view, "geometry_", None)
            if entry is None or geometry is None:
                continue
            axis, k = entry["key"]
            if not box[axis] <= k < box[axis + 3]:
                continue
            b, c = _in_plane_axes(axis)
            rect = (box[b], box[c], box[b + 3], box[c + 3])
            entry["rgba"][rect[0]:rect[2], rect[1]:rect[3]] = self.compose(axis, k, rect)
            self._show(view, items[0], geometry, entry)

    def set_visible(self, visible: bool) -> None:
        self.visible = bool(visible)
        self.redraw()

    def set_show_provenance(self, show: bool) -> None:
        """Draw voxels a person set (hatched, brighter) apart from the model's (plain)."""
        if bool(show) != self.show_provenance:
            self.show_provenance = bool(show)
            self.redraw()


# ------------------------------------------------------------------------------------------------------------------
# the Segments panel
# ------------------------------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------------------------------
# jobs (run on the worker pool)
# ------------------------------------------------------------------------------------------------------------------
def frozen_copy(segmentation: Segmentation) -> Segmentation:
    """An independent copy (masks copied) an export can read on a worker while the user goes on editing."""
    copy = Segmentation(segmentation.shape, segmentation.affine, segmentation.series_uid,
                        segmentation.frame_of_reference_uid)
    for s in segmentation:
        segment = copy.new_segment(s.name, s.color, number=s.number, origin=s.origin,
                                   algorithm_name=s.algorithm_name, algorithm_version=s.algorithm_version,
                                   category=s.category, type=s.type, mask=s.mask.copy())
        segment.edited = s.edited.copy()
        segment.visible, segment.locked = s.visible, s.locked
        copy.add(segment, make_active=False)
    copy.active = segmentation.active
    return copy


def export_job(kind: str, path: str, segmentation, review, volume, source_paths, series_uid: str,
               nifti_mode: str | None = None):
    """Write one export (``seg``, ``nifti``, ``findings``, ``sr``); returns what was written (a path, or for NIfTI
    a summary: see :class:`~viewer.core.export.nifti_segments.NiftiExport`). ``nifti_mode``: ``"last_wins"`` (one
    label map) or ``"per_segment"`` (one file per segment); None refuses overlapping segments."""
    yield Progress(0, 1, f"Exporting {kind.upper() if kind in ('seg', 'sr') else kind}")
    if kind == "seg":
        from viewer.core.editing.io import save_seg
        from viewer.core.export.seg import read_sources

        if not len(segmentation):
            raise ValueError("there are no segments to export")
        sources = read_sources(source_paths)
        yield Progress(0, 1, "Writing DICOM SEG")
        written = save_seg(segmentation, path, volume, sources)
    elif kind == "nifti":
        from viewer.core.editing.io import save_nifti_labels
        from viewer.core.export.nifti_segments import export_segments_nifti

        if nifti_mode is None:  # nobody chose: a label map, refused when segments overlap (nothing silently lost)
            written = save_nifti_labels(segmentation, path)
        else:
            written = export_segments_nifti(segmentation, path, nifti_mode).summary()
    elif kind == "findings":
        from viewer.core.export.findings import write_review

        written = write_review(path, review, series_uid)
    elif kind == "sr":
        from viewer.core.export.seg import read_sources
        from viewer.core.export.sr import write_measurement_report

        written = write_measurement_report(path, review, read_sources(source_paths))
    else:
        raise ValueError(f"unknown export {kind!r}")
    yield Progress(1, 1, "Exported")
    return str(written)


def open_seg_job(path: str, volume):
    """Read a DICOM SEG onto ``volume``'s grid; returns the Segmentation."""
    yield Progress(0, 1, "Reading DICOM SEG")
    from viewer.core.editing.io import open_seg

    return open_seg(path, volume)


# ------------------------------------------------------------------------------------------------------------------
# the controller
# ------------------------------------------------------------------------------------------------------------------
class AnnotationController(QObject):
    """One :class:`~viewer.core.editing.editor.AnnotationEditor` per series, bound to the views (as their paint
    handler), the Segments panel, the findings panel, the Edit menu and the exports.

    Signals
    -------
    status_message(str)
        Text for the status bar.
    job_started(str), job_progress(object), job_ended(str)
        An export or SEG read runs on a worker (for the window's progress bar; the end carries a message).
    changed()
        The shown annotation changed (after each history step, undo, redo, or a series switch).
    """

    status_message = Signal(str)
    job_started = Signal(str)
    job_progress = Signal(object)
    job_ended = Signal(str)
    changed = Signal()

    def __init__(self, viewer, panel: SegmentsWidget, lane, findings_panel, parent: QObject | None = None,
                 settings=None) -> None:
        super().__init__(parent)
        #: The window's :class:`~viewer.qt.settings.Settings` (remembers the export folder); None: not remembered.
        self.settings = settings
        self.viewer = viewer
        self.panel = panel
        self.lane = lane
        self.findings_panel = findings_panel
        self.editors: dict[str, object] = {}
        self.layers: dict[str, AnnotationLayer] = {}
        self.series_key: str | None = None
        self.series = None
        self.volume = None
        self.autosave_root = None  # None: the user data dir (autosave_root())
        self._asked_restore: set[str] = set()
        #: Paths the shown study was opened from (the window sets them); recorded in each autosave.
        self.study_paths: list[str] = []
        #: Series UIDs whose autosave the user already chose to restore (the start-up offer): no second question.
        self.restore_approved: set[str] = set()
        self._jobs: list[JobHandle] = []
        viewer.tool_handler = self
        self.undo_action = QAction("Undo", self)
        self.undo_action.setShortcut(QKeySequence("Ctrl+Z"))
        self.undo_action.triggered.connect(self.undo)
        self.redo_action = QAction("Redo", self)
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.redo_action.triggered.connect(self.redo)
        panel.add_requested.connect(self.add_segment)
        panel.delete_requested.connect(self.delete_segment)
        panel.colour_requested.connect(self.choose_colour)
        panel.renamed.connect(self.rename_segment)
        panel.visibility_changed.connect(self.set_segment_visible)
        panel.lock_changed.connect(self.set_segment_locked)
        panel.active_changed.connect(self.set_active)
        panel.accept_model_requested.connect(self.accept_model_result)
        self.threshold_action = QAction("Threshold Brush and Fill", self)
        self.threshold_action.setCheckable(True)
        self.threshold_action.setShortcut(QKeySequence("T"))
        self.threshold_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.threshold_action.toggled.connect(panel.threshold.setChecked)
        viewer.addAction(self.threshold_action)  # T in the views only (not while typing in a box)
        panel.threshold_changed.connect(self._on_threshold_changed)
        self.provenance_action = QAction("Show Who Set the Voxels", self)
        self.provenance_action.setCheckable(True)
        self.provenance_action.toggled.connect(panel.provenance.setChecked)
        panel.provenance_toggled.connect(self.set_show_provenance)
        panel.interpolate_requested.connect(self.interpolate)
        panel.remove_islands_requested.connect(self.remove_small_islands)
        panel.radius.setValue(viewer.brush_radius_mm)
        panel.radius_changed.connect(lambda r: abs(r - viewer.brush_radius_mm) > 1e-6 and viewer.set_brush_radius(r))
        viewer.brush_changed.connect(self._on_brush_changed)
        lane.result_applied.connect(self._on_result_applied)
        findings_panel.review_requested.connect(self.review_finding)
        findings_panel.add_requested.connect(self.add_finding_dialog)
        findings_panel.edit_requested.connect(self.edit_finding_dialog)
        findings_panel.show_rejected_changed.connect(lambda _show: self._draw_review_state())
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_TICK_MS)
        self.autosave_timer.timeout.connect(self.autosave_now)
        self.autosave_timer.start()
        self._panel_timer = QTimer(self)
        self._panel_timer.setSingleShot(True)
        self._panel_timer.setInterval(0)
        self._panel_timer.timeout.connect(self._refresh_panel_now)
        self._refresh()

    # ---- the shown series -----------------------------------------------------------------------------------
    @property
    def editor(self):
        """The shown series' editor (None without a series)."""
        return self.editors.get(self.series_key) if self.series_key is not None else None

    def series_shown(self, key: str | None, volume, series=None) -> None:
        """The window now shows ``volume`` of ``series`` (None: nothing): swap the annotation layer."""
        old = self.layers.get(self.series_key)
        if old is not None and key != self.series_key:
            self.viewer.remove_layer(old)
        self.series_key, self.volume, self.series = key, volume, series
        if key is not None and volume is not None:
            editor = self.editors.get(key)
            if editor is not None and tuple(editor.segmentation.shape) != tuple(volume.shape):
                editor = None  # another copy of the series: start afresh
            if editor is None:
                self._install(key, self._new_editor(volume))
            else:
                editor.volume = volume
        self._refresh()

    def _new_editor(self, volume, segmentation=None, review=None):
        from viewer.core.editing.autosave import Autosave
        from viewer.core.editing.editor import AnnotationEditor
        from viewer.core.editing.history import EditHistory

        history = EditHistory()
        if segmentation is None:
            segmentation = Segmentation.for_volume(volume)
        description = (self.series.description or "") if self.series is not None else ""
        autosave = Autosave(segmentation, review, root=self.autosave_root, description=description,
                            source_paths=self.study_paths)
        editor = AnnotationEditor(volume, segmentation, review, history, autosave)
        autosave.review = editor.review
        return editor

    def _install(self, key: str, editor) -> None:
        old_layer = self.layers.pop(key, None)
        if old_layer is not None:
            self.viewer.remove_layer(old_layer)
            old_layer.close()
        self.editors[key] = editor
        editor.history.changed.connect(self._on_history)
        self.layers[key] = AnnotationLayer(editor.segmentation)
        self.layers[key].show_provenance = self.panel.provenance.isChecked()
        self._sync_layer()

    def _sync_layer(self) -> None:
        """Draw the shown annotation once it has a segment (a series never annotated costs no layer)."""
        editor, layer = self.editor, self.layers.get(self.series_key)
        if editor is not None and layer is not None and len(editor.segmentation) and layer not in self.viewer.layers:
            self.viewer.add_layer(layer)

    def _on_history(self) -> None:
        self._refresh()

    def _refresh_panel(self) -> None:
        # deferred: the list is rebuilt outside its own signals (a rename arrives from its itemChanged)
        self._panel_timer.start()

    def _refresh_panel_now(self) -> None:
        editor = self.editor
        self.panel.set_segmentation(editor.segmentation if editor is not None else None)
        self.panel.set_model_available(self.lane.layer("segmentation") is not None and editor is not None)

    def _refresh(self) -> None:
        self._sync_layer()
        editor = self.editor
        history = editor.history if editor is not None else None
        undo_name = history.undo_name if history is not None else None
        redo_name = history.redo_name if history is not None else None
        self.undo_action.setText(f"&Undo {undo_name}" if undo_name else "&Undo")
        self.undo_action.setEnabled(undo_name is not None)
        self.redo_action.setText(f"&Redo {redo_name}" if redo_name else "&Redo")
        self.redo_action.setEnabled(redo_name is not None)
        self._refresh_panel()
        self._refresh_review()
        self.changed.emit()

    @property
    def modified(self) -> bool:
        """True when some series' annotation has changes not exported."""
        return any(e.history.modified for e in self.editors.values())

    def discard_all(self) -> None:
        """Forget every annotation (the user chose to discard them): layers, editors and their autosaves."""
        for key, editor in list(self.editors.items()):
            if editor.autosave is not None:
                editor.autosave.discard()
            layer = self.layers.pop(key, None)
            if layer is not None:
                self.viewer.remove_layer(layer)
                layer.close()
        self.editors.clear()
        self._refresh()

    # ---- painting (the views' paint handler) ----------------------------------------------------------------
    def _target_editor(self, erase: bool):
        """The shown editor with an active segment (painting into none starts one); None when it cannot edit."""
        editor = self.editor
        if editor is None:
            return None
        segmentation = editor.segmentation
        if segmentation.active is None:
            if erase:
                self.status_message.emit("Choose a segment to erase from")
                return None
            editor.add_segment(f"Segment {segmentation.next_number()}")
        return editor

    def hu_range(self) -> tuple[float, float] | None:
        """The threshold brush's and fill's HU range (None: Threshold off)."""
        return self.panel.hu_range()

    def _on_threshold_changed(self) -> None:
        on = self.panel.threshold.isChecked()
        if self.threshold_action.isChecked() != on:
            self.threshold_action.blockSignals(True)
            self.threshold_action.setChecked(on)
            self.threshold_action.blockSignals(False)
        hu = self.panel.hu_range()
        self.status_message.emit(f"Threshold {hu[0]:g}..{hu[1]:g}: brush and fill paint only inside it"
                                 if hu else "Threshold off")

    def paint(self, press: PointerEvent, erase: bool) -> PointerDrag:
        """A Brush/Eraser stroke (the views' :class:`~viewer.core.interaction.ToolHandler`): the shown editor's
        :meth:`~viewer.core.editing.editor.AnnotationEditor.stroke`, one undo step. With Threshold on, the brush
        paints only voxels inside the HU range ("Threshold brush stroke"). Returns before yielding when it
        cannot paint."""
        editor = self._target_editor(erase)
        if editor is None:
            return
        try:
            yield from editor.stroke(press, self.viewer.brush_radius_mm, erase=erase,
                                     hu_range=None if erase else self.hu_range())
        except (SegmentLockedError, ValueError, KeyError) as exc:
            self.status_message.emit(f"Cannot paint: {exc}")

    def fill(self, click: PointerEvent, erase: bool = False, three_d: bool = False) -> int:
        """Fill tool click: the connected region of the HU range (Threshold on) or of the seed's label, on the
        clicked slice or in 3D; one "Fill (name)" step. Returns the voxels changed."""
        editor = self._target_editor(erase)
        if editor is None:
            return 0
        axis = None if three_d else click.array_axis
        try:
            n = editor.fill(click.point, hu_range=self.hu_range(), axis=axis, erase=erase)
        except (SegmentLockedError, ValueError, KeyError) as exc:
            self.status_message.emit(f"Cannot fill: {exc}")
            return 0
        where = "in 3D" if three_d else "on this slice"
        self.status_message.emit(f"{'Removed' if erase else 'Filled'} {n} voxels {where}" if n else
                                 "Nothing to fill there (the seed is outside the range, or already filled)")
        return n

    def polygon(self, vertices, array_axis: int, erase: bool = False) -> int:
        """A closed polygon/lasso ``(M, 3)`` ``(z, y, x)`` on a slice normal to ``array_axis``: fill it
        ("Polygon fill (name)")."""
        editor = self._target_editor(erase)
        if editor is None:
            return 0
        try:
            n = editor.polygon(vertices, array_axis, erase=erase)
        except (SegmentLockedError, ValueError, KeyError) as exc:
            self.status_message.emit(f"Cannot fill the polygon: {exc}")
            return 0
        self.status_message.emit(f"Polygon: {'removed' if erase else 'filled'} {n} voxels")
        return n

    def _drawing_axis(self) -> int:
        geometry = getattr(self.viewer.active_view, "geometry_", None)
        return geometry.array_axis if geometry is not None else 0

    def interpolate(self, axis: int | None = None) -> int:
        """Interpolate the active segment between its edited slices along ``axis`` (the active view's slice
        direction by default): one "Interpolate (name)" step."""
        editor = self.editor
        if editor is None or editor.segmentation.active is None:
            self.status_message.emit("Choose a segment to interpolate")
            return 0
        axis = self._drawing_axis() if axis is None else axis
        try:
            n = editor.interpolate(axis)
        except (SegmentLockedError, ValueError, KeyError) as exc:
            self.status_message.emit(f"Cannot interpolate: {exc}")
            return 0
        self.status_message.emit(f"Interpolated {n} voxels" if n else
                                 "Nothing to interpolate: paint two slices with a gap between them")
        return n

    def remove_small_islands(self, min_volume_mm3: float | None = None) -> int:
        """Remove pieces of the active segment below ``min_volume_mm3`` (the panel's value by default)."""
        editor = self.editor
        if editor is None or editor.segmentation.active is None:
            self.status_message.emit("Choose a segment to clean")
            return 0
        volume = self.panel.island_volume.value() if min_volume_mm3 is None else float(min_volume_mm3)
        try:
            n = editor.remove_small_islands(volume)
        except (SegmentLockedError, ValueError, KeyError) as exc:
            self.status_message.emit(f"Cannot remove islands: {exc}")
            return 0
        self.status_message.emit(f"Removed {n} voxels in islands under {volume:g} mm³" if n else
                                 f"No islands under {volume:g} mm³")
        return n

    def set_show_provenance(self, show: bool) -> None:
        """Draw person-set voxels hatched and brighter than model voxels, in every annotation layer."""
        if self.provenance_action.isChecked() != bool(show):
            self.provenance_action.blockSignals(True)
            self.provenance_action.setChecked(bool(show))
            self.provenance_action.blockSignals(False)
        if self.panel.provenance.isChecked() != bool(show):
            self.panel.provenance.setChecked(bool(show))  # comes back here once
            return
        for layer in self.layers.values():
            layer.set_show_provenance(show)

    def end_strokes(self) -> None:
        """Close a stroke left open (the window loses the mouse mid-stroke)."""
        for editor in self.editors.values():
            if editor.history.in_step:
                editor.end_stroke()

    def _on_brush_changed(self, radius: float) -> None:
        if abs(self.panel.radius.value() - radius) > 1e-6:
            self.panel.radius.blockSignals(True)
            self.panel.radius.setValue(radius)
            self.panel.radius.blockSignals(False)
        self.status_message.emit(f"Brush radius {radius:.1f} mm")

    # ---- history --------------------------------------------------------------------------------------------
    def undo(self) -> str | None:
        """Undo the shown annotation's last step; returns its name."""
        if self.editor is None:
            return None
        name = self.editor.undo()
        if name:
            self.status_message.emit(f"Undid {name}")
        return name

    def redo(self) -> str | None:
        """Redo; returns the step's name."""
        if self.editor is None:
            return None
        name = self.editor.redo()
        if name:
            self.status_message.emit(f"Redid {name}")
        return name

    # ---- segments -------------------------------------------------------------------------------------------
    def add_segment(self, name: str | None = None):
        """A new manual segment (made active)."""
        editor = self.editor
        if editor is None:
            return None
        return editor.add_segment(name or f"Segment {editor.segmentation.next_number()}")

    def delete_segment(self, number: int) -> None:
        if self.editor is not None and number in self.editor.segmentation.segments:
            self.editor.delete_segment(number)

    def rename_segment(self, number: int, name: str) -> None:
        editor = self.editor
        if editor is None or number not in editor.segmentation.segments:
            return
        if name and name != editor.segmentation[number].name:
            editor.rename_segment(number, name)
        else:
            self._refresh_panel()

    def ask_colour(self, initial) -> tuple[int, int, int] | None:
        """The colour dialog (tests replace this)."""
        colour = QColorDialog.getColor(QColor(*initial), self.panel, "Segment colour")
        return (colour.red(), colour.green(), colour.blue()) if colour.isValid() else None

    def choose_colour(self, number: int) -> None:
        editor = self.editor
        if editor is None or number not in editor.segmentation.segments:
            return
        colour = self.ask_colour(editor.segmentation[number].color)
        if colour is not None:
            editor.recolor_segment(number, colour)

    def set_segment_visible(self, number: int, visible: bool) -> None:
        if self.editor is not None and number in self.editor.segmentation.segments:
            self.editor.set_visible(number, visible)

    def set_segment_locked(self, number: int, locked: bool) -> None:
        if self.editor is not None and number in self.editor.segmentation.segments:
            self.editor.lock_segment(number, locked)

    def set_active(self, number) -> None:
        editor = self.editor
        if editor is not None and (number is None or number in editor.segmentation.segments):
            editor.set_active(number)

    # ---- model results and findings -------------------------------------------------------------------------
    def accept_model_result(self) -> list:
        """Add the shown series' AI segmentation as AUTOMATIC segments (one undo step); the model overlay is
        hidden, its voxels now drawn (and editable) as the annotation."""
        editor, layer = self.editor, self.lane.layer("segmentation")
        if editor is None or layer is None:
            self.status_message.emit("No model segmentation on this series to accept")
            return []
        try:
            segments = editor.accept_model_result(layer.result, algorithm_name=layer.name)
        except ValueError as exc:
            self.status_message.emit(f"Cannot accept the model result: {exc}")
            return []
        layer.set_visible(False)
        self.lane._show_controls()
        self.status_message.emit(f"Accepted {len(segments)} model segment{'s' if len(segments) != 1 else ''} "
                                 "into the annotation (Ctrl+Z undoes)")
        return segments

    def _on_result_applied(self, task: str) -> None:
        if task == "detection" and self.editor is not None:
            layer = self.lane.layer("detection")
            if layer is not None:
                self.editor.accept_detections(layer.detections)
        self._refresh()

    def review_finding(self, finding_id: int, action: str) -> None:
        """Accept or reject a finding of the shown series (one undo step)."""
        editor = self.editor
        if editor is None or finding_id not in {f.id for f in editor.review.findings}:
            self.status_message.emit("No reviewable finding selected")
            return
        getattr(editor.review, action)(finding_id)

    def add_finding_dialog(self) -> None:
        """Add… in the Findings panel: a finding by hand, centred on the crosshair ("Add finding" step)."""
        editor, volume = self.editor, self.volume
        if editor is None or volume is None:
            return
        from viewer.qt.findings_panel import DEFAULT_FINDING_SIZE_MM

        centre = self.viewer.state.position_lps  # the crosshair
        answer = self.findings_panel.ask_box("Add finding", centre, (DEFAULT_FINDING_SIZE_MM,) * 3)
        if answer is not None:
            finding = editor.review.add(answer[0], answer[1])
            self.findings_panel.select(finding.id)

    def edit_finding_dialog(self, finding_id: int) -> None:
        """Edit… in the Findings panel: move ("Move finding") and/or resize ("Resize finding") one finding."""
        editor = self.editor
        if editor is None or finding_id not in {f.id for f in editor.review.findings}:
            self.status_message.emit("No reviewable finding selected")
            return
        old = editor.review[finding_id]
        answer = self.findings_panel.ask_box(f"Edit finding #{finding_id + 1}", old.center_lps, old.size_mm)
        if answer is None:
            return
        centre, size = np.asarray(answer[0], float), np.asarray(answer[1], float)
        if not np.allclose(centre, old.center_lps, atol=1e-3):
            editor.review.move(finding_id, centre - old.center_lps)
        if not np.allclose(size, old.size_mm, atol=1e-3):
            editor.review.resize(finding_id, size)

    def _sync_review_boxes(self, review) -> None:
        """Draw the review's boxes (moved, resized, added) with the detection overlay and list them."""
        if review is None or self.volume is None:
            return
        rows = sorted(review.findings, key=lambda f: f.id)
        if [f.id for f in rows] != list(range(len(rows))):
            return  # a finding added by hand was deleted: ids are no longer detection rows
        from inference.types import Detections, Label

        layer = self.lane.layer("detection")
        if not rows and (layer is None or layer.name != REVIEWED_FINDINGS):
            return  # nothing reviewed yet: a detector's boxes stay as they are
        base = layer.detections if layer is not None else None
        table = dict(base.table) if base is not None and base.table else {1: Label(1, "nodule")}
        values = {label.name: int(value) for value, label in table.items()}
        boxes = np.array([f.box_lps for f in rows], float).reshape(-1, 6)
        scores = np.array([1.0 if f.score is None else f.score for f in rows])  # by hand: above any threshold
        if base is not None and len(base) == len(rows) and np.allclose(base.boxes_lps, boxes) \
                and np.allclose(base.scores, scores):
            return
        voxels = [base.boxes_voxel[f.id] if base is not None and f.id < len(base)
                  and np.allclose(base.boxes_lps[f.id], f.box_lps) else review.box_voxel(f) for f in rows]
        measured = [getattr(f, "measurements", None) for f in rows]  # issue 11: kept for unmoved boxes
        detections = Detections(boxes, np.array(voxels), scores,
                                np.array([values.get(f.label, min(table)) for f in rows]), review.affine,
                                review.shape, table, review.model_id,
                                measurements=measured if any(m is not None for m in measured) else None)
        if layer is None:
            if rows and getattr(self.lane, "series_key", None) == self.series_key:
                try:
                    self.lane.apply_result(detections, REVIEWED_FINDINGS)
                except ValueError as exc:  # not on the shown grid: list only
                    log.warning("findings not drawn: %s", exc)
            return
        self.lane.replace_detections(layer, detections)

    def _refresh_review(self) -> None:
        editor = self.editor
        review = editor.review if editor is not None else None
        self._sync_review_boxes(review)
        statuses = {f.id: f.status for f in review.findings} if review is not None else {}
        manual = {f.id for f in review.findings if f.source == "manual"} if review is not None else set()
        self.findings_panel.set_review_available(editor is not None)
        self.findings_panel.set_statuses(statuses, manual)
        self._draw_review_state()

    def _draw_review_state(self) -> None:
        """Rejected findings drawn grey and dashed in the views, or hidden ("Show rejected" in the panel)."""
        layer = self.lane.layer("detection")
        if layer is not None and hasattr(layer, "set_review"):
            layer.set_review(self.findings_panel.statuses, self.findings_panel.show_rejected)

    # ---- autosave and restore -------------------------------------------------------------------------------
    def autosave_now(self, force: bool = False) -> int:
        """Save the annotations that are due (all with unsaved edits when ``force``); returns how many."""
        saved = 0
        for editor in self.editors.values():
            autosave = editor.autosave
            if autosave is None or editor.history.in_step or not autosave.segmentation.series_uid:
                continue
            try:
                if force and autosave.pending:
                    autosave.save()
                    saved += 1
                elif autosave.maybe_save():
                    saved += 1
            except OSError as exc:
                log.warning("autosave failed: %s", exc)
                self.status_message.emit(f"Autosave failed: {exc}")
        return saved

    def ask_restore(self, info) -> bool:
        """Offer an autosave (tests replace this): True restores it."""
        import datetime

        when = datetime.datetime.fromtimestamp(info.saved_at).strftime("%Y-%m-%d %H:%M")
        answer = QMessageBox.question(
            self.panel.window(), "Restore annotation",
            f"An annotation of this series ({info.description or 'no description'}) was autosaved at {when} and "
            f"not exported: {info.n_segments} segment(s), {info.n_findings} finding(s), {info.edits} edit(s).\n\n"
            "Restore it?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.Yes)
        return answer == QMessageBox.StandardButton.Yes

    def check_restore(self) -> bool:
        """When the shown series has an autosave newer than its export, offer it (once per series and session);
        returns True when one was restored."""
        from viewer.core.editing.autosave import find_restorable, restore

        editor, volume = self.editor, self.volume
        if editor is None or volume is None or not volume.series_uid or self.series_key in self._asked_restore:
            return False
        root = editor.autosave.root if editor.autosave is not None else None
        found = [i for i in find_restorable(root) if i.series_uid == volume.series_uid]
        if not found:
            return False
        self._asked_restore.add(self.series_key)
        info = found[0]
        approved = info.series_uid in self.restore_approved
        self.restore_approved.discard(info.series_uid)
        if not approved and not self.ask_restore(info):
            editor.autosave.discard()
            self.status_message.emit("Autosaved annotation discarded")
            return False
        try:
            segmentation, review = restore(info.folder)
        except Exception as exc:  # noqa: BLE001 - a damaged autosave must not take the window down
            self.status_message.emit(f"Could not restore the autosave: {exc}")
            return False
        if tuple(segmentation.shape) != tuple(volume.shape):
            self.status_message.emit("The autosave is on another grid than this series; not restored")
            return False
        restored = self._new_editor(volume, segmentation, review)  # the restored state is the undo base
        self._install(self.series_key, restored)
        restored.autosave.note_edit()  # still not exported: stays restorable
        restored.history.mark_unsaved()  # modified until exported, so closing asks
        self._refresh()
        self.status_message.emit(f"Restored the autosaved annotation ({len(segmentation)} segments)")
        return True

    # ---- files ----------------------------------------------------------------------------------------------
    def _start(self, factory, name: str, on_finished) -> JobHandle:
        job = start_job(factory, name, parent=self)
        job.progressed.connect(self.job_progress)
        job.finished.connect(on_finished)
        job.failed.connect(lambda reason: self.job_ended.emit(f"{name.capitalize()} failed: {reason}"))
        job.cancelled.connect(lambda: self.job_ended.emit(f"{name.capitalize()} cancelled"))
        job.done.connect(lambda j=job: j in self._jobs and self._jobs.remove(j))
        self._jobs.append(job)
        self.job_started.emit(name.capitalize())
        return job

    @property
    def busy(self) -> bool:
        """True while an export or SEG read runs."""
        return any(j.running for j in self._jobs)

    def source_paths(self) -> list[str]:
        """Files of the shown series (the SEG and SR reference them)."""
        return [inst.path for inst in self.series.instances] if self.series is not None else []

    def export(self, kind: str, path: str | os.PathLike, nifti_mode: str | None = None) -> JobHandle | None:
        """Export the shown annotation on a worker: ``seg`` (DICOM SEG), ``nifti`` (label map), ``findings``
        (reviewed findings JSON) or ``sr`` (DICOM SR of the accepted findings).

        NIfTI of overlapping segments asks how (:meth:`ask_nifti_mode`) unless ``nifti_mode`` is given: one file
        per segment, or one label map where the later segment wins. None when nothing was started."""
        editor, volume = self.editor, self.volume
        if editor is None or volume is None:
            self.status_message.emit("Nothing to export: open a series")
            return None
        if kind in ("seg", "sr") and not volume.complete:
            self.status_message.emit("Wait until the series has loaded")
            return None
        from viewer.core.editing.review import FindingsReview

        segmentation = frozen_copy(editor.segmentation)
        if kind == "nifti" and nifti_mode is None:
            from viewer.core.export.nifti_segments import LAST_WINS, segment_overlaps

            overlaps = segment_overlaps(segmentation)
            nifti_mode = self.ask_nifti_mode(overlaps) if overlaps else LAST_WINS
            if nifti_mode is None:
                self.status_message.emit("NIfTI export cancelled")
                return None
        review = FindingsReview.from_state(editor.review.to_state())  # a copy, by its state
        revision = editor.history.revision
        path, series_uid, sources = str(path), volume.series_uid, self.source_paths()

        def finished(written, e=editor, r=revision):
            if kind in ("seg", "nifti"):
                if e.history.revision == r:  # nothing changed while it was written
                    e.history.mark_saved()
                if e.autosave is not None:
                    e.autosave.note_exported()
            self.job_ended.emit(f"Exported {written}")
            self._refresh()

        return self._start(lambda token: export_job(kind, path, segmentation, review, volume, sources, series_uid,
                                                    nifti_mode), f"export {kind}", finished)

    def ask_nifti_mode(self, overlaps) -> str | None:
        """Segments overlap and a NIfTI label map holds one value per voxel: ask how to export (tests replace
        this). Returns ``"per_segment"``, ``"last_wins"`` or None (cancel)."""
        from viewer.core.export.nifti_segments import LAST_WINS, PER_SEGMENT

        box = QMessageBox(QMessageBox.Icon.Question, "Segments overlap",
                          "Some segments share voxels, and a NIfTI label map holds one label per voxel.",
                          QMessageBox.StandardButton.Cancel, self.panel.window())
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

    def open_seg_file(self, path: str | os.PathLike) -> JobHandle | None:
        """Read a DICOM SEG on a worker and add its segments to the shown annotation (one undo step)."""
        editor, volume = self.editor, self.volume
        if editor is None or volume is None or not volume.complete:
            self.status_message.emit("Open and load the series the SEG belongs to first")
            return None
        path = str(path)

        def finished(loaded, e=editor):
            if e is not self.editors.get(self.series_key):
                self.job_ended.emit("The series changed: the SEG was not added")
                return
            n = self.merge(e, loaded, Path(path).name)
            self.job_ended.emit(f"Opened {n} segment{'s' if n != 1 else ''} from {Path(path).name}")

        return self._start(lambda token: open_seg_job(path, volume), "open SEG", finished)

    @staticmethod
    def merge(editor, loaded: Segmentation, name: str) -> int:
        """Add the segments of ``loaded`` to ``editor`` as one step ("Open segmentation (name)"); an unmodified
        annotation stays unmodified (what was opened is saved on disk)."""
        segmentation = editor.segmentation
        was_modified = editor.history.modified
        atoms: list = []
        for s in loaded:
            segment = segmentation.new_segment(s.name, s.color, origin=s.origin, algorithm_name=s.algorithm_name,
                                               algorithm_version=s.algorithm_version, category=s.category,
                                               type=s.type, mask=s.mask)
            segment.edited = s.edited
            atoms += segmentation.add(segment, make_active=segmentation.active is None)
        editor.history.push(f"Open segmentation ({name})", atoms)
        if not was_modified:
            editor.history.mark_saved()
        return len(loaded)

    def ask_open_seg(self, seg_series) -> bool:
        """Offer a SEG that references the shown series (tests replace this)."""
        answer = QMessageBox.question(
            self.panel.window(), "Segmentation found",
            f"This study holds a segmentation of the shown series ({seg_series.description or seg_series.uid}).\n\n"
            "Open it as an editable annotation?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes)
        return answer == QMessageBox.StandardButton.Yes

    def offer_segs(self, catalog) -> JobHandle | None:
        """After the shown series loaded: if the catalog holds a SEG that references it, offer to open it."""
        series = self.series
        if catalog is None or series is None or self.editor is None:
            return None
        segs = [s for s in catalog.all_series() if s.kind == "seg" and series.uid in (s.references or [])
                and s.instances]
        key = f"seg:{series.key}"
        if not segs or key in self._asked_restore:
            return None
        self._asked_restore.add(key)
        if not self.ask_open_seg(segs[0]):
            return None
        return self.open_seg_file(segs[0].instances[0].path)

    # ---- dialogs for the File menu --------------------------------------------------------------------------
    def ask_save_path(self, title: str, name: str, filter_: str, folder: str = "") -> str:
        """A save dialog (tests replace this); "" when cancelled."""
        path, _ = QFileDialog.getSaveFileName(self.panel.window(), title, os.path.join(folder, name), filter_)
        return path

    def export_folder(self, folder: str = "") -> str:
        """Where an export dialog opens: ``folder``, else the last export folder, unless it lies in a folder the
        study was read from; then the user's exports folder (created when missing)."""
        from viewer.core.paths import export_start_folder

        remembered = folder or (self.settings.exports_folder if self.settings is not None else "")
        sources = list(self.study_paths) + sorted({os.path.dirname(p) for p in self.source_paths()})
        start = export_start_folder(remembered, sources)
        try:
            start.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only home: the dialog still opens, wherever the platform puts it
            log.warning("cannot create the exports folder %s: %s", start, exc)
        return str(start)

    def export_dialog(self, kind: str, folder: str = "") -> JobHandle | None:
        """Ask where to export (starting in :meth:`export_folder`, never a source folder) and export there."""
        names = {"seg": ("Export segmentation as DICOM SEG", "segmentation.seg.dcm", "DICOM SEG (*.dcm)"),
                 "nifti": ("Export segmentation as NIfTI labels", "segmentation.nii.gz", "NIfTI (*.nii.gz *.nii)"),
                 "findings": ("Export findings as JSON", "findings.json", "JSON (*.json)"),
                 "sr": ("Export findings as DICOM SR", "findings.sr.dcm", "DICOM SR (*.dcm)")}
        title, name, filter_ = names[kind]
        path = self.ask_save_path(title, name, filter_, self.export_folder(folder))
        if not path:
            return None
        if self.settings is not None:
            self.settings.exports_folder = os.path.dirname(os.path.abspath(path))
        return self.export(kind, path)

    def open_seg_dialog(self, folder: str = "") -> JobHandle | None:
        path, _ = QFileDialog.getOpenFileName(self.panel.window(), "Open DICOM SEG", folder,
                                              "DICOM SEG (*.dcm *.DCM *);;All files (*)")
        return self.open_seg_file(path) if path else None

    def ask_rename(self, number: int) -> None:
        """Rename through a dialog (the list also renames on double-click)."""
        editor = self.editor
        if editor is None or number not in editor.segmentation.segments:
            return
        name, ok = QInputDialog.getText(self.panel.window(), "Rename segment", "Name",
                                        text=editor.segmentation[number].name)
        if ok and name.strip():
            self.rename_segment(number, name.strip())
