"""The Follow-up dock on the follow-up sample (seed 0 and a year later, with the built-in detector's findings on
both): the nodules are paired as the ground truth links them, the rows jump both sides to the nodule, and Save
writes the JSON of ``hounsfield compare --json``."""
import json

import numpy as np
import pytest

from inference.jobs import run_job
from inference.task import run_model
from tests.qt.conftest import open_and_wait
from viewer.core.sample import write_followup_study

MODEL = "hounsfield-chest-ct-nodule-detection"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    out = tmp_path_factory.mktemp("followup-gui")
    prior_dir, current_dir = write_followup_study(out, seed=0, days=365)
    truth = json.loads((out / "followup" / "ground_truth" / "followup.json").read_text())
    return prior_dir, current_dir, truth


def _key_of_date(window, date):
    for patient in window.session.catalog.patients:
        for study in patient.studies:
            if study.date == date:
                return study.series[0].key
    raise AssertionError(f"no study of {date}")


def test_followup_pairs_the_nodules_and_jumps_to_them(main_window, qtbot, pair, tmp_path):
    prior_dir, current_dir, truth = pair
    window = open_and_wait(qtbot, main_window, [prior_dir, current_dir])
    prior_key, current_key = _key_of_date(window, "20240101"), _key_of_date(window, "20241231")
    if window.session.current.key != current_key:
        with qtbot.waitSignal(window.series_loaded, timeout=60_000):
            window.open_series(current_key)
    panel = window.compare.followup
    window.compare.auto_register = False
    with qtbot.waitSignal(window.compare.compare_changed, timeout=60_000):
        window.compare.compare_with(prior_key)
    assert panel.nodules is None and "Run nodule detection on the current and the prior" in panel.widget.header.text()
    for key in (prior_key, current_key):  # the detector's real findings on both series
        state = window.session.state(key)
        state.set_result(run_job(run_model(MODEL, state.volume.array, state.volume.affine)).result,
                         "Nodule detection")
    # the reader's threshold: the detector's operating point (as when it runs from the AI panel)
    window.findings_panel.set_min_score(next(m for m in window.ai_panel.models if m.id == MODEL).operating_point)
    assert "aligned by table position" in panel.widget.header.text()
    assert window.compare.prior_viewer.layers, "the prior's boxes are drawn on it"
    with qtbot.waitSignal(window.compare.registered, timeout=120_000):
        window.compare.register()
    assert panel.nodules is not None, panel.widget.header.text()
    assert "365 days apart, registered" in panel.widget.header.text()
    nodules = panel.nodules
    # every nodule the truth has in both studies is paired with its own self; the new one is new
    for rec in truth["nodules"]:
        then, now = (np.asarray(c) if c is not None else None for c in rec["center_lps"])
        if rec["status"] == "new":
            assert any(n["status"] == "new" and np.linalg.norm(np.asarray(n["center_lps"][1]) - now) < 8
                       for n in nodules), rec
        elif rec["status"] != "resolved":
            hits = [n for n in nodules if n["status"] == "matched"
                    and np.linalg.norm(np.asarray(n["center_lps"][1]) - now) < 8
                    and np.linalg.norm(np.asarray(n["center_lps"][0]) - then) < 8]
            assert len(hits) == 1, (rec, nodules)
    assert panel.widget.table.topLevelItemCount() == len(nodules)
    # a row jumps the main views to the nodule now, and the prior to where it was
    row = next(i for i, n in enumerate(nodules) if n["status"] == "matched")
    panel.jump(row)
    current, prior = window.session.current.display, window.compare.prior_viewer.state
    np.testing.assert_allclose(current.position_lps, nodules[row]["center_lps"][1], atol=1.0)
    np.testing.assert_allclose(prior.position_lps, nodules[row]["center_lps"][0], atol=3.0)
    # the current study's SR carries the follow-up: one group per nodule present now, with its status and VDT
    from viewer.core.export.sr_measurements import read_report

    report = read_report(window.measurement_files.save(tmp_path / "measurements.sr.dcm"))
    groups = [g for g in report.groups if g.tracking_id.startswith("Follow-up nodule")]
    assert len(groups) == sum(n["status"] != "resolved" for n in nodules)
    growing = [n for n in nodules if n.get("vdt_note") == "growing"]
    assert sorted(g.value("Volume doubling time") for g in groups if g.value("Volume doubling time")) == \
        pytest.approx(sorted(n["vdt_days"] for n in growing))
    saved = json.loads(panel.save(tmp_path / "followup.json").read_text())
    assert set(saved) >= {"prior", "current", "days", "transform", "nodules", "summary"}
    assert saved["days"] == 365 and saved["summary"]["new"] >= 1
    assert saved["transform"]["direction"].startswith("current_to_prior")
