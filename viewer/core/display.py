"""What a set of views shows of one volume: the linked position (slices + crosshair), window/level, zoom.

Plain Python state with tiny observer signals, so it can be driven and tested without Qt; the Qt views
subscribe to the events and only draw. One :class:`DisplayState` belongs to one loaded volume and is shared by
the axial, coronal and sagittal views, the way 3D Slicer's views share a volume's display node.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from viewer.core.reformat import Plane, PlaneGeometry, native_plane, reformat
from viewer.core.windowing import CT_PRESETS, Preset, Window, auto_window, find_preset, initial_window


class Signal:
    """A minimal synchronous observer: ``connect(callback)``, ``emit(*args)``; exceptions propagate."""

    def __init__(self) -> None:
        self._callbacks: list[Callable] = []

    def connect(self, callback: Callable) -> None:
        """Call ``callback(*args)`` on every :meth:`emit` (connecting twice is a no-op)."""
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    def disconnect(self, callback: Callable | None = None) -> None:
        """Stop calling ``callback`` (all callbacks when None)."""
        if callback is None:
            self._callbacks.clear()
        elif callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args) -> None:
        """Call every connected callback in connection order."""
        for callback in list(self._callbacks):
            callback(*args)


class DisplayState:
    """Slice position, window/level, inversion and zoom of one volume's views.

    Parameters
    ----------
    volume
        The :class:`~viewer.core.volume.Volume` shown (may still be loading).
    presets
        Window presets in number-key order.

    Events
    ------
    position_changed(position)
        The linked point moved (``position`` = voxel index ``(x, y, z)``): slices and crosshairs follow it.
    window_changed(window, invert, name)
        Window, inversion or the name of the window source (``"VOI"``, ``"lung"``, ``"auto"``, ``"custom"``).
    zoom_changed(plane, zoom)
        A view's zoom (screen pixels per image column pixel) changed.
    """

    def __init__(self, volume, presets: tuple[Preset, ...] = CT_PRESETS) -> None:
        self.volume = volume
        self.presets = tuple(presets)
        self.geometries: dict[Plane, PlaneGeometry] = {p: reformat(volume, p) for p in Plane}
        self.native_plane = native_plane(volume.affine)
        self.position_changed = Signal()
        self.window_changed = Signal()
        self.zoom_changed = Signal()
        z, y, x = volume.shape
        self._position = np.array([(x - 1) / 2, (y - 1) / 2, 0.0])
        self._default_window, self._default_name = initial_window(volume)
        self._window = self._default_window
        self._window_name = self._default_name
        self._invert = False
        self._zoom: dict[Plane, float] = {p: 1.0 for p in Plane}

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
        """Window from the 0.5..99.5 percentiles of the loaded slices."""
        vol = self.volume
        loaded = vol.array[: vol.slices_loaded] if 0 < vol.slices_loaded < vol.shape[0] else vol.array
        window = auto_window(loaded)
        self.set_window(window, "auto")
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
