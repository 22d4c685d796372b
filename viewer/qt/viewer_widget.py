"""The viewer: one to three slice views of one volume, their shared state, tools, keys, cine and measurements."""
from __future__ import annotations

import datetime

import numpy as np
from PySide6.QtCore import QPointF, QTimer, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QMenu, QWidget

from viewer.core.display import DisplayState, ImageOrder
from viewer.core.interaction import ToolHandler
from viewer.core.measure import Measurement, evaluate
from viewer.core.reformat import Plane
from viewer.core.windowing import CT_PRESETS, Preset, apply_window, lut_index_view, window_lut
from viewer.qt.canvas import SliceViewWidget
from viewer.qt.layers import ViewLayer
from viewer.qt.tools import EDIT_TOOLS, PAINT_TOOLS, TOOLS, Tool

PLANE_NAMES = {Plane.AXIAL: "Axial", Plane.CORONAL: "Coronal", Plane.SAGITTAL: "Sagittal"}
LAYOUTS = ("1x1", "1x3")
PAGE_STEP = 10
BRUSH_RADIUS_MM = (0.5, 50.0)  # smallest and largest brush radius
BRUSH_STEP = 1.25  # one press of [ or ] scales the brush by this
#: Actions whose keys work whatever panel of the window has focus (inputs keep their own keys: see
#: :mod:`viewer.qt.key_routing`); the window preset actions (number keys) too. The others (tools, Space, Delete,
#: letters) stay live only while the viewer has focus, so buttons, lists and type-ahead keep theirs.
WINDOW_WIDE_ACTIONS = frozenset({"next_slice", "previous_slice", "page_forward", "page_back", "first_slice",
                                 "last_slice", "window_default"})


def _format_date(value: str) -> str:
    try:
        return datetime.datetime.strptime(value, "%Y%m%d").strftime("%Y-%m-%d")
    except (TypeError, ValueError):
        return value or ""


class ViewerWidget(QWidget):
    """Shows a volume in 1x1 (its acquisition plane, or the maximised view) or 1x3 (axial, coronal, sagittal).

    All views share one :class:`~viewer.core.display.DisplayState`: scrolling in one view moves the linked point,
    which moves the crosshair in the others. Keyboard actions (see :mod:`viewer.qt.tools`) act on the active view
    and are live while the viewer has focus; the slice and window keys (:data:`WINDOW_WIDE_ACTIONS`) anywhere in
    its window.

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
        self.cine_fps = 10
        #: The rate the user chose (settings, [ and ]); a series whose file gives a cine rate plays at that.
        self.user_cine_fps = 10
        #: "Image order" setting: head first as PACS (default) or as acquired (see viewer.core.display).
        self.image_order = ImageOrder.HEAD_FIRST
        #: True once the user moved through the shown series (keys, wheel, cine, crosshair): automatic jumps
        #: (the demo's jump to its top finding) then leave the view alone.
        self.user_navigated = False
        self.brush_radius_mm = 5.0
        #: What the editing tools (Brush, Eraser, Fill, Polygon) act on, through typed pointer events: the main
        #: window's :class:`~viewer.qt.annotation.AnnotationController`; None: they do nothing.
        self.tool_handler: ToolHandler | None = None
        self.last_cursor: dict | None = None
        self._cursor_at: tuple = (None, (0.0, 0.0))  # (view, scene mm) of the last read-out under the mouse
        self._lut: np.ndarray | None = None
        self._lut_dtype = None
        self.views = {plane: SliceViewWidget(plane, self) for plane in Plane}
        self._active = self.views[Plane.AXIAL]
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        for view in self.views.values():
            layout.addWidget(view, 1)  # equal widths in 1x3
            view.cursor_moved.connect(self._on_cursor_moved)
        self.setStyleSheet("QWidget#viewer { background: #101012; }")
        self._cine = QTimer(self)
        self._cine.timeout.connect(self._cine_tick)
        self.actions: dict[str, QAction] = {}
        self._build_actions()
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
            self.state.position_changed.disconnect(self._on_position_changed)
            self.state.window_changed.disconnect(self._on_window_changed)
        fresh = state is None
        self.state = state if not fresh else DisplayState(volume, self.presets) if volume is not None else None
        self.info = dict(info or {})
        self.measurements = measurements if measurements is not None else []
        self.selected_measurement_id = None
        self._cursor_at = (None, (0.0, 0.0))
        if self.state is not None:
            self.state.presets = self.presets  # the number keys are the viewer's
            if self.state.image_order != self.image_order:
                self.state.set_image_order(self.image_order)
                if fresh:
                    self.state.set_position(self.state.opening_position())
            self.state.position_changed.connect(self._on_position_changed)
            self.state.window_changed.connect(self._on_window_changed)
            self.primary_plane = self.state.native_plane
            file_rate = getattr(volume, "frame_rate", None)
            self._apply_cine_fps(file_rate if file_rate else self.user_cine_fps)
            self._update_lut()
        self.set_layout(self.layout_name)
        for view in self.views.values():
            view.attach()
            view.sync_measurements()
        self._active = self.views[self.primary_plane]
        self._emit_window_text()
        self.measurements_changed.emit()
        self.position_changed.emit()

    def volume_updated(self, done: int | None = None, total: int | None = None) -> None:
        """More slices were decoded: redraw what is on screen (progressive loading)."""
        self.loading = None if done is None or (total and done >= total) else (done, total or 0)
        for view in self.views.values():
            if view.isHidden():
                view._dirty = True  # redrawn when shown
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
        """The uint8 grey (or RGB) image to draw for a raw slice (window, level and inversion applied)."""
        if image.ndim == 3:
            return np.ascontiguousarray(image, dtype=np.uint8)
        if image.dtype != self._lut_dtype:  # the loader promoted the volume (int16 -> float32)
            self._update_lut()
        if self._lut is not None:
            return np.take(self._lut, lut_index_view(image))
        return apply_window(image, self.state.window, self.state.invert)

    def _update_lut(self) -> None:
        state = self.state
        if state is None or state.volume.is_rgb:
            self._lut, self._lut_dtype = None, None
            return
        self._lut_dtype = state.pixel_dtype
        self._lut = window_lut(state.window, self._lut_dtype, state.invert)

    def value_unit(self) -> str:
        """Unit of voxel values: HU for CT, nothing otherwise."""
        return "HU" if self.volume is not None and str(self.volume.modality).upper() == "CT" else ""

    # ------------------------------------------------------------------------------------------------------------
    # views and layout
    # ------------------------------------------------------------------------------------------------------------
    def visible_views(self) -> list[SliceViewWidget]:
        """Views currently shown."""
        return [v for v in self.views.values() if not v.isHidden()]

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
        return self.show_active_frame and self.layout_name == "1x3" and view is self._active

    @property
    def crosshair_visible(self) -> bool:
        """Crosshair lines are drawn in 1x3, or in 1x1 with the crosshair tool."""
        return self.crosshair_enabled and (self.layout_name == "1x3" or self.tool == Tool.CROSSHAIR)

    def set_layout(self, name: str, plane: Plane | str | None = None) -> None:
        """``"1x1"`` (one plane, the acquisition plane unless ``plane`` is given) or ``"1x3"``."""
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}: use 1x1 or 1x3")
        if plane is not None:
            self.primary_plane = Plane(plane)
        self.layout_name = name
        for p, view in self.views.items():
            view.setVisible(name == "1x3" or p == self.primary_plane)
        if name == "1x1":
            self._active = self.views[self.primary_plane]
        for view in self.visible_views():
            view.refresh()
        action = self.actions.get(f"layout_{name}")
        if action is not None:
            action.setChecked(True)
        self.layout_changed.emit(name)

    def toggle_maximized(self, view: SliceViewWidget) -> None:
        """Double click: 1x3 -> this view alone; 1x1 -> back to 1x3."""
        if self.layout_name == "1x3":
            self.set_layout("1x1", view.plane)
        else:
            self.set_layout("1x3")
            self._active = view

    def fit(self) -> None:
        """Fit the image in every view."""
        for view in self.views.values():
            view.fit()

    def reset_view(self) -> None:
        """Fit, default window, no inversion."""
        self.fit()
        if self.state is not None:
            self.state.set_invert(False)
            self.state.reset_window()

    def set_smooth(self, smooth: bool) -> None:
        """Bilinear (True) or nearest-neighbour display of enlarged pixels."""
        for view in self.views.values():
            view.image_item.smooth = bool(smooth)
            view.image_item.update()

    def grab_views(self) -> QPixmap:
        """A picture of the visible views, as on screen (in still quality)."""
        for view in self.views.values():
            view.draw_still()
        return self.grab()

    # ------------------------------------------------------------------------------------------------------------
    # state reactions
    # ------------------------------------------------------------------------------------------------------------
    def _on_position_changed(self, _position) -> None:
        for view in self.views.values():
            view.refresh()
        self._follow_cursor_to_slice()
        self.position_changed.emit()

    def _on_window_changed(self, *_args) -> None:
        self._update_lut()
        for view in self.views.values():
            if view.isHidden():
                view._dirty = True
            else:
                view.refresh_image()
                view.viewport().update()
        self._emit_window_text()

    def window_text(self) -> str:
        """``W 1500 L -600 (lung)`` for the overlay and status bar."""
        if self.state is None:
            return ""
        if self.state.volume.is_rgb:
            return "RGB"  # colour is drawn as stored: no window applies, so none is claimed
        w = self.state.window
        name = self.state.window_name
        text = f"W {w.width:.0f} L {w.center:.0f}"
        if name and name != "custom":
            text += f" ({name})"
        if self.state.invert:
            text += " inv"
        return text

    def _emit_window_text(self) -> None:
        self.window_text_changed.emit(self.window_text())

    def _on_cursor_moved(self, index) -> None:
        self._show_cursor(self.sender(), index)

    def _follow_cursor_to_slice(self) -> None:
        """The slice moved under a still mouse (keys, wheel, cine): read out the voxel now under it."""
        view, scene = self._cursor_at
        if view is None or self.state is None or view.geometry_ is None:
            return
        index = view.index_at(QPointF(*scene))
        self._show_cursor(view, index if index is not None and view.inside(index) else None)

    def _show_cursor(self, view, index) -> None:
        if index is None or self.state is None:
            self.last_cursor = None
            self._cursor_at = (None, (0.0, 0.0))
            self.cursor_info.emit("")
            return
        if getattr(view, "geometry_", None) is not None:  # remembered in scene mm: the in-plane place stays put
            self._cursor_at = (view, view.geometry_.scene_from_index(index)[1:])
        volume = self.state.volume
        voxel = np.floor(np.asarray(index) + 0.5).astype(int)
        lps = volume.index_to_lps(index)
        value = self.state.value_at(index)
        unit = self.value_unit()
        if value is None:
            value_text = ""
        elif isinstance(value, tuple):
            value_text = "RGB " + ", ".join(str(v) for v in value)
        else:
            value_text = (f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}") + (f" {unit}" if unit else "")
        self.last_cursor = {"plane": getattr(view, "plane", None), "voxel": tuple(int(v) for v in voxel),
                            "lps": tuple(float(v) for v in lps), "value": value}
        if self.has_orientation():
            text = (f"Voxel ({voxel[0]}, {voxel[1]}, {voxel[2]})    "
                    f"LPS ({lps[0]:.1f}, {lps[1]:.1f}, {lps[2]:.1f}) mm    {value_text}")
        else:  # a nominal grid: patient millimetres would be invented
            text = f"Pixel ({voxel[0]}, {voxel[1]}), frame {voxel[2] + 1}    {value_text}"
        self.cursor_info.emit(text)

    def calibration(self):
        """The shown volume's :class:`~viewer.core.calibration.Calibration` (None: PixelSpacing with geometry)."""
        return getattr(self.volume, "calibration", None)

    def has_orientation(self) -> bool:
        """True when the volume has patient geometry: plane names and orientation letters may be shown."""
        calibration = self.calibration()
        return calibration is None or calibration.has_orientation

    def calibration_note(self) -> str:
        """A short corner note when distances are not plain patient millimetres ("" otherwise)."""
        calibration = self.calibration()
        if calibration is None or calibration.source == "pixel_spacing":
            return ""
        return {"ultrasound_regions": "mm per US region",
                "imager_pixel_spacing": "mm at detector (ImagerPixelSpacing)",
                "none": "no pixel spacing: px"}.get(calibration.source, "")

    def overlay_lines(self, view: SliceViewWidget) -> dict[str, list[str]]:
        """The four corner texts of a view."""
        info = self.info
        geometry = view.geometry_
        k = view.k if view.k is not None else 0
        top_left = [info.get("patient_name", ""), info.get("patient_id", ""),
                    _format_date(info.get("study_date", "")), info.get("study_description", "")]
        series = info.get("series_description", "") or ""
        number = info.get("series_number")
        se = f"Se {number}" if number not in (None, "") else ""
        oriented = self.has_orientation()
        top_right = [PLANE_NAMES[view.plane] if oriented else "", " ".join(t for t in (se, series) if t),
                     info.get("modality", "")]
        n = geometry.n_slices
        number = self.state.display_number(view.plane, k) if self.state is not None else k + 1
        bottom_left = [f"Im {number}/{n}"]
        if oriented:
            bottom_left += [f"Loc {geometry.slice_position_mm(k):.1f} mm", f"Sp {geometry.slice_spacing:.2f} mm"]
        note = self.calibration_note()
        if note:
            bottom_left.append(note)
        bottom_right = [self.window_text(), f"Zoom {view.zoom() * 100:.0f}%"]
        if self.loading is not None:
            done, total = self.loading
            bottom_right.append(f"Loading {done}/{total}" if total else "Loading")
        if self.cine_running:
            source = " (file)" if getattr(self.volume, "frame_rate", None) else ""
            bottom_right.append(f"Cine {self.cine_fps:g} fps{source}")
        return {"top-left": [t for t in top_left if t], "top-right": [t for t in top_right if t],
                "bottom-left": bottom_left, "bottom-right": bottom_right}

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
        for view in self.views.values():
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
        for view in self.views.values():
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
        for view in self.views.values():
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
            self.window_text_changed.emit(self.window_text() + "  (this image has no stored window)")

    def apply_preset(self, number_or_name) -> None:
        """Apply a window preset (1-based number key or name)."""
        if self.state is not None:
            self.state.apply_preset(number_or_name)

    def reset_window(self) -> None:
        """DICOM VOI / default window."""
        if self.state is not None:
            self.state.reset_window()

    def auto_window(self) -> None:
        """Window from percentiles."""
        if self.state is not None:
            self.state.auto_window()

    def toggle_invert(self) -> None:
        """Invert the grey scale."""
        if self.state is not None:
            self.state.toggle_invert()

    def toggle_crosshair(self) -> None:
        """Show or hide the crosshair lines."""
        self.crosshair_enabled = not self.crosshair_enabled
        for view in self.views.values():
            view.update_crosshair()

    # ---- cine ----------------------------------------------------------------------------------------------------
    @property
    def cine_running(self) -> bool:
        """True while cine plays."""
        return self._cine.isActive()

    def set_cine_fps(self, fps: float) -> None:
        """Frames per second (1..60) chosen by the user (kept for series without their own rate)."""
        self.user_cine_fps = int(max(1, min(60, round(fps))))
        self._apply_cine_fps(self.user_cine_fps)

    def _apply_cine_fps(self, fps: float) -> None:
        # a file's FrameTime may ask for e.g. 26.3 fps: keep it (QTimer rounds to whole milliseconds)
        fps = float(max(1.0, min(60.0, fps)))
        self.cine_fps = int(fps) if float(fps).is_integer() else round(fps, 1)
        self._cine.setInterval(int(round(1000 / fps)))
        self._active.viewport().update()

    def toggle_cine(self) -> None:
        """Play or pause cine in the active view (loops)."""
        if self.cine_running:
            self.stop_cine()
        elif self.state is not None:
            self._cine.start(int(round(1000 / self.cine_fps)))
            self.cine_changed.emit(True)

    def stop_cine(self) -> None:
        """Pause cine."""
        if self._cine.isActive():
            self._cine.stop()
            self.cine_changed.emit(False)

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
            for view in self.views.values():
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
            for view in self.views.values():
                view.sync_measurements()
            self.measurement_selected.emit(measurement_id)

    def go_to(self, xyz, centre: bool = True) -> None:
        """Move the linked point (every plane's slice and the crosshair) to voxel index ``xyz`` and, with
        ``centre``, pan every view so the point is in its middle (findings, "jump and centre")."""
        if self.state is None:
            return
        self.state.set_position(xyz)
        if centre:
            for view in self.views.values():
                view.centre_on(self.state.position)

    def _sync_plane(self, plane: str) -> None:
        self.views[Plane(plane)].sync_measurements()

    # ------------------------------------------------------------------------------------------------------------
    # overlay layers (masks, boxes, heat maps)
    # ------------------------------------------------------------------------------------------------------------
    def add_layer(self, layer: ViewLayer) -> None:
        """Draw ``layer`` in every view from now on."""
        self.layers.append(layer)
        for view in self.views.values():
            layer.attach(view)
            layer.refresh(view, view.geometry_, view.k if view.k is not None else 0)

    def remove_layer(self, layer: ViewLayer) -> None:
        """Stop drawing ``layer``."""
        if layer in self.layers:
            self.layers.remove(layer)
            for view in self.views.values():
                layer.detach(view)

    # ------------------------------------------------------------------------------------------------------------
    # actions (keyboard) and the right-click menu
    # ------------------------------------------------------------------------------------------------------------
    def _action(self, key: str, text: str, shortcuts, slot, checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcuts:
            if isinstance(shortcuts, (str, QKeySequence)):
                shortcuts = [shortcuts]
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
        window_wide = key in WINDOW_WIDE_ACTIONS or key.startswith("preset_")
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut if window_wide
                                  else Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.addAction(action)
        self.actions[key] = action
        return action

    def _build_actions(self) -> None:
        a = self._action
        a("next_slice", "Next slice", ["Down", "Right"], lambda: self.step(1))
        a("previous_slice", "Previous slice", ["Up", "Left"], lambda: self.step(-1))
        a("page_forward", f"{PAGE_STEP} slices forward", "PgDown", lambda: self.step(PAGE_STEP))
        a("page_back", f"{PAGE_STEP} slices back", "PgUp", lambda: self.step(-PAGE_STEP))
        a("first_slice", "First slice", "Home", lambda: self.go_to_end(False))
        a("last_slice", "Last slice", "End", lambda: self.go_to_end(True))
        a("cine", "Cine play/pause", "Space", self.toggle_cine)
        a("cine_faster", "Cine faster / larger brush", "]", lambda: self.bracket(+1))
        a("cine_slower", "Cine slower / smaller brush", "[", lambda: self.bracket(-1))
        self._build_preset_actions()
        a("window_default", "DICOM window (series)", "0", self.reset_window)
        a("window_image", "DICOM window (this image)", None, self.image_window)
        a("window_auto", "Auto window (percentiles)", "A", self.auto_window)
        a("invert", "Invert", "I", self.toggle_invert)
        a("fit", "Fit to window", "F", self.fit)
        a("reset", "Reset view", "R", self.reset_view)
        a("zoom_in", "Zoom in", ["+", "="], lambda: self._active.zoom_by(1.25))
        a("zoom_out", "Zoom out", "-", lambda: self._active.zoom_by(0.8))
        a("crosshair", "Show crosshair", "X", self.toggle_crosshair, checkable=True).setChecked(True)
        group = QActionGroup(self)
        for name in LAYOUTS:
            act = a(f"layout_{name}", f"Layout {name}", f"Ctrl+{name[-1]}",
                    lambda _=False, n=name: self.set_layout(n), checkable=True)
            group.addAction(act)
        tools = QActionGroup(self)
        for tool, label, key, tip in TOOLS:
            act = a(f"tool_{tool.value}", label, key, lambda _=False, t=tool: self.set_tool(t), checkable=True)
            act.setToolTip(f"{label} ({key}): {tip}")
            tools.addAction(act)
        self.actions["tool_window"].setChecked(True)
        a("delete_measurement", "Delete measurement", ["Delete", "Backspace"], self.delete_selected_measurement)
        a("escape", "Cancel", "Esc", self.cancel)

    def _build_preset_actions(self) -> None:
        for key in [k for k in self.actions if k.startswith("preset_")]:
            action = self.actions.pop(key)
            self.removeAction(action)
            action.deleteLater()
        self.preset_actions: list[QAction] = []
        for number, preset in enumerate(self.presets, start=1):
            action = self._action(f"preset_{preset.name}", f"{preset.label}  (W {preset.width:g} L {preset.center:g})",
                                  str(number) if number <= 9 else None, lambda _=False, n=number: self.apply_preset(n))
            self.preset_actions.append(action)

    def set_presets(self, presets) -> None:
        """Replace the window presets (number keys follow the new order); emits ``presets_changed``."""
        self.presets = tuple(presets)
        self._build_preset_actions()
        if self.state is not None:
            self.state.presets = self.presets
        self.presets_changed.emit()

    def context_menu(self) -> QMenu:
        """The right-click menu of a view."""
        menu = QMenu(self)
        presets = menu.addMenu("Window presets")
        for action in self.preset_actions:
            presets.addAction(action)
        presets.addSeparator()
        for key in ("window_default", "window_image", "window_auto", "invert"):
            presets.addAction(self.actions[key])
        tools = menu.addMenu("Tool")
        for tool, *_ in TOOLS:
            tools.addAction(self.actions[f"tool_{tool.value}"])
        menu.addSeparator()
        for key in ("layout_1x1", "layout_1x3", "crosshair", "fit", "reset", "cine"):
            menu.addAction(self.actions[key])
        if self.selected_measurement_id is not None:
            menu.addSeparator()
            menu.addAction(self.actions["delete_measurement"])
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        return menu
