"""Editing tools as pure functions: exact footprints in mm on anisotropic grids, HU ranges, fills, polygons,
interpolation and island removal - each returning before/after over a box and changing nothing itself."""
from __future__ import annotations

import numpy as np
import pytest

from viewer.core.editing import tools
from viewer.core.editing.segmentation import Segmentation

# spacing (z, y, x) = (4.0, 1.0, 0.5) mm: strongly anisotropic on purpose
AFFINE = np.diag([0.5, 1.0, 4.0, 1.0])
SHAPE = (12, 60, 80)


def _seg() -> Segmentation:
    seg = Segmentation(SHAPE, AFFINE)
    seg.add_segment("a")
    seg.add_segment("b")
    return seg


def _distance_mm(center, axis):
    zz, yy, xx = np.indices(SHAPE, dtype=float)
    spacing = (4.0, 1.0, 0.5)
    d2 = sum(((g - c) * s) ** 2 for a, (g, c, s) in enumerate(zip((zz, yy, xx), center, spacing)) if a != axis)
    return np.sqrt(d2), [zz, yy, xx][axis]


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_round_brush_is_round_in_mm_in_each_plane_and_the_tool_changes_nothing_itself(axis):
    seg = _seg()
    center = (6, 30, 40)
    changes = tools.brush(seg, 1, center, 6.0, axis)
    assert seg[1].mask.count() == 0  # pure: only the returned change says what to do
    (change,) = changes
    assert not change.before.any() and change.changed == change.after.sum()
    seg.apply(changes)
    distance, along = _distance_mm(center, axis)
    expected = (distance <= 6.0) & (along == center[axis])
    assert np.array_equal(seg.mask(1), expected)
    extent = [np.ptp(np.nonzero(expected)[a]) + 1 for a in range(3)]
    # 6 mm reaches 12 voxels of 0.5 mm, 6 of 1 mm and 1 of 4 mm either side
    assert extent[2] == (1 if axis == 2 else 25) and extent[1] == (1 if axis == 1 else 13)
    assert extent[0] == (1 if axis == 0 else 3)


def test_a_stroke_polyline_leaves_no_gaps_and_the_eraser_removes_only_its_footprint():
    seg = _seg()
    seg.apply(tools.brush(seg, 1, [[6, 10, 10], [6, 10, 70]], 2.0))
    row = seg.mask(1)[6, 10]
    assert row[10:71].all()  # a fast mouse jump of 60 voxels is filled in
    seg.apply(tools.erase(seg, 1, [6, 10, 40], 2.0))
    distance, _ = _distance_mm((6, 10, 40), 0)
    mask = seg.mask(1)
    assert not mask[6][distance[6] <= 2.0].any() and mask[6, 10, 20] and mask[6, 10, 60]
    assert tools.erase(seg, 2, [6, 10, 40], 2.0) == []  # nothing to erase: no change


def test_threshold_brush_paints_only_voxels_inside_the_hu_range():
    seg = _seg()
    image = np.full(SHAPE, -800, np.int16)
    image[:, :, 40:] = 50
    seg.apply(tools.brush(seg, 1, [6, 30, 40], 8.0, image=image, hu_range=(-100, 200)))
    mask = seg.mask(1)
    assert mask.any() and np.all(image[mask] == 50) and not mask[:, :, :40].any()
    with pytest.raises(ValueError, match="image"):
        tools.brush(seg, 1, [6, 30, 40], 8.0, hu_range=(0, 1))


def test_flood_fill_2d_and_3d_within_an_hu_range():
    seg = _seg()
    image = np.full(SHAPE, -1000, np.int16)
    image[3:9, 20:40, 20:50] = 40  # a block
    image[3:9, 20:40, 35] = -1000  # a wall splitting it in x
    seg.apply(tools.flood_fill(seg, 1, (5, 30, 25), image=image, hu_range=(0, 100), axis=0))
    expected = np.zeros(SHAPE, bool)
    expected[5, 20:40, 20:35] = True
    assert np.array_equal(seg.mask(1), expected)
    seg.apply(tools.flood_fill(seg, 2, (5, 30, 25), image=image, hu_range=(0, 100)))
    expected3 = np.zeros(SHAPE, bool)
    expected3[3:9, 20:40, 20:35] = True
    assert np.array_equal(seg.mask(2), expected3)
    assert tools.flood_fill(seg, 2, (0, 0, 0), image=image, hu_range=(0, 100)) == []  # seed outside the range


def test_flood_fill_of_the_same_label_fills_the_hole_inside_a_contour():
    seg = _seg()
    ring = np.zeros(SHAPE, bool)
    ring[6, 10:30, 10:30] = True
    ring[6, 12:28, 12:28] = False
    seg.apply([tools.MaskChange(1, (0, 0, 0, *SHAPE), np.zeros(SHAPE, bool), ring)])
    seg.apply(tools.flood_fill(seg, 1, (6, 20, 20), axis=0))
    filled = ring.copy()
    filled[6, 12:28, 12:28] = True
    assert np.array_equal(seg.mask(1), filled)


def test_polygon_fill_uses_voxel_centres_in_the_plane():
    seg = _seg()
    # a right triangle in the coronal plane (axis 1 = y held at 30): vertices (z, y, x)
    seg.apply(tools.polygon_fill(seg, 1, [[1, 30, 10], [1, 30, 50], [11, 30, 10]], axis=1))
    mask = seg.mask(1)
    assert mask[:, :30].sum() == 0 and mask[:, 31:].sum() == 0
    zz, xx = np.nonzero(mask[:, 30])
    # inside: z >= 1, x >= 10 and below the hypotenuse z - 1 < (50 - x) / 4 (x-range 40 over z-range 10)
    assert np.all((zz >= 1) & (xx >= 10) & ((zz - 1) * 4 < 50 - xx))
    assert mask[2, 30, 12] and not mask[10, 30, 45]
    seg.apply(tools.polygon_fill(seg, 1, [[1, 30, 10], [1, 30, 50], [11, 30, 10]], axis=1, erase=True))
    assert not seg.mask(1).any()


def test_interpolation_fills_the_slices_between_edited_slices():
    seg = _seg()
    seg.apply(tools.brush(seg, 1, [2, 30, 40], 8.0))
    seg.apply(tools.brush(seg, 1, [8, 30, 40], 8.0))
    before = seg.mask(1)
    (change,) = tools.interpolate(seg, 1, axis=0)
    seg.apply([change])
    mask = seg.mask(1)
    assert np.all(mask[before])  # only adds
    for k in range(3, 8):
        assert abs(mask[k].sum() - before[2].sum()) <= 0.1 * before[2].sum()
    assert not mask[:2].any() and not mask[9:].any()


def test_remove_small_islands_uses_mm3_on_the_anisotropic_grid():
    seg = _seg()
    labels = np.zeros(SHAPE, bool)
    labels[2:6, 10:30, 10:30] = True  # 1600 voxels x 2 mm^3 = 3200 mm^3
    labels[8, 40:43, 60:63] = True  # 9 voxels = 18 mm^3
    labels[10, 50:55, 60:65] = True  # 25 voxels = 50 mm^3
    seg.apply([tools.MaskChange(1, (0, 0, 0, *SHAPE), np.zeros(SHAPE, bool), labels)])
    assert seg.voxel_volume_mm3 == pytest.approx(2.0)
    seg.apply(tools.remove_small_islands(seg, 1, 20.0))
    kept = labels.copy()
    kept[8] = False
    assert np.array_equal(seg.mask(1), kept)
    seg.apply(tools.remove_small_islands(seg, 1, 50.0))
    assert np.array_equal(seg.mask(1), kept)  # exactly 50 mm^3 stays
    assert tools.remove_small_islands(seg, 1, 50.0) == []


def test_interpolation_morphs_one_contour_into_the_next_along_any_axis():
    seg = _seg()
    seg.apply(tools.brush(seg, 1, [6, 10, 40], 4.0, axis=1))  # small disc at y=10 (coronal)
    seg.apply(tools.brush(seg, 1, [6, 30, 40], 12.0, axis=1))  # large disc at y=30
    small, large = seg.mask(1)[:, 10].sum(), seg.mask(1)[:, 30].sum()
    seg.apply(tools.interpolate(seg, 1, axis=1))
    areas = [seg.mask(1)[:, y].sum() for y in range(10, 31)]
    assert all(a <= b for a, b in zip(areas, areas[1:]))  # grows monotonically from one to the other
    assert areas[0] == small and areas[-1] == large and small < areas[10] < large
