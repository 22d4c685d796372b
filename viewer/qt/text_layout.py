"""Where the texts painted over a view go, so that none covers another: corner texts, orientation letters, the
scale bar and finding labels.

Plain geometry in device pixels (no Qt here, so it is tested without a QApplication): the caller measures text
with its font and hands in ``measure(text) -> width`` and ``elide(text, width) -> text``. Items are placed by
priority: the orientation letters first (they sit at fixed edge midpoints), then each corner's lines from the
corner inwards, elided to the room the letters leave and dropped from the least important end when the view is
too short; the scale bar takes a free place near the bottom letter or none; finding labels try the sides of their
box in turn and stay out of everything placed before them.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

MARGIN = 6  # from the view's edges
GAP = 8  # between items that must not touch
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


@dataclass(frozen=True)
class TextBox:
    """One painted item: ``kind`` ('corner', 'letter', 'scale', 'label', 'notice'), its text and its device-pixel
    rectangle ``(x, y, w, h)``; ``where`` is the corner or edge it belongs to."""

    kind: str
    text: str
    x: float
    y: float
    w: float
    h: float
    where: str = ""

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    def overlaps(self, other: TextBox, gap: float = 0.0) -> bool:
        """True when the two rectangles share area (or come closer than ``gap``)."""
        return (self.x < other.right + gap and other.x < self.right + gap
                and self.y < other.bottom + gap and other.y < self.bottom + gap)

    def inside(self, width: float, height: float) -> bool:
        """True when the rectangle lies wholly within ``0..width`` x ``0..height``."""
        return self.x >= 0 and self.y >= 0 and self.right <= width and self.bottom <= height


def overlapping_pairs(boxes: Sequence[TextBox]) -> list[tuple[TextBox, TextBox]]:
    """Every pair of boxes that overlap (what a test asserts is empty)."""
    return [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]


def place_letters(width: float, height: float, letters: dict[str, tuple[str, float, float]]) -> list[TextBox]:
    """Orientation letters at the midpoints of the view's edges; ``letters`` maps ``left``/``right``/``top``/
    ``bottom`` to ``(text, w, h)``, the size of the letter's ink (capital letters: no room for descenders)."""
    out = []
    for edge, (text, w, h) in letters.items():
        x, y = {"left": (MARGIN + 2, (height - h) / 2), "right": (width - MARGIN - 2 - w, (height - h) / 2),
                "top": ((width - w) / 2, MARGIN), "bottom": ((width - w) / 2, height - MARGIN - h)}[edge]
        out.append(TextBox("letter", text, x, y, w, h, edge))
    return out


def place_corner_lines(width: float, height: float, corners: dict[str, list[str]], line_height: float,
                       letters: Iterable[TextBox], measure: Callable[[str], float],
                       elide: Callable[[str, float], str]) -> list[TextBox]:
    """Stack each corner's lines from the corner inwards, first line nearest the corner.

    A corner's stack may fill half the view's height less half the letter on its side: lines beyond that are
    dropped from the end of the list (the least important). Row by row, the left and right lines share the width
    (less the top or bottom letter where the row meets it): when both do not fit, the shorter keeps its width if
    it needs no more than half and the longer is elided to the rest, otherwise both are elided to half; a line
    that would elide to almost nothing is dropped.
    """
    letters = {b.where: b for b in letters}
    minimum = measure("00000…")  # shorter than this an elided line says nothing: it is dropped instead
    kept: dict[str, list[str]] = {}
    for corner, lines in corners.items():
        side = letters.get("left" if corner.endswith("left") else "right")
        room_h = height / 2 - MARGIN - ((side.h / 2 + GAP / 2) if side is not None else GAP / 2)
        kept[corner] = [t for t in lines if t][:max(0, int(room_h // line_height))]

    out = []
    for top in (True, False):
        row = "top" if top else "bottom"
        middle = letters.get(row)
        stacks = {}  # side -> {y: text}, y counted from this row's edge so both sides share the same grid
        for side in ("left", "right"):
            lines = kept.get(f"{row}-{side}", [])
            n = len(lines)
            stacks[side] = {(MARGIN + i * line_height if top else height - MARGIN - (n - i) * line_height): text
                            for i, text in enumerate(lines)}
        for y in sorted(set(stacks["left"]) | set(stacks["right"])):
            gap = GAP
            if middle is not None and y < middle.bottom + 1 and middle.y - 1 < y + line_height:
                gap = middle.w + 2 * GAP  # the letter sits in the middle of this row: neither line may cross it
            avail = width - 2 * MARGIN - gap
            texts = {side: stacks[side].get(y) for side in ("left", "right")}
            need = {side: measure(t) if t else 0.0 for side, t in texts.items()}
            room = {"left": avail, "right": avail}
            if gap > GAP:
                room = {"left": avail / 2, "right": avail / 2}
            elif need["left"] and need["right"] and need["left"] + need["right"] > avail:
                short, long_ = sorted(need, key=need.get)
                if need[short] <= avail / 2:
                    room = {short: need[short], long_: avail - need[short]}
                else:
                    room = {"left": avail / 2, "right": avail / 2}
            for side, text in texts.items():
                if not text:
                    continue
                if measure(text) > room[side]:
                    text = elide(text, room[side])
                    if measure(text) < minimum or measure(text) > room[side]:
                        continue
                w = measure(text)
                x = MARGIN if side == "left" else width - MARGIN - w
                out.append(TextBox("corner", text, x, y, w, line_height, f"{row}-{side}"))
    return out


def scale_bar_options(mm_per_px: float, width: float) -> list[tuple[float, str]]:
    """``(length_px, label)`` of the scale bars worth drawing in a view ``width`` px wide showing ``mm_per_px``,
    preferred first: a round length near a fifth of the view, then shorter round lengths (the layout takes the
    first that fits). Empty when the scale is unusable."""
    if not mm_per_px or mm_per_px <= 0 or not math.isfinite(mm_per_px):
        return []
    target_mm = mm_per_px * width * 0.2
    exponent = math.floor(math.log10(target_mm)) if target_mm > 0 else 0
    nice = [c * 10 ** e for e in (exponent - 1, exponent) for c in (1, 2, 5)] + [10 ** (exponent + 1)]
    best = min(nice, key=lambda v: abs(v - target_mm))
    options = []
    for length_mm in sorted((v for v in nice if v <= best), reverse=True):
        length_px = length_mm / mm_per_px
        if 20 <= length_px <= width * 0.6:
            options.append((length_px, f"{length_mm:g} mm" if length_mm < 10 else f"{length_mm / 10:g} cm"))
    return options


def place_scale_bar(width: float, height: float, options: Sequence[tuple[float, str, float]], line_height: float,
                    placed: Sequence[TextBox]) -> TextBox | None:
    """Put the scale bar (``bar`` px long, its label ``label_w`` px wide to its right) centred near the bottom, as
    low as it fits without touching what is ``placed``; ``options`` are ``(bar_px, label, label_w)``, preferred
    first (the caller lists shorter bars after). None when no option fits anywhere in the lower quarter."""
    bottom_letter = next((b for b in placed if b.kind == "letter" and b.where == "bottom"), None)
    lowest = (bottom_letter.y if bottom_letter is not None else height - MARGIN) - GAP / 2
    highest = height * 0.75
    for bar_px, label, label_w in options:
        w = bar_px + 6 + label_w
        x = (width - bar_px) / 2
        y = lowest - line_height
        while y >= highest:
            box = TextBox("scale", label, x, y, w, line_height, "bottom")
            if box.inside(width, height) and not any(box.overlaps(p, 2) for p in placed):
                return box
            y -= line_height / 2
    return None


def place_label(anchor: tuple[float, float, float, float], texts: Sequence[tuple[str, float]], line_height: float,
                width: float, height: float, placed: Sequence[TextBox]) -> TextBox | None:
    """Put a finding's label beside its box ``anchor = (x0, y0, x1, y1)`` (device pixels): above, below, right or
    left, left-aligned first; the first text of ``texts = [(text, w), ...]`` that fits somewhere wins (give the
    full label, then a shorter one). None when none fits without covering what is ``placed``."""
    x0, y0, x1, y1 = anchor
    h = line_height
    for text, w in texts:
        candidates = [(x0, y0 - h - 2), (x0, y1 + 2), (x1 - w, y0 - h - 2), (x1 - w, y1 + 2),
                      (x1 + 4, (y0 + y1 - h) / 2), (x0 - 4 - w, (y0 + y1 - h) / 2)]
        for x, y in candidates:
            box = TextBox("label", text, x, y, w, h)
            if box.inside(width, height) and not any(box.overlaps(p, 1) for p in placed):
                return box
    return None


def wrap_words(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width`` (a single word wider than that keeps a line
    of its own; the caller elides it)."""
    lines: list[str] = []
    for word in text.split():
        if lines and measure(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines
