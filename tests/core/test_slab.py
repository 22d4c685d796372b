"""Thick slabs (viewer.core.slab through DisplayState): the projection equals numpy over the right slices, for every
plane, at the volume's ends, for non-1 mm spacing and oblique-free flipped orientations."""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import data_path
from viewer.core.display import DisplayState
from viewer.core.reformat import Plane
from viewer.core.slab import Projection, project, slab_range, slab_slices
from viewer.core.volume import Volume

REDUCERS = {"mip": np.max, "minip": np.min}


@pytest.fixture(scope="module")
def lidc_volume():
    """LIDC-IDRI-0001: 512 x 512 x 133 int16 CT, 2.5 mm slices, about 0.7 mm pixels."""
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan

    series = max(scan([str(data_path("lidc-idri-0001"))]).all_series(), key=lambda s: s.n_instances)
    return load_series(series)


def reference(state: DisplayState, plane: Plane, start: int, stop: int, projection: str) -> np.ndarray:
    """The projection computed independently: every slice as drawn (PlaneGeometry.take), stacked, reduced."""
    geometry = state.geometry(plane)
    stack = np.stack([geometry.take(state.volume.array, j) for j in range(start, stop)])
    if projection == "avg":
        return np.rint(stack.astype(np.float64).mean(axis=0)).astype(stack.dtype)
    return REDUCERS[projection](stack, axis=0)


def test_thickness_to_slices_rounds_to_the_nearest_whole_slice():
    assert slab_slices(10, 1.0) == 10
    assert slab_slices(10, 2.5) == 4
    assert slab_slices(10, 0.703125) == 14  # 14.2 slices: 9.8 mm
    assert slab_slices(11.25, 2.5) == 5  # 4.5 slices: halves round up
    assert slab_slices(8.74, 2.5) == 3
    assert slab_slices(1.0, 2.5) == 1 and slab_slices(0.5, 2.5) == 1  # never fewer than one
    assert slab_slices(10, 0.0) == 1 and slab_slices(10, float("nan")) == 1


def test_slab_ranges_are_centred_and_clipped_at_the_ends():
    assert slab_range(50, 5, 133) == (48, 53)  # odd: two on each side
    assert slab_range(50, 4, 133) == (49, 53)  # even: the extra slice on the higher-index side
    assert slab_range(0, 4, 133) == (0, 3)
    assert slab_range(132, 4, 133) == (131, 133)
    assert slab_range(1, 10, 3) == (0, 3)  # thicker than the volume: the whole volume
    assert slab_range(7, 1, 133) == (7, 8)


@pytest.mark.parametrize("projection", ["mip", "minip", "avg"])
def test_lidc_slabs_equal_numpy_over_the_right_slices_in_every_plane(lidc_volume, projection):
    state = DisplayState(lidc_volume)
    state.set_slab(projection, 10.0)
    for plane in Plane:
        geometry = state.geometry(plane)
        n = geometry.n_slices
        count = slab_slices(10.0, geometry.slice_spacing)
        assert count == (4 if plane == Plane.AXIAL else 14), (plane, geometry.slice_spacing)
        for k in (0, 1, n // 2, n - 2, n - 1):  # both ends (shorter slabs) and the middle
            start, stop = state.slab_range(plane, k)
            assert (start, stop) == slab_range(k, count, n)
            assert start <= k < stop and (stop - start == count or start == 0 or stop == n)
            image = state.slice_image(plane, k)
            assert image.dtype == lidc_volume.array.dtype, "the window LUT path stays the single slice's"
            assert image.shape == geometry.image_shape
            np.testing.assert_array_equal(image, reference(state, plane, start, stop, projection),
                                          err_msg=f"{projection} {plane.value} k={k}")


def test_a_slab_differs_from_the_slice_and_mip_bounds_it(lidc_volume):
    state = DisplayState(lidc_volume)
    k = 70
    single = np.array(state.slice_image("axial", k))
    assert np.shares_memory(state.slice_image("axial", k), lidc_volume.array), "off: a view, as before"
    state.set_slab("mip", 10)
    mip = state.slice_image("axial", k)
    state.set_slab("minip")
    minip = state.slice_image("axial", k)
    state.set_slab("avg")
    avg = state.slice_image("axial", k)
    assert (mip >= single).all() and (minip <= single).all() and (minip <= avg).all() and (avg <= mip).all()
    assert (mip > single).mean() > 0.3  # the slab shows more than the slice (vessels, noise maxima)
    state.set_slab("none")
    np.testing.assert_array_equal(state.slice_image("axial", k), single)


def test_anisotropic_flipped_volume():
    # three different spacings, every axis pointing the "wrong" way (display flips in every plane)
    rng = np.random.default_rng(1)
    array = rng.integers(-1000, 1000, (20, 30, 40)).astype(np.int16)
    affine = np.array([[-0.8, 0, 0, 10], [0, -1.5, 0, 20], [0, 0, -3.0, 30], [0, 0, 0, 1]], float)
    state = DisplayState(Volume(array, affine, modality="CT"))
    state.set_slab("mip", 7.0)
    expected = {Plane.AXIAL: 2, Plane.CORONAL: 5, Plane.SAGITTAL: 9}  # 7/3 -> 2, 7/1.5 -> 5 (4.67), 7/0.8 -> 9
    for plane, count in expected.items():
        n = state.n_slices(plane)
        for k in (0, n // 2, n - 1):
            start, stop = state.slab_range(plane, k)
            assert (start, stop) == slab_range(k, count, n)
            for projection in ("mip", "minip", "avg"):
                state.set_slab(projection)
                np.testing.assert_array_equal(state.slice_image(plane, k),
                                              reference(state, plane, start, stop, projection))


def test_the_sagittal_decubitus_mr_slabs_along_its_own_normals(mr_sagittal_dir):
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan

    series = max(scan([str(mr_sagittal_dir)]).all_series(), key=lambda s: s.n_instances)
    mr = DisplayState(load_series(series))
    mr.set_slab("avg", 12.0)
    for plane in Plane:
        k = mr.slice_index(plane)
        start, stop = mr.slab_range(plane, k)
        assert start <= k < stop and stop - start <= slab_slices(12.0, mr.geometry(plane).slice_spacing)
        np.testing.assert_array_equal(mr.slice_image(plane, k), reference(mr, plane, start, stop, "avg"))


def test_float_volumes_average_in_float32():
    array = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2) / 7
    state = DisplayState(Volume(array, np.eye(4), modality="MR"))
    state.set_slab("avg", 3.0)
    image = state.slice_image("axial", 1)
    assert image.dtype == np.float32
    np.testing.assert_allclose(image, array[0:3].mean(axis=0), rtol=1e-6)


def test_slab_state_toggle_cycle_steps_event_and_labels(lidc_volume):
    state = DisplayState(lidc_volume)
    seen = []
    state.slab_changed.connect(lambda *args: seen.append(args))
    assert state.projection == Projection.NONE and not state.slab_on and state.slab_label("axial") == ""
    assert state.toggle_slab() == Projection.MIP and state.slab_mm == 10.0  # on: 10 mm MIP
    assert seen == [(Projection.MIP, 10.0)]
    k = state.slice_index("axial")
    assert state.slab_label("axial", 60) == "MIP 10 mm (4 im)"
    assert state.slab_label("coronal") == "MIP 10 mm (14 im)"
    assert state.slab_label("axial", 0) == "MIP 10 mm (3 im)"  # clipped at the end
    assert state.cycle_projection() == Projection.MINIP and state.cycle_projection() == Projection.AVG
    assert state.cycle_projection() == Projection.MIP
    assert state.step_slab(+1) == 15.0 and state.step_slab(-1) == 10.0 and state.step_slab(-1) == 7.5
    state.set_slab(thickness_mm=1000)
    assert state.slab_mm == 200.0  # clipped to the range
    with pytest.raises(ValueError):
        state.set_slab(thickness_mm=float("nan"))
    with pytest.raises(ValueError):
        state.set_slab("maximum")
    n_events = len(seen)
    state.set_slab("mip", 200.0)  # no change: no event
    assert len(seen) == n_events
    state.set_slab("minip", 10)
    assert state.toggle_slab() == Projection.NONE
    assert state.toggle_slab() == Projection.MINIP and state.slab_mm == 10.0  # back as it was
    assert state.slice_index("axial") == k, "a slab never moves the position"


def test_probe_values_on_a_slab_are_named_and_exact(lidc_volume):
    state = DisplayState(lidc_volume)
    xyz = (256.2, 300.4, 70.0)
    assert state.slab_value_at(xyz, "axial") is None  # off
    state.set_slab("mip", 10)
    for plane in Plane:
        geometry = state.geometry(plane)
        k = geometry.slice_of(xyz)
        _, row, col = np.floor(geometry.display_from_index(np.asarray(xyz)) + 0.5).astype(int)
        assert state.slab_value_at(xyz, plane) == float(state.slice_image(plane, k)[row, col])
    # the plain value stays the voxel's own (the centre slice), whatever is drawn
    x, y, z = (int(round(v)) for v in xyz)
    assert state.value_at(xyz) == float(lidc_volume.array[z, y, x])
    assert state.slab_value_at((-5, 0, 0), "axial") is None


def test_repaints_of_a_still_slab_reuse_it_and_loading_clips_it():
    array = np.zeros((10, 4, 4), np.int16)
    array[6:] = 100  # decoded from the top: slices 6..9 arrived, the rest are still blank
    volume = Volume(array, np.eye(4), modality="CT", slices_loaded=4, loads_from_top=True)
    state = DisplayState(volume)
    state.set_slab("minip", 5)
    assert state.slab_range("axial", 7) == (6, 10), "blank slices 5 and below are left out while loading"
    assert (state.slice_image("axial", 7) == 100).all()
    assert state.slice_image("axial", 7) is state.slice_image("axial", 7)  # cached for repaints / W-L drags
    volume.array[:6] = 50
    volume.slices_loaded = 10
    assert state.slab_range("axial", 7) == (5, 10)
    assert (state.slice_image("axial", 7) == 50).all(), "more slices arrived: the cache is not stale"
    with pytest.raises(ValueError):
        project(array, state.geometry("axial"), 3, 3, "mip")
