"""Typed pointer interaction without Qt: events, the drag driver, and a brush stroke driven as a generator."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from viewer.core.editing.editor import AnnotationEditor
from viewer.core.editing.segmentation import SegmentLockedError
from viewer.core.interaction import DragDriver, Modifiers, PointerButton, PointerEvent, PointerPhase
from viewer.core.reformat import Plane, plane_geometry
from viewer.core.volume import Volume

PRESS, MOVE, RELEASE = PointerPhase.PRESS, PointerPhase.MOVE, PointerPhase.RELEASE


def make_volume():
    """Sagittal acquisition (rows down -S, columns along +P, slices towards R), anisotropic: every plane cuts
    the array along a different axis."""
    affine = np.eye(4)
    affine[:3, 0] = (0, 0.8, 0)
    affine[:3, 1] = (0, 0, -0.8)
    affine[:3, 2] = (-2.0, 0, 0)
    return Volume(np.zeros((12, 40, 36), np.int16), affine, modality="MR", series_uid="1.2.3")


def test_an_event_knows_its_voxel_and_keeps_the_exact_point():
    event = PointerEvent.at(PRESS, (2.4, 7.5, 3.6), "axial", 0, modifiers=Modifiers.ALT | Modifiers.SHIFT)
    assert event.zyx == (2, 8, 4) and event.point == (2.4, 7.5, 3.6)
    assert event.plane is Plane.AXIAL and event.button is PointerButton.LEFT
    assert Modifiers.ALT in event.modifiers and Modifiers.CTRL not in event.modifiers
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.zyx = (0, 0, 0)  # type: ignore[misc]


def test_the_driver_runs_press_moves_and_release_in_order():
    seen = []

    def drag(press):
        seen.append(("press", press.zyx))
        try:
            while True:
                event = yield
                seen.append((event.phase.value, event.zyx))
        finally:
            seen.append(("closed", None))

    press = PointerEvent.at(PRESS, (0, 1, 1), "axial", 0)
    driver = DragDriver(drag(press))
    assert seen == [("press", (0, 1, 1))] and driver.active
    assert driver.send(dataclasses.replace(press, phase=MOVE, zyx=(0, 2, 2)))
    assert not driver.send(dataclasses.replace(press, phase=RELEASE, zyx=(0, 3, 3)))
    assert seen[1:] == [("move", (0, 2, 2)), ("release", (0, 3, 3)), ("closed", None)]
    assert not driver.send(press), "a finished drag takes no more events"


def test_a_press_that_starts_nothing_leaves_the_driver_inactive():
    def declines(press):
        return
        yield  # a generator that returns on the press

    driver = DragDriver(declines(PointerEvent.at(PRESS, (0, 0, 0), "axial", 0)))
    assert not driver.active


def _stroke_points(geometry, k):
    rows = np.linspace(5, 25, 9)
    cols = np.linspace(4, 20, 9) + 0.3 * np.sin(rows)
    return geometry.index_from_display(k, rows, cols)[..., ::-1]  # continuous (z, y, x)


@pytest.mark.parametrize("plane", list(Plane))
@pytest.mark.parametrize("erase", [False, True])
def test_a_stroke_driven_by_events_paints_what_begin_stroke_to_end_paints(plane, erase):
    volume = make_volume()
    geometry = plane_geometry(volume.affine, volume.shape, plane)
    k = geometry.n_slices // 2
    points = _stroke_points(geometry, k)
    by_calls, by_events = AnnotationEditor(volume), AnnotationEditor(volume)
    for editor in (by_calls, by_events):
        editor.add_segment("lesion")
        if erase:  # something to erase: a wide stroke first
            editor.begin_stroke(points[0], 8.0, geometry.array_axis)
            editor.stroke_to(points[-1])
            editor.end_stroke()
    radius = 2.5
    by_calls.begin_stroke(points[0], radius, geometry.array_axis, erase=erase)
    for p in points[1:]:
        by_calls.stroke_to(p)
    by_calls.end_stroke()

    press = PointerEvent.at(PRESS, points[0], plane, geometry.array_axis)
    driver = DragDriver(by_events.stroke(press, radius, erase=erase))
    for p in points[1:-1]:
        assert driver.send(PointerEvent.at(MOVE, p, plane, geometry.array_axis))
    assert not driver.send(PointerEvent.at(RELEASE, points[-1], plane, geometry.array_axis))

    number = by_calls.segmentation.active
    expected = by_calls.segmentation.mask(number)
    np.testing.assert_array_equal(by_events.segmentation.mask(number), expected)
    assert expected.any() and not np.all(expected == (not erase))
    touched = np.flatnonzero(expected.any(axis=tuple(a for a in range(3) if a != geometry.array_axis)))
    if not erase:
        assert list(touched) == [k], "the stroke stays on its slice of the plane"
    assert not by_events.history.in_step
    assert by_events.history.undo() == by_calls.history.undo()  # one step, the same name


def test_a_stroke_dropped_without_release_is_still_one_step():
    volume = make_volume()
    editor = AnnotationEditor(volume)
    editor.add_segment("lesion")
    press = PointerEvent.at(PRESS, (6, 20, 18), "sagittal", 0)
    driver = DragDriver(editor.stroke(press, 3.0))
    driver.send(PointerEvent.at(MOVE, (6, 22, 20), "sagittal", 0))
    driver.close()  # the window lost the mouse
    assert not editor.history.in_step and editor.segmentation.mask(editor.segmentation.active).any()
    assert editor.history.undo().startswith("Brush stroke")


def test_a_stroke_into_a_locked_segment_fails_on_the_press_and_opens_no_step():
    volume = make_volume()
    editor = AnnotationEditor(volume)
    segment = editor.add_segment("lesion")
    editor.lock_segment(segment.number)
    with pytest.raises(SegmentLockedError):
        DragDriver(editor.stroke(PointerEvent.at(PRESS, (6, 20, 18), "sagittal", 0), 3.0))
    assert not editor.history.in_step
