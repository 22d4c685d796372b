"""SeparableSpacingd gives MONAI's Spacingd answer: the same grid, metadata and values (to float32 rounding)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Spacingd

from inference.geometry import resample_separable, resample_to_grid
from inference.models.separable_spacing import SeparableSpacingd


def _image(shape, diagonal, origin=(-10.3, 4.2, 7.0), channels=2, seed=0, rotation_deg=0.0) -> MetaTensor:
    rng = np.random.default_rng(seed)
    affine = np.eye(4)
    affine[:3, :3] = np.diag(diagonal)
    if rotation_deg:
        t = np.radians(rotation_deg)
        affine[:3, :3] = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]]) @ affine[:3, :3]
    affine[:3, 3] = origin
    values = rng.normal(size=(channels, *shape)).astype(np.float32)
    return MetaTensor(torch.from_numpy(values), affine=torch.from_numpy(affine))


def _record(image) -> list[dict]:
    """The applied operations without their object ids (two instances record different ids)."""
    return [{k: repr(v) for k, v in op.items() if k != "id"} for op in image.applied_operations]


@pytest.mark.parametrize("shape, diagonal, pixdim, rotation_deg", [
    ((50, 40, 30), (0.7, 0.7, 2.5), (1.25, 1.25, 2.5), 0),  # an axial CT to the built-in network's grid
    ((33, 17, 9), (-0.9, 1.1, 3.0), (1.25, 1.25, 2.5), 0),  # a flipped axis, odd sizes
    ((20, 20, 20), (2.0, 2.0, 2.0), (0.7, 0.9, 1.3), 0),  # upsampling, samples beyond the last voxel centre
    ((1, 5, 7), (1.0, 1.0, 1.0), (0.5, 2.0, 1.0), 0),  # a single voxel along an axis
    ((12, 10, 8), (1.25, 1.25, 2.5), (1.25, 1.25, 2.5), 0),  # nothing to resample
    ((30, 20, 10), (0.8, 0.8, 2.0), (1.25, 1.25, 2.5), 10),  # an oblique image keeps its axes: still separable
])
def test_the_same_grid_metadata_and_values_as_monais_spacingd(shape, diagonal, pixdim, rotation_deg):
    image = _image(shape, diagonal, rotation_deg=rotation_deg)
    settings = dict(keys="image", pixdim=pixdim, mode="bilinear", dtype=torch.float32)
    expected = Spacingd(**settings)({"image": image})["image"]
    got = SeparableSpacingd(**settings)({"image": image})["image"]
    assert got.shape == expected.shape and got.dtype == expected.dtype == torch.float32
    assert torch.allclose(got.affine, expected.affine, atol=1e-12)
    assert _record(got) == _record(expected) and not got.pending_operations
    # grid_sample places its samples in float32: ~3e-5 of a unit-variance image
    assert float((got - expected).abs().max()) < 1e-4
    assert torch.equal(image.affine, _image(shape, diagonal, rotation_deg=rotation_deg).affine)  # input unchanged


def test_the_inverse_brings_the_image_back_onto_its_grid():
    image = _image((30, 24, 12), (0.7, 0.7, 2.5))
    transform = SeparableSpacingd("image", pixdim=(1.25, 1.25, 2.5), mode="bilinear", dtype=torch.float32)
    back = transform.inverse(transform({"image": image}))["image"]
    assert back.shape == image.shape and torch.allclose(back.affine, image.affine, atol=1e-9)
    assert not back.applied_operations


@pytest.mark.parametrize("settings, rotation_deg", [
    (dict(mode="bilinear", dtype=torch.float32, diagonal=True), 10.0),  # grids rotated against each other
    (dict(mode="nearest", dtype=torch.float32), 0.0),  # another interpolation
    (dict(mode="bilinear", dtype=torch.float32, padding_mode="zeros"), 0.0),  # another padding
    (dict(mode="bilinear"), 0.0),  # MONAI's default float64 arithmetic
])
def test_what_it_does_not_reproduce_goes_through_monai_itself(settings, rotation_deg):
    image = _image((20, 16, 10), (0.8, 0.8, 2.0), rotation_deg=rotation_deg)
    expected = Spacingd("image", pixdim=(1.25, 1.25, 2.5), **settings)({"image": image})["image"]
    got = SeparableSpacingd("image", pixdim=(1.25, 1.25, 2.5), **settings)({"image": image})["image"]
    assert torch.equal(got.as_tensor(), expected.as_tensor()) and _record(got) == _record(expected)


def test_a_lazy_call_stays_lazy():
    image = _image((20, 16, 10), (0.8, 0.8, 2.0))
    planned = SeparableSpacingd("image", pixdim=(1.25, 1.25, 2.5), dtype=torch.float32)({"image": image}, lazy=True)
    assert planned["image"].shape == image.shape and len(planned["image"].pending_operations) == 1


def test_interpolation_is_linear_between_the_two_nearest_voxels_and_clamped_at_the_edges():
    ramp = torch.arange(5, dtype=torch.float32).view(1, 5, 1, 1).repeat(1, 1, 2, 2)  # value = x index
    xform = np.diag([0.5, 1.0, 1.0, 1.0])
    xform[0, 3] = -0.5  # output voxel i samples input position i / 2 - 0.5
    out = resample_separable(ramp, xform, (12, 2, 2))
    expected = np.clip(np.arange(12) / 2 - 0.5, 0, 4)
    assert np.allclose(out[0, :, 0, 0].numpy(), expected)


@pytest.mark.parametrize("shape, diagonal, target_diagonal, target_origin, target_shape", [
    ((30, 24, 12), (1.25, 1.25, 2.5), (0.7, 0.7, 2.5), (-12.0, 2.0, 7.0), (60, 50, 12)),  # a map onto the study
    ((30, 24, 12), (1.25, 1.25, 2.5), (0.7, 0.7, 1.0), (-40.0, -20.0, -5.0), (120, 110, 50)),  # reaching beyond it
    ((30, 24, 12), (-1.25, 1.25, 2.5), (-0.9, 1.1, 3.0), (-10.3, 4.2, 7.0), (20, 30, 10)),  # flipped axes
])
def test_bilinear_placement_gives_monais_answer_zero_beyond_the_source(shape, diagonal, target_diagonal,
                                                                      target_origin, target_shape):
    from monai.transforms import SpatialResample

    image = _image(shape, diagonal, channels=1)
    target = np.diag([*target_diagonal, 1.0])
    target[:3, 3] = target_origin
    expected = SpatialResample(mode="bilinear", padding_mode="zeros", dtype=np.float32)(
        image.float(), dst_affine=torch.from_numpy(target), spatial_size=target_shape)
    got = resample_to_grid(image, target, target_shape, mode="bilinear")
    assert got.shape == expected.shape and torch.allclose(got.affine, expected.affine, atol=1e-9)
    assert float((got - expected).abs().max()) < 1e-4
    assert bool((got == 0).any()) == bool((expected.abs() < 1e-6).any())  # the same voxels left outside


@pytest.mark.parametrize("orientation", ["sagittal", "coronal"])
def test_the_built_in_preprocessing_of_a_sagittal_or_coronal_study_matches_monai(orientation):
    """Our (z, y, x) array of an acquisition that is not axial, through to_monai, Orientationd and the spacing
    transform as the built-in bundles run them: the separable transform gives MONAI's grid and values."""
    from monai.transforms import Compose, EnsureChannelFirstd, Orientationd

    from inference.geometry import to_monai

    rows, columns = ((0, 1, 0), (0, 0, -1)) if orientation == "sagittal" else ((1, 0, 0), (0, 0, -1))
    normal = np.cross(rows, columns)
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = np.multiply(rows, 0.49), np.multiply(columns, 0.51), normal * 3.3
    affine[:3, 3] = (-120.0, 80.5, 210.0)
    array = np.random.default_rng(1).integers(-1000, 400, (24, 90, 70)).astype(np.int16)  # (slices, rows, columns)

    def run(spacing):
        chain = Compose([EnsureChannelFirstd("image"), Orientationd("image", axcodes="RAS"),
                         spacing("image", pixdim=(1.25, 1.25, 2.5), mode="bilinear", dtype=torch.float32)])
        return chain({"image": to_monai(array, affine)})["image"]

    expected, got = run(Spacingd), run(SeparableSpacingd)
    assert got.shape == expected.shape and torch.allclose(got.affine, expected.affine, atol=1e-9)
    assert float((got - expected).abs().max()) < 1e-4 * 1400  # float32 sample positions, over 1400 HU of range
