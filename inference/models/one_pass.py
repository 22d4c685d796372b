"""One way to apply a network to a whole image, shared by the built-in segmentation and nodule detection.

The two built-in models are the same network on the same preprocessed image: :mod:`inference.task` runs it once
and hands the output to both (issue 11, "Run once"). That is only honest if each model, run alone, would have
applied the network in exactly the same way - same padding, same windows - so both go through :func:`apply`:

- an image with fewer voxels than one window: one pass, each axis padded *at its end* to a multiple of
  ``size_divisible`` (zeros: air after intensity scaling), the output cropped back - as MONAI's detectors do and
  as the detector always did;
- a larger one: MONAI's sliding windows (Gaussian blending) with the settings given.

:class:`OnePassInferer` is that rule as a MONAI inferer, so a segmentation bundle can name it as its ``inferer``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer
from monai.utils import ensure_tuple_rep


def pad_pass(network: Callable, batch: torch.Tensor, size_divisible: Sequence[int]) -> torch.Tensor:
    """``network`` on ``batch`` ``(B, C, *spatial)`` padded with zeros at the end of each spatial axis to a multiple
    of ``size_divisible``; the output cropped back to ``spatial``."""
    spatial = tuple(int(s) for s in batch.shape[2:])
    pad = [(-s) % int(d) for s, d in zip(spatial, size_divisible)]
    padded = torch.nn.functional.pad(batch, [v for p in reversed(pad) for v in (0, p)])
    out = network(padded)
    return out[(Ellipsis, *(slice(0, s) for s in spatial))]


def fits_one_pass(spatial: Sequence[int], roi_size: Sequence[int]) -> bool:
    """Whether an image of ``spatial`` voxels goes through the network in one pass (fewer voxels than a window)."""
    return int(np.prod([int(s) for s in spatial])) < int(np.prod([int(r) for r in roi_size]))


class OnePassInferer(SlidingWindowInferer):
    """One padded pass for an image smaller than a window, sliding windows otherwise (see the module docstring).

    Takes :class:`~monai.inferers.SlidingWindowInferer`'s arguments plus ``size_divisible`` (the network's total
    stride: 16 for a UNet with four stride-2 levels).
    """

    def __init__(self, roi_size, size_divisible: Sequence[int] = (16, 16, 16), **kwargs: Any):
        super().__init__(roi_size=roi_size, **kwargs)
        self.size_divisible = [int(v) for v in size_divisible]

    def one_pass(self, spatial: Sequence[int]) -> bool:
        """Whether an image of ``spatial`` voxels is run in one pass."""
        # MONAI takes an int roi_size for every axis alike
        return fits_one_pass(spatial, ensure_tuple_rep(self.roi_size, len(spatial)))

    def __call__(self, inputs: torch.Tensor, network: Callable, *args: Any, **kwargs: Any):
        if self.one_pass(inputs.shape[2:]):
            out = pad_pass(network, inputs, self.size_divisible)
            return out.to(self.device) if self.device is not None else out
        return super().__call__(inputs, network, *args, **kwargs)
