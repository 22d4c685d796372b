"""The pulmonary trees: arteries, veins and bronchi grown as space-filling trees into each lung.

Each tree grows from a root the anatomy provides (a hilum, a pulmonary vein trunk, a main bronchus end) into a
territory of random points inside its lung, splitting the territory at every branch; radii follow Murray's law and
taper to sub-voxel size. The result is a set of tube lists (see ``geometry``); the lung points are kept as well,
because lesions and mimics are placed among them.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from inference.training.phantom.anatomy import Anatomy
from inference.training.phantom.geometry import concat, unit

N_ARTERY_POINTS, N_VEIN_POINTS, N_AIRWAY_POINTS = 2200, 1400, 160
"""Territory points per lung: the arteries take the first 2200, the veins the next 1400 (upper half to the upper
vein, lower half to the lower), the bronchi the first 160 (a much coarser tree)."""


class Trees(NamedTuple):
    """The grown trees of both lungs, as tube lists ``(a, b, ra, rb)`` in world mm."""

    vessels: tuple
    """Pulmonary arteries and veins (drawn as blood)."""
    airway_lumen: tuple
    """The bronchial tree's lumen (air, label 3)."""
    airway_wall: tuple
    """The bronchial tree's walls (the lumen widened by 22 % + 0.45 mm)."""
    lung_points: dict
    """``{1: (n, 3), 2: (n, 3)}`` the uniform random points of the left and right lung the trees grew into."""


def grow_trees(rng, anatomy: Anatomy) -> Trees:
    """Pulmonary arteries (one root per hilum), veins (two roots per side) and bronchi (from the main bronchi)."""
    n_art, n_vein, n_aw = N_ARTERY_POINTS, N_VEIN_POINTS, N_AIRWAY_POINTS
    points = lung_points(rng, anatomy, n_art + n_vein)
    arteries, veins, airways = [], [], []
    for side in (1, 2):
        pts = points[side]
        start, direction, radius = anatomy.artery_roots[side]
        arteries.append(grow_tree(rng, start, direction, radius, pts[:n_art], r_min=0.45))
        vpts = pts[n_art:]
        order = np.argsort(vpts[:, 2])[::-1]
        for (start, direction, radius), part in zip(anatomy.vein_roots[side], np.array_split(order, 2)):
            veins.append(grow_tree(rng, start, direction, radius, vpts[part], r_min=0.45))
        start, direction, radius = anatomy.bronchus_ends[side]
        airways.append(grow_tree(rng, start, direction, radius, pts[:n_aw], r_min=0.9, max_len=20))
    aw_lumen = concat(*airways)
    aw_wall = (aw_lumen[0], aw_lumen[1], aw_lumen[2] * 1.22 + 0.45, aw_lumen[3] * 1.22 + 0.45)
    return Trees(concat(*arteries, *veins), aw_lumen, aw_wall, points)


def grow_tree(rng, start, direction, radius, points, *, r_min: float, taper: float = 0.97,
              max_len: float = 30.0):
    """A space-filling tree: each branch heads for the centroid of its territory (a set of points in the lung),
    which is split in two across its longest axis; child radii follow Murray's law with the territory size
    (r^3 proportional to the number of points). Splits are unequal and the larger child keeps more of its
    parent's direction, so long vessels run on while giving off side branches, as real ones do."""
    segs_a, segs_b, segs_ra, segs_rb = [], [], [], []
    stack = [(np.asarray(start, float), unit(direction), float(radius), np.arange(len(points)), 0.3)]
    while stack:
        s, d_prev, r, idx, keep = stack.pop()
        terr = points[idx]
        c = terr.mean(0)
        to_c = c - s
        dist = float(np.linalg.norm(to_c))
        if len(idx) <= 1 or r < r_min:
            if dist > 1.0:
                segs_a.append(s)
                segs_b.append(c)
                segs_ra.append(r)
                segs_rb.append(max(r * 0.75, 0.25))
            continue
        d = unit((1 - keep) * to_c / max(dist, 1e-6) + keep * d_prev + rng.normal(0, 0.06, 3))
        length = float(np.clip(min(10 * r, 0.6 * dist, 6 + 2.2 * r), 1.5, max_len))
        e = s + d * length
        r_end = r * taper
        segs_a.append(s)
        segs_b.append(e)
        segs_ra.append(r)
        segs_rb.append(r_end)
        q = terr - c
        spread = np.abs(q).max(0)
        axis = unit(np.eye(3)[int(np.argmax(spread))] + rng.normal(0, 0.35, 3))
        proj = q @ axis
        k = int(rng.uniform(0.12, 0.45) * (len(proj) - 1))
        cut = np.partition(proj, k)[k]
        small = proj <= cut
        if small.all() or not small.any():
            small = np.arange(len(idx)) < len(idx) // 2
        if axis @ d < 0:  # the larger part is the one further along: the vessel runs on into it
            small = ~small
        for part, keep_next in ((idx[small], 0.2), (idx[~small], 0.5)):
            stack.append((e, d, r_end * (len(part) / len(idx)) ** (1 / 3), part, keep_next))
    return np.array(segs_a), np.array(segs_b), np.array(segs_ra), np.array(segs_rb)


def lung_points(rng, anatomy: Anatomy, per_side: int) -> dict[int, np.ndarray]:
    """Uniform random points in each lung (rejection sampling with the analytic lung rule)."""
    found: dict[int, list[np.ndarray]] = {1: [], 2: []}
    lo = np.array([anatomy.cx - anatomy.a0, anatomy.cy - anatomy.b_ant0, max(0.0, anatomy.z_dome_l - 80)])
    hi = np.array([anatomy.cx + anatomy.a0, anatomy.cy + anatomy.b_post0, anatomy.z_apex])
    for _ in range(40):
        if all(sum(len(p) for p in found[s]) >= per_side for s in (1, 2)):
            break
        cand = lo + rng.random((12000, 3)) * (hi - lo)
        side = anatomy.point_side(cand)
        for s in (1, 2):
            found[s].append(cand[side == s])
    return {s: np.concatenate(found[s])[:per_side] for s in (1, 2)}

