"""`hounsfield infer` refuses a model on a series it was not made for, unless --force."""
from __future__ import annotations

import json

from viewer.cli import EXIT_FAILED, EXIT_OK, main
from viewer.core.sample import DEMO_MODELS


def test_the_chest_detector_is_refused_on_the_brain_mr_and_runs_with_force(tmp_path, mr_sagittal_dir, capsys,
                                                                           monkeypatch):
    monkeypatch.setenv("HOUNSFIELD_HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    code = main(["infer", "--model", DEMO_MODELS[0], str(mr_sagittal_dir), "--out", str(out), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == EXIT_FAILED
    assert "is not made for this series" in captured.err and "made for CT; this series is MR" in captured.err
    assert "--force" in captured.err and "Traceback" not in captured.err
    assert not out.exists()  # refused before anything ran or was written

    code = main(["infer", "--model", DEMO_MODELS[0], str(mr_sagittal_dir), "--out", str(out), "--device", "cpu",
                 "--force"])
    captured = capsys.readouterr()
    assert code == EXIT_OK, captured.err
    assert "Run anyway (forced), although: made for CT; this series is MR" in captured.err
    doc = json.loads((out / "findings.json").read_text())
    # whatever it found on a brain, nothing longer than the model's 40 mm maximum is reported
    assert all(max(f["size_mm"]) <= 40 for f in doc["findings"])
