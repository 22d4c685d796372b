"""File > Export De-identified… on a real study (3 CT slices and the SEG over them): the dialog opens on the shown
study, runs the export on a worker and shows the report; the copies reference each other and carry no identity."""
from __future__ import annotations

import shutil
from pathlib import Path

import pydicom

from tests.conftest import data_path
from tests.qt.conftest import open_and_wait
from viewer.qt.deid_dialog import DeidExportDialog


def _study(tmp_path):
    folder = tmp_path / "study"
    segmentations = data_path("seg-rtstruct", "dcmqi", "segmentations")
    shutil.copytree(segmentations / "ct-3slice", folder / "ct")
    shutil.copy(segmentations / "liver.dcm", folder / "liver.dcm")
    extra = pydicom.dcmread(folder / "ct" / "01.dcm")  # a second, smaller series of the same study
    extra.SeriesInstanceUID, extra.SOPInstanceUID = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    extra.file_meta.MediaStorageSOPInstanceUID = extra.SOPInstanceUID
    extra.save_as(folder / "other-series.dcm", enforce_file_format=True)
    return folder


def test_export_deidentified_from_the_file_menu(main_window, qtbot, tmp_path, monkeypatch):
    folder = _study(tmp_path)
    monkeypatch.setattr(main_window.annotation, "ask_open_seg", lambda series: False)  # no modal question
    open_and_wait(qtbot, main_window, [folder])
    main_window.action_export_deid.trigger()
    dialog = main_window.findChild(DeidExportDialog)
    assert dialog is not None and dialog.isVisible()
    shown_study = main_window.session.catalog.patients[0].studies[0]
    assert dialog.study.currentData() == shown_study.uid and len(dialog.sources()) == 5
    dialog.study.setCurrentIndex(dialog.study.count() - 1)  # the shown CT series and the SEG that references it
    assert dialog.study.currentText().startswith("Only the shown series")
    assert sorted(Path(p).name for p in dialog.sources()) == ["01.dcm", "02.dcm", "03.dcm", "liver.dcm"]

    dialog.folder.setText(str(folder / "out"))  # inside the input: refused before anything runs
    assert dialog.start() is None and "inside the input" in dialog.status.text()
    dialog.folder.setText(str(tmp_path / "out"))
    dialog.pseudonym.setText("CASE-7")
    with qtbot.waitSignal(dialog.export_finished, timeout=30_000) as finished:
        dialog.export_button.click()
    report = finished.args[0]
    qtbot.waitUntil(lambda: dialog.export_button.isEnabled())
    assert len(report.written) == 4 and not report.flagged and not report.skipped
    assert "4 written, 0 flagged, 0 skipped" in dialog.status.text()
    assert "4 file(s) written" in dialog.report_text.toPlainText()
    assert report.uid_map is not None and (tmp_path / "out") not in report.uid_map.parents

    outputs = [pydicom.dcmread(o) for _, o in report.written]
    assert {ds.PatientID for ds in outputs} == {"CASE-7"}
    seg = next(ds for ds in outputs if ds.Modality == "SEG")
    images = {ds.SOPInstanceUID for ds in outputs if ds.Modality == "CT"}
    assert {r.ReferencedSOPInstanceUID for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence} == images
    originals = {pydicom.dcmread(p).SOPInstanceUID for p in (folder / "ct").iterdir()}
    assert not images & originals
    dialog.close_button.click()
    assert not dialog.isVisible()
