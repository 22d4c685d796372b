"""The two real Model Zoo configs build offline and run on CPU (random weights) on the real LIDC CT.

Runs use a region of LIDC-0001 so the test stays within seconds on two cores; bench/bench_infer.py runs the
whole volume.
"""
from __future__ import annotations

import numpy as np

from inference.bundle import load_bundle
from inference.task import run_bundle, run_job
from tests.inference.helpers import crop, lps_grid, real_volume, zoo_bundle


def test_spleen_segmentation_end_to_end_on_lidc(tmp_path):
    _, volume = real_volume("lidc-idri-0001")
    array, affine = crop(volume.array, volume.affine, slice(50, 90), slice(150, 350), slice(150, 350))
    bundle = load_bundle(zoo_bundle("spleen_ct_segmentation"), device="cpu", random_weights=True)
    assert bundle.task == "segmentation" and bundle.weights == "random"
    assert any("LoadImaged" in d for d in bundle.dropped) and any("SaveImaged" in d for d in bundle.dropped)
    assert [type(t).__name__ for t in bundle.postprocessing.transforms] == ["Activationsd", "Invertd", "AsDiscreted"]
    steps = []
    outcome = run_job(run_bundle(bundle, array, affine), steps.append)
    seg = outcome.result
    # The spleen pipeline resamples to 1.5x1.5x2 mm, and Invertd brings the argmax back onto our exact grid.
    assert seg.labels.shape == array.shape and np.array_equal(seg.affine, affine)
    assert set(np.unique(seg.labels)) <= {0, 1} and seg.table[1].name == "spleen"
    assert outcome.patches >= 1 and steps[-1].done == steps[-1].total
    assert outcome.timings["network"] > 0 and outcome.device == "cpu"


def test_lung_nodule_detection_runs_without_torchvision_on_lidc():
    import sys

    _, volume = real_volume("lidc-idri-0001")
    array, affine = crop(volume.array, volume.affine, slice(60, 76), slice(180, 308), slice(180, 308))
    bundle = load_bundle(zoo_bundle("lung_nodule_ct_detection"), device="cpu", random_weights=True)
    assert "torchvision" not in sys.modules
    assert type(bundle.network.feature_extractor).__module__ == "inference.models.resnet_fpn"
    assert list(bundle.detector.inferer.roi_size) == [512, 512, 192]  # from detector_ops
    outcome = run_job(run_bundle(bundle, array, affine))
    found = outcome.result
    assert outcome.patches == 1  # smaller than one window: a single pass, as the bundle's RetinaNetInferer does
    assert 0 < len(found) <= 300  # random weights: many low-score boxes (score_thresh 0.02, at most 300)
    assert np.all(np.diff(found.scores) <= 0) and found.scores.min() >= 0.02 and found.scores.max() <= 1
    assert set(found.labels) == {1} and found.table[1].name == "nodule"
    z0, y0, x0, z1, y1, x1 = found.boxes_voxel.T
    assert np.all((0 <= z0) & (z0 < z1) & (z1 <= array.shape[0]))
    assert np.all((0 <= y0) & (y0 < y1) & (y1 <= array.shape[1]) & (0 <= x0) & (x0 < x1) & (x1 <= array.shape[2]))
    # Every voxel box lies in (or touches) its LPS box: the two describe the same place.
    points = lps_grid(array.shape, affine)
    for k in range(min(20, len(found))):
        inside = points[z0[k]:z1[k], y0[k]:y1[k], x0[k]:x1[k]].reshape(-1, 3)
        lo, hi = found.boxes_lps[k, :3], found.boxes_lps[k, 3:]
        spacing = np.abs(np.diag(affine)[:3])
        assert np.all(inside >= lo - spacing) and np.all(inside <= hi + spacing)


def test_the_detection_config_also_builds_when_trusted_with_its_expressions_evaluated():
    # Trusted: ConfigParser evaluates the `$` expressions as written (our extractor substituted for MONAI's).
    trusted = load_bundle(zoo_bundle("lung_nodule_ct_detection"), device="cpu", trusted=True, random_weights=True)
    untrusted = load_bundle(zoo_bundle("lung_nodule_ct_detection"), device="cpu", random_weights=True)
    assert [(k, v.shape) for k, v in trusted.network.state_dict().items()] == \
        [(k, v.shape) for k, v in untrusted.network.state_dict().items()]
    assert list(trusted.detector.inferer.roi_size) == [512, 512, 192]
    assert trusted.detector.box_selector.nms_thresh == untrusted.detector.box_selector.nms_thresh == 0.22
