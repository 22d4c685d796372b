"""Reformat geometry: radiological orientation, physical aspect and exact index <-> display <-> LPS maps."""
from __future__ import annotations

import numpy as np
import pytest

from viewer.core.reformat import Plane, assign_axes, native_plane, orientation_label, plane_geometry
from viewer.core.volume import Volume


def axial_affine(spacing=(2.5, 0.703125, 0.703125), origin=(-166.0, -171.7, -340.0)):
    """LIDC-like: rows along +x (L), columns down +y (P), slices ascending +z (S)."""
    dz, dy, dx = spacing
    a = np.eye(4)
    a[:3, 0] = (dx, 0, 0)
    a[:3, 1] = (0, dy, 0)
    a[:3, 2] = (0, 0, dz)
    a[:3, 3] = origin
    return a


def sagittal_hfdr_affine(pixel=1.015625, gap=4.8):
    """The mr-decubitus-hfdr series: row dir +P, column dir -S, slices stacked towards the patient's right."""
    a = np.eye(4)
    a[:3, 0] = (0, pixel, 0)
    a[:3, 1] = (0, 0, -pixel)
    a[:3, 2] = (-gap, 0, 0)
    a[:3, 3] = (-81.6, -130.0, 130.0)
    return a


def coronal_affine():
    """Coronal acquisition with flipped rows: row dir -L (towards R), column dir -S, slices towards A."""
    a = np.eye(4)
    a[:3, 0] = (-0.8, 0, 0)
    a[:3, 1] = (0, 0, -0.8)
    a[:3, 2] = (0, -3.0, 0)
    return a


AFFINES = {"axial": axial_affine(), "sag_hfdr": sagittal_hfdr_affine(), "coronal": coronal_affine()}


def test_orientation_letters_for_lidc_like_axial_ct():
    aff = axial_affine()
    shape = (133, 512, 512)
    assert plane_geometry(aff, shape, "axial").orientation_labels() == \
        {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert plane_geometry(aff, shape, "coronal").orientation_labels() == \
        {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert plane_geometry(aff, shape, "sagittal").orientation_labels() == \
        {"left": "A", "right": "P", "top": "S", "bottom": "I"}


@pytest.mark.parametrize("name", sorted(AFFINES))
def test_every_plane_follows_the_radiological_convention(name):
    """Whatever the acquisition, axial/coronal show R on screen-left, coronal/sagittal show S at the top."""
    expected = {
        Plane.AXIAL: {"left": "R", "right": "L", "top": "A", "bottom": "P"},
        Plane.CORONAL: {"left": "R", "right": "L", "top": "S", "bottom": "I"},
        Plane.SAGITTAL: {"left": "A", "right": "P", "top": "S", "bottom": "I"},
    }
    for plane in Plane:
        geometry = plane_geometry(AFFINES[name], (7, 5, 6), plane)
        assert geometry.orientation_labels() == expected[plane], (name, plane)


def test_sagittal_decubitus_mr_is_shown_upright_without_flips():
    geometry = plane_geometry(sagittal_hfdr_affine(), (35, 256, 256), "sagittal")
    assert (geometry.through_axis, geometry.row_axis, geometry.col_axis) == (2, 1, 0)
    assert not geometry.row_flip and not geometry.col_flip
    assert native_plane(sagittal_hfdr_affine()) is Plane.SAGITTAL
    axial = plane_geometry(sagittal_hfdr_affine(), (35, 256, 256), "axial")
    assert axial.col_axis == 2 and axial.col_flip  # slices run towards R, so they are flipped to put R on the left
    assert axial.pixel_spacing == pytest.approx((1.015625, 4.8))


def test_physical_aspect_of_reformats():
    shape = (133, 512, 512)
    aff = axial_affine()
    assert plane_geometry(aff, shape, "axial").pixel_spacing == pytest.approx((0.703125, 0.703125))
    coronal = plane_geometry(aff, shape, "coronal")
    assert coronal.image_shape == (133, 512)
    assert coronal.pixel_spacing == pytest.approx((2.5, 0.703125))
    assert coronal.scene_size == pytest.approx((512 * 0.703125, 133 * 2.5))
    assert coronal.slice_spacing == pytest.approx(0.703125)
    assert coronal.pixel_area_mm2 == pytest.approx(2.5 * 0.703125)


@pytest.mark.parametrize("name", sorted(AFFINES))
@pytest.mark.parametrize("plane", list(Plane))
def test_take_matches_index_from_display_voxel_by_voxel(name, plane):
    shape = (4, 5, 6)
    array = np.arange(np.prod(shape)).reshape(shape)
    geometry = plane_geometry(AFFINES[name], shape, plane)
    for k in range(geometry.n_slices):
        image = geometry.take(array, k)
        assert image.shape == geometry.image_shape
        rows, cols = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
        xyz = geometry.index_from_display(k, rows, cols).astype(int)
        np.testing.assert_array_equal(image, array[xyz[..., 2], xyz[..., 1], xyz[..., 0]])
    rgb = np.stack([array, array + 1, array + 2], axis=-1)
    assert geometry.take(rgb, 0).shape == geometry.image_shape + (3,)


@pytest.mark.parametrize("name", sorted(AFFINES))
@pytest.mark.parametrize("plane", list(Plane))
def test_coordinate_maps_round_trip(name, plane):
    geometry = plane_geometry(AFFINES[name], (9, 11, 13), plane)
    rng = np.random.default_rng(0)
    xyz = rng.uniform(0, 8, size=(20, 3))
    kd = geometry.display_from_index(xyz)
    np.testing.assert_allclose(geometry.index_from_display(kd[:, 0], kd[:, 1], kd[:, 2]), xyz, atol=1e-9)
    for p in xyz[:5]:
        k, sx, sy = geometry.scene_from_index(p)
        np.testing.assert_allclose(geometry.index_from_scene(k, sx, sy), p, atol=1e-9)


def test_scene_units_are_millimetres_along_the_screen():
    """Moving 10 mm to the right on screen in the axial view moves 10 mm towards patient left."""
    geometry = plane_geometry(axial_affine(), (133, 512, 512), "axial")
    a = geometry.lps_from_index(geometry.index_from_scene(50, 100.0, 80.0))
    b = geometry.lps_from_index(geometry.index_from_scene(50, 110.0, 80.0))
    np.testing.assert_allclose(b - a, [10.0, 0, 0], atol=1e-9)
    sag = plane_geometry(sagittal_hfdr_affine(), (35, 256, 256), "sagittal")
    a = sag.lps_from_index(sag.index_from_scene(3, 40.0, 40.0))
    b = sag.lps_from_index(sag.index_from_scene(3, 40.0, 50.0))  # 10 mm down the screen = 10 mm inferior
    np.testing.assert_allclose(b - a, [0, 0, -10.0], atol=1e-9)


def test_orientation_label_for_oblique_directions():
    assert orientation_label((1, 0, 0)) == "L"
    assert orientation_label((-1, 0, 0)) == "R"
    assert orientation_label((0, -1, 0)) == "A"
    assert orientation_label((0, 0, -1)) == "I"
    assert orientation_label((0.8, -0.6, 0)) == "LA"
    assert orientation_label((0.99, 0.1, 0)) == "L"


def test_assign_axes_resolves_a_tilted_gantry_to_the_nearest_axes():
    tilt = np.deg2rad(20)
    aff = np.eye(4)
    aff[:3, 1] = (0, np.cos(tilt), -np.sin(tilt))  # rows tilted towards I
    aff[:3, 2] = (0, 0, 2.0)
    axis_of_lps, sign = assign_axes(aff)
    assert list(axis_of_lps) == [0, 1, 2] and list(sign) == [1, 1, 1]


def test_slice_of_and_slice_position():
    geometry = plane_geometry(axial_affine(), (133, 512, 512), "axial")
    assert geometry.slice_of((10, 10, 4.4)) == 4
    assert geometry.slice_of((10, 10, 500)) == 132
    assert geometry.slice_position_mm(0) == pytest.approx(-340.0)
    assert geometry.slice_position_mm(132) == pytest.approx(-340.0 + 132 * 2.5)


def test_real_sagittal_decubitus_mr_displays_superior_up_and_anterior_left(mr_sagittal_dir):
    load = pytest.importorskip("viewer.core.dicom.load")
    scan = pytest.importorskip("viewer.core.dicom.scan")
    catalog = scan.scan([str(mr_sagittal_dir)])
    series = max((s for s in catalog.all_series() if s.kind == "image"), key=lambda s: s.n_instances)
    volume: Volume = load.load_series(series)
    assert native_plane(volume.affine) is Plane.SAGITTAL
    geometry = plane_geometry(volume.affine, volume.shape, "sagittal")
    assert geometry.orientation_labels() == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    rows, cols = geometry.image_shape
    top = geometry.lps_from_index(geometry.index_from_display(0, 0, cols // 2))
    bottom = geometry.lps_from_index(geometry.index_from_display(0, rows - 1, cols // 2))
    left = geometry.lps_from_index(geometry.index_from_display(0, rows // 2, 0))
    right = geometry.lps_from_index(geometry.index_from_display(0, rows // 2, cols - 1))
    assert top[2] > bottom[2]  # superior at the top
    assert left[1] < right[1]  # anterior (smaller P) on the left
    axial = plane_geometry(volume.affine, volume.shape, "axial")
    assert axial.orientation_labels() == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert axial.pixel_spacing[1] == pytest.approx(volume.spacing[0], rel=1e-3)


@pytest.mark.parametrize("name", sorted(AFFINES))
@pytest.mark.parametrize("plane", list(Plane))
def test_array_axis_is_the_array_axis_slices_step_along(name, plane):
    """``array_axis`` indexes the (z, y, x) array: slice ``k`` of the plane is ``array`` taken at ``k`` there,
    and it is the axis the slice's voxel indices hold constant."""
    shape = (4, 5, 6)
    array = np.arange(np.prod(shape)).reshape(shape)
    geometry = plane_geometry(AFFINES[name], shape, plane)
    assert geometry.n_slices == shape[geometry.array_axis]
    for k in range(geometry.n_slices):
        assert set(np.unique(geometry.take(array, k))) == set(np.take(array, k, axis=geometry.array_axis).ravel())
        rows, cols = np.mgrid[0:geometry.image_shape[0], 0:geometry.image_shape[1]]
        zyx = geometry.index_from_display(k, rows, cols)[..., ::-1]
        assert np.all(zyx[..., geometry.array_axis] == k)


def test_array_axis_of_each_acquisition():
    """Axial CT: axial slices step along z (0), coronal along y (1), sagittal along x (2); a sagittal acquisition
    steps through its own slices (z) in the sagittal plane; the coronal one in the coronal plane."""
    shape = (7, 5, 6)
    axes = {name: {p: plane_geometry(AFFINES[name], shape, p).array_axis for p in Plane} for name in AFFINES}
    assert axes["axial"] == {Plane.AXIAL: 0, Plane.CORONAL: 1, Plane.SAGITTAL: 2}
    assert axes["sag_hfdr"] == {Plane.AXIAL: 1, Plane.CORONAL: 2, Plane.SAGITTAL: 0}
    assert axes["coronal"] == {Plane.AXIAL: 1, Plane.CORONAL: 0, Plane.SAGITTAL: 2}
