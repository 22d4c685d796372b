"""Slice geometry: normals, sorting, spacing, the affine convention and the stack checks.

Synthetic stacks pin the conventions (PixelSpacing order, row/column directions, sorting, warnings);
real files (read with pydicom here, independently of the scanner) show the checks fire on real data.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pydicom
import pytest

from tests.conftest import data_path
from viewer.core.dicom import geometry
from viewer.core.dicom.geometry import affine_from, check_stack, plan_stack

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def codes(warnings) -> set[str]:
    return {w.code for w in warnings}


def stack(n: int, step: float = 2.0, orientation=AXIAL, origin=(-100.0, -120.0, 30.0), lateral=(0.0, 0.0, 0.0)):
    """Positions of a stack along the orientation's normal, each step also moving by ``lateral``."""
    row, col = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row, col)
    return [tuple(np.array(origin) + k * (step * normal + np.array(lateral))) for k in range(n)]


# ---------------------------------------------------------------------------------------------- basics
@pytest.mark.parametrize(
    "orientation, normal",
    [(AXIAL, (0, 0, 1)), (SAGITTAL, (-1, 0, 0)), (CORONAL, (0, 1, 0))],
)
def test_normal_is_row_cross_column(orientation, normal):
    assert np.allclose(geometry.slice_normal(orientation), normal)


def test_direction_cosines_normalise_and_reject_degenerate():
    row, col, normal = geometry.direction_cosines((0.99999, 0, 0, 0, 1.00001, 0))
    assert np.isclose(np.linalg.norm(row), 1) and np.isclose(np.linalg.norm(col), 1)
    with pytest.raises(ValueError):
        geometry.direction_cosines((1, 0, 0, 1, 0, 0))  # parallel
    with pytest.raises(ValueError):
        geometry.direction_cosines((1, 0, 0))


def test_affine_uses_pixel_spacing_as_row_then_column():
    # PixelSpacing = (row spacing 0.5, column spacing 0.8): moving one column goes 0.8 mm along row_dir.
    orientation = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # sagittal: columns run anterior->posterior, rows down
    step = np.array([-3.0, 0.0, 0.0])
    affine = affine_from((10.0, 20.0, 30.0), orientation, (0.5, 0.8), step)
    x, y, z = 10, 20, 3
    expected = np.array([10.0, 20.0, 30.0]) + x * 0.8 * np.array([0, 1, 0]) + y * 0.5 * np.array([0, 0, -1]) + z * step
    assert np.allclose((affine @ [x, y, z, 1])[:3], expected)
    assert affine.shape == (4, 4) and np.allclose(affine[3], [0, 0, 0, 1])


def test_sort_along_normal_is_ascending_and_stable():
    positions = [(0, 0, 5.0), (0, 0, -5.0), (0, 0, 0.0), (0, 0, 0.0)]
    order = geometry.sort_along_normal(positions, (0, 0, 1))
    assert order.tolist() == [1, 2, 3, 0]  # the two at z=0 keep their input order
    assert geometry.sort_along_normal(positions, (0, 0, -1)).tolist() == [0, 2, 3, 1]


def test_slice_spacing_comes_from_positions():
    positions = [(0, 0, z) for z in (0.0, 1.25, 2.5, 3.75, 3.75, 6.25)]
    assert geometry.slice_spacing(positions, (0, 0, 1)) == pytest.approx(1.25)
    assert geometry.slice_spacing([(0, 0, 1.0)], (0, 0, 1)) is None


# ------------------------------------------------------------------------------------------ plan_stack
def test_regular_stack_no_warnings_and_exact_affine():
    positions = stack(6, step=2.5)[::-1]  # given descending: must come back ascending
    plan = plan_stack(positions, [AXIAL] * 6, pixel_spacings=[(0.7, 0.7)] * 6, sizes=[(64, 64)] * 6)
    assert plan.warnings == []
    assert plan.order.tolist() == [5, 4, 3, 2, 1, 0]
    for k, index in enumerate(plan.order):
        assert np.allclose((plan.affine @ [0, 0, k, 1])[:3], positions[index], atol=1e-9)
    assert np.allclose(plan.affine[:3, 2], [0, 0, 2.5])
    assert plan.max_offset_mm == pytest.approx(0.0, abs=1e-9)


def test_tilt_found_with_angle_and_true_positions_kept():
    angle = 18.5
    along = 4.0
    lateral = (0.0, along * math.tan(math.radians(angle)), 0.0)
    positions = stack(10, step=along, lateral=lateral)
    plan = plan_stack(positions, [AXIAL] * 10, pixel_spacings=[(0.5, 0.5)] * 10, gantry_tilt=18.5)
    assert codes(plan.warnings) == {"gantry_tilt"}
    message = next(w.message for w in plan.warnings if w.code == "gantry_tilt")
    assert float(re.search(r"([\d.]+)°", message).group(1)) == pytest.approx(angle, abs=0.05)
    # Sheared affine: every slice lands on its real position.
    for k in range(10):
        assert np.allclose((plan.affine @ [0, 0, k, 1])[:3], positions[k], atol=1e-9)
    assert geometry.tilt_angle(positions, (0, 0, 1)) == pytest.approx(angle)


def test_uneven_spacing_found():
    z = [0.0, 2.0, 4.0, 7.5, 9.5, 11.5]
    plan = plan_stack([(0, 0, v) for v in z], [AXIAL] * 6, pixel_spacings=[(1, 1)] * 6)
    assert codes(plan.warnings) == {"uneven_spacing"}
    assert plan.max_offset_mm > 0.5
    # First and last slice are exact; the slice axis is the mean step.
    assert np.allclose((plan.affine @ [0, 0, 5, 1])[:3], (0, 0, 11.5))


def test_missing_slice_found_and_told_apart_by_instance_numbers():
    z = [0.0, 2.0, 4.0, 8.0, 10.0]
    positions = [(0, 0, v) for v in z]
    plain = plan_stack(positions, [AXIAL] * 5)
    assert "missing_slices" in codes(plain.warnings)
    assert "1 after slice 2" in next(w.message for w in plain.warnings if w.code == "missing_slices")
    lost_file = plan_stack(positions, [AXIAL] * 5, instance_numbers=[1, 2, 3, 5, 6])
    assert "missing_slices" in codes(lost_file.warnings)
    skipped_position = plan_stack(positions, [AXIAL] * 5, instance_numbers=[1, 2, 3, 4, 5])
    assert codes(skipped_position.warnings) == {"uneven_spacing"}


def test_duplicate_positions_keep_one_frame_per_position():
    positions = [p for p in stack(4) for _ in range(3)]  # 3 frames at each of 4 positions (e.g. echoes)
    plan = plan_stack(positions, [AXIAL] * 12)
    assert "duplicate_positions" in codes(plan.warnings)
    assert plan.order.tolist() == [0, 3, 6, 9]
    assert plan_stack(positions, [AXIAL] * 12, repeat=2).order.tolist() == [2, 5, 8, 11]
    assert sorted(plan.skipped) == [1, 2, 4, 5, 7, 8, 10, 11]
    assert np.allclose(plan.affine[:3, 2], [0, 0, 2.0])


def test_all_at_one_position_is_not_a_volume():
    plan = plan_stack([(1.0, 2.0, 3.0)] * 4, [AXIAL] * 4, fallback_step=5.0)
    assert {"duplicate_positions", "no_geometry"} <= codes(plan.warnings)
    assert len(plan.order) == 1
    assert np.allclose(plan.affine[:3, 2], [0, 0, 5.0])  # single slice: normal * fallback step


def test_mixed_orientation_loads_the_majority():
    positions = stack(3) + stack(2, orientation=SAGITTAL, origin=(0, 0, 0))
    plan = plan_stack(positions, [AXIAL] * 3 + [SAGITTAL] * 2)
    assert "mixed_orientation" in codes(plan.warnings)
    assert plan.order.tolist() == [0, 1, 2]
    assert sorted(plan.skipped) == [3, 4]


def test_mixed_size_and_pixel_spacing():
    positions = stack(4)
    plan = plan_stack(positions, [AXIAL] * 4, sizes=[(512, 512)] * 3 + [(256, 256)])
    assert "mixed_size" in codes(plan.warnings) and plan.skipped == [3]
    plan = plan_stack(positions, [AXIAL] * 4, pixel_spacings=[(0.5, 0.5)] * 3 + [(0.9, 0.9)])
    assert "mixed_pixel_spacing" in codes(plan.warnings) and plan.skipped == [3]


def test_no_geometry_keeps_file_order():
    plan = plan_stack([None] * 3, [None] * 3, pixel_spacings=[(0.5, 0.25)] * 3)
    assert "no_geometry" in codes(plan.warnings)
    assert plan.order.tolist() == [0, 1, 2]
    assert np.allclose(np.diag(plan.affine)[:3], [0.25, 0.5, 1.0])


def test_check_stack_is_empty_for_a_clean_stack():
    assert check_stack(stack(5), [AXIAL] * 5, pixel_spacings=[(1, 1)] * 5, sizes=[(8, 8)] * 5) == []


# ------------------------------------------------------------------------------------------- real data
def _headers(folder):
    datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.iterdir()) if p.suffix == ".dcm"]
    positions = [[float(v) for v in ds.ImagePositionPatient] for ds in datasets]
    orientations = [[float(v) for v in ds.ImageOrientationPatient] for ds in datasets]
    return datasets, positions, orientations


def _independent_tilt(positions, orientation) -> float:
    """Angle between the line through the extreme positions and the slice normal, computed here."""
    o = np.asarray(orientation)
    normal = np.cross(o[:3], o[3:])
    p = np.asarray(positions)
    d = p @ normal
    v = p[np.argmax(d)] - p[np.argmin(d)]
    return math.degrees(math.acos(abs(v @ normal) / np.linalg.norm(v)))


def test_ge_gantry_tilt_angle_matches_header_and_uneven_gaps_found():
    folder = data_path("ct-gantry-tilt", "GE_head_tilt_uneven")
    datasets, positions, orientations = _headers(folder)
    tilt = float(datasets[0].GantryDetectorTilt)
    warnings = check_stack(positions, orientations, gantry_tilt=tilt)
    assert {"gantry_tilt", "uneven_spacing"} <= codes(warnings)
    assert "missing_slices" not in codes(warnings)  # gaps of 1.08 and 7.0 mm are not multiples of 4.0
    message = next(w.message for w in warnings if w.code == "gantry_tilt")
    measured = float(re.search(r"([\d.]+)°", message).group(1))
    assert measured == pytest.approx(abs(tilt), abs=0.1)
    assert measured == pytest.approx(_independent_tilt(positions, orientations[0]), abs=0.1)


def test_dicom2nifti_gantry_tilt_found():
    folder = data_path("edge-dicom2nifti", "failing", "gantrytilting", "001")
    _, positions, orientations = _headers(folder)
    warnings = check_stack(positions, orientations)
    message = next(w.message for w in warnings if w.code == "gantry_tilt")
    expected = _independent_tilt(positions, orientations[0])
    assert expected > 5
    assert float(re.search(r"([\d.]+)°", message).group(1)) == pytest.approx(expected, abs=0.1)


def test_lidc_stack_is_clean():
    folder = next(data_path("lidc-idri-0001").rglob("000001.dcm")).parent
    _, positions, orientations = _headers(folder)
    assert len(positions) == 133
    assert check_stack(positions, orientations) == []
