"""Prior and current display states move together through the registration transform."""
import numpy as np
import pytest

from viewer.core.display import DisplayState, Plane
from viewer.core.linked_display import LinkedDisplays, apply_transform
from viewer.core.volume import Volume


def _volume(shape, spacing, origin, modality="CT"):
    affine = np.diag([spacing[0], spacing[1], spacing[2], 1.0])
    affine[:3, 3] = origin
    array = np.zeros(shape, dtype=np.int16)
    return Volume(array=array, affine=affine, modality=modality, slices_loaded=shape[0])


def _shift(dx, dy, dz):
    matrix = np.eye(4)
    matrix[:3, 3] = (dx, dy, dz)
    return matrix


def test_scrolling_the_current_moves_the_prior_to_the_same_anatomy_across_spacings():
    current = DisplayState(_volume((100, 64, 64), (0.7, 0.7, 1.0), (-22.0, -22.0, -50.0)))
    prior = DisplayState(_volume((40, 64, 64), (0.7, 0.7, 2.5), (-22.0, -22.0, -40.0)))
    # the patient lies 12.5 mm further along z in the prior's table coordinates
    link = LinkedDisplays(current, prior, _shift(0.0, 0.0, 12.5))
    current.set_slice(Plane.AXIAL, 50)  # z = 0 mm in the current → 12.5 mm in the prior → prior slice 21
    assert prior.position_lps[2] == pytest.approx(current.position_lps[2] + 12.5)
    assert prior.slice_index(Plane.AXIAL) == 21
    current.step(Plane.AXIAL, 5)  # 5 mm on: the prior moves 2 of its 2.5 mm slices
    assert prior.slice_index(Plane.AXIAL) == 23
    link.close()
    current.step(Plane.AXIAL, 10)
    assert prior.slice_index(Plane.AXIAL) == 23


def test_scrolling_the_prior_moves_the_current_back_through_the_inverse():
    current = DisplayState(_volume((60, 32, 32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)))
    prior = DisplayState(_volume((60, 32, 32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)))
    angle = np.radians(3.0)
    rotation = np.eye(4)
    rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    rotation[:3, 3] = (1.0, -2.0, 4.0)
    link = LinkedDisplays(current, prior, rotation)
    prior.set_slice(Plane.AXIAL, 30)
    # the current shows the anatomy the prior shows
    np.testing.assert_allclose(apply_transform(rotation, current.position_lps), prior.position_lps, atol=1e-6)
    assert current.slice_index(Plane.AXIAL) == 26
    link.set_transform(None)  # "Reset": table position again
    assert prior.slice_index(Plane.AXIAL) == current.slice_index(Plane.AXIAL)


def test_window_and_inversion_are_shared_both_ways():
    current = DisplayState(_volume((10, 16, 16), (1, 1, 1), (0, 0, 0)))
    prior = DisplayState(_volume((10, 16, 16), (1, 1, 1), (0, 0, 0)))
    current.apply_preset("lung")
    link = LinkedDisplays(current, prior)
    assert prior.window == current.window and prior.window_name == "lung"
    prior.apply_preset("mediastinum")
    assert current.window == prior.window
    current.toggle_invert()
    assert prior.invert
    link.close()


def test_the_prior_stays_inside_its_volume_when_the_current_goes_beyond_it():
    current = DisplayState(_volume((200, 16, 16), (1, 1, 1), (0, 0, 0)))
    prior = DisplayState(_volume((20, 16, 16), (1, 1, 1), (0, 0, 0)))
    LinkedDisplays(current, prior)
    current.set_slice(Plane.AXIAL, 150)
    assert prior.slice_index(Plane.AXIAL) == 19
    assert current.slice_index(Plane.AXIAL) == 150  # the clipped prior does not drag the current back


def test_a_broken_transform_is_refused():
    current = DisplayState(_volume((4, 8, 8), (1, 1, 1), (0, 0, 0)))
    prior = DisplayState(_volume((4, 8, 8), (1, 1, 1), (0, 0, 0)))
    link = LinkedDisplays(current, prior)
    with pytest.raises(ValueError):
        link.set_transform(np.full((4, 4), np.nan))
    with pytest.raises(ValueError):
        link.set_transform(np.eye(3))
