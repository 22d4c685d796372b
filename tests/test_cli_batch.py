"""``hounsfield batch`` as a command: resume after the driver is killed mid-run, refusals with a reason, the
plain in-process loop. The Ray runtime of the resume test is the command's own (a child of the killed process)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from viewer.cli import main
from viewer.services.batch.manifest import DONE, Manifest

REPO = Path(__file__).resolve().parents[1]
SEG = "hounsfield-chest-ct-segmentation"


def _done_rows(manifest_path: Path) -> dict:
    if not manifest_path.exists():
        return {}
    with Manifest(manifest_path) as manifest:
        return {r.series_key: r for r in manifest.rows() if r.state == DONE}


def _kill_session(process: subprocess.Popen) -> None:
    """SIGKILL the driver, then whatever it started (its local Ray runtime) - all in the session we gave it."""
    process.kill()
    process.wait(30)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_a_rerun_after_the_driver_was_killed_runs_only_the_unfinished_series(small_studies, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "viewer", "batch", "--model", SEG, *map(str, small_studies), "--out", str(out),
               "--workers", "2"]
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=log, start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while not _done_rows(out / "batch-manifest.sqlite"):
                assert first.poll() is None, (tmp_path / "first.log").read_text()
                assert time.monotonic() < deadline, "no series finished in time"
                time.sleep(0.1)
        finally:
            _kill_session(first)
    before = _done_rows(out / "batch-manifest.sqlite")
    assert 1 <= len(before) < len(small_studies), "the kill should land mid-run"
    for record in out.glob("*/*/batch.json"):  # whatever is in the sink is whole
        assert all((record.parent / name).is_file() for name in json.loads(record.read_text())["outputs"])
    assert len(list(out.glob("*/*/batch.json"))) == len(before)

    second = subprocess.run([*command, "--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["run"]["finished"] == len(small_studies) - len(before)
    after = _done_rows(out / "batch-manifest.sqlite")
    assert len(after) == len(small_studies)
    for key, row in before.items():  # untouched by the second run
        assert (after[key].finished_at, after[key].run_id) == (row.finished_at, row.run_id)
    assert {after[k].run_id for k in set(after) - set(before)} == {max(r.run_id for r in after.values())}
    assert list((out / ".staging").iterdir()) == []  # the killed run's staging folders are gone


def test_refusals_say_why(tmp_path, capsys, small_studies, monkeypatch):
    monkeypatch.setenv("HOUNSFIELD_HOME", str(tmp_path / "home"))  # no PACS nodes configured
    assert main(["batch", "--model", "no-such-model", str(small_studies[0]), "--out", str(tmp_path / "o")]) == 1
    assert "no-such-model" in capsys.readouterr().err
    assert main(["batch", "--model", SEG, "pacs:ORTHANC?StudyDate=20240101", "--out", str(tmp_path / "o")]) == 1
    assert "no PACS node named 'ORTHANC' (known: none configured" in capsys.readouterr().err
    assert main(["batch", "--model", SEG, "pacs:ORTHANC?PatientName=X", "--out", str(tmp_path / "o")]) == 1
    assert "unknown PACS query key 'PatientName'" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["batch", "--model", SEG, str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no image series" in capsys.readouterr().err


def test_inline_runs_without_ray_and_prints_the_summary(tmp_path, capsys, small_studies):
    assert main(["batch", "--model", SEG, str(small_studies[0]), "--out", str(tmp_path / "o"), "--address",
                 "inline"]) == 0
    printed = capsys.readouterr()
    assert "done" in printed.out and "1 series in" in printed.out and "(inline)" in printed.out
    assert len(list((tmp_path / "o").glob(f"*/*/{SEG}/seg.dcm"))) == 1


def test_evaluate_with_address_scores_the_cases_on_ray(tmp_path, capsys, small_studies):
    pytest.importorskip("ray")
    report = tmp_path / "report.json"
    assert main(["evaluate", "--model", SEG, str(small_studies[0]), "--address", "local", "--workers", "1",
                 "--json", str(report)]) == 0
    assert f"{SEG}: 1 cases" in capsys.readouterr().out
    dice = json.loads(report.read_text())[SEG]["cases"][0]["dice"]
    assert dice["lungs+airways"] > 0.8
