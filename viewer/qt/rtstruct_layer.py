"""RT Structure Set contours drawn read-only over the image, and the controller that finds them for the shown series.

:class:`RTStructLayer` is a :class:`~viewer.qt.layers.ViewLayer`: on every slice change it asks
:class:`~viewer.core.rtstruct.RTStructOnVolume` for the contours lying on that slice along the view's through axis
(the acquisition plane for ordinary structure sets; a coronal or sagittal view shows a contour only when it lies in
that plane) and draws them as polylines in the ROI colour with a cosmetic pen, in scene mm like every overlay.
:class:`RTStructController` reads, on a worker, the RTSTRUCTs of the catalog that reference a series just loaded,
then adds the layer, lists the ROIs in the status bar and owns the View-menu toggle.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QColor, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem

from viewer.core.reformat import PlaneGeometry
from viewer.core.rtstruct import ROI, RTStructOnVolume, StructuresOnVolume, read_structures_job
from viewer.qt.layers import ViewLayer
from viewer.qt.workers import JobHandle, start_job

RTSTRUCT_Z = 15.0
POINT_HALF_SIZE_MM = 2.0


class ContoursItem(QGraphicsItem):
    """Polylines in scene mm, each with a colour and whether it is closed (a POINT is drawn as a small cross)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[np.ndarray, QColor, str]] = []  # (scene (N, 2), colour, geometric type)
        self._bounds = QRectF()

    def set_lines(self, lines: list[tuple[np.ndarray, QColor, str]], scene_size: tuple[float, float]) -> None:
        width, height = scene_size
        bounds = QRectF(-width, -height, 3 * width, 3 * height)
        if bounds != self._bounds:
            self.prepareGeometryChange()
            self._bounds = bounds
        self.lines = lines
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return self._bounds

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for points, colour, kind in self.lines:
            pen = QPen(colour, 1.6)
            pen.setCosmetic(True)
            painter.setPen(pen)
            if kind == "POINT" or len(points) == 1:
                for x, y in points:
                    h = POINT_HALF_SIZE_MM
                    painter.drawLine(QPointF(x - h, y), QPointF(x + h, y))
                    painter.drawLine(QPointF(x, y - h), QPointF(x, y + h))
                continue
            polygon = QPolygonF([QPointF(float(x), float(y)) for x, y in points])
            if kind == "OPEN_PLANAR" or kind == "OPEN_NONPLANAR":
                painter.drawPolyline(polygon)
            else:
                painter.drawPolygon(polygon)


class RTStructLayer(ViewLayer):
    """The ROIs of one or more RT Structure Sets on one volume, read-only."""

    def __init__(self, rois: list[ROI], volume, name: str = "RT Structures", z: float = RTSTRUCT_Z,
                 mapped: RTStructOnVolume | None = None) -> None:
        super().__init__(name, z)
        self.rois = list(rois)
        self.mapped = mapped if mapped is not None else RTStructOnVolume(self.rois, volume)
        self._colours = {id(roi): QColor(*roi.colour) for roi in self.rois}

    def create_items(self, view) -> list:
        return [ContoursItem()]

    def lines_on(self, geometry: PlaneGeometry, k: int) -> list[tuple[ROI, np.ndarray, str]]:
        """``(roi, scene mm (N, 2), geometric type)`` of the contours on slice ``k`` of ``geometry``."""
        if tuple(geometry.volume_shape) != tuple(self.mapped.shape) or not np.allclose(geometry.affine,
                                                                                        self.mapped.affine):
            return []
        axis = geometry.through_axis
        keep = [a for a in range(3) if a != axis]
        out = []
        for roi, polyline, kind in self.mapped.on_slice(k, axis):
            xyz = np.empty((len(polyline), 3))
            xyz[:, axis] = k
            xyz[:, keep] = polyline
            _, row, col = np.moveaxis(geometry.display_from_index(xyz), -1, 0)
            sx, sy = geometry.scene_from_display(row, col)
            out.append((roi, np.stack([sx, sy], axis=-1), kind))
        return out

    def update(self, view, items: list, geometry: PlaneGeometry, k: int) -> None:
        lines = [(scene, self._colours[id(roi)], kind) for roi, scene, kind in self.lines_on(geometry, k)]
        items[0].set_lines(lines, geometry.scene_size)


def _colour_name(rgb) -> str:
    r, g, b = (int(c) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


class RTStructController(QObject):
    """Shows the RT Structure Sets of the study that reference the shown series, read-only.

    Signals
    -------
    status_message(str)
        The ROIs found (name and colour), for the status bar.
    """

    status_message = Signal(str)

    def __init__(self, viewer, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.layer: RTStructLayer | None = None
        self.sources: list[str] = []
        self._job: JobHandle | None = None
        self._volume = None  # what the running job reads onto
        self.action = QAction("Show RT Structures", self, checkable=True)
        self.action.setChecked(True)
        self.action.setEnabled(False)
        self.action.setToolTip("Show or hide the contours of the RT Structure Sets referencing the shown series")
        self.action.toggled.connect(self.set_visible)

    def clear(self) -> None:
        """Remove the layer (another series is shown), and stop reading for the last one."""
        if self._job is not None:
            self._job.cancel()
            self._job = None
        if self.layer is not None:
            self.viewer.remove_layer(self.layer)
        self.layer = None
        self.sources = []
        self.action.setEnabled(False)

    def set_visible(self, visible: bool) -> None:
        if self.layer is not None:
            self.layer.set_visible(visible)

    def rtstructs_for(self, catalog, series) -> list:
        """RTSTRUCT series of ``catalog`` that reference ``series``."""
        if catalog is None or series is None:
            return []
        return [s for s in catalog.all_series()
                if s.kind == "rtstruct" and series.uid in (s.references or []) and s.instances]

    def series_loaded(self, catalog, series, volume) -> JobHandle | None:
        """After ``series`` loaded into ``volume``: read every RTSTRUCT referencing it on a worker, then add their
        contours (:attr:`layer`). Returns the reading job, or None when there is nothing to read."""
        self.clear()
        found = self.rtstructs_for(catalog, series)
        if not found or volume is None:
            return None
        paths = [instance.path for rt_series in found for instance in rt_series.instances]
        job = start_job(lambda token: read_structures_job(paths, volume), "RT structures", parent=self)
        # Bound methods, not lambdas: this controller is then the receiver, and Qt drops a result that arrives
        # after the window was deleted (as the tag browser and the measurement files do).
        job.finished.connect(self._show)
        job.failed.connect(self._failed)
        self._job, self._volume = job, volume
        return job

    def _failed(self, reason: str) -> None:
        if self.sender() is self._job:  # not a series shown before this one
            self._job = None
            self.status_message.emit(f"RT Structure Sets not shown: {reason}")

    def _show(self, read: StructuresOnVolume) -> None:
        if self.sender() is not self._job:  # another series was loaded meanwhile
            return
        self._job, volume = None, self._volume
        if read.mapped is None:
            if read.failed:
                self.status_message.emit("RT Structure Set not readable: " + ", ".join(read.failed))
            return
        self.layer = RTStructLayer(read.rois, volume, mapped=read.mapped)
        self.layer.set_visible(self.action.isChecked())
        self.viewer.add_layer(self.layer)
        self.sources = read.labels
        self.action.setEnabled(True)
        self.status_message.emit(self.summary())

    def summary(self) -> str:
        """``RT structures (read-only): BODY #9a9b64, Heart #ff8000, ...``."""
        if self.layer is None:
            return ""
        shown = set(self.layer.mapped.slices(2))
        names = []
        for roi in self.layer.rois:
            names.append(f"{roi.name} {_colour_name(roi.colour)}")
        text = f"RT structures (read-only, {', '.join(dict.fromkeys(self.sources))}): " + ", ".join(names)
        if shown and not any(0 <= k < self.layer.mapped.shape[0] for k in shown):
            text += "  (no contour lies on a loaded slice)"
        return text
