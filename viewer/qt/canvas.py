"""One slice view: a pyqtgraph canvas showing one plane of the current volume, with all its interaction.

Scene units are millimetres of the displayed image (see :mod:`viewer.core.reformat`), so the physical aspect is
right for any pixel spacing, and measurements, crosshair and overlay layers are all placed in mm. The grey image
is windowed with a cached look-up table (one ``np.take`` per slice), drawn by a plain ``ImageItem``; overlay
text, orientation letters and the scale bar are painted in device pixels in ``drawForeground`` (by
:class:`~viewer.qt.view_text.ViewTextPainter`) so they cost no scene items and stay crisp at any zoom.

Mouse input is turned into one typed :class:`~viewer.core.interaction.PointerEvent` per Qt event; a drag is a
generator over those events (:mod:`viewer.qt.view_tools`), run by a :class:`~viewer.core.interaction.DragDriver`.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QSizePolicy

from viewer.core.interaction import DragDriver, Modifiers, PointerButton, PointerEvent, PointerPhase
from viewer.core.measure import Measurement
from viewer.core.reformat import Plane, PlaneGeometry
from viewer.qt.text_layout import TextBox, scale_bar_options
from viewer.qt.theme import PLANE_COLOURS, VIEW_BACKGROUND
from viewer.qt.tools import PAINT_TOOLS, Tool
from viewer.qt.view_measurements import ViewMeasurements
from viewer.qt.view_text import ViewTextPainter
from viewer.qt.view_tools import PolygonDrawing, view_drag

if TYPE_CHECKING:  # pragma: no cover
    from viewer.qt.viewer_widget import ViewerWidget

SERIES_MIME = "application/x-hounsfield-series"
CROSSHAIR_Z = 200
BRUSH_CURSOR_Z = 210
BRUSH_COLOUR = QColor(255, 255, 255, 200)
ERASER_COLOUR = QColor(255, 120, 120, 220)
BRUSH_WHEEL_STEP = 1.25  # Ctrl + one wheel notch scales the brush by this (as [ and ])
STILL_DELAY_MS = 150
WHEEL_STEP = 120  # angle delta of one wheel notch
_BUTTONS = {Qt.MouseButton.LeftButton: PointerButton.LEFT, Qt.MouseButton.MiddleButton: PointerButton.MIDDLE,
            Qt.MouseButton.RightButton: PointerButton.RIGHT}
_MODIFIERS = ((Qt.KeyboardModifier.ShiftModifier, Modifiers.SHIFT), (Qt.KeyboardModifier.ControlModifier,
              Modifiers.CTRL), (Qt.KeyboardModifier.AltModifier, Modifiers.ALT))


def pointer_modifiers(qt_modifiers) -> Modifiers:
    """Qt's keyboard modifiers as the Qt-free :class:`~viewer.core.interaction.Modifiers`."""
    out = Modifiers.NONE
    for qt_flag, flag in _MODIFIERS:
        if qt_modifiers & qt_flag:
            out |= flag
    return out


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

    def __init__(self, view: SliceViewWidget) -> None:
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

    def __init__(self, plane: Plane | str, viewer: ViewerWidget) -> None:
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
        #: The polygon / lasso being drawn (Polygon tool).
        self.polygon = PolygonDrawing(self.view_box)
        self.polygon_curve = self.polygon.curve
        #: The measurement graphics of this plane.
        self.measures = ViewMeasurements(self)
        self.texts = ViewTextPainter()
        self.geometry_: PlaneGeometry | None = None
        #: A display state of the view's own (the free view of the 2x2 layout) and, when it shows another series
        #: (a prior), that series' corner-text info; None: the viewer's.
        self.own_state = None
        self.own_info: dict | None = None
        self.k: int | None = None
        self._dirty = True
        self._drag: DragDriver | None = None
        self._wheel_rest = 0.0
        self._rect_key = None
        self._labels: dict[str, str] = {}
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
    def graphics(self):
        """Measurement id -> its :class:`~viewer.qt.measure_items.MeasurementGraphic` in this view."""
        return self.measures.graphics

    @property
    def state(self):
        """The view's :class:`~viewer.core.display.DisplayState`: its own, else the viewer's (None: nothing)."""
        return self.own_state if self.own_state is not None else self.viewer.state

    @property
    def shows_viewer_volume(self) -> bool:
        """False while the view shows another volume (a prior in the free view): the viewer's overlays and
        measurements are not drawn on it."""
        return self.own_state is None or self.own_state.volume is self.viewer.volume

    def attach(self) -> None:
        """(Re)bind to the viewer's current state: geometry, image, crosshair, measurements, fit."""
        self.measures.clear()
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
                self.measures.update_visibility()
            self._dirty = False
        self.update_crosshair()
        self.viewport().update()

    def refresh_image(self) -> None:
        """Re-window the current slice into the image item (after a window change or as loading fills it)."""
        state, geometry = self.state, self.geometry_
        if state is None or geometry is None or self.k is None:
            return
        image = state.slice_image(self.plane, self.k)
        if self.image_item.smooth and self.image_item.image is not None:
            self.image_item.interactive = True
            self._still.start()
        self.image_item.setImage(state.display_image(image), autoLevels=False, levels=None)
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

    def pointer_event(self, phase: PointerPhase, pos, button=Qt.MouseButton.LeftButton,
                      modifiers=Qt.KeyboardModifier.NoModifier) -> PointerEvent | None:
        """The typed event at view-box position ``pos`` (what pyqtgraph mouse events give) on this view's slice;
        None without an image. Every tool gets its positions from here, once per Qt event."""
        scene = self.scene_mm(pos)
        index = self.index_at(scene)
        if index is None:
            return None
        return PointerEvent.at(phase, index[::-1], self.plane, self.geometry_.array_axis,
                               button=_BUTTONS.get(button, PointerButton.NONE),
                               modifiers=pointer_modifiers(modifiers), scene_mm=(scene.x(), scene.y()),
                               pixel=(pos.x(), pos.y()))

    def _on_mouse_moved(self, scene_pos):
        if self.state is None or self.geometry_ is None:
            return
        point = self.view_box.mapSceneToView(scene_pos)
        if self.viewer.painting:
            self.update_brush_cursor(point)
        index = self.index_at(point)
        self.cursor_moved.emit(index if index is not None and self.inside(index) else None)

    def handle_drag(self, ev) -> None:
        """Mouse drag in the view: the press picks a drag tool by button and tool (see :mod:`viewer.qt.tools`
        and :func:`viewer.qt.view_tools.view_drag`), which then gets every move and the release."""
        ev.accept()
        if self.state is None:
            return
        if ev.isStart():
            self.viewer.set_active_view(self)
            self.setFocus(Qt.FocusReason.MouseFocusReason)
            press = self.pointer_event(PointerPhase.PRESS, ev.buttonDownPos(), ev.button(), ev.modifiers())
            drag = view_drag(self, press) if press is not None else None
            self._drag = DragDriver(drag) if drag is not None else None
        if self._drag is None:
            return
        phase = PointerPhase.RELEASE if ev.isFinish() else PointerPhase.MOVE
        event = self.pointer_event(phase, ev.pos(), ev.button(), ev.modifiers())
        if event is not None:
            self._drag.send(event)
        if ev.isFinish():
            self._drag.close()
            self._drag = None

    def handle_click(self, ev) -> None:
        """Mouse click: select the view, move the crosshair, add a probe, paint, fill, maximise, or show the menu."""
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
        click = self.pointer_event(PointerPhase.PRESS, ev.pos(), ev.button(), ev.modifiers())
        if ev.button() != Qt.MouseButton.LeftButton or click is None:
            return
        tool, handler = self.viewer.tool, self.viewer.tool_handler
        alt = Modifiers.ALT in click.modifiers
        if tool in PAINT_TOOLS and handler is not None:  # a click paints one dab: a stroke without moves
            self.update_brush_cursor(QPointF(*click.scene_mm), tool == Tool.ERASER or alt)
            DragDriver(handler.paint(click, erase=tool == Tool.ERASER or alt)).send(
                replace(click, phase=PointerPhase.RELEASE))
        elif tool in (Tool.FILL, Tool.FILL_3D) and handler is not None:
            handler.fill(click, erase=alt, three_d=tool == Tool.FILL_3D)
        elif tool == Tool.POLYGON:
            self.polygon.add(click, self.k, alt)
        elif tool == Tool.CROSSHAIR:
            self.move_crosshair(click)
        elif tool == Tool.PROBE:
            index = click.point[::-1]
            if self.inside(index):
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

    def close_polygon(self) -> bool:
        """Fill the polygon drawn so far (3 vertices or more) into the active segment; returns True when one was
        handed to the tool handler."""
        return self.polygon.close(self.viewer.tool_handler)

    def cancel_polygon(self) -> None:
        """Forget the polygon being drawn (Esc, another tool)."""
        self.polygon.cancel()

    def move_crosshair(self, event: PointerEvent) -> None:
        """Move the linked point (every plane's slice and crosshair) to where ``event`` points."""
        self.viewer.user_navigated = True
        self.state.set_position(event.point[::-1])

    def sync_measurements(self) -> None:
        """Make the measurement graphics match the viewer's list for this plane."""
        self.measures.sync()

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
    def scale_bar_options(self, width: int) -> list[tuple[float, str]]:
        """``(length_px, label)`` of the scale bars worth drawing, preferred first (see
        :func:`viewer.qt.text_layout.scale_bar_options`); empty when the view has no usable scale."""
        calibration = self.viewer.calibration()
        if calibration is not None and not calibration.scale_bar_mm:
            return []  # the scene is a nominal pixel grid (US regions, detector or no spacing): a mm bar would lie
        return scale_bar_options(self.view_box.viewPixelSize()[0], width)

    def notice_text(self) -> str:
        """A short sentence painted in the middle of the view when what it shows is not an image: the viewer's
        message without a volume, or a slice that could not be decoded."""
        state = self.state
        if state is None:
            return getattr(self.viewer, "empty_text", "") or ""
        volume = state.volume
        acquired = self.geometry_ is not None and self.geometry_.array_axis == 0  # slices are whole images
        if acquired and self.k in (getattr(volume, "failed_slices", None) or ()):
            return "This slice could not be decoded (left blank)"
        if (acquired and self.k is not None and volume.slices_loaded > 0
                and not volume.is_slice_loaded(self.k)):
            return "Loading this image…"
        return ""

    def overlay_texts(self) -> list[TextBox]:
        """Every text painted over the image (orientation letters, corner texts, scale bar, notice) with its place
        in device pixels, laid out by priority so that none covers another (see :mod:`viewer.qt.text_layout`).
        Finding labels are placed by their layer around these."""
        width, height = self.viewport().width(), self.viewport().height()
        if self.state is None or self.geometry_ is None or self.k is None:
            corners, letters, bars = {}, {}, []
        else:
            corners, letters, bars = self.viewer.overlay_lines(self), self._labels, self.scale_bar_options(width)
        return self.texts.layout(width, height, self.notice_text(), corners, letters, bars)

    def drawForeground(self, painter: QPainter, rect) -> None:  # noqa: N802 - Qt override
        super().drawForeground(painter, rect)
        painter.save()
        painter.resetTransform()
        if self.viewer.is_active_view(self):
            width, height = self.viewport().width(), self.viewport().height()
            painter.setPen(QPen(QColor(PLANE_COLOURS[self.plane.value]), 2))
            painter.drawRect(QRectF(1, 1, width - 2, height - 2))
        self.texts.paint(painter, self.overlay_texts(), self.devicePixelRatioF())
        painter.restore()
