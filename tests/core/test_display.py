"""DisplayState: one linked point drives the slices of every plane; window and zoom are evented."""
from __future__ import annotations

import numpy as np
import pytest

from viewer.core.display import DisplayState
from viewer.core.events import Event
from viewer.core.reformat import Plane
from viewer.core.volume import Volume
from viewer.core.windowing import Window


def make_state(modality="CT", default_window=(40.0, 400.0)):
    aff = np.diag([0.7, 0.7, 2.5, 1.0])
    array = np.zeros((30, 40, 50), np.int16)
    volume = Volume(array, aff, modality=modality, default_window=default_window, slices_loaded=30)
    return DisplayState(volume)


def test_signal_connect_emit_disconnect():
    sig, seen = Event(), []
    sig.connect(seen.append)
    sig.connect(seen.append)
    sig.emit(1)
    sig.disconnect(seen.append)
    sig.emit(2)
    assert seen == [1]


def test_slices_follow_the_linked_point():
    state = make_state()
    moves = []
    state.position_changed.connect(moves.append)
    assert state.slice_index(Plane.AXIAL) == 29  # axial CT opens at image 1, the most superior slice
    state.set_slice("axial", 0)
    moves.clear()
    assert state.n_slices("axial") == 30 and state.n_slices("coronal") == 40 and state.n_slices("sagittal") == 50
    state.set_slice("axial", 12)
    assert state.slice_index("axial") == 12 and len(moves) == 1
    state.set_slice("coronal", 7)
    assert state.slice_index("coronal") == 7 and state.slice_index("axial") == 12
    assert state.step("axial", 100) == 29
    assert state.step("axial", 1, wrap=True) == 0
    state.set_slice("axial", 0)  # no move, no event
    assert len(moves) == 4


def test_position_lps_round_trip():
    state = make_state()
    state.set_position_lps([7.0, 14.0, 25.0])
    np.testing.assert_allclose(state.position, [10, 20, 10])
    np.testing.assert_allclose(state.position_lps, [7.0, 14.0, 25.0])
    state.set_position([-5, 1000, 3])
    np.testing.assert_allclose(state.position, [0, 39, 3])


def test_window_presets_invert_and_reset():
    state = make_state()
    events = []
    state.window_changed.connect(lambda w, inv, name: events.append((w, inv, name)))
    assert state.window == Window(40, 400) and state.window_name == "VOI"
    assert state.apply_preset(1).name == "lung"
    assert state.window == Window(-600, 1500) and state.window_name == "lung"
    assert state.apply_preset(9) is None
    state.apply_preset("bone")
    assert state.toggle_invert() is True
    state.reset_window()
    assert state.window == Window(40, 400) and state.invert
    assert [e[2] for e in events] == ["lung", "bone", "bone", "VOI"]


def test_mr_without_voi_opens_with_auto_window():
    state = make_state(modality="MR", default_window=None)
    assert state.window_name == "auto"


def test_zoom_events():
    state = make_state()
    seen = []
    state.zoom_changed.connect(lambda p, z: seen.append((p, z)))
    state.set_zoom("axial", 2.0)
    state.set_zoom("axial", 2.0)
    assert seen == [(Plane.AXIAL, 2.0)] and state.zoom(Plane.AXIAL) == pytest.approx(2.0)


def test_pixels_are_read_through_the_display_state():
    """What a view draws and reads out: slice ``k`` of each plane as displayed, and the value at a voxel index."""
    aff = np.diag([0.7, 0.7, 2.5, 1.0])
    array = np.arange(30 * 40 * 50, dtype=np.int32).reshape(30, 40, 50)
    state = DisplayState(Volume(array, aff, modality="CT", slices_loaded=30))
    for plane in Plane:
        geometry = state.geometry(plane)
        image = state.slice_image(plane, 3)
        np.testing.assert_array_equal(image, geometry.take(array, 3))
        assert np.shares_memory(image, array)  # no copy on the scrolling path
    assert state.value_at((4, 5, 6)) == float(array[6, 5, 4])
    assert state.value_at((4.4, 5.4, 5.6)) == float(array[6, 5, 4])  # the nearest voxel
    assert state.value_at((-1, 0, 0)) is None


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32])
def test_the_display_image_follows_window_and_inversion(dtype):
    from viewer.core.windowing import apply_window

    rng = np.random.default_rng(1)
    array = rng.integers(0, 250, size=(6, 20, 24)).astype(dtype)
    state = DisplayState(Volume(array, np.diag([0.7, 0.7, 2.5, 1.0]), modality="CT", slices_loaded=6))
    image = state.slice_image("axial", 2)
    for window, invert in ((Window(100.0, 80.0), False), (Window(60.0, 20.0), False), (Window(60.0, 20.0), True)):
        state.set_window(window)
        state.set_invert(invert)
        shown = state.display_image(image)
        assert shown.dtype == np.uint8
        np.testing.assert_array_equal(shown, apply_window(image, window, invert))
    promoted = image.astype(np.float32)  # loading may promote the volume: the table follows the dtype
    np.testing.assert_array_equal(state.display_image(promoted), apply_window(promoted, state.window, True))
