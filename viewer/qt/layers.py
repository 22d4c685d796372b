"""The overlay hook: anything drawn over the image in every view (masks, boxes, heat maps).

A :class:`ViewLayer` is attached to each :class:`~viewer.qt.canvas.SliceViewWidget` of a viewer; it creates its
graphics items once per view and is told the plane geometry and slice number whenever the slice changes. Items
live in the view's scene, whose units are millimetres of the displayed image (see :mod:`viewer.core.reformat`),
so an ImageItem covering ``QRectF(0, 0, *geometry.scene_size)`` lines up voxel for voxel with the grey image.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from viewer.core.reformat import PlaneGeometry


class ViewLayer:
    """Base class of overlays. Subclasses override :meth:`create_items` and :meth:`update`.

    Parameters
    ----------
    name
        Shown in menus and legends.
    z
        Stacking order above the image (the grey image is at 0, measurements at 100, the crosshair at 200).
    """

    def __init__(self, name: str, z: float = 10.0) -> None:
        self.name = name
        self.z = z
        self.visible = True
        self.opacity = 1.0
        self._items: dict[object, list] = {}

    # ---- to override -------------------------------------------------------------------------------------
    def create_items(self, view) -> list:
        """Create this layer's graphics items for ``view`` (not yet added; the hook adds and stacks them)."""
        return []

    def update(self, view, items: list, geometry: PlaneGeometry, k: int) -> None:
        """Show slice ``k`` of ``geometry`` in ``items`` (called on every slice change of ``view``)."""

    # ---- used by the views -----------------------------------------------------------------------------------
    def attach(self, view) -> None:
        """Create the items for ``view`` and add them to its view box (none on a view showing another volume)."""
        if not getattr(view, "shows_viewer_volume", True):
            return
        items = self.create_items(view)
        for item in items:
            item.setZValue(self.z)
            item.setOpacity(self.opacity)
            item.setVisible(self.visible)
            view.view_box.addItem(item, ignoreBounds=True)
        self._items[view] = items

    def detach(self, view) -> None:
        """Remove this layer's items from ``view``."""
        for item in self._items.pop(view, []):
            view.view_box.removeItem(item)

    def refresh(self, view, geometry: PlaneGeometry | None, k: int) -> None:
        """Called by the view with its current geometry and slice."""
        items = self._items.get(view)
        if items is None or geometry is None:
            return
        self.update(view, items, geometry, k)

    def redraw(self) -> None:
        """Redraw the current slice of every view (after a colour, threshold or mode change of the layer)."""
        for view, items in self._items.items():
            geometry = getattr(view, "geometry_", None)
            if geometry is not None:
                self.update(view, items, geometry, view.k if view.k is not None else 0)

    def set_visible(self, visible: bool) -> None:
        """Show or hide the layer in every view."""
        self.visible = bool(visible)
        for items in self._items.values():
            for item in items:
                item.setVisible(self.visible)

    def set_opacity(self, opacity: float) -> None:
        """Opacity 0..1 in every view."""
        self.opacity = float(opacity)
        for items in self._items.values():
            for item in items:
                item.setOpacity(self.opacity)


class VolumeImageLayer(ViewLayer):
    """A voxel overlay on the displayed volume's grid, resliced like the grey image.

    ``data`` is either an RGBA volume ``(z, y, x, 4)`` uint8 (drawn as is: masks already coloured, heat maps), or a
    label volume ``(z, y, x)`` of uint8 with ``colours`` a ``(256, 4)`` uint8 RGBA table (label 0 normally
    transparent). A label slice is coloured with one ``np.take`` through the table and drawn as RGBA: about twice
    as fast per slice as handing Qt an indexed image, which it converts to ARGB on every paint (measured in
    bench/bench_view.py), and the volume stays a quarter of the RGBA size.
    """

    def __init__(self, name: str, data: np.ndarray, colours: np.ndarray | None = None, z: float = 10.0) -> None:
        super().__init__(name, z)
        if data.ndim == 4 and (data.shape[-1] != 4 or data.dtype != np.uint8):
            raise ValueError("an RGBA overlay must be (z, y, x, 4) uint8")
        if data.ndim == 3 and (data.dtype != np.uint8 or colours is None):
            raise ValueError("a label overlay must be uint8 (z, y, x) with a (256, 4) colour table")
        self.data = data
        self.colours = None if colours is None else np.ascontiguousarray(colours, dtype=np.uint8)

    def create_items(self, view) -> list:
        return [pg.ImageItem(axisOrder="row-major")]

    def set_colours(self, colours: np.ndarray) -> None:
        """Replace the ``(256, 4)`` colour table of a label overlay (the views redraw their slice)."""
        if self.colours is None:
            raise ValueError("an RGBA overlay has no colour table")
        self.colours = np.ascontiguousarray(colours, dtype=np.uint8)
        self.redraw()

    def update(self, view, items: list, geometry: PlaneGeometry, k: int) -> None:
        item = items[0]
        if self.data.shape[:3] != geometry.volume_shape:
            item.clear()
            return
        self.show_image(item, geometry.take(self.data, k), geometry)

    def show_image(self, item, image: np.ndarray, geometry: PlaneGeometry) -> None:
        """Put one displayed slice (RGBA, or labels to colour) into ``item``, stretched over the plane's scene
        rectangle."""
        if self.colours is not None:
            image = np.take(self.colours, image, axis=0)
        item.setImage(image, autoLevels=False, levels=None)
        width, height = geometry.scene_size
        key = (item.width(), item.height(), width, height)
        if item.width() and key != getattr(item, "_hf_rect_key", None):
            item.setRect(QRectF(0, 0, width, height))
            item._hf_rect_key = key
