"""Never lose work: atomic autosaves by edit count or age, listed for restore until exported, and a process
killed mid-session (SIGKILL) whose edits come back in a fresh process."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from inference.types import Detections, label_table
from tests.conftest import data_path
from viewer.core.editing.autosave import Autosave, find_restorable, read_meta, restore, series_key
from viewer.core.editing.editor import AnnotationEditor
from viewer.core.volume import Volume

REPO = Path(__file__).resolve().parents[3]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _editor(tmp_path, **kwargs) -> tuple[AnnotationEditor, Autosave, Clock]:
    volume = Volume(np.zeros((6, 40, 40), np.int16), np.diag([0.8, 0.8, 3.0, 1.0]), series_uid="1.2.826.0.1.99")
    clock = Clock()
    editor = AnnotationEditor(volume)
    autosave = Autosave(editor.segmentation, editor.review, root=tmp_path / "autosave", clock=clock, **kwargs)
    editor = AnnotationEditor(volume, editor.segmentation, editor.review, editor.history, autosave)
    return editor, autosave, clock


def test_saves_after_n_edits_or_t_seconds_atomically_and_restores_everything(tmp_path):
    editor, autosave, clock = _editor(tmp_path, every_edits=3, every_seconds=10)
    editor.add_segment("nodule", (1, 2, 3))
    editor.begin_stroke([2, 20, 20], 4.0)
    editor.stroke_to([2, 20, 30])
    editor.end_stroke()
    assert autosave.pending == 2 and not autosave.maybe_save()
    clock.now = 11.0
    assert autosave.maybe_save() and autosave.pending == 0  # the oldest unsaved edit is 11 s old
    assert autosave.path.parent.name == series_key("1.2.826.0.1.99") and "1.2.826" not in str(autosave.path)
    editor.add_segment("airway")
    editor.lock_segment(2)
    editor.review.add([5, 5, 5], [4, 4, 4])
    assert autosave.pending == 3 and autosave.maybe_save()  # the third edit triggers it
    assert [p.name for p in autosave.folder.iterdir()] == ["annotation.npz"]  # no temporary left behind
    segmentation, review = restore(autosave.folder)
    assert [(s.number, s.name, s.color, s.locked) for s in segmentation] == [
        (s.number, s.name, s.color, s.locked) for s in editor.segmentation]
    assert np.array_equal(segmentation.mask(1), editor.segmentation.mask(1)) and segmentation.mask(1).any()
    assert np.array_equal(segmentation[1].edited.full(), editor.segmentation[1].edited.full())
    assert segmentation.active == editor.segmentation.active
    assert np.array_equal(segmentation.affine, editor.segmentation.affine)
    assert review.findings == editor.review.findings and len(review) == 1


def test_find_restorable_lists_autosaves_newer_than_their_export(tmp_path):
    editor, autosave, clock = _editor(tmp_path, every_edits=1)
    root = tmp_path / "autosave"
    assert find_restorable(root) == []
    editor.add_segment("lung")
    autosave.maybe_save()
    (info,) = find_restorable(root)
    assert info.series_uid == "1.2.826.0.1.99" and info.n_segments == 1 and info.edits == 1
    autosave.note_exported()
    assert find_restorable(root) == []
    editor.add_segment("nodule")
    autosave.maybe_save()
    assert [i.n_segments for i in find_restorable(root)] == [2]
    (root / "broken").mkdir()
    (root / "broken" / "annotation.npz").write_bytes(b"not a zip")  # a damaged file does not stop the listing
    assert len(find_restorable(root)) == 1
    autosave.discard()
    assert find_restorable(root) == []


def test_a_restored_review_is_undoable_again(tmp_path):
    editor, autosave, _ = _editor(tmp_path, every_edits=1)
    detections = Detections([[0, 0, 0, 5, 5, 5]], [[0, 0, 0, 2, 7, 7]], [0.8], [1], editor.volume.affine,
                            editor.volume.shape, label_table({1: "nodule"}), "det")
    review = editor.accept_detections(detections)
    review.accept(0)
    autosave.save()
    fresh = AnnotationEditor(editor.volume)
    segmentation, restored = restore(autosave.path, fresh.history)
    restored.reject(0)
    assert fresh.history.undo_name == "Reject finding"
    fresh.history.undo()
    assert restored[0].status == "accepted" and read_meta(autosave.path)["review"]["model_id"] == "det"


CHILD = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan
    from viewer.core.editing.autosave import Autosave
    from viewer.core.editing.editor import AnnotationEditor

    folder, expected = sys.argv[1], sys.argv[2]
    series = [s for s in scan([folder]).all_series() if s.kind == "image"][0]
    volume = load_series(series)
    editor = AnnotationEditor(volume)
    autosave = Autosave(editor.segmentation, editor.review, every_edits=2, every_seconds=3600)
    editor = AnnotationEditor(volume, editor.segmentation, editor.review, editor.history, autosave)
    editor.add_segment("nodule")
    nz, ny, nx = volume.shape
    for k in range(5):
        editor.begin_stroke([nz // 2, 60 + 20 * k, 60], 6.0)
        editor.stroke_to([nz // 2, 60 + 20 * k, 160])
        editor.end_stroke()
        autosave.maybe_save()
    editor.review.add(volume.index_to_lps([100, 100, nz // 2]), [8, 8, 8])
    editor.rename_segment(1, "nodule A")
    autosave.maybe_save()  # 8 edits: saved at 2, 4, 6 and 8 - all of them
    np.save(expected, editor.segmentation.mask(1))
    editor.begin_stroke([nz // 2 + 1, 30, 30], 6.0)  # a stroke in progress, never saved
    editor.stroke_to([nz // 2 + 1, 30, 200])
    print("killing", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_killed_session_is_restored_in_a_fresh_process(tmp_path):
    folder = data_path("mr-decubitus-hfdr")
    env = dict(os.environ, HOUNSFIELD_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO))
    expected = tmp_path / "expected.npy"
    child = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(expected)], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "killing" in child.stdout
    (info,) = find_restorable(tmp_path / "home" / "autosave")
    assert info.edits == 8 and info.n_segments == 1 and info.n_findings == 1
    segmentation, review = restore(info.folder)
    assert np.array_equal(segmentation.mask(1), np.load(expected)) and segmentation.mask(1).sum() > 1000
    assert review.findings[0].source == "manual" and review.findings[0].status == "accepted"
    assert segmentation.shape == (35, 256, 256) and segmentation[1].name == "nodule A"
    meta = json.loads(json.dumps(read_meta(info.folder / "annotation.npz")))
    assert meta["segments"][0]["origin"] == "MANUAL"


def test_source_paths_round_trip_and_old_autosaves_without_them_still_restore(tmp_path):
    editor, autosave, _clock = _editor(tmp_path, source_paths=[tmp_path / "study", "/data/more"])
    editor.add_segment("nodule")
    editor.begin_stroke([2, 20, 20], 4.0)
    editor.end_stroke()
    autosave.save()
    assert read_meta(autosave.path)["source_paths"] == [str(tmp_path / "study"), "/data/more"]
    [info] = find_restorable(autosave.root)
    assert info.source_paths == (str(tmp_path / "study"), "/data/more")

    # an autosave written before the field existed: no "source_paths" in its metadata
    with np.load(autosave.path) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    del meta["source_paths"]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    np.savez_compressed(autosave.path, **arrays)
    assert "source_paths" not in read_meta(autosave.path)
    [info] = find_restorable(autosave.root)
    assert info.source_paths == () and info.n_segments == 1
    segmentation, _review = restore(info.folder)
    assert np.array_equal(segmentation.mask(1), editor.segmentation.mask(1)) and segmentation.mask(1).any()
