"""Measurements in mm and mm^2 from the affine, on any plane."""
from __future__ import annotations

import numpy as np
import pytest

from viewer.core.measure import (
    Measurement,
    ellipse_mask,
    evaluate,
    length_mm,
    probe_value,
    rectangle_mask,
    roi_stats,
)
from viewer.core.reformat import plane_geometry
from viewer.core.volume import Volume


def anisotropic_volume():
    aff = np.eye(4)
    aff[0, 0], aff[1, 1], aff[2, 2] = 0.7, 0.7, 2.5
    array = np.zeros((40, 64, 64), np.int16)
    return Volume(array, aff, modality="CT", slices_loaded=40)


def test_length_uses_the_affine():
    vol = anisotropic_volume()
    assert length_mm(vol.affine, (0, 0, 0), (100, 0, 0)) == pytest.approx(70.0)
    assert length_mm(vol.affine, (0, 0, 0), (0, 0, 4)) == pytest.approx(10.0)
    assert length_mm(vol.affine, (0, 0, 0), (3, 4, 0)) == pytest.approx(3.5)


def test_length_drawn_on_a_coronal_reformat_is_in_mm():
    vol = anisotropic_volume()
    coronal = plane_geometry(vol.affine, vol.shape, "coronal")
    p0 = coronal.index_from_display(10, 5, 20)
    p1 = coronal.index_from_display(10, 25, 20)  # 20 rows down = 20 slices = 50 mm
    m = evaluate(Measurement("length", "coronal", 10, [tuple(p0), tuple(p1)]), vol, coronal)
    assert m.result["length_mm"] == pytest.approx(50.0)
    assert m.summary() == "50.0 mm"


def test_masks_count_pixel_centres():
    rect = rectangle_mask((10, 10), (1.5, 2.5), (4.5, 6.5))  # rows 2..4, cols 3..6
    assert rect.sum() == 3 * 4 and rect[2, 3] and not rect[1, 3]
    big = ellipse_mask((200, 200), (20, 30), (180, 150))
    assert big.sum() == pytest.approx(np.pi * 80 * 60, rel=0.01)
    assert ellipse_mask((10, 10), (3, 3), (3, 8)).sum() == 0  # degenerate


def test_roi_stats_and_area():
    image = np.arange(100, dtype=np.int16).reshape(10, 10)
    mask = rectangle_mask(image.shape, (0, 0), (1, 1))
    stats = roi_stats(image, mask, area_mm2=2.0)
    assert (stats.mean, stats.min, stats.max, stats.n_pixels) == (5.5, 0, 11, 4)
    assert stats.sd == pytest.approx(np.std([0, 1, 10, 11]))
    empty = roi_stats(image, np.zeros_like(mask), 0.0)
    assert empty.n_pixels == 0 and np.isnan(empty.mean)


def test_ellipse_and_rectangle_roi_on_a_known_disc():
    vol = anisotropic_volume()
    yy, xx = np.mgrid[0:64, 0:64]
    disc = (yy - 32) ** 2 + (xx - 32) ** 2 <= 10**2
    vol.array[20][disc] = 100
    axial = plane_geometry(vol.affine, vol.shape, "axial")
    corners = [tuple(axial.index_from_display(20, 32 - 8, 32 - 8)), tuple(axial.index_from_display(20, 32 + 8, 32 + 8))]
    ell = evaluate(Measurement("ellipse", "axial", 20, corners), vol, axial).result
    assert ell["mean"] == 100 and ell["sd"] == 0 and ell["min"] == ell["max"] == 100
    assert ell["area_mm2"] == pytest.approx(np.pi * (8 * 0.7) ** 2)
    rect = evaluate(Measurement("rectangle", "axial", 20, corners), vol, axial).result
    assert rect["area_mm2"] == pytest.approx((16 * 0.7) ** 2)
    assert rect["n_pixels"] == 17 * 17 and rect["max"] == 100


def test_probe():
    vol = anisotropic_volume()
    vol.array[3, 4, 5] = -321
    assert probe_value(vol.array, (5.2, 3.8, 3.1)) == -321
    assert probe_value(vol.array, (-2, 0, 0)) is None
    m = evaluate(Measurement("probe", "axial", 3, [(5, 4, 3)]), vol, plane_geometry(vol.affine, vol.shape, "axial"))
    assert m.result["value"] == -321 and m.summary("HU") == "-321 HU"
    np.testing.assert_allclose(m.result["lps"], [3.5, 2.8, 7.5])
