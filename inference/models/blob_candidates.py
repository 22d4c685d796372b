"""Blob candidates: small round dense spots inside the lungs, found by image filtering rather than by the network.

The segmentation network sees the lungs on a 1.25 x 1.25 x 2.5 mm grid and was trained on 4-30 mm nodules: it
proposes almost nothing under ~8 mm, nor many ground-glass nodules (issue 11: sensitivity 0 in the 3-6 and 6-10 mm
bands). A classical CAD front end does not have that blind spot: a nodule is a bright blob, a vessel a bright tube.
This module finds blobs at a few scales with a difference of Gaussians (an approximation of the scale-normalised
Laplacian) inside the network's lung mask and keeps those whose Hessian says "round" (three clearly negative
eigenvalues; a vessel has one near zero: Li, Sone & Doi, Med Phys 2003, the "dot" filter). It is tuned for recall:
the second stage (:mod:`inference.models.nodule_classifier`) judges every candidate on the study's own voxels.

Arrays here are on the network's ``(x, y, z)`` grid (the spatial order of MONAI's images); ``spacing_mm`` is that
grid's voxel size. Boxes follow MONAI's convention (edges half a voxel outside the outermost voxel centres).
"""
from __future__ import annotations

import numpy as np

#: Changes whenever the candidates this module gives change (the classifier's training caches them by it).
REVISION = 3
#: Scales (Gaussian sigma, mm) searched: blobs of about 4 to 28 mm across (diameter ~ 3.5 sigma); larger nodules
#: are the network's strength. A geometric series with the ratio of the differences of Gaussians, so each scale's
#: outer Gaussian is the next one's inner.
SIGMAS_MM = tuple(1.25 * 1.6 ** k for k in range(5))
#: Ratio of the outer to the inner Gaussian of each difference of Gaussians.
DOG_RATIO = 1.6
#: Scales from this sigma (mm) are searched on a grid with half the in-plane resolution (2.5 mm isotropic on the
#: built-in network's grid): a quarter of the voxels, for blobs of 11 mm and more.
COARSE_FROM_MM = 3.0
#: Weakest difference of Gaussians kept, in units of the image (0..1 over -1000..400 HU): a 3 mm ground-glass
#: nodule of -650 HU in lung of -850 HU gives about 0.02 at its scale.
MIN_RESPONSE = 0.012
#: A blob's smallest Hessian eigenvalue magnitude over its largest: a sphere gives 1, a cylinder 0.
MIN_ROUNDNESS = 0.25
#: Against the chest wall a small nodule is a half sphere: along the wall's normal its Hessian is weak (the wall
#: goes on), so it fails :data:`MIN_ROUNDNESS` (0.08-0.18 on the calibration phantoms' 3-5 mm juxtapleural nodules,
#: which no candidate found). Within :data:`WALL_MM` of the lung region's edge, a blob of the fine scales is kept
#: when it is round across the other two directions (second over first eigenvalue >= this).
WALL_ROUNDNESS = 0.5
WALL_MM = 4.0
#: At most this many candidates per scan, strongest first (each costs the second stage a patch).
MAX_CANDIDATES = 100
#: Diameter of a blob found at Gaussian scale sigma: the scale-normalised Laplacian of a ball of radius r peaks at
#: sigma = r / sqrt(3).
DIAMETER_PER_SIGMA = 2 * np.sqrt(3.0)


def _smooth(image: np.ndarray, sigma_voxels) -> np.ndarray:
    import SimpleITK as sitk

    from inference.sitk_arrays import array_view

    # a view, not a copy: the copies cost 0.66 s of 4.6 s on LIDC-IDRI-0001 (1 thread)
    return array_view(sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(image),
                                                      [float(s) for s in sigma_voxels[::-1]]))


def _local_maxima(image: np.ndarray, where: np.ndarray) -> np.ndarray:
    """The points of ``where`` (a mask) at which ``image`` is at least each of its 26 neighbours (a 3x3x3
    maximum), as ``(n, 3)`` indices. Checked at those points only: a dilation of the whole image cost seconds.

    Neighbours beyond the edge do not count. Their index is clipped to the grid, which turns each into the point
    itself or another of its neighbours, compared anyway: the same answer as padding with -inf, without a padded
    copy of the image (0.37 s on LIDC-IDRI-0001). A point leaves the comparisons at its first larger neighbour."""
    points = np.argwhere(where)
    flat = np.ravel(image)
    shape = image.shape
    strides = (shape[1] * shape[2], shape[2], 1)
    # per axis, for the offsets -1, 0, +1: the clipped coordinate times the axis' stride in the flat image
    steps = [np.clip(points[:, a] + np.array([-1, 0, 1])[:, None], 0, shape[a] - 1) * strides[a] for a in range(3)]
    alive = np.arange(len(points))
    value = flat[steps[0][1] + steps[1][1] + steps[2][1]]
    for dz, dy, dx in np.ndindex(3, 3, 3):
        if (dz, dy, dx) != (1, 1, 1) and len(alive):
            neighbour = flat[steps[0][dz, alive] + steps[1][dy, alive] + steps[2][dx, alive]]
            alive = alive[value[alive] >= neighbour]
    return points[alive]


def lung_region(lung: np.ndarray, spacing_mm, closing_mm: float = 5.0) -> np.ndarray:
    """The lung mask with what lies in or against the lungs: the network calls a mass or a nodule on the pleura
    "not lung", so its mask has holes (filled) and notches at the wall (closed, ``closing_mm`` radius, on a grid
    of half the in-plane resolution: a closing at full resolution cost 1.5 s on LIDC-IDRI-0001)."""
    from inference.binary_morphology import ball_close, fill_holes

    step = np.array([2, 2, 1])
    half = _half_inplane(lung.astype(np.float32)) > 0
    closed = ball_close(half, [max(1, int(round(closing_mm / s))) for s in np.asarray(spacing_mm, float) * step])
    region = lung.copy()
    up = closed.repeat(2, axis=0).repeat(2, axis=1)
    region[:up.shape[0], :up.shape[1]] |= up
    return fill_holes(region)


def _hessian_at(smoothed: np.ndarray, points: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """``(n, 3, 3)`` Hessians (per mm^2) of ``smoothed`` at integer ``points`` by central differences."""
    shape = np.array(smoothed.shape)
    p = np.clip(points, 1, shape - 2)

    def at(offset):
        q = p + offset
        return smoothed[q[:, 0], q[:, 1], q[:, 2]]

    centre = at(np.zeros(3, int))
    h = np.zeros((len(p), 3, 3))
    eye = np.eye(3, dtype=int)
    for i in range(3):
        h[:, i, i] = (at(eye[i]) - 2 * centre + at(-eye[i])) / spacing[i] ** 2
        for j in range(i + 1, 3):
            d = (at(eye[i] + eye[j]) - at(eye[i] - eye[j]) - at(-eye[i] + eye[j]) + at(-eye[i] - eye[j]))
            h[:, i, j] = h[:, j, i] = d / (4 * spacing[i] * spacing[j])
    return h


def _half_inplane(volume: np.ndarray) -> np.ndarray:
    """``volume`` (x, y, z) averaged over 2 x 2 in-plane blocks (an odd last row or column dropped)."""
    nx, ny = volume.shape[0] // 2 * 2, volume.shape[1] // 2 * 2
    v = volume[:nx, :ny].astype(np.float32)
    return (v[0::2, 0::2] + v[1::2, 0::2] + v[0::2, 1::2] + v[1::2, 1::2]) / 4


def _on_edge(region: np.ndarray, points: np.ndarray, spacing: np.ndarray, reach_mm: float) -> np.ndarray:
    """Whether each point has a voxel outside ``region`` within ``reach_mm`` along one of the 26 directions."""
    directions = np.array([d for d in np.ndindex(3, 3, 3) if d != (1, 1, 1)], float) - 1
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    shape = np.array(region.shape)
    edge = np.zeros(len(points), bool)
    for d in directions:
        probe = np.clip(np.rint(points + d * reach_mm / spacing).astype(int), 0, shape - 1)
        edge |= ~region[probe[:, 0], probe[:, 1], probe[:, 2]]
    return edge


def _scale_search(image: np.ndarray, lung: np.ndarray, spacing: np.ndarray, sigmas, min_response: float,
                  min_roundness: float, wall: bool = False) -> list[tuple[np.ndarray, float, float]]:
    """``(point, sigma, strength)`` of every round local maximum of each scale's difference of Gaussians (``wall``:
    also the half-round ones on the lung's edge, :data:`WALL_ROUNDNESS`); none on a grid under 4 voxels along an
    axis (the recursive Gaussian needs 4)."""
    found: list[tuple[np.ndarray, float, float]] = []
    if min(image.shape) < 4:
        return found
    smoothed = {}

    def smooth(sigma):  # consecutive scales share a Gaussian (the series' ratio is DOG_RATIO)
        key = round(sigma, 6)
        if key not in smoothed:
            smoothed[key] = _smooth(image, sigma / spacing)
        return smoothed[key]

    for sigma in sigmas:
        inner = smooth(sigma)
        dog = inner - smooth(DOG_RATIO * sigma)
        smoothed.pop(round(sigma, 6))
        points = _local_maxima(dog, (dog > min_response) & lung)
        if len(points):
            eigen = np.linalg.eigvalsh(_hessian_at(inner, points, spacing))  # ascending: most negative first
            largest = np.maximum(np.abs(eigen[:, 0]), 1e-12)
            round_ = (eigen[:, 2] < 0) & (np.abs(eigen[:, 2]) >= min_roundness * largest)
            roundness = np.where(round_, np.abs(eigen[:, 2]) / largest, 0.0)
            if wall:
                half = ~round_ & (eigen[:, 1] < 0) & (np.abs(eigen[:, 1]) >= WALL_ROUNDNESS * largest)
                half[half] = _on_edge(lung, points[half], spacing, WALL_MM)
                roundness[half] = np.abs(eigen[half, 1]) / largest[half]
                round_ |= half
            strength = dog[tuple(points[round_].T)] * roundness[round_]
            found += [(p, sigma, float(v)) for p, v in zip(points[round_], strength)]
    return found


def blob_candidates(image: np.ndarray, lung: np.ndarray, spacing_mm, *, sigmas_mm=SIGMAS_MM,
                    min_response: float = MIN_RESPONSE, min_roundness: float = MIN_ROUNDNESS,
                    max_candidates: int = MAX_CANDIDATES) -> tuple[np.ndarray, np.ndarray]:
    """``(boxes (n, 6) x0 y0 z0 x1 y1 z1, strengths (n,))`` of round bright blobs centred in ``lung``, strongest
    first (strength: the difference of Gaussians times the roundness).

    ``image`` is the network's input (intensity 0..1), ``lung`` a boolean mask on the same grid (what lies in or
    against it counts too: :func:`lung_region`). Candidates at different scales closer than the larger one's
    radius are one candidate (the strongest wins).
    """
    spacing = np.asarray(spacing_mm, float)
    empty = np.zeros((0, 6)), np.zeros(0)
    if not lung.any() or min(lung.shape) < 4:  # a study of a few slices: too thin for the filters (they need 4)
        return empty
    # work on the lungs' bounding box plus each search's reach (two outer sigmas), not the field of view
    lung_box = [np.flatnonzero(lung.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]

    def around(largest_sigma: float) -> tuple[np.ndarray, tuple[slice, ...]]:
        reach = np.ceil(2 * DOG_RATIO * largest_sigma / spacing).astype(int)
        lo = np.maximum([n[0] for n in lung_box] - reach, 0)
        hi = np.minimum([n[-1] + 1 for n in lung_box] + reach, lung.shape)
        return lo, tuple(slice(a, b) for a, b in zip(lo, hi))

    found = []
    fine = [sigma for sigma in sigmas_mm if sigma < COARSE_FROM_MM]
    coarse = [sigma for sigma in sigmas_mm if sigma >= COARSE_FROM_MM]
    region = None
    for sigmas, step in ((fine, np.array([1, 1, 1])), (coarse, np.array([2, 2, 1]))):
        if not sigmas:
            continue
        lo, box = around(max(sigmas))
        if region is None:  # the lung region once, on the larger box
            _, region_box = around(max(sigmas_mm))
            region = np.zeros(lung.shape, bool)
            region[region_box] = lung_region(lung[region_box], spacing)
        crop, lung_crop = np.ascontiguousarray(image[box], np.float32), region[box]
        if step.max() > 1:
            crop, lung_crop = _half_inplane(crop), _half_inplane(lung_crop.astype(np.float32)) > 0.5
        found += [(lo + point * step + (step - 1) / 2, sigma, strength) for point, sigma, strength
                  in _scale_search(crop, lung_crop, spacing * step, sigmas, min_response, min_roundness,
                                   wall=step.max() == 1)]
    if not found:
        return empty
    # strongest first: the difference of Gaussians times the roundness (ranking by the response alone put vessel
    # junctions and large structures ahead of small nodules: 22 instead of 11 of 28 calibration nodules in the
    # top 100 of their scan)
    found.sort(key=lambda f: -f[2])
    kept: list[tuple[np.ndarray, float, float]] = []
    kept_mm, kept_radius = np.zeros((0, 3)), np.zeros(0)
    for point, sigma, response in found:
        mm, radius = np.asarray(point) * spacing, DIAMETER_PER_SIGMA * sigma / 2
        if np.any(np.linalg.norm(kept_mm - mm, axis=1) < np.maximum(kept_radius, radius)):
            continue
        kept.append((point, sigma, response))
        kept_mm, kept_radius = np.vstack([kept_mm, mm]), np.append(kept_radius, radius)
        if len(kept) >= max_candidates:
            break
    centres = np.array([k[0] for k in kept], float)
    half = np.array([[DIAMETER_PER_SIGMA * k[1] / 2] for k in kept]) / spacing
    boxes = np.concatenate([centres - np.maximum(half, 0.5), centres + np.maximum(half, 0.5)], axis=1)
    return boxes, np.array([k[2] for k in kept])
