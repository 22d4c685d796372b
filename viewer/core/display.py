"""What a set of views shows of one volume: the linked position (slices + crosshair), window/level, zoom.

Plain Python state with tiny observer signals, so it can be driven and tested without Qt; the Qt views
subscribe to the events and only draw. One :class:`DisplayState` belongs to one loaded volume and is shared by
the axial, coronal and sagittal views, the way 3D Slicer's views share a volume's display node.
"""
from __future__ import annotations

from enum import Enum

import numpy as np

from viewer.core.events import Event
from viewer.core.measure import probe_value
from viewer.core.reformat import Plane, PlaneGeometry, native_plane, reformat
from viewer.core.slab import (
    DEFAULT_SLAB_MM,
    SLAB_MM_RANGE,
    SLAB_STEPS_MM,
    Projection,
    project,
    project_line,
    slab_range,
    slab_slices,
)
from viewer.core.windowing import (
    CT_PRESETS,
    Preset,
    Window,
    apply_window,
    auto_window,
    central_slab,
    find_preset,
    initial_window,
    lut_index_view,
    window_lut,
)


class ImageOrder(str, Enum):
    """Which image of a plane is "1" and which way Down / wheel-down scrolls.

    ``HEAD_FIRST`` follows PACS habit: axial from the head to the feet, coronal from the front to the back,
    sagittal from the patient's right to left. ``AS_ACQUIRED`` counts in InstanceNumber order for the
    acquisition plane (the array's slice order where instance numbers are missing) and in array order for
    the reformatted planes.
    """

    HEAD_FIRST = "head_first"
    AS_ACQUIRED = "as_acquired"


#: For each plane, the LPS axis and sign of the direction image 1 lies towards (head-first order).
_FIRST_TOWARDS = {Plane.AXIAL: (2, +1), Plane.CORONAL: (1, -1), Plane.SAGITTAL: (0, -1)}


def display_reversed(geometry: PlaneGeometry, order: ImageOrder = ImageOrder.HEAD_FIRST,
                     instance_numbers=None) -> bool:
    """True when display image 1 is the *last* slice index of ``geometry`` (arrays stay ascending).

    Parameters
    ----------
    geometry
        The plane's geometry.
    order
        The image order setting.
    instance_numbers
        InstanceNumber per array slice (acquisition plane only), used by ``AS_ACQUIRED``.
    """
    if order == ImageOrder.AS_ACQUIRED:
        numbers = [n for n in (instance_numbers or []) if n is not None]
        if geometry.through_axis == 2 and len(numbers) >= 2 and len(numbers) == len(instance_numbers):
            return numbers[-1] < numbers[0]
        return False
    axis, sign = _FIRST_TOWARDS[geometry.plane]
    _, _, through = geometry.screen_directions()
    # index ascends towards where image 1 lies -> image 1 is the highest index
    return bool(through[axis] * sign > 0)


def _reversed_for(volume, geometry: PlaneGeometry, order: ImageOrder) -> bool:
    calibration = getattr(volume, "calibration", None)
    if calibration is not None and not calibration.has_orientation:
        # no patient geometry (a cine clip, a secondary capture): frames in file order, cine forwards in time
        return False
    numbers = getattr(volume, "instance_numbers", None) or None
    return display_reversed(geometry, order, numbers)


def opening_slice(volume, order: ImageOrder = ImageOrder.HEAD_FIRST) -> int:
    """The array slice (along z, the acquisition plane) a series opens at: image 1 for axial CT, the middle
    image otherwise. The loader decodes from the end nearer to it, so that image shows first."""
    geometry = reformat(volume, native_plane(volume.affine))
    n = geometry.n_slices
    if geometry.plane == Plane.AXIAL and str(volume.modality).upper() == "CT":
        return (n - 1) if _reversed_for(volume, geometry, order) else 0
    return (n - 1) // 2


class DisplayState:
    """Slice position, window/level, inversion and zoom of one volume's views.

    Parameters
    ----------
    volume
        The :class:`~viewer.core.volume.Volume` shown (may still be loading).
    presets
        Window presets in number-key order.
    image_order
        Which image is 1 (:class:`ImageOrder`); the state opens there (image 1 of an axial CT).

    Events
    ------
    position_changed(position)
        The linked point moved (``position`` = voxel index ``(x, y, z)``): slices and crosshairs follow it.
    window_changed(window, invert, name)
        Window, inversion or the name of the window source (``"VOI"``, ``"lung"``, ``"auto"``, ``"custom"``).
    zoom_changed(plane, zoom)
        A view's zoom (screen pixels per image column pixel) changed.
    slab_changed(projection, thickness_mm)
        The thick slab was turned on or off, or its projection or thickness changed: the images change, the
        position does not.
    """

    def __init__(self, volume, presets: tuple[Preset, ...] = CT_PRESETS,
                 image_order: ImageOrder | str = "head_first") -> None:
        self.volume = volume
        self.presets = tuple(presets)
        self.geometries: dict[Plane, PlaneGeometry] = {p: reformat(volume, p) for p in Plane}
        self.native_plane = native_plane(volume.affine)
        self.position_changed = Event()
        self.window_changed = Event()
        self.zoom_changed = Event()
        self.slab_changed = Event()
        self._order = ImageOrder(image_order)
        self._reversed = self._compute_reversed()
        self._position = self.opening_position()
        self._default_window, self._default_name = initial_window(volume)
        self._window = self._default_window
        self._window_name = self._default_name
        self._invert = False
        self._zoom: dict[Plane, float] = {p: 1.0 for p in Plane}
        self._lut: np.ndarray | None = None
        self._lut_key: tuple | None = None  # (window, invert, dtype) the cached table was built for
        self._projection = Projection.NONE
        self._last_projection = Projection.MIP  # what "slab on" brings back
        self._slab_mm = DEFAULT_SLAB_MM
        # plane -> (array, start, stop, projection, slices loaded, image): the last slab drawn in each plane, so a
        # repaint or a window drag on a still slab costs no reduction
        self._slab_cache: dict[Plane, tuple] = {}

    # ---- position / slices ----------------------------------------------------------------------------------
    @property
    def position(self) -> np.ndarray:
        """The linked point as voxel index ``(x, y, z)`` (a copy)."""
        return self._position.copy()

    @property
    def position_lps(self) -> np.ndarray:
        """The linked point in LPS mm."""
        return self.volume.index_to_lps(self._position)

    def geometry(self, plane: Plane | str) -> PlaneGeometry:
        """The :class:`PlaneGeometry` of a plane."""
        return self.geometries[Plane(plane)]

    def slice_index(self, plane: Plane | str) -> int:
        """The slice of ``plane`` that contains the linked point."""
        return self.geometries[Plane(plane)].slice_of(self._position)

    def n_slices(self, plane: Plane | str) -> int:
        """Number of slices of ``plane``."""
        return self.geometries[Plane(plane)].n_slices

    # ---- pixels: what the views draw and read out ------------------------------------------------------------
    # The views read pixels only through these, so the slab projection lives here, in one place, and the canvas
    # draws a slab exactly as it draws a slice.
    def slice_image(self, plane: Plane | str, k: int) -> np.ndarray:
        """The raw image of slice ``k`` of ``plane`` as drawn: ``(rows, cols)`` (plus channels for colour),
        flipped for display. A view of the volume, no copy; with a slab on (:attr:`projection`), the projection
        of the slab centred on ``k`` (:meth:`slab_range`), in the volume's dtype."""
        if self._projection is Projection.NONE:
            return self.geometries[Plane(plane)].take(self.volume.array, k)
        return self._slab_image(Plane(plane), int(k))

    def value_at(self, xyz) -> float | tuple[int, ...] | None:
        """The value of the voxel at index ``(x, y, z)`` (nearest voxel; a tuple for colour), None outside: the
        slice's own value, also while a slab is shown (see :meth:`slab_value_at` for the projected one)."""
        return probe_value(self.volume.array, xyz)

    def display_image(self, image: np.ndarray) -> np.ndarray:
        """The uint8 grey (or RGB) image to draw for a raw ``image`` from :meth:`slice_image`: window, level and
        inversion applied with a look-up table cached for the current window and the image's dtype (one
        ``np.take`` per slice; rebuilt after a window change, or when loading promoted the volume's dtype)."""
        if image.ndim == 3:
            return np.ascontiguousarray(image, dtype=np.uint8)
        key = (self._window, self._invert, image.dtype)
        if key != self._lut_key:
            self._lut, self._lut_key = window_lut(self._window, image.dtype, self._invert), key
        if self._lut is not None:
            return np.take(self._lut, lut_index_view(image))
        return apply_window(image, self._window, self._invert)

    # ---- thick slab (viewer.core.slab) ---------------------------------------------------------------------------
    @property
    def projection(self) -> Projection:
        """The slab projection shown in every plane (``Projection.NONE``: single slices)."""
        return self._projection

    @property
    def slab_mm(self) -> float:
        """The slab thickness in mm (kept while the slab is off, used when it is turned on)."""
        return self._slab_mm

    @property
    def slab_on(self) -> bool:
        """True while a slab projection is shown."""
        return self._projection is not Projection.NONE

    def set_slab(self, projection: Projection | str | None = None, thickness_mm: float | None = None) -> None:
        """Set the projection (``"none"`` turns the slab off) and/or the thickness in mm (clipped to
        :data:`~viewer.core.slab.SLAB_MM_RANGE`); emits ``slab_changed`` when either changed."""
        new_projection = self._projection if projection is None else Projection(projection)
        new_mm = self._slab_mm
        if thickness_mm is not None:
            if not np.isfinite(float(thickness_mm)):
                raise ValueError(f"slab thickness must be a number of mm, not {thickness_mm!r}")
            new_mm = float(np.clip(float(thickness_mm), *SLAB_MM_RANGE))
        if new_projection is self._projection and new_mm == self._slab_mm:
            return
        self._projection, self._slab_mm = new_projection, new_mm
        if new_projection is not Projection.NONE:
            self._last_projection = new_projection
        self._slab_cache.clear()
        self.slab_changed.emit(self._projection, self._slab_mm)

    def set_slab_defaults(self, projection: Projection | str, thickness_mm: float) -> None:
        """What turning the slab on brings back (the user's last projection and thickness), without turning it
        on; an unusable value is ignored."""
        try:
            projection = Projection(projection)
            mm = float(np.clip(float(thickness_mm), *SLAB_MM_RANGE))
        except (TypeError, ValueError):
            return
        if np.isfinite(mm):
            self._slab_mm = mm
            if projection is not Projection.NONE:
                self._last_projection = projection

    def toggle_slab(self) -> Projection:
        """Slab off, or back on with the last projection and thickness (10 mm MIP the first time); returns the
        projection now shown."""
        self.set_slab(Projection.NONE if self.slab_on else self._last_projection)
        return self._projection

    def cycle_projection(self) -> Projection:
        """Next projection, MIP -> MinIP -> Avg -> MIP (turning the slab on with the last one when it is off)."""
        if not self.slab_on:
            self.set_slab(self._last_projection)
        else:
            order = (Projection.MIP, Projection.MINIP, Projection.AVG)
            self.set_slab(order[(order.index(self._projection) + 1) % len(order)])
        return self._projection

    def step_slab(self, direction: int) -> float:
        """Next thicker (``direction`` > 0) or thinner thickness of :data:`~viewer.core.slab.SLAB_STEPS_MM`;
        returns the thickness in mm."""
        if direction > 0:
            bigger = [t for t in SLAB_STEPS_MM if t > self._slab_mm + 1e-6]
            self.set_slab(thickness_mm=bigger[0] if bigger else SLAB_STEPS_MM[-1])
        else:
            smaller = [t for t in SLAB_STEPS_MM if t < self._slab_mm - 1e-6]
            self.set_slab(thickness_mm=smaller[-1] if smaller else SLAB_STEPS_MM[0])
        return self._slab_mm

    def slab_range(self, plane: Plane | str, k: int | None = None) -> tuple[int, int]:
        """The slices ``[start, stop)`` of ``plane`` the slab around slice ``k`` (default: the current one)
        covers: the thickness in that plane's slices (:func:`~viewer.core.slab.slab_slices`), centred on ``k``,
        clipped at the volume's ends and, in the acquisition direction while loading, to the decoded slices. Just
        ``(k, k + 1)`` while the slab is off."""
        plane = Plane(plane)
        geometry = self.geometries[plane]
        k = self.slice_index(plane) if k is None else int(k)
        if not self.slab_on:
            return k, k + 1
        start, stop = slab_range(k, slab_slices(self._slab_mm, geometry.slice_spacing), geometry.n_slices)
        if geometry.array_axis == 0 and not self.volume.complete:
            first, last = self.volume.loaded_range()
            if first <= k < last:  # blank, undecoded slices would show as a band of zeros in a MIP
                start, stop = max(start, first), min(stop, last)
        return start, stop

    def slab_label(self, plane: Plane | str, k: int | None = None) -> str:
        """``"MIP 10 mm (4 im)"`` for the corner text: projection, thickness asked for, and how many images the
        slab at slice ``k`` combines (fewer near the ends); ``""`` while the slab is off."""
        if not self.slab_on:
            return ""
        start, stop = self.slab_range(plane, k)
        return f"{self._projection.label} {self._slab_mm:g} mm ({stop - start} im)"

    def slab_value_at(self, xyz, plane: Plane | str) -> float | tuple[int, ...] | None:
        """The projected value the slab of ``plane`` shows at voxel index ``(x, y, z)`` (nearest voxel): what the
        cursor read-out gives beside the slice's own value. None outside the volume or while the slab is off."""
        if not self.slab_on or probe_value(self.volume.array, xyz) is None:
            return None
        plane = Plane(plane)
        geometry = self.geometries[plane]
        voxel = np.floor(np.asarray(xyz, float) + 0.5).astype(int)
        start, stop = self.slab_range(plane, int(voxel[geometry.through_axis]))
        index: list = [int(voxel[2]), int(voxel[1]), int(voxel[0])]  # (z, y, x)
        index[geometry.array_axis] = slice(start, stop)
        return project_line(self.volume.array[tuple(index)], self._projection)

    def _slab_image(self, plane: Plane, k: int) -> np.ndarray:
        array = self.volume.array
        start, stop = self.slab_range(plane, k)
        cached = self._slab_cache.get(plane)
        key = (start, stop, self._projection, self.volume.slices_loaded)
        if cached is not None and cached[0] is array and cached[1:5] == key:
            return cached[5]
        image = project(array, self.geometries[plane], start, stop, self._projection)
        self._slab_cache[plane] = (array, *key, image)
        return image

    # ---- display order: which image is "1", which way Down goes ------------------------------------------------
    @property
    def image_order(self) -> ImageOrder:
        """The image order setting (head first as PACS, or as acquired)."""
        return self._order

    def set_image_order(self, order: ImageOrder | str) -> None:
        """Change the image order; the shown slice stays, its number changes (emits ``position_changed``)."""
        self._order = ImageOrder(order)
        self._reversed = self._compute_reversed()
        self.position_changed.emit(self.position)

    def _compute_reversed(self) -> dict[Plane, bool]:
        return {p: _reversed_for(self.volume, g, self._order) for p, g in self.geometries.items()}

    def is_reversed(self, plane: Plane | str) -> bool:
        """True when image 1 of ``plane`` is its last array slice."""
        return self._reversed[Plane(plane)]

    def display_number(self, plane: Plane | str, k: int | None = None) -> int:
        """The 1-based image number shown for slice ``k`` (array index; default: the current slice)."""
        plane = Plane(plane)
        k = self.slice_index(plane) if k is None else int(k)
        return self.n_slices(plane) - k if self._reversed[plane] else k + 1

    def slice_for_number(self, plane: Plane | str, number: int) -> int:
        """The array slice index of 1-based image ``number`` (clipped into the plane)."""
        plane = Plane(plane)
        n = self.n_slices(plane)
        number = int(np.clip(int(number), 1, n))
        return n - number if self._reversed[plane] else number - 1

    def go_to_number(self, plane: Plane | str, number: int) -> None:
        """Show image ``number`` (1-based, display order) of ``plane``."""
        self.set_slice(plane, self.slice_for_number(plane, number))

    def step_display(self, plane: Plane | str, delta: int, wrap: bool = False) -> int:
        """Move ``delta`` images in display order (Down / wheel-down = +1); returns the new image number."""
        plane = Plane(plane)
        n = self.n_slices(plane)
        number = self.display_number(plane) + int(delta)
        number = (number - 1) % n + 1 if wrap else int(np.clip(number, 1, n))
        self.go_to_number(plane, number)
        return number

    def opening_position(self) -> np.ndarray:
        """Where a series opens: image 1 for axial CT, the middle image otherwise (voxel index ``(x, y, z)``)."""
        z, y, x = self.volume.shape
        position = np.array([(x - 1) / 2, (y - 1) / 2, (z - 1) / 2])
        position[self.geometries[self.native_plane].through_axis] = opening_slice(self.volume, self._order)
        return position

    def set_position(self, xyz) -> None:
        """Move the linked point (clipped into the volume); emits ``position_changed`` when it moved."""
        z, y, x = self.volume.shape
        upper = np.array([x - 1, y - 1, z - 1], dtype=float)
        new = np.clip(np.asarray(xyz, dtype=float), 0.0, upper)
        if float(np.abs(new - self._position).max()) <= 1e-9:  # (np.allclose is 10x slower per slice step)
            return
        self._position = new
        self.position_changed.emit(self.position)

    def set_position_lps(self, lps) -> None:
        """Move the linked point to an LPS mm position."""
        self.set_position(self.volume.lps_to_index(lps))

    def set_slice(self, plane: Plane | str, k: int) -> None:
        """Show slice ``k`` (clipped) of ``plane``; the other planes' crosshairs follow."""
        geometry = self.geometries[Plane(plane)]
        new = self._position.copy()
        new[geometry.through_axis] = int(np.clip(int(k), 0, geometry.n_slices - 1))
        self.set_position(new)

    def step(self, plane: Plane | str, delta: int, wrap: bool = False) -> int:
        """Move ``delta`` slices in ``plane`` (wrapping round for cine); returns the new slice number."""
        n = self.n_slices(plane)
        k = self.slice_index(plane) + int(delta)
        k = k % n if wrap else int(np.clip(k, 0, n - 1))
        self.set_slice(plane, k)
        return k

    # ---- window / level ---------------------------------------------------------------------------------------
    @property
    def window(self) -> Window:
        """The current window."""
        return self._window

    @property
    def window_name(self) -> str:
        """Where the current window came from: ``VOI``, ``default``, ``auto``, a preset name or ``custom``."""
        return self._window_name

    @property
    def invert(self) -> bool:
        """True when the grey scale is inverted."""
        return self._invert

    @property
    def default_window(self) -> Window:
        """The window the volume opened with (DICOM VOI when present)."""
        return self._default_window

    def set_window(self, window: Window, name: str = "custom") -> None:
        """Set the window (emits ``window_changed``)."""
        if window == self._window and name == self._window_name:
            return
        self._window = window
        self._window_name = name
        self.window_changed.emit(self._window, self._invert, self._window_name)

    def apply_preset(self, name_or_number: str | int) -> Preset | None:
        """Apply a preset by name or by its 1-based number key; returns it (None when unknown)."""
        preset: Preset | None
        if isinstance(name_or_number, int):
            if not 1 <= name_or_number <= len(self.presets):
                return None
            preset = self.presets[name_or_number - 1]
        else:
            preset = find_preset(name_or_number, self.presets)
        if preset is not None:
            self.set_window(preset.window, preset.name)
        return preset

    def reset_window(self) -> None:
        """Back to the window the series opened with (DICOM VOI when present)."""
        self.set_window(self._default_window, self._default_name)

    def auto_window(self) -> Window:
        """Window from the 0.5..99.5 percentiles of the central slab of the series (of the loaded slices)."""
        window = auto_window(central_slab(self.volume))
        self.set_window(window, "auto")
        return window

    def image_window(self) -> Window | None:
        """The stored VOI window of the image shown in the acquisition plane ("DICOM window (this image)").

        Applies it (name ``"VOI image"``) and returns it; None (nothing changes) when that image has none.
        """
        windows = getattr(self.volume, "slice_windows", None) or []
        k = self.slice_index(self.native_plane) if self.geometries[self.native_plane].through_axis == 2 else None
        stored = windows[k] if k is not None and k < len(windows) else None
        if stored is None and not windows and self.volume.default_window is not None:
            stored = self.volume.default_window
        if stored is None or not stored[1] or stored[1] <= 0:
            return None
        window = Window(*stored)
        self.set_window(window, "VOI image")
        return window

    def set_invert(self, invert: bool) -> None:
        """Invert the grey scale (or not)."""
        if bool(invert) != self._invert:
            self._invert = bool(invert)
            self.window_changed.emit(self._window, self._invert, self._window_name)

    def toggle_invert(self) -> bool:
        """Flip inversion; returns the new state."""
        self.set_invert(not self._invert)
        return self._invert

    # ---- zoom -------------------------------------------------------------------------------------------------
    def zoom(self, plane: Plane | str) -> float:
        """Screen pixels per image pixel of ``plane``'s view (as reported by the view)."""
        return self._zoom[Plane(plane)]

    def set_zoom(self, plane: Plane | str, zoom: float) -> None:
        """Record a view's zoom (emits ``zoom_changed`` when it changed noticeably)."""
        plane = Plane(plane)
        if abs(zoom - self._zoom[plane]) > 1e-6 * max(1.0, zoom):
            self._zoom[plane] = float(zoom)
            self.zoom_changed.emit(plane, float(zoom))
