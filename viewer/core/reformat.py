"""Axial, coronal and sagittal views of a Volume in radiological orientation, and the maps between them.

A :class:`PlaneGeometry` says how one display plane is cut out of the voxel array without resampling:
which index axis runs through the plane, which runs down the screen and which runs to the right, and
whether an in-plane axis is flipped so that the image follows the radiological convention:

=========  =====================  =====================  ======================
plane      screen right           screen down            slice index runs along
=========  =====================  =====================  ======================
axial      patient left  (+L)     posterior (+P)         the index axis nearest S/I
coronal    patient left  (+L)     inferior  (-S)         the index axis nearest A/P
sagittal   posterior     (+P)     inferior  (-S)         the index axis nearest L/R
=========  =====================  =====================  ======================

So the viewer looks at an axial image from the feet (patient right on screen left), at a coronal image from
the front and at a sagittal image from the patient's left. The assignment is made from the affine in LPS,
never from PatientPosition or the acquisition plane, so a sagittal MR acquired head-first decubitus right is
shown upright like any other.

Coordinates used here:

* **index** ``(x, y, z)`` = (column, row, slice) of the Volume array, continuous, voxel centres at integers;
* **display** ``(k, row, col)`` of a plane: ``k`` is the slice number (the index along the through axis, not
  flipped), ``row``/``col`` the pixel of the 2-D image as drawn, centres at integers;
* **scene** ``(sx, sy)`` in mm of the drawn image, origin at the image's top-left corner, so pixel ``(row, col)``
  covers ``[col*dc, (col+1)*dc) x [row*dr, (row+1)*dr)`` and its centre is at ``((col+0.5)*dc, (row+0.5)*dr)``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import Enum

import numpy as np

LPS_LETTERS = (("L", "R"), ("P", "A"), ("S", "I"))  # (positive, negative) letter of each LPS axis


class Plane(str, Enum):
    """A display plane."""

    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"


# For each plane: (LPS axis, sign) pointing screen-right, (LPS axis, sign) pointing screen-down, through LPS axis.
_CONVENTION = {
    Plane.AXIAL: ((0, +1), (1, +1), 2),
    Plane.CORONAL: ((0, +1), (2, -1), 1),
    Plane.SAGITTAL: ((1, +1), (2, -1), 0),
}


def orientation_label(direction, threshold: float = 0.25) -> str:
    """Letters for an LPS direction, strongest first: ``(1, 0, 0)`` -> ``"L"``, ``(0.7, -0.7, 0)`` -> ``"LA"``.

    Components whose share of the unit vector is below ``threshold`` are left out (as Horos and OHIF do for
    slightly oblique images); the strongest component is always kept.
    """
    d = np.asarray(direction, dtype=float)
    norm = np.linalg.norm(d)
    if norm == 0:
        return ""
    d = d / norm
    order = np.argsort(-np.abs(d))
    letters = []
    for i, axis in enumerate(order):
        if i > 0 and abs(d[axis]) < threshold:
            break
        letters.append(LPS_LETTERS[axis][0 if d[axis] > 0 else 1])
    return "".join(letters)


def assign_axes(affine) -> tuple[np.ndarray, np.ndarray]:
    """Which index axis (0=x column, 1=y row, 2=z slice) lies nearest each LPS axis, and its sign.

    Returns ``(axis_of_lps, sign_of_lps)``: ``axis_of_lps[a]`` is the index axis whose direction is closest to
    LPS axis ``a`` (one-to-one, chosen to maximise the total alignment), ``sign_of_lps[a]`` is +1 when that index
    axis points towards the positive LPS direction.
    """
    directions = np.asarray(affine, dtype=float)[:3, :3]
    norms = np.linalg.norm(directions, axis=0)
    norms[norms == 0] = 1.0
    cosines = directions / norms  # cosines[lps, index_axis]
    best, best_score = None, -1.0
    for perm in itertools.permutations(range(3)):  # perm[lps] = index axis
        score = sum(abs(cosines[lps, perm[lps]]) for lps in range(3))
        if score > best_score + 1e-12:
            best, best_score = perm, score
    axis_of_lps = np.array(best)
    sign_of_lps = np.array([1 if cosines[lps, axis_of_lps[lps]] >= 0 else -1 for lps in range(3)])
    return axis_of_lps, sign_of_lps


@dataclass(frozen=True)
class PlaneGeometry:
    """How one display plane is cut from a volume (see the module docstring for the coordinate systems).

    Parameters
    ----------
    plane
        Which plane this is.
    volume_shape
        ``(z, y, x)`` of the volume.
    through_axis, row_axis, col_axis
        Index axes (0=x, 1=y, 2=z) running through the plane, down the screen and to the right.
    row_flip, col_flip
        True when display row/col 0 is the last voxel along that index axis.
    affine
        The volume's 4x4 index -> LPS affine.
    """

    plane: Plane
    volume_shape: tuple[int, int, int]
    through_axis: int
    row_axis: int
    col_axis: int
    row_flip: bool
    col_flip: bool
    affine: np.ndarray

    # ---- sizes -------------------------------------------------------------------------------------------
    @property
    def array_axis(self) -> int:
        """The axis of the ``(z, y, x)`` array (0 = z slice, 1 = y row, 2 = x column) this plane's slices run
        through: the one the editing tools hold constant and :meth:`take` indexes with ``k``."""
        return 2 - self.through_axis

    def _axis_len(self, index_axis: int) -> int:
        return int(self.volume_shape[2 - index_axis])

    @property
    def n_slices(self) -> int:
        """Number of slices of this plane."""
        return self._axis_len(self.through_axis)

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of one displayed image."""
        return self._axis_len(self.row_axis), self._axis_len(self.col_axis)

    def _axis_spacing(self, index_axis: int) -> float:
        return float(np.linalg.norm(self.affine[:3, index_axis]))

    @property
    def pixel_spacing(self) -> tuple[float, float]:
        """``(row spacing, column spacing)`` in mm of the displayed image (the height and width of a pixel)."""
        return self._axis_spacing(self.row_axis), self._axis_spacing(self.col_axis)

    @property
    def slice_spacing(self) -> float:
        """Distance in mm between neighbouring slices of this plane."""
        return self._axis_spacing(self.through_axis)

    @property
    def pixel_area_mm2(self) -> float:
        """Area in mm^2 of one displayed pixel (exact also for sheared grids)."""
        a = self.affine[:3, self.row_axis]
        b = self.affine[:3, self.col_axis]
        return float(np.linalg.norm(np.cross(a, b)))

    @property
    def scene_size(self) -> tuple[float, float]:
        """``(width, height)`` in mm of the whole displayed image."""
        rows, cols = self.image_shape
        dr, dc = self.pixel_spacing
        return cols * dc, rows * dr

    # ---- directions and letters ---------------------------------------------------------------------------
    def screen_directions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit LPS vectors pointing screen-right, screen-down and towards increasing slice number."""
        right = self.affine[:3, self.col_axis] * (-1 if self.col_flip else 1)
        down = self.affine[:3, self.row_axis] * (-1 if self.row_flip else 1)
        through = self.affine[:3, self.through_axis]
        return tuple(v / np.linalg.norm(v) for v in (right, down, through))

    def orientation_labels(self) -> dict[str, str]:
        """Letters to print at the ``left``, ``right``, ``top`` and ``bottom`` edges of the image."""
        right, down, _ = self.screen_directions()
        return {
            "left": orientation_label(-right),
            "right": orientation_label(right),
            "top": orientation_label(-down),
            "bottom": orientation_label(down),
        }

    # ---- pixels -------------------------------------------------------------------------------------------
    def take(self, array: np.ndarray, k: int) -> np.ndarray:
        """The displayed image of slice ``k``: a view of ``array`` (``(z, y, x)`` or ``(z, y, x, c)``), no copy.

        The result is ``(rows, cols)`` (plus trailing channels), already flipped for display.
        """
        index: list = [slice(None)] * array.ndim
        index[self.array_axis] = int(k)
        return self.orient(array[tuple(index)])

    def orient(self, image: np.ndarray) -> np.ndarray:
        """An image of this plane in array axis order (what indexing the array at one slice, or reducing it along
        :attr:`array_axis`, leaves) turned into display order: rows down, columns right; a view, no copy."""
        # the two in-plane array axes remain in array order: swap them when the row axis comes second
        if 2 - self.row_axis > 2 - self.col_axis:
            image = np.swapaxes(image, 0, 1)
        if self.row_flip:
            image = image[::-1]
        if self.col_flip:
            image = image[:, ::-1]
        return image

    # ---- coordinate maps ----------------------------------------------------------------------------------
    def index_from_display(self, k, row, col) -> np.ndarray:
        """Continuous voxel index ``(..., 3)`` as ``(x, y, z)`` from display ``(k, row, col)`` (broadcasts)."""
        k, row, col = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (k, row, col)))
        n_rows, n_cols = self.image_shape
        out = np.empty(k.shape + (3,), dtype=float)
        out[..., self.through_axis] = k
        out[..., self.row_axis] = (n_rows - 1) - row if self.row_flip else row
        out[..., self.col_axis] = (n_cols - 1) - col if self.col_flip else col
        return out

    def display_from_index(self, xyz) -> np.ndarray:
        """Display ``(..., 3)`` as ``(k, row, col)`` from continuous voxel index ``(x, y, z)``."""
        xyz = np.asarray(xyz, dtype=float)
        n_rows, n_cols = self.image_shape
        k = xyz[..., self.through_axis]
        row = xyz[..., self.row_axis]
        col = xyz[..., self.col_axis]
        if self.row_flip:
            row = (n_rows - 1) - row
        if self.col_flip:
            col = (n_cols - 1) - col
        return np.stack([k, row, col], axis=-1)

    def scene_from_display(self, row, col) -> tuple[np.ndarray, np.ndarray]:
        """Scene mm ``(sx, sy)`` of display pixel coordinates (pixel centres map to the middle of the pixel)."""
        dr, dc = self.pixel_spacing
        return (np.asarray(col, float) + 0.5) * dc, (np.asarray(row, float) + 0.5) * dr

    def display_from_scene(self, sx, sy) -> tuple[np.ndarray, np.ndarray]:
        """Display ``(row, col)`` (continuous) of scene mm ``(sx, sy)``."""
        dr, dc = self.pixel_spacing
        return np.asarray(sy, float) / dr - 0.5, np.asarray(sx, float) / dc - 0.5

    def index_from_scene(self, k, sx, sy) -> np.ndarray:
        """Voxel index ``(x, y, z)`` of a point ``(sx, sy)`` in mm on slice ``k``."""
        row, col = self.display_from_scene(sx, sy)
        return self.index_from_display(k, row, col)

    def scene_from_index(self, xyz) -> tuple[float, float, float]:
        """``(k, sx, sy)`` for a voxel index: the slice it lies on (continuous) and its place in mm."""
        k, row, col = self.display_from_index(xyz)
        sx, sy = self.scene_from_display(row, col)
        return float(k), float(sx), float(sy)

    def lps_from_index(self, xyz) -> np.ndarray:
        """LPS mm of voxel index points ``(..., 3)``."""
        xyz = np.asarray(xyz, dtype=float)
        return xyz @ self.affine[:3, :3].T + self.affine[:3, 3]

    def slice_of(self, xyz) -> int:
        """The slice number (clipped to the volume) that contains a voxel index point."""
        k = int(np.floor(float(np.asarray(xyz, float)[self.through_axis]) + 0.5))
        return int(np.clip(k, 0, self.n_slices - 1))

    def slice_position_mm(self, k: int) -> float:
        """The LPS coordinate (mm) of slice ``k`` along the patient axis this plane's slices step through."""
        lps_axis = {Plane.AXIAL: 2, Plane.CORONAL: 1, Plane.SAGITTAL: 0}[self.plane]
        centre = np.array([(n - 1) / 2 for n in (self.volume_shape[2], self.volume_shape[1], self.volume_shape[0])])
        centre[self.through_axis] = k
        return float(self.lps_from_index(centre)[lps_axis])


def plane_geometry(affine, shape, plane: Plane | str) -> PlaneGeometry:
    """The :class:`PlaneGeometry` of ``plane`` for a volume with this index -> LPS ``affine`` and ``(z, y, x)``
    shape."""
    plane = Plane(plane)
    affine = np.asarray(affine, dtype=float)
    axis_of_lps, sign_of_lps = assign_axes(affine)
    (right_lps, right_sign), (down_lps, down_sign), through_lps = _CONVENTION[plane]
    col_axis = int(axis_of_lps[right_lps])
    row_axis = int(axis_of_lps[down_lps])
    through_axis = int(axis_of_lps[through_lps])
    col_flip = bool(sign_of_lps[right_lps] != right_sign)
    row_flip = bool(sign_of_lps[down_lps] != down_sign)
    return PlaneGeometry(
        plane=plane,
        volume_shape=tuple(int(n) for n in shape[:3]),  # type: ignore[arg-type]
        through_axis=through_axis,
        row_axis=row_axis,
        col_axis=col_axis,
        row_flip=row_flip,
        col_flip=col_flip,
        affine=affine,
    )


def reformat(volume, plane: Plane | str) -> PlaneGeometry:
    """The :class:`PlaneGeometry` of ``plane`` for a :class:`~viewer.core.volume.Volume`."""
    return plane_geometry(volume.affine, volume.shape, plane)


def native_plane(affine) -> Plane:
    """The plane the series was acquired in: the one whose slices step along the index z axis."""
    axis_of_lps, _ = assign_axes(affine)
    through_lps = int(np.where(axis_of_lps == 2)[0][0])
    return {2: Plane.AXIAL, 1: Plane.CORONAL, 0: Plane.SAGITTAL}[through_lps]
