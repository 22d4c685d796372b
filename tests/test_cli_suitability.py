"""`hounsfield infer` refuses a model on a series it was not made for, unless --force."""
from __future__ import annotations

import functools
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


def test_evaluate_refuses_a_model_on_cases_it_was_not_made_for_unless_forced(tmp_path, capsys, monkeypatch):
    """A bundle declaring MR input, scored on a (CT) phantom: refused with the reason; --force scores it."""
    from tests.inference.helpers import tiny_unet_config, tiny_unet_state, write_bundle

    models = tmp_path / "models"
    write_bundle(models / "mr_only", tiny_unet_config(spacing=(6.0, 6.0, 6.0), roi=(32, 32, 16)),
                 {"name": "MR only", "hounsfield": {"labels": {"1": "lung_left"},
                                                    "expected_input": {"modality": ["MR"]}}},
                 state_dict=tiny_unet_state(seed=5))
    monkeypatch.setenv("HOUNSFIELD_MODELS", str(models))
    monkeypatch.setenv("HOUNSFIELD_HOME", str(tmp_path / "home"))
    from viewer.core import evaluation

    # generate the phantom once for both runs (it takes ~15 s on a busy CPU); nothing else is replaced
    monkeypatch.setattr(evaluation, "phantom_case", functools.lru_cache(evaluation.phantom_case))
    assert main(["evaluate", "--model", "mr_only", "phantom:5010", "--threads", "1"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "MR only (phantom 5010) is not made for this series: made for MR; this series is CT" in err
    assert main(["evaluate", "--model", "mr_only", "phantom:5010", "--threads", "1", "--force"]) == EXIT_OK
    assert "phantom 5010" in capsys.readouterr().out
