"""``hounsfield anonymize`` as a real subprocess on real files: report, exit codes, where the UID map goes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from tests.conftest import data_path

REPO = Path(__file__).resolve().parents[1]


def hounsfield(*args: str, data_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_DATA_HOME": str(data_home)}  # the default map goes to the user data folder
    return subprocess.run([sys.executable, "-m", "viewer", "anonymize", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=env)


def _inputs(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    shutil.copytree(data_path("seg-rtstruct", "dcmqi", "segmentations", "ct-3slice"), src / "ct")
    shutil.copy(data_path("seg-rtstruct", "dcmqi", "segmentations", "liver.dcm"), src / "liver-seg.dcm")
    shutil.copy(get_testdata_file("SC_rgb.dcm"), src / "capture.dcm")
    (src / "readme.txt").write_text("not DICOM")
    return src


def test_json_report_default_map_outside_the_output(tmp_path):
    src, out, home = _inputs(tmp_path), tmp_path / "out", tmp_path / "home"
    result = hounsfield(str(src), "--out", str(out), "--json", data_home=home)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert len(report["written"]) == 4
    assert [Path(f["source"]).name for f in report["flagged"]] == ["capture.dcm"]
    assert report["flagged"][0]["exported"] is False and "secondary capture" in report["flagged"][0]["reason"]
    assert [Path(s["source"]).name for s in report["skipped"]] == ["readme.txt"]
    uid_map = Path(report["uid_map"])
    assert uid_map.is_file() and home in uid_map.parents and out not in uid_map.parents
    assert all(p.suffix == ".dcm" for p in out.rglob("*") if p.is_file())
    seg = next(pydicom.dcmread(f["output"]) for f in report["written"] if f["source"].endswith("liver-seg.dcm"))
    images = {pydicom.dcmread(f["output"]).SOPInstanceUID for f in report["written"] if "/ct/" in f["source"]}
    referenced = {r.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for r in
                  s.ReferencedInstanceSequence}
    assert referenced == images and seg.PatientIdentityRemoved == "YES"


def test_a_continued_map_gives_the_same_uids_and_text_summary(tmp_path):
    src, home, uid_map = _inputs(tmp_path), tmp_path / "home", tmp_path / "private" / "map.json"
    first = hounsfield(str(src / "ct"), "--out", str(tmp_path / "a"), "--uid-map", str(uid_map),
                       "--profile", "retain-dates", "--pseudonym", "CASE-1", data_home=home)
    second = hounsfield(str(src), "--out", str(tmp_path / "b"), "--uid-map", str(uid_map), "--include-flagged",
                        data_home=home)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "3 file(s) written" in first.stdout and "5 file(s) written" in second.stdout
    assert "flagged (exported anyway)" in second.stdout and "capture.dcm" in second.stdout
    assert "skipped:" in second.stdout and "readme.txt" in second.stdout
    a = {pydicom.dcmread(p).SOPInstanceUID for p in (tmp_path / "a").rglob("*.dcm")}
    b = {pydicom.dcmread(p).SOPInstanceUID for p in (tmp_path / "b").rglob("*.dcm")}
    assert len(a) == 3 and a < b  # the CT slices kept their new UIDs across the two runs
    one = pydicom.dcmread(next((tmp_path / "a").rglob("*.dcm")))
    assert one.PatientID == "CASE-1" and one.StudyDate  # retain-dates
    assert not (home / "hounsfield").exists()  # --uid-map: nothing else written


def test_refusals_and_no_dicom_exit_codes(tmp_path):
    src, home = _inputs(tmp_path), tmp_path / "home"
    inside = hounsfield(str(src), "--out", str(src / "out"), data_home=home)
    assert inside.returncode == 1 and "inside the input" in inside.stderr and not (src / "out").exists()
    map_inside = hounsfield(str(src / "ct"), "--out", str(tmp_path / "o"), "--uid-map",
                            str(tmp_path / "o" / "map.json"), data_home=home)
    assert map_inside.returncode == 1 and "UID map must not be written inside" in map_inside.stderr
    nothing = hounsfield(str(src / "readme.txt"), "--out", str(tmp_path / "o2"), data_home=home)
    assert nothing.returncode == 2 and "no readable DICOM" in nothing.stderr
    for result in (inside, map_inside, nothing):
        assert "Traceback" not in result.stderr
