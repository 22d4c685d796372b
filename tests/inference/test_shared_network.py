"""The built-in segmentation and nodule detection share one network run on a volume (issue 11, "Run once")."""
from __future__ import annotations

import numpy as np

from inference.jobs import run_job
from inference.task import clear_network_cache, run_model
from inference.training.phantom import generate_phantom

SEG, DET = "hounsfield-chest-ct-segmentation", "hounsfield-chest-ct-nodule-detection"


def _run(model, phantom):
    return run_job(run_model(model, phantom.hu, phantom.affine, device="cpu"))


def test_the_second_model_on_a_volume_reuses_the_network_output_and_gives_the_cold_result():
    phantom = generate_phantom(0, shape=(56, 128, 128), spacing=(5.8, 2.7, 2.7))
    clear_network_cache()
    try:
        seg = _run(SEG, phantom)
        det = _run(DET, phantom)  # patches: the network's forward calls
        assert seg.patches >= 1 and det.patches == 0 and det.timings["network"] < 1.0
        clear_network_cache()
        cold = _run(DET, phantom)
        assert cold.patches >= 1
        assert len(cold.result) == len(det.result) >= 1
        assert np.array_equal(cold.result.boxes_lps, det.result.boxes_lps)
        assert np.array_equal(cold.result.scores, det.result.scores)
        again = _run(SEG, phantom)  # the other way round: segmentation after detection
        assert again.patches == 0 and np.array_equal(again.result.labels, seg.result.labels)
        other = generate_phantom(0, shape=(56, 128, 128), spacing=(5.8, 2.7, 2.7))
        other.hu[0, 0, 0] += 1  # another volume: its own run
        assert _run(DET, other).patches >= 1
    finally:
        clear_network_cache()
