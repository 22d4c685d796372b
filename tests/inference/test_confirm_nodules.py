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


def _chest(shape, lung):
    """Labels and HU of soft tissue (40 HU) holding a box of lung (label 1, -850 HU) at the slices ``lung``, 1 mm
    voxels, and ``ball(centre, radius)``: the mask of a ball of voxels (z, y, x)."""
    labels = np.zeros(shape, np.uint8)
    array = np.full(shape, 40.0, np.float32)
    labels[lung] = 1
    array[lung] = -850.0
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return labels, array, lambda c, r: (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= r * r


def test_a_nodule_island_in_the_chest_wall_goes_back_to_the_tissue_unscored():
    """On LIDC-IDRI-0001 the network labelled 131 islands in the soft tissue of the back "nodule"; the classifier
    kept some. A component with (almost) no lung around it is no lung nodule and is not even scored."""
    labels, array, ball = _chest((24, 64, 64), (slice(4, 20), slice(8, 56), slice(8, 40)))
    in_lung = ball((12, 30, 24), 4)
    in_wall = ball((12, 30, 54), 3)  # 14 voxels from the lung
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
    labels, array, ball = _chest((32, 64, 80), (slice(3, 29), slice(6, 58), slice(6, 74)))
    labelled = ball((16, 32, 22), 5)  # 10 mm, in the network's label
    missed = ball((16, 32, 56), 4)  # 8 mm, labelled lung by the network
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


def test_a_component_longer_than_the_largest_finding_is_no_nodule():
    """A uniform block of lung density got a 77 mm "nodule" of the network's label, kept: the classifier cannot
    judge a box that large and the redraw found nothing denser than lung. The detector drops such boxes; so does
    the check (unscored), while the nodule beside it stays."""
    labels, array, ball = _chest((24, 96, 64), (slice(2, 22), slice(4, 92), slice(4, 60)))
    long = np.zeros(labels.shape, bool)
    long[10:14, 10:85, 8:14] = True  # 75 voxels (mm) long
    nodule = ball((12, 48, 40), 4)
    labels[long | nodule] = 4
    array[nodule] = 20.0
    _Everything.seen = 0
    out = confirm_nodules(labels, 4, array, np.eye(4), _Everything(), threshold=0.5, max_mm=60.0)
    assert not (out[long] == 4).any() and (out[nodule] == 4).any()
    assert _Everything.seen == 1
    kept = confirm_nodules(labels, 4, array, np.eye(4), _Everything(), threshold=0.5)
    assert (kept[long] == 4).any()  # without the limit the classifier's word keeps it
