"""Graphics of measurements in a view: editable pyqtgraph ROIs plus a value label.

Every graphic works in scene millimetres of its view; the measurement itself keeps voxel indices
(see :mod:`viewer.core.measure`), so conversions go through the view's :class:`PlaneGeometry`.
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, Signal

from viewer.core.measure import Measurement
from viewer.qt.theme import MEASURE_COLOUR, MEASURE_SELECTED

MEASURE_Z = 100


def _pens(selected: bool):
    colour = MEASURE_SELECTED if selected else MEASURE_COLOUR
    return pg.mkPen(colour, width=2 if selected else 1.5), pg.mkPen(colour, width=3)


class _CornerHandlesMixin:
    def _add_corner_handles(self) -> None:
        for corner, opposite in (([0, 0], [1, 1]), ([1, 1], [0, 0]), ([1, 0], [0, 1]), ([0, 1], [1, 0])):
            self.addScaleHandle(corner, opposite)


class EllipseMeasureROI(_CornerHandlesMixin, pg.EllipseROI):
    """An axis-aligned ellipse with four corner handles (no rotation, like OHIF's ellipse tool)."""

    def _addHandles(self):  # noqa: N802 - pyqtgraph hook
        self._add_corner_handles()


class BoxMeasureROI(_CornerHandlesMixin, pg.ROI):
    """An axis-aligned rectangle with four corner handles."""

    def __init__(self, pos, size, **kwargs):
        super().__init__(pos, size, **kwargs)
        self._add_corner_handles()


class MeasurementGraphic(QObject):
    """The ROI and label of one measurement in one view.

    Signals
    -------
    edited(int)
        The user moved the ROI or a handle (emitted when the drag finishes); carries the measurement id.
    clicked(int)
        The ROI was clicked (select it).
    remove_requested(int)
        "Remove" from the ROI's context menu.
    """

    edited = Signal(int)
    clicked = Signal(int)
    remove_requested = Signal(int)

    def __init__(self, measurement: Measurement, scene_points: list[tuple[float, float]], parent=None) -> None:
        super().__init__(parent)
        self.measurement = measurement
        self.kind = measurement.kind
        self.selected = False
        pen, hover = _pens(False)
        kw = dict(pen=pen, hoverPen=hover, handlePen=pg.mkPen(MEASURE_COLOUR), handleHoverPen=pg.mkPen("w"),
                  removable=True, movable=True, rotatable=False)
        if self.kind == "length":
            self.roi = pg.LineSegmentROI(positions=scene_points[:2], **kw)
        elif self.kind == "ellipse":
            self.roi = EllipseMeasureROI((0, 0), (1, 1), **kw)
        elif self.kind == "rectangle":
            self.roi = BoxMeasureROI((0, 0), (1, 1), **kw)
        elif self.kind == "probe":
            self.roi = pg.TargetItem(pos=scene_points[0], size=11, symbol="+", pen=pen, hoverPen=hover, movable=True)
        else:
            raise ValueError(self.kind)
        self.label = pg.TextItem("", color=MEASURE_COLOUR, anchor=(0, 0), fill=pg.mkBrush(0, 0, 0, 150))
        self.roi.setZValue(MEASURE_Z)
        self.label.setZValue(MEASURE_Z + 1)
        if self.kind in ("ellipse", "rectangle"):
            self.set_scene_points(scene_points)
        if self.kind == "probe":
            self.roi.sigPositionChangeFinished.connect(self._on_finished)
        else:
            self.roi.sigRegionChangeFinished.connect(self._on_finished)
            self.roi.sigRegionChanged.connect(self.place_label)
            self.roi.sigRemoveRequested.connect(self._on_remove)
            self.roi.sigClicked.connect(self._on_clicked)
        self.place_label()

    @property
    def items(self) -> list:
        """The graphics items to add to a view box."""
        return [self.roi, self.label]

    # ---- geometry ---------------------------------------------------------------------------------------------
    def scene_points(self) -> list[tuple[float, float]]:
        """End points (length), opposite corners (ellipse, rectangle) or the point (probe), in scene mm."""
        if self.kind == "length":
            points = [self.roi.mapToParent(h.pos()) for h in self.roi.endpoints]
            return [(p.x(), p.y()) for p in points]
        if self.kind == "probe":
            p = self.roi.pos()
            return [(p.x(), p.y())]
        pos, size = self.roi.pos(), self.roi.size()
        return [(pos.x(), pos.y()), (pos.x() + size.x(), pos.y() + size.y())]

    def set_scene_points(self, points) -> None:
        """Move the ROI to these scene points without reporting an edit."""
        blocker = [self.roi.blockSignals(True)]
        try:
            if self.kind == "length":
                for handle, p in zip(self.roi.getHandles(), points):
                    self.roi.movePoint(handle, QPointF(*p), finish=False)
            elif self.kind == "probe":
                self.roi.setPos(QPointF(*points[0]))
            else:
                (x0, y0), (x1, y1) = points[0], points[1]
                self.roi.setPos(QPointF(min(x0, x1), min(y0, y1)), update=False)
                self.roi.setSize((max(abs(x1 - x0), 1e-3), max(abs(y1 - y0), 1e-3)))
        finally:
            self.roi.blockSignals(blocker[0])
        self.roi.update()
        self.place_label()

    # ---- look -------------------------------------------------------------------------------------------------
    def set_text(self, text: str) -> None:
        """Set the label."""
        self.label.setText(text)
        self.place_label()

    def set_selected(self, selected: bool) -> None:
        """Highlight (selected) or normal colours."""
        self.selected = bool(selected)
        pen, hover = _pens(self.selected)
        colour = MEASURE_SELECTED if self.selected else MEASURE_COLOUR
        self.roi.setPen(pen)
        self.label.setColor(colour)

    def set_visible(self, visible: bool) -> None:
        """Show or hide ROI and label."""
        self.roi.setVisible(visible)
        self.label.setVisible(visible)

    def place_label(self, *_) -> None:
        """Put the label beside the shape, outwards (away from the view's middle) when it fits, else inwards."""
        points = self.scene_points()
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        if self.kind == "length":
            # at the end point farther to the outside, so the label does not cover the line
            (ax, ay), (bx, by) = points
            end_right = (ax, ay) if ax >= bx else (bx, by)
            end_left = (ax, ay) if ax < bx else (bx, by)
        else:
            bottom = ys[0] if self.kind == "probe" else max(ys)
            end_right, end_left = (max(xs), bottom), (min(xs), bottom)
        right = True
        box = self.roi.getViewBox()
        if box is not None:
            (x0, x1), _ = box.viewRange()
            label_mm = self.label.boundingRect().width() * box.viewPixelSize()[0]
            outward_right = (min(xs) + max(xs)) / 2 >= (x0 + x1) / 2
            fits_right = end_right[0] + label_mm <= x1
            fits_left = end_left[0] - label_mm >= x0
            right = (outward_right and fits_right) or (not outward_right and not fits_left)
        self.label.setAnchor((0, 0) if right else (1, 0))
        self.label.setPos(QPointF(*(end_right if right else end_left)))

    # ---- events -----------------------------------------------------------------------------------------------
    def _on_finished(self, *_) -> None:
        self.edited.emit(self.measurement.id)

    def _on_clicked(self, *_) -> None:
        self.clicked.emit(self.measurement.id)

    def _on_remove(self, *_) -> None:
        self.remove_requested.emit(self.measurement.id)
