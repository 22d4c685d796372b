"""Regions of a CT worth running a model on: the patient's body (in-plane), or the lungs.

A wide field of view is mostly air around the patient: a 140x512x512 CT with 0.82 mm pixels is 420 mm across, a
chest about 330 x 250 mm. :func:`body_box` finds the patient on a coarse copy of the volume (cheap: every 4th
pixel); :func:`model_grid_box` turns that box into a crop of the model's preprocessed image whose start lies on
the network's stride (a multiple of 16 voxels for a UNet with four stride-2 levels), so every voxel the network
sees is the one it would have seen in the whole image, at the same place in its pooling grid: the crop leaves out
only air far from the patient, and the answer barely moves (a crop of the study itself would shift the model's
resampling grid by a fraction of a voxel, which moved findings). The network, the postprocessing and their memory
then scale with the patient, not the field of view. :func:`lung_box` is the bounding box of a lung mask, for
models that only look inside the lungs (the Model Zoo RetinaNet).

Boxes on our volume are half-open voxel boxes ``(z0, y0, x0, z1, y1, x1)`` on its ``(z, y, x)`` array.
"""
from __future__ import annotations

import numpy as np

#: Coarse grid for finding the body: every 2nd slice, every 4th row and column.
BODY_STRIDE = (2, 4, 4)
#: A crop must leave out at least this share of the model's image to be taken. Any crop changes what the network
#: sees far from the patient (its padding replaces the air), which moves borderline findings a little (LIDC-0001:
#: an 11 % crop took 6 findings to 5): worth it for a wide field of view, not to save a tenth.
MIN_SAVING = 0.25


def _spacing(affine: np.ndarray) -> np.ndarray:
    """Voxel size (mm) along z, y, x from an index (x, y, z) -> mm affine."""
    return np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)[::-1]


def _grow(lo: np.ndarray, hi: np.ndarray, affine: np.ndarray, shape, margin_mm: float
          ) -> tuple[int, int, int, int, int, int]:
    margin = np.ceil(margin_mm / np.maximum(_spacing(affine), 1e-6)).astype(int)
    lo = np.maximum(lo - margin, 0)
    hi = np.minimum(hi + margin, np.asarray(shape))
    return int(lo[0]), int(lo[1]), int(lo[2]), int(hi[0]), int(hi[1]), int(hi[2])


def body_box(array: np.ndarray, affine: np.ndarray, threshold_hu: float = -500.0, margin_mm: float = 10.0
             ) -> tuple[int, int, int, int, int, int] | None:
    """The in-plane box around the patient in a CT ``(z, y, x)`` array (HU), ``margin_mm`` wider on each side; all
    slices are kept. None when nothing is above ``threshold_hu`` or the box would be the whole image.

    The patient is the largest connected component above ``threshold_hu`` on a coarse grid (:data:`BODY_STRIDE`):
    a table or a blanket apart from the patient stays out. The coarse grid can miss a thin sliver at the patient's
    edge; the margin (at least a coarse step) covers it.
    """
    import SimpleITK as sitk

    array = np.asarray(array)
    if array.ndim != 3 or array.size == 0:
        return None
    step = BODY_STRIDE
    coarse = array[::step[0], ::step[1], ::step[2]] > threshold_hu
    if not coarse.any():
        return None
    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(coarse.astype(np.uint8))))
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    body = labels == int(np.argmax(sizes))
    rows = np.flatnonzero(body.any(axis=(0, 2)))
    cols = np.flatnonzero(body.any(axis=(0, 1)))
    lo = np.array([0, rows[0] * step[1], cols[0] * step[2]])
    hi = np.array([array.shape[0], rows[-1] * step[1] + 1, cols[-1] * step[2] + 1])
    spacing = _spacing(affine)
    margin = max(float(margin_mm), float(max(step[1] * spacing[1], step[2] * spacing[2])))
    box = _grow(lo, hi, affine, array.shape, margin)
    box = (0, box[1], box[2], array.shape[0], box[4], box[5])
    if box == (0, 0, 0, *array.shape):
        return None
    return box


def lung_box(lung: np.ndarray, affine: np.ndarray, margin_mm: float = 10.0
             ) -> tuple[int, int, int, int, int, int] | None:
    """The box around the ``True`` voxels of a ``(z, y, x)`` lung mask, ``margin_mm`` wider on each side (clipped
    to the grid); None for an empty mask."""
    lung = np.asarray(lung, dtype=bool)
    where = [np.flatnonzero(lung.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    if any(len(w) == 0 for w in where):
        return None
    lo = np.array([w[0] for w in where])
    hi = np.array([w[-1] + 1 for w in where])
    return _grow(lo, hi, affine, lung.shape, margin_mm)


def model_grid_box(box, affine_lps: np.ndarray, image_affine_ras: np.ndarray, image_shape, multiple=16,
                   min_saving: float = MIN_SAVING) -> tuple[list[int], list[int]] | None:
    """The crop ``(start, end)`` (``(x, y, z)`` voxels, end exclusive) of a model's preprocessed image
    (``image_affine_ras``, ``image_shape`` ``(x, y, z)``) that holds the volume ``box`` (on the grid of
    ``affine_lps``), widened so that each start is a multiple of ``multiple`` and each end either one too or the
    image's end. None when it would leave out less than ``min_saving`` of the image (see :data:`MIN_SAVING`)."""
    from inference.geometry import ras_affine

    z0, y0, x0, z1, y1, x1 = (float(v) for v in box)
    corners = np.array([[x, y, z, 1.0] for x in (x0 - 0.5, x1 - 0.5) for y in (y0 - 0.5, y1 - 0.5)
                        for z in (z0 - 0.5, z1 - 0.5)])
    to_image = np.linalg.inv(np.asarray(image_affine_ras, dtype=np.float64)) @ ras_affine(affine_lps)
    index = corners @ to_image.T
    shape = np.array([int(s) for s in image_shape])
    step = np.broadcast_to(np.asarray(multiple, dtype=int), (3,))
    lo = np.clip(np.floor(index[:, :3].min(axis=0)).astype(int), 0, shape)
    hi = np.clip(np.ceil(index[:, :3].max(axis=0)).astype(int) + 1, 0, shape)
    start = lo // step * step
    end = np.minimum(start + -(-(hi - start) // step) * step, shape)
    if np.prod(end - start) > (1.0 - float(min_saving)) * np.prod(shape):
        return None
    return [int(v) for v in start], [int(v) for v in end]


def crop_affine(affine: np.ndarray, box) -> np.ndarray:
    """The index -> mm affine of the sub-grid starting at voxel ``box[:3]`` (z, y, x) of ``affine``'s grid."""
    affine = np.asarray(affine, dtype=np.float64).copy()
    start_xyz = np.array([box[2], box[1], box[0]], dtype=np.float64)
    affine[:3, 3] = affine[:3, :3] @ start_xyz + affine[:3, 3]
    return affine


def crop_slices(box) -> tuple[slice, slice, slice]:
    """``box`` as array slices."""
    return slice(int(box[0]), int(box[3])), slice(int(box[1]), int(box[4])), slice(int(box[2]), int(box[5]))
