"""Editing tools as pure functions: they read a :class:`Segmentation` (and the image) and return
:class:`MaskChange` s - a box and the mask before/after over it - which ``Segmentation.apply`` writes.

Coordinates: voxel indices in array order ``(z, y, x)`` (continuous where a mouse position is meant), and
``axis`` is the *array* axis held constant by the drawing plane (0 = slice, 1 = row, 2 = column). A view's
:class:`~viewer.core.reformat.PlaneGeometry` gives ``axis = geometry.array_axis`` and the points as
``index_from_display(k, row, col)[..., ::-1]``. Sizes are in mm and honour anisotropic spacing.

Locked segments are never changed: a tool aimed at one raises :class:`SegmentLockedError`, and
``overwrite_others`` leaves locked (and hidden) segments as they are.
"""
from __future__ import annotations

import math

import numpy as np

from viewer.core.editing.segmentation import (
    Box,
    MaskChange,
    Segmentation,
    SegmentLockedError,
    box_slices,
    tight_box,
)


def _target(seg: Segmentation, number: int):
    segment = seg.segments[number]
    if segment.locked:
        raise SegmentLockedError(f"segment {number} ({segment.name}) is locked")
    return segment


def _change(seg: Segmentation, number: int, box: Box, after: np.ndarray) -> list[MaskChange]:
    before = seg.region(number, box)
    if np.array_equal(before, after):
        return []
    return [MaskChange(number, box, before, after)]


def _clip_box(seg: Segmentation, lo, hi) -> Box | None:
    lo = [max(0, int(v)) for v in lo]
    hi = [min(s, int(v)) for s, v in zip(seg.shape, hi)]
    if any(h <= low for low, h in zip(lo, hi)):
        return None
    return (*lo, *hi)


def _in_range(values: np.ndarray, hu_range: tuple[float, float] | None) -> np.ndarray:
    if hu_range is None:
        return np.ones(values.shape, dtype=bool)
    low, high = hu_range
    return (values >= low) & (values <= high)


def _paint_changes(seg: Segmentation, number: int, box: Box, footprint: np.ndarray, erase: bool,
                   overwrite_others: bool) -> list[MaskChange]:
    before = seg.region(number, box)
    after = before & ~footprint if erase else before | footprint
    changes = [] if np.array_equal(before, after) else [MaskChange(number, box, before, after)]
    if overwrite_others and not erase:
        for other in seg:
            if other.number == number or other.locked or not other.visible:
                continue
            other_before = other.mask.region(box)
            if (other_before & footprint).any():
                changes.append(MaskChange(other.number, box, other_before, other_before & ~footprint))
    return changes


def brush_footprint(seg: Segmentation, centers, radius_mm: float, axis: int = 0) -> tuple[Box, np.ndarray] | None:
    """Box and mask of round dabs of ``radius_mm`` in the plane normal to ``axis`` at each centre; consecutive
    centres are joined (dabs every half radius) so a fast mouse leaves no gaps."""
    centers = np.atleast_2d(np.asarray(centers, dtype=float))
    spacing = seg.spacing
    in_plane = [a for a in range(3) if a != axis]
    step = radius_mm / 2 / max(spacing[in_plane].max(), 1e-6)  # in voxels along the larger in-plane spacing
    path = [centers[0]]
    for a, b in zip(centers[:-1], centers[1:]):
        n = max(1, int(math.ceil(np.abs(b - a)[in_plane].max() / max(step, 0.5))))
        path.extend(a + (b - a) * t for t in np.linspace(0, 1, n + 1)[1:])
    points = np.array(path)
    reach = radius_mm / spacing  # voxels per axis
    reach[axis] = 0.5
    lo = np.floor(points.min(axis=0) - reach + 0.5)
    hi = np.floor(points.max(axis=0) + reach + 0.5) + 1
    lo[axis] = np.rint(points[:, axis]).min()
    hi[axis] = np.rint(points[:, axis]).max() + 1
    box = _clip_box(seg, lo, hi)
    if box is None:
        return None
    grids = np.ogrid[box[0]:box[3], box[1]:box[4], box[2]:box[5]]
    footprint = np.zeros((box[3] - box[0], box[4] - box[1], box[5] - box[2]), dtype=bool)
    r2 = radius_mm ** 2
    for p in points:
        k = int(np.rint(p[axis]))
        if not box[axis] <= k < box[axis + 3]:
            continue
        u, v = in_plane
        d2 = ((grids[u] - p[u]) * spacing[u]) ** 2 + ((grids[v] - p[v]) * spacing[v]) ** 2
        dab = (d2 <= r2) & (grids[axis] == k)
        footprint |= dab
    return box, footprint


def brush(seg: Segmentation, number: int, centers, radius_mm: float, axis: int = 0, *, erase: bool = False,
          image: np.ndarray | None = None, hu_range: tuple[float, float] | None = None,
          overwrite_others: bool = False) -> list[MaskChange]:
    """Paint (or ``erase``) round dabs into segment ``number``.

    Parameters
    ----------
    centers
        One ``(z, y, x)`` point or a polyline ``(N, 3)`` of the mouse path (continuous indices).
    radius_mm
        Brush radius in mm (an ellipse in voxels when the plane's spacing is anisotropic).
    axis
        Array axis normal to the drawing plane.
    image, hu_range
        Threshold brush: only voxels with ``low <= image <= high`` are painted (erasing ignores the range).
    overwrite_others
        Also remove the painted voxels from other visible, unlocked segments. Off by default: segments overlap.
    """
    _target(seg, number)
    found = brush_footprint(seg, centers, radius_mm, axis)
    if found is None:
        return []
    box, footprint = found
    if hu_range is not None and not erase:
        if image is None:
            raise ValueError("a threshold brush needs the image")
        footprint &= _in_range(np.asarray(image)[box_slices(box)], hu_range)
    return _paint_changes(seg, number, box, footprint, erase, overwrite_others)


def erase(seg: Segmentation, number: int, centers, radius_mm: float, axis: int = 0) -> list[MaskChange]:
    """The eraser: :func:`brush` with ``erase=True``."""
    return brush(seg, number, centers, radius_mm, axis, erase=True)


def _same_label(seg: Segmentation, box: Box, seed_local: tuple[int, int, int]) -> np.ndarray:
    """Voxels of ``box`` that belong to exactly the same visible segments as the seed (booleans only: a
    whole-grid 3D fill must not allocate more than a byte per voxel at a time)."""
    inside = np.ones([box[3] - box[0], box[4] - box[1], box[5] - box[2]], dtype=bool)
    for segment in seg:
        if segment.visible:
            region = segment.mask.region(box)
            inside &= region if region[seed_local] else ~region
    return inside


def flood_fill(seg: Segmentation, number: int, seed, *, image: np.ndarray | None = None,
               hu_range: tuple[float, float] | None = None, axis: int | None = None, erase: bool = False,
               full_connectivity: bool = False) -> list[MaskChange]:
    """Fill the connected region around ``seed`` into segment ``number`` (or remove it with ``erase``).

    With ``hu_range`` the region is the voxels with ``low <= image <= high`` connected to the seed; without it,
    the voxels connected to the seed that belong to the same visible segments as the seed ("same label": e.g.
    the hole inside a contour). ``axis`` fills in that plane through the seed (2D); ``None`` fills in 3D.
    Connectivity is face-to-face unless ``full_connectivity``.
    """
    import SimpleITK as sitk

    _target(seg, number)
    seed = tuple(int(np.rint(v)) for v in seed)
    if not all(0 <= s < n for s, n in zip(seed, seg.shape)):
        return []
    if axis is None:
        box: Box = (0, 0, 0, *seg.shape)  # type: ignore[assignment]
    else:
        lo = [0, 0, 0]
        hi = list(seg.shape)
        lo[axis], hi[axis] = seed[axis], seed[axis] + 1
        box = (*lo, *hi)  # type: ignore[assignment]
    if hu_range is not None:
        if image is None:
            raise ValueError("an HU-range fill needs the image")
        inside = _in_range(np.asarray(image)[box_slices(box)], hu_range)
    else:
        inside = _same_label(seg, box, tuple(s - b for s, b in zip(seed, box[:3])))
    plane = inside if axis is None else np.take(inside, 0, axis=axis)
    local_seed = [s - b for s, b in zip(seed, box[:3])]
    if axis is not None:
        del local_seed[axis]
    if not plane[tuple(local_seed)]:
        return []
    # Connected components + the seed's label rather than ConnectedThreshold's region growing: the same region,
    # ~10x faster on a whole CT (run-length union-find instead of a voxel queue).
    components = sitk.ConnectedComponent(sitk.GetImageFromArray(plane.astype(np.uint8)), full_connectivity)
    labels = sitk.GetArrayViewFromImage(components)
    region = labels == labels[tuple(local_seed)]
    if axis is not None:
        region = np.expand_dims(region, axis)
    tight = tight_box(region, box[:3])
    if tight is None:
        return []
    region = region[box_slices(tight, box[:3])]
    return _paint_changes(seg, number, tight, region, erase, overwrite_others=False)


def _points_in_polygon(rows: np.ndarray, cols: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule for pixel centres ``(rows, cols)`` (broadcast grids) against ``polygon`` ``(M, 2)``."""
    inside = np.zeros(np.broadcast(rows, cols).shape, dtype=bool)
    r0, c0 = polygon[:, 0], polygon[:, 1]
    r1, c1 = np.roll(r0, -1), np.roll(c0, -1)
    for a_r, a_c, b_r, b_c in zip(r0, c0, r1, c1):
        if a_r == b_r:
            continue
        crosses = (rows >= min(a_r, b_r)) & (rows < max(a_r, b_r))
        col_at = a_c + (rows - a_r) * (b_c - a_c) / (b_r - a_r)
        inside ^= crosses & (cols < col_at)
    return inside


def polygon_fill(seg: Segmentation, number: int, vertices, axis: int = 0, *, erase: bool = False,
                 overwrite_others: bool = False) -> list[MaskChange]:
    """Fill (or erase) the polygon/lasso ``vertices`` ``(M, 3)`` ``(z, y, x)`` in the plane normal to ``axis``
    (the plane of the first vertex); voxel centres inside by the even-odd rule."""
    _target(seg, number)
    vertices = np.asarray(vertices, dtype=float).reshape(-1, 3)
    if len(vertices) < 3:
        return []
    k = int(np.rint(vertices[0, axis]))
    u, v = [a for a in range(3) if a != axis]
    polygon = vertices[:, [u, v]]
    lo = [0, 0, 0]
    hi = [0, 0, 0]
    lo[axis], hi[axis] = k, k + 1
    lo[u], hi[u] = math.floor(polygon[:, 0].min()), math.ceil(polygon[:, 0].max()) + 1
    lo[v], hi[v] = math.floor(polygon[:, 1].min()), math.ceil(polygon[:, 1].max()) + 1
    box = _clip_box(seg, lo, hi)
    if box is None:
        return []
    rows = np.arange(box[u], box[u + 3], dtype=float)[:, None]
    cols = np.arange(box[v], box[v + 3], dtype=float)[None, :]
    footprint = np.expand_dims(_points_in_polygon(rows, cols, polygon), axis)
    if not footprint.any():
        return []
    return _paint_changes(seg, number, box, footprint, erase, overwrite_others)


def _interpolator():
    """SimpleITK's MorphologicalContourInterpolator when this build wraps it (the ITK remote module is not in
    every SimpleITK wheel - 2.5.x from PyPI lacks it), else None."""
    import SimpleITK as sitk

    return getattr(sitk, "MorphologicalContourInterpolator", None)


def _signed_distance(plane: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(plane.astype(np.uint8))
    image.SetSpacing((float(spacing[1]), float(spacing[0])))
    distance = sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False,
                                            useImageSpacing=True)
    return sitk.GetArrayFromImage(distance)


def _shape_based(before: np.ndarray, axis: int, spacing: tuple[float, float]) -> np.ndarray:
    """Shape-based interpolation: between consecutive non-empty slices the signed distance maps (mm) are
    blended linearly and thresholded at 0 - a contour morphs into the next, as Raya & Udupa's method."""
    out = before.copy()
    stack = np.moveaxis(out, axis, 0)
    filled = [k for k in range(stack.shape[0]) if stack[k].any()]
    for k0, k1 in zip(filled[:-1], filled[1:]):
        if k1 - k0 < 2:
            continue
        d0, d1 = _signed_distance(stack[k0], spacing), _signed_distance(stack[k1], spacing)
        for k in range(k0 + 1, k1):
            t = (k - k0) / (k1 - k0)
            stack[k] |= (1 - t) * d0 + t * d1 <= 0
    return out


def interpolate(seg: Segmentation, number: int, axis: int = 0) -> list[MaskChange]:
    """Fill the slices between edited (non-empty) slices of segment ``number`` along ``axis``; only adds voxels.

    Uses ``sitk.MorphologicalContourInterpolator`` (ITK/Slicer's method) when the installed SimpleITK has it,
    otherwise shape-based interpolation of in-plane signed distance maps (:func:`_shape_based`).
    """
    import SimpleITK as sitk

    _target(seg, number)
    box = seg.segments[number].mask.bounding_box()
    if box is None:
        return []
    before = seg.region(number, box)
    in_plane = tuple(float(seg.spacing[a]) for a in range(3) if a != axis)
    interpolator = _interpolator()
    if interpolator is None:
        after = _shape_based(before, axis, in_plane)  # type: ignore[arg-type]
    else:
        image = sitk.GetImageFromArray(before.astype(np.uint8))
        image.SetSpacing(tuple(float(s) for s in seg.spacing[::-1]))
        filt = interpolator()
        filt.SetAxis(2 - axis)  # ITK axes are (x, y, z)
        filt.SetLabel(1)
        after = before | (sitk.GetArrayViewFromImage(filt.Execute(image)) > 0)
    return _change(seg, number, box, after)


def remove_small_islands(seg: Segmentation, number: int, min_volume_mm3: float,
                         full_connectivity: bool = True) -> list[MaskChange]:
    """Remove connected pieces of segment ``number`` smaller than ``min_volume_mm3``
    (``sitk.ConnectedComponent`` + ``RelabelComponent``; voxel volume from the grid's affine)."""
    import SimpleITK as sitk

    _target(seg, number)
    box = seg.segments[number].mask.bounding_box()
    if box is None:
        return []
    before = seg.region(number, box)
    min_voxels = max(1, int(math.ceil(min_volume_mm3 / seg.voxel_volume_mm3 - 1e-9)))
    components = sitk.ConnectedComponent(sitk.GetImageFromArray(before.astype(np.uint8)), full_connectivity)
    kept = sitk.RelabelComponent(components, minimumObjectSize=min_voxels)
    after = sitk.GetArrayViewFromImage(kept) > 0
    return _change(seg, number, box, after)


__all__ = ["brush", "brush_footprint", "erase", "flood_fill", "polygon_fill", "interpolate",
           "remove_small_islands"]
