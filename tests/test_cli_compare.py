"""``hounsfield sample --follow-up`` and ``hounsfield compare`` from the command line (a coarse pair, written once).

The detector on the full-size pair is tested through the same core function in tests/core/test_followup.py.
"""
from __future__ import annotations

import json

import pytest

from tests.test_cli import hounsfield
from viewer.core.sample import write_followup_study

EMPTY = '{"model": "none", "series_uid": "x", "findings": []}'


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-followup")
    prior, current = write_followup_study(out, seed=3, days=200, shape=(48, 128, 128), spacing=(6.5, 2.7, 2.7))
    return out, prior, current


def test_compare_json_prints_the_transform_and_matches_given_findings(pair, tmp_path):
    out, prior, current = pair
    findings = tmp_path / "empty.json"
    findings.write_text(EMPTY)
    done = hounsfield("compare", str(prior), str(current), "--json", "--prior-findings", str(findings),
                      "--current-findings", str(findings))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["days"] == 200 and result["nodules"] == [] and result["findings_source"] == "files"
    t = result["transform"]
    assert t["direction"].startswith("current_to_prior") and len(t["matrix"]) == 4 and t["kind"] == "rigid"
    assert 0.5 < t["rotation_deg"] < 8 and len(t["translation_mm"]) == 3
    assert "PatientName" not in done.stdout and "HF-SAMPLE" not in done.stdout


def test_compare_without_findings_prints_the_registration_only(pair):
    _, prior, current = pair
    done = hounsfield("compare", str(prior), str(current))
    assert done.returncode == 0, done.stderr
    assert "transform (rigid" in done.stdout and "days between studies: 200" in done.stdout
    assert "nodules" not in done.stdout


def test_same_day_studies_with_findings_fail_clearly(pair, tmp_path):
    _, prior, _ = pair
    findings = tmp_path / "empty.json"
    findings.write_text(EMPTY)
    done = hounsfield("compare", str(prior), str(prior), "--prior-findings", str(findings), "--current-findings",
                      str(findings))
    assert done.returncode == 1 and "at least one day after" in done.stderr and "Traceback" not in done.stderr


def test_sample_follow_up_refuses_zero_days(tmp_path):
    done = hounsfield("sample", "--out", str(tmp_path / "s"), "--follow-up", "0")
    assert done.returncode == 1 and "positive" in done.stderr and not (tmp_path / "s").exists()
