"""The sampled anatomy of one phantom: body, wall, bones, mediastinum and lungs as functions of world mm.

``Anatomy(rng, shape, spacing)`` draws every anatomical parameter from its stream (in a fixed order: the anatomy of
each seed is that of phantom v1) and keeps two kinds of description that the renderer and the lesions query:

* analytic surfaces, functions of world ``(x, y, z)`` mm: the body outline and wall layers by angle and height, the
  spine, the diaphragm domes, the lung apices, the heart (signed distance) and a tabulated mediastinal hull;
  ``lung_side`` / ``point_side`` is *the* lung rule (left 1, right 2, else 0), shared by the rasteriser, the tree
  growth and the nodule placement;
* tube lists (see ``geometry``) for what is drawn as tubes: great vessels, trachea and main bronchi,
  oesophagus, clavicles, and the roots the pulmonary trees grow from.

It also draws the materials (HU per tissue, contrast) and the v1 acquisition parameters (noise, kernel, slice
profile, reconstruction circle, table): they share the anatomy stream, so they live here.
"""
from __future__ import annotations

import math

import numpy as np

from inference.training.phantom.geometry import angdiff, concat, polyline, shrink, smoothstep, tubes_min_sd, unit

_F32 = np.float32


class Anatomy:
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
        s01 = smoothstep(-0.1, 0.7, t)
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
        post = np.abs(angdiff(th, np.pi / 2))
        muscle = (self.muscle0
                  + self.pect * upper * (np.exp(-(angdiff(th, -np.pi / 2 + 0.75) / 0.4) ** 2)
                                         + np.exp(-(angdiff(th, -np.pi / 2 - 0.75) / 0.4) ** 2))
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
            env = tubes_min_sd(p[idx], self.env_tubes) < 0
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
        ax1 = unit([0.7 + u(-0.1, 0.1), -0.45 + u(-0.1, 0.1), -0.5 + u(-0.1, 0.1)])
        ax2 = unit(np.cross(ax1, [0, 0, 1]))
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
        aorta = polyline([
            root, at(z_arch - 22, -u(10, 15), front, u(28, 34)), [xm - 2, ymid(z_arch) - 4, z_arch + 8],
            [xm + 16, yv(z_arch - 6) - rv(z_arch - 6) - 14, z_arch - 6],
            [xm + 0.7 * rv(z_car - 40) + 6, yv(z_car - 40) - 0.6 * rv(z_car - 40) - 4, z_car - 40],
            [xm + 9, yv(z_dome_l - 40) - rv(z_dome_l - 40) - 6, z_dome_l - 40],
            [xm + 5, yv(bottom) - rv(bottom) - 8, bottom]], np.array([15, 15, 14, 13, 12, 11.5, 11]) * s, 10)
        arch_top = np.array([xm - 2, ymid(z_arch) - 4, z_arch + 8])
        branches = concat(
            polyline([arch_top + [-6, -4, 4], arch_top + [-14, -10, 34], [xm - 28, arch_top[1] - 8, top]],
                      [6.5, 6.5, 6], 10),
            polyline([arch_top + [4, 2, 6], [xm + 12, arch_top[1] + 2, top]], [4.5, 4.5], 12),
            polyline([arch_top + [14, 8, 2], arch_top + [28, 10, 36], [xm + 55, arch_top[1] + 6, top]],
                      [5.5, 5.5, 5.5], 10))
        svc_top = [xm - 30, yf(z_arch + 25) + 28, z_arch + 25]
        veins = concat(
            polyline([[xm - 36, centre[1] - 4, zh + 30], [xm - 38, yf(z_car + 10) + 38, z_car + 10], svc_top],
                      [9.5, 9.5, 9], 10),
            polyline([svc_top, [xm - 40, yf(top) + 30, top]], [7, 7], 12),
            polyline([svc_top, [xm, yf(z_arch + 35) + 20, z_arch + 35], [xm + 45, yf(top) + 26, top]],
                      [6, 6, 6], 10))
        bif = np.array([xm + 12, yf(z_car - 8) + 36, z_car - 8])
        pa_trunk = polyline([[xm + 18, yf(zh + 40) + 18, zh + 40], bif], [13, 13], 8)
        hilum_l = np.array([xm + u(42, 52), ymid(z_car) + 12, z_car - 12])
        hilum_r = np.array([xm - u(40, 48), ymid(z_car) + 2, z_car - 20])
        lpa = polyline([bif, [xm + 35, ymid(z_car) + 6, z_car - 2], hilum_l], [10, 9.5, 9], 6)
        rpa = polyline([bif, [xm - 20, ymid(z_car), z_car - 14], hilum_r], [10, 9.5, 9], 6)

        # trachea and main bronchi
        r_tr = u(8.5, 11.5)
        self.r_trachea = r_tr
        y_tr = lambda z: yv(z) - rv(z) - u(12, 16) - r_tr  # noqa: E731
        car = np.array([xm - 3, y_tr(z_car), z_car])
        trachea_c = [[xm, y_tr(top), top], [xm, y_tr(z_apex), z_apex], [xm - 2, y_tr(z_car + 40), z_car + 40],
                     list(car)]
        angle_r, angle_l = math.radians(u(20, 35)), math.radians(u(40, 55))
        end_r = car + unit([-math.sin(angle_r), 0.15, -math.cos(angle_r)]) * u(20, 28)
        end_l = car + unit([math.sin(angle_l), 0.2, -math.cos(angle_l)]) * u(40, 52)
        rb_r, rb_l = u(7, 8.5), u(6, 7.5)
        trachea = polyline(trachea_c, [r_tr] * 4, 12)
        bronchi = concat(polyline([car, end_r], [rb_r, rb_r], 6), polyline([car, end_l], [rb_l, rb_l], 6))
        wall = 1.6
        self.airway_wall = concat(trachea, bronchi)
        self.airway_lumen = concat(*(shrink(t, wall) for t in (trachea, bronchi)))
        self.bronchus_ends = {1: (end_l, unit(end_l - car), rb_l - wall), 2: (end_r, unit(end_r - car), rb_r - wall)}

        # oesophagus between trachea and spine, drifting left to the stomach
        r_es = u(6, 8.5)
        eso = polyline([[xm + 4, y_tr(top) + r_tr + r_es + 2, top],
                         [xm + 3, yv(z_car - 20) - rv(z_car - 20) - r_es - 3, z_car - 20],
                         [xm + 2, yv(z_dome_l) - rv(z_dome_l) - 2 * 11 - r_es - 4, z_dome_l],
                         [xm + 30, yv(z_dome_l - 40) - rv(z_dome_l - 40) - 40, z_dome_l - 40]],
                        [r_es] * 4, 10)
        self.eso = eso
        self.eso_air = shrink(eso, r_es - u(1.5, 3)) if rng.random() < 0.4 else None

        # pulmonary veins: four short trunks from the left atrium, tree roots at their ends
        vein_roots: dict[int, list[tuple]] = {}
        for side, sx in ((1, 1), (2, -1)):
            for dz, dy in ((u(10, 16), -6), (-u(8, 14), 8)):
                end = la_c + [sx * u(40, 48), dy, dz]
                vein_roots.setdefault(side, []).append((end, unit(end - la_c), u(6, 7.5)))
        self.vein_stems = concat(*(polyline([la_c, end], [r, r], 6)
                                    for roots in vein_roots.values() for end, _, r in roots))
        self.vein_roots = vein_roots
        self.artery_roots = {1: (hilum_l, unit(hilum_l - lpa[0][-1] + [0, 0, -4]), u(7, 8.5)),
                             2: (hilum_r, unit(hilum_r - rpa[0][-1] + [0, 0, -4]), u(7, 8.5))}
        self.mediastinal_blood = concat(aorta, branches, veins, pa_trunk, lpa, rpa, self.vein_stems)

        # what pushes the lungs away: the vessels and airways with a margin of mediastinal fat
        def grow(t, m):
            return (t[0], t[1], t[2] + m, t[3] + m)

        self.env_tubes = concat(grow(lpa, 0.5), grow(rpa, 0.5), grow(bronchi, 0.5), self.vein_stems)
        self._build_hull(concat(grow(aorta, 4), grow(branches, 3), grow(veins, 3), grow(pa_trunk, 3),
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
            clav.append(polyline([[xm + sx * 20, y0, z0], mid, lat], [u(6, 8)] * 3, 8))
        self.clavicles = concat(*clav)

    def y_mid(self, z):
        """Middle (y) of the mediastinum at height ``z``: halfway from the sternum to the spine."""
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
