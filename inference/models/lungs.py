"""Post-processing of the built-in chest network: left and right lung by anatomy, nothing "lung" outside the body.

The built-in network labels lung / airway / nodule on patches too small to hold both lungs, so it is not asked
which lung it sees. :class:`ChestPostprocessd` (a MONAI transform for the bundle's postprocessing), on the model's
own grid:

1. keeps only the "lung" components inside the patient (the body: the largest soft-tissue component, its axial
   holes filled) and none touching the in-plane border: on a real scan the network called the air inside the
   patient table lung;
2. splits the lung channel by side: each lung component goes whole to the side of the midline its centre lies on,
   and a component that straddles the midline (lungs touching at the anterior junction) is cut at the midline;
   the midline is the emptiest sagittal plane between the lungs (the mediastinum). Patient left is larger LPS x;
3. weights the nodule channel before the argmax (``nodule_weight``): nodules are a tiny class whose
   probabilities run low at their edges and in ground glass.

It works on probabilities, so the result can still be resampled linearly onto the study's grid before the argmax.
"""
from __future__ import annotations

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from inference.geometry import _channel_argmax

#: Where :class:`ChestPostprocessd` leaves the body mask it made (``{"threshold", "mask", "image_key"}``): the
#: segmentation's nodule finder, on the same image, takes it from there rather than making it again (0.2 s on
#: LIDC-IDRI-0001).
BODY_KEY = "body_mask"


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    import SimpleITK as sitk

    from inference.sitk_arrays import array_view

    # a view of the label image, not a copy (a uint32 volume of the model's grid per call)
    labels = array_view(sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8))))
    return labels, int(labels.max())


def body_mask(image: np.ndarray, threshold: float) -> np.ndarray:
    """The patient in an ``(x, y, z)`` image: the largest component above ``threshold`` (soft tissue and bone),
    with the holes of every axial slice filled (the lungs are such holes). A table separated from the patient by
    air is another component and stays out."""
    labels, n = _components(image > threshold)
    if n == 0:
        return np.zeros(image.shape, bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    body = labels == int(np.argmax(sizes))
    return fill_axial_holes(body)


def fill_axial_holes(mask: np.ndarray) -> np.ndarray:
    """The holes of every axial slice (``mask[:, :, z]``) of an ``(x, y, z)`` mask filled, in one 2D fill.

    The slices are laid one above the other in a single 2D image, separated by a row of background: a background
    region that touches its slice's edge reaches that row or the image's edge, so it is outside in the mosaic
    exactly when it is outside in its slice - the same answer as a fill per slice, without a call per slice.
    """
    import SimpleITK as sitk

    nx, ny, nz = mask.shape
    mosaic = np.zeros((nz, ny + 1, nx), dtype=np.uint8)  # (slice, row = y, column = x) + one separating row
    mosaic[:, :ny, :] = mask.transpose(2, 1, 0)
    # the background's face-connected regions (as BinaryFillhole's default) that touch no edge are the holes
    from inference.sitk_arrays import array_view

    background = sitk.ConnectedComponent(sitk.GetImageFromArray((1 - mosaic).reshape(nz * (ny + 1), nx)), False)
    regions = array_view(background)  # a view: a copy is a uint32 volume of the model's grid
    outside = np.zeros(int(regions.max()) + 1, dtype=bool)
    for edge in (regions[0], regions[-1], regions[:, 0], regions[:, -1]):
        outside[edge] = True
    outside[0] = True  # label 0: the mask itself
    filled = ~outside[regions]
    filled |= mosaic.reshape(filled.shape).astype(bool)
    return np.ascontiguousarray(filled.reshape(nz, ny + 1, nx)[:, :ny, :].transpose(2, 1, 0))


def lung_components(lung: np.ndarray, body: np.ndarray | None = None, min_share: float = 0.0) -> np.ndarray:
    """The part of the ``(x, y, z)`` ``lung`` mask that is lung: components inside the patient.

    A component is dropped when it touches the in-plane border (air around the patient) or, given the ``body``
    mask, when less than half of it lies inside the body (on a real scan the network called the air inside the
    patient table lung), or when it is smaller than ``min_share`` of the largest component kept.
    """
    return _kept_lung(lung, body, min_share)[0]


def _kept_lung(lung: np.ndarray, body: np.ndarray | None, min_share: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`lung_components`' mask, and the component labels of ``lung`` it was chosen from (for
    :func:`side_map`, which would label them again)."""
    labels, n = _components(lung)
    if n == 0:
        return lung, labels
    border = np.unique(np.concatenate([labels[0].ravel(), labels[-1].ravel(), labels[:, 0].ravel(),
                                       labels[:, -1].ravel()]))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes > 0
    keep[0] = False
    keep[border] = False
    if body is not None:
        inside = np.bincount(labels[body], minlength=n + 1)
        keep &= inside >= 0.5 * sizes
    if min_share and keep.any():
        keep &= sizes >= min_share * sizes[keep].max()
    return keep[labels], labels


def side_map(lung: np.ndarray, affine_ras: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """``True`` where a voxel of the ``(x, y, z)`` grid belongs to the patient's left side.

    ``lung`` is the boolean lung mask; ``affine_ras`` the grid's index -> RAS affine (used to know which way is
    left, and assumed close to axis-aligned, as after MONAI's ``Orientation``). ``labels``: connected components
    of a mask holding ``lung`` whose components are whole components of ``lung`` (labelled here when not given).
    """
    to_left = -np.sign(affine_ras[0, 0]) if affine_ras[0, 0] else 1.0  # RAS x grows to the patient's right
    nx = lung.shape[0]
    xs = np.arange(nx, dtype=float)
    profile = lung.sum(axis=(1, 2)).astype(float)
    occupied = np.flatnonzero(profile)
    midline = nx / 2
    if occupied.size:  # the emptiest column of the lung profile in the central 40 % of the lungs' extent
        lo, hi = occupied[0], occupied[-1]
        a, b = int(lo + 0.3 * (hi - lo)), int(lo + 0.7 * (hi - lo)) + 1
        if b > a:
            smooth = np.convolve(profile, np.ones(5) / 5, mode="same")
            midline = a + int(np.argmin(smooth[a:b]))
    left_of = (xs - midline) * to_left > 0
    left = np.broadcast_to(left_of[:, None, None], lung.shape).copy()
    labels, n = _components(lung) if labels is None else (labels, int(labels.max()))
    if n == 0:
        return left
    # per component: voxel count, mean x and share left of the midline, in one pass each over the lung voxels
    # (the background's bin is not used; the sums of the others run in the same order as over the whole grid)
    where = np.flatnonzero(lung)
    flat = labels.ravel()[where]
    x_of = where // (lung.shape[1] * lung.shape[2])
    counts = np.bincount(flat, minlength=n + 1).astype(float)
    centre = np.bincount(flat, weights=xs[x_of], minlength=n + 1) / np.maximum(counts, 1)
    share = np.bincount(flat, weights=left_of[x_of].astype(float), minlength=n + 1) / np.maximum(counts, 1)
    whole = (share <= 0.1) | (share >= 0.9)  # components that straddle the midline keep the cut
    side = (centre - midline) * to_left > 0
    assign = whole & (np.arange(n + 1) > 0)
    pick = assign[flat]
    left.ravel()[where[pick]] = side[flat[pick]]
    return left


class ChestPostprocessd(MapTransform):
    """Turn the network's ``[background, lung, airway, nodule]`` probabilities into
    ``[background, left lung, right lung, airway, nodule]`` scores (see the module docstring).

    ``body_threshold`` is soft tissue on the scale of the preprocessed ``image_key`` (e.g. -500 HU); None: no body
    check, only the border rule. ``softmax``: the input is the network's logits, turned into probabilities here
    (instead of by an ``Activationsd`` before it).

    The scores are written straight into the one output tensor (the softmax included): an ``Activationsd``, a copy
    and a concatenation each allocated and filled a volume of all channels: without them the segmentation's
    postprocess on LIDC-IDRI-0001 (one thread) went from 1.6-1.9 s to 1.3-1.4 s (fresh memory is slow to touch on
    the virtual machine measured).
    """

    def __init__(self, keys: KeysCollection, lung_channel: int = 1, nodule_channel: int = 3,
                 nodule_weight: float = 1.0, image_key: str = "image", body_threshold: float | None = None,
                 softmax: bool = False, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.lung_channel = int(lung_channel)
        self.image_key = image_key
        self.body_threshold = body_threshold
        self.nodule_channel = int(nodule_channel)
        self.nodule_weight = float(nodule_weight)
        self.softmax = bool(softmax)

    def _scores(self, values: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """A new ``(C + 1, x, y, z)`` float tensor holding ``values``' channels (softmax over them when asked),
        the right lung's slot (after the lung channel) left empty; and where each input channel went."""
        lung = self.lung_channel
        slots = [c if c <= lung else c + 1 for c in range(values.shape[0])]
        out = torch.empty((values.shape[0] + 1, *values.shape[1:]), dtype=torch.float32, device=values.device)
        if self.softmax:
            top = values.amax(dim=0).float()  # float32 sums even for half-precision logits (a GPU run)
            for channel, slot in enumerate(slots):
                torch.sub(values[channel], top, out=out[slot]).exp_()
            total = top  # reused: the maximum is not needed again
            torch.add(out[slots[0]], out[slots[1]], out=total)
            for slot in slots[2:]:
                total += out[slot]
            for slot in slots:
                out[slot] /= total
        else:
            for channel, slot in enumerate(slots):
                out[slot].copy_(values[channel])
        return out, slots

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            pred = d[key]
            affine = (pred.affine if isinstance(pred, MetaTensor) else torch.eye(4)).detach().cpu().numpy()
            out, slots = self._scores(pred.as_tensor() if isinstance(pred, MetaTensor) else torch.as_tensor(pred))
            lung_slot = slots[self.lung_channel]
            out[slots[self.nodule_channel]] *= self.nodule_weight
            # as argmax over the input's channels, ~10x faster
            lung_mask = (_channel_argmax([out[slot] for slot in slots]) == self.lung_channel).cpu().numpy()
            body = None
            if self.body_threshold is not None and self.image_key in d:
                image = d[self.image_key]
                image = (image.as_tensor() if isinstance(image, MetaTensor) else torch.as_tensor(image))
                body = body_mask(image[0].cpu().numpy(), self.body_threshold)
                d[BODY_KEY] = {"threshold": float(self.body_threshold), "mask": body, "image_key": self.image_key}
            kept, labels = _kept_lung(lung_mask, body, 0.0)
            outside = torch.from_numpy(lung_mask & ~kept).to(out.device)
            out[0][outside] += out[lung_slot][outside]  # outside air: background after all
            out[lung_slot][outside] = 0
            left = torch.from_numpy(side_map(kept, affine, labels)).to(out.device)
            torch.mul(out[lung_slot], ~left, out=out[lung_slot + 1])  # the right lung
            out[lung_slot] *= left
            d[key] = MetaTensor(out, meta=dict(pred.meta)) if isinstance(pred, MetaTensor) else out
        return d
