"""Right first time: the series window, where a series opens and which way it scrolls (display order)."""
from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest

from tests.conftest import data_path
from viewer.core.dicom.load import load_series
from viewer.core.dicom.scan import scan
from viewer.core.display import DisplayState, ImageOrder
from viewer.core.reformat import Plane
from viewer.core.volume import Volume
from viewer.core.windowing import Window, apply_window, series_window


def load_only_series(folder):
    series = [s for s in scan(folder).all_series() if s.kind == "image"]
    assert len(series) == 1, [s.key for s in series]
    return load_series(series[0])


@pytest.fixture(scope="module")
def lidc_volume():
    return load_only_series(data_path("lidc-idri-0001"))


@pytest.fixture(scope="module")
def noisy_first_mr(tmp_path_factory):
    """The real sagittal MR, its first slice (array index 0, the loader's lead) replaced by noise with W 22 L 11.

    (The real series already ends in a near-empty edge slice stored with W 9 L 4: InstanceNumber 1.)
    """
    source = data_path("mr-decubitus-hfdr", "2_t1_fl2d_sag")
    folder = tmp_path_factory.mktemp("mr-noisy-first")
    files = sorted(source.glob("*.dcm"))
    lead_uid = load_only_series(source).slice_sop_uids[0]
    first = next(f for f in files if pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID == lead_uid)
    for f in files:
        if f != first:
            shutil.copy(f, folder / f.name)
    ds = pydicom.dcmread(first)
    rng = np.random.default_rng(0)
    ds.PixelData = rng.integers(0, 23, size=(ds.Rows, ds.Columns), dtype=np.uint16).tobytes()
    ds.WindowCenter, ds.WindowWidth = 11, 22
    ds.save_as(folder / first.name)
    return load_only_series(folder), ds.SOPInstanceUID


def test_series_window_is_the_median_of_the_central_images():
    windows = [(11.0, 22.0)] + [(600.0 + i, 1200.0 + 10 * i) for i in range(9)]
    assert series_window(windows) == Window(603.0, 1230.0)  # images 2..6 vote; the noise image is not central
    assert series_window([None, None]) is None
    assert series_window([(0, 10), (0, 100), (0, 10), (0, 100)]) is None  # disagree by 10x: no stored window


def test_mr_whose_first_image_is_noise_opens_with_a_window_that_shows_the_anatomy(noisy_first_mr):
    volume, noisy_uid = noisy_first_mr
    state = DisplayState(volume)
    noisy_k = volume.slice_sop_uids.index(noisy_uid)
    assert volume.default_window == volume.slice_windows[0] and noisy_k == 0  # the loader's lead image is the noise
    assert volume.slice_windows[noisy_k] == (11.0, 22.0)
    central = [w for w in volume.slice_windows[len(volume.slice_windows) // 4: -len(volume.slice_windows) // 4]]
    assert state.window_name == "VOI"
    assert state.window == Window(float(np.median([c for c, _ in central])), float(np.median([w for _, w in central])))
    assert state.window.width > 500  # not the noise image's 22
    middle = volume.array[volume.shape[0] // 2]
    shown = apply_window(middle, state.window)
    assert (shown == 255).mean() < 0.05 and shown.std() > 20  # anatomy, not a white slab
    # the first image's own window is still one action away, and "0" (reset) goes back to the series window
    state.set_slice(Plane.SAGITTAL, noisy_k)
    assert state.image_window() == Window(11, 22) and state.window_name == "VOI image"
    state.reset_window()
    assert state.window.width > 500 and state.window_name == "VOI"


def test_mr_opens_at_the_middle_image(noisy_first_mr):
    volume, _ = noisy_first_mr
    state = DisplayState(volume)
    assert state.native_plane == Plane.SAGITTAL
    assert state.slice_index(Plane.SAGITTAL) == (volume.shape[0] - 1) // 2


def test_lidc_opens_at_the_top_and_down_goes_to_the_feet(lidc_volume):
    state = DisplayState(lidc_volume)
    n = lidc_volume.shape[0]
    z_of = lambda k: float(lidc_volume.index_to_lps((0, 0, k))[2])  # noqa: E731 - LPS +z is superior
    top = max(range(n), key=z_of)
    assert state.slice_index("axial") == top and state.display_number("axial") == 1
    assert z_of(top) == pytest.approx(-10.0)  # InstanceNumber 1 of LIDC-IDRI-0001, the most superior slice
    before = z_of(state.slice_index("axial"))
    assert state.step_display("axial", +1) == 2  # Down / wheel-down
    after = z_of(state.slice_index("axial"))
    assert after < before  # towards the feet
    state.go_to_number("axial", n)
    assert z_of(state.slice_index("axial")) == min(z_of(k) for k in range(n))
    assert state.step_display("axial", +1) == n  # clipped at the last image
    assert state.step_display("axial", +1, wrap=True) == 1  # cine wraps to the top


def test_as_acquired_counts_in_instance_number_order(lidc_volume):
    state = DisplayState(lidc_volume)
    state.set_image_order(ImageOrder.AS_ACQUIRED)
    k1 = state.slice_for_number("axial", 1)
    assert lidc_volume.instance_numbers[k1] == min(n for n in lidc_volume.instance_numbers)
    # a stack whose instance numbers climb from the feet to the head: as acquired reverses head first
    feet_first = Volume(lidc_volume.array[:5], lidc_volume.affine, modality="CT",
                        instance_numbers=[1, 2, 3, 4, 5])
    state = DisplayState(feet_first)
    assert state.slice_for_number("axial", 1) == 4  # head first: the most superior (highest index)
    state.set_image_order("as_acquired")
    assert state.slice_for_number("axial", 1) == 0 and state.display_number("axial", 0) == 1
    state.go_to_number("axial", 1)
    state.step_display("axial", 1)
    assert state.slice_index("axial") == 1  # Down now follows the acquisition, up the array


def test_head_first_order_of_coronal_and_sagittal(lidc_volume):
    state = DisplayState(lidc_volume)
    for plane, lps_axis, towards in ((Plane.CORONAL, 1, -1), (Plane.SAGITTAL, 0, -1)):
        geometry = state.geometry(plane)
        first, second = (state.slice_for_number(plane, n) for n in (1, 2))
        centre = np.array([255.5, 255.5, 66.0])
        a, b = centre.copy(), centre.copy()
        a[geometry.through_axis], b[geometry.through_axis] = first, second
        step = lidc_volume.index_to_lps(b)[lps_axis] - lidc_volume.index_to_lps(a)[lps_axis]
        assert step * towards < 0, plane  # image 1 is the most anterior / most right, Down goes back / left


def test_disagreeing_stored_windows_give_a_percentile_window_of_the_central_slab(noisy_first_mr):
    volume, _ = noisy_first_mr
    n = volume.shape[0]
    odd = Volume(volume.array, volume.affine, modality="MR", slices_loaded=n,
                 slice_windows=[(11.0, 22.0) if k % 2 else (700.0, 1400.0) for k in range(n)])
    state = DisplayState(odd)
    assert state.window_name == "auto"
    lo, hi = np.percentile(volume.array[n // 4: n // 4 + round(n / 2)], [0.5, 99.5])
    assert 0.5 * (hi - lo) < state.window.width < 1.5 * (hi - lo)  # spans the anatomy, not 22 wide
    no_windows = Volume(volume.array[:3], volume.affine, modality="CT", slices_loaded=3, slice_windows=[None] * 3)
    assert DisplayState(no_windows).window_name == "default"  # CT without VOI: soft tissue
