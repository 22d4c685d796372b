"""The measurement graphics of one slice view: the viewer's measurements on its plane, each shown on its own
slice, and the one being drawn by a drag.

Measurements keep voxel indices (:mod:`viewer.core.measure`); their graphics work in the view's scene mm, so
points go through the view's :class:`~viewer.core.reformat.PlaneGeometry` both ways.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from viewer.core.interaction import PointerDrag, PointerEvent, PointerPhase
from viewer.core.measure import Measurement
from viewer.qt.measure_items import MeasurementGraphic

if TYPE_CHECKING:  # pragma: no cover
    from viewer.qt.canvas import SliceViewWidget

MIN_DRAG_PX = 3  # a shorter drag is a click: no measurement


class ViewMeasurements:
    """Keeps a view's :class:`MeasurementGraphic` s in step with the viewer's measurement list."""

    def __init__(self, view: SliceViewWidget) -> None:
        self.view = view
        #: Measurement id -> its graphic in this view.
        self.graphics: dict[int, MeasurementGraphic] = {}
        # The labels are scene items anchored at a shape's end point, so they move with pan and zoom by themselves;
        # which side of the shape they sit on depends on the visible range, so that is chosen again when it changes.
        view.view_box.sigRangeChanged.connect(self.place_labels)

    def place_labels(self, *_) -> None:
        """Put the visible labels on the side of their shape that is on screen."""
        for graphic in self.graphics.values():
            if graphic.label.isVisible():
                graphic.place_label()

    def _scene_points(self, m: Measurement) -> list[tuple[float, float]]:
        return [self.view.geometry_.scene_from_index(p)[1:] for p in m.points]

    def _show_items(self, graphic: MeasurementGraphic) -> None:
        for item in graphic.items:
            self.view.view_box.addItem(item, ignoreBounds=True)

    def _hide_items(self, graphic: MeasurementGraphic) -> None:
        for item in graphic.items:
            self.view.view_box.removeItem(item)

    def clear(self) -> None:
        """Drop every graphic (the view shows another volume)."""
        for measurement_id in list(self.graphics):
            self._remove(measurement_id)

    def sync(self) -> None:
        """Make the graphics match the viewer's measurement list for this plane (points, text, selection)."""
        view = self.view
        if view.state is None or view.geometry_ is None:
            return
        viewer = view.viewer
        wanted = {m.id: m for m in viewer.measurements if m.plane == view.plane.value and view.shows_viewer_volume}
        for measurement_id in [i for i in self.graphics if i not in wanted]:
            self._remove(measurement_id)
        for measurement_id, m in wanted.items():
            graphic = self.graphics.get(measurement_id) or self._add(m)
            graphic.set_scene_points(self._scene_points(m))
            graphic.set_text(m.summary(viewer.value_unit(), multiline=True))
            graphic.set_selected(measurement_id == viewer.selected_measurement_id)
        self.update_visibility()

    def update_visibility(self) -> None:
        """Show each graphic only on its own slice."""
        for graphic in self.graphics.values():
            graphic.set_visible(graphic.measurement.slice_index == self.view.k)

    def _add(self, m: Measurement) -> MeasurementGraphic:
        viewer = self.view.viewer
        graphic = MeasurementGraphic(m, self._scene_points(m))
        graphic.set_text(m.summary(viewer.value_unit(), multiline=True))
        graphic.edited.connect(self._on_edited)
        graphic.clicked.connect(viewer.select_measurement)
        graphic.remove_requested.connect(viewer.remove_measurement)
        self._show_items(graphic)
        self.graphics[m.id] = graphic
        return graphic

    def _remove(self, measurement_id: int) -> None:
        graphic = self.graphics.pop(measurement_id, None)
        if graphic is not None:
            self._hide_items(graphic)
            graphic.deleteLater()

    def _on_edited(self, measurement_id: int) -> None:
        graphic = self.graphics.get(measurement_id)
        geometry = self.view.geometry_
        if graphic is None or geometry is None:
            return
        m = graphic.measurement
        m.points = [tuple(float(v) for v in geometry.index_from_scene(m.slice_index, x, y))
                    for x, y in graphic.scene_points()]
        self.view.viewer.measurement_edited(m)

    def draw(self, kind: str, press: PointerEvent) -> PointerDrag:
        """Drag out a new ``kind`` measurement (length, ellipse, rectangle) from ``press``: its numbers follow the
        pointer; on release it joins the viewer's list unless the drag was a click."""
        view, viewer = self.view, self.view.viewer
        start = tuple(float(v) for v in press.point[::-1])  # measurements keep (x, y, z) indices
        m = Measurement(kind, view.plane.value, view.k, [start, start])
        graphic = MeasurementGraphic(m, [press.scene_mm] * 2)
        self._show_items(graphic)
        try:
            while True:
                event = yield
                graphic.set_scene_points([press.scene_mm, event.scene_mm])
                m.points = [start, tuple(float(v) for v in event.point[::-1])]
                viewer.evaluate(m)
                graphic.set_text(m.summary(viewer.value_unit(), multiline=True))
                if event.phase is PointerPhase.RELEASE:
                    break
        finally:  # the drawing graphic goes; a kept measurement gets its own graphic from the viewer's list
            self._hide_items(graphic)
        if abs(event.pixel[0] - press.pixel[0]) + abs(event.pixel[1] - press.pixel[1]) >= MIN_DRAG_PX:
            viewer.add_measurement(m)
