"""Occlusion maps of the built-in detector's findings (issue 11, "Explain them"): placed on the study's grid as
SimpleITK places the patch, smooth at the patch's edge, empty when nothing lowers the score."""
from __future__ import annotations

import numpy as np
import pytest

from inference.jobs import run_job
from inference.registry import find_model
from viewer.core.sample import DEMO_MODELS


@pytest.fixture(scope="module")
def detector():
    from inference.bundle import load_bundle

    return load_bundle(find_model(DEMO_MODELS[0]), device="cpu")


@pytest.fixture(scope="module")
def demo_phantom():
    from inference.training.phantom import generate_phantom

    return generate_phantom(0)


def _largest_nodule_box(phantom):
    nodule = max(phantom.nodules, key=lambda n: n.diameter_mm)
    centre, radius = np.array(nodule.center_lps), nodule.diameter_mm / 2
    return nodule, np.concatenate([centre - radius, centre + radius])


@pytest.mark.parametrize("flip", [False, True], ids=["axial", "flipped-oblique"])
def test_the_patch_map_lands_where_simpleitk_puts_the_patch(flip):
    """A patch map resampled onto a study grid - also one with reversed axes and a tilt - equals SimpleITK's
    linear resampling of the same patch, placed by its centre and spacing in LPS."""
    import SimpleITK as sitk

    from inference.occlusion import place_on_grid

    rng = np.random.default_rng(1)
    patch = rng.random((32, 32, 32)).astype(np.float32)
    centre, spacing = np.array([10.0, -20.0, 30.0]), 1.5
    direction = np.diag([0.8, 0.7, 1.25])
    if flip:
        angle = np.deg2rad(12)
        tilt = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
        direction = tilt @ np.diag([-0.8, 0.7, -1.25])
    shape = (50, 90, 90)  # z, y, x
    affine = np.eye(4)
    affine[:3, :3] = direction
    affine[:3, 3] = centre - direction @ (np.array(shape[::-1]) / 2)
    ours = place_on_grid(patch, centre, spacing, shape, affine)

    source = sitk.GetImageFromArray(patch)  # (S, P, L) array = x along L, y along P, z along S
    source.SetSpacing([spacing] * 3)
    source.SetOrigin((centre - 15.5 * spacing).tolist())
    reference = sitk.Image([int(s) for s in shape[::-1]], sitk.sitkFloat32)
    column_norms = np.linalg.norm(direction, axis=0)
    reference.SetSpacing(column_norms.tolist())
    reference.SetDirection((direction / column_norms).ravel().tolist())
    reference.SetOrigin(affine[:3, 3].tolist())
    theirs = sitk.GetArrayFromImage(sitk.Resample(source, reference, sitk.Transform(), sitk.sitkLinear, 0.0))
    # compared where the study voxel falls between the patch's first and last voxel centres: over the outer half
    # voxel ITK holds the edge value, where ours fades to zero
    xyz = np.stack(np.meshgrid(*(np.arange(n) for n in shape[::-1]), indexing="ij"), -1).reshape(-1, 3)
    at = ((xyz @ affine[:3, :3].T + affine[:3, 3]) - source.GetOrigin()) / spacing  # patch index, ITK's placing
    inside = np.all((at >= 0) & (at <= 31), axis=1).reshape(shape[::-1]).transpose(2, 1, 0)
    assert inside.sum() > 100_000
    assert np.allclose(ours[inside], theirs[inside], atol=1e-5)
    beyond = np.any((at <= -1) | (at >= 32), axis=1).reshape(shape[::-1]).transpose(2, 1, 0)
    assert beyond.sum() > 100_000 and not ours[beyond].any()  # nothing a patch voxel or more outside it


def test_a_findings_map_peaks_on_its_nodule_and_fades_out_at_the_patchs_edge(detector, demo_phantom):
    from inference.gradcam import explain
    from inference.models.nodule_classifier import patch_spacing

    nodule, box = _largest_nodule_box(demo_phantom)
    saliency = run_job(explain(detector, demo_phantom.hu, demo_phantom.affine, box_lps=box, target_name="finding #1"))
    assert saliency.method == "occlusion" and saliency.target == "finding #1"
    values = saliency.values
    assert values.shape == demo_phantom.hu.shape and values.min() == 0 and values.max() == pytest.approx(1.0)
    peak = np.array(np.unravel_index(int(np.argmax(values)), values.shape)[::-1], float)
    peak_lps = demo_phantom.affine[:3, :3] @ peak + demo_phantom.affine[:3, 3]
    assert np.linalg.norm(peak_lps - np.array(nodule.center_lps)) <= nodule.diameter_mm / 2 + 1.0
    # nothing beyond the patch, and no step where the patch ends: the map has faded to nothing there
    half = 16 * patch_spacing(float(np.max(box[3:] - box[:3])))
    lit = np.argwhere(values > 0)[:, ::-1] @ demo_phantom.affine[:3, :3].T + demo_phantom.affine[:3, 3]
    assert np.all(np.abs(lit - (box[:3] + box[3:]) / 2) <= half + 1.0)
    outer = np.abs(lit - (box[:3] + box[3:]) / 2).max(axis=1) > half - 1.0  # the patch's outermost millimetre
    assert values[values > 0][outer].max(initial=0) < 0.05
    # smooth: no neighbouring voxels (2.5 mm apart along z here) differ by 0.4 of the peak; the occluders' maps
    # unsmoothed step by 0.83 between their blocks
    assert max(np.abs(np.diff(values, axis=a)).max() for a in range(3)) < 0.4


def test_a_score_that_no_occlusion_lowers_gives_an_empty_map_and_says_so(detector, demo_phantom):
    """A classifier that does not look at the image (its score cannot drop): the map is empty, not rescaled noise."""
    import copy

    import torch

    from inference.gradcam import explain

    class Blind(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.tensor(3.0))

        def forward(self, patches, scalars):
            return self.bias.expand(len(patches))

    blind = copy.copy(detector)
    # its own detector (a shallow copy of a torch Module shares its submodules), reading the same network
    blind.detector = copy.deepcopy(detector.detector, memo={id(detector.detector.network): detector.network})
    blind.detector.classifier = Blind()
    _, box = _largest_nodule_box(demo_phantom)
    messages = []
    job = explain(blind, demo_phantom.hu, demo_phantom.affine, box_lps=box)
    saliency = run_job(job, lambda p: messages.append(p.message))
    assert not saliency.values.any()
    assert any("lowers its score" in m for m in messages), messages


def test_a_box_on_the_corner_of_the_volume_is_explained_inside_it(detector, demo_phantom):
    """Half the patch lies outside the study (sampled as air): the map is finite, on the study's grid, and lit only
    near the corner."""
    from inference.gradcam import explain

    corner = demo_phantom.affine[:3, 3]  # voxel (0, 0, 0)
    box = np.concatenate([corner - 5.0, corner + 5.0])
    values = run_job(explain(detector, demo_phantom.hu, demo_phantom.affine, box_lps=box)).values
    assert values.shape == demo_phantom.hu.shape and np.isfinite(values).all() and values.min() >= 0
    lit = np.argwhere(values > 0)
    assert lit.size == 0 or (lit.max(axis=0) * np.linalg.norm(demo_phantom.affine[:3, :3], axis=0)[::-1]).max() < 40


def test_a_sagittal_acquisition_gets_the_same_map_in_the_patients_space(detector, demo_phantom):
    """The same phantom stored as sagittal slices (one slice per column x, rows running head to feet, columns
    front to back): the map's peak lands on the same point in LPS as on the axial study."""
    from inference.gradcam import explain

    nodule, box = _largest_nodule_box(demo_phantom)
    axial = run_job(explain(detector, demo_phantom.hu, demo_phantom.affine, box_lps=box)).values
    # sagittal array (slice = x, row = z flipped, column = y): axial[z, y, x] -> sagittal[x, nz - 1 - z, y]
    nz = demo_phantom.hu.shape[0]
    sagittal_hu = np.ascontiguousarray(demo_phantom.hu.transpose(2, 0, 1)[:, ::-1, :])
    a = demo_phantom.affine
    affine = np.eye(4)  # (column, row, slice) = (y, nz - 1 - z, x) -> LPS
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = a[:3, 1], -a[:3, 2], a[:3, 0]
    affine[:3, 3] = a[:3, 3] + (nz - 1) * a[:3, 2]
    sagittal = run_job(explain(detector, sagittal_hu, affine, box_lps=box)).values
    assert sagittal.shape == sagittal_hu.shape and sagittal.max() == pytest.approx(1.0)

    def peak_lps(values, aff):
        peak = np.array(np.unravel_index(int(np.argmax(values)), values.shape)[::-1], float)
        return aff[:3, :3] @ peak + aff[:3, 3]

    spacing = np.linalg.norm(a[:3, :3], axis=0).max()
    assert np.linalg.norm(peak_lps(sagittal, affine) - peak_lps(axial, a)) <= 2 * spacing
    assert np.linalg.norm(peak_lps(sagittal, affine) - np.array(nodule.center_lps)) <= nodule.diameter_mm / 2 + 1
