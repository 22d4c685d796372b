"""``infer``: the batch entry point - a loaded built-in bundle run on the calling thread, giving what the job gives;
one bundle loaded once for several volumes; the task-specific steps from one table (issue 12)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from inference.bundle import load_bundle
from inference.jobs import Cancelled, run_job
from inference.registry import TASKS, find_model
from inference.task import TASK_STEPS, Reporter, clear_network_cache, infer, run_bundle, run_model
from inference.training.phantom import generate_phantom

SEG, DET = "hounsfield-chest-ct-segmentation", "hounsfield-chest-ct-nodule-detection"


@pytest.fixture(scope="module")
def nodule_crops():
    """Two 24x96x96 crops of the sample phantom, around its two largest nodules (a fraction of a second a run)."""
    phantom = generate_phantom(0)
    crops = []
    for nodule in sorted(phantom.nodules, key=lambda n: -n.diameter_mm)[:2]:
        centre = np.round(np.linalg.inv(phantom.affine) @ np.r_[nodule.center_lps, 1])[:3].astype(int)  # x, y, z
        low = np.maximum(centre - [48, 48, 12], 0)
        crop = np.ascontiguousarray(phantom.hu[low[2]:low[2] + 24, low[1]:low[1] + 96, low[0]:low[0] + 96])
        shift = np.eye(4)
        shift[:3, 3] = low
        crops.append((crop, phantom.affine @ shift))
    return crops


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_network_cache()  # each run computes its own network output: nothing read from another test's run
    yield
    clear_network_cache()


def _same_detections(a, b) -> None:
    assert np.array_equal(a.boxes_lps, b.boxes_lps) and np.array_equal(a.boxes_voxel, b.boxes_voxel)
    assert np.array_equal(a.scores, b.scores) and np.array_equal(a.labels, b.labels)
    assert a.measurements == b.measurements


def test_infer_without_a_reporter_gives_the_jobs_result(nodule_crops):
    array, affine = nodule_crops[0]
    for model_id in (SEG, DET):
        bundle = load_bundle(find_model(model_id), device="cpu")
        clear_network_cache()  # the detector would read the segmentation's network output
        direct = infer(bundle, array, affine)
        clear_network_cache()
        job = run_job(run_bundle(bundle, array, affine, threads=1))
        assert set(direct.timings) == set(job.timings) and "model" not in direct.timings
        assert direct.patches == job.patches == 1 and direct.device == job.device == "cpu"
        assert direct.messages == job.messages
        if model_id == SEG:
            assert (direct.result.labels == 4).any()  # the nodule label: the comparison means something
            assert np.array_equal(direct.result.labels, job.result.labels)
            assert direct.result.table == job.result.table
        else:
            assert len(direct.result) >= 1 and "measurements" in direct.timings  # the 24 mm nodule, measured
            _same_detections(direct.result, job.result)
        clear_network_cache()
        given = run_job(run_model(bundle, array, affine, threads=1))  # a loaded bundle: run as it is, no load
        assert "model" not in given.timings and given.patches == 1


def test_one_loaded_bundle_serves_several_volumes(nodule_crops):
    """Loaded once, run on two volumes in turn: each gets what a freshly loaded model gets on it alone."""
    bundle = load_bundle(find_model(DET), device="cpu")
    reporter = Reporter()
    results = [infer(bundle, array, affine, reporter) for array, affine in nodule_crops]
    assert reporter.messages == [] and all(r.messages == [] for r in results)
    assert not np.array_equal(results[0].result.boxes_lps, results[1].result.boxes_lps)
    for (array, affine), outcome in zip(nodule_crops, results):
        clear_network_cache()
        alone = run_job(run_model(DET, array, affine, device="cpu", threads=1))
        assert "model" in alone.timings
        _same_detections(outcome.result, alone.result)


def test_a_stopped_reporter_cancels_infer(nodule_crops):
    array, affine = nodule_crops[0]
    reporter = Reporter()
    reporter.stop.set()
    with pytest.raises(Cancelled):
        infer(load_bundle(find_model(SEG), device="cpu"), array, affine, reporter)


def test_every_task_has_its_steps_and_an_unknown_one_is_refused_clearly(nodule_crops):
    assert set(TASK_STEPS) == set(TASKS)
    assert TASK_STEPS["detection"].measure is not None and TASK_STEPS["segmentation"].measure is None
    bundle = load_bundle(find_model(SEG), device="cpu")
    odd = dataclasses.replace(bundle, info=dataclasses.replace(bundle.info, task="registration"))
    array, affine = nodule_crops[0]
    with pytest.raises(ValueError, match=r"no inference steps for task 'registration' \(known tasks: "
                                         r"segmentation, detection, saliency\)"):
        infer(odd, array, affine)
    with pytest.raises(ValueError, match="no inference steps for task 'registration'"):
        run_job(run_bundle(odd, array, affine))
