"""Overlay maths without Qt: label colour tables, outlines, heat-map tables, boxes cut by a plane, findings."""
from __future__ import annotations

import numpy as np
import pytest

from inference.types import Detections, label_table
from viewer.core.layers import (
    as_label_volume,
    boxes_in_slice,
    findings,
    heat_lut,
    label_counts,
    label_lut,
    label_slice_rgba,
    label_volumes_ml,
    labelled_slices,
    outline,
    quantise_unit,
    side_of,
    visible_findings,
    voxel_box_centre,
    voxel_box_size_mm,
)
from viewer.core.reformat import Plane, plane_geometry

# An axial grid as LIDC's (rows run posterior, columns patient-left) and one acquired sagittally and lying on its
# side (index axes permuted and flipped against LPS), so every flip and swap of the reformat is exercised.
AXIAL_AFFINE = np.array([[0.7, 0, 0, -180.0], [0, 0.7, 0, -170.0], [0, 0, 2.5, -340.0], [0, 0, 0, 1]])
SAGITTAL_AFFINE = np.array([[0, 0, -4.8, 60.0], [-1.0, 0, 0, 120.0], [0, -1.0, 0, 100.0], [0, 0, 0, 1]])
SHAPE = (12, 20, 16)  # (z, y, x)


def test_label_lut_colours_visibility_and_opacity():
    lut = label_lut({1: (255, 0, 0), 2: (0, 128, 255), 300: (1, 2, 3)}, visible={2: False}, opacities={1: 0.5})
    assert lut.shape == (256, 4) and lut.dtype == np.uint8
    assert tuple(lut[0]) == (0, 0, 0, 0)  # background always transparent
    assert tuple(lut[1]) == (255, 0, 0, 128)
    assert tuple(lut[2, :3]) == (0, 128, 255) and lut[2, 3] == 0  # hidden
    assert lut[3:, 3].max() == 0  # no colour given: transparent
    default = label_lut({4: (9, 9, 9)})
    assert default[4, 3] == round(255 * 0.45)
    labels = np.array([[0, 1], [2, 1]], np.uint8)
    rgba = label_slice_rgba(labels, lut)
    assert rgba.shape == (2, 2, 4) and tuple(rgba[0, 1]) == (255, 0, 0, 128) and rgba[0, 0, 3] == 0


def test_as_label_volume():
    small = np.array([0, 3, 255], np.int16)
    assert as_label_volume(small).dtype == np.uint8 and list(as_label_volume(small)) == [0, 3, 255]
    same = np.zeros(3, np.uint8)
    assert as_label_volume(same) is same
    with pytest.raises(ValueError, match="0..255"):
        as_label_volume(np.array([0, 256], np.int16))


def test_outline_keeps_the_boundary_of_each_region_inside_it():
    s = np.zeros((9, 10), np.uint8)
    s[2:7, 2:7] = 1  # a 5x5 square
    ring = outline(s)
    assert ring.dtype == s.dtype
    assert (ring == 1).sum() == 16 and ring[3:6, 3:6].max() == 0  # the ring, not the 3x3 inside
    assert np.array_equal(ring != 0, (s != 0) & (ring != 0))  # never outside the region
    # two touching labels: each gets its side of the shared border, with its own value
    s[2:7, 7:9] = 2
    both = outline(s)
    assert set(np.unique(both[2:7, 6])) == {1} and set(np.unique(both[2:7, 7])) == {2}
    # regions touching the image edge are closed along the edge
    edge = np.zeros((4, 4), np.uint8)
    edge[:, :2] = 3
    assert np.array_equal(outline(edge)[:, 0], [3, 3, 3, 3]) and outline(edge)[1:3, 1].tolist() == [3, 3]
    assert not outline(np.zeros((5, 5), np.uint8)).any()
    with pytest.raises(ValueError):
        outline(np.zeros((2, 2, 2)))


@pytest.mark.parametrize("affine", [AXIAL_AFFINE, SAGITTAL_AFFINE], ids=["axial", "sagittal"])
def test_labelled_slices_per_plane(affine):
    labels = np.zeros(SHAPE, np.uint8)
    labels[3, 5, 7] = 1
    for plane in Plane:
        g = plane_geometry(affine, SHAPE, plane)
        flags = labelled_slices(labels, g)
        assert flags.shape == (g.n_slices,)
        expected = [bool(g.take(labels, k).any()) for k in range(g.n_slices)]
        assert flags.tolist() == expected and sum(expected) == 1


def test_label_volumes_in_ml_and_chunked_counts():
    affine = np.diag([0.5, 0.5, 2.0, 1.0])  # 0.5 mm^3 per voxel
    labels = np.zeros((10, 20, 20), np.uint8)
    labels[:, :10, :] = 1  # 2000 voxels
    labels[0, 0, 0] = 7
    assert label_volumes_ml(labels, affine) == {1: pytest.approx(1999 * 0.5 / 1000), 7: pytest.approx(0.0005)}
    assert np.array_equal(label_counts(labels, chunk_voxels=333), np.bincount(labels.ravel(), minlength=256))


def test_quantise_unit_keeps_normalised_maps_and_stretches_others():
    q, span = quantise_unit(np.array([0.0, 0.5, 1.0, np.nan], np.float32))
    assert span == (0.0, 1.0) and q.tolist() == [0, 128, 255, 0]
    q, span = quantise_unit(np.array([-2.0, 0.0, 2.0]))
    assert span == (-2.0, 2.0) and q.tolist() == [0, 128, 255]
    q, span = quantise_unit(np.full(3, np.nan))
    assert not q.any()


def test_heat_lut_threshold_and_opacity():
    colours = np.stack([np.arange(256)] * 3, axis=1).astype(np.uint8)
    lut = heat_lut(colours, threshold=0.5, opacity=0.6)
    assert np.array_equal(lut[:, 0], np.arange(256))
    start = int(np.ceil(0.5 * 255))
    assert lut[:start, 3].max() == 0 and set(lut[start:, 3]) == {153}
    assert heat_lut(colours, 0.0, 1.0)[0, 3] == 0 and heat_lut(colours, 0.0, 1.0)[1, 3] == 255
    with pytest.raises(ValueError):
        heat_lut(np.zeros((10, 3)))


@pytest.mark.parametrize("affine", [AXIAL_AFFINE, SAGITTAL_AFFINE], ids=["axial", "sagittal"])
def test_boxes_in_slice_cover_exactly_the_box_voxels_in_every_plane(affine):
    rng = np.random.default_rng(3)
    boxes = []
    for _ in range(6):
        lo = [rng.integers(0, n - 1) for n in SHAPE]
        hi = [rng.integers(low + 1, n + 1) for low, n in zip(lo, SHAPE)]
        boxes.append([*lo, *hi])
    boxes = np.array(boxes)
    for plane in Plane:
        g = plane_geometry(affine, SHAPE, plane)
        dr, dc = g.pixel_spacing
        for k in range(g.n_slices):
            indices, rects = boxes_in_slice(boxes, g, k)
            for b, box in enumerate(boxes):
                mask = np.zeros(SHAPE, bool)
                z0, y0, x0, z1, y1, x1 = box
                mask[z0:z1, y0:y1, x0:x1] = True
                shown = g.take(mask, k)
                assert (b in indices) == bool(shown.any())
                if b not in indices:
                    continue
                x_0, y_0, x_1, y_1 = rects[list(indices).index(b)]
                drawn = np.zeros(g.image_shape, bool)
                drawn[int(round(y_0 / dr)):int(round(y_1 / dr)), int(round(x_0 / dc)):int(round(x_1 / dc))] = True
                assert np.array_equal(drawn, shown), (plane, k, b)
                assert x_0 == pytest.approx(round(x_0 / dc) * dc) and y_1 == pytest.approx(round(y_1 / dr) * dr)


def test_voxel_box_centre_and_size():
    box = [2, 10, 20, 5, 14, 30]  # z 2..4, y 10..13, x 20..29
    assert voxel_box_centre(box).tolist() == [24.5, 11.5, 3.0]
    assert voxel_box_size_mm(box, AXIAL_AFFINE).tolist() == pytest.approx([7.0, 2.8, 7.5])
    assert voxel_box_size_mm(box, SAGITTAL_AFFINE).tolist() == pytest.approx([10.0, 4.0, 14.4])


def test_side_of_uses_the_field_of_view_centre():
    # x index 0..15 at 0.7 mm from -180: L/R centre at -174.75 mm; +x (LPS) is the patient's left
    assert side_of([-170.0, 0, 0], AXIAL_AFFINE, SHAPE) == "left"
    assert side_of([-179.0, 0, 0], AXIAL_AFFINE, SHAPE) == "right"
    assert side_of([-174.5, 0, 0], AXIAL_AFFINE, SHAPE) == "midline"


def _detections(affine=AXIAL_AFFINE):
    boxes_voxel = np.array([[2, 10, 12, 5, 14, 15], [7, 1, 1, 8, 3, 3]])
    corners_lo = boxes_voxel[:, [2, 1, 0]] - 0.5
    corners_hi = boxes_voxel[:, [5, 4, 3]] - 0.5
    lo = corners_lo @ affine[:3, :3].T + affine[:3, 3]
    hi = corners_hi @ affine[:3, :3].T + affine[:3, 3]
    boxes_lps = np.concatenate([np.minimum(lo, hi), np.maximum(lo, hi)], axis=1)
    return Detections(boxes_lps, boxes_voxel, [0.9, 0.3], [1, 1], affine, SHAPE, label_table({1: "nodule"}), "m")


def test_findings_from_detections():
    detections = _detections()
    rows = findings(detections)
    assert [f.index for f in rows] == [0, 1] and rows[0].label == "nodule" and rows[0].score == 0.9
    # the LPS box centre lands on the centre of its voxel box, on our grid
    for f, box in zip(rows, detections.boxes_voxel):
        assert np.allclose(f.centre_index, voxel_box_centre(box))
        assert np.allclose(f.size_mm, voxel_box_size_mm(box, AXIAL_AFFINE))
    assert rows[0].slice_number == 4 and rows[0].side == "left" and rows[1].side == "right"
    assert rows[0].description == "left, slice 4"
    assert rows[0].size_text == "2.1 x 2.8 x 7.5" and rows[0].lps_text.startswith("LPS ")
    # display filter: the rows themselves are kept whole
    assert [f.index for f in visible_findings(rows, 0.5)] == [0]
    assert visible_findings(rows, 0.95) == [] and len(rows) == 2
    assert [f.index for f in visible_findings(rows, 0.0)] == [0, 1]


def test_findings_on_a_sagittal_grid_count_slices_along_its_own_axis():
    rows = findings(_detections(SAGITTAL_AFFINE))
    assert rows[0].slice_number == 4  # index z 3 (the sagittal acquisition's slices), 1-based
    assert np.allclose(rows[0].centre_index, voxel_box_centre(_detections().boxes_voxel[0]))
