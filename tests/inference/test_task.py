"""The job protocol: progress per patch, cancel within a second, CPU fallback on GPU OOM, devices, threads."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from inference import device as device_mod
from inference.bundle import load_bundle
from inference.jobs import Cancelled, Progress, is_cancelled, run_job
from inference.task import drive, run_bundle
from tests.inference.helpers import write_bundle


def _slow_bundle(tmp_path, seconds=0.3):
    config = {
        "network_def": {"_target_": "tests.inference.standins.SlowMarker", "seconds": seconds},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [16, 16, 16], "sw_batch_size": 4, "overlap": 0},
    }
    return load_bundle(write_bundle(tmp_path / "slow", config), device="cpu", trusted=True, random_weights=True)


class Token:
    cancelled = False


def test_cancel_returns_within_a_second_and_stops_the_work(tmp_path):
    bundle = _slow_bundle(tmp_path)
    array = np.zeros((64, 64, 64), np.int16)  # 64 windows of 0.3 s: ~20 s if not cancelled
    token = Token()
    job = run_bundle(bundle, array, np.eye(4), cancel=token)
    seen = []
    for progress in job:
        seen.append(progress)
        if progress.message.startswith("Running the model"):
            break
    token.cancelled = True
    start = time.perf_counter()
    with pytest.raises(Cancelled):
        for progress in job:
            seen.append(progress)
    assert time.perf_counter() - start < 1.0
    patches_then = sum(p.message.startswith("Running") for p in seen)
    time.sleep(0.8)  # the helper thread has passed its next check by now
    assert not any(t.name == "hounsfield-inference" and t.is_alive() for t in threading.enumerate())
    assert patches_then < 10


def test_per_patch_batch_default_is_one_on_cpu(tmp_path):
    bundle = _slow_bundle(tmp_path, seconds=0.0)
    steps = []
    outcome = run_job(run_bundle(bundle, np.zeros((32, 32, 48), np.int16), np.eye(4)), steps.append)
    assert outcome.patches == 12 and bundle.inferer.sw_batch_size == 1
    assert sum(p.message.startswith("Running the model") for p in steps) == 12
    assert set(outcome.timings) == {"preprocess", "network", "postprocess"}


def test_errors_in_the_work_reach_the_caller_and_dropping_a_job_stops_it():
    def failing(reporter):
        reporter.progress(1, 2, "half")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_job(drive(failing))

    started, stopped = threading.Event(), threading.Event()

    def endless(reporter):
        started.set()
        try:
            while True:
                reporter.progress(0, 0, "tick")
                reporter.check()
                time.sleep(0.01)
        finally:
            stopped.set()

    job = drive(endless)
    next(job)
    job.close()  # the GUI dropped a stale job
    assert stopped.wait(1.0)


def test_cancel_tokens_of_several_shapes():
    event = threading.Event()
    assert not is_cancelled(None) and not is_cancelled(event)
    event.set()
    assert is_cancelled(event)
    from viewer.core.jobs import CancelToken

    token = CancelToken()
    token.cancel()
    assert is_cancelled(token)
    assert Progress(1, 4).fraction == 0.25 and Progress(1, 0).fraction == 0.0


def test_gpu_out_of_memory_falls_back_to_cpu_with_a_message():
    seen, messages = [], []

    def step(device):
        seen.append(device.type)
        if device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "ran"

    assert device_mod.run_with_cpu_fallback(step, torch.device("cuda"), messages.append) == "ran"
    assert seen == ["cuda", "cpu"] and "out of memory" in messages[0] and "CPU" in messages[0]

    def other_error(device):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        device_mod.run_with_cpu_fallback(other_error, torch.device("cuda"), messages.append)

    def oom_everywhere(device):
        raise torch.cuda.OutOfMemoryError("out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):  # nothing to fall back to from the CPU
        device_mod.run_with_cpu_fallback(oom_everywhere, torch.device("cpu"))


def test_device_choice_prefers_gpus_and_honours_an_override(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert device_mod.choose_device(None).type == "cuda"
    assert device_mod.choose_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_mod.choose_device("auto").type in ("mps", "cpu")
    with pytest.raises(ValueError, match="not available"):
        device_mod.choose_device("cuda")


def test_threads_leave_the_gui_a_core(monkeypatch):
    monkeypatch.setattr(device_mod, "cpu_cores", lambda: 8)
    assert device_mod.inference_threads() == 7
    monkeypatch.setattr(device_mod, "cpu_cores", lambda: 1)
    assert device_mod.inference_threads() == 1
    before = torch.get_num_threads()
    try:
        assert device_mod.configure_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
