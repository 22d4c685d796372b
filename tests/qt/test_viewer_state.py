"""The viewer shows a series through a DisplayState it may be handed (kept per series by its caller), and its
views drive the editing tools through typed pointer events."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.qt.conftest import click, drag, widget_pos_of_voxel
from viewer.core.display import DisplayState
from viewer.core.interaction import PointerPhase
from viewer.core.reformat import Plane
from viewer.core.volume import Volume
from viewer.qt.viewer_widget import ViewerWidget


def ct(n_slices: int = 20, seed: int = 0) -> Volume:
    array = np.random.default_rng(seed).integers(-1000, 400, size=(n_slices, 48, 40)).astype(np.int16)
    return Volume(array, np.diag([0.8, 0.8, 2.5, 1.0]), modality="CT", slices_loaded=n_slices)


@pytest.fixture
def viewer(qtbot):
    widget = ViewerWidget()
    qtbot.addWidget(widget)
    widget.resize(500, 500)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_a_kept_state_is_shown_as_it_was_left_and_stops_driving_the_views_when_put_away(viewer):
    first, second = ct(seed=1), ct(30, seed=2)
    kept = DisplayState(first)
    kept.set_slice("axial", 7)
    kept.apply_preset("lung")
    viewer.set_volume(first, state=kept)
    view = viewer.views[Plane.AXIAL]
    assert viewer.state is kept and view.k == 7
    np.testing.assert_array_equal(view.image_item.image, kept.display_image(first.array[7]))
    assert "(lung)" in viewer.overlay_lines(view)["bottom-right"][0]

    viewer.set_volume(second)  # a fresh state for the other series, opening at image 1
    assert viewer.state is not kept and view.k == 29
    kept.set_slice("axial", 3)  # the kept state moves off screen (e.g. a synced series): the views stay put
    assert view.k == 29 and viewer.state.slice_index("axial") == 29

    viewer.set_volume(first, state=kept)
    assert view.k == 3
    viewer.step(1)  # the viewer drives the kept state again
    assert kept.slice_index("axial") in (2, 4)

    with pytest.raises(ValueError):
        viewer.set_volume(second, state=kept)


class RecordingHandler:
    """A :class:`~viewer.core.interaction.ToolHandler` that records what the views send it."""

    def __init__(self) -> None:
        self.strokes: list[list] = []
        self.fills: list = []
        self.polygons: list = []

    def paint(self, press, erase):
        stroke = [(press, erase)]
        self.strokes.append(stroke)
        while True:
            event = yield
            stroke.append(event)
            if event.phase is PointerPhase.RELEASE:
                return

    def fill(self, click, erase=False, three_d=False):
        self.fills.append((click, erase, three_d))
        return 0

    def polygon(self, vertices, array_axis, erase=False):
        self.polygons.append((np.asarray(vertices), array_axis, erase))
        return 0


@pytest.mark.parametrize("plane", [Plane.AXIAL, Plane.CORONAL])
def test_the_views_hand_the_tool_handler_typed_events(viewer, qtbot, plane):
    volume = ct()
    viewer.set_volume(volume)
    viewer.set_layout("1x1", plane)
    handler = viewer.tool_handler = RecordingHandler()
    view = viewer.views[plane]
    qtbot.wait(20)
    start, end = (10, 20, 10), (30, 20, 10)  # voxel indices (x, y, z)
    viewer.state.set_position((20, 20, 10))
    viewer.set_tool("brush")
    drag(view.viewport(), widget_pos_of_voxel(view, start), widget_pos_of_voxel(view, end))
    (stroke,) = handler.strokes
    (press, erase), moves = stroke[0], stroke[1:]
    axis = view.geometry_.array_axis
    assert not erase and press.phase is PointerPhase.PRESS and press.plane is plane and press.array_axis == axis
    assert press.zyx == start[::-1]
    assert [e.phase for e in moves[:-1]] == [PointerPhase.MOVE] * (len(moves) - 1) and len(moves) >= 2
    assert moves[-1].phase is PointerPhase.RELEASE and moves[-1].zyx == end[::-1]
    assert all(e.zyx[axis] == press.zyx[axis] for e in moves), "a stroke stays on its slice"

    viewer.set_tool("fill")
    click(view.viewport(), widget_pos_of_voxel(view, start))
    (fill,) = handler.fills
    assert fill[0].zyx == start[::-1] and fill[1:] == (False, False)

    viewer.set_tool("brush")  # a click paints a dab: a stroke of a press and its release
    click(view.viewport(), widget_pos_of_voxel(view, end))
    assert [e.phase for e in handler.strokes[-1][1:]] == [PointerPhase.RELEASE]

    viewer.set_tool("polygon")  # a lasso with Alt held erases
    drag(view.viewport(), widget_pos_of_voxel(view, (10, 10, 10)), widget_pos_of_voxel(view, (30, 30, 10)),
         modifiers=Qt.KeyboardModifier.AltModifier)
    (vertices, array_axis, erase), = handler.polygons
    assert array_axis == axis and erase and len(vertices) >= 3
