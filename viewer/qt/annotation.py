"""Editing the annotation of the shown series: its overlay, and the controller that binds the views, the panels
and the menus to the series' :class:`~viewer.core.editing.editor.AnnotationEditor`, kept in the
:class:`~viewer.core.session.Session` (one per series, made by :meth:`~viewer.core.session.SeriesState.ensure_editor`).

- **Drawing.** :class:`AnnotationLayer` draws the editor's overlapping segments in every view and plane. Each view
  keeps its current slice composed as RGBA in array order; a dab (or an undo) re-composes only the box it changed,
  on the views whose slice it cuts, and a slice change composes one slice from the segments' sparse boxes.
- **One history.** Every stroke, fill, segment change, accepted model result and finding decision is a named step of
  the editor's :class:`~viewer.core.editing.history.EditHistory`; the Edit menu's Undo/Redo actions live here and
  are renamed from its listeners ("Undo Brush stroke (nodule)").
- **Parts.** :class:`AnnotationController` paints and owns the overlay and the history actions; its parts bind the
  Segments panel (:mod:`viewer.qt.annotation_segments`), the findings review (:mod:`viewer.qt.annotation_review`),
  files (:mod:`viewer.qt.annotation_files`) and autosave (:mod:`viewer.qt.annotation_autosave`). Their public
  names stay reachable on the controller, which the window, the menus and tests call.
"""
from __future__ import annotations

import logging

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QKeySequence

from viewer.core.editing.segmentation import Segmentation, SegmentLockedError, box_intersection
from viewer.core.interaction import PointerDrag, PointerEvent
from viewer.core.layers import FILL_OPACITY
from viewer.core.reformat import PlaneGeometry
from viewer.core.session import Session
from viewer.qt.annotation_autosave import AutosaveController
from viewer.qt.annotation_files import AnnotationFilesController
from viewer.qt.annotation_review import ReviewController
from viewer.qt.annotation_segments import SegmentsController
from viewer.qt.layers import ViewLayer
from viewer.qt.segments_panel import SegmentsWidget
from viewer.qt.workers import JobHandle

log = logging.getLogger(__name__)

__all__ = ["AnnotationController", "AnnotationLayer", "SegmentsWidget"]  # the window imports the panel from here

ANNOTATION_Z = 12.0  # above the model's segmentation (10)
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
# the controller
# ------------------------------------------------------------------------------------------------------------------
class _Part:
    """A name of one of the controller's parts, reached on the controller: reading it reads the part's, assigning
    it (a test answering a prompt) assigns the part's."""

    def __init__(self, part: str, name: str | None = None) -> None:
        self.part, self.name = part, name

    def __set_name__(self, owner, name: str) -> None:
        self.name = self.name or name

    def __get__(self, obj, objtype=None):
        return self if obj is None else getattr(getattr(obj, self.part), self.name)

    def __set__(self, obj, value) -> None:
        setattr(getattr(obj, self.part), self.name, value)


class AnnotationController(QObject):
    """The annotation of the shown series, bound to the views (as their paint handler), the Segments panel, the
    findings panel, the Edit menu and the exports. The editors live in ``session`` (one per series).

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

    # the Segments panel and its menu actions (annotation_segments)
    provenance_action = _Part("segments")
    add_segment = _Part("segments")
    delete_segment = _Part("segments")
    rename_segment = _Part("segments")
    ask_colour = _Part("segments")
    choose_colour = _Part("segments")
    ask_rename = _Part("segments")
    set_segment_visible = _Part("segments")
    set_segment_locked = _Part("segments")
    set_active = _Part("segments")
    accept_model_result = _Part("segments")
    _refresh_panel = _Part("segments", "refresh")
    # the findings review (annotation_review)
    review_finding = _Part("review")
    add_finding_dialog = _Part("review")
    edit_finding_dialog = _Part("review")
    # files (annotation_files)
    export = _Part("files")
    export_dialog = _Part("files")
    export_folder = _Part("files")
    ask_save_path = _Part("files")
    ask_nifti_mode = _Part("files")
    open_seg_file = _Part("files")
    open_seg_dialog = _Part("files")
    ask_open_seg = _Part("files")
    offer_segs = _Part("files")
    source_paths = _Part("files")
    # autosave and restore (annotation_autosave)
    autosave_now = _Part("autosave")
    autosave_timer = _Part("autosave")
    ask_restore = _Part("autosave")
    check_restore = _Part("autosave")
    restore_approved = _Part("autosave")
    _asked_restore = _Part("autosave")

    def __init__(self, viewer, panel: SegmentsWidget, lane, findings_panel, parent: QObject | None = None,
                 settings=None, session: Session | None = None) -> None:
        super().__init__(parent)
        #: The window's :class:`~viewer.qt.settings.Settings` (remembers the export folder); None: not remembered.
        self.settings = settings
        #: Where the series' editors live (the window passes its own; None: one of the controller's).
        self.session = session if session is not None else Session()
        self.viewer = viewer
        self.panel = panel
        self.lane = lane
        self.findings_panel = findings_panel
        self.layers: dict[str, AnnotationLayer] = {}
        self.series_key: str | None = None
        #: Paths the shown study was opened from (the window sets them); recorded in each autosave.
        self.study_paths: list[str] = []
        # the export and SEG jobs running (the files part starts them; :attr:`busy` asks)
        self._jobs: list[JobHandle] = []
        viewer.tool_handler = self
        self.undo_action = QAction("Undo", self)
        self.undo_action.setShortcut(QKeySequence("Ctrl+Z"))
        self.undo_action.triggered.connect(self.undo)
        self.redo_action = QAction("Redo", self)
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.redo_action.triggered.connect(self.redo)
        self.segments = SegmentsController(self)
        self.review = ReviewController(self)
        self.files = AnnotationFilesController(self)
        self.autosave = AutosaveController(self)
        self._refresh()

    # ---- the shown series -----------------------------------------------------------------------------------
    @property
    def state(self):
        """The shown series' :class:`~viewer.core.session.SeriesState` (None without a series)."""
        return self.session.states.get(self.series_key) if self.series_key is not None else None

    @property
    def editor(self):
        """The shown series' editor (None without a series, or before one was made)."""
        state = self.state
        return state.editor if state is not None else None

    @property
    def volume(self):
        """The shown volume (None without a series)."""
        state = self.state
        return state.volume if state is not None else None

    @property
    def series(self):
        """The shown catalog series (None without one)."""
        state = self.state
        return state.series if state is not None else None

    @property
    def editors(self) -> dict:
        """Every series' editor, by series key (they live in the session)."""
        return self.session.editors

    @property
    def autosave_root(self):
        """Where annotations autosave (None: the user data folder); the session's."""
        return self.session.autosave_root

    @autosave_root.setter
    def autosave_root(self, root) -> None:
        self.session.autosave_root = root

    @property
    def busy(self) -> bool:
        """True while an export or SEG read runs."""
        return any(j.running for j in self._jobs)

    def series_shown(self, key: str | None, volume, series=None) -> None:
        """The window now shows ``volume`` of ``series`` (None: nothing): swap the annotation layer."""
        old = self.layers.get(self.series_key)
        if old is not None and key != self.series_key:
            self.viewer.remove_layer(old)
        self.series_key = key
        if key is not None:
            state = self.session.state(key)
            state.volume = volume
            if series is not None:
                state.series = series
            if volume is not None:
                self._ensure_editor()  # another copy of the series (another grid) starts afresh
        self._refresh()

    def _ensure_editor(self, **restored):
        """The shown series' editor, made in the session when missing or on another grid (``restored``: an
        autosave's ``segmentation`` and ``review`` replace it), with its layer."""
        editor = self.session.state(self.series_key).ensure_editor(self.autosave_root, self.study_paths, **restored)
        layer = self.layers.get(self.series_key)
        if layer is None or layer.segmentation is not editor.segmentation:
            self._install(self.series_key, editor)
        return editor

    def _install(self, key: str, editor) -> None:
        old_layer = self.layers.pop(key, None)
        if old_layer is not None:
            self.viewer.remove_layer(old_layer)
            old_layer.close()
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
        self.segments.refresh()
        self.review.refresh()
        self.changed.emit()

    @property
    def modified(self) -> bool:
        """True when some series' annotation has changes not exported."""
        return self.session.modified

    def discard_all(self) -> None:
        """Forget every annotation (the user chose to discard them): editors, their autosaves and layers."""
        for key in self.session.discard_annotations():
            layer = self.layers.pop(key, None)
            if layer is not None:
                self.viewer.remove_layer(layer)
                layer.close()
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

    threshold_action = _Part("segments")  # T: Threshold on and off (the Segments part's action)

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

    # the tools of the Segments panel on the active segment (its part)
    interpolate = _Part("segments")
    remove_small_islands = _Part("segments")
    set_show_provenance = _Part("segments")

    def end_strokes(self) -> None:
        """Close a stroke left open (the window loses the mouse mid-stroke)."""
        for editor in self.editors.values():
            if editor.history.in_step:
                editor.end_stroke()

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
