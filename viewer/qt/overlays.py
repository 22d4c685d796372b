"""Model results drawn over the image in every view and plane: label maps, detection boxes, heat maps.

Each class is a :class:`~viewer.qt.layers.ViewLayer`; the maths (colour tables, outlines, which boxes a slice
cuts) lives in :mod:`viewer.core.layers`. What is kept per result is prepared once when it arrives - the label map
as ``uint8``, the heat map quantised to ``uint8``, a colour table of 256 entries, which slices hold labels - so a
slice change costs a view of the volume and one lookup through the table (plus one 2-D pass for outlines), never
whole-volume work. Changing a colour, a visibility, an opacity or a threshold rebuilds the 256-entry table and
recolours the slices on screen.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem

from viewer.core.layers import (
    FILL_OPACITY,
    as_label_volume,
    boxes_in_slice,
    heat_lut,
    label_lut,
    label_volumes_ml,
    labelled_slices,
    outline,
    quantise_unit,
)
from viewer.core.reformat import PlaneGeometry
from viewer.qt.layers import ViewLayer, VolumeImageLayer
from viewer.qt.text_layout import place_label

SALIENCY_Z = 8.0
SEGMENTATION_Z = 10.0
BOXES_Z = 20.0
COLOUR_MAPS = ("inferno", "magma", "viridis", "plasma", "turbo")
SELECTED_BOX_COLOUR = QColor("#ffd23f")
REJECTED_BOX_COLOUR = QColor(150, 150, 150)  # a rejected finding: grey and dashed, so it reads as set aside


def colormap_rgb(name: str) -> np.ndarray:
    """``(256, 3)`` uint8 RGB of a pyqtgraph colour map ('inferno', 'viridis', ...)."""
    return np.ascontiguousarray(pg.colormap.get(name).getLookupTable(0.0, 1.0, 256, alpha=False), dtype=np.uint8)


class SegmentationLayer(VolumeImageLayer):
    """A label map (:class:`~inference.types.SegResult`) filled or outlined, with per-label colour, visibility and
    opacity.

    The ``uint8`` map is coloured slice by slice through :meth:`lut`; slices of a plane that hold no label are
    known from the first visit (:func:`~viewer.core.layers.labelled_slices`, once per plane) and cost nothing.
    """

    def __init__(self, result, name: str = "Segmentation", z: float = SEGMENTATION_Z) -> None:
        self.result = result
        self.table = dict(result.table)
        labels = as_label_volume(result.labels)
        self.volumes_ml = label_volumes_ml(labels, result.affine)
        self.present = sorted(self.volumes_ml)
        self.values = sorted(set(self.table) | set(self.present))
        self.label_colours = {v: tuple(self.table[v].color) if v in self.table else (255, 0, 0) for v in self.values}
        self.label_visible = {v: True for v in self.values}
        self.label_opacity = {v: FILL_OPACITY for v in self.values}
        self.outlined = False
        self._labelled: dict[object, np.ndarray] = {}
        super().__init__(name, labels, self.lut(), z)

    # ---- look -----------------------------------------------------------------------------------------------
    def label_name(self, value: int) -> str:
        """The model's name for a label value."""
        return self.table[value].name if value in self.table else f"label {value}"

    def lut(self) -> np.ndarray:
        """The colour table for the current colours, visibilities, opacities and mode (outlines are drawn at
        twice the fill opacity so a thin line stays visible)."""
        opacities = self.label_opacity
        if self.outlined:
            opacities = {v: min(1.0, 2 * a) for v, a in opacities.items()}
        return label_lut(self.label_colours, self.label_visible, opacities)

    def set_label_colour(self, value: int, rgb) -> None:
        """Draw label ``value`` in ``rgb`` (0-255)."""
        self.label_colours[int(value)] = tuple(int(c) for c in rgb)[:3]
        self.set_colours(self.lut())

    def set_label_visible(self, value: int, visible: bool) -> None:
        """Show or hide one label."""
        self.label_visible[int(value)] = bool(visible)
        self.set_colours(self.lut())

    def set_label_opacity(self, value: int, opacity: float) -> None:
        """Opacity 0..1 of one label's fill."""
        self.label_opacity[int(value)] = float(min(1.0, max(0.0, opacity)))
        self.set_colours(self.lut())

    def set_outlined(self, outlined: bool) -> None:
        """Outline (True) or fill (False) the regions."""
        self.outlined = bool(outlined)
        self.set_colours(self.lut())  # redraws

    def labels_changed(self) -> None:
        """The label map was edited in place (a brush, undo): forget what was derived from it and redraw."""
        self._labelled.clear()
        self.volumes_ml = label_volumes_ml(self.data, self.result.affine)
        self.present = sorted(self.volumes_ml)
        self.redraw()

    # ---- drawing --------------------------------------------------------------------------------------------
    def _labelled_slices(self, geometry: PlaneGeometry) -> np.ndarray:
        key = (geometry.plane, geometry.through_axis)
        flags = self._labelled.get(key)
        if flags is None:
            flags = self._labelled[key] = labelled_slices(self.data, geometry)
        return flags

    def update(self, view, items: list, geometry: PlaneGeometry, k: int) -> None:
        item = items[0]
        if self.data.shape[:3] != geometry.volume_shape:
            item.clear()
            return
        flags = self._labelled_slices(geometry)
        empty = not (0 <= k < len(flags) and flags[k])
        item._hf_empty = empty
        item.setVisible(self.visible and not empty)
        if empty:
            return
        image = geometry.take(self.data, k)
        self.show_image(item, outline(image) if self.outlined else image, geometry)

    def set_visible(self, visible: bool) -> None:
        self.visible = bool(visible)
        for items in self._items.values():
            items[0].setVisible(self.visible and not getattr(items[0], "_hf_empty", False))


class SaliencyLayer(VolumeImageLayer):
    """A heat map (:class:`~inference.types.SaliencyMap`) through a colour map, transparent below a threshold.

    The map is quantised to ``uint8`` once (:func:`~viewer.core.layers.quantise_unit`); colour map and threshold
    live in the 256-entry table, the opacity is the items' opacity.
    """

    def __init__(self, saliency, name: str = "Saliency", colour_map: str = "inferno", threshold: float = 0.2,
                 opacity: float = 0.6, z: float = SALIENCY_Z) -> None:
        self.saliency = saliency
        data, self.span = quantise_unit(saliency.values)
        self.colour_map = colour_map
        self.threshold = float(threshold)
        super().__init__(name, data, self.lut(), z)
        self.opacity = float(opacity)

    def lut(self) -> np.ndarray:
        """Colour map + threshold as a table (alpha 255 above the threshold; the layer opacity applies on top)."""
        return heat_lut(colormap_rgb(self.colour_map), self.threshold, 1.0)

    def set_threshold(self, threshold: float) -> None:
        """Hide values below ``threshold`` (0..1 of the map's range)."""
        self.threshold = float(min(1.0, max(0.0, threshold)))
        self.set_colours(self.lut())

    def set_colour_map(self, name: str) -> None:
        """Use another colour map ('inferno', 'viridis', ...)."""
        self.colour_map = name
        self.set_colours(self.lut())

    def value_at(self, fraction: float) -> float:
        """The heat-map value a fraction 0..1 of the colour bar stands for."""
        lo, hi = self.span
        return lo + float(fraction) * (hi - lo)


class BoxesItem(QGraphicsItem):
    """The detection boxes one slice cuts, with their number and score: rectangles in scene mm, drawn with a
    cosmetic pen, and labels painted in device pixels so they stay readable at any zoom."""

    MARGIN_SHARE = 0.5  # labels may stick out of the image: the bounding rect covers that much more

    def __init__(self) -> None:
        super().__init__()
        self.rects = np.zeros((0, 4))
        self.texts: list[str] = []
        self.colours: list[QColor] = []
        self.selected: list[bool] = []
        self.rejected: list[bool] = []
        self._bounds = QRectF()
        self._font = QFont()
        self._font.setPixelSize(12)
        self._font.setBold(True)
        self._metrics = QFontMetrics(self._font)
        self._ascent = self._metrics.ascent()
        #: ``(TextBox, colour, selected)`` of the labels drawn last, in the view's device pixels.
        self.label_boxes: list = []

    def set_boxes(self, rects: np.ndarray, texts: list[str], colours: list[QColor], selected: list[bool],
                  scene_size: tuple[float, float], rejected: list[bool] | None = None) -> None:
        """Show these rectangles ``[x0, y0, x1, y1]`` (scene mm) with their labels (``rejected`` ones dashed)."""
        self.rejected = list(rejected) if rejected is not None else [False] * len(texts)
        width, height = scene_size
        mx, my = width * self.MARGIN_SHARE, height * self.MARGIN_SHARE
        bounds = QRectF(-mx, -my, width + 2 * mx, height + 2 * my)
        if bounds != self._bounds:
            self.prepareGeometryChange()
            self._bounds = bounds
        self.rects, self.texts, self.colours, self.selected = np.asarray(rects, float), texts, colours, selected
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return self._bounds

    def paint(self, painter: QPainter, option, widget=None) -> None:
        if not len(self.rects):
            self.label_boxes = []
            return
        transform = painter.transform()
        for (x0, y0, x1, y1), colour, selected, rejected in zip(self.rects, self.colours, self.selected,
                                                                 self.rejected):
            pen = QPen(SELECTED_BOX_COLOUR if selected else colour, 3.0 if selected else 1.6)
            if rejected:
                pen.setStyle(Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        painter.save()
        painter.resetTransform()
        painter.setFont(self._font)
        self.label_boxes = self._place_labels(transform, widget)
        for box, colour, selected in self.label_boxes:
            origin = QPointF(box.x, box.y + self._ascent)
            painter.setPen(QColor(0, 0, 0, 220))
            painter.drawText(origin + QPointF(1, 1), box.text)
            painter.setPen(SELECTED_BOX_COLOUR if selected else colour.lighter(130))
            painter.drawText(origin, box.text)
        painter.restore()

    def _place_labels(self, transform, widget) -> list:
        """``(TextBox, colour, selected)`` of each label that fits beside its box without covering the view's
        orientation letters, corner texts, scale bar or another label (the selected box is placed first; a label
        that fits nowhere is shortened to its number, then left out: the box itself is always drawn)."""
        width, height = (widget.width(), widget.height()) if widget is not None else (1 << 20, 1 << 20)
        view = widget.parent() if widget is not None else None
        placed = list(view.overlay_texts()) if hasattr(view, "overlay_texts") else []
        order = sorted(range(len(self.rects)), key=lambda i: not self.selected[i])
        out = []
        for i in order:
            x0, y0, x1, y1 = self.rects[i]
            a = transform.map(QPointF(min(x0, x1), min(y0, y1)))
            b = transform.map(QPointF(max(x0, x1), max(y0, y1)))
            text = self.texts[i]
            short = (text.split() or [text])[0]  # "#3" when "#3  0.87" fits nowhere
            texts = [(t, self._metrics.horizontalAdvance(t) + 2) for t in dict.fromkeys((text, short))]
            box = place_label((a.x(), a.y(), b.x(), b.y()), texts, self._metrics.height() + 1, width, height, placed)
            if box is not None:
                placed.append(box)
                out.append((box, self.colours[i], self.selected[i]))
        return out


def _diameter_text(measurements, i: int) -> str:
    """``"  12.3 mm"``: the nodule's mean diameter for a box label ("" when not measured)."""
    m = measurements[i] if measurements is not None else None
    return f"  {m['mean_diameter_mm']:.1f} mm" if m else ""


class DetectionLayer(ViewLayer):
    """Detection boxes (:class:`~inference.types.Detections`, voxel boxes on the displayed grid) on every slice
    of every plane they span, labelled ``#n score`` (and the nodule's mean diameter when measured).
    ``min_score`` filters at display time only: the detections are kept whole, so lowering it brings boxes back.
    Findings the reader rejected (:meth:`set_review`) are drawn grey and dashed, or hidden while ``show_rejected``
    is off."""

    def __init__(self, detections, name: str = "Detections", min_score: float = 0.0, z: float = BOXES_Z) -> None:
        super().__init__(name, z)
        self.detections = detections
        self.min_score = float(min_score)
        self.selected: int | None = None
        self.statuses: dict[int, str] = {}
        self.show_rejected = True
        self._colours = {}
        for value, label in detections.table.items():
            self._colours[int(value)] = QColor(*label.color)

    def colour_of(self, i: int) -> QColor:
        """The colour of detection ``i`` (its label's)."""
        return self._colours.get(int(self.detections.labels[i]), QColor(230, 25, 75))

    def create_items(self, view) -> list:
        return [BoxesItem()]

    def shown_indices(self) -> np.ndarray:
        """Rows of the detections at or above ``min_score`` (without the rejected ones unless they are shown)."""
        shown = np.flatnonzero(self.detections.scores >= self.min_score)
        if not self.show_rejected:
            shown = np.array([i for i in shown if not self.is_rejected(i)], dtype=int)
        return shown

    def is_rejected(self, i: int) -> bool:
        """True when the reader rejected detection ``i``."""
        return self.statuses.get(int(i)) == "rejected"

    def set_review(self, statuses: dict[int, str], show_rejected: bool) -> None:
        """The review state per detection row (``pending`` / ``accepted`` / ``rejected``) and whether rejected
        findings are drawn; redraws only when something changed."""
        statuses, show_rejected = {int(k): v for k, v in statuses.items()}, bool(show_rejected)
        if statuses != self.statuses or show_rejected != self.show_rejected:
            self.statuses, self.show_rejected = statuses, show_rejected
            self.redraw()

    def boxes_on(self, geometry: PlaneGeometry, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, rects)`` of the shown boxes slice ``k`` of ``geometry`` cuts (scene mm)."""
        shown = self.shown_indices()
        if tuple(self.detections.shape) != tuple(geometry.volume_shape) or not len(shown):
            return np.zeros(0, int), np.zeros((0, 4))
        cut, rects = boxes_in_slice(self.detections.boxes_voxel[shown], geometry, k)
        return shown[cut], rects

    def update(self, view, items: list, geometry: PlaneGeometry, k: int) -> None:
        indices, rects = self.boxes_on(geometry, k)
        scores = self.detections.scores
        measured = getattr(self.detections, "measurements", None)
        texts = [f"#{i + 1}  {scores[i]:.2f}" + _diameter_text(measured, i) for i in indices]
        rejected = [self.is_rejected(i) for i in indices]
        colours = [REJECTED_BOX_COLOUR if r else self.colour_of(i) for i, r in zip(indices, rejected)]
        selected = [int(i) == self.selected for i in indices]
        items[0].set_boxes(rects, texts, colours, selected, geometry.scene_size, rejected)

    def set_min_score(self, min_score: float) -> None:
        """Show only boxes scoring at least ``min_score`` (the detections themselves are not changed)."""
        self.min_score = float(min_score)
        self.redraw()

    def select(self, index: int | None) -> None:
        """Highlight detection ``index`` (None: none)."""
        self.selected = None if index is None else int(index)
        self.redraw()
