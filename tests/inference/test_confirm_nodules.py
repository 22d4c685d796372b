"""The segmentation's nodule label checked by the classifier: islands outside the lungs are not lung nodules."""
from __future__ import annotations

import numpy as np
import torch

from inference.confirm_nodules import confirm_nodules
from inference.models.nodule_classifier import NoduleClassifier


class _Everything(NoduleClassifier):
    """Calls every candidate a nodule, and counts the candidates it was shown."""

    seen = 0

    def forward(self, patches, scalars):
        type(self).seen += len(patches)
        return torch.full((len(patches),), 10.0)


def test_a_nodule_island_in_the_chest_wall_goes_back_to_the_tissue_unscored():
    """On LIDC-IDRI-0001 the network labelled 131 islands in the soft tissue of the back "nodule"; the classifier
    kept some. A component with (almost) no lung around it is no lung nodule and is not even scored."""
    shape = (24, 64, 64)
    labels = np.zeros(shape, np.uint8)
    array = np.full(shape, 40.0, np.float32)  # soft tissue
    labels[4:20, 8:56, 8:40] = 1  # a lung
    array[labels == 1] = -850.0
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    in_lung = (z - 12) ** 2 + (y - 30) ** 2 + (x - 24) ** 2 <= 16
    in_wall = (z - 12) ** 2 + (y - 30) ** 2 + (x - 54) ** 2 <= 9  # 14 voxels from the lung
    labels[in_lung | in_wall] = 4
    array[in_lung] = 20.0
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    _Everything.seen = 0
    out = confirm_nodules(labels, 4, array, affine, _Everything(), threshold=0.5)
    assert (out[in_wall] == 0).all()
    assert (out[in_lung] == 4).any()
    assert _Everything.seen == 1  # the lung's nodule only
