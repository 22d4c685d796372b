"""Loading bundles: the parts we build, weights through weights_only, overrides, no network."""
from __future__ import annotations

import socket

import pytest
import torch

from inference.bundle import BundleError, load_bundle, no_network
from tests.inference.helpers import tiny_unet_config, tiny_unet_state, write_bundle


def test_weights_are_loaded_into_the_built_network(tmp_path):
    state = tiny_unet_state(seed=3)
    path = write_bundle(tmp_path / "seg", tiny_unet_config(spacing=(2, 2, 2)), state_dict=state)
    loaded = load_bundle(path, device="cpu")
    assert loaded.weights == "models/model.pt" and not loaded.network.training
    got = loaded.network.state_dict()
    assert set(got) == set(state) and all(torch.equal(got[k], state[k]) for k in state)
    assert type(loaded.inferer).__name__ == "SlidingWindowInferer"
    names = [type(t).__name__ for t in loaded.preprocessing.transforms]
    assert names == ["EnsureChannelFirstd", "Orientationd", "Spacingd", "ScaleIntensityRanged"]
    assert [type(t).__name__ for t in loaded.postprocessing.transforms] == ["Activationsd", "Invertd",
                                                                             "AsDiscreted"]


def test_checkpoint_wrappers_and_data_parallel_prefixes_are_accepted(tmp_path):
    state = tiny_unet_state(seed=1)
    wrapped = {"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 7}
    path = write_bundle(tmp_path / "seg", tiny_unet_config(), state_dict=wrapped)
    got = load_bundle(path, device="cpu").network.state_dict()
    assert all(torch.equal(got[k], state[k]) for k in state)


def test_weights_that_do_not_fit_and_missing_weights_are_clear_errors(tmp_path):
    state = tiny_unet_state()
    state.pop(next(iter(state)))
    path = write_bundle(tmp_path / "bad", tiny_unet_config(), state_dict=state)
    with pytest.raises(BundleError, match="does not fit the network"):
        load_bundle(path, device="cpu")
    empty = write_bundle(tmp_path / "empty", tiny_unet_config())
    with pytest.raises(BundleError, match="no weights"):
        load_bundle(empty, device="cpu")
    assert load_bundle(empty, device="cpu", random_weights=True).weights == "random"


def test_overrides_replace_config_items_before_parsing(tmp_path):
    path = write_bundle(tmp_path / "seg", tiny_unet_config(), state_dict=tiny_unet_state())
    loaded = load_bundle(path, device="cpu", overrides={"inferer": {"_target_": "SimpleInferer"}})
    assert type(loaded.inferer).__name__ == "SimpleInferer"


def test_building_with_no_network_blocks_sockets_and_restores_them():
    with no_network():
        with pytest.raises(OSError, match="network access is disabled"):
            socket.create_connection(("127.0.0.1", 9))
        with pytest.raises(OSError):
            socket.getaddrinfo("localhost", 80)
    assert socket.create_connection.__name__ == "create_connection"


def test_a_network_that_tries_to_download_fails_instead_of_reaching_out(tmp_path, monkeypatch):
    # The allow-list refuses `pretrained=True`; were a constructor to download anyway, the socket guard stops it.
    import tests.inference.standins as standins

    class Downloader(torch.nn.Module):
        def __init__(self):
            super().__init__()
            socket.create_connection(("example.invalid", 443), timeout=1)

    monkeypatch.setattr(standins, "Downloader", Downloader, raising=False)
    config = tiny_unet_config()
    config["network_def"] = {"_target_": "tests.inference.standins.Downloader"}
    path = write_bundle(tmp_path / "dl", config)
    with pytest.raises(BundleError, match="network access is disabled"):
        load_bundle(path, device="cpu", trusted=True, random_weights=True)
