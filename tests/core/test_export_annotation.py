"""Exporting an annotation without a GUI: a snapshot independent of later edits, the one export job for SEG, NIfTI,
findings JSON and SR drained synchronously (as a batch run would), and what a finished export means for the
annotation (saved, autosave no longer offered)."""
from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from inference.types import Detections, label_table
from tests.inference.helpers import real_volume
from viewer.core.editing.autosave import Autosave, find_restorable
from viewer.core.editing.editor import AnnotationEditor
from viewer.core.editing.errors import EditRefused
from viewer.core.editing.io import open_seg_job
from viewer.core.export.annotation import AnnotationSnapshot, export_job, note_exported
from viewer.core.export.nifti_segments import LAST_WINS, PER_SEGMENT
from viewer.core.jobs import Progress, run_job


@pytest.fixture(scope="module")
def lidc():
    return real_volume("lidc-idri-0001")


def _editor(volume, root) -> AnnotationEditor:
    """Two overlapping segments and a detector's finding, accepted."""
    editor = AnnotationEditor(volume)
    autosave = Autosave(editor.segmentation, editor.review, root=root)
    editor = AnnotationEditor(volume, editor.segmentation, editor.review, editor.history, autosave)
    z = volume.shape[0] // 2
    for name in ("nodule", "lung"):
        editor.add_segment(name)
        editor.begin_stroke([z, 250, 250], 6.0 if name == "nodule" else 12.0)
        editor.end_stroke()
    centre = (volume.affine @ [250, 250, z, 1])[:3]
    box = np.concatenate([centre - 5, centre + 5])
    detections = Detections([box], [[z - 2, 243, 243, z + 3, 258, 258]], [0.8], [1], volume.affine, volume.shape,
                            label_table({1: "nodule"}), "test-detector")
    editor.accept_detections(detections).accept(0)
    return editor


def test_every_export_of_a_snapshot_while_the_user_goes_on_editing(lidc, tmp_path):
    series, volume = lidc
    sources = [inst.path for inst in series.instances]
    editor = _editor(volume, tmp_path / "autosave")
    snapshot = AnnotationSnapshot.of(editor, sources)
    before = {s.number: s.mask.full() for s in editor.segmentation}
    assert snapshot.series_uid == volume.series_uid and snapshot.revision == editor.history.revision
    editor.begin_stroke([volume.shape[0] // 2, 100, 100], 10.0)  # edits after the snapshot are not exported
    editor.end_stroke()
    editor.review.reject(0)

    progress: list[Progress] = []
    written = run_job(export_job("seg", tmp_path / "a.seg.dcm", snapshot), progress.append)
    assert [p.message for p in progress] == ["Exporting SEG", "Writing DICOM SEG", "Exported"]
    assert pydicom.dcmread(written).Modality == "SEG"
    reread = run_job(open_seg_job(written, volume))
    assert [s.name for s in reread] == ["nodule", "lung"]
    for segment, mask in zip(reread, before.values()):
        assert np.array_equal(segment.mask.full(), mask)

    with pytest.raises(EditRefused, match="more than one segment"):
        run_job(export_job("nifti", tmp_path / "labels.nii.gz", snapshot))  # nobody chose how to flatten
    summary = run_job(export_job("nifti", tmp_path / "labels.nii.gz", snapshot, LAST_WINS))
    assert "labels.nii.gz" in summary and "overlapping voxels went to the later segment" in summary
    per_segment = run_job(export_job("nifti", tmp_path / "each.nii.gz", snapshot, PER_SEGMENT))
    assert per_segment.startswith("2 NIfTI files (one per segment)")

    findings = json.loads(open(run_job(export_job("findings", tmp_path / "f.json", snapshot))).read())
    assert [f["status"] for f in findings["findings"]] == ["accepted"]  # as snapshotted, not rejected since
    sr = pydicom.dcmread(run_job(export_job("sr", tmp_path / "f.sr.dcm", snapshot)))
    assert sr.Modality == "SR"
    with pytest.raises(ValueError, match="unknown export"):
        run_job(export_job("png", tmp_path / "x.png", snapshot))


def test_a_finished_export_saves_the_segments_unless_they_changed_meanwhile(lidc, tmp_path):
    _, volume = lidc
    root = tmp_path / "autosave"
    editor = _editor(volume, root)
    editor.autosave.save()
    assert [i.series_uid for i in find_restorable(root)] == [volume.series_uid]
    snapshot = AnnotationSnapshot.of(editor)
    note_exported(editor, "findings", snapshot)
    assert editor.history.modified, "findings exports do not save the segments"

    editor.add_segment("airway")  # edited while the file was written
    note_exported(editor, "seg", snapshot)
    assert editor.history.modified and find_restorable(root) == []
    note_exported(editor, "nifti", AnnotationSnapshot.of(editor))
    assert not editor.history.modified


def test_a_seg_of_nothing_is_refused(lidc, tmp_path):
    _, volume = lidc
    snapshot = AnnotationSnapshot.of(AnnotationEditor(volume))
    with pytest.raises(EditRefused, match="no segments"):
        run_job(export_job("seg", tmp_path / "empty.seg.dcm", snapshot))
