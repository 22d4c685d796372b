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


def test_the_detectors_findings_are_drawn_once_each_also_where_the_network_saw_no_nodule():
    """The findings the detector keeps are drawn into the nodule label: one the network's label missed, and one it
    labelled (drawn from the finding's box, not scored twice)."""
    shape = (32, 64, 80)
    labels = np.zeros(shape, np.uint8)
    array = np.full(shape, 40.0, np.float32)  # soft tissue
    labels[3:29, 6:58, 6:74] = 1  # a lung
    array[labels == 1] = -850.0
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    labelled = (z - 16) ** 2 + (y - 32) ** 2 + (x - 22) ** 2 <= 25  # 10 mm, in the network's label
    missed = (z - 16) ** 2 + (y - 32) ** 2 + (x - 56) ** 2 <= 16  # 8 mm, labelled lung by the network
    array[labelled | missed] = 30.0
    labels[labelled] = 4
    findings = [[10, 26, 16, 23, 39, 29], [11, 27, 51, 22, 38, 62]]  # z0 y0 x0 z1 y1 x1, half-open
    _Everything.seen = 0
    out = confirm_nodules(labels, 4, array, np.eye(4), _Everything(), threshold=0.5, findings=findings)
    assert _Everything.seen == 0  # the labelled nodule is the first finding's: not scored again
    drawn = out == 4
    for ball in (labelled, missed):
        assert np.count_nonzero(drawn & ball) >= 0.8 * np.count_nonzero(ball)
    assert np.count_nonzero(drawn & ~(labelled | missed)) <= 0.2 * np.count_nonzero(labelled | missed)
    alone = confirm_nodules(labels, 4, array, np.eye(4), _Everything(), threshold=0.5)
    assert not (alone[missed] == 4).any()  # without the findings, the network's label only
