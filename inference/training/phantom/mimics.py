"""Hard negatives: lesions that readers and detectors mistake for nodules, drawn into the lungs but labelled lung.

Linear scars (thin tapering bent bands) anywhere in the lung and plate-like (subsegmental) atelectasis at the
bases, kept clear of the nodules. The vessel bifurcations of the trees are the third kind and need no drawing.
Not drawn in the demo study.
"""
from __future__ import annotations

import numpy as np

from inference.training.phantom.anatomy import Anatomy
from inference.training.phantom.geometry import polyline, scatter_tubes, unit

_F32 = np.float32


def render_mimics(rng, clean, labels, spacing, pool: np.ndarray, anatomy: Anatomy, avoid) -> list[dict]:
    """Hard negatives drawn into the lungs (labels unchanged): linear scars and plate-like atelectasis.

    ``avoid``: ``(centre, radius)`` of the nodules, kept 10 mm clear. Returns what was drawn (for ``info``).
    """
    sz, sy, sx = spacing
    drawn = []
    for _ in range(int(rng.integers(2, 7))):
        kind = "scar" if rng.random() < 0.6 else "atelectasis"
        if kind == "atelectasis":  # bases: the lower third of the lung points
            low = pool[pool[:, 2] < np.quantile(pool[:, 2], 0.35)]
            centre = low[rng.integers(len(low))]
        else:
            centre = pool[rng.integers(len(pool))]
        if any(np.linalg.norm(centre - c) < r + 25 for c, r in avoid):
            continue
        value = rng.uniform(-150, 40)
        if kind == "scar":  # a tapering band 12-35 mm long, 0.8-2 mm thick, slightly bent
            length = rng.uniform(12, 35)
            direction = unit(rng.normal(size=3))
            bend = unit(np.cross(direction, rng.normal(size=3))) * rng.uniform(0, 0.2) * length
            ctrl = np.array([centre - direction * length / 2, centre + bend, centre + direction * length / 2])
            tubes = polyline(ctrl, np.array([rng.uniform(0.4, 0.8), rng.uniform(0.8, 2.0),
                                              rng.uniform(0.4, 0.8)]), step=3.0)
            reach = length / 2 + 4
        else:  # a plate 15-40 mm across and 2-4 mm thick, nearly horizontal
            width = rng.uniform(15, 40)
            normal = unit(np.array([0, 0, 1.0]) + rng.normal(size=3) * 0.3)
            reach = width / 2 + 4
        lo = np.maximum(np.floor((centre - reach) / [sx, sy, sz]).astype(int), 0)
        hi = np.minimum(np.ceil((centre + reach) / [sx, sy, sz]).astype(int) + 1, clean.shape[::-1])
        if (hi <= lo).any():
            continue
        box = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
        hs, ls = clean[box], labels[box]
        lung = (ls == 1) | (ls == 2)
        if kind == "scar":
            occ = np.zeros(hs.shape, np.uint8)
            scatter_tubes(occ, spacing, tubes, offset=lo * np.array([sx, sy, sz]))
            occ = occ.astype(_F32) / 255
        else:
            x = (np.arange(lo[0], hi[0]) * sx - centre[0])[None, None, :]
            y = (np.arange(lo[1], hi[1]) * sy - centre[1])[None, :, None]
            z = (np.arange(lo[2], hi[2]) * sz - centre[2])[:, None, None]
            across = np.abs(x * normal[0] + y * normal[1] + z * normal[2])
            radial = np.sqrt(np.maximum(x * x + y * y + z * z - across * across, 0))
            half = rng.uniform(1.0, 2.0) * (1 - (radial / (width / 2)) ** 2).clip(0, 1) ** 0.5
            occ = np.clip(0.5 - (across - half) / (0.5 * (sx + sy)), 0, 1).astype(_F32)
        occ *= lung
        hs[...] = np.maximum(hs, hs + occ * (value - hs))
        drawn.append({"kind": kind, "center_mm": [round(float(v), 1) for v in centre]})
    return drawn
