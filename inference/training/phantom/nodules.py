"""Lung nodules: what to draw (the plan), where (placement against the lung rule), and drawing them with their labels.

The plan comes from its own stream: 0-6 nodules of 3-40 mm (log-uniform), solid (lobulated, some spiculated),
part-solid (ground glass with a solid core), pure ground glass or calcified; free, juxtapleural (clipped flat by the
pleura), juxtavascular (against a vessel of the trees) or perifissural (lentiform, on a local fissure sheet). The
demo seed has a fixed plan of four clearly visible nodules. Nodules are drawn into the noiseless image; label 4
goes to the lung voxels they fill at least half.
"""
from __future__ import annotations

import numpy as np

from inference.training.phantom.anatomy import Anatomy
from inference.training.phantom.geometry import scatter_tubes, unit
from inference.training.phantom.truth import Nodule
from inference.types import float3

_F32 = np.float32

DEMO_SEED = 0
"""The seed of the built-in sample study; its nodule plan is fixed to four clearly visible nodules."""

# the 26 neighbour directions (unit length): probes around a candidate centre, inside or outside the lung
_DIRS = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) != (0, 0, 0)],
                 float)
_DIRS /= np.linalg.norm(_DIRS, axis=1, keepdims=True)


def nodule_plan(rng, seed: int, n_nodules: int | None):
    """``(kind, diameter_mm, type, side)`` per nodule: kind free / juxtapleural / vessel / perifissural, side 0 any."""
    if seed == DEMO_SEED and n_nodules is None:
        return [("free", rng.uniform(15, 19), "solid", 2), ("juxtapleural", rng.uniform(11, 15), "solid", 1),
                ("vessel", rng.uniform(8, 11), "solid", 2), ("free", rng.uniform(20, 25), "part-solid", 1)]
    n = int(rng.choice(7, p=[0.08, 0.14, 0.18, 0.18, 0.16, 0.14, 0.12])) if n_nodules is None else int(n_nodules)
    plan = []
    for _ in range(n):
        # log-uniform 3-40 mm: about a quarter each in 3-6, 6-10 (a fifth), 10-20 and 20-40 mm
        d = float(np.exp(rng.uniform(np.log(3.0), np.log(40.0))))
        u = rng.random()
        if d <= 12 and u < 0.12:
            typ = "calcified"
        elif 5 <= d <= 30 and u < 0.30:
            typ = "ground-glass"
        elif d >= 6 and u < 0.50:
            typ = "part-solid"
        else:
            typ = "solid"
        kinds, weights = ["free", "juxtapleural", "vessel", "perifissural"], [0.35, 0.25, 0.25, 0.15]
        if d > 15 or typ != "solid":  # perifissural nodules are small solid lymph nodes
            kinds, weights = kinds[:3], [0.45, 0.3, 0.25]
        plan.append((str(rng.choice(kinds, p=weights)), d, typ, 0))
    return plan


def place_nodules(rng, anatomy: Anatomy, plan, pool: np.ndarray, vessels):
    """Centres (world mm) for the planned nodules, checked against the analytic lung rule."""
    placed: list[tuple] = []
    va, vb, vra, vrb = vessels
    vr = 0.5 * (vra + vrb)
    candidates_v = np.nonzero((vr > 0.8) & (vr < 3.0))[0]
    for kind, diameter, typ, want_side in plan:
        radius = diameter / 2
        # a mass that does not fit free in the lung can still lie against the pleura
        for attempt_kind in (kind, "free") + (("juxtapleural",) if radius > 10 else ()):
            centre = None
            for _ in range(6):
                m = 48
                if attempt_kind == "vessel" and len(candidates_v):
                    pick = rng.choice(candidates_v, m)
                    t = rng.random(m)[:, None]
                    on = va[pick] + t * (vb[pick] - va[pick])
                    axis = vb[pick] - va[pick]
                    perp = np.cross(axis, rng.normal(size=(m, 3)))
                    perp /= np.maximum(np.linalg.norm(perp, axis=1, keepdims=True), 1e-9)
                    cand = on + perp * (radius + 0.5 * vr[pick])[:, None]
                else:
                    cand = pool[rng.integers(0, len(pool), m)]
                side = anatomy.point_side(cand)
                shell_in = (0.45 if attempt_kind == "juxtapleural" else 1.2) * radius + \
                    (0 if attempt_kind == "juxtapleural" else 1.5)
                probe_in = anatomy.point_side((cand[:, None, :] + _DIRS[None] * shell_in).reshape(-1, 3))
                ok_in = (probe_in.reshape(m, -1) == side[:, None]).all(1) & (side > 0)
                if want_side:
                    ok_in &= side == want_side
                if attempt_kind == "juxtapleural":
                    probe_out = anatomy.point_side((cand[:, None, :] + _DIRS[None] * 1.15 * radius).reshape(-1, 3))
                    ok_in &= (probe_out.reshape(m, -1) == 0).sum(1) >= 2
                for i in np.nonzero(ok_in)[0]:
                    if all(np.linalg.norm(cand[i] - c) > radius + r + 4 for c, r, *_ in placed):
                        centre = cand[i]
                        break
                if centre is not None:
                    break
            if centre is not None:
                placed.append((centre, radius, typ, attempt_kind))
                break
    return placed


def draw_nodules(rng, clean, labels, spacing, placed, origin_lps) -> list[Nodule]:
    """Draw the ``placed`` nodules (``place_nodules``) into ``clean``/``labels``; the ``Nodule`` of each drawn one.

    A nodule left with no label voxel (nothing of it in the lung) is dropped. Its centre is the centroid of its
    label voxels, or the label voxel nearest to it where the centroid falls outside them, in LPS mm with
    ``origin_lps`` the position of voxel (0, 0, 0).
    """
    sz, sy, sx = spacing
    nodules = []
    for centre, radius, typ, kind in placed:
        drawn = render_nodule(rng, clean, labels, spacing, centre, radius, typ, kind)
        if drawn is None or not drawn[1].any():
            continue
        box, mask, core_mm = drawn
        idx = np.argwhere(mask)
        offset = np.array([box[0].start, box[1].start, box[2].start])
        mean = idx.mean(0)
        nearest = idx[np.argmin(((idx - mean) ** 2).sum(1))]
        zyx = mean if mask[tuple(np.rint(mean).astype(int))] else nearest
        zyx = zyx + offset
        lps = origin_lps + np.array([zyx[2] * sx, zyx[1] * sy, zyx[0] * sz])
        nodules.append(Nodule(float3(lps), 2 * radius, typ, kind == "juxtapleural",
                              kind == "vessel", float(mask.sum() * sx * sy * sz), kind == "perifissural", core_mm))
    return nodules


def render_nodule(rng, clean, labels, spacing, centre, radius, typ, kind="free"):
    """Draw one nodule into ``clean``/``labels`` (world mm centre); returns ``(box, mask, core_mm)``: its label
    voxels (the nodule is clipped to the lung, so a juxtapleural one is flat against the pleura) and the solid
    core's diameter of a part-solid nodule (else 0), or None.

    A ``perifissural`` nodule is lentiform: flattened to half its diameter across a fissure sheet that is drawn
    through it (a thin oblique plane, 20-40 mm across, inside the lung only).
    """
    sz, sy, sx = spacing
    reach = radius * 1.9 + 3
    fissure = None
    if kind == "perifissural":
        normal = unit(rng.normal(size=3) * np.array([1.0, 1.0, 0.6]))
        fissure = (normal, rng.uniform(20, 40), rng.uniform(-350, -150))
        reach = max(reach, fissure[1] + 2)
    lo = np.maximum(np.floor((centre - reach) / [sx, sy, sz]).astype(int), 0)
    hi = np.minimum(np.ceil((centre + reach) / [sx, sy, sz]).astype(int) + 1, clean.shape[::-1])
    if (hi <= lo).any():
        return None
    box = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    hs = clean[box]
    ls = labels[box]
    lung = (ls == 1) | (ls == 2)
    x = (np.arange(lo[0], hi[0]) * sx - centre[0])[None, None, :]
    y = (np.arange(lo[1], hi[1]) * sy - centre[1])[None, :, None]
    zc = (np.arange(lo[2], hi[2]) * sz - centre[2])[:, None, None]
    width = 0.5 * (sx + sy)

    def shape_occupancy(r, offset, lobes):
        acc = np.zeros(())  # float64, as the terms added
        for dz in (-sz / 3, 0.0, sz / 3):
            px, py, pz = x - offset[0], y - offset[1], zc + dz - offset[2]
            if fissure is not None:  # lentiform: distances across the sheet count double
                along = px * fissure[0][0] + py * fissure[0][1] + pz * fissure[0][2]
                px, py, pz = px + along * fissure[0][0], py + along * fissure[0][1], pz + along * fissure[0][2]
            d = np.sqrt(px * px + py * py + pz * pz) + 1e-6
            surf = 1.0
            for v, amp, w in lobes:
                surf = surf + amp * np.exp(((px * v[0] + py * v[1] + pz * v[2]) / d - 1) / w)
            acc = acc + np.clip(0.5 - (d - r * surf) / width, 0, 1)
        return (acc / 3).astype(_F32)

    def lobes(n, amp):
        return [(unit(rng.normal(size=3)), rng.uniform(-amp, amp * 1.3), rng.uniform(0.15, 0.4)) for _ in range(n)]

    if fissure is not None:
        normal, extent, value = fissure
        across = np.abs(x * normal[0] + y * normal[1] + zc * normal[2])
        inside = np.sqrt(np.maximum(x * x + y * y + zc * zc - across * across, 0)) < extent
        sheet = np.clip(0.5 - (across - 0.4) / width, 0, 1) * inside * lung
        hs[...] = np.maximum(hs, hs + sheet.astype(_F32) * (value - hs))
    solid_hu = rng.uniform(0, 60)
    core_mm = 0.0
    if typ in ("part-solid", "ground-glass"):
        occ_g = shape_occupancy(radius, (0, 0, 0), lobes(int(rng.integers(4, 8)), 0.22)) * lung
        ggo = rng.uniform(-600, -300) + _blob_texture(rng, hs.shape, 90.0)
        if typ == "ground-glass":  # fainter than the ground glass around a solid core
            ggo = ggo - _F32(rng.uniform(50, 250))
        hs[...] = np.maximum(hs, hs + occ_g * (ggo - hs))
        mask = (occ_g >= 0.5) & lung
        if typ == "part-solid":
            core_r = radius * rng.uniform(0.3, 0.55)
            off = unit(rng.normal(size=3)) * rng.uniform(0, 0.35) * (radius - core_r)
            occ_c = shape_occupancy(core_r, off, lobes(int(rng.integers(3, 6)), 0.3)) * lung
            hs += occ_c * (solid_hu - hs)
            mask |= (occ_c >= 0.5) & lung
            core_mm = 2 * core_r
    elif typ == "calcified":  # benign: dense throughout, or a dense centre in a solid nodule
        occ = shape_occupancy(radius, (0, 0, 0), lobes(2, 0.08)) * lung
        hs += occ * (solid_hu - hs)
        core = radius * (1.0 if rng.random() < 0.5 else rng.uniform(0.4, 0.7))
        occ_c = shape_occupancy(core, (0, 0, 0), []) * lung
        hs += occ_c * (_F32(rng.uniform(300, 1000)) - hs)
        mask = (occ >= 0.5) & lung
    else:
        occ = shape_occupancy(radius, (0, 0, 0), lobes(int(rng.integers(2, 7)), 0.18)) * lung
        hs += occ * (solid_hu - hs)
        mask = (occ >= 0.5) & lung
        if radius >= 3 and rng.random() < 0.35:  # spiculation: thin tapering strands from the surface
            n = int(rng.integers(4, 11))
            dirs = rng.normal(size=(n, 3))
            dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
            a = centre + dirs * radius * 0.8
            b = centre + dirs * radius * rng.uniform(1.4, 1.9, (n, 1))
            spic = np.zeros(hs.shape, np.uint8)
            scatter_tubes(spic, spacing, (a, b, rng.uniform(0.5, 0.9, n), np.full(n, 0.2)),
                           offset=lo * np.array([sx, sy, sz]))
            occ_s = spic.astype(_F32) / 255 * lung
            hs[...] = np.maximum(hs, hs + occ_s * (solid_hu - hs))
    ls[mask] = 4
    return box, mask, core_mm


def _blob_texture(rng, shape, amplitude: float) -> np.ndarray:
    """Smooth random texture (a few voxels across) for ground glass."""
    v = rng.standard_normal(shape).astype(_F32)
    for axis in range(3):
        for _ in range(2):
            v = 0.25 * np.roll(v, 1, axis) + 0.5 * v + 0.25 * np.roll(v, -1, axis)
    return v * _F32(amplitude / max(float(v.std()), 1e-6))
