"""A study ``hounsfield batch`` already ran on opens with its results shown, labelled by model and batch time, and
no model is run again."""
from __future__ import annotations

import datetime
import json

import numpy as np

from tests.qt.conftest import open_and_wait

SEG = "hounsfield-chest-ct-segmentation"
DET = "hounsfield-chest-ct-nodule-detection"


def test_a_study_opens_with_its_batch_results_shown(main_window, qtbot, small_studies, tmp_path, settings):
    from viewer.services.batch.run import BatchOptions, run_batch

    study = small_studies[0]
    sink = tmp_path / "batch-results"
    summary = run_batch(BatchOptions(models=[SEG, DET], sources=[str(study)], sink=str(sink), address="inline"))
    assert summary["manifest"]["done"] == 1
    (record_path,) = sink.glob("*/*/batch.json")
    record = json.loads(record_path.read_text())
    created = datetime.datetime.fromisoformat(record["created"]).timestamp()
    settings.batch_results_folder = str(sink)

    with qtbot.waitSignal(main_window.batch_results.results_shown, timeout=60_000) as shown:
        open_and_wait(qtbot, main_window, [study / "dicom"])
    when = datetime.datetime.fromtimestamp(created).strftime("%Y-%m-%d %H:%M")
    assert sorted(shown.args[0]) == sorted(f"{m['name']} (batch {when})" for m in record["models"])

    lane, state = main_window.inference, main_window.session.current
    assert lane.run is None  # nothing was run here: the results came from the batch
    assert set(state.results) == {"segmentation", "detection"}
    assert all(entry.created == created and "(batch " in entry.model_name for entry in state.results.values())
    seg_layer, det_layer = lane.layer("segmentation"), lane.layer("detection")
    assert seg_layer in main_window.viewer.layers and det_layer in main_window.viewer.layers
    labels = state.result("segmentation").labels
    names = {label.name for value, label in state.result("segmentation").table.items() if (labels == value).any()}
    assert {"lung_left", "lung_right"} <= names  # the model's own label values and names, not the SEG's numbering
    findings = json.loads(next(sink.glob(f"*/*/{DET}/findings.json")).read_text())["findings"]
    detections = state.result("detection")
    assert len(detections) == len(findings) > 0
    assert np.allclose(detections.scores, [f["score"] for f in findings])
    assert main_window.findings_panel.model_name.startswith("Chest CT: lung nodule detection")
    assert f"(batch {when})" in main_window.findings_panel.model_name
