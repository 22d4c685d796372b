"""The headless CLI over the same code as the GUI, run as a real subprocess on real files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom

from tests.conftest import data_path

REPO = Path(__file__).resolve().parents[1]


def hounsfield(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "viewer", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_scan_json_lists_every_folder_of_shared_data_without_a_traceback():
    data = data_path()
    result = hounsfield("scan", str(data), "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    catalog = json.loads(result.stdout)
    series = [s for p in catalog["patients"] for st in p["studies"] for s in st["series"]]
    keys = {"series_uid", "modality", "description", "series_number", "n_instances", "sop_class_uid", "rows",
            "columns", "kind", "references", "warnings"}
    assert all(keys <= set(s) for s in series)
    assert {s["kind"] for s in series} >= {"image", "seg", "rtstruct"}
    # Each data folder contributes at least one series; text files are reported, not crashed on.
    lidc = [s for s in series if s["n_instances"] == 133 and s["modality"] == "CT"]
    assert len(lidc) == 1
    unreadable = {Path(u["path"]).name for u in catalog["unreadable"]}
    assert "SOURCE.txt" in unreadable and all(u["reason"] for u in catalog["unreadable"])


def test_info_json_matches_the_headers(lidc_dir):
    result = hounsfield("info", str(lidc_dir), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["shape"] == [133, 512, 512] and info["dtype"] == "int16" and info["modality"] == "CT"
    files = sorted(lidc_dir.rglob("*.dcm"), key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True)
                                                                   .ImagePositionPatient[2]))
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    affine = np.array(info["affine"])
    assert np.allclose(affine[:3, 3], [float(v) for v in first.ImagePositionPatient], atol=0.01)
    assert np.allclose(info["spacing"][1:], [float(v) for v in first.PixelSpacing], atol=1e-4)
    assert info["series_uid"] == first.SeriesInstanceUID


def test_info_reports_gantry_tilt_as_a_warning():
    result = hounsfield("info", str(data_path("ct-gantry-tilt", "GE_head_tilt_uneven")), "--json")
    assert result.returncode == 0, result.stderr
    codes = {w["code"] for w in json.loads(result.stdout)["warnings"]}
    assert "gantry_tilt" in codes


def test_no_dicom_exits_2_with_the_reason(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    for command in ("scan", "info"):
        result = hounsfield(command, str(tmp_path))
        assert result.returncode == 2
        assert "no readable DICOM" in result.stderr and "Traceback" not in result.stderr
    assert hounsfield("scan", str(tmp_path / "missing")).returncode == 2


def test_sample_writes_a_series_that_scan_and_info_read(tmp_path):
    result = hounsfield("sample", "--out", str(tmp_path), "--seed", "3")
    assert result.returncode == 0, result.stderr
    info = json.loads(hounsfield("info", str(tmp_path / "dicom"), "--json").stdout)
    assert info["modality"] == "CT" and info["shape"][0] >= 100 and info["warnings"] == []


def test_sample_on_a_smaller_grid(tmp_path):
    """--shape/--spacing write a small study (tests and benchmarks run the models on it in seconds), with its own
    UIDs; a bad grid is refused by argparse."""
    result = hounsfield("sample", "--out", str(tmp_path / "small"), "--seed", "3", "--shape", "32,160,160",
                        "--spacing", "5,1.5,1.5")
    assert result.returncode == 0, result.stderr
    info = json.loads(hounsfield("info", str(tmp_path / "small" / "dicom"), "--json").stdout)
    assert info["shape"] == [32, 160, 160] and info["spacing"] == [5.0, 1.5, 1.5]
    bad = hounsfield("sample", "--out", str(tmp_path / "bad"), "--shape", "32,0,160")
    assert bad.returncode == 2 and "positive" in bad.stderr


def test_models_and_infer_through_the_command_line(tmp_path, mr_sagittal_dir):
    """A user bundle in HOUNSFIELD_MODELS is listed at once, and `infer` writes a SEG and prints its stages."""
    import os

    from tests.inference.helpers import tiny_unet_config, tiny_unet_state, write_bundle

    models = tmp_path / "models"
    write_bundle(models / "tiny_seg", tiny_unet_config(spacing=(3.0, 3.0, 6.0), roi=(32, 32, 16)),
                 {"name": "Tiny seg", "hounsfield": {"labels": {"1": "brain"}, "modality": "MR"}},
                 state_dict=tiny_unet_state(seed=5))
    env = {**os.environ, "HOUNSFIELD_MODELS": str(models), "HOUNSFIELD_HOME": str(tmp_path / "home")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "viewer", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=300, env=env)

    listed = run("models", "--json")
    assert listed.returncode == 0, listed.stderr
    tiny = [m for m in json.loads(listed.stdout) if m["id"] == "tiny_seg"]
    assert tiny and tiny[0]["task"] == "segmentation" and tiny[0]["builtin"] is False
    assert tiny[0]["labels"] == {"1": "brain"}

    out = tmp_path / "out"
    result = run("infer", "--model", "tiny_seg", str(mr_sagittal_dir), "--out", str(out), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "network" in result.stdout and "total" in result.stdout
    seg = pydicom.dcmread(out / "seg.dcm")
    assert seg.Modality == "SEG"
    source_uids = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in mr_sagittal_dir.rglob("*")
                   if p.is_file() and p.suffix not in (".txt", ".md")}
    referenced = {i.ReferencedSOPInstanceUID
                  for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    assert referenced <= source_uids and referenced

    missing = run("infer", "--model", "no_such_model", str(mr_sagittal_dir), "--out", str(tmp_path / "x"))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr and "no_such_model" in missing.stderr
