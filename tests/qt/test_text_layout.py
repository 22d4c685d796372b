"""The text layout over a view, as plain geometry (no QApplication): nothing overlaps, nothing leaves the view,
what does not fit is elided or dropped from the least important end."""
from __future__ import annotations

import pytest

from viewer.qt.text_layout import (
    TextBox,
    overlapping_pairs,
    place_corner_lines,
    place_label,
    place_letters,
    place_scale_bar,
    scale_bar_options,
    wrap_words,
)

CHAR = 7.0  # a fixed-pitch stand-in for font metrics: every character 7 px wide
LINE = 16.0
CORNERS = {
    "top-left": ["LIDC-IDRI-0001 Anonymous", "LIDC-IDRI-0001", "2000-01-01", "Chest CT with contrast"],
    "top-right": ["Axial", "Se 3000566 Lung 1.25 mm", "CT"],
    "bottom-left": ["Im 66/133", "Loc -177.5 mm", "Sp 2.50 mm"],
    "bottom-right": ["W 1600 L -600 (VOI)", "Zoom 37%", "Loading 12/133"],
}


def measure(text: str) -> float:
    return CHAR * len(text) + 2


def elide(text: str, width: float) -> str:
    n = int((width - 2) // CHAR) - 1
    return text[:max(0, n)] + "…" if n > 0 else ""


def layout(width, height, corners=CORNERS):
    letters = place_letters(width, height, {e: (t, measure(t), 13) for e, t in
                                            (("left", "R"), ("right", "L"), ("top", "A"), ("bottom", "P"))})
    placed = letters + place_corner_lines(width, height, corners, LINE, letters, measure, elide)
    bar = place_scale_bar(width, height, [(100, "5 cm", measure("5 cm")), (40, "2 cm", measure("2 cm"))], LINE,
                          placed)
    return placed + ([bar] if bar else [])


@pytest.mark.parametrize("width,height", [(120, 120), (196, 587), (340, 587), (589, 587), (1485, 988), (640, 90)])
def test_nothing_overlaps_and_everything_stays_inside(width, height):
    boxes = layout(width, height)
    assert overlapping_pairs(boxes) == []
    assert all(b.inside(width, height) for b in boxes)
    for b in boxes:  # a drawn text is either whole or visibly elided, never cut
        assert b.kind != "corner" or any(b.text == t or (b.text.endswith("…") and t.startswith(b.text[:-1]))
                                         for lines in CORNERS.values() for t in lines)


def test_a_wide_view_shows_every_line_whole():
    boxes = layout(1485, 988)
    shown = {b.text for b in boxes if b.kind == "corner"}
    assert shown == {t for lines in CORNERS.values() for t in lines}
    assert any(b.kind == "scale" and b.text == "5 cm" for b in boxes)


def test_a_short_view_drops_the_least_important_lines_first():
    boxes = layout(600, 110)
    top_left = [b.text for b in boxes if b.where == "top-left"]
    assert top_left == CORNERS["top-left"][:len(top_left)] and 0 < len(top_left) < 4


def test_the_shorter_line_of_a_row_stays_whole_and_the_longer_is_elided():
    width = 260  # row 3 of the top corners: no letter between them, 236 px for both
    corners = {"top-left": ["a", "b", "c", "A fairly long study description here"],
               "top-right": ["x", "y", "z", "Se 12"]}
    boxes = layout(width, 500, corners)
    row = {b.where: b.text for b in boxes if b.kind == "corner" and b.y == 6 + 3 * LINE}
    assert row["top-right"] == "Se 12"
    assert row["top-left"].endswith("…") and "A fairly long study description here".startswith(row["top-left"][:-1])


def test_finding_labels_move_out_of_the_way_or_shorten_or_go():
    letters = layout(400, 400)
    top = next(b for b in letters if b.kind == "letter" and b.where == "top")
    # a box right under the top letter: the label cannot go above it, it goes below
    anchor = (top.x - 4, top.bottom + 2, top.x + 20, top.bottom + 30)
    label = place_label(anchor, [("#1  0.90", measure("#1  0.90")), ("#1", measure("#1"))], LINE, 400, 400, letters)
    assert label is not None and not any(label.overlaps(b) for b in letters) and label.y >= anchor[3]
    crowded = letters + [TextBox("corner", "x", 0, 0, 400, 400)]
    assert place_label(anchor, [("#1", measure("#1"))], LINE, 400, 400, crowded) is None


def test_notices_wrap_at_spaces_to_the_width():
    text = "No DICOM images found in not-dicom — 2 files skipped"
    lines = wrap_words(text, measure("No DICOM images found"), measure)
    assert lines == ["No DICOM images found", "in not-dicom — 2", "files skipped"]
    assert all(measure(line) <= measure("No DICOM images found") for line in lines)
    assert wrap_words("averyveryverylongword x", 30, measure) == ["averyveryverylongword", "x"]


def test_scale_bar_options_are_round_lengths_near_a_fifth_of_the_view():
    options = scale_bar_options(0.5, 800)  # 0.5 mm per px: a fifth of the view is 80 mm
    assert options[0] == (pytest.approx(200.0), "10 cm")  # 100 mm is the round length nearest 80 mm
    assert [label for _, label in options] == ["10 cm", "5 cm", "2 cm", "1 cm"]  # then shorter, down to 20 px
    assert all(20 <= px <= 800 * 0.6 for px, _ in options)
    assert scale_bar_options(0.0, 800) == [] and scale_bar_options(float("nan"), 800) == []
