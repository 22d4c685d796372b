"""Thick slabs: a projection (MIP, MinIP, average) over the slices around the shown one, along a plane's normal.

One core concept, like napari's ``ImageProjectionMode``: :class:`~viewer.core.display.DisplayState` keeps a
:class:`Projection` and a thickness in mm; each plane turns the thickness into a number of its own slices with its
own spacing (:func:`slab_slices`), centred on its current slice and clipped at the volume's ends
(:func:`slab_range`), and reduces that block with numpy (:func:`project`) into one image shaped and oriented like
:meth:`~viewer.core.reformat.PlaneGeometry.take`'s. The result keeps the volume's dtype, so the window look-up table
path of a single slice draws a slab unchanged: MIP and MinIP pick existing values; the average is rounded back to
the integer type (values are whole HU already, so half a unit of rounding is below anything a window shows).
"""
from __future__ import annotations

import math
from enum import Enum

import numpy as np

from viewer.core.reformat import PlaneGeometry

#: Thickness a slab starts with when turned on (a 10 mm MIP is the usual sliding slab for lung nodules).
DEFAULT_SLAB_MM = 10.0
#: Thickness range accepted (mm): thinner than a slice is a slice, thicker than this is a projection radiograph.
SLAB_MM_RANGE = (0.5, 200.0)
#: The thicknesses the thinner / thicker keys step through (mm).
SLAB_STEPS_MM = (2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0)


class Projection(str, Enum):
    """How the slices of a slab are combined into the image shown (``NONE``: the single slice)."""

    NONE = "none"
    MIP = "mip"
    MINIP = "minip"
    AVG = "avg"

    @property
    def label(self) -> str:
        """Short name for the corner text and the toolbar (``"MIP"``, ``"MinIP"``, ``"Avg"``; ``"Slice"``)."""
        return _LABELS[self]


_LABELS = {Projection.NONE: "Slice", Projection.MIP: "MIP", Projection.MINIP: "MinIP", Projection.AVG: "Avg"}


def slab_slices(thickness_mm: float, spacing_mm: float) -> int:
    """How many slices of ``spacing_mm`` a slab of ``thickness_mm`` takes: the nearest whole number (halves round
    up), at least 1. So 10 mm is 10 slices at 1 mm, 4 at 2.5 mm, 14 at 0.7 mm (9.8 mm)."""
    if not spacing_mm or spacing_mm <= 0 or not math.isfinite(spacing_mm):
        return 1
    return max(1, int(math.floor(float(thickness_mm) / float(spacing_mm) + 0.5)))


def slab_range(k: int, count: int, n_slices: int) -> tuple[int, int]:
    """The slices ``[start, stop)`` of a slab of ``count`` slices centred on slice ``k``, clipped to
    ``0..n_slices``. An even count has one slice more on the higher-index side (``k - 1 .. k + 2`` for 4), so the
    slab always contains ``k``; near the volume's ends the slab is just shorter."""
    start = int(k) - (int(count) - 1) // 2
    stop = start + int(count)
    return max(0, start), min(int(n_slices), stop)


def _reduce(block: np.ndarray, axis: int, projection: Projection) -> np.ndarray:
    """Combine ``block`` along ``axis``, keeping its dtype (see the module docstring for the average)."""
    if projection == Projection.MIP:
        return np.max(block, axis=axis)
    if projection == Projection.MINIP:
        return np.min(block, axis=axis)
    # float32 sums are exact for int16 slabs up to 512 slices (|sum| < 2**24), and half the cost of float64
    total = np.asarray(np.add.reduce(block, axis=axis, dtype=np.float32))  # (0-d for one pixel's line)
    # a true division (not a multiply by 1/n): exact halves stay exact, so rounding matches float64 means
    total /= np.float32(block.shape[axis])
    if block.dtype.kind in "iub":
        np.rint(total, out=total)
    return total.astype(block.dtype, copy=False)


def project(array: np.ndarray, geometry: PlaneGeometry, start: int, stop: int,
            projection: Projection | str) -> np.ndarray:
    """The ``projection`` of slices ``[start, stop)`` of ``geometry``'s plane of ``array`` (``(z, y, x)`` or
    ``(z, y, x, c)``), as drawn: ``(rows, cols)`` (plus channels), flipped for display, the array's dtype.

    The block is a view of the array (no copy); numpy reduces it along the plane's array axis in one pass per
    slice. ``NONE`` gives the middle slice of the range, a one-slice range that slice (a view, as
    :meth:`~viewer.core.reformat.PlaneGeometry.take`).
    """
    projection = Projection(projection)
    start, stop = int(start), int(stop)
    if stop <= start:
        raise ValueError(f"empty slab [{start}, {stop})")
    if projection == Projection.NONE or stop - start == 1:
        return geometry.take(array, (start + stop - 1) // 2)
    axis = geometry.array_axis
    index: list = [slice(None)] * array.ndim
    index[axis] = slice(start, stop)
    return geometry.orient(_reduce(array[tuple(index)], axis, projection))


def project_line(values: np.ndarray, projection: Projection | str) -> float | tuple[int, ...]:
    """The projected value of one pixel from its ``values`` along the slab (``(n,)``, or ``(n, c)`` for colour),
    computed exactly as :func:`project` does for the image."""
    projection = Projection(projection)
    values = np.asarray(values)
    reduced = _reduce(values, 0, projection) if projection != Projection.NONE else values[(len(values) - 1) // 2]
    if np.ndim(reduced):
        return tuple(int(v) for v in reduced)
    return float(reduced)
