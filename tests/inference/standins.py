"""Stand-in networks for geometry tests: they mark a known region instead of predicting anything.

They are referenced by ``_target_`` from bundles the tests write (trusted bundles, since ``tests.*`` is not on the
allow-list), so the full path - config -> ConfigParser -> our pipeline -> MONAI transforms and back - is exercised.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


class SphereMarker(nn.Module):
    """Two-channel logits: +10 in channel 1 where the voxel centre is within ``radius`` mm of ``center_lps``.

    The voxel positions come from the input MetaTensor's affine (MONAI's RAS world), so the mark lands where the
    transforms say each voxel is; the test then checks that this is where our volume says it is.
    """

    def __init__(self, center_lps, radius: float):
        super().__init__()
        self.center_lps = np.asarray(center_lps, dtype=np.float64)
        self.radius = float(radius)
        self.dummy = nn.Parameter(torch.zeros(1))  # something for load_state_dict / .to()

    def forward(self, x):
        affine = x.affine
        affine = (affine[0] if affine.ndim == 3 else affine).detach().cpu().numpy().astype(np.float64)
        shape = tuple(x.shape[2:])
        ijk = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij"), axis=-1)
        ras = ijk @ affine[:3, :3].T + affine[:3, 3]
        lps = ras * np.array([-1.0, -1.0, 1.0])
        inside = np.linalg.norm(lps - self.center_lps, axis=-1) <= self.radius
        logits = torch.zeros((x.shape[0], 2, *shape), dtype=torch.float32, device=x.device)
        logits[:, 1] = torch.from_numpy(np.where(inside, 10.0, -10.0).astype(np.float32)).to(x.device)
        return logits + 0 * self.dummy


class ThresholdMarker(nn.Module):
    """Voxel-wise (translation-equivariant) logits: class 1 where the input is above ``level``.

    Being local, it gives the same answer in every sliding window, so any stitching or inversion error shows.
    """

    def __init__(self, level: float = 0.5):
        super().__init__()
        self.level = float(level)
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        fg = torch.where(x[:, :1] > self.level, 10.0, -10.0)
        return torch.cat([torch.zeros_like(fg), fg], dim=1) + 0 * self.dummy


class SlowMarker(ThresholdMarker):
    """ThresholdMarker that takes ``seconds`` per call: long runs for the cancel test."""

    def __init__(self, seconds: float = 0.3, level: float = 0.5):
        super().__init__(level)
        self.seconds = float(seconds)

    def forward(self, x):
        import time

        time.sleep(self.seconds)
        return super().forward(x)
