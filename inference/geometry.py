"""Our volume grid <-> the image convention MONAI bundles are written for.

Ours: array ``(z, y, x)`` (slice, row, column) and an affine mapping ``(x, y, z, 1)`` to LPS mm.

MONAI's: what ``LoadImage`` returns for a DICOM series read with ITK (``affine_lps_to_ras=True``, the default)
or a NIfTI read with nibabel: array indexed ``(i, j, k)`` = (column, row, slice) and an affine mapping
``(i, j, k, 1)`` to **RAS** mm; bundles then add the channel (``EnsureChannelFirstd``) and reorient/resample.
So the conversion is a transpose of the array and a sign flip of the first two world axes - no resampling.
:func:`to_monai` mirrors that, including the metadata ``LoadImage`` sets (but no file name or other patient data).
"""
from __future__ import annotations

import numpy as np

from inference.types import int3

#: diag(-1, -1, 1, 1): LPS <-> RAS (its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def ras_affine(affine_lps: np.ndarray) -> np.ndarray:
    """Our ``(x, y, z)`` -> LPS affine as the ``(i, j, k)`` -> RAS affine MONAI uses (same index order)."""
    return LPS_TO_RAS @ np.asarray(affine_lps, dtype=np.float64)


def lps_affine(affine_ras: np.ndarray) -> np.ndarray:
    """Inverse of :func:`ras_affine`."""
    return LPS_TO_RAS @ np.asarray(affine_ras, dtype=np.float64)


def to_monai(array_zyx: np.ndarray, affine_lps: np.ndarray, dtype=np.float32):
    """Our array + affine as the channel-less ``MetaTensor`` ``LoadImaged`` would have produced.

    The result is ``(x, y, z)`` with a RAS affine and ``original_channel_dim = "no_channel"``, so a bundle's
    ``EnsureChannelFirstd`` adds the channel exactly as after loading a file.
    """
    import torch
    from monai.data import MetaTensor
    from monai.utils import MetaKeys, SpaceKeys

    data = xyz_copy(array_zyx, dtype)
    affine = torch.as_tensor(ras_affine(affine_lps), dtype=torch.float64)
    meta = {
        MetaKeys.ORIGINAL_CHANNEL_DIM: "no_channel",
        MetaKeys.SPATIAL_SHAPE: np.asarray(data.shape),
        MetaKeys.ORIGINAL_AFFINE: affine.clone(),
        MetaKeys.SPACE: SpaceKeys.RAS,
        "filename_or_obj": "volume",  # no path: paths may carry patient names
    }
    return MetaTensor(torch.from_numpy(data), affine=affine, meta=meta)


def xyz_copy(array_zyx: np.ndarray, dtype=np.float32, block: int = 64) -> np.ndarray:
    """``array_zyx.transpose(2, 1, 0)`` as a C-contiguous ``dtype`` copy, in blocks of ``block`` x ``block`` in-plane
    voxels: a whole-volume transpose reads each slice a column at a time, and its cache misses made it 0.33 s for
    LIDC-IDRI-0001 (512 x 512 x 133) against 0.21 s in blocks (medians of 9, side by side)."""
    array = np.asarray(array_zyx)
    nz, ny, nx = array.shape
    out = np.empty((nx, ny, nz), dtype=dtype)
    for x in range(0, nx, block):
        for y in range(0, ny, block):
            out[x:x + block, y:y + block] = array[:, y:y + block, x:x + block].transpose(2, 1, 0)
    return out


def from_monai(tensor_xyz) -> np.ndarray:
    """A ``(x, y, z)`` or ``(C, x, y, z)`` tensor on our grid as ``(z, y, x)`` / ``(C, z, y, x)`` numpy."""
    array = tensor_xyz.detach().cpu().numpy() if hasattr(tensor_xyz, "detach") else np.asarray(tensor_xyz)
    if array.ndim == 3:
        return np.ascontiguousarray(array.transpose(2, 1, 0))
    if array.ndim == 4:
        return np.ascontiguousarray(array.transpose(0, 3, 2, 1))
    raise ValueError(f"expected a 3D or channel-first 4D tensor, got shape {array.shape}")


def resample_to_grid(tensor, affine_ras: np.ndarray, shape_xyz: tuple[int, int, int], mode: str = "nearest"):
    """Resample a channel-first ``MetaTensor`` (any affine) onto the grid ``(affine_ras, shape_xyz)``.

    Used when a bundle's postprocessing does not invert its preprocessing (no ``Invertd``): the output is then
    on the model's grid and is brought back here. Returns the tensor unchanged when it already is on the grid.
    ``bilinear`` between grids whose axes run along each other is done one axis at a time
    (:func:`resample_separable`, ``grid_sample``'s values to float32 rounding): a map of LIDC-IDRI-0001's size
    placed through ``grid_sample`` built a coordinate volume three times the map's size first (0.6 s).
    """
    import torch
    from monai.data import MetaTensor
    from monai.transforms import SpatialResample

    if not isinstance(tensor, MetaTensor):
        raise TypeError("the model output has no affine (not a MetaTensor): cannot place it on the volume")
    target = torch.as_tensor(affine_ras, dtype=torch.float64)
    if tuple(tensor.shape[1:]) == tuple(shape_xyz) and torch.allclose(
            tensor.affine.to(torch.float64).cpu(), target, atol=1e-4):
        return tensor
    to_source = np.linalg.solve(tensor.affine.to(torch.float64).cpu().numpy(), target.numpy())
    if mode == "bilinear" and tensor.ndim == 4 and _axis_aligned(to_source):
        values = resample_separable(tensor.as_tensor(), to_source, shape_xyz, padding="zeros")
        return MetaTensor(values, affine=target)
    resampler = SpatialResample(mode=mode, padding_mode="zeros", dtype=np.float32)  # computes in torch.float32
    return resampler(tensor.float(), dst_affine=target, spatial_size=tuple(int(s) for s in shape_xyz))


def resample_separable(image, to_source: np.ndarray, shape, padding: str = "border"):
    """Channel-first ``image`` resampled (float32) onto ``shape`` through the axis-aligned output -> input index map
    ``to_source`` (each output axis reads the same input axis): linear between the two nearest input voxels along
    each axis, as ``grid_sample`` (``align_corners=False``) does in all three at once - trilinear interpolation is
    separable. ``padding``: ``"border"`` clamps positions to the image, ``"zeros"`` counts voxels beyond it as 0
    (``grid_sample``'s padding modes). The axis that shrinks most goes first, so later axes handle fewest voxels."""
    import torch

    if padding not in ("border", "zeros"):
        raise ValueError(f"padding must be 'border' or 'zeros', not {padding!r}")
    out = image.to(torch.float32)
    rank = out.ndim - 1
    shape = [int(s) for s in shape]
    ratio = [shape[a] / out.shape[a + 1] for a in range(rank)]
    for axis in sorted(range(rank), key=lambda a: ratio[a]):
        n = out.shape[axis + 1]
        position = to_source[axis, axis] * np.arange(shape[axis], dtype=np.float64) + to_source[axis, rank]
        if shape[axis] == n and np.allclose(position, np.arange(n), rtol=0, atol=1e-6):
            continue  # this axis keeps its voxels
        if padding == "border":
            position = np.clip(position, 0, n - 1)
        lower = np.floor(position).astype(np.int64)
        weight = position - lower
        if padding == "border":  # the last voxel: all weight on it, from the one before (none for a single voxel)
            last = lower >= n - 1
            lower[last], weight[last] = max(n - 2, 0), np.where(n > 1, 1.0, 0.0)
        result = torch.zeros((out.shape[0], *[shape[a] if a == axis else out.shape[a + 1] for a in range(rank)]),
                             dtype=torch.float32, device=out.device)
        source, target = out.movedim(axis + 1, 0), result.movedim(axis + 1, 0)
        # one output plane at a time: a blend of (at most) two input planes, no index or weight volume built
        for k in range(shape[axis]):
            below, above, w = int(lower[k]), int(lower[k]) + 1, float(weight[k])
            if 0 <= below and above < n:
                torch.lerp(source[below], source[above], w, out=target[k])
            elif 0 <= below < n:  # zeros padding: the neighbour beyond the image adds nothing
                torch.mul(source[below], 1 - w, out=target[k])
            elif 0 <= above < n:
                torch.mul(source[above], w, out=target[k])
        out = result
    return out


def voxel_box(corners_lps: np.ndarray, affine_lps: np.ndarray, shape_zyx: tuple[int, int, int]) -> np.ndarray:
    """Half-open ``[z0, y0, x0, z1, y1, x1]`` of the voxels whose centres lie inside the box spanned by
    ``corners_lps`` (``(8, 3)`` LPS mm), clipped to the grid; at least the voxel nearest the box centre."""
    inverse = np.linalg.inv(np.asarray(affine_lps, dtype=np.float64))
    index = corners_lps @ inverse[:3, :3].T + inverse[:3, 3]  # (8, 3) continuous (x, y, z)
    lo, hi = index.min(axis=0), index.max(axis=0)
    eps = 1e-6
    start = np.ceil(lo - eps).astype(int)
    stop = np.floor(hi + eps).astype(int) + 1
    size_xyz = np.array(shape_zyx[::-1])
    centre = np.clip(np.rint((lo + hi) / 2).astype(int), 0, size_xyz - 1)
    start = np.clip(start, 0, size_xyz)
    stop = np.clip(stop, 0, size_xyz)
    empty = stop <= start
    start[empty] = centre[empty]
    stop[empty] = centre[empty] + 1
    return np.array([start[2], start[1], start[0], stop[2], stop[1], stop[0]], dtype=np.int64)


def box_corners(box_xyzxyz: np.ndarray) -> np.ndarray:
    """The 8 corners ``(8, 3)`` of an axis-aligned box ``[x0, y0, z0, x1, y1, z1]``."""
    lo, hi = np.asarray(box_xyzxyz[:3], float), np.asarray(box_xyzxyz[3:], float)
    return np.array([[(hi if i & 1 else lo)[0], (hi if i & 2 else lo)[1], (hi if i & 4 else lo)[2]]
                     for i in range(8)])


def resample_argmax(tensor, affine_ras: np.ndarray, shape_xyz: tuple[int, int, int], slab: int = 16):
    """Per-channel scores (a channel-first ``MetaTensor``) resampled linearly onto ``(affine_ras, shape_xyz)`` and
    reduced to the best channel per voxel: an ``(x, y, z)`` int64 tensor.

    Works in slabs of ``slab`` output slices, so a 5-label model on a 512x512x133 study needs ~90 MB at a time
    instead of the 700 MB of all its probabilities on the study's grid.

    Only the box around the source voxels whose best channel is not the first is resampled; elsewhere the answer
    is channel 0 without computing it. Exact, not an approximation: where every one of the (up to 8) source voxels a
    target voxel interpolates between has channel 0 at least as high as every other channel, so has their weighted
    sum (the weights are the same for every channel, non-negative, and rounding is monotone), and a tie goes to
    channel 0. On a chest CT the lungs fill a fraction of the field of view: this saves most of the work.
    """
    import torch

    target = np.asarray(affine_ras, dtype=np.float64)
    shape_xyz = int3(shape_xyz)
    out = torch.zeros(shape_xyz, dtype=torch.int64)
    scores = tensor.as_tensor() if hasattr(tensor, "as_tensor") else torch.as_tensor(tensor)
    source_affine = tensor.affine.detach().cpu().numpy().astype(np.float64) if hasattr(tensor, "affine") else None
    foreground = to_source = to_target = None
    if source_affine is not None and scores.shape[0] >= 2:
        foreground = _channel_argmax(scores) != 0
        to_source = np.linalg.inv(source_affine) @ target
        to_target = np.linalg.inv(to_source)
    source_shape = np.array(scores.shape[1:])
    for z0 in range(0, shape_xyz[2], slab):
        z1 = min(shape_xyz[2], z0 + slab)
        lo = np.array([0, 0, z0])
        hi = np.array([shape_xyz[0], shape_xyz[1], z1])  # exclusive
        if foreground is not None:
            box = _foreground_box(foreground, to_source, to_target, source_shape, lo, hi - 1)
            if box is None:
                continue
            lo, hi = np.maximum(lo, box[0]), np.minimum(hi, box[1] + 1)
            if np.any(hi <= lo):
                continue
        shift = np.eye(4)
        shift[:3, 3] = lo
        part = resample_to_grid(tensor, target @ shift, int3(hi - lo), mode="bilinear")
        out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = _channel_argmax(
            part.as_tensor() if hasattr(part, "as_tensor") else part)
    return out


def _corners(lo, hi) -> np.ndarray:
    return np.array([[(hi if i & 1 else lo)[0], (hi if i & 2 else lo)[1], (hi if i & 4 else lo)[2], 1.0]
                     for i in range(8)], dtype=np.float64)


def _foreground_box(foreground, to_source, to_target, source_shape, lo, hi):
    """The target-index box (inclusive ``lo, hi``) outside which, within the target box ``lo..hi``, no voxel
    interpolates from a ``foreground`` source voxel (with a voxel to spare); None: none inside at all."""
    reach = _corners(lo, hi) @ to_source.T
    s_lo = np.clip(np.floor(reach[:, :3].min(axis=0)).astype(int) - 2, 0, source_shape - 1)
    s_hi = np.clip(np.ceil(reach[:, :3].max(axis=0)).astype(int) + 2, 0, source_shape - 1)
    part = foreground[s_lo[0]:s_hi[0] + 1, s_lo[1]:s_hi[1] + 1, s_lo[2]:s_hi[2] + 1]
    where = [_nonzero_1d(part.any(dim=tuple(d for d in range(3) if d != axis))) for axis in range(3)]
    if any(len(w) == 0 for w in where):
        return None
    f_lo = s_lo + np.array([w[0] for w in where]) - 1.0
    f_hi = s_lo + np.array([w[-1] for w in where]) + 1.0
    image = _corners(f_lo, f_hi) @ to_target.T
    return (np.floor(image[:, :3].min(axis=0)).astype(int) - 1, np.ceil(image[:, :3].max(axis=0)).astype(int) + 1)


def _nonzero_1d(mask) -> np.ndarray:
    return np.flatnonzero(mask.cpu().numpy())


def _channel_argmax(scores):
    """``argmax(dim=0)`` by running comparisons: torch's argmax over the channel axis is ~10x slower here.
    ``scores``: a ``(C, ...)`` tensor or a sequence of C equally shaped tensors. The index is ``uint8`` for up to 256
    channels (``int64`` beyond): a chest CT's label volume is an eighth of the memory to fill."""
    import torch

    best = scores[0].clone()
    index = torch.zeros(best.shape, dtype=torch.uint8 if len(scores) <= 256 else torch.int64)
    better = torch.empty(best.shape, dtype=torch.bool)  # one mask for all channels: fresh memory is slow here
    for channel in range(1, len(scores)):
        torch.gt(scores[channel], best, out=better)
        index[better] = channel
        torch.maximum(best, scores[channel], out=best)
    return index


def _axis_aligned(to_source: np.ndarray, tol: float = 1e-6) -> bool:
    """Whether target index -> source index scales and shifts each axis on its own (no rotation, no swap)."""
    off = to_source[:3, :3] - np.diag(np.diag(to_source[:3, :3]))
    return bool(np.all(np.abs(off) <= tol) and np.all(np.abs(np.diag(to_source[:3, :3])) > tol))


def resample_labels(tensor, affine_ras: np.ndarray, shape_xyz: tuple[int, int, int]) -> np.ndarray:
    """:func:`resample_argmax` returned on our ``(z, y, x)`` grid as ``uint8`` (``int16`` past 255 channels),
    interpolating only where it can change the answer.

    Where every source voxel a target voxel interpolates between has the same best channel, so has their weighted
    sum (same argument as in :func:`resample_argmax`): the label is read from the source. Only target voxels whose
    (up to 8) source neighbours disagree - a thin band along the label boundaries - or reach outside the source are
    interpolated (trilinear, zero outside, as ``grid_sample``). On a chest CT that is a few per cent of the voxels.
    For a target grid rotated against the source, :func:`resample_argmax` does it all.
    """
    import torch

    scores = tensor.as_tensor() if hasattr(tensor, "as_tensor") else torch.as_tensor(tensor)
    shape_xyz = int3(shape_xyz)
    dtype = np.uint8 if scores.shape[0] <= 255 else np.int16
    source_affine = tensor.affine.detach().cpu().numpy().astype(np.float64) if hasattr(tensor, "affine") else None
    to_source = (np.linalg.inv(source_affine) @ np.asarray(affine_ras, dtype=np.float64)
                 if source_affine is not None else None)
    if to_source is None or not _axis_aligned(to_source):
        return from_monai(resample_argmax(tensor, affine_ras, shape_xyz).to(torch.int16)).astype(dtype)
    if tuple(scores.shape[1:]) == shape_xyz and np.allclose(to_source, np.eye(4), atol=1e-6):
        return from_monai(_channel_argmax(scores)).astype(dtype)
    scores = scores.float()
    best = np.ascontiguousarray(_channel_argmax(scores).numpy().astype(dtype, copy=False).transpose(2, 1, 0))  # z, y, x
    n_zyx = np.array(best.shape)
    # per target axis (z, y, x): the source coordinate, its lower neighbour, and whether both neighbours exist
    coords, lower, inside = [], [], []
    for axis_xyz in (2, 1, 0):
        t = np.arange(shape_xyz[axis_xyz], dtype=np.float64)
        c = to_source[axis_xyz, axis_xyz] * t + to_source[axis_xyz, 3]
        i0 = np.floor(c).astype(np.int64)
        coords.append(c)
        lower.append(i0)
        inside.append((i0 >= 0) & (i0 + 1 <= best.shape[len(coords) - 1] - 1))
    # a source cell (its 8 corners) with one label: that label; else "undecided"
    undecided = np.iinfo(dtype).max
    low = best[:-1, :-1, :-1].copy()
    high = low.copy()
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                if dz or dy or dx:
                    corner = best[dz:n_zyx[0] - 1 + dz, dy:n_zyx[1] - 1 + dy, dx:n_zyx[2] - 1 + dx]
                    np.minimum(low, corner, out=low)
                    np.maximum(high, corner, out=high)
    cell = np.where(low == high, low, undecided).astype(dtype)
    # index n-1: no upper neighbour (undecided); index n: both neighbours outside the source, where every channel
    # interpolates to zero and the answer is channel 0 (a crop of the study: most of the grid lies there)
    cell = np.pad(cell, ((0, 2), (0, 2), (0, 2)), constant_values=undecided)
    cell[n_zyx[0]], cell[:, n_zyx[1]], cell[:, :, n_zyx[2]] = 0, 0, 0
    idx = [np.where(ok, np.clip(i0, 0, n - 1), np.where((i0 < -1) | (i0 > n - 1), n, n - 1))
           for i0, ok, n in zip(lower, inside, n_zyx)]
    out = cell.take(idx[0], axis=0).take(idx[1], axis=1).take(idx[2], axis=2)
    todo = np.flatnonzero(out == undecided)
    if todo.size:
        out.ravel()[todo] = _interpolated_labels(scores, todo, out.shape, coords).astype(dtype)
    return out


def _interpolated_labels(scores, flat_index: np.ndarray, shape_zyx, coords_zyx, chunk: int = 1 << 20
                         ) -> np.ndarray:
    """Best channel of the trilinear interpolation of ``scores`` ``(C, x, y, z)`` at the target voxels
    ``flat_index`` of ``shape_zyx``, whose source coordinates along z, y, x are ``coords_zyx[a][index]``;
    neighbours outside the source count as zero (``grid_sample``'s ``padding_mode="zeros"``, which does it)."""
    import torch

    n_xyz = scores.shape[1:]
    volume = scores[None]  # (1, C, D=x, H=y, W=z): grid_sample's last grid axis runs along W
    out = np.empty(flat_index.size, dtype=np.int64)
    for s in range(0, flat_index.size, chunk):
        part = flat_index[s:s + chunk]
        zyx = np.unravel_index(part, shape_zyx)
        grid = np.empty((part.size, 3), dtype=np.float32)
        for column, (a, n) in enumerate(((0, n_xyz[2]), (1, n_xyz[1]), (2, n_xyz[0]))):  # z->W, y->H, x->D
            grid[:, column] = coords_zyx[a][zyx[a]] * (2.0 / max(n - 1, 1)) - 1.0
        sampled = torch.nn.functional.grid_sample(volume, torch.from_numpy(grid).view(1, 1, 1, -1, 3),
                                                  mode="bilinear", padding_mode="zeros", align_corners=True)
        out[s:s + chunk] = _channel_argmax(sampled[0, :, 0, 0]).numpy()
    return out
