"""The viewer: one to three slice views of one volume, their shared state, tools, keys, cine and measurements."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QPixmap
from PySide6.QtWidgets import QMenu, QWidget

from viewer.core.bindings import Bindings
from viewer.core.display import DisplayState, ImageOrder
from viewer.core.interaction import ToolHandler
from viewer.core.measure import Measurement, evaluate
from viewer.core.reformat import Plane
from viewer.core.windowing import CT_PRESETS, Preset
from viewer.qt.canvas import SliceViewWidget
from viewer.qt.cine import CinePlayer
from viewer.qt.layers import ViewLayer
from viewer.qt.layouts import LAYOUTS, ViewGrid
from viewer.qt.tools import EDIT_TOOLS, PAINT_TOOLS, Tool
from viewer.qt.view_info import CursorReadout, corner_texts, window_text
from viewer.qt.viewer_actions import bind_state, build_actions, build_preset_actions, context_menu

BRUSH_RADIUS_MM = (0.5, 50.0)  # smallest and largest brush radius
BRUSH_STEP = 1.25  # one press of [ or ] scales the brush by this


class ViewerWidget(QWidget):
    """Shows a volume in 1x1 (its acquisition plane, or the maximised view), 1x3 (axial, coronal, sagittal) or
    2x2 (those and the free view: see :mod:`viewer.qt.layouts`).

    All views share one :class:`~viewer.core.display.DisplayState`: scrolling in one view moves the linked point,
    which moves the crosshair in the others. Keyboard actions (see :mod:`viewer.qt.tools`) act on the active view
    and are live while the viewer has focus; the slice and window keys
    (:data:`~viewer.qt.viewer_actions.WINDOW_WIDE_ACTIONS`) anywhere in its window.

    Signals
    -------
    files_dropped(list), series_dropped(str)
        Something was dropped on a view (paths, or a series key from the browser).
    notice_clicked()
        A view showing no volume (and so its :attr:`empty_text`) was clicked: the details of why are wanted.
    cursor_info(str)
        Voxel index, LPS and value under the mouse ("" when outside the image).
    position_changed()
        The linked point moved (slices changed).
    window_text_changed(str)
        The window/level changed; the text is for the status bar.
    measurements_changed(), measurement_selected(object)
        The measurement list changed; a measurement id (or None) was selected.
    layout_changed(str), tool_changed(str), cine_changed(bool)
        State shown by the toolbar.
    """

    files_dropped = Signal(list)
    series_dropped = Signal(str)
    cursor_info = Signal(str)
    position_changed = Signal()
    window_text_changed = Signal(str)
    measurements_changed = Signal()
    measurement_selected = Signal(object)
    layout_changed = Signal(str)
    tool_changed = Signal(str)
    cine_changed = Signal(bool)
    presets_changed = Signal()
    brush_changed = Signal(float)
    notice_clicked = Signal()

    def __init__(self, parent: QWidget | None = None, presets: tuple[Preset, ...] = CT_PRESETS) -> None:
        super().__init__(parent)
        self.setObjectName("viewer")
        self.presets = tuple(presets)
        self.state: DisplayState | None = None
        self.info: dict = {}
        self.layers: list[ViewLayer] = []
        self.measurements: list[Measurement] = []
        self.selected_measurement_id: int | None = None
        self.tool = Tool.WINDOW
        self.crosshair_enabled = True
        self.show_active_frame = True
        self.layout_name = "1x1"
        self.primary_plane = Plane.AXIAL
        self.loading: tuple[int, int] | None = None
        #: What the views say in their middle while no volume is shown ("No DICOM images found in ...").
        self.empty_text = ""
        self.cine = CinePlayer(self)
        self.cine.frame.connect(self._cine_tick)
        self.cine.running_changed.connect(self.cine_changed)
        self.cine.fps_changed.connect(lambda _fps: self._active.viewport().update())
        #: "Image order" setting: head first as PACS (default) or as acquired (see viewer.core.display).
        self.image_order = ImageOrder.HEAD_FIRST
        #: True once the user moved through the shown series (keys, wheel, cine, crosshair): automatic jumps
        #: (the demo's jump to its top finding) then leave the view alone.
        self.user_navigated = False
        self.brush_radius_mm = 5.0
        #: What the editing tools (Brush, Eraser, Fill, Polygon) act on, through typed pointer events: the main
        #: window's :class:`~viewer.qt.annotation.AnnotationController`; None: they do nothing.
        self.tool_handler: ToolHandler | None = None
        self.readout = CursorReadout(self)
        #: The user's key and mouse bindings (:mod:`viewer.core.bindings`; the main window sets the saved ones).
        self.bindings = Bindings()
        self.views = {plane: SliceViewWidget(plane, self) for plane in Plane}
        self._active = self.views[Plane.AXIAL]
        for view in self.views.values():
            view.cursor_moved.connect(self._on_cursor_moved)
        #: The grid of views (1x1, 1x3, 2x2) and the free view of 2x2 (:mod:`viewer.qt.layouts`).
        self.grid = ViewGrid(self)
        self.free = self.grid.free
        self.setStyleSheet("QWidget#viewer { background: #101012; }")
        self.actions: dict[str, QAction] = {}
        self.preset_actions: list[QAction] = []
        build_actions(self)
        self.set_layout("1x1")

    # ------------------------------------------------------------------------------------------------------------
    # volume
    # ------------------------------------------------------------------------------------------------------------
    @property
    def volume(self):
        """The shown Volume (None before one is loaded)."""
        return None if self.state is None else self.state.volume

    def set_volume(self, volume, info: dict | None = None, measurements: list[Measurement] | None = None,
                   state: DisplayState | None = None) -> None:
        """Show ``volume`` (possibly still loading); ``info`` feeds the corner text, ``measurements`` is the list to
        show and extend (kept by the caller per series, so measurements survive switching series).

        ``state`` is the series' own :class:`~viewer.core.display.DisplayState` when the caller keeps one per
        series (its slices and window are shown as they were left; it takes the viewer's presets and image
        order); None builds a fresh one that opens at image 1 (axial CT) or the middle image.
        """
        if state is not None and state.volume is not volume:
            raise ValueError("the display state belongs to another volume")
        self.stop_cine()
        self.user_navigated = False
        if self.state is not None:  # a kept state outlives its turn on screen: it must stop driving the views
            bind_state(self, self.state, connect=False)
        fresh = state is None
        self.state = state if not fresh else DisplayState(volume, self.presets) if volume is not None else None
        self.info = dict(info or {})
        self.measurements = measurements if measurements is not None else []
        self.selected_measurement_id = None
        self.readout.forget()
        if self.state is not None:
            self.state.presets = self.presets  # the number keys are the viewer's
            if self.state.image_order != self.image_order:
                self.state.set_image_order(self.image_order)
                if fresh:
                    self.state.set_position(self.state.opening_position())
            bind_state(self, self.state)
            self.primary_plane = self.state.native_plane
            file_rate = getattr(volume, "frame_rate", None)
            self.cine.use_fps(file_rate if file_rate else self.cine.user_fps)
        self.set_layout(self.layout_name)
        self.free.follow(self.state)
        for view in self.all_views():
            view.attach()
            view.sync_measurements()
        self._active = self.views[self.primary_plane]
        self._emit_window_text()
        self.measurements_changed.emit()
        self.position_changed.emit()

    def volume_updated(self, done: int | None = None, total: int | None = None) -> None:
        """More slices were decoded: redraw what is on screen (progressive loading)."""
        self.loading = None if done is None or (total and done >= total) else (done, total or 0)
        self._redraw_images()

    def _redraw_images(self) -> None:
        """The pixels changed (window, loading): redraw the shown views' images, the hidden ones when shown."""
        for view in self.all_views():
            if view.isHidden():
                view._dirty = True
            else:
                view.refresh_image()
                view.viewport().update()

    def volume_complete(self) -> None:
        """Loading finished: an automatic window is recomputed over the whole volume."""
        self.loading = None
        if self.state is not None and self.state.window_name == "auto":
            self.state.auto_window()
        self.volume_updated()

    def display_image(self, image: np.ndarray) -> np.ndarray:
        """The uint8 grey (or RGB) image to draw for a raw slice (see :meth:`DisplayState.display_image`)."""
        return self.state.display_image(image)

    def value_unit(self) -> str:
        """Unit of voxel values: HU for CT, nothing otherwise."""
        return "HU" if self.volume is not None and str(self.volume.modality).upper() == "CT" else ""

    # ------------------------------------------------------------------------------------------------------------
    # views and layout
    # ------------------------------------------------------------------------------------------------------------
    def all_views(self) -> list[SliceViewWidget]:
        """The three plane views and the free view of 2x2, shown or not."""
        return self.grid.all_views()

    def visible_views(self) -> list[SliceViewWidget]:
        """Views currently shown."""
        return [v for v in self.all_views() if not v.isHidden()]

    @property
    def active_view(self) -> SliceViewWidget:
        """The view keys act on (the last one clicked, scrolled or maximised)."""
        return self._active

    def set_active_view(self, view: SliceViewWidget) -> None:
        """Make ``view`` the target of keyboard actions."""
        if view is not self._active:
            old, self._active = self._active, view
            old.viewport().update()
            view.viewport().update()

    def is_active_view(self, view: SliceViewWidget) -> bool:
        """True for the active view when several are shown (it gets a coloured frame)."""
        return self.show_active_frame and self.layout_name != "1x1" and view is self._active

    @property
    def crosshair_visible(self) -> bool:
        """Crosshair lines are drawn in 1x3 and 2x2, or in 1x1 with the crosshair tool."""
        return self.crosshair_enabled and (self.layout_name != "1x1" or self.tool == Tool.CROSSHAIR)

    def set_layout(self, name: str, plane: Plane | str | None = None) -> None:
        """``"1x1"`` (one plane, the acquisition plane unless ``plane`` is given), ``"1x3"`` or ``"2x2"``."""
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}: use 1x1, 1x3 or 2x2")
        if plane is not None:
            self.primary_plane = Plane(plane)
            self.grid.single = None
        self.layout_name = name
        self.grid.apply(name)
        if name == "1x1":
            self._active = self.grid.single or self.views[self.primary_plane]
        for view in self.visible_views():
            view.refresh()
        action = self.actions.get(f"layout_{name}")
        if action is not None:
            action.setChecked(True)
        self.layout_changed.emit(name)

    def toggle_maximized(self, view: SliceViewWidget) -> None:
        """Double click: 1x3 or 2x2 -> this view alone; 1x1 -> back."""
        self.grid.toggle(view)

    def fit(self) -> None:
        """Fit the image in every view."""
        for view in self.all_views():
            view.fit()

    def reset_view(self) -> None:
        """Fit, default window, no inversion."""
        self.fit()
        if self.state is not None:
            self.state.set_invert(False)
            self.state.reset_window()

    def set_smooth(self, smooth: bool) -> None:
        """Bilinear (True) or nearest-neighbour display of enlarged pixels."""
        for view in self.all_views():
            view.image_item.smooth = bool(smooth)
            view.image_item.update()

    def grab_views(self) -> QPixmap:
        """A picture of the visible views, as on screen (in still quality)."""
        for view in self.all_views():
            view.draw_still()
        return self.grab()

    # ------------------------------------------------------------------------------------------------------------
    # state reactions
    # ------------------------------------------------------------------------------------------------------------
    def _on_position_changed(self, _position) -> None:
        for view in self.all_views():
            view.refresh()
        self.readout.follow_slice()
        self.position_changed.emit()

    def _on_window_changed(self, *_args) -> None:
        self._redraw_images()
        self._emit_window_text()

    def _emit_window_text(self) -> None:
        self.window_text_changed.emit(window_text(self.state))

    @property
    def last_cursor(self) -> dict | None:
        """What the last read-out under the mouse showed (see :class:`~viewer.qt.view_info.CursorReadout`)."""
        return self.readout.last

    def _on_cursor_moved(self, index) -> None:
        self.readout.show(self.sender(), index)

    def calibration(self):
        """The shown volume's :class:`~viewer.core.calibration.Calibration` (None: PixelSpacing with geometry)."""
        return getattr(self.volume, "calibration", None)

    def has_orientation(self) -> bool:
        """True when the volume has patient geometry: plane names and orientation letters may be shown."""
        calibration = self.calibration()
        return calibration is None or calibration.has_orientation

    def overlay_lines(self, view: SliceViewWidget) -> dict[str, list[str]]:
        """The four corner texts of a view (see :func:`viewer.qt.view_info.corner_texts`)."""
        return corner_texts(self, view)

    # ------------------------------------------------------------------------------------------------------------
    # tools, slices, window
    # ------------------------------------------------------------------------------------------------------------
    def set_tool(self, tool: Tool | str) -> None:
        """Choose what the left mouse button does."""
        self.tool = Tool(tool)
        action = self.actions.get(f"tool_{self.tool.value}")
        if action is not None and not action.isChecked():
            action.setChecked(True)
        cursor = Qt.CursorShape.CrossCursor if self.tool not in (Tool.WINDOW, Tool.PAN, Tool.ZOOM) else (
            Qt.CursorShape.OpenHandCursor if self.tool == Tool.PAN else Qt.CursorShape.ArrowCursor)
        for view in self.all_views():
            view.viewport().setCursor(cursor)
            view.update_crosshair()
            view.update_brush_cursor()
            view.cancel_polygon()
        self.tool_changed.emit(self.tool.value)

    @property
    def painting(self) -> bool:
        """True while the Brush or Eraser tool is chosen."""
        return self.tool in PAINT_TOOLS

    def cancel(self) -> None:
        """Esc: drop a polygon being drawn and the measurement selection."""
        for view in self.all_views():
            view.cancel_polygon()
        self.select_measurement(None, jump=False)

    @property
    def editing(self) -> bool:
        """True while a tool that edits the active segment (brush, eraser, fill, polygon) is chosen."""
        return self.tool in EDIT_TOOLS

    def set_brush_radius(self, radius_mm: float) -> None:
        """Brush radius in mm (clamped to 0.5..50); the round cursor follows."""
        lo, hi = BRUSH_RADIUS_MM
        self.brush_radius_mm = float(min(hi, max(lo, radius_mm)))
        for view in self.all_views():
            view.update_brush_cursor()
        self.brush_changed.emit(self.brush_radius_mm)

    def bracket(self, direction: int) -> None:
        """``]`` (+1) / ``[`` (-1): brush larger/smaller while a paint tool is chosen, otherwise cine faster/slower."""
        if self.painting:
            self.set_brush_radius(self.brush_radius_mm * (BRUSH_STEP if direction > 0 else 1 / BRUSH_STEP))
        else:
            self.set_cine_fps(self.cine_fps + 2 * (1 if direction > 0 else -1))

    def step(self, delta: int) -> None:
        """Move ``delta`` images in display order in the active view (Down = +1: towards the feet in axial)."""
        if self.state is not None:
            self.user_navigated = True
            self.state.step_display(self._active.plane, delta)

    def go_to_end(self, last: bool) -> None:
        """First or last image (display order) of the active view."""
        if self.state is not None:
            self.user_navigated = True
            plane = self._active.plane
            self.state.go_to_number(plane, self.state.n_slices(plane) if last else 1)

    def set_image_order(self, order: ImageOrder | str) -> None:
        """The "Image order" setting: head first (PACS) or as acquired; applies to the shown series too."""
        self.image_order = ImageOrder(order)
        if self.state is not None:
            self.state.set_image_order(self.image_order)

    def image_window(self) -> None:
        """DICOM window (this image): the stored window of the image on screen, not the series'."""
        if self.state is not None and self.state.image_window() is None:
            self.window_text_changed.emit(window_text(self.state) + "  (this image has no stored window)")

    def toggle_crosshair(self) -> None:
        """Show or hide the crosshair lines."""
        self.crosshair_enabled = not self.crosshair_enabled
        for view in self.all_views():
            view.update_crosshair()

    # ---- cine (see viewer.qt.cine) ------------------------------------------------------------------------------
    @property
    def cine_running(self) -> bool:
        """True while cine plays."""
        return self.cine.running

    @property
    def cine_fps(self) -> float:
        """The cine rate in use (the series' own, or the user's)."""
        return self.cine.fps

    @property
    def user_cine_fps(self) -> int:
        """The rate the user chose (settings, [ and ]); a series whose file gives a cine rate plays at that."""
        return self.cine.user_fps

    def set_cine_fps(self, fps: float) -> None:
        """Frames per second (1..60) chosen by the user (kept for series without their own rate)."""
        self.cine.set_user_fps(fps)

    def toggle_cine(self) -> None:
        """Play or pause cine in the active view (loops)."""
        if self.cine.running:
            self.cine.stop()
        elif self.state is not None:
            self.cine.start()

    def stop_cine(self) -> None:
        """Pause cine."""
        self.cine.stop()

    def _cine_tick(self) -> None:
        if self.state is None:
            self.stop_cine()
            return
        self.user_navigated = True
        self.state.step_display(self._active.plane, 1, wrap=True)

    # ------------------------------------------------------------------------------------------------------------
    # measurements
    # ------------------------------------------------------------------------------------------------------------
    def evaluate(self, m: Measurement) -> Measurement:
        """Compute a measurement's numbers on the current volume."""
        return evaluate(m, self.state.volume, self.state.geometry(m.plane))

    def add_measurement(self, m: Measurement) -> None:
        """Add (and select) a finished measurement."""
        self.evaluate(m)
        self.measurements.append(m)
        self.selected_measurement_id = m.id
        self._sync_plane(m.plane)
        self.measurements_changed.emit()
        self.measurement_selected.emit(m.id)

    def measurement_edited(self, m: Measurement) -> None:
        """Recompute after the user moved a measurement."""
        self.evaluate(m)
        self._sync_plane(m.plane)
        self.measurements_changed.emit()

    def remove_measurement(self, measurement_id: int) -> None:
        """Delete a measurement."""
        before = len(self.measurements)
        self.measurements[:] = [m for m in self.measurements if m.id != measurement_id]
        if len(self.measurements) != before:
            if self.selected_measurement_id == measurement_id:
                self.selected_measurement_id = None
            for view in self.all_views():
                view.sync_measurements()
            self.measurements_changed.emit()

    def delete_selected_measurement(self) -> None:
        """Delete the selected measurement (Delete key)."""
        if self.selected_measurement_id is not None:
            self.remove_measurement(self.selected_measurement_id)
            self.measurement_selected.emit(None)

    def find_measurement(self, measurement_id: int) -> Measurement | None:
        """The measurement with this id."""
        return next((m for m in self.measurements if m.id == measurement_id), None)

    def select_measurement(self, measurement_id: int | None, jump: bool = True) -> None:
        """Select (highlight) a measurement and, with ``jump``, show its slice."""
        changed = measurement_id != self.selected_measurement_id
        self.selected_measurement_id = measurement_id
        m = self.find_measurement(measurement_id) if measurement_id is not None else None
        if m is not None and jump and self.state is not None:
            plane = Plane(m.plane)
            if self.layout_name == "1x1" and plane != self.primary_plane:
                self.set_layout("1x1", plane)
            self.state.set_slice(plane, m.slice_index)
        if changed:
            for view in self.all_views():
                view.sync_measurements()
            self.measurement_selected.emit(measurement_id)

    def go_to(self, xyz, centre: bool = True) -> None:
        """Move the linked point (every plane's slice and the crosshair) to voxel index ``xyz`` and, with
        ``centre``, pan every view so the point is in its middle (findings, "jump and centre")."""
        if self.state is None:
            return
        self.state.set_position(xyz)
        if centre:
            for view in self.all_views():
                view.centre_on(self.state.position)

    def _sync_plane(self, plane: str) -> None:
        self.views[Plane(plane)].sync_measurements()

    # ------------------------------------------------------------------------------------------------------------
    # overlay layers (masks, boxes, heat maps)
    # ------------------------------------------------------------------------------------------------------------
    def add_layer(self, layer: ViewLayer) -> None:
        """Draw ``layer`` in every view from now on."""
        self.layers.append(layer)
        for view in self.all_views():
            layer.attach(view)
            layer.refresh(view, view.geometry_, view.k if view.k is not None else 0)

    def remove_layer(self, layer: ViewLayer) -> None:
        """Stop drawing ``layer``."""
        if layer in self.layers:
            self.layers.remove(layer)
            for view in self.all_views():
                layer.detach(view)

    # ------------------------------------------------------------------------------------------------------------
    # actions (keyboard, see viewer.qt.viewer_actions) and the right-click menu
    # ------------------------------------------------------------------------------------------------------------
    def set_presets(self, presets) -> None:
        """Replace the window presets (number keys follow the new order); emits ``presets_changed``."""
        self.presets = tuple(presets)
        build_preset_actions(self)
        if self.state is not None:
            self.state.presets = self.presets
        self.presets_changed.emit()

    def context_menu(self) -> QMenu:
        """The right-click menu of a view."""
        return context_menu(self)
