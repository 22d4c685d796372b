"""Post-processing of the built-in models: left/right lung split by anatomy, findings from a segmentation label."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from inference.models.lungs import ChestPostprocessd, side_map
from inference.models.seg_detector import SegmentationDetector


@pytest.fixture(scope="module")
def phantom_case():
    from inference.bundle import load_bundle
    from inference.resources import builtin_models_dir
    from inference.training.data import prepare_case

    bundle = load_bundle(builtin_models_dir() / "chest_ct_lung_nodule_segmentation", device="cpu",
                         random_weights=True)
    return prepare_case(0, bundle.preprocessing)  # the demo phantom on the model's grid (RAS, 1.25/2.5 mm)


def _scores(labels: np.ndarray) -> torch.Tensor:
    """Network-style scores [background, lung, airway, nodule] from a phantom label map."""
    classes = np.array([0, 1, 1, 2, 3])[labels]
    return torch.nn.functional.one_hot(torch.from_numpy(classes), 4).permute(3, 0, 1, 2).float()


def test_split_lungs_gives_each_lung_its_side(phantom_case):
    labels = phantom_case.labels
    pred = MetaTensor(_scores(labels), affine=torch.as_tensor(phantom_case.affine_ras))
    out = ChestPostprocessd(keys="pred")({"pred": pred})["pred"]
    assert out.shape[0] == 5 and torch.allclose(out.affine.double(), pred.affine.double())
    split = out.argmax(dim=0).numpy()
    for value in (1, 2, 3, 4):
        truth, got = labels == value, split == value
        assert (truth & got).sum() / truth.sum() > 0.999, value
    assert np.array_equal(split == 0, labels == 0)


def test_softmax_inside_gives_what_an_activation_before_gives(phantom_case):
    from monai.transforms import Activationsd

    logits = 4 * _scores(phantom_case.labels) + torch.randn((4, *phantom_case.labels.shape),
                                                            generator=torch.Generator().manual_seed(0))
    pred = MetaTensor(logits, affine=torch.as_tensor(phantom_case.affine_ras))
    before = Activationsd(keys="pred", softmax=True)({"pred": pred})
    expected = ChestPostprocessd(keys="pred", nodule_weight=1.5)(before)["pred"]
    got = ChestPostprocessd(keys="pred", nodule_weight=1.5, softmax=True)({"pred": pred})["pred"]
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.equal(pred.as_tensor(), logits)  # the network output (kept for the detector) is not written to
    half = ChestPostprocessd(keys="pred", nodule_weight=1.5, softmax=True)({"pred": pred.half()})["pred"]
    assert half.dtype == torch.float32 and torch.allclose(half, expected, atol=2e-3)  # a GPU's half-precision output


def test_lungs_touching_at_the_front_are_cut_at_the_midline(phantom_case):
    import SimpleITK as sitk

    lungs = np.isin(phantom_case.labels, (1, 2))
    # bridge the lungs in front of the mediastinum (an anterior junction): one connected component
    xs = [np.argwhere(phantom_case.labels == v)[:, 0].mean() for v in (1, 2)]
    ys = np.flatnonzero(lungs.any(axis=(0, 2)))
    zs = np.flatnonzero(lungs.any(axis=(0, 1)))
    grown = lungs.copy()
    grown[int(min(xs)):int(max(xs)), ys[0] + 15:ys[0] + 25, zs[0] + 10:zs[-1] - 10] = True
    parts = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(grown.astype(np.uint8))))
    assert np.bincount(parts[grown]).max() > 0.98 * grown.sum()  # both lungs are one component now
    left = side_map(grown, phantom_case.affine_ras)
    truth_left, truth_right = phantom_case.labels == 1, phantom_case.labels == 2
    assert left[truth_left].mean() > 0.98 and (~left[truth_right]).mean() > 0.98


class _Blobs(torch.nn.Module):
    """Scores whose nodule channel is the image above 0.5 (a stand-in network)."""

    def forward(self, x):
        nodule = (x - 0.5) * 20
        return torch.cat([-nodule, torch.zeros_like(x) - 5, torch.zeros_like(x) - 5, nodule], dim=1)


def test_the_segmentation_detector_boxes_each_component():
    image = torch.zeros(1, 40, 32, 23)  # not a multiple of size_divisible: padded inside
    image[0, 5:9, 10:14, 3:5] = 1.0
    image[0, 30:33, 20:26, 10:20] = 0.8
    image[0, 2, 2, 2] = 1.0  # a single voxel: below min_voxels
    detector = SegmentationDetector(_Blobs(), channel=3, roi_size=(32, 32, 16), threshold=0.5, min_voxels=3)
    for use_inferer in (False, True):
        out = detector([image], use_inferer=use_inferer)[0]
        boxes = sorted(out["box"].tolist())
        assert boxes == [[4.5, 9.5, 2.5, 8.5, 13.5, 4.5], [29.5, 19.5, 9.5, 32.5, 25.5, 19.5]]
        assert torch.all(out["label"] == 0) and len(out["label_scores"]) == 2
        assert sorted(out["label_scores"].tolist())[-1] == pytest.approx(torch.sigmoid(torch.tensor(20.0)).item(),
                                                                          abs=1e-3)


def test_faint_components_are_added_and_leave_the_candidates_boxes_as_they_were():
    """The network half sees ground glass: components at a lower probability are proposed too, but only those that
    never reach the threshold; a nodule's faint rim does not grow its box."""
    image = torch.zeros(1, 40, 32, 23)
    image[0, 5:9, 10:14, 3:5] = 1.0  # a candidate (probability ~1)
    image[0, 9:12, 10:14, 3:5] = 0.43  # its faint rim (~0.06)
    image[0, 30:33, 20:26, 10:14] = 0.43  # faint and on its own: ground glass the network half sees
    strong = [4.5, 9.5, 2.5, 8.5, 13.5, 4.5]
    plain = SegmentationDetector(_Blobs(), channel=3, roi_size=(32, 32, 16), threshold=0.5)
    assert plain([image])[0]["box"].tolist() == [strong]
    both = SegmentationDetector(_Blobs(), channel=3, roi_size=(32, 32, 16), threshold=0.5, faint_threshold=0.03)
    out = both([image])[0]
    assert out["box"].tolist() == [strong, [29.5, 19.5, 9.5, 32.5, 25.5, 13.5]]
    assert 0.03 <= out["label_scores"][1].item() < 0.5


def test_lung_outside_the_body_is_dropped():
    """Air inside a patient table (called lung by the network on a real scan) becomes background."""
    x, y, z = np.meshgrid(np.arange(80), np.arange(70), np.arange(12), indexing="ij")
    image = np.zeros((80, 70, 12), np.float32)  # (x, y, z), scaled: 0 = air
    body = ((x - 40) / 34) ** 2 + ((y - 30) / 24) ** 2 < 1
    image[body] = 0.7
    lungs = (((x - 24) / 10) ** 2 + ((y - 30) / 14) ** 2 < 1) | (((x - 56) / 10) ** 2 + ((y - 30) / 14) ** 2 < 1)
    image[lungs] = 0.1
    image[10:70, 58:68] = 0.8  # the table, apart from the patient
    pocket = np.zeros_like(lungs)
    pocket[20:60, 61:65] = True
    image[pocket] = 0.0
    classes = np.where(lungs | pocket, 1, 0)
    scores = torch.nn.functional.one_hot(torch.from_numpy(classes), 4).permute(3, 0, 1, 2).float()
    affine = torch.diag(torch.tensor([1.25, 1.25, 2.5, 1.0], dtype=torch.float64))
    data = {"pred": MetaTensor(scores, affine=affine),
            "image": MetaTensor(torch.from_numpy(image)[None], affine=affine)}
    without = ChestPostprocessd(keys="pred")(dict(data))["pred"].argmax(dim=0).numpy()
    assert np.isin(without[pocket], (1, 2)).all()  # the border rule alone keeps it (it does not touch the edge)
    out = ChestPostprocessd(keys="pred", body_threshold=0.357)(dict(data))["pred"].argmax(dim=0).numpy()
    assert (out[pocket] == 0).all()
    # RAS x grows to the patient's right: the lung at small x is the left one
    assert (out[:40][lungs[:40]] == 1).all() and (out[40:][lungs[40:]] == 2).all()


class _Labelled(torch.nn.Module):
    """Scores from a label map carried in the image: 0.1 lung, 0.7 soft tissue, 0.9 "nodule"."""

    def forward(self, x):
        lung, nodule = (x < 0.3).float(), (x > 0.8).float()
        tissue = 1 - lung - nodule
        return torch.cat([tissue * 10, lung * 10, torch.zeros_like(x) - 5, nodule * 10], dim=1)


def _chest(nodules):
    """A body (soft tissue) holding two lungs, and "nodule" blobs ``(x, y, z, radius)`` in voxels."""
    x, y, z = np.meshgrid(np.arange(96), np.arange(80), np.arange(24), indexing="ij")
    image = np.zeros((96, 80, 24), np.float32)
    image[((x - 48) / 44) ** 2 + ((y - 40) / 36) ** 2 < 1] = 0.7
    for cx in (28, 68):
        image[((x - cx) / 14) ** 2 + ((y - 40) / 22) ** 2 + ((z - 12) / 14) ** 2 < 1] = 0.1
    for cx, cy, cz, r in nodules:
        image[(x - cx) ** 2 + (y - cy) ** 2 + ((z - cz) * 2) ** 2 <= r * r] = 0.9
    return torch.from_numpy(image)[None]


def test_the_detector_keeps_findings_in_or_against_the_lungs_only():
    """A "nodule" in the lung and one on its wall are findings; one in the chest wall far from the lungs (the
    network's islands in the back of LIDC-IDRI-0001) is not."""
    in_lung, on_wall, in_back = (28, 40, 12, 4), (42, 40, 12, 3), (48, 8, 12, 3)
    image = _chest([in_lung, on_wall, in_back])
    lungs = {"channels": [1, 3], "spacing_mm": [1.25, 1.25, 2.5], "body_threshold": 0.357, "reach_mm": 5.0}
    everywhere = SegmentationDetector(_Labelled(), channel=3, roi_size=(96, 80, 24), threshold=0.5)
    in_lungs = SegmentationDetector(_Labelled(), channel=3, roi_size=(96, 80, 24), threshold=0.5, lungs=lungs)

    def centres(detector):
        boxes = detector([image])[0]["box"].numpy()
        return sorted(np.rint((boxes[:, :2] + boxes[:, 3:5]) / 2).astype(int).tolist())

    assert centres(everywhere) == [[28, 40], [42, 40], [48, 8]]
    assert centres(in_lungs) == [[28, 40], [42, 40]]


def test_blob_candidates_need_the_lungs():
    with pytest.raises(ValueError, match="lungs"):
        SegmentationDetector(_Blobs(), channel=3, roi_size=(8, 8, 8), blobs={})


def test_the_body_mask_made_by_the_postprocessing_is_what_the_nodule_finder_uses():
    """ChestPostprocessd leaves its body mask beside its output; the detector takes a body mask made for its own
    threshold and the image's shape instead of making one (run all: once, not twice), and makes its own otherwise."""
    from inference.models.lungs import BODY_KEY, body_mask

    image = _chest([(28, 40, 12, 4), (68, 40, 12, 4)])  # a "nodule" in each lung
    data = {"pred": MetaTensor(_Labelled()(image[None])[0]), "image": MetaTensor(image)}
    left = ChestPostprocessd(keys="pred", softmax=True, body_threshold=0.357)(data)[BODY_KEY]
    assert left["threshold"] == pytest.approx(0.357) and left["image_key"] == "image"
    np.testing.assert_array_equal(left["mask"], body_mask(image[0].numpy(), 0.357))

    lungs = {"channels": [1, 3], "spacing_mm": [1.25, 1.25, 2.5], "body_threshold": 0.357, "reach_mm": 5.0}
    detector = SegmentationDetector(_Labelled(), channel=3, roi_size=(96, 80, 24), threshold=0.5, lungs=lungs)

    def centres(body):
        boxes = detector([image], bodies=[body])[0]["box"].numpy()
        return sorted(np.rint((boxes[:, 0] + boxes[:, 3]) / 2).astype(int).tolist())

    half = left["mask"].copy()
    half[48:] = False  # a body that leaves out the right lung: its "nodule" is no longer in a lung
    assert centres(None) == centres(left) == [28, 68]
    assert centres({"threshold": 0.357, "mask": half}) == [28]
    assert centres({"threshold": 0.5, "mask": half}) == [28, 68]  # made for another threshold: not used


@pytest.mark.parametrize("made_on, kept", [("image", True), ("other", False)])
def test_the_body_mask_is_kept_for_the_nodule_finder_only_when_made_on_the_bundles_image(made_on, kept):
    """A postprocessing whose body mask comes from another image of the data (same shape) must not hand it to the
    nodule finder of the bundle's image."""
    from types import SimpleNamespace

    from inference.models.lungs import BODY_KEY
    from inference.task import _postprocess_dense

    image = _chest([(28, 40, 12, 4)])
    bundle = SimpleNamespace(image_key="image", pred_key="pred", postprocessing=ChestPostprocessd(
        keys="pred", softmax=True, body_threshold=0.357, image_key=made_on))
    data = {"image": MetaTensor(image), "other": MetaTensor(image.clone())}
    _postprocess_dense(bundle, data, MetaTensor(_Labelled()(image[None])[0]))
    assert (BODY_KEY in data) is kept
