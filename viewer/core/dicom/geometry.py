"""Slice geometry in pure numpy: normals, sorting, spacing, stack checks and the voxel -> LPS affine.

Conventions (see DESIGN.md, "Geometry"):

* ``ImageOrientationPatient`` = (row_dir, col_dir). ``row_dir`` (first triplet) is the direction of
  *increasing column index* along a row; ``col_dir`` is the direction of increasing row index.
* ``PixelSpacing`` = (row spacing, column spacing): the distance between rows (along ``col_dir``) and
  between columns (along ``row_dir``).
* The slice normal is ``n = row_dir x col_dir``; stacks are sorted ascending along ``n``.
* The affine maps ``(x=column, y=row, z=slice, 1)`` to LPS mm::

      affine[:3, 0] = row_dir * column_spacing
      affine[:3, 1] = col_dir * row_spacing
      affine[:3, 2] = slice step vector (between sorted positions, from positions, never SliceThickness)
      affine[:3, 3] = ImagePositionPatient of the first sorted slice

Tilted stacks (gantry tilt) keep their *true* positions: the slice axis is the real step between
slices, not the normal, so the affine is sheared. That is the honest choice - every voxel lands where the
scanner says it was - and :func:`plan_stack` warns (``gantry_tilt``) so views can resample if they want an
orthogonal grid. Uneven stacks cannot be one affine; the slice axis is then the mean step (first and last
slice exact) and the warning says how far the worst slice is from where the grid puts it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from viewer.core.issues import SeriesWarning

#: Two orientations closer than this (for both row and column direction) are "the same".
ORIENTATION_TOL_DEG = 0.1
#: Positions closer than this (mm) count as the same slice position.
DUPLICATE_TOL_MM = 0.01
#: A stack whose positions run off the normal by more than this is reported as tilted.
TILT_TOL_DEG = 0.05
#: A gap is irregular when it differs from the typical gap by more than max(abs, rel * typical).
SPACING_ABS_TOL_MM = 0.02
SPACING_REL_TOL = 0.02
#: Two pixel spacings that differ by more than this fraction are "mixed".
PIXEL_SPACING_REL_TOL = 1e-3


def direction_cosines(orientation: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit ``(row_dir, col_dir, normal)`` from an ImageOrientationPatient sextuple.

    ``row_dir`` is the direction of increasing column index, ``col_dir`` of increasing row index and
    ``normal = row_dir x col_dir``. The two directions are normalised (files often store 0.99999...).

    Raises
    ------
    ValueError
        When the orientation does not hold six numbers or a direction has zero length.
    """
    values = np.asarray(orientation, dtype=float).reshape(-1)
    if values.size != 6 or not np.all(np.isfinite(values)):
        raise ValueError(f"ImageOrientationPatient needs 6 finite numbers, got {values.size}")
    row_dir, col_dir = values[:3], values[3:]
    row_norm, col_norm = np.linalg.norm(row_dir), np.linalg.norm(col_dir)
    if row_norm < 1e-6 or col_norm < 1e-6:
        raise ValueError("ImageOrientationPatient has a zero-length direction")
    row_dir, col_dir = row_dir / row_norm, col_dir / col_norm
    normal = _cross(row_dir, col_dir)
    normal_norm = np.linalg.norm(normal)
    if normal_norm < 1e-6:
        raise ValueError("ImageOrientationPatient row and column directions are parallel")
    return row_dir, col_dir, normal / normal_norm


#: Row and column directions whose cosine exceeds this (0.06 degrees off perpendicular) are not orthogonal:
#: real files round to 5-6 decimals, far below it.
ORTHOGONAL_TOL = 1e-3


def _orthogonality_warnings(orientation: Sequence[float]) -> list[SeriesWarning]:
    """A ``non_orthogonal`` warning when ImageOrientationPatient's two directions are not perpendicular.

    The affine keeps the directions as stored (pixels become parallelograms in patient space), so every
    distance and overlay stays true to the file; but such a file is almost certainly damaged, and the
    reader must know the grid is skewed.
    """
    row_dir, col_dir, _ = direction_cosines(orientation)
    cosine = float(np.dot(row_dir, col_dir))
    if abs(cosine) <= ORTHOGONAL_TOL:
        return []
    angle = float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))
    return [SeriesWarning(
        "non_orthogonal",
        f"ImageOrientationPatient's row and column directions are {angle:.2f}° apart, not 90°: the image grid "
        "is skewed in patient space (kept as stored; the header is probably damaged).",
    )]


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # np.cross is ~10x slower for single 3-vectors, and plan_stack calls this per distinct orientation.
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    """Unit slice normal ``row_dir x col_dir`` (the direction slices are sorted along)."""
    return direction_cosines(orientation)[2]


def distances_along(positions, normal) -> np.ndarray:
    """Signed distance (mm) of each position ``(n, 3)`` along ``normal``."""
    return np.asarray(positions, dtype=float).reshape(-1, 3) @ np.asarray(normal, dtype=float)


def sort_along_normal(positions, normal) -> np.ndarray:
    """Indices that sort ``positions`` ascending along ``normal``; ties keep their input order."""
    return np.argsort(distances_along(positions, normal), kind="stable")


def slice_spacing(positions, normal) -> float | None:
    """Typical distance (mm) between neighbouring slices along ``normal``: the median non-zero gap.

    Computed from positions only (never SliceThickness). None for fewer than two distinct positions.
    """
    distances = np.sort(distances_along(positions, normal))
    gaps = np.diff(distances)
    gaps = gaps[gaps > DUPLICATE_TOL_MM]
    return float(np.median(gaps)) if gaps.size else None


def affine_from(position_first, orientation, pixel_spacing, slice_step_vector) -> np.ndarray:
    """4x4 affine mapping ``(x=column, y=row, z=slice, 1)`` to LPS mm.

    Parameters
    ----------
    position_first
        ImagePositionPatient of slice 0 (centre of its first transmitted pixel).
    orientation
        ImageOrientationPatient (row_dir, col_dir).
    pixel_spacing
        DICOM PixelSpacing ``(row spacing, column spacing)`` in mm.
    slice_step_vector
        LPS vector from one slice's position to the next (the real step; sheared when tilted).
    """
    row_dir, col_dir, _ = direction_cosines(orientation)
    row_spacing, col_spacing = (float(v) for v in pixel_spacing)
    affine = np.eye(4)
    affine[:3, 0] = row_dir * col_spacing
    affine[:3, 1] = col_dir * row_spacing
    affine[:3, 2] = np.asarray(slice_step_vector, dtype=float)
    affine[:3, 3] = np.asarray(position_first, dtype=float)
    return affine


def tilt_angle(positions, normal) -> float:
    """Angle (degrees) between the line through the first and last position and ``normal``.

    0 for a stack that runs straight along its normal; the gantry tilt for a tilted CT. ``positions`` must be
    sorted along the normal.
    """
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    if len(positions) < 2:
        return 0.0
    step = positions[-1] - positions[0]
    along = float(step @ np.asarray(normal, dtype=float))
    lateral = float(np.linalg.norm(step - along * np.asarray(normal, dtype=float)))
    return math.degrees(math.atan2(lateral, abs(along))) if (lateral or along) else 0.0


@dataclass
class StackPlan:
    """How a set of frames becomes one volume.

    Attributes
    ----------
    order
        Indices (into the frames given to :func:`plan_stack`) of the slices to load, slice 0 first,
        ascending along the normal.
    affine
        4x4 voxel ``(x, y, z, 1)`` -> LPS mm.
    slice_positions
        ``(len(order), 3)`` true ImagePositionPatient of each loaded slice (None without geometry).
    skipped
        Indices of frames left out (another orientation, size, repeat of a position, no geometry).
    warnings
        What is odd about the stack, as data.
    max_offset_mm
        Largest distance between a slice's true position and where the affine puts it (0 for regular stacks).
    """

    order: np.ndarray
    affine: np.ndarray
    slice_positions: np.ndarray | None
    skipped: list[int] = field(default_factory=list)
    warnings: list[SeriesWarning] = field(default_factory=list)
    max_offset_mm: float = 0.0


def _as_vector(value, size: int) -> np.ndarray | None:
    if value is None:
        return None
    try:
        array = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        return None
    if array.size != size or not np.all(np.isfinite(array)):
        return None
    return array


def _same_orientation(a: np.ndarray, b: np.ndarray) -> bool:
    if a is b or np.array_equal(a, b):
        return True
    cos_tol = math.cos(math.radians(ORIENTATION_TOL_DEG))
    ra, ca, _ = direction_cosines(a)
    rb, cb, _ = direction_cosines(b)
    return float(ra @ rb) >= cos_tol and float(ca @ cb) >= cos_tol


def _majority(indices: list[int], same) -> tuple[list[int], int]:
    """Split ``indices`` into groups by ``same(i, j)`` and return (largest group, number of groups).

    Ties go to the group whose first member comes first, so a stable input order gives a stable answer.
    """
    groups: list[list[int]] = []
    for i in indices:
        for group in groups:
            if same(group[0], i):
                group.append(i)
                break
        else:
            groups.append([i])
    best = max(groups, key=len) if groups else []  # max() keeps the first of equal-length groups
    return best, len(groups)


def _without(indices: list[int], chosen: list[int]) -> list[int]:
    keep = set(chosen)
    return [i for i in indices if i not in keep]


def _describe_orientation(orientation: np.ndarray) -> str:
    _, _, normal = direction_cosines(orientation)
    axis = int(np.argmax(np.abs(normal)))
    name = ("sagittal", "coronal", "axial")[axis]
    return name if abs(normal[axis]) > 0.9 else f"oblique {name}"


def plan_stack(
    positions: Sequence,
    orientations: Sequence,
    *,
    pixel_spacings: Sequence | None = None,
    sizes: Sequence[tuple[int, int]] | None = None,
    instance_numbers: Sequence[int | None] | None = None,
    gantry_tilt: float | None = None,
    fallback_step: float | None = None,
    repeat: int = 0,
) -> StackPlan:
    """Choose, sort and place the frames of a series; say what is odd about them.

    The largest consistent subset is stacked - one orientation (the most common), one matrix size, one
    pixel spacing, one frame per position - and everything left out is named in a warning (codes
    ``mixed_orientation``, ``mixed_size``, ``mixed_pixel_spacing``, ``duplicate_positions``,
    ``no_geometry``). On the stack itself it reports ``gantry_tilt`` (with its angle), ``uneven_spacing`` and
    ``missing_slices``. Nothing is silently stacked wrong.

    Parameters
    ----------
    positions, orientations
        Per frame ImagePositionPatient (3) and ImageOrientationPatient (6), or None when absent.
    pixel_spacings
        Per frame PixelSpacing ``(row, column)`` mm (None entries: 1 mm is assumed and reported), or None
        when the caller does not care about in-plane geometry.
    sizes
        Per frame ``(rows, columns)``.
    instance_numbers
        Per frame InstanceNumber; tells a lost file (numbers jump with the gap) from a scanner that skipped a
        position (numbers consecutive across the gap).
    gantry_tilt
        GantryDetectorTilt (degrees) from the header, quoted next to the measured angle.
    fallback_step
        Slice step (mm) along the normal when positions cannot give one (single slice): SpacingBetweenSlices
        or SliceThickness. 1 mm when None.
    repeat
        Which frame to take where several share a position (0 = the first in input order).
    """
    count = len(positions)
    if count == 0:
        raise ValueError("no frames to stack")
    if len(orientations) != count:
        raise ValueError("positions and orientations differ in length")
    pos = [_as_vector(p, 3) for p in positions]
    # A series usually has one orientation and one spacing: validate each distinct value once.
    ori_cache: dict = {}

    def valid_orientation(o):
        key = tuple(o) if o is not None else None
        if key not in ori_cache:
            vector = _as_vector(o, 6)
            if vector is not None:
                try:
                    direction_cosines(vector)
                except ValueError:
                    vector = None
            ori_cache[key] = vector
        return ori_cache[key]

    ori = [valid_orientation(o) for o in orientations]
    spacing_cache: dict = {}

    def valid_spacing(s):
        key = tuple(s) if s is not None else None
        if key not in spacing_cache:
            spacing_cache[key] = _as_vector(s, 2)
        return spacing_cache[key]

    spacing = [valid_spacing(s) for s in pixel_spacings] if pixel_spacings is not None else [None] * count
    spacing = [s if s is not None and np.all(s > 0) else None for s in spacing]
    warnings: list[SeriesWarning] = []
    skipped: list[int] = []
    candidates = list(range(count))

    with_geometry = [i for i in candidates if pos[i] is not None and ori[i] is not None]
    if len(with_geometry) < count:
        if with_geometry:
            left_out = _without(candidates, with_geometry)
            skipped += left_out
            candidates = with_geometry
            warnings.append(SeriesWarning(
                "no_geometry",
                f"{len(left_out)} of {count} frames have no position/orientation and were left out.",
            ))
        else:
            warnings.append(SeriesWarning(
                "no_geometry",
                "No ImagePositionPatient/ImageOrientationPatient: frames are shown in file order on a "
                "nominal grid; distances between slices and 3D views are not meaningful.",
            ))
    has_geometry = bool(with_geometry)

    if has_geometry:
        chosen, n_groups = _majority(candidates, lambda a, b: _same_orientation(ori[a], ori[b]))
        if n_groups > 1:
            left_out = _without(candidates, chosen)
            skipped += left_out
            names = sorted({_describe_orientation(ori[i]) for i in candidates})
            warnings.append(SeriesWarning(
                "mixed_orientation",
                f"Series mixes {n_groups} slice orientations ({', '.join(names)}); loaded the {len(chosen)} "
                f"{_describe_orientation(ori[chosen[0]])} frames, left out {len(left_out)}.",
            ))
            candidates = chosen

    if sizes is not None:
        chosen, n_groups = _majority(candidates, lambda a, b: tuple(sizes[a]) == tuple(sizes[b]))
        if n_groups > 1:
            left_out = _without(candidates, chosen)
            skipped += left_out
            found = sorted({f"{sizes[i][1]}x{sizes[i][0]}" for i in candidates})
            warnings.append(SeriesWarning(
                "mixed_size",
                f"Series mixes matrix sizes ({', '.join(found)}); loaded the {len(chosen)} frames of "
                f"{sizes[chosen[0]][1]}x{sizes[chosen[0]][0]}, left out {len(left_out)}.",
            ))
            candidates = chosen

    known_spacing = {i: s for i in candidates if (s := spacing[i]) is not None}
    if known_spacing:
        def same_spacing(a: int, b: int) -> bool:
            sa, sb = known_spacing[a], known_spacing[b]
            return bool(np.all(np.abs(sa - sb) <= PIXEL_SPACING_REL_TOL * sa))

        chosen, n_groups = _majority(list(known_spacing), same_spacing)
        if n_groups > 1 or len(known_spacing) < len(candidates):
            left_out = _without(candidates, chosen)
            skipped += left_out
            warnings.append(SeriesWarning(
                "mixed_pixel_spacing",
                f"Series mixes pixel spacings; loaded the {len(chosen)} frames with "
                f"{known_spacing[chosen[0]][0]:g} x {known_spacing[chosen[0]][1]:g} mm, left out {len(left_out)}.",
            ))
            candidates = chosen
        pixel_spacing = known_spacing[candidates[0]]
    else:
        pixel_spacing = np.array([1.0, 1.0])
        if pixel_spacings is not None:  # asked about spacing and none given: say so
            warnings.append(SeriesWarning("no_geometry", "No PixelSpacing (or none of positive millimetres): "
                                                         "in-plane distances assume 1 mm pixels."))

    default_step = float(fallback_step) if fallback_step and fallback_step > 0 else 1.0
    if not has_geometry:
        order = np.asarray(candidates, dtype=int)
        affine = affine_from((0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0), pixel_spacing, (0.0, 0.0, default_step))
        return StackPlan(order, affine, None, sorted(skipped), warnings)

    orientation = ori[candidates[0]]
    _, _, normal = direction_cosines(orientation)
    warnings += _orthogonality_warnings(orientation)
    cand = np.asarray(candidates, dtype=int)
    cand_pos = np.array([pos[i] for i in candidates])
    sort = np.argsort(cand_pos @ normal, kind="stable")
    cand, cand_pos = cand[sort], cand_pos[sort]

    # Runs of (nearly) the same position: keep the `repeat`-th of each run (input order inside a run).
    tol = DUPLICATE_TOL_MM
    run_start = np.r_[True, np.linalg.norm(np.diff(cand_pos, axis=0), axis=1) > tol]
    run_id = np.cumsum(run_start) - 1
    occurrence = np.arange(len(cand)) - np.flatnonzero(run_start)[run_id]
    n_positions = int(run_id[-1]) + 1
    if n_positions < len(cand):
        run_sizes = np.bincount(run_id)
        keep = occurrence == repeat if repeat < run_sizes.max() else occurrence == 0
        left_out = cand[~keep].tolist()
        skipped += left_out
        per = (f"{run_sizes.max()} per position" if run_sizes.min() == run_sizes.max()
               else f"up to {run_sizes.max()} per position")
        warnings.append(SeriesWarning(
            "duplicate_positions",
            f"{len(cand)} frames share {n_positions} distinct positions ({per}: time points, echoes or "
            f"repeated acquisitions); loaded one frame per position, left out {len(left_out)}.",
        ))
        cand, cand_pos = cand[keep], cand_pos[keep]

    if len(cand) == 1:
        if not any(w.code == "no_geometry" for w in warnings):
            warnings.append(SeriesWarning(
                "no_geometry",
                f"Single slice: no spacing between slices; the slice axis assumes {default_step:g} mm.",
            ))
        affine = affine_from(cand_pos[0], orientation, pixel_spacing, normal * default_step)
        return StackPlan(cand, affine, cand_pos, sorted(skipped), warnings)

    step = (cand_pos[-1] - cand_pos[0]) / (len(cand) - 1)
    affine = affine_from(cand_pos[0], orientation, pixel_spacing, step)
    expected = cand_pos[0] + np.arange(len(cand))[:, None] * step
    max_offset = float(np.max(np.linalg.norm(cand_pos - expected, axis=1)))

    angle = tilt_angle(cand_pos, normal)
    if angle > TILT_TOL_DEG:
        quoted = f" (GantryDetectorTilt {gantry_tilt:g}°)" if gantry_tilt is not None else ""
        warnings.append(SeriesWarning(
            "gantry_tilt",
            f"Gantry tilt: slices step {angle:.1f}° off their normal{quoted}; the volume keeps the true "
            "positions (sheared grid), so orthogonal reformats are slanted unless resampled.",
        ))

    warnings += _spacing_warnings(cand_pos, step, instance_numbers, cand, max_offset)
    return StackPlan(cand, affine, cand_pos, sorted(skipped), warnings, max_offset)


def _spacing_warnings(positions: np.ndarray, step: np.ndarray, instance_numbers, order, max_offset):
    direction = step / np.linalg.norm(step)
    along = (positions - positions[0]) @ direction
    gaps = np.diff(along)
    typical = float(np.median(gaps))
    tol = max(SPACING_ABS_TOL_MM, SPACING_REL_TOL * typical)
    irregular = np.flatnonzero(np.abs(gaps - typical) > tol)
    if irregular.size == 0:
        return []

    numbers = None
    if instance_numbers is not None:
        picked = [instance_numbers[i] for i in order]
        if all(n is not None for n in picked):
            numbers = np.asarray(picked, dtype=float)
            diffs = np.diff(numbers)
            # Instance numbers only tell about lost files when they run monotonic along the stack.
            if not (np.all(diffs > 0) or np.all(diffs < 0)):
                numbers = None

    missing: list[str] = []
    n_missing = 0
    uneven: list[int] = []
    for g in irregular:
        ratio = gaps[g] / typical
        k = int(round(ratio))
        multiple = k >= 2 and abs(gaps[g] - k * typical) <= tol * k
        if multiple and numbers is not None and abs(numbers[g + 1] - numbers[g]) == 1:
            multiple = False  # consecutive instance numbers: nothing lost, the scanner skipped a position
        if multiple:
            n_missing += k - 1
            missing.append(f"{k - 1} after slice {g}")
        else:
            uneven.append(int(g))

    result = []
    if missing:
        result.append(SeriesWarning(
            "missing_slices",
            f"About {n_missing} slice(s) missing ({'; '.join(missing)}): gaps are whole multiples of the "
            f"{typical:.3g} mm spacing. The grid is off by up to {max_offset:.2f} mm there.",
        ))
    if uneven:
        shown = ", ".join(f"{gaps[g]:.3g}" for g in uneven[:5]) + (", ..." if len(uneven) > 5 else "")
        result.append(SeriesWarning(
            "uneven_spacing",
            f"Uneven slice spacing: {len(uneven)} gap(s) of {shown} mm against a typical {typical:.3g} mm "
            f"(range {gaps.min():.3g}-{gaps.max():.3g} mm); slices lie up to {max_offset:.2f} mm from the "
            "regular grid.",
        ))
    return result


def check_stack(
    positions: Sequence,
    orientations: Sequence,
    *,
    pixel_spacings: Sequence | None = None,
    sizes: Sequence[tuple[int, int]] | None = None,
    instance_numbers: Sequence[int | None] | None = None,
    gantry_tilt: float | None = None,
) -> list[SeriesWarning]:
    """What is odd about a set of frames as one volume (see :func:`plan_stack` for the codes).

    Parameters are per frame, as for :func:`plan_stack`. An empty list means the frames form one regular,
    untilted stack.
    """
    return plan_stack(
        positions, orientations, pixel_spacings=pixel_spacings, sizes=sizes,
        instance_numbers=instance_numbers, gantry_tilt=gantry_tilt,
    ).warnings
