"""Window/level maths: DICOM linear VOI, presets, parsing, percentile auto window, LUTs, drag."""
from __future__ import annotations

import numpy as np
import pytest

from viewer.core.volume import Volume
from viewer.core.windowing import (
    CT_PRESETS,
    Window,
    apply_window,
    auto_window,
    drag_window,
    find_preset,
    initial_window,
    parse_window,
    window_lut,
)


def test_dicom_linear_bounds():
    lo, hi = Window(40, 400).bounds
    assert (lo, hi) == (40 - 0.5 - 199.5, 40 - 0.5 + 199.5)
    assert Window(0, 0).width == 1.0  # width is at least 1


def test_presets_in_number_key_order():
    assert [p.name for p in CT_PRESETS] == ["lung", "mediastinum", "bone", "brain", "abdomen", "liver"]
    assert find_preset("Lung").window == Window(-600, 1500)
    assert find_preset("nope") is None


def test_parse_window_accepts_names_and_width_level():
    assert parse_window("lung") == Window(-600, 1500)
    assert parse_window("1500,-600") == Window(-600, 1500)
    assert parse_window(" 80 , 40 ") == Window(40, 80)
    for bad in ("", "lungs", "1500", "a,b", "-5,40"):
        with pytest.raises(ValueError):
            parse_window(bad)


def test_apply_window_black_below_white_above_linear_between():
    window = Window(0, 101)  # ramp from -50.5 to 49.5
    values = np.array([-1000, -51, -50, 0, 49, 50, 1000], dtype=np.int16)
    out = apply_window(values, window)
    assert out[0] == 0 and out[1] == 0 and out[-1] == 255 and out[-2] == 255
    assert 120 <= out[3] <= 135
    assert np.all(np.diff(out.astype(int)) >= 0)
    np.testing.assert_array_equal(apply_window(values, window, invert=True), 255 - out)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8, np.int8])
def test_bit_pattern_lut_equals_arithmetic_window(dtype):
    info = np.iinfo(dtype)
    values = np.linspace(info.min, info.max, 5000).astype(dtype)
    for window in (Window(40, 400), Window(-600, 1500), Window(100, 3)):
        lut = window_lut(window, dtype)
        arithmetic = apply_window(values.astype(np.float32), window)
        np.testing.assert_array_equal(apply_window(values, window, lut=lut), arithmetic)
    assert window_lut(Window(0, 10), np.float32) is None


def test_auto_window_follows_tissue_not_background():
    rng = np.random.default_rng(0)
    image = np.zeros((64, 64), dtype=np.int16)
    image[16:48, 16:48] = rng.normal(500, 50, size=(32, 32)).astype(np.int16)
    window = auto_window(image)
    lo, hi = window.bounds
    assert 300 < lo < 450 and 550 < hi < 700


def test_initial_window_prefers_voi_then_ct_default_then_auto():
    arr = np.zeros((2, 8, 8), np.int16)  # air / background 0, tissue 100 and 300
    arr[:, 2:4] = 100
    arr[:, 4:6] = 300
    ct = Volume(arr, np.eye(4), modality="CT", default_window=(-600.0, 1500.0), slices_loaded=2)
    assert initial_window(ct) == (Window(-600, 1500), "VOI")
    ct.default_window = None
    assert initial_window(ct)[1] == "default"
    mr = Volume(arr, np.eye(4), modality="MR", slices_loaded=2)
    window, source = initial_window(mr)
    assert source == "auto" and window.bounds[0] <= 100 and window.bounds[1] >= 299


def test_drag_window_directions():
    start = Window(40, 400)
    assert drag_window(start, dx=10, dy=0).width > 400  # right widens
    assert drag_window(start, dx=-10, dy=0).width < 400
    assert drag_window(start, dx=0, dy=10).center > 40  # down raises the level
    assert drag_window(start, dx=-10_000, dy=0).width == 1.0
