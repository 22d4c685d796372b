"""Typed pointer interaction: what a view tells a tool, and what a tool handler offers the views.

A view turns each toolkit mouse event into one :class:`PointerEvent` (the voxel under the pointer, the plane, the
phase, the button and modifiers) and hands it to a :class:`ToolHandler`. A drag is a generator, as napari's label
tools are: the code before the first ``yield`` runs on the press, each ``yield`` waits for the next event (sent
with ``generator.send``), and the generator returns after the release. A handler that cannot act on a press
simply returns before yielding; closing the generator early (the window lost the mouse) runs its ``finally``.

Plain Python: no Qt here, so tools are driven and tested without a QApplication (see :class:`DragDriver`).
"""
from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from enum import Enum, Flag
from typing import Protocol

import numpy as np

from viewer.core.reformat import Plane


class PointerPhase(str, Enum):
    """Where in a press-move-release sequence an event is."""

    PRESS = "press"
    MOVE = "move"
    RELEASE = "release"


class PointerButton(str, Enum):
    """The button that started the press (``NONE`` for a hover)."""

    NONE = "none"
    LEFT = "left"
    MIDDLE = "middle"
    RIGHT = "right"


class Modifiers(Flag):
    """Keyboard modifiers held during the event."""

    NONE = 0
    SHIFT = 1
    CTRL = 2
    ALT = 4


@dataclass(frozen=True)
class PointerEvent:
    """One pointer event on a slice view, in the volume's array coordinates.

    Parameters
    ----------
    phase
        Press, move or release.
    zyx
        The ``(z, y, x)`` array index of the voxel under the pointer (nearest voxel centre; may lie outside the
        volume when the pointer is beside the image).
    point
        The same place as a continuous ``(z, y, x)`` index: brush dabs are centred where the pointer is, not at
        the voxel centre, so strokes stay smooth on coarse grids.
    plane
        The plane of the view.
    array_axis
        The array axis the view's slices run through (the one a 2-D tool holds constant), from
        :attr:`~viewer.core.reformat.PlaneGeometry.array_axis`.
    button, modifiers
        The pressed button and the held modifiers.
    scene_mm
        The position on the drawn image in mm (see :mod:`viewer.core.reformat`), for tools that draw there.
    pixel
        The position on the view in (logical) pixels, for drags measured on screen (window, zoom, pan).
    """

    phase: PointerPhase
    zyx: tuple[int, int, int]
    point: tuple[float, float, float]
    plane: Plane
    array_axis: int
    button: PointerButton = PointerButton.LEFT
    modifiers: Modifiers = Modifiers.NONE
    scene_mm: tuple[float, float] = (0.0, 0.0)
    pixel: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def at(cls, phase: PointerPhase, point, plane: Plane | str, array_axis: int, **kwargs) -> PointerEvent:
        """The event at continuous ``(z, y, x)`` ``point`` (``zyx`` is its nearest voxel)."""
        point = tuple(float(v) for v in point)
        zyx = tuple(int(v) for v in np.floor(np.asarray(point) + 0.5))
        return cls(PointerPhase(phase), zyx, point, Plane(plane), int(array_axis), **kwargs)  # type: ignore[arg-type]


#: A drag: primed with the press, sent each move and finally the release; yields nothing back.
PointerDrag = Generator[None, PointerEvent, None]


class ToolHandler(Protocol):
    """What the views' editing tools (Brush, Eraser, Fill, Polygon) act on: the shown annotation.

    All positions are array ``(z, y, x)`` indices; ``erase`` removes from the active segment instead of adding.
    """

    def paint(self, press: PointerEvent, erase: bool) -> PointerDrag:
        """A Brush/Eraser stroke from ``press``: paints a dab there, then along every point sent, and ends (one
        undo step) after the release. Returns without yielding when there is nothing to paint into."""
        ...

    def fill(self, click: PointerEvent, erase: bool = False, three_d: bool = False) -> int:
        """Flood fill from the clicked voxel, on its slice (``array_axis``) or in 3D; returns voxels changed."""
        ...

    def polygon(self, vertices: np.ndarray, array_axis: int, erase: bool = False) -> int:
        """Fill the closed polygon ``(M, 3)`` (continuous ``(z, y, x)``) on the slice normal to ``array_axis``;
        returns voxels changed."""
        ...


class DragDriver:
    """Runs one drag generator: primes it with the press, sends it later events, closes it after the release.

    :attr:`active` is False once the generator has finished (or declined the press), so the caller can tell a
    press that started nothing from a drag in progress.
    """

    def __init__(self, drag: PointerDrag) -> None:
        self._drag = drag
        self.active = True
        try:
            next(drag)  # run the press part up to its first yield
        except StopIteration:
            self.active = False

    def send(self, event: PointerEvent) -> bool:
        """Hand ``event`` to the drag; a release ends it. Returns True while the drag goes on."""
        if not self.active:
            return False
        try:
            self._drag.send(event)
        except StopIteration:
            self.active = False
        if event.phase is PointerPhase.RELEASE:
            self.close()
        return self.active

    def close(self) -> None:
        """End the drag now (its ``finally`` runs): the pointer went away without a release."""
        self._drag.close()
        self.active = False

