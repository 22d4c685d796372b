"""The acquisition: what the scanner and reconstruction do to the noiseless image, and the protocol that sets it.

``acquire`` applies the slice profile (blur along z), the in-plane blur of the kernel (a Gaussian MTF) and
correlated noise with a CT-like noise power spectrum (ramp x apodisation), optionally masks outside the
reconstruction circle, and rounds to int16 HU. The v1 parameters are drawn with the anatomy; ``widen_protocol``
(a separate stream, not used for the demo seed) widens dose, kernel and habitus for training.
"""
from __future__ import annotations

import math

import numpy as np

from inference.training.phantom.anatomy import Anatomy

# Slices per FFT block. Part of the noise stream (the noise of each block is drawn in turn, real then imaginary
# parts), so changing it changes every noisy phantom.
_SLAB = 8
_F32 = np.float32


def widen_protocol(rng, anatomy: Anatomy) -> dict:
    """Dose, kernel and habitus beyond the v1 ranges: noise 6-70 HU, soft to sharp kernels, 3-35 mm of fat.

    Overwrites those parameters of ``anatomy`` (so it runs before rendering: the fat is drawn into the body wall);
    returns what ``info`` reports of them.
    """
    anatomy.noise_sigma = float(np.clip(anatomy.noise_sigma * np.exp(rng.uniform(np.log(0.6), np.log(2.2))), 6, 70))
    anatomy.psf_mm = rng.uniform(0.4, 1.1)
    anatomy.noise_f0 = rng.uniform(0.1, 0.45)
    anatomy.fat0 = rng.uniform(3, 35)
    return {"fat_mm": round(anatomy.fat0, 1)}


def acquire(rng, clean: np.ndarray, anatomy: Anatomy, spacing, add_noise: bool) -> np.ndarray:
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

