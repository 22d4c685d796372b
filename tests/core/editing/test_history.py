"""One undo history: named steps, a stroke from press to release is one step, redo cleared by a new edit,
and bounded memory (packed bounding-box deltas) - 100 strokes on the LIDC grid stay far under 50 MB."""
from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

from tests.inference.helpers import real_volume
from viewer.core.editing.editor import AnnotationEditor
from viewer.core.editing.history import EditHistory
from viewer.core.editing.segmentation import SegmentLockedError
from viewer.core.volume import Volume


def _editor(shape=(8, 64, 64)) -> AnnotationEditor:
    volume = Volume(np.zeros(shape, np.int16), np.diag([0.7, 0.7, 2.5, 1.0]), series_uid="1.2.3")
    return AnnotationEditor(volume)


def test_a_stroke_is_one_named_step_and_undo_redo_restore_exactly():
    editor = _editor()
    editor.add_segment("nodule")
    editor.begin_stroke([3, 10, 10], 2.0)
    for x in range(12, 50, 3):
        editor.stroke_to([3, 10, x])
    assert editor.history.undo_name == "Brush stroke (nodule)"  # an open stroke is what Undo reverts
    editor.end_stroke()
    painted = editor.segmentation.mask(1)
    assert painted[3, 10, 10:50].all()
    undo_names, redo_names = editor.history.names()
    assert undo_names == ["Add segment (nodule)", "Brush stroke (nodule)"] and redo_names == []
    step = editor.history._undo[-1]
    assert len(step.atoms) == 1  # the dabs were merged into one packed delta
    assert editor.undo() == "Brush stroke (nodule)"
    assert not editor.segmentation.mask(1).any()
    assert editor.history.redo_name == "Brush stroke (nodule)"
    assert editor.redo() == "Brush stroke (nodule)"
    assert np.array_equal(editor.segmentation.mask(1), painted)
    editor.undo()
    editor.fill([3, 30, 30], axis=0)  # a new edit clears redo
    assert editor.history.redo_name is None and not editor.history.can_redo
    assert editor.history.undo_name == "Fill (nodule)"


def test_undo_during_a_stroke_closes_it_first_and_empty_steps_are_not_recorded():
    editor = _editor()
    editor.add_segment("a")
    editor.begin_stroke([3, 10, 10], 2.0)
    assert editor.undo() == "Brush stroke (a)" and not editor.segmentation.mask(1).any()
    editor.lock_segment(1)
    with pytest.raises(SegmentLockedError):
        editor.begin_stroke([3, 10, 10], 2.0)
    assert not editor.history.in_step and editor.history.undo_name == "Lock segment"
    editor.history.begin("Nothing")
    editor.history.end()
    editor.history.push("Nothing either", [])
    assert editor.history.names()[0] == ["Add segment (a)", "Lock segment"]


def test_all_named_steps_share_one_history_and_modified_follows_mark_saved():
    editor = _editor()
    history = editor.history
    assert not history.modified
    editor.add_segment("lung")
    editor.begin_stroke([2, 20, 20], 3.0)
    editor.end_stroke()
    editor.interpolate()
    editor.polygon([[4, 8, 8], [4, 8, 35], [4, 35, 8]])
    editor.interpolate()
    history.mark_saved()
    assert not history.modified
    finding = editor.review.add([10, 10, 10], [5, 5, 5], status="pending")
    editor.review.accept(finding.id)
    editor.review.reject(finding.id)
    names = history.names()[0]
    assert names == ["Add segment (lung)", "Brush stroke (lung)", "Polygon fill (lung)", "Interpolate (lung)",
                     "Add finding", "Accept finding", "Reject finding"]
    assert history.modified
    for _ in range(3):
        history.undo()
    assert not history.modified and len(editor.review) == 0
    history.redo()
    assert history.modified and editor.review[finding.id].status == "pending"


def test_the_oldest_steps_go_when_the_memory_bound_is_reached():
    editor = _editor()
    editor.history.max_bytes = 20_000
    editor.add_segment("a")
    rng = np.random.default_rng(0)
    for _ in range(60):
        z, y, x = rng.integers(0, 8), rng.integers(0, 64), rng.integers(0, 64)
        editor.begin_stroke([z, y, x], 3.0)
        editor.stroke_to([z, (y + 30) % 64, (x + 17) % 64])
        editor.end_stroke()
    assert editor.history.nbytes <= 20_000 and 1 < len(editor.history.names()[0]) < 61


def test_100_brush_strokes_on_the_lidc_grid_keep_the_history_under_50_mb():
    _, volume = real_volume("lidc-idri-0001")
    assert volume.shape == (133, 512, 512)
    editor = AnnotationEditor(volume)
    editor.add_segment("nodule")
    rng = np.random.default_rng(7)
    segment = editor.segmentation[1]
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        masks_before = segment.mask.nbytes + segment.edited.nbytes
        for _ in range(100):
            z = int(rng.integers(0, 133))
            points = np.cumsum(rng.normal(0, 8, (12, 3)) * [0, 1, 1], axis=0) + [z, 256, 256]
            editor.begin_stroke(points[0], 10.0)  # 10 mm radius: ~28 voxels across
            for p in points[1:]:
                editor.stroke_to(p)
            editor.end_stroke()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # What stayed allocated, less what the live segment's masks grew by, is what the history holds.
    retained = after - before - (segment.mask.nbytes + segment.edited.nbytes - masks_before)
    steps = editor.history._undo[1:]
    history_bytes = sum(step.nbytes for step in steps)
    mask_bytes = segment.mask.nbytes
    painted = editor.segmentation.mask(1)
    print(f"\n100 strokes: history holds {history_bytes / 1e6:.2f} MB (atoms), tracemalloc {retained / 1e6:.2f} MB;"
          f" segment mask {mask_bytes / 1e6:.1f} MB; painted {painted.sum()} voxels")
    assert len(steps) == 100 and painted.sum() > 100_000
    assert retained < 50e6 and history_bytes < 50e6
    for _ in range(100):
        editor.undo()
    assert not editor.segmentation.mask(1).any()
    for _ in range(100):
        editor.redo()
    assert np.array_equal(editor.segmentation.mask(1), painted)


def test_history_is_usable_on_its_own_with_any_atom():
    log = []

    class Atom:
        nbytes = 10

        def undo(self):
            log.append("undo")

        def redo(self):
            log.append("redo")

    history = EditHistory()
    calls = []
    history.changed.connect(lambda: calls.append(history.revision))
    history.push("Custom", [Atom()])
    history.undo()
    history.redo()
    assert log == ["undo", "redo"] and calls == [1, 2, 3]
