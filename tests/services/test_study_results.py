"""A model's SEG and findings SR in the shown series' own study (as ``--out pacs:NODE`` leaves them, and a whole-study
retrieve brings them back) are found, told apart from a person's work, and read onto the volume: the SEG voxel for
voxel, the SR's findings with the centres, scores and measurements findings.json has. No model runs here: the
results are made up on a small phantom and written by the writers ``hounsfield infer`` uses."""
from __future__ import annotations

import datetime
import json
import shutil

import numpy as np
import pydicom
import pytest

from tests.conftest import SMALL_GRID
from viewer.services.batch.results import read_batch_result
from viewer.services.batch.study_results import find_study_results, is_model_seg

SEG = "hounsfield-chest-ct-segmentation"
DET = "hounsfield-chest-ct-nodule-detection"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A small phantom, a made-up segmentation and three made-up findings (one measured), written as ``hounsfield
    infer`` writes them; the SEG and the SR copied into the study's folder. ``(folder, volume, seg, outputs)``."""
    from inference.registry import find_model
    from inference.types import Detections, SegResult
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan
    from viewer.core.run_model import pick_series, write_outputs
    from viewer.core.sample import write_sample_study

    root = tmp_path_factory.mktemp("study-results")
    folder = write_sample_study(root / "study", seed=2, **SMALL_GRID)
    series = pick_series(scan([folder]))
    volume = load_series(series)
    seg_info, det_info = find_model(SEG), find_model(DET)
    values = sorted(v for v in seg_info.table if v)[:2]
    labels = np.zeros(volume.shape, np.uint16)
    labels[4:20, 30:90, 20:70], labels[6:18, 40:100, 90:140] = values
    seg = SegResult(labels, volume.affine, seg_info.table, SEG)
    write_outputs(seg, seg_info, volume, root / SEG, series=series)
    centres = [volume.index_to_lps(xyz) for xyz in ([40, 60, 10], [110, 80, 16], [80, 120, 25])]
    sizes = np.array([[9.0, 8.0, 10.0], [6.0, 6.0, 5.0], [12.0, 11.0, 10.0]])
    boxes = np.concatenate([np.array(centres) - sizes / 2, np.array(centres) + sizes / 2], axis=1)
    voxels = np.array([[8, 55, 35, 12, 65, 45], [15, 78, 108, 17, 82, 112], [23, 115, 75, 27, 125, 85]])
    measured = {"volume_mm3": 310, "long_axis_mm": 9.5, "short_axis_mm": 7.1, "mean_diameter_mm": 8.3,
                "type": "solid", "location": {"side": "right", "zone": "upper", "lobe_model": False},
                "lung_rads": "3"}
    detections = Detections(boxes, voxels, [0.61, 0.93, 0.42], [1, 1, 1], volume.affine, volume.shape,
                            det_info.table, DET, measurements=[None, measured, None])
    write_outputs(detections, det_info, volume, root / DET, series=series)
    shutil.copy(root / SEG / "seg.dcm", folder / "seg.dcm")
    shutil.copy(root / DET / "findings.sr.dcm", folder / "findings.sr.dcm")
    return folder, volume, seg, root


def _found(folder, volume, pacs_root=None):
    from viewer.core.dicom.scan import scan

    return {r.task: r for r in find_study_results(scan([folder]).all_series(), volume.series_uid, pacs_root)}


def test_the_seg_and_the_sr_of_a_model_are_found_and_labelled_by_model_and_time(study):
    folder, volume, _, _ = study
    found = _found(folder, volume)
    assert set(found) == {"segmentation", "detection"}
    seg, det = found["segmentation"], found["detection"]
    assert (seg.model_id, det.model_id) == (SEG, DET)  # the SEG names the model, the SR its id: both come back
    made = pydicom.dcmread(seg.path, stop_before_pixels=True)
    when = datetime.datetime.strptime(made.ContentDate + made.ContentTime[:6], "%Y%m%d%H%M%S")
    assert seg.label == f"{seg.model_name} (study {when:%Y-%m-%d %H:%M})" and seg.model_name.startswith("Chest CT")
    assert det.label.startswith("Chest CT: lung nodule detection") and " (study " in det.label
    assert seg.version and det.version
    assert " (PACS " in _found(folder, volume, pacs_root=folder.parent)["detection"].label
    assert is_model_seg(seg.path)


def test_the_seg_reads_back_voxel_identical_with_the_models_labels(study):
    folder, volume, made, _ = study
    result = read_batch_result(_found(folder, volume)["segmentation"], volume)
    assert np.array_equal(result.labels, made.labels)
    assert {v: made.table[v].name for v in made.present} == {v: result.table[v].name for v in result.present}


def test_the_srs_findings_read_back_as_findings_json_gives_them(study):
    folder, volume, _, root = study
    detections = read_batch_result(_found(folder, volume)["detection"], volume)
    findings = json.loads((root / DET / "findings.json").read_text())["findings"]
    assert len(detections) == len(findings) == 3
    assert np.allclose(detections.scores, [f["score"] for f in findings])  # highest first, as in the JSON
    assert np.allclose(detections.centers_lps, [f["center_lps"] for f in findings], atol=1e-3)
    # the SR keeps the diameter (largest extent), so the box is that cube around the centre
    assert np.allclose(detections.sizes_mm.max(axis=1), [max(f["size_mm"]) for f in findings], atol=1e-3)
    for box, finding in zip(detections.boxes_voxel, findings):
        centre = volume.lps_to_index(finding["center_lps"])[::-1]
        assert (box[:3] <= np.round(centre)).all() and (np.round(centre) < box[3:]).all()
    assert [detections.table[v].name for v in detections.labels] == [f["label"] for f in findings]
    keys = ("volume_mm3", "long_axis_mm", "short_axis_mm", "mean_diameter_mm", "type", "location", "lung_rads",
            "solid_component_mm")
    assert detections.measurements[0] == {k: findings[0][k] for k in keys}
    assert detections.measurements[1] is None and detections.measurements[2] is None


def test_a_persons_seg_is_not_taken_for_a_models_result(study, tmp_path):
    folder, volume, _, _ = study
    own = tmp_path / "study"
    shutil.copytree(folder, own)
    (own / "findings.sr.dcm").unlink()
    for name, change in (("edited", "SEMIAUTOMATIC"), ("annotation", "SEGMENTATION")):
        ds = pydicom.dcmread(own / "seg.dcm")
        if change == "SEMIAUTOMATIC":
            for segment in ds.SegmentSequence:
                segment.SegmentAlgorithmType = change
        else:
            ds.ContentLabel = change
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.SeriesInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(own / f"{name}.dcm")
        assert not is_model_seg(own / f"{name}.dcm")
    (own / "seg.dcm").unlink()
    assert _found(own, volume) == {}


def test_a_single_series_retrieve_brings_the_studys_ai_results_along(study, fresh_orthanc, tmp_path):
    """A DICOMweb retrieve of the CT alone also fetches our SEG and SR (they look like ours by description) - not a
    person's SEG - and the app finds them in the cache, labelled PACS."""
    from inference.jobs import run_job
    from viewer.core.dicom.scan import scan
    from viewer.services.pacs.cache import RetrieveCache
    from viewer.services.pacs.client import open_client
    from viewer.services.pacs.nodes import PacsNode
    from viewer.services.pacs.preview import retrieve_with_preview

    folder, volume, _, _ = study
    theirs = pydicom.dcmread(folder / "seg.dcm")  # a person's SEG of the same series: left in the PACS
    theirs.SeriesDescription, theirs.ContentLabel = "Reader 1", "SEGMENTATION"
    theirs.SOPInstanceUID, theirs.SeriesInstanceUID = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    theirs.save_as(tmp_path / "theirs.dcm")
    fresh_orthanc.upload_folder(folder)
    fresh_orthanc.upload([tmp_path / "theirs.dcm"])
    cache = RetrieveCache(tmp_path / "cache")
    client = open_client(PacsNode(name="web", url=fresh_orthanc.dicomweb_url))
    result = run_job(retrieve_with_preview(client, volume.study_uid, volume.series_uid, cache))
    ours = {str(pydicom.dcmread(folder / name, stop_before_pixels=True).SeriesInstanceUID)
            for name in ("seg.dcm", "findings.sr.dcm")}
    assert set(result.series_dirs) == {volume.series_uid, *ours}
    catalog = scan([str(p) for p in result.series_dirs.values()])
    found = find_study_results(catalog.all_series(), volume.series_uid, pacs_root=cache.root)
    assert sorted(r.task for r in found) == ["detection", "segmentation"]
    assert all(" (PACS " in r.label for r in found)
