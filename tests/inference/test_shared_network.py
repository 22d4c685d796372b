"""One network run serves the built-in segmentation and nodule detection, each getting exactly the output it
would get alone; the run is cropped to the body on a wide field of view (issue 11, "Run once, fast")."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from inference import task
from inference.bundle import load_bundle
from inference.jobs import run_job
from inference.registry import find_model
from inference.task import clear_network_cache, run_bundle, run_model
from inference.training.phantom import generate_phantom

SEG, DET = "hounsfield-chest-ct-segmentation", "hounsfield-chest-ct-nodule-detection"


@pytest.fixture(scope="module")
def nodule_crop():
    """24x96x96 voxels of the sample phantom around its largest nodule (a fraction of a second per network run)."""
    phantom = generate_phantom(0)
    nodule = max(phantom.nodules, key=lambda n: n.diameter_mm)
    centre = np.round(np.linalg.inv(phantom.affine) @ np.r_[nodule.center_lps, 1])[:3].astype(int)  # x, y, z
    low = np.maximum(centre - [48, 48, 12], 0)
    crop = np.ascontiguousarray(phantom.hu[low[2]:low[2] + 24, low[1]:low[1] + 96, low[0]:low[0] + 96])
    shift = np.eye(4)
    shift[:3, 3] = low
    return crop, phantom.affine @ shift


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_network_cache()
    yield
    clear_network_cache()


def _run(model, array, affine):
    return run_job(run_model(model, array, affine, device="cpu", threads=1))


def _kept_logits():
    with task._NETWORK_CACHE_LOCK:
        (entry,) = task._NETWORK_CACHE.values()
    return entry[2]


def test_both_models_apply_the_network_the_same_way_alone():
    """Each model alone computes the same network output (same padding, same pass) - what makes sharing exact."""
    seg, det = load_bundle(find_model(SEG), device="cpu"), load_bundle(find_model(DET), device="cpu")
    assert seg.network_key and seg.network_key == det.network_key
    for spatial in ((96, 96, 24), (288, 288, 133), (336, 336, 140)):
        assert task._network_plan(seg, spatial) == task._network_plan(det, spatial) is not None
    assert task._network_plan(seg, (96, 96, 24))[0] == "one-pass"
    assert task._network_plan(seg, (336, 336, 140))[0] == "sliding"


def test_the_shared_run_gives_each_model_the_result_of_its_own_run(nodule_crop):
    array, affine = nodule_crop
    seg = _run(SEG, array, affine)
    seg_logits = _kept_logits()
    det = _run(DET, array, affine)  # reads the segmentation's network output: no network call of its own
    assert seg.patches == 1 and det.patches == 0
    clear_network_cache()
    det_alone = _run(DET, array, affine)
    assert det_alone.patches == 1
    assert torch.equal(_kept_logits(), seg_logits)  # the same network output, computed by either model
    assert len(det_alone.result) >= 1  # the 24 mm nodule
    assert np.array_equal(det.result.boxes_lps, det_alone.result.boxes_lps)
    assert np.array_equal(det.result.scores, det_alone.result.scores)
    seg_after = _run(SEG, array, affine)  # the other way round: segmentation after detection
    assert seg_after.patches == 0 and np.array_equal(seg_after.result.labels, seg.result.labels)
    assert (seg.result.labels == 4).any()  # the nodule label


def test_a_different_volume_or_different_weights_run_the_network_again(nodule_crop, tmp_path):
    array, affine = nodule_crop
    assert _run(SEG, array, affine).patches == 1
    other = array.copy()
    other[0, 0, 0] += 1
    assert _run(DET, other, affine).patches == 1  # one voxel changed: its own run
    moved = affine.copy()
    moved[:3, 3] += 0.5
    assert _run(DET, other, moved).patches == 1  # the same voxels elsewhere: its own run
    assert _run(DET, other, moved).patches == 0  # the same again: shared
    # a copy of the bundle with other weights: another network key
    copy = tmp_path / "other_weights"
    shutil.copytree(find_model(DET).path, copy)
    state = torch.load(copy / "models" / "model.pt", weights_only=True)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] + 1e-3
    torch.save(state, copy / "models" / "model.pt")
    bundle = load_bundle(copy, device="cpu")
    assert bundle.network_key != load_bundle(find_model(DET), device="cpu").network_key
    assert run_job(run_bundle(bundle, other, moved, threads=1)).patches == 1
    keyless = load_bundle(find_model(SEG), device="cpu")  # no key (random weights): never shared
    keyless.network_key = ""
    assert run_job(run_bundle(keyless, other, moved, threads=1)).patches == 1


def _dice(a, b, value):
    return 2 * np.count_nonzero((a == value) & (b == value)) / max(1, np.count_nonzero(a == value)
                                                                    + np.count_nonzero(b == value))


def test_the_body_crop_gives_the_labels_of_the_whole_image():
    """A 420 mm field of view: the network runs on the body only (at least a quarter less), on exactly the voxels
    of the whole image there; the lungs come out as from a run on the whole image, and as close to the truth.
    (The network's padding stands in for the air it no longer sees, so small labels move by a few voxels.)"""
    phantom = generate_phantom(0, shape=(32, 256, 256), spacing=(5.0, 1.64, 1.64))
    shipped = load_bundle(find_model(SEG), device="cpu")
    with torch.no_grad():  # one pass takes the whole of this image: as shipped, it is not cropped
        assert tuple(task._prepare(shipped, phantom.hu, phantom.affine)["image"].shape[1:]) == (336, 336, 63)
    # cropped as an image that needs sliding windows would be (a 140x512x512 CT at 0.82 mm: too slow for a test)
    cropped = load_bundle(find_model(SEG), device="cpu",
                          overrides={"crop_to_body": {**shipped.crop_to_body, "skip_one_pass": False}})
    whole = load_bundle(find_model(SEG), device="cpu", overrides={"crop_to_body": None})
    assert cropped.crop_to_body and whole.crop_to_body is None
    with torch.no_grad():
        full_image = task._prepare(whole, phantom.hu, phantom.affine)["image"]
        crop_image = task._prepare(cropped, phantom.hu, phantom.affine)["image"]
    assert crop_image.numel() <= 0.75 * full_image.numel()
    # the crop starts on the network's stride and holds exactly the whole image's voxels there
    start = np.rint(np.linalg.inv(full_image.affine.numpy()) @ crop_image.affine.numpy()[:, 3])[:3].astype(int)
    assert np.all(start % 16 == 0)
    x, y, z = crop_image.shape[1:]
    inside = full_image[:, start[0]:start[0] + x, start[1]:start[1] + y, start[2]:start[2] + z]
    assert torch.equal(inside.as_tensor(), crop_image.as_tensor())
    a = run_job(run_bundle(cropped, phantom.hu, phantom.affine, threads=1)).result.labels
    b = run_job(run_bundle(whole, phantom.hu, phantom.affine, threads=1)).result.labels
    assert a.shape == b.shape == phantom.hu.shape
    truth = phantom.labels
    for value in (1, 2):  # left and right lung
        assert _dice(a, b, value) >= 0.97, value
        assert _dice(a, truth, value) >= _dice(b, truth, value) - 0.01, value
    assert np.count_nonzero(a != b) <= 0.005 * a.size


def test_a_region_runs_on_that_part_and_places_the_results_on_the_whole_volume(nodule_crop):
    """As for the Model Zoo RetinaNet on our lung box: the model sees the box only; results on the whole grid."""
    array, affine = nodule_crop
    box = (0, 16, 16, 24, 80, 80)
    seg = run_job(run_model(SEG, array, affine, device="cpu", threads=1, region=box)).result
    assert seg.labels.shape == array.shape and np.allclose(seg.affine, affine)
    outside = np.ones(array.shape, bool)
    outside[0:24, 16:80, 16:80] = False
    assert not seg.labels[outside].any() and seg.labels[~outside].any()
    det = run_job(run_model(DET, array, affine, device="cpu", threads=1, region=box)).result
    assert det.shape == array.shape and len(det) >= 1
    assert np.all(det.boxes_voxel[:, :3] >= box[:3]) and np.all(det.boxes_voxel[:, 3:] <= box[3:])
    whole = _run(DET, array, affine).result  # the nodule lies inside the box: found at the same place
    centre = lambda d: (d.boxes_lps[0, :3] + d.boxes_lps[0, 3:]) / 2  # noqa: E731
    # the same nodule (23.6 mm): a region whose lungs run out of it boxes it a little differently (5.2 mm apart)
    assert np.linalg.norm(centre(det) - centre(whole)) < 6.0


def test_the_segmentation_shows_the_detectors_findings_found_once():
    """The segmentation's nodule label shows the nodules the detector shows at its operating point, among them one
    the network's own label misses (evaluation phantom 5000: a 5.4 mm nodule), and "run all" finds them once."""
    from viewer.core.evaluation import phantom_case

    case = phantom_case(5000)
    truth = case.masks["nodule"]
    seg = _run(SEG, case.array, case.affine)
    det = _run(DET, case.array, case.affine)  # reads the segmentation's findings: no candidates of its own
    assert seg.timings["candidates"] > 0 and det.timings.get("candidates", 0.0) == 0.0 and det.patches == 0
    shown = det.result.boxes_voxel[det.result.scores >= find_model(DET).operating_point]
    assert len(shown)
    for z0, y0, x0, z1, y1, x1 in shown:
        assert (seg.result.labels[z0:z1, y0:y1, x0:x1] == 4).any()
    assert _dice(seg.result.labels, truth.astype(np.uint8) * 4, 4) >= 0.8
    clear_network_cache()
    network_only = load_bundle(find_model(SEG), device="cpu")
    network_only.nodule_finder = None
    labels = run_job(run_bundle(network_only, case.array, case.affine, threads=1)).result.labels
    assert not (labels[truth] == 4).any()  # the network's label alone misses it
