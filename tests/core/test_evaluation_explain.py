"""Honest Grad-CAM maps (issue 11): the pointing game and the model-randomisation sanity check, on a real phantom
with the built-in detector, and the rank statistics they rest on."""
from __future__ import annotations

import numpy as np
import pytest

from viewer.core import evaluation_explain as ee

DETECTOR = "hounsfield-chest-ct-nodule-detection"


def test_ranks_share_ties_and_spearman_sees_only_order():
    assert ee.rank(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    rng = np.random.default_rng(0)
    a = rng.random((6, 7, 8))
    assert ee.spearman(a, np.exp(5 * a)) == pytest.approx(1.0)  # any increasing transform: same ranks
    assert ee.spearman(a, -a) == pytest.approx(-1.0)
    assert abs(ee.spearman(a, rng.random(a.shape))) < 0.1
    assert ee.spearman(a, np.zeros_like(a)) == 0.0


def test_the_true_nodule_is_its_component_grown_by_one_voxel():
    mask = np.zeros((9, 9, 9), bool)
    mask[3:6, 3:6, 3:6] = True
    mask[0, 0, 0] = True  # another component
    components = ee.nodule_components(mask)
    region = ee.true_nodule(components, np.eye(4), [4.0, 4.0, 4.0], 3.0)
    assert region.sum() == 5 ** 3 and region[2:7, 2:7, 2:7].all() and not region[0, 0, 0]
    assert ee.true_nodule(components, np.eye(4), [8.0, 8.0, 0.0], 1.0) is None  # nothing near


@pytest.fixture(scope="module")
def explained():
    """``hounsfield evaluate --explain`` on the demo phantom (four nodules), the detector only."""
    from viewer.core.evaluation import evaluate

    return evaluate([DETECTOR], ["phantom:0"], explain=True, log=lambda _line: None)[DETECTOR]


def test_the_peak_of_each_found_nodule_map_lies_in_that_nodule(explained):
    rows = explained["cases"][0]["explain"]
    game = explained["summary"]["explain"]["pointing_game"]
    found = sum(n["found"] for n in explained["cases"][0]["nodules"])
    assert found >= 2 and game["findings"] >= 2, (found, game)  # the check has something to score
    assert game["rate"] >= 0.9, rows
    assert game["dilate_voxels"] == 1 and all(r["peak_distance_mm"] <= r["diameter_mm"] for r in rows if r["hit"])


def test_maps_of_randomised_weights_rank_the_voxels_differently(explained):
    check = explained["summary"]["explain"]["randomisation"]
    assert check["findings"] >= 2 and check["spearman_mean"] < ee.SPEARMAN_LIMIT, explained["cases"][0]["explain"]
    # and they do not find the nodules: the pointing game tells the trained model from a random one
    game = explained["summary"]["explain"]["pointing_game"]
    assert game["randomised_hits"] < game["hits"] / 2, explained["cases"][0]["explain"]


def test_the_report_prints_both_checks(explained):
    from viewer.core.evaluation import format_report

    text = format_report({DETECTOR: explained})
    assert "pointing game" in text and "randomisation check" in text and "re-initialised weights:" in text


def test_randomising_copies_the_network_and_leaves_the_trained_one_alone():
    import torch

    from inference.bundle import load_bundle
    from inference.registry import find_model

    bundle = load_bundle(find_model(DETECTOR), device="cpu")
    before = {k: v.clone() for k, v in bundle.network.state_dict().items()}
    twin = ee.randomised_bundle(bundle)
    again = ee.randomised_bundle(bundle)
    assert twin.detector.network is twin.network and twin.detector is not bundle.detector
    for network in (bundle.network, bundle.detector.network):  # the trained bundle is untouched
        for key, value in network.state_dict().items():
            assert torch.equal(value, before[key])
    changed = [k for k, v in twin.network.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) >= 0.9 * len(before)
    for key, value in twin.network.state_dict().items():  # seeded: the same random network every time
        assert torch.equal(value, again.network.state_dict()[key])
