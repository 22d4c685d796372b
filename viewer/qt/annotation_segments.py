"""The Segments panel and the Edit menu's segment tools, bound to the shown annotation.

One part of :class:`~viewer.qt.annotation.AnnotationController` (which reaches the shown editor, the views and the
model lane): list edits become editor steps, the threshold and provenance toggles stay in step with their menu
actions, and the panel is rebuilt (deferred) when the annotation changes.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction, QColor, QKeySequence
from PySide6.QtWidgets import QColorDialog, QInputDialog

from viewer.core.editing.errors import EditRefused


class SegmentsController(QObject):
    """Segment edits (add, delete, rename, colour, show, lock, choose), threshold, provenance display, brush radius,
    interpolate, remove islands and "Accept model result", for ``annotation`` (an
    :class:`~viewer.qt.annotation.AnnotationController`)."""

    def __init__(self, annotation) -> None:
        super().__init__(annotation)
        self.annotation = annotation
        panel, viewer = annotation.panel, annotation.viewer
        self.panel = panel
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
        self._panel_timer = QTimer(self)
        self._panel_timer.setSingleShot(True)
        self._panel_timer.setInterval(0)
        self._panel_timer.timeout.connect(self._refresh_now)

    @property
    def editor(self):
        """The shown series' editor (None without a series)."""
        return self.annotation.editor

    def _say(self, text: str) -> None:
        self.annotation.status_message.emit(text)

    # ---- the panel ------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rebuild the list soon: deferred, so it is rebuilt outside its own signals (a rename arrives from its
        itemChanged)."""
        self._panel_timer.start()

    def _refresh_now(self) -> None:
        editor = self.editor
        self.panel.set_segmentation(editor.segmentation if editor is not None else None)
        self.panel.set_model_available(self.annotation.lane.layer("segmentation") is not None and editor is not None)

    def _on_threshold_changed(self) -> None:
        on = self.panel.threshold.isChecked()
        if self.threshold_action.isChecked() != on:
            self.threshold_action.blockSignals(True)
            self.threshold_action.setChecked(on)
            self.threshold_action.blockSignals(False)
        hu = self.panel.hu_range()
        self._say(f"Threshold {hu[0]:g}..{hu[1]:g}: brush and fill paint only inside it" if hu else "Threshold off")

    def _on_brush_changed(self, radius: float) -> None:
        if abs(self.panel.radius.value() - radius) > 1e-6:
            self.panel.radius.blockSignals(True)
            self.panel.radius.setValue(radius)
            self.panel.radius.blockSignals(False)
        self._say(f"Brush radius {radius:.1f} mm")

    def set_show_provenance(self, show: bool) -> None:
        """Draw person-set voxels hatched and brighter than model voxels, in every annotation layer."""
        if self.provenance_action.isChecked() != bool(show):
            self.provenance_action.blockSignals(True)
            self.provenance_action.setChecked(bool(show))
            self.provenance_action.blockSignals(False)
        if self.panel.provenance.isChecked() != bool(show):
            self.panel.provenance.setChecked(bool(show))  # comes back here once
            return
        for layer in self.annotation.layers.values():
            layer.set_show_provenance(show)

    # ---- segments -------------------------------------------------------------------------------------------
    def add_segment(self, name: str | None = None):
        """A new manual segment (made active)."""
        editor = self.editor
        if editor is None:
            return None
        return editor.add_segment(name or f"Segment {editor.segmentation.next_number()}")

    def _has(self, number: int) -> bool:
        return self.editor is not None and number in self.editor.segmentation.segments

    def delete_segment(self, number: int) -> None:
        """Delete segment ``number`` ("Delete segment (name)")."""
        if self._has(number):
            self.editor.delete_segment(number)

    def rename_segment(self, number: int, name: str) -> None:
        """Rename ("Rename segment"); an empty or unchanged name puts the old one back in the list."""
        if not self._has(number):
            return
        if name and name != self.editor.segmentation[number].name:
            self.editor.rename_segment(number, name)
        else:
            self.refresh()

    def ask_colour(self, initial) -> tuple[int, int, int] | None:
        """The colour dialog (tests replace this)."""
        colour = QColorDialog.getColor(QColor(*initial), self.panel, "Segment colour")
        return (colour.red(), colour.green(), colour.blue()) if colour.isValid() else None

    def choose_colour(self, number: int) -> None:
        """Ask for a colour and recolour ("Recolour segment")."""
        if not self._has(number):
            return
        colour = self.ask_colour(self.editor.segmentation[number].color)
        if colour is not None:
            self.editor.recolor_segment(number, colour)

    def ask_rename(self, number: int) -> None:
        """Rename through a dialog (the list also renames on double-click)."""
        if not self._has(number):
            return
        name, ok = QInputDialog.getText(self.panel.window(), "Rename segment", "Name",
                                        text=self.editor.segmentation[number].name)
        if ok and name.strip():
            self.rename_segment(number, name.strip())

    def set_segment_visible(self, number: int, visible: bool) -> None:
        """Show or hide a segment (not an undo step)."""
        if self._has(number):
            self.editor.set_visible(number, visible)

    def set_segment_locked(self, number: int, locked: bool) -> None:
        """Lock or unlock ("Lock segment" / "Unlock segment")."""
        if self._has(number):
            self.editor.lock_segment(number, locked)

    def set_active(self, number) -> None:
        """Choose the segment the brush paints (None: none)."""
        if self.editor is not None and (number is None or self._has(number)):
            self.editor.set_active(number)

    # ---- tools on the active segment ------------------------------------------------------------------------
    def interpolate(self, axis: int | None = None) -> int:
        """Interpolate the active segment between its edited slices along ``axis`` (the active view's slice
        direction by default): one "Interpolate (name)" step."""
        editor = self.editor
        if editor is None or editor.segmentation.active is None:
            self._say("Choose a segment to interpolate")
            return 0
        axis = self.annotation._drawing_axis() if axis is None else axis
        try:
            n = editor.interpolate(axis)
        except (EditRefused, KeyError) as exc:
            self._say(f"Cannot interpolate: {exc}")
            return 0
        self._say(f"Interpolated {n} voxels" if n else
                  "Nothing to interpolate: paint two slices with a gap between them")
        return n

    def remove_small_islands(self, min_volume_mm3: float | None = None) -> int:
        """Remove pieces of the active segment below ``min_volume_mm3`` (the panel's value by default)."""
        editor = self.editor
        if editor is None or editor.segmentation.active is None:
            self._say("Choose a segment to clean")
            return 0
        volume = self.panel.island_volume.value() if min_volume_mm3 is None else float(min_volume_mm3)
        try:
            n = editor.remove_small_islands(volume)
        except (EditRefused, KeyError) as exc:
            self._say(f"Cannot remove islands: {exc}")
            return 0
        self._say(f"Removed {n} voxels in islands under {volume:g} mm³" if n else f"No islands under {volume:g} mm³")
        return n

    def accept_model_result(self) -> list:
        """Add the shown series' AI segmentation as AUTOMATIC segments (one undo step); the model overlay is
        hidden, its voxels now drawn (and editable) as the annotation."""
        lane = self.annotation.lane
        editor, layer = self.editor, lane.layer("segmentation")
        if editor is None or layer is None:
            self._say("No model segmentation on this series to accept")
            return []
        try:
            segments = editor.accept_model_result(layer.result, algorithm_name=layer.name)
        except EditRefused as exc:
            self._say(f"Cannot accept the model result: {exc}")
            return []
        layer.set_visible(False)
        lane._show_controls()
        self._say(f"Accepted {len(segments)} model segment{'s' if len(segments) != 1 else ''} "
                  "into the annotation (Ctrl+Z undoes)")
        return segments
