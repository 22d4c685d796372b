"""OnePassInferer's choice between one padded pass and sliding windows."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from monai.inferers import SlidingWindowInferer

from inference import task
from inference.models.one_pass import OnePassInferer
from inference.models.seg_detector import SegmentationDetector


@pytest.mark.parametrize("roi_size", [8, (8, 8, 8), [8, 8, 8]])
def test_the_window_may_be_given_as_one_int_for_every_axis(roi_size):
    inferer = OnePassInferer(roi_size=roi_size, sw_batch_size=1)
    assert inferer.one_pass((4, 4, 4))
    assert not inferer.one_pass((8, 8, 8))
    assert not inferer.one_pass((16, 4, 16))


def test_the_detection_plan_takes_a_window_given_as_one_int():
    """MONAI may hold a detector's roi_size as one int for every axis: the plan expands it, as OnePassInferer does."""
    detector = SegmentationDetector(torch.nn.Identity(), channel=1, roi_size=(8, 8, 8))
    detector.inferer = SlidingWindowInferer(roi_size=8, sw_batch_size=1)
    bundle = SimpleNamespace(detector=detector, force_sliding_window=False)
    assert task._detection_plan(bundle, (4, 4, 4)) == ("one-pass", (16, 16, 16))
    assert task._detection_plan(bundle, (16, 4, 16))[0] == "sliding"
