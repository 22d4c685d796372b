"""A hostile or broken bundle among the models (issue 10): listed as broken with its reason, hiding nothing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inference.registry import find_model, scan_models
from tests.inference.helpers import tiny_unet_config, write_bundle

REPO = Path(__file__).resolve().parents[2]
DEPTH = 100_000  # json.loads recurses per level: far beyond Python's recursion limit


def _deep_bundle(folder: Path, which: str) -> Path:
    bundle = folder / f"deep_{which}"
    (bundle / "configs").mkdir(parents=True)
    deep = "[" * DEPTH + "]" * DEPTH
    (bundle / "configs" / "metadata.json").write_text(deep if which == "metadata" else json.dumps({"name": "d"}))
    (bundle / "configs" / "inference.json").write_text(deep if which == "config" else "{}")
    return bundle


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    monkeypatch.setenv("HOUNSFIELD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HOUNSFIELD_MODELS", raising=False)
    return tmp_path / "models"


@pytest.mark.parametrize("which", ["metadata", "config"])
def test_deeply_nested_json_is_a_broken_bundle_not_a_recursion_error(user_models, which):
    bad = _deep_bundle(user_models, which)
    write_bundle(user_models / "good", tiny_unet_config())
    models, problems = scan_models([user_models])
    ids = {m.id for m in models}
    assert "good" in ids and "hounsfield-chest-ct-segmentation" in ids  # the built-ins are not hidden either
    assert dict(problems)[str(bad)] == f"{bad.name}: a config nests too deeply to read"
    assert find_model("hounsfield-chest-ct-segmentation", [user_models]).builtin


def test_models_cli_lists_the_others_and_names_the_broken_bundle_on_stderr(user_models):
    bad = _deep_bundle(user_models, "metadata")
    env = {**os.environ, "HOUNSFIELD_MODELS": str(user_models), "HOUNSFIELD_HOME": str(user_models.parent / "h")}
    result = subprocess.run([sys.executable, "-m", "viewer", "models", "--json"], cwd=REPO, capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"model bundle skipped: {bad}: deep_metadata: a config nests too deeply to read" in result.stderr
    assert {"hounsfield-chest-ct-segmentation", "hounsfield-chest-ct-nodule-detection"} <= {
        m["id"] for m in json.loads(result.stdout)}
