"""Left and right lung from one "lung" channel: which lung is which is anatomy, not texture.

The built-in segmentation network learns lung / airway / nodule on patches too small to hold both lungs, so it is
not asked which lung it sees. :class:`SplitLungsd` (a MONAI transform for the bundle's postprocessing) splits the
lung channel by side: the lungs' connected components, each given whole to the side of the midline its centre lies
on, and a component that straddles the midline (lungs touching at the anterior junction) cut at the midline. The
midline is the emptiest sagittal plane between the two lungs (the mediastinum). Patient left is larger LPS x.
"""
from __future__ import annotations

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform


def side_map(lung: np.ndarray, affine_ras: np.ndarray) -> np.ndarray:
    """``True`` where a voxel of the ``(x, y, z)`` grid belongs to the patient's left lung side.

    ``lung`` is the boolean lung mask; ``affine_ras`` the grid's index -> RAS affine (used to know which way is
    left, and assumed close to axis-aligned, as after MONAI's ``Orientation``).
    """
    import SimpleITK as sitk

    to_left = -np.sign(affine_ras[0, 0]) if affine_ras[0, 0] else 1.0  # RAS x grows to the patient's right
    nx = lung.shape[0]
    profile = lung.sum(axis=(1, 2)).astype(float)
    # the midline: the emptiest column of the lung profile in the central 40 % of the lungs' extent
    occupied = np.flatnonzero(profile)
    if occupied.size == 0:
        midline = nx / 2
    else:
        lo, hi = occupied[0], occupied[-1]
        a, b = int(lo + 0.3 * (hi - lo)), int(lo + 0.7 * (hi - lo)) + 1
        smooth = np.convolve(profile, np.ones(5) / 5, mode="same")
        midline = a + int(np.argmin(smooth[a:b])) if b > a else nx / 2
    index = np.arange(nx, dtype=float)[:, None, None]
    left = np.broadcast_to((index - midline) * to_left > 0, lung.shape).copy()
    if not lung.any():
        return left
    components = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(lung.astype(np.uint8))))
    xs = np.arange(nx, dtype=float)
    for value in range(1, int(components.max()) + 1):
        part = components == value
        counts = part.sum(axis=(1, 2))
        centre = float((counts * xs).sum() / counts.sum())
        share_left = counts[(xs - midline) * to_left > 0].sum() / counts.sum()
        if 0.1 < share_left < 0.9:
            continue  # straddles the midline: keep the cut at the midline
        left[part] = (centre - midline) * to_left > 0
    return left


class SplitLungsd(MapTransform):
    """Turn channels ``[background, lung, *others]`` into ``[background, left lung, right lung, *others]``.

    Works on probabilities (the lung channel goes whole to one side per voxel), so the result can still be
    resampled linearly before the argmax.
    """

    def __init__(self, keys: KeysCollection, lung_channel: int = 1, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.lung_channel = int(lung_channel)

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            pred = d[key]
            affine = (pred.affine if isinstance(pred, MetaTensor) else torch.eye(4)).detach().cpu().numpy()
            scores = pred.as_tensor() if isinstance(pred, MetaTensor) else torch.as_tensor(pred)
            lung_mask = (scores.argmax(dim=0) == self.lung_channel).cpu().numpy()
            left = torch.from_numpy(side_map(lung_mask, affine)).to(scores.device)
            lung = scores[self.lung_channel]
            channels = [scores[:self.lung_channel], (lung * left)[None], (lung * ~left)[None],
                        scores[self.lung_channel + 1:]]
            out = torch.cat(channels, dim=0)
            d[key] = MetaTensor(out, meta=dict(pred.meta)) if isinstance(pred, MetaTensor) else out
        return d
