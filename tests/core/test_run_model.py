"""``infer_to_dir``: DICOM in, seg.dcm / findings.json / saliency.nii.gz out, with stage timings."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import data_path
from tests.inference.helpers import (
    save_seeded_weights,
    tiny_detector_config,
    tiny_saliency_config,
    tiny_unet_config,
    tiny_unet_state,
    write_bundle,
)
from viewer.core.jobs import Cancelled, CancelToken
from viewer.core.run_model import InferError, format_timings, infer_to_dir, models_json, pick_series

STAGES = {"load", "model", "preprocess", "network", "postprocess", "export", "total"}


@pytest.fixture
def models(tmp_path, monkeypatch):
    """A models folder with a tiny segmentation, detection and saliency bundle, found via HOUNSFIELD_MODELS."""
    folder = tmp_path / "models"
    write_bundle(folder / "tiny_seg", tiny_unet_config(spacing=(3.0, 3.0, 6.0), roi=(32, 32, 16)),
                 {"name": "Tiny seg", "version": "1.2",
                  "hounsfield": {"labels": {"1": "lung", "2": "nodule"}, "modality": "MR"}},
                 state_dict=tiny_unet_state(seed=5))
    write_bundle(folder / "tiny_det", tiny_detector_config(), {"name": "Tiny det", "hounsfield": {
        "task": "detection", "labels": {"1": "nodule"}}})
    write_bundle(folder / "tiny_sal", tiny_saliency_config(), {"name": "Tiny saliency",
                                                                "hounsfield": {"task": "saliency"}})
    for name in ("tiny_det", "tiny_sal"):  # seeded random weights saved as a real model.pt
        save_seeded_weights(folder / name)
    monkeypatch.setenv("HOUNSFIELD_MODELS", str(folder))
    monkeypatch.setenv("HOUNSFIELD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HOUNSFIELD_RESOURCES", str(tmp_path / "no-resources"))
    return folder


def test_models_json_lists_the_bundles_with_the_issue_schema(models):
    from viewer.core.sample import DEMO_MODELS

    everything = {r["id"]: r for r in models_json()}
    assert set(everything) == {"tiny_seg", "tiny_det", "tiny_sal", *DEMO_MODELS}
    assert all(everything[m]["builtin"] and everything[m]["trusted"] for m in DEMO_MODELS)
    records = {k: v for k, v in everything.items() if k not in DEMO_MODELS}
    assert records["tiny_seg"]["labels"] == {"1": "lung", "2": "nodule"}
    assert records["tiny_det"]["task"] == "detection" and records["tiny_sal"]["task"] == "saliency"
    for record in records.values():
        assert {"id", "name", "task", "modality", "labels", "builtin", "path", "trusted"} <= set(record)
        assert record["builtin"] is False and record["trusted"] is False
    json.dumps(list(records.values()))


def test_segmentation_writes_a_seg_on_the_series_it_came_from(models, tmp_path):
    import highdicom as hd

    from inference.bundle import load_bundle
    from inference.task import run_bundle, run_job
    from tests.inference.helpers import real_volume

    steps = []
    report = infer_to_dir(data_path("mr-decubitus-hfdr"), "tiny_seg", tmp_path / "out", device="cpu",
                          progress=steps.append)
    assert report["task"] == "segmentation" and report["model"] == "tiny_seg" and STAGES <= set(report["timings"])
    assert any(s.message.startswith("Running the model") for s in steps)
    seg = hd.seg.segread(report["outputs"]["segmentation"])
    _, volume = real_volume("mr-decubitus-hfdr")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == volume.series_uid == report["series_uid"]
    assert seg.SegmentSequence[0].SegmentAlgorithmName == "Tiny seg"
    # The SEG holds exactly what the model produced on the volume's grid.
    from viewer.core.export.seg import read_seg_labels

    direct = run_job(run_bundle(load_bundle(models / "tiny_seg", device="cpu"), volume.array, volume.affine)).result
    assert direct.present  # the (random) model does mark voxels, so the comparison below means something
    back, names = read_seg_labels(report["outputs"]["segmentation"], volume.slice_sop_uids, volume.shape)
    remapped = np.zeros_like(direct.labels)
    for number, name in names.items():
        value = {"lung": 1, "nodule": 2}[name]
        remapped[back == number] = value
    assert np.array_equal(remapped, direct.labels)
    assert set(report["labels_present"].values()) == set(names.values())
    assert len(format_timings(report["timings"])) == 7


def test_detection_writes_findings_json(models, tmp_path):
    report = infer_to_dir(data_path("mr-decubitus-hfdr"), "tiny_det", tmp_path / "out", device="cpu")
    data = json.loads((tmp_path / "out" / "findings.json").read_text())
    assert data["model"] == "tiny_det" and data["series_uid"] == report["series_uid"]
    assert 0 < len(data["findings"]) <= 5 and len(data["findings"]) == report["n_findings"]
    shape = (35, 256, 256)
    for finding in data["findings"]:
        assert finding["label"] == "nodule" and 0 <= finding["score"] <= 1
        z0, y0, x0, z1, y1, x1 = finding["box_voxel"]
        assert 0 <= z0 < z1 <= shape[0] and 0 <= y0 < y1 <= shape[1] and 0 <= x0 < x1 <= shape[2]
        assert len(finding["center_lps"]) == 3 and all(s >= 0 for s in finding["size_mm"])
    assert report["patches"] > 1  # force_sliding_window: windows, each reported
    # The same findings as a TID 1500 SR: one measurement group per finding, centres equal to the JSON's.
    from viewer.core.export.sr import read_measurements

    measured = read_measurements(report["outputs"]["sr"])
    assert len(measured) == len(data["findings"])
    for finding, measurement in zip(data["findings"], measured):
        assert np.allclose(measurement["center_lps"], finding["center_lps"], atol=0.01)


def test_saliency_writes_nifti_on_the_volume_grid(models, tmp_path):
    import SimpleITK as sitk

    from tests.inference.helpers import real_volume

    report = infer_to_dir(data_path("mr-decubitus-hfdr"), "tiny_sal", tmp_path / "out", device="cpu")
    image = sitk.ReadImage(report["outputs"]["saliency"])
    _, volume = real_volume("mr-decubitus-hfdr")
    assert sitk.GetArrayFromImage(image).shape == volume.shape
    assert np.isfinite(sitk.GetArrayFromImage(image)).all()
    assert np.allclose(image.TransformIndexToPhysicalPoint((10, 20, 5)), volume.index_to_lps([10, 20, 5]), atol=1e-3)


def test_series_choice_and_cancel(models, tmp_path):
    from viewer.core.dicom.scan import scan

    catalog = scan([data_path("mr-decubitus-hfdr"), data_path("lidc-idri-0001")])
    with pytest.raises(InferError, match="choose one with --series"):
        pick_series(catalog)
    with pytest.raises(InferError, match="no series"):
        pick_series(catalog, "1.2.3.4")
    mr = [s for s in catalog.all_series() if s.modality == "MR"][0]
    assert pick_series(catalog, mr.uid) is mr

    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        infer_to_dir(mr, "tiny_seg", tmp_path / "c", device="cpu", cancel=cancel)
    assert not (tmp_path / "c" / "seg.dcm").exists()


def _same_outputs(a, b) -> None:
    """Two output folders hold the same files with the same content (UIDs and dates aside)."""
    import SimpleITK as sitk

    from tests.inference.helpers import real_volume
    from viewer.core.export.seg import read_seg_labels
    from viewer.core.export.sr import read_measurements

    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    _, volume = real_volume("mr-decubitus-hfdr")
    for name in files:
        if name.endswith(".json"):
            assert json.loads((a / name).read_text()) == json.loads((b / name).read_text())
        elif name == "seg.dcm":
            labels_a, names_a = read_seg_labels(a / name, volume.slice_sop_uids, volume.shape)
            labels_b, names_b = read_seg_labels(b / name, volume.slice_sop_uids, volume.shape)
            assert names_a == names_b and np.array_equal(labels_a, labels_b)
        elif name.endswith(".sr.dcm"):
            assert read_measurements(a / name) == read_measurements(b / name)
        else:
            assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(a / name)),
                                  sitk.GetArrayFromImage(sitk.ReadImage(b / name)))


def test_write_outputs_writes_what_infer_to_dir_writes_from_one_loaded_bundle(models, tmp_path):
    """Each task: one bundle loaded once, handed to infer_to_dir (no load of its own) and run again by infer; the
    result written by write_outputs gives the same files as infer_to_dir."""
    from inference.bundle import load_bundle
    from inference.task import infer
    from tests.inference.helpers import real_volume
    from viewer.core.run_model import write_outputs

    series, volume = real_volume("mr-decubitus-hfdr")
    for name, files in (("tiny_seg", {"seg.dcm"}), ("tiny_det", {"findings.json", "findings.sr.dcm"}),
                        ("tiny_sal", {"saliency.nii.gz"})):
        bundle = load_bundle(models / name, device="cpu")
        report = infer_to_dir(series, bundle, tmp_path / name / "cli")
        assert "model" not in report["timings"] and {"load", "network", "export", "total"} <= set(report["timings"])
        assert {p.name for p in (tmp_path / name / "cli").iterdir()} == files
        outcome = infer(bundle, volume.array, volume.affine)
        written = write_outputs(outcome.result, bundle.info, volume, tmp_path / name / "batch", series=series)
        assert set(written["timings"]) == {"export"}
        assert {k: v.replace("batch", "cli") for k, v in written["outputs"].items()} == report["outputs"]
        assert {k: v for k, v in written.items() if k not in ("outputs", "timings")} == \
            {k: v for k, v in report.items() if k in ("labels_present", "n_findings")}
        _same_outputs(tmp_path / name / "cli", tmp_path / name / "batch")


def test_write_outputs_refuses_a_task_without_a_writer_and_a_seg_without_sources(models, tmp_path):
    import dataclasses

    from inference.registry import find_model
    from inference.types import SegResult
    from tests.inference.helpers import real_volume
    from viewer.core.run_model import write_outputs

    _, volume = real_volume("mr-decubitus-hfdr")
    info = find_model("tiny_seg")
    result = SegResult(np.zeros(volume.shape, np.uint8), volume.affine, info.table, model_id=info.id)
    odd = dataclasses.replace(info, task="registration")
    with pytest.raises(InferError, match=r"no writer for task 'registration' \(known tasks: segmentation, "
                                         r"detection, saliency\)"):
        write_outputs(result, odd, volume, tmp_path / "odd")
    assert not (tmp_path / "odd").exists()
    with pytest.raises(InferError, match="needs the source images"):
        write_outputs(result, info, volume, tmp_path / "seg")
