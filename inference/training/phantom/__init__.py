"""Synthetic chest-CT phantoms: the built-in sample study and the training/evaluation data of the built-in models.

``generate_phantom(seed)`` returns a chest CT in HU with its label map and nodule list, in memory and without
writing DICOM, so that training can draw hundreds of them. Everything is numpy; no Qt, torch or viewer imports.

What is modelled (all sizes in mm, randomised per seed):

* body wall: skin, subcutaneous fat, muscle (pectoral, paraspinal and scapular groups thicker), a patient table;
* bone: twelve pairs of ribs with cortical shell and marrow, costal cartilage, sternum, clavicles, scapulae, and a
  thoracic spine with vertebral bodies, discs, canal, pedicles/lamina, spinous and transverse processes;
* mediastinum: fat, heart (myocardium and chambers) and left atrium, aorta with arch and its three branches,
  superior vena cava and brachiocephalic veins, pulmonary trunk with left and right arteries, oesophagus;
* lungs (left/right) bounded by the ribs, the mediastinum, domed apices and the two diaphragm domes (breathing
  moves them), with a gravity gradient and smooth texture; upper abdomen (liver, stomach with gas, spleen) below;
* trachea, carina and main bronchi continuing into a bronchial tree, pulmonary arteries and veins as space-filling
  trees (Murray's law radii, tapering to sub-voxel size), rendered with partial-volume occupancy;
* 0-6 nodules of 3-40 mm (log-uniform, so masses of 30-40 mm occur): solid (lobulated, some spiculated),
  part-solid (ground glass with a solid core), pure ground glass and calcified (benign, small); free,
  juxtapleural (clipped flat by the pleura), juxtavascular (against a vessel) or perifissural (lentiform, on a
  fissure sheet; the phantom has no lobar fissures, so the sheet is local);
* hard negatives that readers and detectors mistake for nodules: vessel bifurcations (the trees), linear scars and
  plate-like (subsegmental) atelectasis, labelled as lung;
* acquisition: slice-profile and in-plane blur, correlated noise with a CT-like (ramp x apodisation) noise power
  spectrum, optional contrast enhancement, optional reconstruction circle; dose (noise 6-70 HU), kernel (soft to
  sharp) and habitus (subcutaneous fat) are widened by a separate protocol stream (not for the demo seed).

Coordinates: arrays are ``(z, y, x)`` = (slice, row, column). Rows run to patient posterior (+y LPS), columns to
patient left (+x LPS), slices to superior (+z LPS); ``origin_lps`` is the LPS position of voxel (0, 0, 0), so
``LPS = origin_lps + (x * sx, y * sy, z * sz)`` (see ``Phantom.affine``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PHANTOM_VERSION = 1
GENERATOR_REVISION = 2
"""Revision of the lesion model on top of the v1 anatomy: 2 added sizes to 40 mm, ground-glass, calcified and
perifissural nodules, mimics and the protocol stream. The anatomy and the demo study are those of v1 (the same
random streams), so only the lesions, the protocol and the training grids of non-demo seeds changed."""
DEFAULT_SHAPE = (128, 384, 384)
"""``(z, y, x)`` voxels of the default grid: 320 x 346 x 346 mm covers apex to upper abdomen of an adult chest."""
DEFAULT_SPACING = (2.5, 0.9, 0.9)
"""``(z, y, x)`` mm: a routine chest CT reconstruction (slices 2.5 mm, pixels 0.9 mm over a 346 mm field)."""
DEMO_SEED = 0
"""The seed of the built-in sample study; its nodule plan is fixed to four clearly visible nodules."""

LABELS = {0: "background", 1: "lung_left", 2: "lung_right", 3: "airway", 4: "nodule"}
LABEL_DESCRIPTIONS = {
    0: "everything else",
    1: "patient's left lung (larger LPS x); includes its vessels and airway walls, excludes airway lumen and nodules",
    2: "patient's right lung (smaller LPS x); same rules as the left lung",
    3: "airway lumen: trachea, main bronchi and the bronchial tree",
    4: "lung nodule (solid and part-solid, whole lesion including ground glass; pleural side clipped at the pleura)",
}

_SLAB = 8  # slices per rendering block: keeps temporaries small enough to be recycled by the allocator
_N_THETA = 1440
_F32 = np.float32
_DIRS = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) != (0, 0, 0)],
                 float)
_DIRS /= np.linalg.norm(_DIRS, axis=1, keepdims=True)


@dataclass(frozen=True)
class Nodule:
    """One generated nodule, in patient coordinates.

    Parameters
    ----------
    center_lps
        Centroid of its labelled voxels (LPS mm); the voxel nearest to it carries label 4.
    diameter_mm
        Diameter of the generating sphere (before lobulation and pleural clipping).
    type
        ``"solid"``, ``"part-solid"`` (ground glass with a solid core), ``"ground-glass"`` or ``"calcified"``.
    juxtapleural
        Attached to the pleura (lung boundary).
    touches_vessel
        Placed against a pulmonary vessel.
    volume_mm3
        Volume of its label-4 voxels.
    perifissural
        Lentiform (flattened to half its diameter across a fissure sheet).
    solid_core_mm
        Diameter of the generating sphere of a part-solid nodule's solid core (0 for other types).
    """

    center_lps: tuple[float, float, float]
    diameter_mm: float
    type: str
    juxtapleural: bool
    touches_vessel: bool
    volume_mm3: float
    perifissural: bool = False
    solid_core_mm: float = 0.0

    def to_json(self) -> dict:
        """The ``nodules.json`` entry."""
        return {"center_lps": [round(float(v), 3) for v in self.center_lps],
                "diameter_mm": round(float(self.diameter_mm), 2), "type": self.type,
                "juxtapleural": bool(self.juxtapleural), "touches_vessel": bool(self.touches_vessel),
                "perifissural": bool(self.perifissural), "solid_core_mm": round(float(self.solid_core_mm), 2),
                "volume_mm3": round(float(self.volume_mm3), 1)}


@dataclass(eq=False)
class Phantom:
    """A generated chest CT with its ground truth.

    Parameters
    ----------
    hu
        ``(z, y, x)`` int16 Hounsfield units.
    labels
        ``(z, y, x)`` uint8 label map on the same grid (see ``LABELS``).
    spacing
        ``(z, y, x)`` voxel size in mm.
    origin_lps
        LPS mm of voxel (0, 0, 0); rows run along +y (P), columns along +x (L), slices along +z (S).
    nodules
        The nodules, in LPS.
    seed
        The seed it was generated from.
    info
        The sampled acquisition and anatomy parameters worth knowing (contrast, noise, breathing, ...).
    """

    hu: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    origin_lps: tuple[float, float, float]
    nodules: list[Nodule]
    seed: int
    info: dict = field(default_factory=dict)

    @property
    def affine(self) -> np.ndarray:
        """4x4 mapping ``(x=column, y=row, z=slice, 1)`` to LPS mm (the convention of ``viewer.core.volume``)."""
        sz, sy, sx = self.spacing
        affine = np.diag([sx, sy, sz, 1.0])
        affine[:3, 3] = self.origin_lps
        return affine

    def nodules_json(self) -> dict:
        """The content of ``nodules.json``."""
        return {"nodules": [n.to_json() for n in self.nodules], "seed": self.seed,
                "generator": f"hounsfield phantom v{PHANTOM_VERSION}.{GENERATOR_REVISION}", "coordinates": "LPS mm"}


# ----------------------------------------------------------------------------------------------------------------
# small geometry helpers


def _smoothstep(e0, e1, x):
    t = np.clip((np.asarray(x, float) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _angdiff(a, b):
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _rotation_towards(direction, angle, axis):
    """Rotate unit ``direction`` by ``angle`` around unit ``axis`` (Rodrigues)."""
    c, s = math.cos(angle), math.sin(angle)
    return direction * c + np.cross(axis, direction) * s + axis * float(axis @ direction) * (1 - c)


def _polyline(ctrl, radii, step: float = 6.0):
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
    points, rs = np.array(points), np.array(rs)
    return points[:-1], points[1:], rs[:-1], rs[1:]


def _concat(*tubes):
    tubes = [t for t in tubes if t is not None and len(t[0])]
    if not tubes:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0)
    return tuple(np.concatenate([t[i] for t in tubes]) for i in range(4))


def _tubes_min_sd(points: np.ndarray, tubes) -> np.ndarray:
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


def _scatter_tubes(out: np.ndarray, spacing, tubes, *, soft: bool = True, offset=(0, 0, 0)) -> None:
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


class _SmoothField:
    """A smooth random field (unit standard deviation, correlation length ~ ``cell_mm``) sampled per slab."""

    def __init__(self, rng, shape, spacing, cell_mm: float) -> None:
        coarse = [int(math.ceil((n - 1) * s / cell_mm)) + 3 for n, s in zip(shape, spacing)]
        v = rng.standard_normal(coarse)
        for axis in range(3):  # [1 2 1] smoothing takes the grid look out of linear interpolation
            v = 0.25 * np.roll(v, 1, axis) + 0.5 * v + 0.25 * np.roll(v, -1, axis)
        self.values = (v / v.std()).astype(_F32)
        self.pos = [np.arange(n) * s / cell_mm + 1.0 for n, s in zip(shape, spacing)]

    def slab(self, k0: int, k1: int) -> np.ndarray:
        a = _lerp_axis(self.values, self.pos[0][k0:k1], 0)
        a = _lerp_axis(a, self.pos[1], 1)
        return _lerp_axis(a, self.pos[2], 2)


def _lerp_axis(a: np.ndarray, pos: np.ndarray, axis: int) -> np.ndarray:
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, a.shape[axis] - 2)
    f = (pos - i0).astype(_F32)
    shape = [1, 1, 1]
    shape[axis] = len(pos)
    f = f.reshape(shape)
    lo = np.take(a, i0, axis)
    return lo + (np.take(a, i0 + 1, axis) - lo) * f


# ----------------------------------------------------------------------------------------------------------------
# anatomy


class _Anatomy:
    """The sampled geometry: analytic surfaces (functions of world mm) plus tube lists for mediastinum and trees."""

    def __init__(self, rng: np.random.Generator, shape, spacing) -> None:
        u = rng.uniform
        nz, ny, nx = shape
        sz, sy, sx = spacing
        ex, ey, ez = (nx - 1) * sx, (ny - 1) * sy, (nz - 1) * sz
        self.extent = np.array([ex, ey, ez])
        self.inspiration = u(0.0, 1.0)

        # body outline: superellipse, rounder in front, flat on the back, slow harmonic wobble along z
        self.a0 = min(u(145, 172), ex / 2 - 6)
        self.b_ant0 = u(92, 118) * (1 + 0.04 * self.inspiration)
        self.b_post0 = u(98, 118)
        self.cx = ex / 2 + u(-6, 6)
        cy = ey / 2 + u(-4, 14)
        cy = min(cy, ey - self.b_post0 - 24)
        self.cy = max(cy, self.b_ant0 * 1.03 + 4)
        self.sa = u(-0.08, 0.1)
        self.p_ant, self.p_post = u(2.0, 2.5), u(2.5, 3.2)
        self.harm = [(k, rng.normal(0, 0.012), rng.normal(0, 0.008), u(40, 120), u(0, 6.3), u(0, 6.3))
                     for k in (2, 3, 4, 5)]
        # body wall
        self.skin = u(1.5, 2.5)
        self.fat0 = u(3, 18)
        self.fat_harm = [(k, rng.normal(0, 0.12), u(0, 6.3)) for k in (1, 2, 3)]
        self.muscle0 = u(4, 8)
        self.pect = u(6, 16)
        self.paraspinal = u(32, 46)
        self.scap_muscle = u(10, 22)
        self.rib_band = u(8.5, 11)
        self.shoulder = u(15, 35)

        # levels: apex near the top of the field, domes lower with deeper breath, posterior recesses below
        self.z_apex = ez - u(18, 42)
        recess = u(50, 75)
        height = u(150, 175) + 35 * self.inspiration
        height = min(height, self.z_apex - recess * 0.6)
        self.z_dome_r = self.z_apex - height
        self.z_dome_l = self.z_dome_r - u(8, 22)
        self.z_apex_l = self.z_apex + u(-8, 4)
        self.x_m = self.cx + u(-4, 4)
        self.dome_dx = u(45, 65)
        self.y_dome = self.cy + u(-20, 5)
        self.c_lat = u(55, 85) / 90.0 ** 2
        self.c_post = recess / 110.0 ** 2
        self.c_ant = u(20, 40) / 90.0 ** 2
        self.apex_dx = u(0.42, 0.5) * self.a0
        self.y_apex = self.cy + u(0, 20)
        self.k_apex = u(6.5, 8.5)
        self.band_half = u(4, 8)

        # spine and ribs
        self.r_vb0 = u(15, 19)
        self.kyph = u(0, 10)
        self.vert_pitch = u(22, 26.5)
        self.z_vert0 = self.z_apex + u(-10, 10)
        self.disc = u(4, 6)
        self.canal_r = u(6.5, 8.5)
        self.rib_pitch = self.vert_pitch
        self.z_rib1 = self.z_apex + u(-14, -4)
        self.rib_drop = u(70, 105)
        self.rib_hz, self.rib_ht = u(4.5, 6.5), u(2.6, 3.6)
        ends = np.concatenate([np.full(7, np.pi - 0.5), [np.pi - 0.65] * 3, [0.62 * np.pi, 0.45 * np.pi]])
        self.rib_alpha_end = ends + rng.normal(0, 0.04, 12)
        cart = np.concatenate([np.full(7, np.pi - 0.12), [np.pi - 0.3] * 3, [0, 0]])
        self.rib_alpha_cart = np.maximum(cart, self.rib_alpha_end)
        self.z_notch = self.z_apex - u(25, 45)
        self.z_xiph = self.z_dome_r - u(0, 25)
        self.st_th, self.st_w, self.st_wm = u(9, 13), u(26, 34), u(44, 56)
        self.scap_alpha, self.scap_w = u(0.85, 1.05), u(0.25, 0.35)
        self.scap_top, self.scap_bot = self.z_apex + u(0, 20), self.z_apex - u(110, 150)
        self.scap_th = u(3, 6)

        # materials
        self.contrast = bool(rng.random() < 0.3)
        self.hu = {
            "air": -1000.0, "skin": u(10, 50), "fat": u(-115, -85), "muscle": u(38, 60),
            "medfat": u(-105, -75), "cortical": u(650, 1150), "marrow": u(150, 300), "cartilage": u(80, 160),
            "vert_cortical": u(450, 750), "vert_marrow": u(140, 260), "disc": u(70, 95), "csf": u(15, 35),
            "blood": u(160, 330) if self.contrast else u(35, 50),
            "myocardium": u(90, 130) if self.contrast else u(40, 55),
            "liver": u(90, 120) if self.contrast else u(50, 66),
            "spleen": u(100, 140) if self.contrast else u(40, 52), "stomach": u(10, 35), "abdomen": u(-60, 0),
            "airway_wall": u(10, 60), "eso": u(30, 50), "table": u(60, 250), "scapula": u(350, 650),
            "lung": -u(805, 835) - 55 * self.inspiration,
        }
        self.lung_gradient = u(25, 75)
        self.lung_tex = (u(8, 18), u(6, 14))

        # acquisition
        self.noise_sigma = u(9, 32)
        self.noise_f0 = u(0.14, 0.3)  # cycles/mm: soft to sharp reconstruction kernels
        self.psf_mm = u(0.5, 0.8)
        self.psf_z = u(0.12, 0.22)
        self.fov_circle = bool(rng.random() < 0.6)
        self.table = bool(rng.random() < 0.85)
        self.table_gap = u(3, 15)
        self.table_curve = u(0.0006, 0.0016)

        self._mediastinum(rng)

    # --- analytic surfaces -----------------------------------------------------------------------------------

    def t(self, z):
        """Normalised height: 0 at the apex, 1 at the right dome."""
        return (self.z_apex - z) / (self.z_apex - self.z_dome_r)

    def body_radius(self, th, z):
        t = self.t(z)
        s01 = _smoothstep(-0.1, 0.7, t)
        a = self.a0 * (1 + self.sa * (t - 0.5))
        b_ant = self.b_ant0 * (0.8 + 0.2 * s01)
        b_post = self.b_post0 * (0.92 + 0.08 * s01)
        c, s = np.abs(np.cos(th)), np.sin(th)
        post = s > 0
        b = np.where(post, b_post, b_ant)
        p = np.where(post, self.p_post, self.p_ant)
        radius = ((c / a) ** p + (np.abs(s) / b) ** p) ** (-1.0 / p)
        wobble = 0.0
        for k, c0, c1, lz, phz, ph in self.harm:
            wobble = wobble + (c0 + c1 * np.sin(z / lz + phz)) * np.cos(k * th + ph)
        return radius * (1 + wobble)

    def wall(self, th, z):
        """Depths below the skin of the fat/muscle boundary, the muscle/rib-band boundary and the pleura."""
        t = self.t(z)
        fat = 1 + 0.2 * np.cos(2 * th) + 0.2 * np.maximum(np.sin(th), 0)
        for k, c, ph in self.fat_harm:
            fat = fat + c * np.cos(k * th + ph)
        fat = np.maximum(self.fat0 * fat, 1.5)
        upper = np.clip(1 - t / 0.6, 0, 1)
        post = np.abs(_angdiff(th, np.pi / 2))
        muscle = (self.muscle0
                  + self.pect * upper * (np.exp(-(_angdiff(th, -np.pi / 2 + 0.75) / 0.4) ** 2)
                                         + np.exp(-(_angdiff(th, -np.pi / 2 - 0.75) / 0.4) ** 2))
                  + self.paraspinal * np.exp(-(post / 0.62) ** 2)
                  + self.scap_muscle * np.clip(1 - t / 0.75, 0, 1) * np.exp(-((post - 1.0) / 0.35) ** 2)
                  + self.shoulder * np.clip(1 - t / 0.5, 0, 1) ** 1.5 * np.cos(th) ** 2)
        d_fat = self.skin + fat
        d_mus = d_fat + muscle
        return d_fat, d_mus, d_mus + self.rib_band

    def r_vb(self, z):
        return self.r_vb0 * (0.82 + 0.25 * np.clip(self.t(z), 0, 1.3))

    def y_vb(self, z):
        """Centre (y) of the vertebral body: it bulges into the cavity from behind."""
        th = np.pi / 2 + 0.35
        gutter = (self.body_radius(th, z) - self.wall(th, z)[2]) * math.cos(0.35)
        return self.cy + gutter - 0.7 * self.r_vb(z) + self.kyph * np.sin(np.pi * np.clip(self.t(z), 0, 1))

    def y_front(self, z):
        """Inner surface (y) of the anterior chest wall at the midline."""
        th = -np.pi / 2
        return self.cy - (self.body_radius(th, z) - self.wall(th, z)[2])

    def z_diaphragm(self, x, y):
        left = x > self.x_m
        zd = np.where(left, self.z_dome_l, self.z_dome_r)
        xd = np.where(left, self.x_m + self.dome_dx, self.x_m - self.dome_dx)
        dy = y - self.y_dome
        return zd - self.c_lat * (x - xd) ** 2 - np.where(dy > 0, self.c_post, self.c_ant) * dy ** 2

    def under_apex(self, x, y, z):
        left = x > self.x_m
        xa = np.where(left, self.x_m + self.apex_dx, self.x_m - self.apex_dx)
        za = np.where(left, self.z_apex_l, self.z_apex)
        d2 = (x - xa) ** 2 + ((y - self.y_apex) * 0.9) ** 2
        return d2 < self.k_apex ** 2 * np.maximum(za - z, 0)

    def heart_sd(self, x, y, z):
        """Approximate signed distance to the heart (ventricles + left atrium), +inf far away."""
        x, y, z = np.asarray(x), np.asarray(y), np.asarray(z)
        out = np.full(x.shape, np.inf)
        for centre, rot, axes in self.heart_parts:
            reach = axes.max() + 10
            near = (np.abs(x - centre[0]) < reach) & (np.abs(y - centre[1]) < reach) & \
                (np.abs(z - centre[2]) < reach)
            if not near.any():
                continue
            qn = (np.stack([x[near], y[near], z[near]], -1) - centre) @ rot.T
            k0 = np.linalg.norm(qn / axes, axis=-1)
            k1 = np.maximum(np.linalg.norm(qn / axes ** 2, axis=-1), 1e-9)
            out[near] = np.minimum(out[near], k0 * (k0 - 1) / k1)
        return out

    def near_heart(self, z):
        """Which heights can be within 10 mm of the heart (a cheap prefilter for ``heart_sd``)."""
        z = np.asarray(z)
        near = np.zeros(z.shape, bool)
        for centre, _, axes in self.heart_parts:
            near |= np.abs(z - centre[2]) < axes.max() + 10
        return near

    def lung_side(self, x, y, z, env, yv=None, rv=None, heart=None, ymid=None):
        """1 (left lung), 2 (right lung) or 0, for points already known to be inside the rib cage."""
        dxm = x - self.x_m
        yv = self.y_vb(z) if yv is None else yv
        rv = self.r_vb(z) if rv is None else rv
        ok = ~env & (np.abs(dxm) > self.band_half)
        ok &= ~self.in_mediastinum(x, y, z, ymid)
        ok &= z > self.z_diaphragm(x, y)
        ok &= self.under_apex(x, y, z)
        ok &= (dxm / (1.1 * rv + 2.5)) ** 2 + ((y - yv) / (0.9 * rv + 2.5)) ** 2 > 1
        ok &= ~((y > yv) & (np.abs(dxm) < 1.1 * rv + 2.5))
        idx = np.nonzero(ok)[0]
        if len(idx):
            hsd = self.heart_sd(x[idx], y[idx], z[idx]) if heart is None else heart[idx]
            ok[idx[hsd < self.heart_margin]] = False
        return np.where(ok, np.where(dxm > 0, 1, 2), 0).astype(np.uint8)

    def cavity_depth(self, x, y, z):
        """Distance (mm, radial) inside the pleural surface of the rib cage; negative outside."""
        th = np.arctan2(y - self.cy, x - self.cx)
        rho = np.hypot(x - self.cx, y - self.cy)
        return self.body_radius(th, z) - self.wall(th, z)[2] - rho

    def point_side(self, p: np.ndarray) -> np.ndarray:
        """Lung label (0/1/2) at world points ``(n, 3)`` (x, y, z mm), the same rule the rasteriser uses."""
        p = np.atleast_2d(p)
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        inside = (p >= 0).all(1) & (p <= self.extent).all(1) & (self.cavity_depth(x, y, z) > 0)
        side = np.zeros(len(p), np.uint8)
        idx = np.nonzero(inside)[0]
        if len(idx):
            env = _tubes_min_sd(p[idx], self.env_tubes) < 0
            side[idx] = self.lung_side(x[idx], y[idx], z[idx], env)
        return side

    # --- mediastinum -----------------------------------------------------------------------------------------

    def _mediastinum(self, rng) -> None:
        u = rng.uniform
        xm = self.x_m
        z_apex, z_dome_l = self.z_apex, self.z_dome_l
        top = self.extent[2] + 15
        bottom = -25.0
        yv, rv, yf = self.y_vb, self.r_vb, self.y_front
        self.z_car = z_car = z_apex - u(85, 110)
        z_arch = z_car + u(22, 34)
        self.heart_margin = u(2, 7)

        # heart: an ellipsoid on the left dome, long axis to the left, front and down; left atrium behind it
        zh = z_dome_l + u(28, 45)
        centre = np.array([xm + u(12, 24), yf(zh) + u(32, 40), zh])
        ax1 = _unit([0.7 + u(-0.1, 0.1), -0.45 + u(-0.1, 0.1), -0.5 + u(-0.1, 0.1)])
        ax2 = _unit(np.cross(ax1, [0, 0, 1]))
        ax3 = np.cross(ax1, ax2)
        axes = np.array([u(46, 56), u(32, 39), u(33, 40)])
        z_la = z_car - u(28, 40)
        la_c = np.array([xm + u(0, 6), yv(z_la) - rv(z_la) - u(20, 26), z_la])
        la_axes = np.array([u(24, 30), u(13, 17), u(15, 19)])
        self.heart_parts = [(centre, np.array([ax1, ax2, ax3]), axes), (la_c, np.eye(3), la_axes)]
        self.myo_thickness = u(8, 12)

        def at(z, dx, dy_from, dy):
            return [xm + dx, dy_from(z) + dy, z]

        ymid = lambda z: 0.5 * (yf(z) + yv(z))  # noqa: E731
        front = lambda z: yf(z)  # noqa: E731

        s = u(0.88, 1.12)
        root = [xm + u(-2, 6), centre[1] + u(0, 6), zh + u(32, 40)]
        aorta = _polyline([
            root, at(z_arch - 22, -u(10, 15), front, u(28, 34)), [xm - 2, ymid(z_arch) - 4, z_arch + 8],
            [xm + 16, yv(z_arch - 6) - rv(z_arch - 6) - 14, z_arch - 6],
            [xm + 0.7 * rv(z_car - 40) + 6, yv(z_car - 40) - 0.6 * rv(z_car - 40) - 4, z_car - 40],
            [xm + 9, yv(z_dome_l - 40) - rv(z_dome_l - 40) - 6, z_dome_l - 40],
            [xm + 5, yv(bottom) - rv(bottom) - 8, bottom]], np.array([15, 15, 14, 13, 12, 11.5, 11]) * s, 10)
        arch_top = np.array([xm - 2, ymid(z_arch) - 4, z_arch + 8])
        branches = _concat(
            _polyline([arch_top + [-6, -4, 4], arch_top + [-14, -10, 34], [xm - 28, arch_top[1] - 8, top]],
                      [6.5, 6.5, 6], 10),
            _polyline([arch_top + [4, 2, 6], [xm + 12, arch_top[1] + 2, top]], [4.5, 4.5], 12),
            _polyline([arch_top + [14, 8, 2], arch_top + [28, 10, 36], [xm + 55, arch_top[1] + 6, top]],
                      [5.5, 5.5, 5.5], 10))
        svc_top = [xm - 30, yf(z_arch + 25) + 28, z_arch + 25]
        veins = _concat(
            _polyline([[xm - 36, centre[1] - 4, zh + 30], [xm - 38, yf(z_car + 10) + 38, z_car + 10], svc_top],
                      [9.5, 9.5, 9], 10),
            _polyline([svc_top, [xm - 40, yf(top) + 30, top]], [7, 7], 12),
            _polyline([svc_top, [xm, yf(z_arch + 35) + 20, z_arch + 35], [xm + 45, yf(top) + 26, top]],
                      [6, 6, 6], 10))
        bif = np.array([xm + 12, yf(z_car - 8) + 36, z_car - 8])
        pa_trunk = _polyline([[xm + 18, yf(zh + 40) + 18, zh + 40], bif], [13, 13], 8)
        hilum_l = np.array([xm + u(42, 52), ymid(z_car) + 12, z_car - 12])
        hilum_r = np.array([xm - u(40, 48), ymid(z_car) + 2, z_car - 20])
        lpa = _polyline([bif, [xm + 35, ymid(z_car) + 6, z_car - 2], hilum_l], [10, 9.5, 9], 6)
        rpa = _polyline([bif, [xm - 20, ymid(z_car), z_car - 14], hilum_r], [10, 9.5, 9], 6)

        # trachea and main bronchi
        r_tr = u(8.5, 11.5)
        self.r_trachea = r_tr
        y_tr = lambda z: yv(z) - rv(z) - u(12, 16) - r_tr  # noqa: E731
        car = np.array([xm - 3, y_tr(z_car), z_car])
        trachea_c = [[xm, y_tr(top), top], [xm, y_tr(z_apex), z_apex], [xm - 2, y_tr(z_car + 40), z_car + 40],
                     list(car)]
        angle_r, angle_l = math.radians(u(20, 35)), math.radians(u(40, 55))
        end_r = car + _unit([-math.sin(angle_r), 0.15, -math.cos(angle_r)]) * u(20, 28)
        end_l = car + _unit([math.sin(angle_l), 0.2, -math.cos(angle_l)]) * u(40, 52)
        rb_r, rb_l = u(7, 8.5), u(6, 7.5)
        trachea = _polyline(trachea_c, [r_tr] * 4, 12)
        bronchi = _concat(_polyline([car, end_r], [rb_r, rb_r], 6), _polyline([car, end_l], [rb_l, rb_l], 6))
        wall = 1.6
        self.airway_wall = _concat(trachea, bronchi)
        self.airway_lumen = _concat(*(_shrink(t, wall) for t in (trachea, bronchi)))
        self.bronchus_ends = {1: (end_l, _unit(end_l - car), rb_l - wall), 2: (end_r, _unit(end_r - car), rb_r - wall)}

        # oesophagus between trachea and spine, drifting left to the stomach
        r_es = u(6, 8.5)
        eso = _polyline([[xm + 4, y_tr(top) + r_tr + r_es + 2, top],
                         [xm + 3, yv(z_car - 20) - rv(z_car - 20) - r_es - 3, z_car - 20],
                         [xm + 2, yv(z_dome_l) - rv(z_dome_l) - 2 * 11 - r_es - 4, z_dome_l],
                         [xm + 30, yv(z_dome_l - 40) - rv(z_dome_l - 40) - 40, z_dome_l - 40]],
                        [r_es] * 4, 10)
        self.eso = eso
        self.eso_air = _shrink(eso, r_es - u(1.5, 3)) if rng.random() < 0.4 else None

        # pulmonary veins: four short trunks from the left atrium, tree roots at their ends
        vein_roots = {}
        for side, sx in ((1, 1), (2, -1)):
            for dz, dy in ((u(10, 16), -6), (-u(8, 14), 8)):
                end = la_c + [sx * u(40, 48), dy, dz]
                vein_roots.setdefault(side, []).append((end, _unit(end - la_c), u(6, 7.5)))
        self.vein_stems = _concat(*(_polyline([la_c, end], [r, r], 6)
                                    for roots in vein_roots.values() for end, _, r in roots))
        self.vein_roots = vein_roots
        self.artery_roots = {1: (hilum_l, _unit(hilum_l - lpa[0][-1] + [0, 0, -4]), u(7, 8.5)),
                             2: (hilum_r, _unit(hilum_r - rpa[0][-1] + [0, 0, -4]), u(7, 8.5))}
        self.mediastinal_blood = _concat(aorta, branches, veins, pa_trunk, lpa, rpa, self.vein_stems)

        # what pushes the lungs away: the vessels and airways with a margin of mediastinal fat
        def grow(t, m):
            return (t[0], t[1], t[2] + m, t[3] + m)

        self.env_tubes = _concat(grow(lpa, 0.5), grow(rpa, 0.5), grow(bronchi, 0.5), self.vein_stems)
        self._build_hull(_concat(grow(aorta, 4), grow(branches, 3), grow(veins, 3), grow(pa_trunk, 3),
                                 grow(trachea, 4), grow(eso, 3)))

        # upper abdomen
        self.liver_edge = u(-5, 25)
        self.stomach = (np.array([xm + u(45, 70), self.cy - u(0, 30), z_dome_l - u(35, 55)]),
                        np.array([u(30, 45), u(28, 40), u(35, 50)]), bool(rng.random() < 0.6), u(0.6, 0.95))
        self.spleen = (np.array([xm + u(80, 100), self.cy + u(35, 60), z_dome_l - u(30, 50)]),
                       np.array([u(18, 25), u(38, 48), u(45, 55)]))

        # clavicles
        clav = []
        for sx in (1, -1):
            z0 = self.z_notch + u(3, 8)
            y0 = self.y_front(z0) - 8
            lat = [xm + sx * self.a0 * u(0.8, 0.9), self.cy - 0.2 * self.b_ant0, z0 + u(12, 25)]
            mid = [xm + sx * self.a0 * 0.45, y0 - u(4, 10), z0 + u(5, 10)]
            clav.append(_polyline([[xm + sx * 20, y0, z0], mid, lat], [u(6, 8)] * 3, 8))
        self.clavicles = _concat(*clav)


    def y_mid(self, z):
        return 0.5 * (self.y_front(z) + self.y_vb(z))

    def _build_hull(self, tubes, step: float = 2.0, n_phi: int = 240) -> None:
        """Tabulate the mediastinum as, per 1 mm of height, the convex hull of the cross-sections of its tubes
        plus the sternum and the front of the spine, in polar form around the middle of the mediastinum."""
        a, b, ra, rb = tubes
        n = np.ceil(np.linalg.norm(b - a, axis=1) / step).astype(int) + 1
        t = np.concatenate([np.linspace(0, 1, k) for k in n])
        seg = np.repeat(np.arange(len(a)), n)
        centres = a[seg] + t[:, None] * (b - a)[seg]
        radii = ra[seg] + t * (rb - ra)[seg]
        self.hull_z0, self.hull_n_phi = -30.0, n_phi
        zs = np.arange(self.hull_z0, self.extent[2] + 30, 1.0)
        phis = (np.arange(n_phi) + 0.5) * (2 * np.pi / n_phi) - np.pi
        dirs = np.stack([np.cos(phis), np.sin(phis)])
        cosd = np.cos(phis[:, None] - phis[None, :])
        inv = np.where(cosd > 0.05, 1 / np.maximum(cosd, 0.05), np.inf)
        table = np.zeros((len(zs), n_phi))
        ymid = self.y_mid(zs)
        anchors = np.stack([np.zeros_like(zs), self.y_front(zs) + 2 - ymid,
                            np.zeros_like(zs), self.y_vb(zs) - 0.6 * self.r_vb(zs) - ymid], 1)
        for k, z in enumerate(zs):
            sel = np.abs(centres[:, 2] - z) < radii
            pts = np.vstack([centres[sel, :2] - [self.x_m, ymid[k]], anchors[k].reshape(2, 2)])
            rr = np.concatenate([np.sqrt(radii[sel] ** 2 - (centres[sel, 2] - z) ** 2),
                                 [self.band_half, self.band_half]])
            support = (pts @ dirs + rr[:, None]).max(0)
            table[k] = (support[None, :] * inv).min(1)
        self.hull_table = table.astype(_F32)

    def in_mediastinum(self, x, y, z, ymid=None):
        """Inside the tabulated mediastinal hull (see ``_build_hull``)."""
        ymid = self.y_mid(z) if ymid is None else ymid
        dx, dy = x - self.x_m, y - ymid
        k = np.clip(np.rint(z - self.hull_z0).astype(np.int64), 0, len(self.hull_table) - 1)
        j = np.clip(((np.arctan2(dy, dx) + np.pi) * (self.hull_n_phi / (2 * np.pi))).astype(np.int64), 0,
                    self.hull_n_phi - 1)
        return dx * dx + dy * dy < self.hull_table[k, j] ** 2


def _shrink(tubes, by: float):
    a, b, ra, rb = tubes
    return a, b, np.maximum(ra - by, 0.3), np.maximum(rb - by, 0.3)


# ----------------------------------------------------------------------------------------------------------------
# trees


def _grow_tree(rng, start, direction, radius, points, *, r_min: float, taper: float = 0.97,
               max_len: float = 30.0):
    """A space-filling tree: each branch heads for the centroid of its territory (a set of points in the lung),
    which is split in two across its longest axis; child radii follow Murray's law with the territory size
    (r^3 proportional to the number of points). Splits are unequal and the larger child keeps more of its
    parent's direction, so long vessels run on while giving off side branches, as real ones do."""
    segs_a, segs_b, segs_ra, segs_rb = [], [], [], []
    stack = [(np.asarray(start, float), _unit(direction), float(radius), np.arange(len(points)), 0.3)]
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
        d = _unit((1 - keep) * to_c / max(dist, 1e-6) + keep * d_prev + rng.normal(0, 0.06, 3))
        length = float(np.clip(min(10 * r, 0.6 * dist, 6 + 2.2 * r), 1.5, max_len))
        e = s + d * length
        r_end = r * taper
        segs_a.append(s)
        segs_b.append(e)
        segs_ra.append(r)
        segs_rb.append(r_end)
        q = terr - c
        spread = np.abs(q).max(0)
        axis = _unit(np.eye(3)[int(np.argmax(spread))] + rng.normal(0, 0.35, 3))
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


def _lung_points(rng, anatomy: _Anatomy, per_side: int) -> dict[int, np.ndarray]:
    """Uniform random points in each lung (rejection sampling with the analytic lung rule)."""
    found = {1: [], 2: []}
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


# ----------------------------------------------------------------------------------------------------------------
# rendering


def _mix(h, occupancy, value):
    """Partial-volume blend: a fraction ``occupancy`` of each voxel is filled with ``value``."""
    return h + occupancy * (value - h)


class _Renderer:
    def __init__(self, anatomy: _Anatomy, shape, spacing) -> None:
        self.A = anatomy
        self.shape = shape
        self.spacing = spacing
        nz, ny, nx = shape
        sz, sy, sx = spacing
        self.xs = (np.arange(nx) * sx).astype(_F32)
        self.ys = (np.arange(ny) * sy).astype(_F32)
        self.zs = np.arange(nz) * sz
        dx = self.xs[None, :] - _F32(anatomy.cx)
        dy = self.ys[:, None] - _F32(anatomy.cy)
        self.rho = np.hypot(dx, dy).astype(_F32)
        theta = np.arctan2(dy, dx)
        self.theta_grid = (np.arange(_N_THETA) + 0.5) * (2 * np.pi / _N_THETA) - np.pi
        self.theta_bin = np.clip(((theta + np.pi) / (2 * np.pi) * _N_THETA).astype(np.int64), 0, _N_THETA - 1)
        self.alpha = np.abs(_angdiff(theta, np.pi / 2)).astype(_F32)  # angle from the posterior midline
        self.buf = {}

    def scatter(self, name, tubes, soft=True):
        buf = self.buf.setdefault(name, np.zeros(self.shape, np.uint8))
        _scatter_tubes(buf, self.spacing, tubes, soft=soft)

    def render(self, fields) -> tuple[np.ndarray, np.ndarray]:
        clean = np.empty(self.shape, _F32)
        labels = np.zeros(self.shape, np.uint8)
        A = self.A
        if A.table:
            xx = self.xs[None, :] - A.cx
            y_top = A.cy + A.b_post0 * 1.04 + A.table_gap + A.table_curve * xx ** 2
            yy = self.ys[:, None]
            self.table2d = ((yy > y_top) & (yy < y_top + 3)) | ((yy > y_top + 30) & (yy < y_top + 32.5))
            self.table2d &= np.abs(xx) < A.a0 * 1.15
        for k0 in range(0, self.shape[0], _SLAB):
            k1 = min(self.shape[0], k0 + _SLAB)
            clean[k0:k1], labels[k0:k1] = self._slab(k0, k1, fields)
        return clean, labels

    def _slab(self, k0, k1, fields):
        A, H = self.A, self.A.hu
        zs = self.zs[k0:k1]
        tb = self.theta_bin
        th = self.theta_grid[None, :]
        zc = zs[:, None]
        rb_t = A.body_radius(th, zc).astype(_F32)
        dfat_t, dmus_t, dcav_t = (np.broadcast_to(v, rb_t.shape).astype(_F32) for v in A.wall(th, zc))
        depth = rb_t[:, tb] - self.rho[None]
        d_fat = dfat_t[:, tb]
        d_mus = dmus_t[:, tb]
        d_cav = dcav_t[:, tb]
        hu = np.full(depth.shape, H["air"], _F32)
        labels = np.zeros(depth.shape, np.uint8)
        body = depth > 0
        hu[body] = H["skin"]
        hu[depth > A.skin] = H["fat"]
        hu[depth > d_fat] = H["muscle"]
        cav = depth > d_cav
        if A.table:
            hu[self.table2d[None] & ~body] = H["table"]
        yv = A.y_vb(zs).astype(_F32)
        rv = A.r_vb(zs).astype(_F32)
        self._ribs(hu, depth, d_mus, zs, rv)
        self._scapulae(hu, depth, d_fat, d_mus, zs)
        self._sternum(hu, zs)

        # everything inside the rib cage, as flat arrays of the cavity voxels
        zi, yi, xi = np.nonzero(cav)
        x, y, z = self.xs[xi], self.ys[yi], zs[zi]

        def sub(name):  # occupancy 0..1 of a rasterised tube set at the cavity voxels
            return self.buf[name][k0:k1][cav].astype(_F32) * _F32(1 / 255) if name in self.buf else None

        env = self.buf["env"][k0:k1][cav] > 0
        hsd = np.full(len(zi), np.inf, _F32)
        near = A.near_heart(zs)[zi]
        hsd[near] = A.heart_sd(x[near], y[near], z[near])
        ymid = A.y_mid(zs).astype(_F32)
        side = A.lung_side(x, y, z, env, yv=yv[zi], rv=rv[zi], heart=hsd, ymid=ymid[zi])
        lung = side > 0
        below = z <= A.z_diaphragm(x, y)
        coarse, fine = fields["coarse"].slab(k0, k1)[cav], fields["fine"].slab(k0, k1)[cav]
        h = H["medfat"] + 8 * coarse
        self._abdomen(h, x, y, z, below, coarse)
        # heart: myocardium shell around blood
        h[hsd < 0] = H["myocardium"]
        h[hsd < -A.myo_thickness] = H["blood"]
        # lungs: base density, posterior (dependent) denser, two scales of texture
        yf = A.y_front(zs).astype(_F32)[zi]
        grad = np.clip((y - yf) / np.maximum(yv[zi] - yf + 30, 40), 0, 1.3)
        hl = H["lung"] + A.lung_gradient * (grad - 0.5) + A.lung_tex[0] * coarse + A.lung_tex[1] * fine
        h = np.where(lung, hl, h)
        if (o := sub("eso")) is not None:
            h = _mix(h, o, H["eso"])
        h = _mix(h, sub("mblood"), H["blood"])
        h = _mix(h, sub("tblood") * ~below, H["blood"])  # pulmonary trees stop at the diaphragm
        h = _mix(h, sub("aw_wall"), H["airway_wall"])
        lumen = sub("aw_lumen")
        h = _mix(h, lumen, H["air"])
        if (o := sub("eso_air")) is not None:
            h = _mix(h, o, H["air"])
        hu[cav] = h
        side[lumen >= 0.5] = 3
        labels[cav] = side
        self._spine(hu, depth, d_fat, zs, yv, rv, labels)

        if "bone_out" in self.buf:
            occ = self.buf["bone_out"][k0:k1].astype(_F32) * _F32(1 / 255)
            hu += occ * (H["cortical"] - hu)
            occ = self.buf["bone_in"][k0:k1].astype(_F32) * _F32(1 / 255)
            hu += occ * (H["marrow"] - hu)
        return hu, labels

    def _abdomen(self, h, x, y, z, below, coarse):
        A, H = self.A, self.A.hu
        if not below.any():
            return
        idx = np.nonzero(below)[0]
        xb, yb, zb = x[idx], y[idx], z[idx]
        v = np.full(len(idx), H["abdomen"], _F32) + 25 * coarse[idx]
        liver = xb < A.x_m + A.liver_edge - 0.45 * (yb - A.cy)
        v[liver] = H["liver"] + 5 * coarse[idx][liver]
        c, ax = A.spleen
        v[(((np.stack([xb, yb, zb], 1) - c) / ax) ** 2).sum(1) < 1] = H["spleen"]
        c, ax, gas, level = A.stomach
        e = (((np.stack([xb, yb, zb], 1) - c) / ax) ** 2).sum(1)
        v[e < 1] = H["muscle"]
        inner = e < (1 - 4 / ax.min()) ** 2
        v[inner] = H["stomach"]
        if gas:
            v[inner & (zb > c[2] + level * ax[2] * 0.5)] = H["air"]
        h[idx] = v

    def _ribs(self, hu, depth, d_mus, zs, rv):
        A, H = self.A, self.A.hu
        band = (depth > d_mus - 0.5) & (depth < d_mus + A.rib_band + 0.5)
        zi, yi, xi = np.nonzero(band)
        if not len(zi):
            return
        u = depth[band] - (d_mus[band] + _F32(A.rib_band / 2))
        al = self.alpha[yi, xi]
        s = A.rib_drop * _smoothstep(0.15 * np.pi, 0.85 * np.pi, al)
        v = (A.z_rib1 - s - zs[zi]) / A.rib_pitch
        k = np.rint(v)
        dv = (v - k) * A.rib_pitch
        e = (dv / A.rib_hz) ** 2 + (u / A.rib_ht) ** 2
        ki = np.clip(k, 0, 11).astype(np.int64)
        start = np.arcsin(np.clip((rv[zi] + 6) / np.maximum(self.rho[yi, xi], 1), 0, 1))
        inside = (e < 1) & (k >= 0) & (k <= 11) & (al > start)
        bone = inside & (al < A.rib_alpha_end[ki])
        cart = inside & ~bone & (al < A.rib_alpha_cart[ki])
        core = (1 - 1.3 / min(A.rib_hz, A.rib_ht)) ** 2
        vals = hu[band]
        vals[bone] = np.where(e[bone] > core, H["cortical"], H["marrow"])
        vals[cart] = H["cartilage"]
        hu[band] = vals

    def _scapulae(self, hu, depth, d_fat, d_mus, zs):
        A, H = self.A, self.A.hu
        inz = (zs < A.scap_top) & (zs > A.scap_bot)
        if not inz.any():
            return
        ks = np.nonzero(inz)[0]
        sel = (depth[ks] > d_fat[ks]) & (depth[ks] < d_mus[ks])
        zi, yi, xi = np.nonzero(sel)
        if not len(zi):
            return
        frac = np.sqrt(np.clip((zs[ks][zi] - A.scap_bot) / (A.scap_top - A.scap_bot), 0, 1))
        mid = d_fat[ks][sel] + 0.55 * (d_mus[ks][sel] - d_fat[ks][sel])
        plate = (np.abs(depth[ks][sel] - mid) < A.scap_th / 2) & \
            (np.abs(self.alpha[yi, xi] - A.scap_alpha) < A.scap_w * frac)
        vals = hu[ks][sel]
        vals[plate] = H["scapula"]
        part = hu[ks]
        part[sel] = vals
        hu[ks] = part

    def _sternum(self, hu, zs):
        A, H = self.A, self.A.hu
        ks = np.nonzero((zs < A.z_notch) & (zs > A.z_xiph))[0]
        if not len(ks):
            return
        for k in ks:
            z = zs[k]
            th = -np.pi / 2
            y_c = A.cy - (A.body_radius(th, z) - A.wall(th, z)[1]) + A.st_th / 2 + 1
            w = A.st_w + (A.st_wm - A.st_w) * _smoothstep(A.z_notch - 55, A.z_notch - 30, z)
            ex = ((self.xs[None, :] - A.x_m) / (w / 2)) ** 4 + ((self.ys[:, None] - y_c) / (A.st_th / 2)) ** 4
            m = ex < 1
            hu[k][m] = H["cortical"]
            hu[k][ex < (1 - 1.6 / (A.st_th / 2)) ** 4] = H["marrow"]

    def _spine(self, hu, depth, d_fat, zs, yv, rv, labels):
        A, H = self.A, self.A.hu
        sy, sx = self.spacing[1], self.spacing[2]
        x0 = max(0, int((A.x_m - 75) / sx))
        x1 = min(self.shape[2], int((A.x_m + 75) / sx) + 1)
        y0 = max(0, int((yv.min() - rv.max() - 8) / sy))
        y1 = min(self.shape[1], int((yv.max() + rv.max() + 90) / sy) + 1)
        if x1 <= x0 or y1 <= y0:
            return
        box = (slice(None), slice(y0, y1), slice(x0, x1))
        h = hu[box]
        inbody = (depth[box] > (d_fat[box] + 2)) & (labels[box] == 0)  # never over lung or airway
        dx = (self.xs[x0:x1] - A.x_m)[None, None, :]
        dy = self.ys[y0:y1][None, :, None] - yv[:, None, None]
        r = rv[:, None, None]
        pitch = A.vert_pitch
        w = ((zs - A.z_vert0) % pitch)[:, None, None]
        disc = w < A.disc
        ell = (dx / (1.1 * r)) ** 2 + (dy / (0.9 * r)) ** 2
        vb = ell < 1
        h[vb & ~disc] = H["vert_cortical"]
        h[(ell < (1 - 1.6 / r) ** 2) & ~disc] = H["vert_marrow"]
        h[vb & disc] = H["disc"]
        rc = A.canal_r
        dyc = 0.9 * r + rc + 2.5
        dc = np.sqrt(dx ** 2 + (dy - dyc) ** 2)
        post_phase = ((w - 0.1 * pitch) % pitch) < 0.7 * pitch
        arch = (dc > rc) & (dc < rc + 5) & (dy > dyc - 0.4 * rc) & post_phase & inbody
        h[arch] = H["vert_cortical"]
        wsp = (w + (dy - dyc - rc) * 0.45) % pitch
        spinous = (np.abs(dx) < 3.5) & (dy > dyc + rc) & (dy < dyc + rc + 42) & (wsp > 0.15 * pitch) & \
            (wsp < 0.6 * pitch) & inbody
        h[spinous] = H["vert_cortical"]
        along = (np.abs(dx) - rc) * 0.89 + (dy - dyc + 2) * 0.45  # transverse processes point back and out
        across = -(np.abs(dx) - rc) * 0.45 + (dy - dyc + 2) * 0.89
        transverse = (along > 0) & (along < 20) & (np.abs(across) < 3.5 - along * 0.05) & \
            (w > 0.2 * pitch) & (w < 0.55 * pitch) & inbody
        h[transverse] = H["vert_cortical"]
        h[dc < rc] = H["csf"]
        hu[box] = h


# ----------------------------------------------------------------------------------------------------------------
# nodules


def _nodule_plan(rng, seed: int, n_nodules: int | None):
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


def _place_nodules(rng, anatomy: _Anatomy, plan, pool: np.ndarray, vessels):
    """Centres (world mm) for the planned nodules, checked against the analytic lung rule."""
    placed = []
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


def _blob_texture(rng, shape, amplitude: float) -> np.ndarray:
    """Smooth random texture (a few voxels across) for ground glass."""
    v = rng.standard_normal(shape).astype(_F32)
    for axis in range(3):
        for _ in range(2):
            v = 0.25 * np.roll(v, 1, axis) + 0.5 * v + 0.25 * np.roll(v, -1, axis)
    return v * _F32(amplitude / max(float(v.std()), 1e-6))


def _render_nodule(rng, clean, labels, spacing, centre, radius, typ, kind="free"):
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
        normal = _unit(rng.normal(size=3) * np.array([1.0, 1.0, 0.6]))
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
        acc = 0.0
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
        return [(_unit(rng.normal(size=3)), rng.uniform(-amp, amp * 1.3), rng.uniform(0.15, 0.4)) for _ in range(n)]

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
            off = _unit(rng.normal(size=3)) * rng.uniform(0, 0.35) * (radius - core_r)
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
            _scatter_tubes(spic, spacing, (a, b, rng.uniform(0.5, 0.9, n), np.full(n, 0.2)),
                           offset=lo * np.array([sx, sy, sz]))
            occ_s = spic.astype(_F32) / 255 * lung
            hs[...] = np.maximum(hs, hs + occ_s * (solid_hu - hs))
    ls[mask] = 4
    return box, mask, core_mm


def _render_mimics(rng, clean, labels, spacing, pool: np.ndarray, anatomy: "_Anatomy", avoid) -> list[dict]:
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
            direction = _unit(rng.normal(size=3))
            bend = _unit(np.cross(direction, rng.normal(size=3))) * rng.uniform(0, 0.2) * length
            ctrl = np.array([centre - direction * length / 2, centre + bend, centre + direction * length / 2])
            tubes = _polyline(ctrl, np.array([rng.uniform(0.4, 0.8), rng.uniform(0.8, 2.0),
                                              rng.uniform(0.4, 0.8)]), step=3.0)
            reach = length / 2 + 4
        else:  # a plate 15-40 mm across and 2-4 mm thick, nearly horizontal
            width = rng.uniform(15, 40)
            normal = _unit(np.array([0, 0, 1.0]) + rng.normal(size=3) * 0.3)
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
            _scatter_tubes(occ, spacing, tubes, offset=lo * np.array([sx, sy, sz]))
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


def _widen_protocol(rng, anatomy: "_Anatomy") -> dict:
    """Dose, kernel and habitus beyond the v1 ranges: noise 6-70 HU, soft to sharp kernels, 3-35 mm of fat."""
    anatomy.noise_sigma = float(np.clip(anatomy.noise_sigma * np.exp(rng.uniform(np.log(0.6), np.log(2.2))), 6, 70))
    anatomy.psf_mm = rng.uniform(0.4, 1.1)
    anatomy.noise_f0 = rng.uniform(0.1, 0.45)
    anatomy.fat0 = rng.uniform(3, 35)
    return {"fat_mm": round(anatomy.fat0, 1)}


# ----------------------------------------------------------------------------------------------------------------
# acquisition


def _acquire(rng, clean: np.ndarray, anatomy: _Anatomy, spacing, add_noise: bool) -> np.ndarray:
    """Slice-profile blur (z), in-plane blur and correlated noise in one FFT pass per slab; int16 HU out."""
    nz, ny, nx = clean.shape
    _, sy, sx = spacing
    fy = np.fft.fftfreq(ny, d=sy)[:, None]
    fx = np.fft.rfftfreq(nx, d=sx)[None, :]
    f = np.sqrt(fx ** 2 + fy ** 2)
    mtf = np.exp(-2 * (np.pi * anatomy.psf_mm * f) ** 2).astype(_F32)
    full_f = np.sqrt(np.fft.fftfreq(nx, d=sx)[None, :] ** 2 + fy ** 2)
    nps = lambda f: f * np.exp(-(f / anatomy.noise_f0) ** 2)  # noqa: E731  ramp x apodisation
    amp = (np.sqrt(nps(f) / nps(full_f).mean()) * anatomy.noise_sigma).astype(_F32)
    yy = (np.arange(ny) * sy - (ny - 1) * sy / 2)[:, None]
    xx = (np.arange(nx) * sx - (nx - 1) * sx / 2)[None, :]
    outside = (xx ** 2 + yy ** 2) > (min(nx * sx, ny * sy) / 2) ** 2
    out = np.empty(clean.shape, np.int16)
    wz = _F32(anatomy.psf_z)
    for k0 in range(0, nz, _SLAB):
        k1 = min(nz, k0 + _SLAB)
        prev = clean[np.maximum(np.arange(k0, k1) - 1, 0)]
        nxt = clean[np.minimum(np.arange(k0, k1) + 1, nz - 1)]
        block = clean[k0:k1] * (1 - 2 * wz) + wz * (prev + nxt)
        spec = np.fft.rfft2(block, norm="ortho") * mtf
        if add_noise:
            shape = spec.shape
            white = rng.standard_normal(shape, dtype=_F32) + 1j * rng.standard_normal(shape, dtype=_F32)
            spec += white * (amp * _F32(math.sqrt(0.5)))
        img = np.fft.irfft2(spec, s=(ny, nx), norm="ortho")
        if anatomy.fov_circle:
            img[:, outside] = -1024
        out[k0:k1] = np.clip(np.rint(img), -1024, 3071)
    return out


# ----------------------------------------------------------------------------------------------------------------
# public API


def generate_phantom(seed: int = 0, shape: tuple[int, int, int] = DEFAULT_SHAPE,
                     spacing: tuple[float, float, float] = DEFAULT_SPACING, *, n_nodules: int | None = None,
                     noise: bool = True) -> Phantom:
    """Generate one synthetic chest CT with its ground truth.

    Parameters
    ----------
    seed
        Everything (anatomy, trees, nodules, noise) follows from it: the same seed, shape and spacing give the
        identical volume. Seed ``DEMO_SEED`` (0) has a fixed plan of four clearly visible nodules.
    shape, spacing
        ``(z, y, x)`` grid and voxel size (mm). Anatomy is defined in mm, so a coarser grid (for fast training)
        shows the same kind of chest; the default is a routine 2.5 mm / 0.9 mm chest CT.
    n_nodules
        Force the number of nodules (default: random 0-6, or the demo plan for seed 0).
    noise
        Add CT noise (switch off to get the blurred noiseless image).

    Returns
    -------
    Phantom
        ``hu`` int16 and ``labels`` uint8 ``(z, y, x)``, ``spacing``, ``origin_lps``, ``nodules`` (LPS).
    """
    shape = tuple(int(v) for v in shape)
    spacing = tuple(float(v) for v in spacing)
    # spawn(8)'s first six children are v1's spawn(6): the anatomy of every seed is that of v1
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([PHANTOM_VERSION, int(seed)]).spawn(8)]
    rng_anatomy, rng_tree, rng_plan, rng_nodule, rng_noise, rng_field, rng_protocol, rng_mimic = streams
    anatomy = _Anatomy(rng_anatomy, shape, spacing)
    demo = seed == DEMO_SEED and n_nodules is None
    protocol = {} if demo else _widen_protocol(rng_protocol, anatomy)

    # trees: pulmonary arteries (one root per hilum), veins (two roots per side), bronchi (from the main bronchi)
    n_art, n_vein, n_aw = 2200, 1400, 160
    points = _lung_points(rng_tree, anatomy, n_art + n_vein)
    arteries, veins, airways = [], [], []
    for side in (1, 2):
        pts = points[side]
        start, direction, radius = anatomy.artery_roots[side]
        arteries.append(_grow_tree(rng_tree, start, direction, radius, pts[:n_art], r_min=0.45))
        vpts = pts[n_art:]
        order = np.argsort(vpts[:, 2])[::-1]
        for (start, direction, radius), part in zip(anatomy.vein_roots[side], np.array_split(order, 2)):
            veins.append(_grow_tree(rng_tree, start, direction, radius, vpts[part], r_min=0.45))
        start, direction, radius = anatomy.bronchus_ends[side]
        airways.append(_grow_tree(rng_tree, start, direction, radius, pts[:n_aw], r_min=0.9, max_len=20))
    vessels = _concat(*arteries, *veins)
    aw_lumen = _concat(*airways)
    aw_wall = (aw_lumen[0], aw_lumen[1], aw_lumen[2] * 1.22 + 0.45, aw_lumen[3] * 1.22 + 0.45)

    renderer = _Renderer(anatomy, shape, spacing)
    renderer.scatter("env", anatomy.env_tubes, soft=False)
    renderer.scatter("mblood", anatomy.mediastinal_blood)
    renderer.scatter("tblood", vessels)
    renderer.scatter("aw_wall", _concat(anatomy.airway_wall, aw_wall))
    renderer.scatter("aw_lumen", _concat(anatomy.airway_lumen, aw_lumen))
    renderer.scatter("eso", anatomy.eso)
    if anatomy.eso_air is not None:
        renderer.scatter("eso_air", anatomy.eso_air)
    renderer.scatter("bone_out", anatomy.clavicles)
    renderer.scatter("bone_in", _shrink(anatomy.clavicles, 1.8))
    fields = {"coarse": _SmoothField(rng_field, shape, spacing, 24.0),
              "fine": _SmoothField(rng_field, shape, spacing, 5.0)}
    clean, labels = renderer.render(fields)
    renderer.buf.clear()

    plan = _nodule_plan(rng_plan, int(seed), n_nodules)
    pool = np.concatenate([points[1], points[2]])
    placed = _place_nodules(rng_nodule, anatomy, plan, pool, vessels)
    sz, sy, sx = spacing
    origin = np.array([-(shape[2] - 1) * sx / 2, -(shape[1] - 1) * sy / 2, -(shape[0] - 1) * sz - 40.0])
    origin += np.round(rng_plan.uniform(-10, 10, 3), 1)
    nodules = []
    for centre, radius, typ, kind in placed:
        drawn = _render_nodule(rng_nodule, clean, labels, spacing, centre, radius, typ, kind)
        if drawn is None or not drawn[1].any():
            continue
        box, mask, core_mm = drawn
        idx = np.argwhere(mask)
        offset = np.array([box[0].start, box[1].start, box[2].start])
        mean = idx.mean(0)
        nearest = idx[np.argmin(((idx - mean) ** 2).sum(1))]
        zyx = mean if mask[tuple(np.rint(mean).astype(int))] else nearest
        zyx = zyx + offset
        lps = origin + np.array([zyx[2] * sx, zyx[1] * sy, zyx[0] * sz])
        nodules.append(Nodule(tuple(float(v) for v in lps), 2 * radius, typ, kind == "juxtapleural",
                              kind == "vessel", float(mask.sum() * sx * sy * sz), kind == "perifissural", core_mm))
    mimics = [] if demo else _render_mimics(rng_mimic, clean, labels, spacing, pool, anatomy,
                                            [(c, r) for c, r, *_ in placed])

    hu = _acquire(rng_noise, clean, anatomy, spacing, noise)
    info = {"contrast": anatomy.contrast, "noise_sigma_hu": round(anatomy.noise_sigma, 1),
            "noise_f0_per_mm": round(anatomy.noise_f0, 3), "psf_mm": round(anatomy.psf_mm, 2),
            "inspiration": round(anatomy.inspiration, 3), "lung_hu": round(anatomy.hu["lung"], 1),
            "fov_circle": anatomy.fov_circle, "table": anatomy.table,
            "vessel_segments": int(len(vessels[0])), "airway_segments": int(len(aw_lumen[0])),
            "mimics": mimics, **protocol}
    return Phantom(hu=hu, labels=labels, spacing=spacing, origin_lps=tuple(float(v) for v in origin),
                   nodules=nodules, seed=int(seed), info=info)


def save_ground_truth(phantom: Phantom, out_dir: str | Path) -> Path:
    """Write ``labels.nii.gz`` (RAS affine, same grid), ``labels.json`` and ``nodules.json`` into ``out_dir``.

    Written with nibabel; where it is not installed, with SimpleITK (which converts its LPS geometry to the
    same NIfTI RAS affine).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "labels.nii.gz"
    try:
        import nibabel as nib
    except ImportError:
        nib = None
    if nib is not None:
        ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ phantom.affine
        image = nib.Nifti1Image(np.ascontiguousarray(phantom.labels.transpose(2, 1, 0)), ras)
        image.set_qform(ras, code=1)
        image.set_sform(ras, code=1)
        image.header.set_xyzt_units("mm")
        nib.save(image, path)
    else:
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(phantom.labels)  # (z, y, x) array -> ITK (x, y, z) image
        image.SetSpacing(tuple(float(v) for v in phantom.spacing[::-1]))
        image.SetOrigin(tuple(float(v) for v in phantom.origin_lps))
        sitk.WriteImage(image, str(path), True)
    (out_dir / "labels.json").write_text(json.dumps({
        "file": "labels.nii.gz",
        "grid": "same as the DICOM series: NIfTI axes i=column, j=row, k=slice; affine in RAS mm "
                "(LPS with x and y negated)",
        "labels": [{"value": v, "name": LABELS[v], "description": LABEL_DESCRIPTIONS[v]} for v in LABELS],
    }, indent=2))
    (out_dir / "nodules.json").write_text(json.dumps(phantom.nodules_json(), indent=2))
    return out_dir
