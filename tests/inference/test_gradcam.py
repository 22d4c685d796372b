"""Grad-CAM of one finding / one label with the built-in models: on the study's grid, hottest where it should be."""
from __future__ import annotations

import numpy as np
import pytest

from inference.jobs import Cancelled, CancelToken, run_job
from inference.registry import find_model
from viewer.core.sample import DEMO_MODELS


@pytest.fixture(scope="module")
def demo_phantom():
    from inference.training.phantom import generate_phantom

    return generate_phantom(0)  # the sample study's phantom (four nodules)


@pytest.fixture(scope="module")
def bundles():
    from inference.bundle import load_bundle

    return {m: load_bundle(find_model(m), device="cpu") for m in DEMO_MODELS}


def _nodule_box(nodule):
    centre, radius = np.array(nodule.center_lps), nodule.diameter_mm / 2
    return np.concatenate([centre - radius, centre + radius])


def _hot_centre_mm(saliency, affine):
    values = saliency.values
    hot = np.argwhere(values >= 0.8 * values.max())[:, ::-1]  # (x, y, z)
    return hot.mean(axis=0) @ affine[:3, :3].T + affine[:3, 3]


@pytest.mark.parametrize("model", DEMO_MODELS, ids=["detector", "segmentation"])
def test_a_finding_map_peaks_on_the_finding(model, bundles, demo_phantom):
    from inference.gradcam import explain

    nodule = max(demo_phantom.nodules, key=lambda n: n.diameter_mm)
    target = {"label": 4} if bundles[model].task == "segmentation" else {}
    saliency = run_job(explain(bundles[model], demo_phantom.hu, demo_phantom.affine, box_lps=_nodule_box(nodule),
                               target_name="finding #1", **target))
    assert saliency.values.shape == demo_phantom.hu.shape and saliency.target == "finding #1"
    assert np.allclose(saliency.affine, demo_phantom.affine)
    assert 0 <= saliency.values.min() and saliency.values.max() == pytest.approx(1.0, abs=1e-3)
    distance = np.linalg.norm(_hot_centre_mm(saliency, demo_phantom.affine) - np.array(nodule.center_lps))
    assert distance < max(15.0, nodule.diameter_mm), distance
    # the map covers only the explained crop (the finding and 30 mm around it): the volume's corners stay zero
    assert saliency.values[0, 0, 0] == 0 and saliency.values[-1, -1, -1] == 0


def test_a_label_map_of_the_left_lung_lies_on_the_left(bundles, demo_phantom):
    from inference.gradcam import explain

    seg = bundles[DEMO_MODELS[1]]
    mask = demo_phantom.labels == 1
    saliency = run_job(explain(seg, demo_phantom.hu, demo_phantom.affine, label=1, mask=mask))
    hot = _hot_centre_mm(saliency, demo_phantom.affine)
    lung = np.argwhere(mask)[:, ::-1].mean(axis=0) @ demo_phantom.affine[:3, :3].T + demo_phantom.affine[:3, 3]
    assert hot[0] > 0  # patient's left is +x in LPS
    assert np.linalg.norm(hot - lung) < 80.0


def test_wrong_requests_are_refused_and_cancel_stops(bundles, demo_phantom):
    from inference.gradcam import explain

    detector, seg = bundles[DEMO_MODELS[0]], bundles[DEMO_MODELS[1]]
    with pytest.raises(ValueError, match="box"):
        run_job(explain(detector, demo_phantom.hu, demo_phantom.affine))
    with pytest.raises(ValueError, match="label"):
        run_job(explain(seg, demo_phantom.hu, demo_phantom.affine))
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_job(explain(seg, demo_phantom.hu, demo_phantom.affine, label=1, cancel=token))


def test_a_retinanet_finding_is_explained_through_its_classification_head(tmp_path, demo_phantom):
    """Detectors that name no layer (the Model Zoo's RetinaNet) are explained at their first ResNet stage."""
    from inference.bundle import load_bundle
    from inference.gradcam import explain
    from tests.inference.helpers import save_seeded_weights, tiny_detector_config, write_bundle

    folder = save_seeded_weights(write_bundle(tmp_path / "tiny_det", tiny_detector_config(),
                                              {"name": "tiny det", "hounsfield": {"task": "detection"}}))
    bundle = load_bundle(folder, device="cpu")
    assert not bundle.info.gradcam_layer
    nodule = demo_phantom.nodules[0]
    saliency = run_job(explain(bundle, demo_phantom.hu, demo_phantom.affine, box_lps=_nodule_box(nodule)))
    assert saliency.values.shape == demo_phantom.hu.shape and np.isfinite(saliency.values).all()
    assert saliency.values[0, 0, 0] == 0 and 0 <= saliency.values.min() and saliency.values.max() <= 1


# ---------------------------------------------------------------------------------------------------------------
# Smooth maps: no hard crop edge, no checkerboard from the layer's grid (both measured on the finding's map).

def _finding_map(bundle, phantom):
    from inference.gradcam import DEFAULT_MARGIN_MM, FINDING_METHOD, _region, explain

    nodule = max(phantom.nodules, key=lambda n: n.diameter_mm)
    box = _nodule_box(nodule)
    shapes = {}
    layer = bundle.network.get_submodule(bundle.info.gradcam_layer)
    hooks = [bundle.network.register_forward_hook(lambda _m, inputs, _out: shapes.update(x=inputs[0].shape)),
             layer.register_forward_hook(lambda _m, _inputs, out: shapes.update(out=out.shape))]
    try:
        # Grad-CAM asked for by name: the detector's findings are otherwise explained by occlusion (test_occlusion)
        saliency = run_job(explain(bundle, phantom.hu, phantom.affine, box_lps=box, method=FINDING_METHOD))
    finally:
        for hook in hooks:
            hook.remove()
    crop = _region(phantom.hu.shape, phantom.affine, box, None, DEFAULT_MARGIN_MM)
    stride = np.array(shapes["x"][2:], float) / np.array(shapes["out"][2:], float)  # layer grid / input grid
    return saliency.values, crop, stride


def test_a_finding_map_has_no_step_at_the_crop_border(bundles, demo_phantom):
    values, crop, _ = _finding_map(bundles[DEMO_MODELS[0]], demo_phantom)
    inside = values[crop]
    interior = max(np.abs(np.diff(inside, axis=a)).max() for a in range(3))
    steps = []
    for axis, part in enumerate(crop):
        for first, beyond in ((part.start, part.start - 1), (part.stop - 1, part.stop)):
            if 0 <= beyond < values.shape[axis]:  # a face inside the volume: the map must fade, not stop
                at, out = list(crop), list(crop)
                at[axis], out[axis] = first, beyond
                steps.append(np.abs(values[tuple(at)] - values[tuple(out)]).max())
    assert steps, "the crop should not fill the whole phantom"
    assert interior > 0.01  # a map with something in it
    assert max(steps) < 0.25 * interior, (max(steps), interior)  # the old map stopped from ~1 to 0 at the border


def test_a_finding_map_has_no_checkerboard_of_the_layer_grid(bundles, demo_phantom):
    """Power at the layer grid's Nyquist frequency (one cycle per two layer cells) along the in-plane axes is a
    small share of the map's varying power."""
    values, crop, stride = _finding_map(bundles[DEMO_MODELS[0]], demo_phantom)
    inside = values[crop].astype(np.float64)
    spacing = np.linalg.norm(demo_phantom.affine[:3, :3], axis=0)  # x, y, z mm of the study grid
    model_spacing = np.array(bundles[DEMO_MODELS[0]].info.spacing, float)  # x, y, z mm of the network's grid
    shares = []
    for axis, xyz in ((2, 0), (1, 1)):  # array x and y
        period_voxels = 2 * stride[xyz] * model_spacing[xyz] / spacing[xyz]
        power = np.abs(np.fft.rfft(inside - inside.mean(axis=axis, keepdims=True), axis=axis)) ** 2
        power = power.sum(axis=tuple(a for a in range(3) if a != axis))
        freqs = np.fft.rfftfreq(inside.shape[axis])
        band = np.abs(freqs - 1 / period_voxels) <= 0.15 / period_voxels
        assert band.any()
        shares.append(power[band].sum() / power[1:].sum())
    assert max(shares) < 0.01, shares
