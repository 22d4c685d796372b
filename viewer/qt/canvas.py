"""One slice view: a pyqtgraph canvas showing one plane of the current volume, with all its interaction.

Scene units are millimetres of the displayed image (see :mod:`viewer.core.reformat`), so the physical aspect is
right for any pixel spacing, and measurements, crosshair and overlay layers are all placed in mm. The grey image
is windowed with a cached look-up table (one ``np.take`` per slice), drawn by a plain ``ImageItem``; overlay
text, orientation letters and the scale bar are painted in device pixels in ``drawForeground`` so they cost no
scene items and stay crisp at any zoom.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsEllipseItem, QSizePolicy

from viewer.core.measure import Measurement
from viewer.core.reformat import Plane, PlaneGeometry
from viewer.core.windowing import drag_window
from viewer.qt.measure_items import MeasurementGraphic
from viewer.qt.text_layout import (
    MARGIN, TextBox, place_corner_lines, place_letters, place_scale_bar, wrap_words,
)
from viewer.qt.theme import PLANE_COLOURS, VIEW_BACKGROUND
from viewer.qt.tools import PAINT_TOOLS, Tool

if TYPE_CHECKING:  # pragma: no cover
    from viewer.qt.viewer_widget import ViewerWidget

SERIES_MIME = "application/x-hounsfield-series"
CROSSHAIR_Z = 200
BRUSH_CURSOR_Z = 210
BRUSH_COLOUR = QColor(255, 255, 255, 200)
ERASER_COLOUR = QColor(255, 120, 120, 220)
POLYGON_COLOUR = QColor(255, 220, 80, 230)
BRUSH_WHEEL_STEP = 1.25  # Ctrl + one wheel notch scales the brush by this (as [ and ])
STILL_DELAY_MS = 150
TEXT_COLOUR = QColor(230, 230, 230)
SHADOW_COLOUR = QColor(0, 0, 0, 230)
LETTER_COLOUR = QColor(255, 196, 92)
NOTICE_COLOUR = QColor(255, 140, 120)
WHEEL_STEP = 120  # angle delta of one wheel notch


class SmoothImageItem(pg.ImageItem):
    """ImageItem drawn with bilinear filtering (as OHIF and Horos do by default).

    While the image changes quickly (scrolling, cine, window drags) frames are drawn nearest-neighbour, which
    costs about half as much; :data:`STILL_DELAY_MS` after the last change the still image is redrawn smooth
    (the "interactive / still quality" of VTK and most workstations).
    """

    smooth = True
    interactive = False

    def paint(self, painter, *args):
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth and not self.interactive)
        super().paint(painter, *args)


class SliceViewBox(pg.ViewBox):
    """A ViewBox whose mouse handling is the view's (pyqtgraph's own pan/zoom/menu are off)."""

    def __init__(self, view: "SliceViewWidget") -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False, defaultPadding=0.0)
        self.setMouseEnabled(False, False)
        self._view = view

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 - pyqtgraph hook
        self._view.handle_drag(ev)

    def mouseClickEvent(self, ev):  # noqa: N802
        self._view.handle_click(ev)

    def wheelEvent(self, ev, axis=None):  # noqa: N802
        self._view.handle_wheel(ev)


class SliceViewWidget(pg.GraphicsView):
    """Shows slice after slice of one plane of the viewer's volume.

    Signals
    -------
    cursor_moved(object)
        Voxel index ``(x, y, z)`` under the mouse, or None when it left the image.
    """

    cursor_moved = Signal(object)

    def __init__(self, plane: Plane | str, viewer: "ViewerWidget") -> None:
        super().__init__(background=VIEW_BACKGROUND)
        self.plane = Plane(plane)
        self.viewer = viewer
        self.setObjectName(f"view-{self.plane.value}")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(120, 120)
        self.view_box = SliceViewBox(self)
        self.setCentralItem(self.view_box)
        self.image_item = SmoothImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image_item)
        self.v_line = pg.InfiniteLine(angle=90, movable=False)
        self.h_line = pg.InfiniteLine(angle=0, movable=False)
        for line in (self.v_line, self.h_line):
            line.setZValue(CROSSHAIR_Z)
            line.setVisible(False)
            self.view_box.addItem(line, ignoreBounds=True)
        self.brush_cursor = QGraphicsEllipseItem()
        pen = QPen(BRUSH_COLOUR, 1.2)
        pen.setCosmetic(True)
        self.brush_cursor.setPen(pen)
        self.brush_cursor.setZValue(BRUSH_CURSOR_Z)
        self.brush_cursor.setVisible(False)
        self.view_box.addItem(self.brush_cursor, ignoreBounds=True)
        self._brush_centre: QPointF | None = None
        self.polygon_curve = pg.PlotCurveItem(pen=pg.mkPen(POLYGON_COLOUR, width=1.5, cosmetic=True))
        self.polygon_curve.setZValue(BRUSH_CURSOR_Z)
        self.polygon_curve.setVisible(False)
        self.view_box.addItem(self.polygon_curve, ignoreBounds=True)
        self._polygon: dict | None = None  # {"scene": [(x, y)...], "zyx": [array...], "erase": bool}
        self.graphics: dict[int, MeasurementGraphic] = {}
        self.geometry_: PlaneGeometry | None = None
        self.k: int | None = None
        self._dirty = True
        self._drag: dict | None = None
        self._wheel_rest = 0.0
        self._rect_key = None
        self._labels: dict[str, str] = {}
        self._pixmaps: OrderedDict[tuple, QPixmap] = OrderedDict()
        self._font = QFont()
        self._font.setPixelSize(12)
        self._letter_font = QFont()
        self._letter_font.setPixelSize(15)
        self._letter_font.setBold(True)
        letter_metrics = QFontMetrics(self._letter_font)
        # orientation letters are placed by the ink of a capital (and its shadow); the pixmap starts above it
        self._letter_h = letter_metrics.capHeight() + 2
        self._letter_ink_top = letter_metrics.ascent() - letter_metrics.capHeight()
        self._line_height = QFontMetrics(self._font).height() + 1  # as tall as a rendered line (shadow included)
        self._layout_key = None
        self._layout: list[TextBox] = []
        self._widths: dict[tuple[str, int], float] = {}
        self._still = QTimer(self)
        self._still.setSingleShot(True)
        self._still.setInterval(STILL_DELAY_MS)
        self._still.timeout.connect(self.draw_still)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.view_box.sigRangeChanged.connect(self._on_range_changed)

    # ------------------------------------------------------------------------------------------------------------
    # state
    # ------------------------------------------------------------------------------------------------------------
    @property
    def state(self):
        """The viewer's :class:`~viewer.core.display.DisplayState` (None before a volume is shown)."""
        return self.viewer.state

    def attach(self) -> None:
        """(Re)bind to the viewer's current state: geometry, image, crosshair, measurements, fit."""
        for graphic in list(self.graphics.values()):
            self._remove_graphic(graphic.measurement.id)
        state = self.state
        self.k = None
        self._rect_key = None
        if state is None:
            self.geometry_ = None
            self.image_item.clear()
            self.v_line.setVisible(False)
            self.h_line.setVisible(False)
            self.viewport().update()
            return
        self.geometry_ = state.geometry(self.plane)
        # no patient geometry (a US or secondary capture on a nominal grid): no letters to claim
        self._labels = self.geometry_.orientation_labels() if self.viewer.has_orientation() else {}
        colours = {}
        for other in Plane:
            colours[state.geometry(other).through_axis] = PLANE_COLOURS[other.value]
        for line, axis in ((self.v_line, self.geometry_.col_axis), (self.h_line, self.geometry_.row_axis)):
            colour = QColor(colours[axis])
            colour.setAlpha(190)
            line.setPen(pg.mkPen(colour, width=1))
        self._dirty = True
        self.refresh(force=True)
        self.fit()

    def refresh(self, force: bool = False) -> None:
        """Bring the view up to date with the state (cheap when only the crosshair moved)."""
        state = self.state
        if state is None or self.geometry_ is None:
            return
        if not self.isVisible() and not force:
            self._dirty = True
            return
        k = state.slice_index(self.plane)
        if force or self._dirty or k != self.k:
            slice_changed = k != self.k
            self.k = k
            self.refresh_image()
            if slice_changed or force or self._dirty:
                for layer in self.viewer.layers:
                    layer.refresh(self, self.geometry_, k)
                self._update_measurement_visibility()
            self._dirty = False
        self.update_crosshair()
        self.viewport().update()

    def refresh_image(self) -> None:
        """Re-window the current slice into the image item (after a window change or as loading fills it)."""
        state, geometry = self.state, self.geometry_
        if state is None or geometry is None or self.k is None:
            return
        image = geometry.take(state.volume.array, self.k)
        if self.image_item.smooth and self.image_item.image is not None:
            self.image_item.interactive = True
            self._still.start()
        self.image_item.setImage(self.viewer.display_image(image), autoLevels=False, levels=None)
        width, height = geometry.scene_size
        key = (image.shape[:2], width, height)
        if key != self._rect_key:
            self.image_item.setRect(QRectF(0, 0, width, height))
            self._rect_key = key

    def draw_still(self) -> None:
        """Redraw in still quality now (smooth, when enabled) instead of after the short delay."""
        self._still.stop()
        if self.image_item.interactive:
            self.image_item.interactive = False
            self.image_item.update()

    def showEvent(self, event):  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._dirty and self.state is not None:
            self.refresh(force=True)

    # ------------------------------------------------------------------------------------------------------------
    # crosshair, fit, zoom
    # ------------------------------------------------------------------------------------------------------------
    def crosshair_scene(self) -> tuple[float, float] | None:
        """Where the crosshair lines cross, in scene mm (None without a volume)."""
        if self.state is None or self.geometry_ is None:
            return None
        _, sx, sy = self.geometry_.scene_from_index(self.state.position)
        return sx, sy

    def crosshair_lps(self) -> np.ndarray | None:
        """The LPS point this view's crosshair and slice show: its own slice and its own line positions."""
        if self.state is None or self.geometry_ is None or self.k is None:
            return None
        index = self.geometry_.index_from_scene(self.k, self.v_line.value(), self.h_line.value())
        return self.geometry_.lps_from_index(index)

    def update_crosshair(self) -> None:
        """Move the crosshair lines to the linked point."""
        point = self.crosshair_scene()
        show = point is not None and self.viewer.crosshair_visible
        self.v_line.setVisible(show)
        self.h_line.setVisible(show)
        if point is not None:
            self.v_line.setValue(point[0])
            self.h_line.setValue(point[1])

    def fit(self) -> None:
        """Fit the whole image into the view."""
        if self.geometry_ is None:
            return
        width, height = self.geometry_.scene_size
        self.view_box.setRange(QRectF(0, 0, width, height), padding=0.02)

    def centre_on(self, xyz) -> None:
        """Pan (keeping the zoom) so that voxel index ``xyz`` is in the middle of the view."""
        if self.geometry_ is None:
            return
        _, sx, sy = self.geometry_.scene_from_index(xyz)
        centre = self.view_box.viewRect().center()
        self.view_box.translateBy(x=sx - centre.x(), y=sy - centre.y())

    def zoom_by(self, factor: float, center: QPointF | None = None) -> None:
        """Zoom in (factor > 1) or out around ``center`` (scene mm; the view centre by default)."""
        s = 1.0 / factor
        self.view_box.scaleBy((s, s), center=center)

    def zoom(self) -> float:
        """Screen pixels per image pixel; 1.0 shows one pixel of the finest in-plane spacing per screen pixel
        (reformats with long pixels, e.g. 0.7 x 2.5 mm, are measured along their short side)."""
        if self.geometry_ is None:
            return 1.0
        px = self.view_box.viewPixelSize()[0]
        return min(self.geometry_.pixel_spacing) / px if px > 0 else 1.0

    def _on_range_changed(self, *_):
        if self.state is not None:
            self.state.set_zoom(self.plane, self.zoom())
        self.viewport().update()

    # ------------------------------------------------------------------------------------------------------------
    # mapping helpers
    # ------------------------------------------------------------------------------------------------------------
    def scene_mm(self, view_box_pos) -> QPointF:
        """Scene mm of a position in view-box coordinates (what pyqtgraph mouse events give)."""
        return self.view_box.mapToView(view_box_pos)

    def index_at(self, scene_mm: QPointF) -> np.ndarray | None:
        """Voxel index ``(x, y, z)`` at a scene point on the current slice."""
        if self.geometry_ is None or self.k is None:
            return None
        return self.geometry_.index_from_scene(self.k, scene_mm.x(), scene_mm.y())

    def inside(self, index) -> bool:
        """True when a voxel index lies within the volume (voxel extents included)."""
        z, y, x = self.state.volume.shape
        return bool(np.all(np.asarray(index) >= -0.5) and np.all(np.asarray(index) < np.array([x, y, z]) - 0.5))

    def view_pos_of_scene(self, sx: float, sy: float) -> QPointF:
        """Widget pixel position of a scene mm point (for tests and tools)."""
        scene_pos = self.view_box.mapViewToScene(QPointF(sx, sy))
        return self.mapFromScene(scene_pos)

    # ------------------------------------------------------------------------------------------------------------
    # mouse
    # ------------------------------------------------------------------------------------------------------------
    def update_brush_cursor(self, centre: QPointF | None = None, erase: bool | None = None) -> None:
        """The round brush outline at ``centre`` (scene mm; the last mouse position by default), its radius the
        brush's in mm; shown only with a paint tool."""
        if centre is not None:
            self._brush_centre = centre
        viewer = self.viewer
        show = viewer.painting and self.state is not None and self._brush_centre is not None
        self.brush_cursor.setVisible(show)
        if not show:
            return
        r = viewer.brush_radius_mm
        c = self._brush_centre
        self.brush_cursor.setRect(QRectF(c.x() - r, c.y() - r, 2 * r, 2 * r))
        if erase is None:
            erase = viewer.tool == Tool.ERASER
        pen = self.brush_cursor.pen()
        pen.setColor(ERASER_COLOUR if erase else BRUSH_COLOUR)
        self.brush_cursor.setPen(pen)

    def paint_point(self, scene_mm: QPointF) -> np.ndarray | None:
        """Continuous ``(z, y, x)`` array index of a scene point on this view's slice (what the editing tools take)."""
        index = self.index_at(scene_mm)
        return None if index is None else np.asarray(index, dtype=float)[::-1]

    def _on_mouse_moved(self, scene_pos):
        if self.state is None or self.geometry_ is None:
            return
        point = self.view_box.mapSceneToView(scene_pos)
        if self.viewer.painting:
            self.update_brush_cursor(point)
        index = self.index_at(point)
        self.cursor_moved.emit(index if index is not None and self.inside(index) else None)

    def _drag_mode(self, ev) -> str:
        button, mods = ev.button(), ev.modifiers()
        if button == Qt.MouseButton.MiddleButton:
            return "pan"
        if button == Qt.MouseButton.RightButton:
            return "zoom"
        if button != Qt.MouseButton.LeftButton:
            return "none"
        if mods & Qt.KeyboardModifier.ShiftModifier:
            return "pan"
        if mods & Qt.KeyboardModifier.ControlModifier:
            return "zoom"
        return self.viewer.tool.value

    def handle_drag(self, ev) -> None:
        """Mouse drag in the view: dispatch on button and tool (see :mod:`viewer.qt.tools`)."""
        ev.accept()
        if self.state is None:
            return
        if ev.isStart():
            self.viewer.set_active_view(self)
            self.setFocus(Qt.FocusReason.MouseFocusReason)
            mode = self._drag_mode(ev)
            self._drag = {"mode": mode, "window": self.state.window,
                          "anchor": self.scene_mm(ev.buttonDownPos())}
            if mode in (Tool.LENGTH.value, Tool.ELLIPSE.value, Tool.RECTANGLE.value):
                self._start_drawing(mode, self._drag["anchor"])
            elif mode in (Tool.BRUSH.value, Tool.ERASER.value):
                erase = mode == Tool.ERASER.value or bool(ev.modifiers() & Qt.KeyboardModifier.AltModifier)
                self._drag["painting"] = self._begin_paint(self._drag["anchor"], erase)
            elif mode == Tool.POLYGON.value:
                erase = bool(ev.modifiers() & Qt.KeyboardModifier.AltModifier)
                self.add_polygon_point(self._drag["anchor"], erase)
        drag = self._drag
        if drag is None:
            return
        mode = drag["mode"]
        if mode == Tool.WINDOW.value:
            delta = ev.screenPos() - ev.buttonDownScreenPos()
            self.state.set_window(drag_window(drag["window"], delta.x(), delta.y()), "custom")
        elif mode == "pan" or mode == Tool.PAN.value:
            delta = self.scene_mm(ev.pos()) - self.scene_mm(ev.lastPos())
            self.view_box.translateBy(x=-delta.x(), y=-delta.y())
        elif mode == "zoom" or mode == Tool.ZOOM.value:
            dy = ev.screenPos().y() - ev.lastScreenPos().y()
            self.zoom_by(math.exp(-dy * 0.01), drag["anchor"])
        elif mode == Tool.CROSSHAIR.value:
            self._move_crosshair(self.scene_mm(ev.pos()))
        elif mode in (Tool.LENGTH.value, Tool.ELLIPSE.value, Tool.RECTANGLE.value):
            self._continue_drawing(self.scene_mm(ev.pos()), finish=ev.isFinish())
        elif mode in (Tool.BRUSH.value, Tool.ERASER.value) and drag.get("painting"):
            point = self.scene_mm(ev.pos())
            self.update_brush_cursor(point)
            zyx = self.paint_point(point)
            if zyx is not None:
                self.viewer.paint_handler.paint_to(self, zyx)
            if ev.isFinish():
                self.viewer.paint_handler.end(self)
        elif mode == Tool.POLYGON.value:  # a lasso: the drag's path, closed on release
            self.add_polygon_point(self.scene_mm(ev.pos()))
            if ev.isFinish():
                self.close_polygon()
        if ev.isFinish():
            self._drag = None

    def _begin_paint(self, point: QPointF, erase: bool) -> bool:
        """Press of a paint stroke: returns False when there is nothing to paint into (the handler says why)."""
        handler = self.viewer.paint_handler
        zyx = self.paint_point(point)
        if handler is None or zyx is None:
            return False
        self.update_brush_cursor(point, erase)
        return bool(handler.begin(self, zyx, erase))

    def handle_click(self, ev) -> None:
        """Mouse click: select the view, move the crosshair, add a probe, maximise, or show the menu."""
        ev.accept()
        self.viewer.set_active_view(self)
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if self.state is None:
            if ev.button() == Qt.MouseButton.LeftButton and self.notice_text():
                self.viewer.notice_clicked.emit()  # "No DICOM images found": show which files and why
            return
        if ev.button() == Qt.MouseButton.LeftButton and ev.double():
            if self.viewer.tool == Tool.POLYGON:  # closes the polygon instead of maximising
                self.close_polygon()
                return
            self.viewer.toggle_maximized(self)
            return
        if ev.button() == Qt.MouseButton.RightButton:
            menu = self.viewer.context_menu()
            menu.popup(ev.screenPos().toPoint())
            return
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        point = self.scene_mm(ev.pos())
        tool = self.viewer.tool
        if tool in PAINT_TOOLS:  # a click paints one dab
            erase = tool == Tool.ERASER or bool(ev.modifiers() & Qt.KeyboardModifier.AltModifier)
            if self._begin_paint(point, erase):
                self.viewer.paint_handler.end(self)
        elif tool in (Tool.FILL, Tool.FILL_3D):
            erase = bool(ev.modifiers() & Qt.KeyboardModifier.AltModifier)
            zyx = self.paint_point(point)
            handler = self.viewer.paint_handler
            if zyx is not None and handler is not None:
                handler.fill(self, zyx, erase=erase, three_d=tool == Tool.FILL_3D)
        elif tool == Tool.POLYGON:
            self.add_polygon_point(point, bool(ev.modifiers() & Qt.KeyboardModifier.AltModifier))
        elif tool == Tool.CROSSHAIR:
            self._move_crosshair(point)
        elif tool == Tool.PROBE:
            index = self.index_at(point)
            if index is not None and self.inside(index):
                m = Measurement("probe", self.plane.value, self.k, [tuple(float(v) for v in index)])
                self.viewer.add_measurement(m)
        else:
            self.viewer.select_measurement(None)

    def handle_wheel(self, ev) -> None:
        """Wheel scrolls slices (one notch, one slice); Ctrl + wheel zooms at the cursor."""
        ev.accept()
        if self.state is None:
            return
        self.viewer.set_active_view(self)
        delta = ev.delta()
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            if self.viewer.painting:  # Ctrl + wheel sizes the brush while the Brush or Eraser is chosen
                self.viewer.set_brush_radius(self.viewer.brush_radius_mm * BRUSH_WHEEL_STEP ** (delta / WHEEL_STEP))
                return
            self.zoom_by(1.0015 ** delta, self.scene_mm(ev.pos()))
            return
        self._wheel_rest += delta
        steps = int(self._wheel_rest / WHEEL_STEP)
        if steps:
            self._wheel_rest -= steps * WHEEL_STEP
            # wheel-down (negative delta) = Down key: the next image in display order (towards the feet)
            self.viewer.user_navigated = True
            self.state.step_display(self.plane, -steps)

    # ---- polygon / lasso ----------------------------------------------------------------------------------------
    def add_polygon_point(self, point: QPointF, erase: bool | None = None) -> None:
        """Add a vertex (scene mm) to the polygon being drawn on this slice (the first one starts it)."""
        zyx = self.paint_point(point)
        if zyx is None:
            return
        if self._polygon is None:
            self._polygon = {"scene": [], "zyx": [], "erase": bool(erase), "k": self.k}
        elif self._polygon["k"] != self.k:  # the slice changed under it: start again here
            self.cancel_polygon()
            self._polygon = {"scene": [], "zyx": [], "erase": bool(erase), "k": self.k}
        polygon = self._polygon
        if polygon["scene"] and polygon["scene"][-1] == (point.x(), point.y()):
            return
        polygon["scene"].append((point.x(), point.y()))
        polygon["zyx"].append(zyx)
        xs = [p[0] for p in polygon["scene"]]
        ys = [p[1] for p in polygon["scene"]]
        self.polygon_curve.setData(xs + xs[:1], ys + ys[:1])
        self.polygon_curve.setVisible(True)

    def close_polygon(self) -> bool:
        """Fill the polygon drawn so far (3 vertices or more) into the active segment; returns True when one was
        handed to the paint handler."""
        polygon, self._polygon = self._polygon, None
        self.polygon_curve.setVisible(False)
        self.polygon_curve.setData([], [])
        handler = self.viewer.paint_handler
        if polygon is None or handler is None or len(polygon["zyx"]) < 3:
            return False
        handler.polygon(self, np.array(polygon["zyx"]), erase=polygon["erase"])
        return True

    def cancel_polygon(self) -> None:
        """Forget the polygon being drawn (Esc, another tool)."""
        self._polygon = None
        self.polygon_curve.setVisible(False)
        self.polygon_curve.setData([], [])

    def _move_crosshair(self, point: QPointF) -> None:
        index = self.index_at(point)
        if index is not None:
            self.viewer.user_navigated = True
            self.state.set_position(index)

    # ------------------------------------------------------------------------------------------------------------
    # measurements
    # ------------------------------------------------------------------------------------------------------------
    def _start_drawing(self, kind: str, anchor: QPointF) -> None:
        index = tuple(float(v) for v in self.index_at(anchor))
        m = Measurement(kind, self.plane.value, self.k, [index, index])
        graphic = MeasurementGraphic(m, [(anchor.x(), anchor.y())] * 2)
        for item in graphic.items:
            self.view_box.addItem(item, ignoreBounds=True)
        self._drag["graphic"] = graphic

    def _continue_drawing(self, point: QPointF, finish: bool) -> None:
        graphic: MeasurementGraphic = self._drag.get("graphic")
        if graphic is None:
            return
        anchor = self._drag["anchor"]
        graphic.set_scene_points([(anchor.x(), anchor.y()), (point.x(), point.y())])
        m = graphic.measurement
        m.points = [tuple(float(v) for v in self.index_at(anchor)), tuple(float(v) for v in self.index_at(point))]
        self.viewer.evaluate(m)
        graphic.set_text(m.summary(self.viewer.value_unit(), multiline=True))
        if finish:
            start = self.view_box.mapViewToDevice(anchor)
            end = self.view_box.mapViewToDevice(point)
            for item in graphic.items:
                self.view_box.removeItem(item)
            if (end - start).manhattanLength() >= 3:
                self.viewer.add_measurement(m)

    def _add_graphic(self, m: Measurement) -> MeasurementGraphic:
        points = [self.geometry_.scene_from_index(p)[1:] for p in m.points]
        graphic = MeasurementGraphic(m, points)
        graphic.set_text(m.summary(self.viewer.value_unit(), multiline=True))
        graphic.edited.connect(self._on_graphic_edited)
        graphic.clicked.connect(self.viewer.select_measurement)
        graphic.remove_requested.connect(self.viewer.remove_measurement)
        for item in graphic.items:
            self.view_box.addItem(item, ignoreBounds=True)
        self.graphics[m.id] = graphic
        return graphic

    def _remove_graphic(self, measurement_id: int) -> None:
        graphic = self.graphics.pop(measurement_id, None)
        if graphic is not None:
            for item in graphic.items:
                self.view_box.removeItem(item)
            graphic.deleteLater()

    def sync_measurements(self) -> None:
        """Make the graphics match the viewer's measurement list for this plane."""
        if self.state is None or self.geometry_ is None:
            return
        wanted = {m.id: m for m in self.viewer.measurements if m.plane == self.plane.value}
        for mid in [mid for mid in self.graphics if mid not in wanted]:
            self._remove_graphic(mid)
        for mid, m in wanted.items():
            graphic = self.graphics.get(mid) or self._add_graphic(m)
            graphic.set_scene_points([self.geometry_.scene_from_index(p)[1:] for p in m.points])
            graphic.set_text(m.summary(self.viewer.value_unit(), multiline=True))
            graphic.set_selected(mid == self.viewer.selected_measurement_id)
        self._update_measurement_visibility()

    def _update_measurement_visibility(self) -> None:
        for graphic in self.graphics.values():
            graphic.set_visible(graphic.measurement.slice_index == self.k)

    def _on_graphic_edited(self, measurement_id: int) -> None:
        graphic = self.graphics.get(measurement_id)
        if graphic is None or self.geometry_ is None:
            return
        m = graphic.measurement
        m.points = [tuple(float(v) for v in self.geometry_.index_from_scene(m.slice_index, x, y))
                    for x, y in graphic.scene_points()]
        self.viewer.measurement_edited(m)

    # ------------------------------------------------------------------------------------------------------------
    # drag and drop of series / files
    # ------------------------------------------------------------------------------------------------------------
    def dragEnterEvent(self, event):  # noqa: N802 - Qt override
        mime = event.mimeData()
        if mime.hasFormat(SERIES_MIME) or mime.hasUrls():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event):  # noqa: N802
        self.dragEnterEvent(event)

    def dropEvent(self, event):  # noqa: N802
        mime = event.mimeData()
        if mime.hasFormat(SERIES_MIME):
            key = bytes(mime.data(SERIES_MIME)).decode("utf-8")
            event.acceptProposedAction()
            self.viewer.series_dropped.emit(key)
        elif mime.hasUrls():
            paths = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
            event.acceptProposedAction()
            if paths:
                self.viewer.files_dropped.emit(paths)
        else:
            event.ignore()

    # ------------------------------------------------------------------------------------------------------------
    # overlay painting (device pixels)
    # ------------------------------------------------------------------------------------------------------------
    def _text(self, text: str, font: QFont, colour: QColor | None = None) -> QPixmap:
        """The text with its shadow, rendered once into a cached pixmap (drawing it is then one blit)."""
        colour = colour or TEXT_COLOUR
        ratio = self.devicePixelRatioF()
        key = (text, id(font), colour.rgba(), ratio)
        pixmap = self._pixmaps.get(key)
        if pixmap is not None:
            self._pixmaps.move_to_end(key)
            return pixmap
        metrics = QFontMetrics(font)
        w, h = metrics.horizontalAdvance(text) + 2, metrics.height() + 1
        pixmap = QPixmap(max(1, int(w * ratio)), max(1, int(h * ratio)))
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        painter.setFont(font)
        painter.setPen(SHADOW_COLOUR)
        painter.drawText(QPointF(1, 1 + metrics.ascent()), text)
        painter.setPen(colour)
        painter.drawText(QPointF(0, metrics.ascent()), text)
        painter.end()
        self._pixmaps[key] = pixmap
        if len(self._pixmaps) > 1024:
            self._pixmaps.popitem(last=False)
        return pixmap

    def _measure(self, text: str, font: QFont | None = None) -> float:
        """Width in device pixels of ``text`` as :meth:`_text` renders it (shadow included); remembered, since
        the layout asks for the same few dozen texts on every frame."""
        font = font or self._font
        key = (text, id(font))
        width = self._widths.get(key)
        if width is None:
            if len(self._widths) > 4096:
                self._widths.clear()
            width = self._widths[key] = QFontMetrics(font).horizontalAdvance(text) + 2
        return width

    def _elide(self, text: str, width: float) -> str:
        return QFontMetrics(self._font).elidedText(text, Qt.TextElideMode.ElideRight, max(0, int(width) - 2))

    def scale_bar_options(self, width: int) -> list[tuple[float, str]]:
        """``(length_px, label)`` of the scale bars worth drawing, preferred first: a round length near a fifth
        of the view, then shorter round lengths (the layout takes the first that fits). Empty when the view has
        no usable scale."""
        calibration = self.viewer.calibration()
        if calibration is not None and not calibration.scale_bar_mm:
            return []  # the scene is a nominal pixel grid (US regions, detector or no spacing): a mm bar would lie
        mm_per_px = self.view_box.viewPixelSize()[0]
        if not mm_per_px or mm_per_px <= 0 or not math.isfinite(mm_per_px):
            return []
        target_mm = mm_per_px * width * 0.2
        exponent = math.floor(math.log10(target_mm)) if target_mm > 0 else 0
        nice = [c * 10 ** e for e in (exponent - 1, exponent) for c in (1, 2, 5)] + [10 ** (exponent + 1)]
        best = min(nice, key=lambda v: abs(v - target_mm))
        options = []
        for length_mm in sorted((v for v in nice if v <= best), reverse=True):
            length_px = length_mm / mm_per_px
            if 20 <= length_px <= width * 0.6:
                options.append((length_px, f"{length_mm:g} mm" if length_mm < 10 else f"{length_mm / 10:g} cm"))
        return options

    def notice_text(self) -> str:
        """A short sentence painted in the middle of the view when what it shows is not an image: the viewer's
        message without a volume, or a slice that could not be decoded."""
        state = self.state
        if state is None:
            return getattr(self.viewer, "empty_text", "") or ""
        failed = getattr(state.volume, "failed_slices", None) or ()
        if self.geometry_ is not None and self.geometry_.through_axis == 2 and self.k in failed:
            return "This slice could not be decoded (left blank)"
        volume = state.volume
        if (self.geometry_ is not None and self.geometry_.through_axis == 2 and self.k is not None
                and volume.slices_loaded > 0 and not volume.is_slice_loaded(self.k)):
            return "Loading this image…"
        return ""

    def overlay_texts(self) -> list[TextBox]:
        """Every text painted over the image (orientation letters, corner texts, scale bar, notice) with its place
        in device pixels, laid out by priority so that none covers another (see :mod:`viewer.qt.text_layout`).
        Finding labels are placed by their layer around these."""
        width, height = self.viewport().width(), self.viewport().height()
        notice = self.notice_text()
        if self.state is None or self.geometry_ is None or self.k is None:
            corners, letters, bars = {}, {}, []
        else:
            corners = self.viewer.overlay_lines(self)
            letters = dict(self._labels)
            bars = self.scale_bar_options(width)
        key = (width, height, notice, tuple((c, tuple(v)) for c, v in corners.items()),
               tuple(letters.items()), tuple(bars))
        if self._layout_key == key:
            return self._layout
        line_h = self._line_height
        placed = place_letters(width, height, {edge: (text, self._measure(text, self._letter_font), self._letter_h)
                                               for edge, text in letters.items()})
        placed += place_corner_lines(width, height, corners, line_h, placed, self._measure, self._elide)
        # the notice goes just below the left/right letters, wrapped to the view's width (at most 4 lines)
        for i, text in enumerate(wrap_words(notice, width - 2 * MARGIN - 2, self._measure)[:4]):
            text = text if self._measure(text) <= width - 2 * MARGIN else self._elide(text, width - 2 * MARGIN)
            box = TextBox("notice", text, (width - self._measure(text)) / 2, height / 2 + (i + 1) * line_h,
                          self._measure(text), line_h, "centre")
            if text and box.inside(width, height) and not any(box.overlaps(p) for p in placed):
                placed.append(box)
        scale = place_scale_bar(width, height, [(px, label, self._measure(label)) for px, label in bars],
                                line_h, placed)
        if scale is not None:
            placed.append(scale)
        self._layout_key, self._layout = key, placed
        return placed

    def drawForeground(self, painter: QPainter, rect) -> None:  # noqa: N802 - Qt override
        super().drawForeground(painter, rect)
        painter.save()
        painter.resetTransform()
        width, height = self.viewport().width(), self.viewport().height()
        viewer = self.viewer
        if viewer.is_active_view(self):
            painter.setPen(QPen(QColor(PLANE_COLOURS[self.plane.value]), 2))
            painter.drawRect(QRectF(1, 1, width - 2, height - 2))
        for box in self.overlay_texts():
            if box.kind == "scale":
                self._draw_scale_bar(painter, box)
            elif box.kind == "letter":
                painter.drawPixmap(QPointF(box.x, box.y - self._letter_ink_top),
                                   self._text(box.text, self._letter_font, LETTER_COLOUR))
            else:
                colour = NOTICE_COLOUR if box.kind == "notice" else None
                painter.drawPixmap(QPointF(box.x, box.y), self._text(box.text, self._font, colour))
        painter.restore()

    def _draw_scale_bar(self, painter: QPainter, box: TextBox) -> None:
        label_w = self._measure(box.text)
        x0 = box.x
        x1 = box.x + box.w - 6 - label_w
        y = box.y + box.h / 2 + 2
        for pen in (QPen(QColor(0, 0, 0, 200), 3), QPen(QColor(230, 230, 230), 1)):
            painter.setPen(pen)
            painter.drawLine(QPointF(x0, y), QPointF(x1, y))
            painter.drawLine(QPointF(x0, y - 5), QPointF(x0, y + 1))
            painter.drawLine(QPointF(x1, y - 5), QPointF(x1, y + 1))
            painter.drawLine(QPointF((x0 + x1) / 2, y - 3), QPointF((x0 + x1) / 2, y))
        painter.drawPixmap(QPointF(x1 + 6, box.y), self._text(box.text, self._font))
