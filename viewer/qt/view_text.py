"""Painting a view's overlay texts in device pixels: corner texts, orientation letters, the scale bar, a notice.

:mod:`viewer.qt.text_layout` decides where each text goes; :class:`ViewTextPainter` measures text with the
view's fonts, keeps that layout while nothing in it changes, and draws each text as a cached pixmap with its
shadow, so a frame costs a few blits and no scene items, crisp at any zoom.
"""
from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen, QPixmap

from viewer.qt.text_layout import MARGIN, TextBox, place_corner_lines, place_letters, place_scale_bar, wrap_words

TEXT_COLOUR = QColor(230, 230, 230)
SHADOW_COLOUR = QColor(0, 0, 0, 230)
LETTER_COLOUR = QColor(255, 196, 92)
NOTICE_COLOUR = QColor(255, 140, 120)
PIXMAP_CACHE = 1024  # rendered texts kept (a few views' corner texts as they change)
WIDTH_CACHE = 4096


class ViewTextPainter:
    """Lays out and paints the texts over one view (see the module docstring)."""

    def __init__(self) -> None:
        self.font = QFont()
        self.font.setPixelSize(12)
        self.letter_font = QFont()
        self.letter_font.setPixelSize(15)
        self.letter_font.setBold(True)
        letter_metrics = QFontMetrics(self.letter_font)
        # orientation letters are placed by the ink of a capital (and its shadow); the pixmap starts above it
        self._letter_h = letter_metrics.capHeight() + 2
        self._letter_ink_top = letter_metrics.ascent() - letter_metrics.capHeight()
        self.line_height = QFontMetrics(self.font).height() + 1  # as tall as a rendered line (shadow included)
        self._pixmaps: OrderedDict[tuple, QPixmap] = OrderedDict()
        self._widths: dict[tuple[str, int], float] = {}
        self._layout_key = None
        self._layout: list[TextBox] = []

    # ---- measuring ------------------------------------------------------------------------------------------
    def measure(self, text: str, font: QFont | None = None) -> float:
        """Width in device pixels of ``text`` as painted (shadow included); remembered, since the layout asks
        for the same few dozen texts on every frame."""
        font = font or self.font
        key = (text, id(font))
        width = self._widths.get(key)
        if width is None:
            if len(self._widths) > WIDTH_CACHE:
                self._widths.clear()
            width = self._widths[key] = QFontMetrics(font).horizontalAdvance(text) + 2
        return width

    def elide(self, text: str, width: float) -> str:
        """``text`` cut with an ellipsis to fit ``width`` device pixels."""
        return QFontMetrics(self.font).elidedText(text, Qt.TextElideMode.ElideRight, max(0, int(width) - 2))

    # ---- layout ---------------------------------------------------------------------------------------------
    def layout(self, width: int, height: int, notice: str, corners: dict[str, list[str]],
               letters: dict[str, str], bars: list[tuple[float, str]]) -> list[TextBox]:
        """Every text with its place in a ``width`` x ``height`` view, by priority so that none covers another:
        orientation ``letters`` (edge -> text), the ``corners``' lines, the ``notice`` in the middle and the first
        scale bar of ``bars`` (``(length_px, label)``) that fits. The same inputs give the same (cached) list."""
        key = (width, height, notice, tuple((c, tuple(v)) for c, v in corners.items()),
               tuple(letters.items()), tuple(bars))
        if self._layout_key == key:
            return self._layout
        measure, line_h = self.measure, self.line_height
        placed = place_letters(width, height, {edge: (text, measure(text, self.letter_font), self._letter_h)
                                               for edge, text in letters.items()})
        placed += place_corner_lines(width, height, corners, line_h, placed, measure, self.elide)
        # the notice goes just below the left/right letters, wrapped to the view's width (at most 4 lines)
        for i, text in enumerate(wrap_words(notice, width - 2 * MARGIN - 2, measure)[:4]):
            text = text if measure(text) <= width - 2 * MARGIN else self.elide(text, width - 2 * MARGIN)
            box = TextBox("notice", text, (width - measure(text)) / 2, height / 2 + (i + 1) * line_h,
                          measure(text), line_h, "centre")
            if text and box.inside(width, height) and not any(box.overlaps(p) for p in placed):
                placed.append(box)
        scale = place_scale_bar(width, height, [(px, label, measure(label)) for px, label in bars], line_h, placed)
        if scale is not None:
            placed.append(scale)
        self._layout_key, self._layout = key, placed
        return placed

    # ---- painting -------------------------------------------------------------------------------------------
    def paint(self, painter: QPainter, boxes: list[TextBox], ratio: float) -> None:
        """Draw laid-out ``boxes`` (device pixels, the painter untransformed) at device pixel ``ratio``."""
        for box in boxes:
            if box.kind == "scale":
                self._paint_scale_bar(painter, box, ratio)
            elif box.kind == "letter":
                painter.drawPixmap(QPointF(box.x, box.y - self._letter_ink_top),
                                   self.pixmap(box.text, self.letter_font, ratio, LETTER_COLOUR))
            else:
                colour = NOTICE_COLOUR if box.kind == "notice" else TEXT_COLOUR
                painter.drawPixmap(QPointF(box.x, box.y), self.pixmap(box.text, self.font, ratio, colour))

    def pixmap(self, text: str, font: QFont, ratio: float, colour: QColor = TEXT_COLOUR) -> QPixmap:
        """The text with its shadow, rendered once into a cached pixmap (drawing it is then one blit)."""
        key = (text, id(font), colour.rgba(), ratio)
        pixmap = self._pixmaps.get(key)
        if pixmap is not None:
            self._pixmaps.move_to_end(key)
            return pixmap
        metrics = QFontMetrics(font)
        w, h = metrics.horizontalAdvance(text) + 2, metrics.height() + 1
        pixmap = QPixmap(max(1, int(w * ratio)), max(1, int(h * ratio)))
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        painter.setFont(font)
        painter.setPen(SHADOW_COLOUR)
        painter.drawText(QPointF(1, 1 + metrics.ascent()), text)
        painter.setPen(colour)
        painter.drawText(QPointF(0, metrics.ascent()), text)
        painter.end()
        self._pixmaps[key] = pixmap
        if len(self._pixmaps) > PIXMAP_CACHE:
            self._pixmaps.popitem(last=False)
        return pixmap

    def _paint_scale_bar(self, painter: QPainter, box: TextBox, ratio: float) -> None:
        label_w = self.measure(box.text)
        x0 = box.x
        x1 = box.x + box.w - 6 - label_w
        y = box.y + box.h / 2 + 2
        for pen in (QPen(QColor(0, 0, 0, 200), 3), QPen(QColor(230, 230, 230), 1)):
            painter.setPen(pen)
            painter.drawLine(QPointF(x0, y), QPointF(x1, y))
            painter.drawLine(QPointF(x0, y - 5), QPointF(x0, y + 1))
            painter.drawLine(QPointF(x1, y - 5), QPointF(x1, y + 1))
            painter.drawLine(QPointF((x0 + x1) / 2, y - 3), QPointF((x0 + x1) / 2, y))
        painter.drawPixmap(QPointF(x1 + 6, box.y), self.pixmap(box.text, self.font, ratio))
