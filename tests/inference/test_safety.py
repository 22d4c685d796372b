"""Untrusted bundle configs run nothing outside the allow-list; every refusal is named."""
from __future__ import annotations

import copy
import json
import os
import subprocess

import pytest

from inference.bundle import BundleError, load_bundle
from inference.safety import BundleSafetyError, check_target, prepare_config
from tests.inference.helpers import tiny_unet_config, write_bundle, zoo_bundle


@pytest.fixture
def spy(monkeypatch):
    """Record (and block) process-spawning and shell calls made while the test runs."""
    calls = []

    def record(name):
        def fake(*args, **kwargs):
            calls.append((name, args))
            return 0
        return fake

    monkeypatch.setattr(os, "system", record("os.system"))
    monkeypatch.setattr(subprocess, "Popen", record("subprocess.Popen"))
    monkeypatch.setattr(subprocess, "run", record("subprocess.run"))
    return calls


def _bundle(tmp_path, mutate, name="evil"):
    config = tiny_unet_config()
    mutate(config)
    return write_bundle(tmp_path / name, config)


def _marker_expression(marker):
    return f"$__import__('os').system('touch {marker}')"


def test_dollar_expression_with_import_executes_nothing_and_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    def mutate(config):
        config["network_def"]["channels"] = _marker_expression(marker)
    path = _bundle(tmp_path, mutate)
    with pytest.raises(BundleSafetyError) as info:
        load_bundle(path, device="cpu", random_weights=True)
    assert not marker.exists()
    message = str(info.value)
    assert "network_def.channels" in message and "__import__" in message and "$ expression refused" in message


def test_the_marker_mechanism_works_when_the_bundle_is_trusted(tmp_path):
    # Proof the test above can fail: the very same config, trusted, does run the expression.
    marker = tmp_path / "ran"

    def mutate(config):
        config["network_def"]["_requires_"] = _marker_expression(marker)
    path = _bundle(tmp_path, mutate)
    load_bundle(path, device="cpu", trusted=True, random_weights=True)
    assert marker.exists()


@pytest.mark.parametrize("target", ["os.system", "builtins.eval", "eval", "subprocess.Popen", "subprocess.run",
                                    "posix.system", "scripts.evil.Run", "monai.transforms.utils.os.system",
                                    "monai.networks.utils.save_state", "pydoc.locate", "$@network_def",
                                    "monai.transforms.utils.shutil.rmtree"])
def test_targets_outside_the_allow_list_are_refused_before_anything_runs(tmp_path, spy, target):
    marker = tmp_path / "pwned"

    def mutate(config):
        config["inferer"] = {"_target_": target, "command": f"touch {marker}", "args": [f"touch {marker}"]}
    path = _bundle(tmp_path, mutate)
    with pytest.raises(BundleSafetyError) as info:
        load_bundle(path, device="cpu", random_weights=True)
    assert not marker.exists() and spy == []
    assert f"inferer._target_ = {target}" in str(info.value)


def test_every_refusal_is_listed_with_its_key(tmp_path):
    def mutate(config):
        config["network_def"]["_mode_"] = "debug"
        config["network_def"]["act"] = "$lambda x: x"
        config["preprocessing"]["transforms"][1]["keys"] = "%other_file.json::image_key"
        config["preprocessing"]["transforms"].append({"_target_": "monai.networks.nets.DenseNet121",
                                                      "spatial_dims": 3, "in_channels": 1, "out_channels": 1,
                                                      "pretrained": True})
        config["postprocessing"]["transforms"].append("$import os")
    path = _bundle(tmp_path, mutate)
    with pytest.raises(BundleSafetyError) as info:
        load_bundle(path, device="cpu", random_weights=True)
    text = str(info.value)
    for key in ("network_def._mode_ = debug", "network_def.act = $lambda x: x",
                "preprocessing.transforms[1].keys = %other_file.json::image_key",
                "preprocessing.transforms[4].pretrained",
                "postprocessing.transforms[4] = $import os"):
        assert key in text, text
    assert len(info.value.refusals) == 5


def test_file_readers_and_writers_are_dropped_from_transform_lists_only(tmp_path):
    path = _bundle(tmp_path, lambda config: None, "ok")
    loaded = load_bundle(path, device="cpu", random_weights=True)
    assert any("LoadImaged" in d for d in loaded.dropped) and any("SaveImaged" in d for d in loaded.dropped)

    def mutate(config):
        config["inferer"] = {"_target_": "SaveImage", "output_dir": str(tmp_path)}
    with pytest.raises(BundleSafetyError, match="only dropped from transform lists"):
        load_bundle(_bundle(tmp_path, mutate), device="cpu", random_weights=True)


def test_items_nothing_needs_are_neither_checked_nor_run(tmp_path, spy):
    marker = tmp_path / "pwned"

    def mutate(config):
        config["run"] = [_marker_expression(marker)]
        config["evaluator"] = {"_target_": "os.system", "command": f"touch {marker}"}
        config["imports"] = ["$import os"]
    loaded = load_bundle(_bundle(tmp_path, mutate), device="cpu", random_weights=True)
    assert loaded.network is not None and not marker.exists() and spy == []


def test_safe_expression_shapes_are_rewritten_without_eval():
    raw = {
        "flag": False, "other": "$(not @flag) and 2 > 1", "size": [16, 8],
        "net": "$monai.networks.nets.resnet.resnet18(spatial_dims=3, n_input_channels=1)",
        "fe": "$monai.apps.detection.networks.retinanet_network.resnet_fpn_feature_extractor(@net, 3, False, [1, 2])",
        "network": "$@fe.to(@device)",
        "pre": {"_target_": "Compose", "transforms": [{"_target_": "Spacingd", "keys": "image", "pixdim": [1, 1, 1],
                                                        "_disabled_": "@other"}]},
    }
    prepared = prepare_config(raw, ["network", "pre"], inject={"device": "cpu"})
    config = prepared.config
    assert config["network"] == "@fe"
    assert config["fe"]["_target_"] == "inference.models.resnet_fpn.resnet_fpn_feature_extractor"
    assert config["fe"]["backbone"] == "@net" and config["fe"]["returned_layers"] == [1, 2]
    assert config["net"] == {"_target_": "monai.networks.nets.resnet.resnet18", "spatial_dims": 3,
                             "n_input_channels": 1}
    assert config["pre"]["transforms"] == []  # disabled by the evaluated flag
    assert "device" not in config and "flag" not in config


def test_detector_ops_only_call_known_configuration_methods():
    raw = {"detector": {"_target_": "torch.nn.Identity"}, "patch": [64, 64, 32],
           "ops": ["$@detector.set_sliding_window_inferer(roi_size=@patch, overlap=0.25, sw_batch_size=1)",
                   "$@detector.__class__.__init__(None)", "$@detector.train()"]}
    with pytest.raises(BundleSafetyError) as info:
        prepare_config(raw, ["detector"], method_roots={"ops": "detector"})
    assert [r.path for r in info.value.refusals] == ["ops[1]", "ops[2]"]
    raw["ops"] = raw["ops"][:1]
    prepared = prepare_config(raw, ["detector"], method_roots={"ops": "detector"})
    assert prepared.method_calls == [("detector", "set_sliding_window_inferer",
                                      {"roi_size": [64, 64, 32], "overlap": 0.25, "sw_batch_size": 1})]


def test_check_target_accepts_monai_and_torch_nn_and_says_why_not_otherwise():
    assert check_target("UNet").qualified == "monai.networks.nets.unet.UNet"
    assert check_target("torch.nn.ReLU").qualified == "torch.nn.ReLU"
    assert check_target("RetinaNetDetector").qualified.startswith("monai.apps.detection.")
    assert check_target("LoadImaged").file_io
    assert "builtin" in check_target("eval").problem
    assert "scripts" in check_target("scripts.detection_inferer.RetinaNetInferer").problem


def test_the_real_model_zoo_configs_pass_untrusted():
    for name, roots in (("spleen_ct_segmentation", ["network_def", "preprocessing", "inferer", "postprocessing"]),
                        ("lung_nodule_ct_detection", ["network_def", "preprocessing", "detector"])):
        raw = json.loads((zoo_bundle(name) / "configs" / "inference.json").read_text())
        prepared = prepare_config(copy.deepcopy(raw), roots, inject={"device": "cpu", "bundle_root": "."},
                                  method_roots={"detector_ops": "detector"})
        text = json.dumps(prepared.config)
        assert "$" not in text and "scripts." not in text


def test_torchscript_weights_need_trust(tmp_path):
    import torch

    path = write_bundle(tmp_path / "ts", tiny_unet_config())
    (path / "models").mkdir()
    torch.jit.script(torch.nn.Identity()).save(str(path / "models" / "model.ts"))
    with pytest.raises(BundleError, match="TorchScript"):
        load_bundle(path, device="cpu")


def test_a_pickle_that_runs_code_is_not_loaded(tmp_path):
    import pickle

    import torch

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = write_bundle(tmp_path / "pk", tiny_unet_config())
    (path / "models").mkdir()
    torch.save({"model": Evil()}, path / "models" / "model.pt", pickle_module=pickle)
    with pytest.raises(BundleError, match="weights_only"):
        load_bundle(path, device="cpu")
    assert not marker.exists()
