"""Model discovery: built-in and user bundle folders, metadata -> ModelInfo, trust, the JSON schema."""
from __future__ import annotations

import json

import pytest

from inference import registry
from inference.registry import (
    ModelNotFound,
    find_model,
    list_models,
    read_bundle,
    scan_models,
    set_trusted,
    user_models_dir,
)
from tests.inference.helpers import tiny_unet_config, write_bundle, zoo_bundle

OURS = {"id": "chest-demo", "name": "Chest demo", "task": "segmentation", "modality": "CT",
        "labels": {"1": {"name": "left lung", "color": [10, 20, 30]}, "2": {"name": "nodule", "color": "#ff8000"}},
        "licence": "Apache-2.0", "notice": "Demo only."}


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No real user folders: HOUNSFIELD_HOME and resources point into tmp."""
    monkeypatch.setenv("HOUNSFIELD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HOUNSFIELD_RESOURCES", str(tmp_path / "resources"))
    monkeypatch.delenv("HOUNSFIELD_MODELS", raising=False)
    return tmp_path


def test_bundles_are_found_in_builtin_env_extra_and_user_folders(isolated, monkeypatch):
    write_bundle(isolated / "resources" / "models" / "builtin_seg", tiny_unet_config(),
                 {"name": "x", "hounsfield": {**OURS, "id": "builtin-seg"}})
    write_bundle(isolated / "env" / "env_seg", tiny_unet_config())
    write_bundle(isolated / "extra" / "extra_seg", tiny_unet_config())
    write_bundle(user_models_dir() / "user_seg", tiny_unet_config())
    monkeypatch.setenv("HOUNSFIELD_MODELS", str(isolated / "env"))
    models = {m.id: m for m in list_models([isolated / "extra"])}
    assert set(models) == {"builtin-seg", "env_seg", "extra_seg", "user_seg"}
    assert models["builtin-seg"].builtin and models["builtin-seg"].trusted
    assert not models["user_seg"].builtin and not models["user_seg"].trusted
    # A bundle dropped into a models folder shows up at the next listing.
    write_bundle(user_models_dir() / "late_seg", tiny_unet_config())
    assert "late_seg" in {m.id for m in list_models()}


def test_metadata_block_gives_labels_colours_modality_and_spacing(isolated):
    path = write_bundle(isolated / "m", tiny_unet_config(spacing=(1.5, 1.5, 2.0)), {"name": "x", "hounsfield": OURS})
    info = read_bundle(path)
    assert info.id == "chest-demo" and info.task == "segmentation" and info.modality == "CT"
    assert info.labels == {1: "left lung", 2: "nodule"}
    assert info.colors == {1: (10, 20, 30), 2: (255, 128, 0)}
    assert info.spacing == (1.5, 1.5, 2.0)
    assert info.licence == "Apache-2.0" and info.notice == "Demo only."
    assert not info.has_weights
    record = info.to_json()
    assert {"id", "name", "task", "modality", "labels", "builtin", "path", "trusted"} <= set(record)
    assert record["labels"] == {"1": "left lung", "2": "nodule"}
    json.dumps(record)


def test_model_zoo_bundles_are_described_from_their_own_metadata(isolated):
    spleen = read_bundle(zoo_bundle("spleen_ct_segmentation"))
    assert (spleen.task, spleen.modality, spleen.labels) == ("segmentation", "CT", {1: "spleen"})
    assert spleen.spacing == (1.5, 1.5, 2.0)
    assert "not to be used for diagnostic" in spleen.notice
    lung = read_bundle(zoo_bundle("lung_nodule_ct_detection"))
    assert lung.task == "detection" and lung.labels == {1: "nodule"}
    # Its Spacingd is disabled by default (pre-resampled LUNA16); we feed raw grids, so the override enables it.
    assert lung.overrides == {"whether_raw_luna16": True}
    assert lung.spacing == (0.703125, 0.703125, 1.25)


def test_broken_and_duplicate_bundles_are_reported_not_listed(isolated):
    folder = isolated / "user"
    write_bundle(folder / "good", tiny_unet_config())
    bad = folder / "bad"
    (bad / "configs").mkdir(parents=True)
    (bad / "configs" / "metadata.json").write_text("{not json")
    (bad / "configs" / "inference.json").write_text("{}")
    write_bundle(folder / "twin", tiny_unet_config(), {"name": "t", "hounsfield": {"id": "good"}})
    models, problems = scan_models([folder], include_builtin=False)
    assert [m.id for m in models] == ["good"]
    reasons = dict(problems)
    assert "cannot read" in reasons[str(bad)]
    assert "already used" in reasons[str(folder / "twin")]


def test_find_model_by_id_or_path_and_a_clear_error(isolated):
    path = write_bundle(isolated / "f" / "seg_a", tiny_unet_config())
    assert find_model("seg_a", [isolated / "f"]).path == str(path.resolve())
    assert find_model(path).id == "seg_a"
    with pytest.raises(ModelNotFound, match="seg_a"):
        find_model("nope", [isolated / "f"])


def test_trust_is_recorded_and_revoked_when_the_config_changes(isolated):
    path = write_bundle(isolated / "t" / "seg_t", tiny_unet_config())
    assert not read_bundle(path).trusted
    set_trusted(path)
    assert read_bundle(path).trusted
    config = tiny_unet_config()
    config["network_def"]["channels"] = [8, 16]
    write_bundle(path, config)
    assert not read_bundle(path).trusted  # edited after it was trusted
    set_trusted(path)
    set_trusted(path, False)
    assert not read_bundle(path).trusted


def test_user_data_dir_matches_the_viewers(monkeypatch, tmp_path):
    from viewer.core import paths

    monkeypatch.delenv("HOUNSFIELD_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert registry.user_data_dir() == paths.user_data_dir()
    monkeypatch.setenv("HOUNSFIELD_HOME", str(tmp_path / "h"))
    assert registry.user_data_dir() == paths.user_data_dir()
