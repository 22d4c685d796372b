"""The toolbar's thick-slab control: a projection box (Slice / MIP / MinIP / Avg) and a thickness box in mm.

It only binds: the slab lives in the shown series' :class:`~viewer.core.display.DisplayState`, the keys (M,
Shift+M, comma, period: :mod:`viewer.qt.viewer_actions`) change it there too, and the boxes follow the state's
``slab_changed`` event. A series keeps its own slab, so the boxes re-bind when the viewer shows another state.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QWidget

from viewer.core.slab import SLAB_MM_RANGE, Projection

if TYPE_CHECKING:  # pragma: no cover
    from viewer.qt.viewer_widget import ViewerWidget

TIP = ("Thick slab: {what} over the slab around the shown slice, along each plane's own normal. "
       "M on/off (10 mm MIP), Shift+M next projection, comma / period thinner / thicker. "
       "Masks, boxes and measurements stay those of the centre slice.")


class SlabControls:
    """The two toolbar boxes of the thick slab, kept in step with ``viewer``'s display state."""

    def __init__(self, viewer: ViewerWidget, parent: QWidget) -> None:
        self.viewer = viewer
        self.projection_box = QComboBox(parent)
        self.projection_box.setObjectName("slab-projection")
        for projection in Projection:
            self.projection_box.addItem(projection.label, projection.value)
        self.projection_box.setToolTip(TIP.format(what="maximum (MIP), minimum (MinIP) or mean (Avg)"))
        self.thickness_box = QDoubleSpinBox(parent)
        self.thickness_box.setObjectName("slab-thickness")
        self.thickness_box.setRange(*SLAB_MM_RANGE)
        self.thickness_box.setDecimals(1)
        self.thickness_box.setSingleStep(1.0)
        self.thickness_box.setSuffix(" mm")
        self.thickness_box.setKeyboardTracking(False)  # typing "15" is one change, not "1" then "15"
        self.thickness_box.setToolTip(TIP.format(what="the projection"))
        for box in (self.projection_box, self.thickness_box):
            box.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # the view keeps the keys
        self._state = None
        self._syncing = False
        self.projection_box.currentIndexChanged.connect(self._on_projection)
        self.thickness_box.valueChanged.connect(self._on_thickness)
        # the viewer says when it shows another state through its window text (set_volume emits it)
        viewer.window_text_changed.connect(lambda _text: self.rebind())
        self.rebind()

    @property
    def widgets(self) -> tuple[QWidget, QWidget]:
        """The boxes, for the toolbar."""
        return self.projection_box, self.thickness_box

    def rebind(self) -> None:
        """Follow the viewer's current display state (cheap when it is the same one)."""
        state = self.viewer.state
        if state is self._state:
            return
        if self._state is not None:
            self._state.slab_changed.disconnect(self._on_state_slab)
        self._state = state
        if state is not None:
            state.slab_changed.connect(self._on_state_slab)
        for box in self.widgets:
            box.setEnabled(state is not None)
        self.sync()

    def sync(self) -> None:
        """Show the state's projection and thickness (without echoing them back)."""
        state = self._state
        if state is None:
            return
        self._syncing = True
        try:
            self.projection_box.setCurrentIndex(self.projection_box.findData(state.projection.value))
            self.thickness_box.setValue(state.slab_mm)
        finally:
            self._syncing = False

    def _on_state_slab(self, *_args) -> None:
        self.sync()

    def _on_projection(self, index: int) -> None:
        if not self._syncing and self._state is not None and index >= 0:
            self._state.set_slab(self.projection_box.itemData(index))

    def _on_thickness(self, value: float) -> None:
        if not self._syncing and self._state is not None:
            self._state.set_slab(thickness_mm=value)
