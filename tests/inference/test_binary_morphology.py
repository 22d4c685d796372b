"""The numpy binary morphology gives SimpleITK's answers, voxel for voxel (the detector's candidates depend on it)."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from inference.binary_morphology import ball_close, box_dilate, fill_holes


def _sitk(filter_, mask: np.ndarray, *args) -> np.ndarray:
    return sitk.GetArrayFromImage(filter_(sitk.GetImageFromArray(mask.astype(np.uint8)), *args)).astype(bool)


def _masks(seed: int):
    """Random masks of odd shapes and densities, and one with structure against every face of the grid."""
    rng = np.random.default_rng(seed)
    for density in (0.03, 0.3, 0.6):
        yield rng.random(tuple(rng.integers(7, 40, 3))) < density
    shape = (30, 26, 20)
    shell = np.zeros(shape, bool)
    shell[3:25, 4:22, 2:18] = True
    shell[6:22, 7:19, 5:15] = False  # a closed hollow box: its inside is a hole
    shell[0, :, :] = True  # a wall on a face of the grid
    yield shell


@pytest.mark.parametrize("radius", [(1, 1, 1), (4, 4, 2), (2, 3, 1), (0, 2, 3)])
def test_box_dilation_is_sitk_box_dilation(radius):
    for mask in _masks(1):
        expected = _sitk(sitk.BinaryDilate, mask, [int(r) for r in radius[::-1]], sitk.sitkBox)
        assert np.array_equal(box_dilate(mask, radius), expected)


@pytest.mark.parametrize("radius", [(2, 2, 2), (1, 2, 3), (2, 2, 1), (4, 4, 2)])
def test_ball_closing_is_sitk_ball_closing(radius):
    for mask in _masks(2):
        expected = _sitk(sitk.BinaryMorphologicalClosing, mask, [int(r) for r in radius[::-1]], sitk.sitkBall)
        got = ball_close(mask, radius)
        assert got.shape == mask.shape and np.array_equal(got, expected)


def test_hole_filling_is_sitk_hole_filling():
    for mask in _masks(3):
        filled = fill_holes(mask)
        assert np.array_equal(filled, _sitk(sitk.BinaryFillhole, mask))
    shell = list(_masks(3))[-1]
    assert fill_holes(shell)[10:18, 10:16, 8:12].all() and not shell[10:18, 10:16, 8:12].any()
