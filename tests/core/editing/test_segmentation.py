"""The Segmentation model: overlapping segments, provenance, locking, label maps that refuse to flatten."""
from __future__ import annotations

import numpy as np
import pytest

from inference.types import SegResult, label_table
from viewer.core.editing import tools
from viewer.core.editing.history import EditHistory
from viewer.core.editing.segmentation import (
    AUTOMATIC,
    MANUAL,
    SEMIAUTOMATIC,
    Segmentation,
    SegmentLockedError,
    SparseMask,
)

AFFINE = np.diag([0.7, 0.7, 2.5, 1.0])


def _segmentation(shape=(10, 40, 50)) -> Segmentation:
    return Segmentation(shape, AFFINE, series_uid="1.2.3")


def test_sparse_mask_stores_only_a_box_and_reads_back_exactly():
    rng = np.random.default_rng(1)
    full = np.zeros((20, 64, 64), bool)
    full[5:9, 10:30, 40:50] = rng.random((4, 20, 10)) > 0.5
    mask = SparseMask.from_full(full)
    assert mask.data.shape == (4, 20, 10)
    assert np.array_equal(mask.full(), full)
    # a write outside grows the box, the old content stays
    mask.write((0, 0, 0, 1, 2, 2), np.ones((1, 2, 2), bool))
    full[0, :2, :2] = True
    assert np.array_equal(mask.full(), full) and mask.count() == int(full.sum())
    region = mask.region((4, 8, 38, 10, 32, 52))
    assert np.array_equal(region, full[4:10, 8:32, 38:52])
    mask.toggle((5, 10, 40, 9, 30, 50), full[5:9, 10:30, 40:50].copy())
    mask.trim()
    assert mask.box == (0, 0, 0, 1, 2, 2) and mask.count() == 4


def test_overlapping_segments_are_kept_unless_overwrite_is_asked_for():
    seg = _segmentation()
    seg.add_segment("lung")
    seg.add_segment("nodule")
    seg.apply(tools.brush(seg, 1, [5, 20, 25], 6.0))
    seg.apply(tools.brush(seg, 2, [5, 20, 28], 3.0))
    lung_before = seg[1].mask.count()
    assert seg.overlap_count() == seg[2].mask.count() > 0  # the nodule lies inside the lung: both kept
    assert seg[1].mask.count() == lung_before
    with pytest.raises(ValueError, match="more than one segment"):
        seg.label_map()
    labels, names = seg.label_map(on_overlap="last_wins")
    assert names == {1: "lung", 2: "nodule"} and np.array_equal(labels == 2, seg.mask(2))
    # explicit overwrite: the painted voxels leave the other (visible, unlocked) segment
    seg.apply(tools.brush(seg, 2, [5, 20, 28], 3.0, overwrite_others=True))
    assert seg.overlap_count() == 0 and seg[1].mask.count() == lung_before - seg[2].mask.count()


def test_overwrite_others_never_touches_a_locked_segment_and_tools_refuse_locked_targets():
    seg = _segmentation()
    seg.add_segment("lung")
    seg.add_segment("nodule")
    seg.apply(tools.brush(seg, 1, [5, 20, 25], 6.0))
    seg.set_locked(1, True)
    lung = seg.mask(1)
    seg.apply(tools.brush(seg, 2, [5, 20, 25], 3.0, overwrite_others=True))
    assert np.array_equal(seg.mask(1), lung) and seg.overlap_count() > 0
    for call in (lambda: tools.brush(seg, 1, [5, 20, 25], 3.0), lambda: tools.erase(seg, 1, [5, 20, 25], 3.0),
                 lambda: tools.flood_fill(seg, 1, [5, 1, 1]), lambda: tools.interpolate(seg, 1),
                 lambda: tools.remove_small_islands(seg, 1, 10.0),
                 lambda: tools.polygon_fill(seg, 1, [[5, 1, 1], [5, 1, 9], [5, 9, 9]])):
        with pytest.raises(SegmentLockedError):
            call()
    change = tools.brush(seg, 2, [5, 5, 5], 2.0)[0]
    seg.set_locked(2, True)
    with pytest.raises(SegmentLockedError):
        seg.apply([change])
    assert np.array_equal(seg.mask(1), lung)


def test_a_model_result_is_automatic_until_a_person_edits_it_and_undo_restores_that():
    seg = _segmentation()
    history = EditHistory()
    labels = np.zeros(seg.shape, np.uint8)
    labels[2:6, 5:20, 5:25] = 1
    labels[4, 10:14, 30:34] = 3
    result = SegResult(labels, AFFINE, label_table({1: "lung", 3: "nodule"}), model_id="lung-seg")
    history.push("Accept model result", seg.import_seg_result(result, algorithm_version="1.2"))
    assert [s.name for s in seg] == ["lung", "nodule"] and seg.active == 1
    lung = seg[1]
    assert lung.algorithm_type == AUTOMATIC and lung.algorithm_name == "lung-seg" and lung.algorithm_version == "1.2"
    assert np.array_equal(seg.mask(1), labels == 1) and np.array_equal(seg.mask(2), labels == 3)
    assert set(np.unique(lung.provenance())) == {0, 1}
    history.begin("Brush stroke (lung)")
    history.extend(seg.apply(tools.brush(seg, 1, [3, 25, 12], 2.0)))
    history.end()
    assert lung.algorithm_type == SEMIAUTOMATIC
    provenance = lung.provenance()
    assert (provenance == 2).sum() == lung.edited.count() > 0 and (provenance == 1).sum() > 0
    history.undo()
    assert lung.algorithm_type == AUTOMATIC and np.array_equal(seg.mask(1), labels == 1)
    history.undo()
    assert len(seg) == 0 and seg.active is None
    history.redo()
    assert len(seg) == 2 and np.array_equal(seg.mask(2), labels == 3)
    manual, atoms = seg.add_segment("airway")
    assert manual.algorithm_type == MANUAL and manual.number == 3


def test_add_rename_recolour_delete_are_undo_atoms():
    seg = _segmentation()
    history = EditHistory()
    segment, atoms = seg.add_segment("nodule")
    history.push("Add segment", atoms)
    seg.apply(tools.brush(seg, 1, [5, 20, 25], 4.0))
    history.push("Rename", [seg.rename(1, "Nodule A")])
    history.push("Recolour", [seg.recolor(1, (1, 2, 3))])
    count = segment.mask.count()
    history.push("Delete", seg.delete(1))
    assert len(seg) == 0 and seg.active is None
    history.undo()
    assert seg[1] is segment and segment.mask.count() == count and seg.active == 1
    history.undo()
    history.undo()
    assert (segment.name, segment.color) == ("nodule", segment.color) and segment.color != (1, 2, 3)
    seen = []
    seg.changed.connect(lambda number, box: seen.append(number))
    history.redo()
    assert segment.name == "Nodule A" and seen == [1]


def test_a_result_on_another_grid_is_refused():
    seg = _segmentation()
    with pytest.raises(ValueError, match="grid"):
        seg.import_seg_result(SegResult(np.zeros((3, 4, 5), np.uint8), AFFINE))


def test_a_copy_is_independent_and_keeps_numbers_properties_provenance_and_the_active_segment():
    seg = _segmentation()
    labels = np.zeros(seg.shape, np.uint8)
    labels[2:5, 5:15, 5:15] = 1
    seg.import_seg_result(SegResult(labels, AFFINE, label_table({1: "lung"}), model_id="lung-seg"), "lung-seg", "2")
    seg.apply(tools.brush(seg, 1, [3, 10, 14], 2.0, 0))  # a person's edit: provenance to keep
    _, _ = seg.add_segment("airway", (0, 128, 255), number=5)
    seg.apply(tools.brush(seg, 5, [6, 30, 30], 3.0, 0))
    seg.set_locked(5, True)
    seg.set_visible(1, False)
    seg.set_active(1)

    copy = seg.copy()
    assert copy is not seg and copy.shape == seg.shape and np.array_equal(copy.affine, seg.affine)
    assert (copy.series_uid, copy.frame_of_reference_uid, copy.active) == (seg.series_uid, "", 1)
    assert [s.number for s in copy] == [1, 5]
    for original, copied in zip(seg, copy):
        for field in ("name", "color", "visible", "locked", "category", "type", "origin", "algorithm_name",
                      "algorithm_version", "algorithm_type"):
            assert getattr(copied, field) == getattr(original, field), field
        assert np.array_equal(copied.mask.full(), original.mask.full())
        assert np.array_equal(copied.provenance(), original.provenance())
    assert copy[1].algorithm_type == SEMIAUTOMATIC

    # independent: editing the original (as the user goes on while an export writes) leaves the copy as it was
    frozen = copy[1].mask.full()
    heard = []
    copy.changed.connect(lambda *args: heard.append(args))
    seg.apply(tools.brush(seg, 1, [3, 30, 40], 3.0, 0))
    seg.rename(1, "left lung")
    assert np.array_equal(copy[1].mask.full(), frozen) and copy[1].name == "lung" and heard == []
    assert copy[1].mask is not seg[1].mask and copy[1].edited is not seg[1].edited


def test_refusals_the_user_reads_share_one_base_that_is_still_a_value_error():
    from viewer.core.editing.errors import EditRefused

    assert issubclass(SegmentLockedError, EditRefused) and issubclass(EditRefused, ValueError)
    seg = _segmentation()
    for number in (1, 2):
        seg.add_segment(f"s{number}")
        seg.apply(tools.brush(seg, number, [3, 10, 10], 2.0, 0))
    with pytest.raises(EditRefused, match="more than one segment"):
        seg.label_map()
    other = SegResult(np.zeros((2, 3, 4), np.uint8), AFFINE, label_table({1: "x"}))
    with pytest.raises(EditRefused, match="grid"):
        seg.import_seg_result(other)
