"""Geometry of the phantom: small vector helpers and tube lists (tapered capsules) - building, measuring, drawing.

A *tube list* is ``(a, b, ra, rb)``: segment starts and ends ``(n, 3)`` in world mm ``(x, y, z)`` with the radius at
each end ``(n,)``. Vessels, airways, the oesophagus, clavicles, spiculae and scars are all tube lists; the
mediastinum, the trees and the lesions build them, and ``scatter_tubes`` draws them onto the voxel grid.
"""
from __future__ import annotations

import math

import numpy as np

_F32 = np.float32


def smoothstep(e0, e1, x):
    """0 below ``e0``, 1 above ``e1``, a smooth cubic between."""
    t = np.clip((np.asarray(x, float) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def angdiff(a, b):
    """``a - b`` wrapped to ``[-pi, pi)`` (radians)."""
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def unit(v) -> np.ndarray:
    """``v`` scaled to length 1."""
    v = np.asarray(v, float)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def polyline(ctrl, radii, step: float = 6.0):
    """Catmull-Rom curve through control points as capsule segments ``(a, b, ra, rb)``."""
    ctrl = np.asarray(ctrl, float)
    radii = np.asarray(radii, float)
    padded = np.vstack([2 * ctrl[0] - ctrl[1], ctrl, 2 * ctrl[-1] - ctrl[-2]])
    points, rs = [ctrl[0]], [radii[0]]
    for i in range(len(ctrl) - 1):
        p0, p1, p2, p3 = padded[i:i + 4]
        n = max(1, int(math.ceil(np.linalg.norm(p2 - p1) / max(step, 0.8 * min(radii[i], radii[i + 1])))))
        for t in np.arange(1, n + 1) / n:
            t2, t3 = t * t, t * t * t
            points.append(0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                                 + (-p0 + 3 * p1 - 3 * p2 + p3) * t3))
            rs.append(radii[i] + t * (radii[i + 1] - radii[i]))
    ends, end_radii = np.array(points), np.array(rs)
    return ends[:-1], ends[1:], end_radii[:-1], end_radii[1:]


def concat(*tubes):
    """One tube list from several (``None`` and empty ones skipped)."""
    kept = [t for t in tubes if t is not None and len(t[0])]
    if not kept:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0)
    return tuple(np.concatenate([t[i] for t in kept]) for i in range(4))


def shrink(tubes, by: float):
    """The same tubes ``by`` mm thinner (at least 0.3 mm): a lumen inside its wall, marrow inside its cortex."""
    a, b, ra, rb = tubes
    return a, b, np.maximum(ra - by, 0.3), np.maximum(rb - by, 0.3)


def tubes_min_sd(points: np.ndarray, tubes) -> np.ndarray:
    """Signed distance (mm) from each point to the union of tapered capsules, brute force (few points)."""
    a, b, ra, rb = tubes
    best = np.full(len(points), np.inf)
    if not len(a):
        return best
    ab = b - a
    l2 = np.maximum((ab * ab).sum(1), 1e-9)
    for s in range(0, len(a), 32):
        q = points[:, None, :] - a[None, s:s + 32]
        t = np.clip((q * ab[None, s:s + 32]).sum(2) / l2[None, s:s + 32], 0, 1)
        d = np.linalg.norm(q - t[..., None] * ab[None, s:s + 32], axis=2)
        sd = d - (ra[None, s:s + 32] + t * (rb - ra)[None, s:s + 32])
        best = np.minimum(best, sd.min(1))
    return best


def scatter_tubes(out: np.ndarray, spacing, tubes, *, soft: bool = True, offset=(0, 0, 0)) -> None:
    """Rasterise tapered capsules into ``out`` (uint8 ``(z, y, x)``) as max occupancy 0..255.

    ``soft`` gives partial-volume occupancy (in-plane ramp one pixel wide; thin tubes, radius < 2.5 mm, are also
    averaged over three positions across the slice thickness); otherwise 255 where the centre is inside.
    ``offset`` is the world (x, y, z) mm of ``out``'s voxel (0, 0, 0).
    """
    a, b, ra, rb = (np.asarray(v, float) for v in tubes)
    if not len(a):
        return
    sz, sy, sx = spacing
    sp = np.array([sx, sy, sz])
    dims = np.array(out.shape[::-1])
    a = a - np.asarray(offset, float)
    b = b - np.asarray(offset, float)
    width = 0.5 * (sx + sy)
    thin = np.maximum(ra, rb) < 2.5
    flat = out.reshape(-1)
    for group in (thin, ~thin):
        if not group.any():
            continue
        zsub = (-sz / 3, 0.0, sz / 3) if (soft and group is thin) else (0.0,)
        ga, gb, gra, grb = a[group], b[group], ra[group], rb[group]
        reach = np.maximum(gra, grb) + (width if soft else 0.0)
        lo = np.minimum(ga, gb) - reach[:, None]
        hi = np.maximum(ga, gb) + reach[:, None]
        lo[:, 2] -= max(zsub) if len(zsub) > 1 else 0
        hi[:, 2] += max(zsub) if len(zsub) > 1 else 0
        ilo = np.maximum(np.ceil(lo / sp).astype(np.int64), 0)
        ihi = np.minimum(np.floor(hi / sp).astype(np.int64), dims - 1)
        keep = (ihi >= ilo).all(1)
        if not keep.any():
            continue
        ga, gb, gra, grb, ilo, ihi = ga[keep], gb[keep], gra[keep], grb[keep], ilo[keep], ihi[keep]
        box = ihi - ilo + 1
        counts = box.prod(1)
        order_start = 0
        cum = np.cumsum(counts)
        budget = 1_200_000
        while order_start < len(counts):
            base = cum[order_start - 1] if order_start else 0
            stop = int(np.searchsorted(cum, base + budget, side="right"))
            stop = max(stop, order_start + 1)
            sel = slice(order_start, stop)
            order_start = stop
            c = counts[sel]
            total = int(c.sum())
            seg = np.repeat(np.arange(len(c)), c)
            off = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(c) - c, c)
            bx, by = box[sel][seg, 0], box[sel][seg, 1]
            ix = off % bx
            rest = off // bx
            iy = rest % by
            iz = rest // by
            ix += ilo[sel][seg, 0]
            iy += ilo[sel][seg, 1]
            iz += ilo[sel][seg, 2]
            sa, sb = ga[sel], gb[sel]
            abv = (sb - sa).astype(_F32)
            l2 = np.maximum((abv * abv).sum(1), 1e-6)
            qx = (ix * sx - sa[seg, 0]).astype(_F32)
            qy = (iy * sy - sa[seg, 1]).astype(_F32)
            qz0 = (iz * sz - sa[seg, 2]).astype(_F32)
            abx, aby, abz = abv[seg, 0], abv[seg, 1], abv[seg, 2]
            inv = (1.0 / l2)[seg].astype(_F32)
            r0 = gra[sel][seg].astype(_F32)
            dr = (grb[sel] - gra[sel])[seg].astype(_F32)
            acc = np.zeros(total, _F32)
            for dz in zsub:
                qz = qz0 + _F32(dz)
                t = np.clip((qx * abx + qy * aby + qz * abz) * inv, 0, 1)
                ex = qx - t * abx
                ey = qy - t * aby
                ez = qz - t * abz
                sd = np.sqrt(ex * ex + ey * ey + ez * ez) - (r0 + t * dr)
                if soft:
                    acc += np.clip(0.5 - sd / _F32(width), 0, 1)
                else:
                    acc += sd < 0
            val = np.rint(acc * _F32(255.0 / len(zsub))).astype(np.uint8)
            nz = val > 0
            lin = (iz[nz] * out.shape[1] + iy[nz]) * out.shape[2] + ix[nz]
            np.maximum.at(flat, lin, val[nz])
