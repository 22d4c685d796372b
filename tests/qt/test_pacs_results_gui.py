"""A study whose model results are already in the PACS opens with them shown: ``hounsfield batch --out pacs:NODE``
stores the SEG and the findings SR of a small phantom in a real Orthanc (loopback), the study is retrieved whole
through the PACS dock, and the series opens with the segmentation and the findings shown, labelled by model and time
- the SEG voxel for voxel what ``infer`` wrote, the findings those of its findings.json - with no model run and no
"open this SEG?" question."""
from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from tests.qt.test_pacs_gui import search, web_node
from tests.services.orthanc import OrthancServer, missing_reason

SEG = "hounsfield-chest-ct-segmentation"
DET = "hounsfield-chest-ct-nodule-detection"


@pytest.fixture
def pacs(tmp_path):
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with OrthancServer(tmp_path / "orthanc") as server:
        yield server


def test_a_study_retrieved_with_its_seg_and_sr_opens_with_them_shown(main_window, qtbot, pacs, small_studies,
                                                                      tmp_path, monkeypatch):
    from viewer.core.export.seg import read_seg_labels
    from viewer.services.batch.run import BatchOptions, run_batch

    monkeypatch.setenv("HOUNSFIELD_HOME", str(tmp_path / "home"))  # the retrieve cache, the batch folder
    study = small_studies[1]
    pacs.upload_folder(study / "dicom")
    node = web_node(pacs)
    # What the batch wrote, kept on disk too: the PACS copies must come back as these.
    summary = run_batch(BatchOptions(models=[SEG, DET], sources=[str(study)], sink=str(tmp_path / "sink"),
                                     address="inline"))
    assert summary["manifest"]["done"] == 1
    summary = run_batch(BatchOptions(models=[SEG, DET], sources=[str(study)], sink="pacs:web", address="inline",
                                     manifest=str(tmp_path / "pacs.sqlite"), pacs_nodes=[node]))
    assert summary["manifest"]["done"] == 1

    window = main_window
    asked = []
    monkeypatch.setattr(window.annotation, "ask_open_seg", lambda series: asked.append(series) or False)
    window.settings.set_pacs_nodes([node])
    window.pacs.browser.reload_nodes()
    patient = str(pydicom.dcmread(next((study / "dicom").rglob("*.dcm")), stop_before_pixels=True).PatientID)
    browser = window.pacs.browser
    search(qtbot, browser, patient_id=patient)
    assert browser.series.topLevelItemCount() == 3  # the CT, our SEG and our SR
    with qtbot.waitSignal(window.batch_results.results_shown, timeout=60_000) as shown:
        browser.retrieve_study_button.click()

    labels = shown.args[0]
    assert len(labels) == 2 and all(" (PACS 20" in label for label in labels), labels
    assert any(label.startswith("Chest CT: lung nodule detection") for label in labels)
    lane, state = window.inference, window.session.current
    assert lane.run is None and asked == []  # nothing was run, nothing was asked
    assert set(state.results) == {"segmentation", "detection"}
    volume = state.volume
    folder = next((tmp_path / "sink").glob("*/*"))
    numbers, names = read_seg_labels(folder / SEG / "seg.dcm", volume.slice_sop_uids, volume.shape)
    shown_seg = state.result("segmentation")
    for number, name in names.items():  # voxel for voxel, each segment under the model's own label
        (value,) = [v for v, label in shown_seg.table.items() if label.name == name]
        assert np.array_equal(shown_seg.labels == value, numbers == number), name
    findings = json.loads((folder / DET / "findings.json").read_text())["findings"]
    detections = state.result("detection")
    assert len(detections) == len(findings) > 0
    assert np.allclose(detections.scores, [f["score"] for f in findings])
    spacing = np.linalg.norm(volume.affine[:3, :3], axis=0).max()
    assert np.abs(detections.centers_lps - [f["center_lps"] for f in findings]).max() < spacing
    assert lane.layer("segmentation") in window.viewer.layers and lane.layer("detection") in window.viewer.layers
    assert "(PACS " in window.findings_panel.model_name
