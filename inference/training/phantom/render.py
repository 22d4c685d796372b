"""Rendering: the anatomy and the trees onto the voxel grid as a noiseless HU image and its label map.

Tube lists (vessels, airways, oesophagus, clavicles) are first rasterised into uint8 occupancy buffers (partial
volume); then the grid is filled slab by slab from the anatomy's analytic surfaces - body wall, ribs, scapulae,
sternum, spine, mediastinum, heart, lungs (with a gravity gradient and two scales of texture), upper abdomen - and
the buffers are blended on top. Lesions and the acquisition come afterwards (``nodules``, ``acquisition``).
"""
from __future__ import annotations

import math

import numpy as np

from inference.training.phantom.anatomy import Anatomy
from inference.training.phantom.geometry import angdiff, concat, scatter_tubes, shrink, smoothstep
from inference.training.phantom.trees import Trees

_SLAB = 8  # slices per rendering block: keeps temporaries small enough to be recycled by the allocator
_N_THETA = 1440  # angular bins of the body outline and wall depths, evaluated once per slice
_F32 = np.float32


def render_anatomy(rng, anatomy: Anatomy, trees: Trees, shape, spacing) -> tuple[np.ndarray, np.ndarray]:
    """The noiseless image and label map of the anatomy with its trees, before lesions and acquisition.

    Parameters
    ----------
    rng
        The texture stream: it draws the coarse (24 mm) and then the fine (5 mm) random field.
    anatomy, trees
        What to draw.
    shape, spacing
        ``(z, y, x)`` grid and voxel size (mm).

    Returns
    -------
    clean, labels
        float32 HU and uint8 labels (background, lungs and airway; see ``LABELS``), ``(z, y, x)``.
    """
    renderer = Renderer(anatomy, shape, spacing)
    renderer.scatter("env", anatomy.env_tubes, soft=False)
    renderer.scatter("mblood", anatomy.mediastinal_blood)
    renderer.scatter("tblood", trees.vessels)
    renderer.scatter("aw_wall", concat(anatomy.airway_wall, trees.airway_wall))
    renderer.scatter("aw_lumen", concat(anatomy.airway_lumen, trees.airway_lumen))
    renderer.scatter("eso", anatomy.eso)
    if anatomy.eso_air is not None:
        renderer.scatter("eso_air", anatomy.eso_air)
    renderer.scatter("bone_out", anatomy.clavicles)
    renderer.scatter("bone_in", shrink(anatomy.clavicles, 1.8))
    fields = {"coarse": SmoothField(rng, shape, spacing, 24.0), "fine": SmoothField(rng, shape, spacing, 5.0)}
    return renderer.render(fields)


def _mix(h, occupancy, value):
    """Partial-volume blend: a fraction ``occupancy`` of each voxel is filled with ``value``."""
    return h + occupancy * (value - h)


class Renderer:
    """Fills the grid slab by slab from the anatomy; tube sets are rasterised first into named occupancy buffers
    (``scatter``) that ``render`` blends in: ``env`` (what pushes the lungs away, hard-edged), ``mblood``,
    ``tblood``, ``aw_wall``, ``aw_lumen``, ``eso``, ``eso_air``, ``bone_out`` and ``bone_in``."""

    def __init__(self, anatomy: Anatomy, shape, spacing) -> None:
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
        self.alpha = np.abs(angdiff(theta, np.pi / 2)).astype(_F32)  # angle from the posterior midline
        self.buf: dict[str, np.ndarray] = {}

    def scatter(self, name, tubes, soft=True):
        """Rasterise ``tubes`` into the buffer ``name`` (max occupancy with what is there already)."""
        buf = self.buf.setdefault(name, np.zeros(self.shape, np.uint8))
        scatter_tubes(buf, self.spacing, tubes, soft=soft)

    def render(self, fields) -> tuple[np.ndarray, np.ndarray]:
        """float32 HU and uint8 labels of the whole grid; ``fields``: the ``coarse`` and ``fine`` textures."""
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
        s = A.rib_drop * smoothstep(0.15 * np.pi, 0.85 * np.pi, al)
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
            w = A.st_w + (A.st_wm - A.st_w) * smoothstep(A.z_notch - 55, A.z_notch - 30, z)
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


class SmoothField:
    """A smooth random field (unit standard deviation, correlation length ~ ``cell_mm``) sampled per slab."""

    def __init__(self, rng, shape, spacing, cell_mm: float) -> None:
        coarse = [int(math.ceil((n - 1) * s / cell_mm)) + 3 for n, s in zip(shape, spacing)]
        v = rng.standard_normal(coarse)
        for axis in range(3):  # [1 2 1] smoothing takes the grid look out of linear interpolation
            v = 0.25 * np.roll(v, 1, axis) + 0.5 * v + 0.25 * np.roll(v, -1, axis)
        self.values = (v / v.std()).astype(_F32)
        self.pos = [np.arange(n) * s / cell_mm + 1.0 for n, s in zip(shape, spacing)]

    def slab(self, k0: int, k1: int) -> np.ndarray:
        """The field on slices ``k0:k1`` of the grid (trilinear), float32 ``(k1 - k0, ny, nx)``."""
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
