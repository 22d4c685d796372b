"""Blob candidates: round dense spots inside the lungs are proposed, vessels (tubes) and spots outside are not."""
from __future__ import annotations

import numpy as np
import pytest

from inference.models.blob_candidates import blob_candidates

SPACING = np.array([1.25, 1.25, 2.5])  # the built-in network's grid, (x, y, z) mm


def _lung(shape=(96, 96, 48)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image 0..1 (lung air ~ -860 HU), its lung mask and the (x, y, z) mm coordinates of every voxel."""
    rng = np.random.default_rng(3)
    image = np.full(shape, 0.1, np.float32) + rng.normal(0, 0.01, shape).astype(np.float32)
    mm = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, SPACING)], indexing="ij"), axis=-1)
    lung = np.ones(shape, bool)
    return image, lung, mm


def _centres_mm(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :3] + boxes[:, 3:]) / 2 * SPACING


def test_small_and_large_nodules_found_and_sized_vessel_not():
    image, lung, mm = _lung()
    nodules = {(30.0, 40.0, 60.0): 4.0, (80.0, 70.0, 40.0): 12.0}  # centre (x, y, z) mm: diameter
    for centre, diameter in nodules.items():
        image[np.linalg.norm(mm - centre, axis=-1) <= diameter / 2] = 0.7  # soft tissue, ~ -20 HU
    # a vessel 4 mm across running along z, far from both nodules
    image[np.hypot(mm[..., 0] - 100.0, mm[..., 1] - 20.0) <= 2.0] = 0.7
    boxes, strengths = blob_candidates(image, lung, SPACING)
    assert np.all(np.diff(strengths) <= 0), "strongest first"
    centres = _centres_mm(boxes)
    for centre, diameter in nodules.items():
        distance = np.linalg.norm(centres - centre, axis=1)
        best = int(np.argmin(distance))
        assert distance[best] <= 2.5, f"{diameter} mm nodule not proposed"
        extent = (boxes[best, 3:] - boxes[best, :3]) * SPACING
        assert 0.5 * diameter <= extent.max() <= 2.0 * diameter, (diameter, extent)
    on_vessel = np.hypot(centres[:, 0] - 100.0, centres[:, 1] - 20.0) <= 3.0
    # only the vessel's ends (where it meets the volume's edge, a blunt cap) may look round
    inner_vessel = on_vessel & (centres[:, 2] > 15) & (centres[:, 2] < 100)
    assert not inner_vessel.any(), centres[inner_vessel]


def test_nothing_outside_the_lungs_and_cap():
    image, lung, mm = _lung()
    image[np.linalg.norm(mm - (60.0, 60.0, 60.0), axis=-1) <= 5.0] = 0.7
    lung[:, :, :] = False
    assert len(blob_candidates(image, lung, SPACING)[0]) == 0
    lung[:] = True
    rng = np.random.default_rng(0)
    for centre in rng.uniform((10, 10, 10), (110, 110, 110), (30, 3)):
        image[np.linalg.norm(mm - centre, axis=-1) <= 2.5] = 0.7
    boxes, _ = blob_candidates(image, lung, SPACING, max_candidates=5)
    assert len(boxes) == 5


@pytest.mark.parametrize("shape", [(40, 40, 1), (40, 40, 3), (3, 40, 10), (40, 1, 10), (4, 4, 4), (7, 7, 7)])
def test_a_grid_too_thin_for_the_filters_gives_no_candidates_instead_of_an_error(shape):
    """The recursive Gaussian needs 4 voxels along each axis: a study of a few slices has fewer on the network's
    grid (and its in-plane half-resolution grid halves x and y)."""
    image = np.full(shape, 0.1, np.float32)
    image[tuple(n // 2 for n in shape)] = 0.7
    boxes, strengths = blob_candidates(image, np.ones(shape, bool), SPACING)
    assert boxes.shape[1] == 6 and len(boxes) == len(strengths)


def test_a_small_nodule_on_the_chest_wall_is_proposed():
    """A 5 mm nodule against the wall is a half sphere: across the wall it is no blob (its Hessian's third
    eigenvalue is weak), yet it is a nodule. The calibration phantoms' 3-5 mm juxtapleural nodules had no candidate
    before the wall rule."""
    image, lung, mm = _lung()
    wall = mm[..., 0] >= 60.0  # soft tissue beyond x = 60 mm: the chest wall
    image[wall] = 0.7
    lung[wall] = False
    centre = np.array([58.5, 60.0, 60.0])  # against the wall, most of it in the lung
    image[np.linalg.norm(mm - centre, axis=-1) <= 2.5] = 0.7
    boxes, _ = blob_candidates(image, lung, SPACING)
    assert len(boxes) and np.linalg.norm(_centres_mm(boxes) - centre, axis=1).min() <= 2.5
    # a flat wall alone gives nothing along it
    image, lung, mm = _lung()
    image[wall], lung[wall] = 0.7, False
    boxes, _ = blob_candidates(image, lung, SPACING)
    assert not len(boxes) or (np.abs(_centres_mm(boxes)[:, 0] - 60.0) > 6).all()
