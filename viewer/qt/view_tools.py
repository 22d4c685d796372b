"""What a left, middle or right drag does in a slice view, as generators over typed pointer events.

Each drag tool follows :mod:`viewer.core.interaction`: called with the press, it runs up to its first ``yield``,
receives each later :class:`~viewer.core.interaction.PointerEvent` there, and stops after the release (the view's
:class:`~viewer.core.interaction.DragDriver` closes it). Brush and Eraser strokes are the tool handler's own
generator (the annotation controller's :meth:`paint`); measurement drawing is
:meth:`viewer.qt.view_measurements.ViewMeasurements.draw`.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor

from viewer.core.bindings import DEFAULT_MOUSE, DragOp, drag_operation
from viewer.core.interaction import Modifiers, PointerDrag, PointerEvent, PointerPhase, ToolHandler
from viewer.core.windowing import drag_window
from viewer.qt.tools import Tool

if TYPE_CHECKING:  # pragma: no cover
    from viewer.qt.canvas import SliceViewWidget

POLYGON_COLOUR = QColor(255, 220, 80, 230)
POLYGON_Z = 210
MEASURE_TOOLS = (Tool.LENGTH, Tool.ELLIPSE, Tool.RECTANGLE)
#: Screen pixels of vertical drag per slice when a drag scrolls (the PACS-like left drag).
SCROLL_PIXELS = 5.0
_OP_TOOLS = {DragOp.WINDOW: Tool.WINDOW, DragOp.PAN: Tool.PAN, DragOp.ZOOM: Tool.ZOOM, DragOp.CROSSHAIR: Tool.CROSSHAIR}


def drag_mode(press: PointerEvent, tool: Tool, mouse: dict[str, DragOp] = DEFAULT_MOUSE) -> Tool | DragOp | None:
    """What a drag starting with ``press`` does under the ``mouse`` bindings (:mod:`viewer.core.bindings`; by
    default middle or Shift + left pans, right or Ctrl + left zooms, a plain left drag uses the chosen ``tool``):
    a tool, :attr:`DragOp.SCROLL`, or None for nothing."""
    op = drag_operation(mouse, press.button, press.modifiers, default_tool=tool == Tool.WINDOW)
    if op is DragOp.TOOL:
        return tool
    return DragOp.SCROLL if op is DragOp.SCROLL else _OP_TOOLS.get(op)


def view_drag(view: SliceViewWidget, press: PointerEvent) -> PointerDrag | None:
    """The drag generator for ``press`` in ``view`` (None when the drag does nothing)."""
    mode = drag_mode(press, view.viewer.tool, view.viewer.bindings.mouse)
    alt = Modifiers.ALT in press.modifiers
    if mode is DragOp.SCROLL:
        return scroll_drag(view, press)
    if mode == Tool.WINDOW:
        return window_drag(view, press)
    if mode == Tool.PAN:
        return pan_drag(view, press)
    if mode == Tool.ZOOM:
        return zoom_drag(view, press)
    if mode == Tool.CROSSHAIR:
        return crosshair_drag(view, press)
    if mode in MEASURE_TOOLS:
        return view.measures.draw(mode.value, press)
    if mode in (Tool.BRUSH, Tool.ERASER):
        return paint_drag(view, press, erase=mode == Tool.ERASER or alt)
    if mode == Tool.POLYGON:
        return lasso_drag(view, press, erase=alt)
    return None


def window_drag(view: SliceViewWidget, press: PointerEvent) -> PointerDrag:
    """Window/level from the window at the press: horizontal = width, vertical = level."""
    start = view.state.window
    while True:
        event = yield
        dx, dy = event.pixel[0] - press.pixel[0], event.pixel[1] - press.pixel[1]
        view.state.set_window(drag_window(start, dx, dy), "custom")


def scroll_drag(view: SliceViewWidget, press: PointerEvent) -> PointerDrag:
    """Page through the slices: drag down = next images (as the Down key), one per :data:`SCROLL_PIXELS`."""
    done = 0
    while True:
        event = yield
        steps = int((event.pixel[1] - press.pixel[1]) / SCROLL_PIXELS)
        if steps != done:
            view.viewer.user_navigated = True
            view.state.step_display(view.plane, steps - done)
            done = steps


def pan_drag(view: SliceViewWidget, press: PointerEvent) -> PointerDrag:
    """Move the image with the pointer."""
    last = press
    while True:
        event = yield
        # both ends through today's mapping: the previous event's mm were measured before the last pan
        delta = view.scene_mm(QPointF(*event.pixel)) - view.scene_mm(QPointF(*last.pixel))
        view.view_box.translateBy(x=-delta.x(), y=-delta.y())
        last = event


def zoom_drag(view: SliceViewWidget, press: PointerEvent) -> PointerDrag:
    """Zoom around where the drag started: up = in."""
    anchor = QPointF(*press.scene_mm)
    last = press
    while True:
        event = yield
        view.zoom_by(math.exp(-(event.pixel[1] - last.pixel[1]) * 0.01), anchor)
        last = event


def crosshair_drag(view: SliceViewWidget, press: PointerEvent) -> PointerDrag:
    """The linked crosshair follows the pointer."""
    while True:
        event = yield
        view.move_crosshair(event)


def paint_drag(view: SliceViewWidget, press: PointerEvent, erase: bool) -> PointerDrag:
    """A Brush/Eraser stroke: the viewer's tool handler paints; the round cursor shows which of the two."""
    handler: ToolHandler | None = view.viewer.tool_handler
    if handler is None:
        return
    view.update_brush_cursor(QPointF(*press.scene_mm), erase)
    yield from handler.paint(press, erase)


def lasso_drag(view: SliceViewWidget, press: PointerEvent, erase: bool) -> PointerDrag:
    """A lasso: the drag's path, closed and filled on release."""
    view.polygon.add(press, view.k, erase)
    while True:
        event = yield
        view.polygon.add(event, view.k)
        if event.phase is PointerPhase.RELEASE:
            view.polygon.close(view.viewer.tool_handler)
            return


class PolygonDrawing:
    """The polygon or lasso being drawn on one view's slice: its outline item, and its vertices as the events
    that placed them (scene mm for the outline, array points for the fill)."""

    def __init__(self, view_box: pg.ViewBox) -> None:
        self.curve = pg.PlotCurveItem(pen=pg.mkPen(POLYGON_COLOUR, width=1.5, cosmetic=True))
        self.curve.setZValue(POLYGON_Z)
        self.curve.setVisible(False)
        view_box.addItem(self.curve, ignoreBounds=True)
        self._vertices: list[PointerEvent] = []
        self._erase = False
        self._k: int | None = None

    def add(self, event: PointerEvent, k: int | None, erase: bool | None = None) -> None:
        """Add a vertex on slice ``k``: the first one starts the polygon (``erase`` is decided then); one on
        another slice (it changed under the polygon) starts again there."""
        if self._vertices and self._k != k:
            self.cancel()
        if not self._vertices:
            self._erase, self._k = bool(erase), k
        elif self._vertices[-1].scene_mm == event.scene_mm:
            return
        self._vertices.append(event)
        xs = [v.scene_mm[0] for v in self._vertices]
        ys = [v.scene_mm[1] for v in self._vertices]
        self.curve.setData(xs + xs[:1], ys + ys[:1])
        self.curve.setVisible(True)

    def close(self, handler: ToolHandler | None) -> bool:
        """Fill the polygon drawn so far (3 vertices or more) through ``handler``; True when one was handed
        over. The drawing is cleared either way."""
        vertices, erase = self._vertices, self._erase
        self.cancel()
        if handler is None or len(vertices) < 3:
            return False
        handler.polygon(np.array([v.point for v in vertices]), vertices[0].array_axis, erase=erase)
        return True

    def cancel(self) -> None:
        """Forget the polygon (Esc, another tool)."""
        self._vertices = []
        self.curve.setVisible(False)
        self.curve.setData([], [])
