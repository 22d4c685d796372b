"""The viewer's layouts: which views sit where in its grid (1x1, 1x3, 2x2), and the free view of 2x2.

``1x1`` shows one view (the acquisition plane, or the view maximised by a double click), ``1x3`` axial, coronal and
sagittal side by side, ``2x2`` those three plus the *free view* bottom right. The free view
(:class:`FreeViewSlot`) has a display state of its own: by default a thick-slab MIP of the axial plane of the
shown volume, linked to the main views by LPS position and window, so scrolling in either moves both. Any other
:class:`~viewer.core.display.DisplayState` can be put there with :meth:`FreeViewSlot.show_state` (a prior study
in the same frame of reference: the link goes through patient millimetres, not voxel indices).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QGridLayout

from viewer.core.display import DisplayState
from viewer.core.linked_display import LinkedDisplays
from viewer.core.reformat import Plane
from viewer.core.slab import DEFAULT_SLAB_MM, Projection
from viewer.qt.canvas import SliceViewWidget

if TYPE_CHECKING:  # pragma: no cover
    from viewer.qt.viewer_widget import ViewerWidget

LAYOUTS = ("1x1", "1x3", "2x2")


class FreeViewSlot:
    """The fourth view of 2x2 and what it shows: its own display state, linked to the viewer's.

    Attributes
    ----------
    view
        The :class:`~viewer.qt.canvas.SliceViewWidget` (object name ``view-free``).
    state
        Its :class:`~viewer.core.display.DisplayState` (None without a volume).
    projection, slab_mm
        The slab the default content uses (a 10 mm MIP unless the settings say otherwise).
    """

    def __init__(self, viewer: ViewerWidget) -> None:
        self.viewer = viewer
        self.view = SliceViewWidget(Plane.AXIAL, viewer)
        self.view.setObjectName("view-free")
        self.view.cursor_moved.connect(viewer._on_cursor_moved)
        self.state: DisplayState | None = None
        self.source: DisplayState | None = None
        self.projection = Projection.MIP
        self.slab_mm = DEFAULT_SLAB_MM
        self._custom = False  # True: a state put by show_state (kept while the viewer's volume changes)
        self._linked = True  # False: whoever put the custom state links it
        self.link: LinkedDisplays | None = None

    def follow(self, source: DisplayState | None) -> None:
        """The viewer shows ``source`` now: link to it and, unless other content was put here, show its volume's
        axial plane as a slab (the caller attaches the view)."""
        state = self.state
        if not self._custom:
            state = None
            if source is not None:
                state = DisplayState(source.volume, source.presets, source.image_order)
                state.set_slab(self.projection, self.slab_mm)
        self._bind(source, state, self._linked or not self._custom)

    def show_state(self, state: DisplayState | None, plane: Plane | str = Plane.AXIAL, linked: bool = True,
                   info: dict | None = None) -> None:
        """Show ``state`` (e.g. a prior study's volume) in ``plane``, linked to the viewer's by LPS position and
        window; ``linked=False`` leaves the linking to the caller (a comparison links a prior through its
        registration); ``info`` is its series' corner text. None goes back to the default slab of the viewer's
        volume. The viewer's overlays and measurements are drawn here only while it shows the viewer's volume."""
        self._custom, self._linked = state is not None, linked
        self.view.plane = Plane(plane)
        self.view.own_info = info if state is not None else None
        for layer in self.viewer.layers:
            layer.detach(self.view)
        if state is None:
            self.follow(self.source)
        else:
            self._bind(self.source, state, linked)
        for layer in self.viewer.layers:
            layer.attach(self.view)
        self.view.attach()

    def _bind(self, source: DisplayState | None, state: DisplayState | None, linked: bool = True) -> None:
        self._watch(False)
        if self.link is not None:
            self.link.close()
            self.link = None
        self.source, self.state = source, state
        self.view.own_state = state
        if linked and source is not None and state is not None:
            self.link = LinkedDisplays(source, state)  # the same volume or frame of reference: LPS is the link
        self._watch(True)

    def _watch(self, connect: bool) -> None:
        """Redraw the free view when its own state changes (the viewer redraws the other views)."""
        if self.state is None:
            return
        for event, slot in ((self.state.position_changed, self._moved), (self.state.window_changed, self._redraw),
                            (self.state.slab_changed, self._redraw)):
            event.connect(slot) if connect else event.disconnect(slot)

    def _moved(self, *_args) -> None:
        self.view.refresh()

    def _redraw(self, *_args) -> None:
        if self.view.isHidden():
            self.view._dirty = True
        else:
            self.view.refresh_image()
            self.view.viewport().update()


class ViewGrid:
    """Places the viewer's views in its grid for a layout; remembers the view a double click maximised and the
    layout to go back to."""

    def __init__(self, viewer: ViewerWidget) -> None:
        self.viewer = viewer
        self.grid = QGridLayout(viewer)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.free = FreeViewSlot(viewer)
        #: The view 1x1 shows when a double click maximised it (None: the viewer's primary plane).
        self.single: SliceViewWidget | None = None
        #: The layout a double click in 1x1 goes back to.
        self.last_multi = "1x3"

    def all_views(self) -> list[SliceViewWidget]:
        """The three plane views and the free view."""
        return [*self.viewer.views.values(), self.free.view]

    def cells(self, name: str) -> list[tuple[SliceViewWidget, int, int]]:
        """``(view, row, column)`` of each view ``name`` shows."""
        views = self.viewer.views
        if name == "1x1":
            return [(self.single or views[self.viewer.primary_plane], 0, 0)]
        planes = [(views[Plane.AXIAL], 0, 0), (views[Plane.CORONAL], 0, 1)]
        if name == "1x3":
            return [*planes, (views[Plane.SAGITTAL], 0, 2)]
        return [*planes, (views[Plane.SAGITTAL], 1, 0), (self.free.view, 1, 1)]

    def apply(self, name: str) -> None:
        """Show the views of layout ``name`` in their cells (equal sizes), hide the others."""
        cells = self.cells(name)
        for view in self.all_views():
            self.grid.removeWidget(view)
        for view, row, column in cells:
            self.grid.addWidget(view, row, column)
        rows, columns = 1 + max(c[1] for c in cells), 1 + max(c[2] for c in cells)
        for i in range(3):
            self.grid.setRowStretch(i, 1 if i < rows else 0)
            self.grid.setColumnStretch(i, 1 if i < columns else 0)
        shown = [c[0] for c in cells]
        for view in self.all_views():
            view.setVisible(view in shown)

    def toggle(self, view: SliceViewWidget) -> None:
        """Double click: a view of 1x3 or 2x2 alone; in 1x1 back to the layout it came from."""
        viewer = self.viewer
        if viewer.layout_name != "1x1":
            self.last_multi = viewer.layout_name
            if view is self.free.view:
                self.single = view
                viewer.set_layout("1x1")
            else:
                viewer.set_layout("1x1", view.plane)
        else:
            self.single = None
            viewer.set_layout(self.last_multi)
            viewer.set_active_view(view)
