"""The Qt-free session model, driven without a QApplication: open a folder, show two series, run a model through a
stand-in job, edit, undo, export."""

import numpy as np
import pydicom
import pytest

from inference.task import InferenceResult
from inference.types import Label, SegResult
from tests.conftest import data_path
from viewer.core.dicom.catalog import default_image_series
from viewer.core.jobs import Progress, run_job
from viewer.core.measure import Measurement
from viewer.core.session import FolderSource, ModelResult, Session, VolumeCache


def stand_in_model(array: np.ndarray, affine: np.ndarray):
    """A model job as the GUI and CLI run them (a generator yielding progress, returning an InferenceResult) that
    labels the voxels above 300 HU: no network, so the test is about the session, not the model."""
    yield Progress(0, 1, "Thresholding")
    labels = (array > 300).astype(np.uint8)
    yield Progress(1, 1, "Done")
    return InferenceResult(SegResult(labels, affine, {1: Label(1, "bone")}, "stand-in"), {"model": 0.0}, "cpu")


@pytest.fixture(scope="module")
def gantry():
    return data_path("ct-gantry-tilt")


def test_open_show_two_series_run_edit_undo_export(gantry, tmp_path):
    session = Session()
    shown_events = []
    session.shown_changed.connect(lambda: shown_events.append([s.key for s in session.shown]))
    loaded = []
    session.volume_loaded.connect(lambda key, volume, seconds: loaded.append(key))
    catalog = session.open(FolderSource([str(gantry)]))
    assert session.paths == [str(gantry)]

    # one default-series rule, the same the CLI and screenshot use
    first = session.default_image_series()
    assert first is default_image_series(catalog)
    assert first.n_instances == max(s.n_instances for s in session.image_series())
    other = next(s for s in session.image_series() if s.key != first.key)

    main = session.show(first.key, session.load(first.key))
    prior = session.show(other.key, session.load(other.key), slot=1)
    assert [s.key for s in session.shown] == [first.key, other.key]
    assert loaded == [first.key, other.key]
    assert session.load(first.key) is main.volume and loaded == [first.key, other.key], "from the cache, no reload"
    assert shown_events[-1] == [first.key, other.key]
    assert main.display.volume is main.volume and prior.display.volume is prior.volume
    assert main.info["modality"] == "CT" and session.current is main

    # a model through a stand-in job: drained here as the CLI drains it, kept as plain data on the series
    outcome = run_job(stand_in_model(main.volume.array, main.volume.affine))
    changed = []
    main.results_changed.connect(changed.append)
    entry = main.set_result(outcome.result, "Bone threshold")
    assert isinstance(entry, ModelResult) and entry.task == "segmentation" and changed == ["segmentation"]
    assert main.result("segmentation").labels.sum() == int((main.volume.array > 300).sum()) > 0
    with pytest.raises(ValueError, match="grid"):
        prior.set_result(outcome.result)  # another grid: refused, nothing kept
    assert prior.results == {}

    # edit: accept the model's label as a segment, paint, undo the paint
    editor = main.ensure_editor(autosave_root=tmp_path / "autosave", study_paths=[str(gantry)])
    assert main.ensure_editor() is editor and session.editors == {first.key: editor}
    editor.accept_model_result(main.result("segmentation"), algorithm_name="Bone threshold")
    before = [s.mask.full().copy() for s in editor.segmentation]
    assert before[0].sum() == main.result("segmentation").labels.sum()
    centre = tuple(n // 2 for n in main.volume.shape)
    editor.begin_stroke(centre, 6.0, axis=0)
    editor.end_stroke()
    assert session.modified and not np.array_equal(editor.segmentation[1].mask.full(), before[0])
    assert editor.undo() is not None
    assert all(np.array_equal(s.mask.full(), b) for s, b in zip(editor.segmentation, before))

    # export as the GUI does (the same job, run here synchronously), then read the SEG back onto the same voxels
    from viewer.core.editing.io import open_seg
    from viewer.core.export.annotation import AnnotationSnapshot, export_job

    snapshot = AnnotationSnapshot.of(editor, main.source_paths())
    path = run_job(export_job("seg", str(tmp_path / "a.seg.dcm"), snapshot))
    assert pydicom.dcmread(path).Modality == "SEG"
    reread = open_seg(path, main.volume)
    assert len(reread) == len(editor.segmentation) == 1
    assert np.array_equal(reread[1].mask.full(), before[0])


def test_state_outlives_showing_and_reopening(gantry):
    session = Session()
    session.open(gantry)
    key = session.default_image_series().key
    state = session.show(key, session.load(key))
    state.measurements.append(Measurement("probe", "axial", 0, [(0.0, 0.0, 0.0)]))
    session.hide()
    assert session.shown == [] and state.display is None
    session.open(gantry)  # the same study again: the measurement comes back, the volume is read again
    again = session.show(key, session.load(key))
    assert again is state and len(again.measurements) == 1


def test_volume_cache_is_bounded():
    class V:
        def __init__(self, n):
            self.array = np.zeros(n, np.uint8)

    cache = VolumeCache(max_count=2, max_bytes=100)
    cache.put("a", V(10))
    cache.put("b", V(10))
    assert cache.get("a") is not None  # now the most recent
    cache.put("c", V(10))
    assert "b" not in cache and "a" in cache and len(cache) == 2
    cache.put("big", V(1000))  # over the byte limit alone: kept, everything older dropped
    assert len(cache) == 1 and "big" in cache


def test_show_refuses_a_gap(gantry):
    session = Session()
    session.open(gantry)
    key = session.default_image_series().key
    with pytest.raises(IndexError):
        session.show(key, session.load(key), slot=1)


def test_discarding_annotations_drops_editors_and_their_autosaves(gantry, tmp_path):
    from viewer.core.editing.autosave import find_restorable

    session = Session()
    session.open(gantry)
    key = session.default_image_series().key
    state = session.show(key, session.load(key))
    editor = state.ensure_editor(autosave_root=tmp_path)
    editor.add_segment("nodule")
    editor.autosave.save()
    assert len(find_restorable(tmp_path)) == 1 and session.modified
    assert session.discard_annotations() == [key]
    assert state.editor is None and session.editors == {} and not session.modified
    assert find_restorable(tmp_path) == []
    # restoring replaces the editor (its segmentation the undo base) even on the same grid
    fresh = state.ensure_editor(autosave_root=tmp_path)
    restored = state.ensure_editor(autosave_root=tmp_path, segmentation=fresh.segmentation.copy(), replace=True)
    assert restored is not fresh and state.editor is restored
