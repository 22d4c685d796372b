"""The editor façade: a segmentation opened from a file merged in as one step, and its refusals."""
from __future__ import annotations

import numpy as np
import pytest

from viewer.core.editing import tools
from viewer.core.editing.editor import AnnotationEditor
from viewer.core.editing.errors import EditRefused
from viewer.core.editing.segmentation import AUTOMATIC, Segmentation
from viewer.core.volume import Volume


def _volume(shape=(8, 40, 40)) -> Volume:
    return Volume(np.zeros(shape, np.int16), np.diag([0.7, 0.7, 2.5, 1.0]), series_uid="1.2.3")


def _loaded(volume) -> Segmentation:
    """What reading a SEG gives: a model segment (one voxel marked as a person's) and a manual one."""
    seg = Segmentation.for_volume(volume)
    model = seg.new_segment("lung", (10, 200, 10), origin=AUTOMATIC, algorithm_name="lung-seg",
                            algorithm_version="2")
    seg.add(model)
    seg.apply(tools.brush(seg, 1, [4, 10, 10], 2.0, 0), by_person=False)
    seg.apply(tools.brush(seg, 1, [4, 10, 13], 1.0, 0))
    seg.add_segment("airway")
    seg.apply(tools.brush(seg, 2, [2, 30, 30], 2.0, 0))
    return seg


def test_merge_is_one_named_step_keeps_segments_whole_and_undoes_whole():
    volume = _volume()
    editor = AnnotationEditor(volume)
    editor.add_segment("nodule")
    editor.begin_stroke([5, 20, 20], 2.0)
    editor.end_stroke()
    loaded = _loaded(volume)
    expected = [(s.name, s.color, s.origin, s.algorithm_name, s.algorithm_type, s.mask.full(), s.provenance())
                for s in loaded]

    assert editor.merge(loaded, "seg.dcm") == 2
    assert editor.history.undo_name == "Open segmentation (seg.dcm)"
    merged = list(editor.segmentation)[1:]
    assert [s.number for s in merged] == [2, 3] and editor.segmentation.active == 1  # the active one stays
    for segment, (name, color, origin, algorithm, kind, mask, provenance) in zip(merged, expected):
        assert (segment.name, segment.color, segment.origin, segment.algorithm_name, segment.algorithm_type) == \
            (name, color, origin, algorithm, kind)
        assert np.array_equal(segment.mask.full(), mask) and np.array_equal(segment.provenance(), provenance)
    assert editor.history.modified, "the annotation had unsaved edits before: it still has"
    editor.undo()
    assert [s.name for s in editor.segmentation] == ["nodule"]


def test_merging_into_an_unmodified_annotation_leaves_it_unmodified_and_makes_the_first_segment_active():
    volume = _volume()
    editor = AnnotationEditor(volume)
    assert editor.merge(_loaded(volume), "a.seg.dcm") == 2
    assert not editor.history.modified, "what was opened is saved on disk"
    assert editor.segmentation.active == 1 and editor.history.undo_name == "Open segmentation (a.seg.dcm)"


def test_painting_without_a_segment_is_refused_as_a_message():
    editor = AnnotationEditor(_volume())
    with pytest.raises(EditRefused, match="no active segment"):
        editor.begin_stroke([3, 10, 10], 2.0)
    assert editor.history.undo_name is None
