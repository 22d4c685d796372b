"""Stand-in networks for the GUI tests: known answers, slow runs and failures, cheap on a full CT.

They are referenced by ``_target_`` from bundles the tests write; ``tests.*`` is not on the allow-list, so those
bundles are marked trusted (in the test's own HOUNSFIELD_HOME) as a user would.
"""
from __future__ import annotations

import time

import torch
from torch import nn


class BandMarker(nn.Module):
    """A known label map, voxel-wise: 1 where ``low <= value < high``, 2 where ``value >= high`` (one channel of
    label values, as a bundle whose postprocessing ends in an argmax gives).

    Works on the raw values (no intensity scaling in the test bundle), so the expected mask is computed on the
    volume array directly: ``np.where(a >= high, 2, np.where(a >= low, 1, 0))``.
    """

    def __init__(self, low: float = -950.0, high: float = 300.0):
        super().__init__()
        self.low, self.high = float(low), float(high)
        self.dummy = nn.Parameter(torch.zeros(1))  # something to save as models/model.pt

    def forward(self, x):
        v = x[:, :1]
        return (v >= self.low).float() + (v >= self.high).float() + 0 * self.dummy


class SlowBandMarker(BandMarker):
    """BandMarker taking ``seconds`` per call (per sliding-window patch): runs long enough to cancel or switch."""

    def __init__(self, seconds: float = 0.25, low: float = -950.0, high: float = 300.0):
        super().__init__(low, high)
        self.seconds = float(seconds)

    def forward(self, x):
        time.sleep(self.seconds)
        return super().forward(x)


class Exploding(nn.Module):
    """Raises inside the network call, as a broken model would."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        raise RuntimeError("the stand-in network exploded on purpose")


class BandsMarker(nn.Module):
    """Label ``i + 1`` where ``bands[i][0] <= value < bands[i][1]`` (later bands win): a threshold "model" with a
    known answer, used for the documentation screenshot (e.g. lung parenchyma and bone on a CT)."""

    def __init__(self, bands):
        super().__init__()
        self.bands = [(float(lo), float(hi)) for lo, hi in bands]
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        v = x[:, :1]
        out = torch.zeros_like(v, dtype=torch.float32)
        for i, (lo, hi) in enumerate(self.bands):
            out = torch.where((v >= lo) & (v < hi), float(i + 1), out)
        return out + 0 * self.dummy
