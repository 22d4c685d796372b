"""What a lung CAD product tells a reader about each nodule finding: size, type, where, and a Lung-RADS category.

For every finding (a box on the native-resolution HU volume) :func:`measure_nodule`

1. segments the nodule inside the box, enlarged and at least as deep on every axis as it is long
   (:func:`segment_nodule`): light in-plane smoothing, a seed at the box centre (the brightest voxel near it, or
   for faint ground glass the voxel nearest the centre at half the level of the box's middle), a threshold from
   the lung parenchyma around it to the nodule's own level - ``0.5 - 0.4 s / R`` of the way for a solid nodule
   (:data:`EDGE_FRACTION`, :data:`EDGE_BLUR_MM`: where a blurred ball's profile crosses its true edge) - attached
   vessels cut by an opening with a ball a bit under half the nodule's radius (at most
   :data:`VESSEL_BALL_MM` for a solid one; larger while the region still runs out of the box), holes filled;
   when it runs out of the box, the chest wall and mediastinum (juxtapleural nodules) are cut off first by an
   opening of the non-lung tissue - the air outside the patient included, from the scan's coarse lung mask -
   with a ball larger than the nodule, and what that ball took on the lung's side of the pleura (a quadric
   fitted to the wall's surface around the nodule, :func:`_beyond_pleura`) is given back. Ground glass gets
   its own, lower, level; a solid core inside ground glass (thicker than a vessel, and surrounded by it:
   :data:`HALO_AROUND`) makes the nodule part-solid, and the core is the solid component. When the mask meets
   the window's sides over the nodule's width (:data:`RUNS_ON_MM2`: the box held part of the nodule), it is
   segmented again in a wider box, kept when that closes and holds the first mask;
2. measures it in calibrated mm from the volume's affine (:func:`axial_axes_mm`), its volume by partial-volume
   analysis (:func:`partial_volume_mm3`, :data:`PV_BAND_MM`: boundary voxels count by their share of nodule,
   a solid nodule's level taken from its inner voxels, :data:`PV_LEVEL_MIN_VOXELS`);
3. types it from the HU of its voxels (:func:`nodule_type`): calcified / solid / part-solid / ground-glass;
4. places it (:func:`lung_extent`, :func:`location`): side from LPS x against the lungs' midline and zone
   upper / middle / lower by thirds of that lung's craniocaudal extent. There is **no lobe model**: a zone is
   a position, not a lobe;
5. suggests a Lung-RADS v2022 category for a baseline screen (:func:`lung_rads_baseline`, rules in
   :data:`LUNG_RADS_V2022_BASELINE`).

Measurement conventions (ACR Lung-RADS v2022, "Nodule size"): nodules are measured on lung windows; long and
short axis are measured to one decimal place in mm and the mean diameter ((long + short) / 2) is reported to one
decimal place; volumes, if given, to the nearest whole mm³. (Christensen J et al., "ACR Lung-RADS v2022:
Assessment Categories and Management Recommendations", J Am Coll Radiol 2024;21(3):473-488 / CHEST
2024;165(3):738-753; the Lung-RADS v2022 assessment-categories table.) Fleischner 2017 (MacMahon H et al.,
Radiology 2017;284:228-243; Bankier AA et al., Radiology 2017;285:584-600) uses the same average of long and
short axis on the same axial image but rounds it to the nearest whole mm for its risk tables - we report the
Lung-RADS one-decimal value; a Fleischner size is ``round(mean_diameter_mm)``.

Geometry: arrays are ``(z, y, x)``; ``affine`` maps ``(x=column, y=row, z=slice, 1)`` to LPS mm (the convention
of ``viewer.core.volume``). "Axial" is the plane of the array's three that lies closest to the patient's axial
plane (:func:`axial_order`): the slice plane of an axial acquisition, and across the slices of a coronal or
sagittal reformat, which is measured and placed as if it had been stored axially.
No Qt, no torch: numpy and SimpleITK only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from inference.types import int3

#: Lung parenchyma when none can be measured around the nodule.
DEFAULT_LUNG_HU = -850.0
#: Voxels at or above this are solid tissue (the solid component of a part-solid nodule).
SOLID_HU = -300.0
#: Ground glass lies between this and :data:`SOLID_HU`.
GROUND_GLASS_HU = -750.0
#: The nominal level of ground glass, used to find a ground-glass halo around a solid core.
GROUND_GLASS_LEVEL_HU = -500.0
#: A solid part thinner than this (radius, mm) inside ground glass is a vessel crossing it, not a solid core.
SOLID_CORE_MIN_RADIUS_MM = 1.5
#: Calcium: a nodule with at least :data:`CALCIFIED_FRACTION` of its voxels at or above this is calcified.
CALCIFIED_HU = 200.0
CALCIFIED_FRACTION = 0.05
#: Where between the lung's and the nodule's level the edge is drawn, at least. Blur (slice profile and in-plane
#: kernel, about :data:`EDGE_BLUR_MM`) rounds a nodule off: the blurred profile of a ball of radius R crosses its
#: true edge about ``0.5 - 0.4 s / R`` of the way from the lung to the nodule (half-way for a flat edge), so a solid
#: nodule's edge is drawn there (``R`` from its box), never below this. Ground glass keeps this fraction: its
#: texture makes a higher contour ragged.
EDGE_FRACTION = 0.35
#: The blur ``s`` (mm) of that rule: the in-plane kernels of chest CT are 0.4-1.1 mm (sigma of the PSF).
EDGE_BLUR_MM = 1.0
#: The window the nodule may fill: its box grown by this share of its size plus these mm on each side. A
#: detector's box can be smaller than its nodule, but a generous window (0.3 and 3 mm) let LIDC-IDRI-0001's
#: nodule run into the chest wall (47 mm, "calcified") while gaining little on the phantoms.
WINDOW_SHARE, WINDOW_MM = 0.1, 1.5
#: The window is at least this share of the box's longest side deep along every axis: a detector's box of a
#: small nodule can be one slice thick where the nodule spans four (6-8 mm juxtapleural nodules measured a third
#: small on the detector's boxes).
WINDOW_CUBE = 1.0
#: Clip to this many times the inscribed radius around the deepest point (see _clip_to_sphere); 0: off - at 2.0
#: it cut a vessel stub off a phantom nodule but also cut LIDC-IDRI-0001's lobulated nodule to 16 mm.
SPHERE_CLIP = 0.0
#: The ball that cuts attached vessels starts at 0.45 of the nodule's radius but at most this (mm; then 0.7 and
#: 0.95 of it, scaled alike): a vessel next to a nodule is 1-3 mm thick, and a ball of 9 mm (a 40 mm mass) cut
#: its lobes off (a third of its volume).
VESSEL_BALL_MM = 4.0
#: A ground-glass nodule as faint as this above the lung (the median of its box's middle) is still found as one
#: (seeded at half its level, not at the brightest voxel - a vessel crossing it).
FAINT_GLASS_HU = 80.0
#: A solid core is part of a part-solid nodule only when ground glass surrounds it: at least this share of a
#: shell just outside its blurred rim (the chest wall's side left out) is glass. A fissure through a
#: perifissural nodule, or a vessel along a small one, touches only a ring of it. Textured glass thresholded at
#: its half level is patchy: at 0.5, part-solid nodules of 18 and 23 mm (0.46, 0.48) were measured as their
#: solid core alone (-66 %, -80 % in volume); 0.4 also measured a 19.8 mm ground-glass nodule whole (-88 % ->
#: +7 %) and changed no other nodule of 6 mm or more on 80 phantoms.
HALO_AROUND = 0.4
#: In glass denser than usual (the median of the region at glass level under :data:`SOLID_HU`), the solid core is
#: what stands this far (HU) above that median: textured glass of -340 HU crosses -300 HU in patches, the core then
#: held more than the halo, and two part-solid nodules of 19 and 31 mm were measured as that core (-87 %, -84 %).
#: Only for nodules of at least :data:`CORE_ABOVE_GLASS_MIN_MM` across: blur also puts a small solid nodule's
#: median there (a higher core threshold typed 3-10 mm solid nodules ground-glass or part-solid).
CORE_ABOVE_GLASS_HU = 150.0
CORE_ABOVE_GLASS_MIN_MM = 10.0
#: Juxtapleural nodules: the pleura under the nodule is a quadric fitted to the chest wall's surface around it
#: (:func:`_beyond_pleura`), used when it fits within this rms (mm); what the wall's opening took on the lung's
#: side of it goes back to the nodule, from this share of half a voxel above the wall's surface voxels.
PLEURA_FIT_MM = 2.0
PLEURA_OFFSET = 0.5
#: The wall's surface is read in a ring around the nodule: from this far (mm) beyond the nodule's radius to
#: :data:`PLEURA_RING_OUTER` times the opening's reach. Nearer in, the opening's ball rises along the nodule's
#: flanks and those surface voxels lie above the pleura: a quadric through them put the pleura 1-2 mm into the
#: nodule's base (a 20.8 mm juxtapleural phantom nodule -16 %). Only when the ring holds too few voxels, or no
#: quadric fits them, is the disc within the reach used.
PLEURA_RING_INNER_MM = 1.5
PLEURA_RING_OUTER = 1.5
#: Volume by partial-volume analysis (Kuhnigk JM et al., IEEE TMI 2006;25:417-434, "SPVA"): voxels deeper than
#: this (mm) inside the mask count whole, those within it of the mask's surface (either side) by their share
#: ``(HU - lung) / (nodule - lung)``, clipped to 0..1; outside the mask only voxels below the edge threshold
#: count (above it lies a vessel or the chest wall that the segmentation cut off). Blur keeps the sum of HU, so
#: the volume does not hang on where the edge threshold is drawn.
PV_BAND_MM = 1.5
#: The nodule's level in those shares, for a solid (or calcified) nodule: the median HU of the voxels counted
#: whole, when at least this many. The level the segmentation drew its edge from (the 75th percentile of the
#: smoothed core, capped at 150 HU) lies under a small nodule's true level, blurred down, and under a calcified
#: one's; every boundary voxel then counted too much (+20 % and +26 % on 8 mm phantom nodules). Ground glass
#: keeps its median: its texture, not blur, sets its inner voxels apart.
PV_LEVEL_MIN_VOXELS = 20
#: The nodule runs on beyond its window through a side that its mask meets over at least this area (mm²) and this
#: share of its widest section across that axis: a vessel leaving a nodule is 1-3 mm across, a nodule cut by the
#: window of a box that held part of it is cut over its width (:func:`segment_nodule` then looks again in a
#: wider box).
RUNS_ON_MM2, RUNS_ON_SHARE = 10.0, 0.3
#: Tissue that is not air when looking for the chest wall.
NON_AIR_HU = -400.0

#: ACR Lung-RADS v2022 baseline-screen size rules, in order (first match wins), as
#: ``(type, size measured, lower mm (inclusive), upper mm (exclusive), category)``. "mean" is the nodule's mean
#: diameter, "solid" the solid component's mean diameter (part-solid only). Source: ACR Lung-RADS v2022
#: assessment categories (Christensen et al., JACR 2024;21:473-488, Table 1): category 1 - nodules with
#: specific (benign) calcification; 2 - solid < 6 mm, part-solid < 6 mm total, non-solid (GGN) < 30 mm;
#: 3 - solid 6 to < 8 mm, part-solid >= 6 mm with solid component < 6 mm, GGN >= 30 mm; 4A - solid 8 to < 15 mm,
#: part-solid with solid component 6 to < 8 mm; 4B - solid >= 15 mm, part-solid with solid component >= 8 mm.
#: Not modelled (needs what a reader sees, or a prior): juxtapleural / perifissural smooth nodules < 10 mm
#: (category 2), airway nodules, cysts, growth, new nodules, 4X features and the S modifier.
LUNG_RADS_V2022_BASELINE: tuple[tuple[str, str, float, float, str], ...] = (
    ("calcified", "mean", 0.0, math.inf, "1"),
    ("solid", "mean", 0.0, 6.0, "2"),
    ("solid", "mean", 6.0, 8.0, "3"),
    ("solid", "mean", 8.0, 15.0, "4A"),
    ("solid", "mean", 15.0, math.inf, "4B"),
    ("part-solid", "mean", 0.0, 6.0, "2"),
    ("part-solid", "solid", 0.0, 6.0, "3"),
    ("part-solid", "solid", 6.0, 8.0, "4A"),
    ("part-solid", "solid", 8.0, math.inf, "4B"),
    ("ground-glass", "mean", 0.0, 30.0, "2"),
    ("ground-glass", "mean", 30.0, math.inf, "3"),
)

NODULE_TYPES = ("solid", "part-solid", "ground-glass", "calcified")


def round_half_up(value: float, decimals: int = 1) -> float:
    """Round as a reader does (2.25 -> 2.3), not to even as Python's ``round`` does."""
    scale = 10.0 ** decimals
    return math.floor(float(value) * scale + 0.5) / scale


def lung_rads_baseline(nodule_type: str, mean_diameter_mm: float, solid_component_mm: float | None = None) -> str:
    """The suggested Lung-RADS v2022 category of one nodule on a baseline screen.

    Parameters
    ----------
    nodule_type
        One of :data:`NODULE_TYPES`.
    mean_diameter_mm
        Mean of long and short axis, to one decimal (as reported).
    solid_component_mm
        Mean diameter of the solid component (part-solid nodules; 0 when none is given).

    Returns
    -------
    str
        ``"1"``, ``"2"``, ``"3"``, ``"4A"`` or ``"4B"`` from :data:`LUNG_RADS_V2022_BASELINE`.
    """
    sizes = {"mean": float(mean_diameter_mm), "solid": float(solid_component_mm or 0.0)}
    for typ, which, low, high, category in LUNG_RADS_V2022_BASELINE:
        if typ == nodule_type and low <= sizes[which] < high:
            return category
    raise ValueError(f"no Lung-RADS rule for a {nodule_type!r} nodule")


# ---------------------------------------------------------------------------------------------------------------
# Geometry helpers.

def _spacing(affine: np.ndarray) -> np.ndarray:
    """``(sx, sy, sz)`` mm: lengths of the affine's column, row and slice vectors."""
    return np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0)


def volume_mm3(mask: np.ndarray, affine: np.ndarray) -> float:
    """Volume of a boolean ``(z, y, x)`` mask in mm³ (voxel count times the voxel's volume from the affine)."""
    return float(np.count_nonzero(mask)) * abs(float(np.linalg.det(np.asarray(affine, float)[:3, :3])))


def _slice_axes(points_mm: np.ndarray, pixel_mm: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """Long and short axis (mm) of one slice's pixel centres ``(N, 3)`` in mm.

    Long: the largest centre-to-centre distance plus one pixel width along that direction (a calliper is laid
    from edge to edge). Short: the longest chord perpendicular to it - centres binned along the long axis by one
    pixel, the widest bin's extent across plus one pixel width.
    """
    col, row = pixel_mm  # the in-plane column and row vectors (mm per index step)
    if len(points_mm) == 1:
        return float(min(np.linalg.norm(col), np.linalg.norm(row))), float(min(np.linalg.norm(col),
                                                                               np.linalg.norm(row)))
    d2 = ((points_mm[:, None, :] - points_mm[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
    u = points_mm[j] - points_mm[i]
    length = float(np.linalg.norm(u))
    u = u / length
    normal = np.cross(col, row)
    v = np.cross(normal / np.linalg.norm(normal), u)

    def width(direction):  # the extent of one pixel along a direction in the slice plane
        return float(np.hypot(np.dot(col, direction), np.dot(row, direction)))

    long_mm = length + width(u)
    rel = points_mm - points_mm[i]  # relative to one end: the same figures whatever the crop's origin
    t = rel @ u
    w = rel @ v
    step = width(u)
    bins = np.floor((t - t.min()) / step + 0.5).astype(np.int64)
    order = np.argsort(bins, kind="stable")
    bins, w = bins[order], w[order]
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
    across = np.maximum.reduceat(w, starts) - np.minimum.reduceat(w, starts)
    short_mm = float(across.max()) + width(v)
    return long_mm, min(short_mm, long_mm)


def _boundary(mask2d: np.ndarray) -> np.ndarray:
    """Pixels of a 2D mask with a 4-neighbour outside it (the only ones a diameter can end on)."""
    padded = np.pad(mask2d, 1)
    inner = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask2d & ~inner


def axial_order(affine: np.ndarray) -> tuple[int, int, int]:
    """The ``(z, y, x)`` array axes in the order that makes the array axial: first the axis whose slices lie
    closest to the patient's axial plane (their normal nearest the head-foot axis), then of the other two the one
    running more front to back (rows, as an axial CT has them: the calliper's ties then fall the same way), then
    the last. ``(0, 1, 2)`` for an axial acquisition (a gantry tilt included); for a coronal or sagittal
    reformat, ``array.transpose(order)`` with :func:`_axial_affine` is the same image stored axially, where
    Lung-RADS measures the axes and the lungs' craniocaudal extent is a range of slices."""
    columns = np.asarray(affine, float)[:3, :3]  # column k: the LPS step of array axis 2 - k

    def head_foot(axis: int) -> float:  # |cos| of the angle between the slices' normal and the S axis
        a, b = (columns[:, 2 - other] for other in range(3) if other != axis)
        normal = np.cross(a, b)
        return abs(float(normal[2])) / max(float(np.linalg.norm(normal)), 1e-12)

    def front_back(axis: int) -> float:  # |cos| of the angle between the axis and the P axis
        step = columns[:, 2 - axis]
        return abs(float(step[1])) / max(float(np.linalg.norm(step)), 1e-12)

    first = max(range(3), key=lambda axis: (round(head_foot(axis), 9), -axis))  # a tie keeps the slice axis
    second, third = sorted((axis for axis in range(3) if axis != first),
                           key=lambda axis: (-round(front_back(axis), 9), axis))
    return first, second, third


def _axial_affine(affine: np.ndarray, order) -> np.ndarray:
    """The index -> LPS affine of ``array.transpose(order)`` for an ``array`` with ``affine``."""
    affine = np.asarray(affine, float)
    out = affine.copy()
    for new_axis, old_axis in enumerate(order):
        out[:3, 2 - new_axis] = affine[:3, 2 - old_axis]
    return out


def axial_axes_mm(mask: np.ndarray, affine: np.ndarray, offset=(0, 0, 0)) -> tuple[float, float, int]:
    """Long and short axis in the axial (slice) plane, Lung-RADS style.

    The long axis is the longest in-plane diameter on the slice where it is longest; the short axis is the
    longest diameter perpendicular to it on that same slice. Both are in calibrated mm (not rounded). The slices
    are axial whatever plane the volume was stored in (:func:`axial_order`): a coronal reformat's long axis along
    the body is not the axial one.

    Parameters
    ----------
    mask
        Boolean ``(z, y, x)`` nodule mask (a crop is fine).
    affine
        The full volume's index -> LPS affine.
    offset
        ``(z, y, x)`` index of the crop's first voxel in the full volume (slice index returned is in the full
        volume).

    Returns
    -------
    (long_mm, short_mm, slice_index)
        ``slice_index`` along the array axis that runs head-foot (axis 0 of an axial volume); ``(0, 0, -1)`` for
        an empty mask.
    """
    affine = np.asarray(affine, float)
    order = axial_order(affine)
    if order != (0, 1, 2):
        mask, affine, offset = mask.transpose(order), _axial_affine(affine, order), [offset[a] for a in order]
    col, row = affine[:3, 0], affine[:3, 1]
    best = (0.0, 0.0, -1)
    for k in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
        yx = np.argwhere(_boundary(mask[k]))
        yx = yx - yx[0]  # relative: the same floating-point figures (and ties) wherever the mask lies
        points = yx[:, 1:2] * col + yx[:, 0:1] * row
        long_mm, short_mm = _slice_axes(points, (col, row))
        if long_mm > best[0] or (long_mm == best[0] and short_mm > best[1]):
            best = (long_mm, short_mm, int(k) + int(offset[0]))
    return best


# ---------------------------------------------------------------------------------------------------------------
# Segmentation.

@dataclass(eq=False)
class NoduleSegmentation:
    """A nodule mask on a crop of the volume.

    ``mask`` and ``solid`` are boolean ``(z, y, x)`` crops whose first voxel is ``offset`` in the volume;
    ``solid`` is the solid component (HU >= :data:`SOLID_HU` core) of a part-solid nodule, else the same as
    ``mask`` for solid/calcified nodules and empty for ground glass. ``hu`` is the smoothed HU crop, ``lung_hu``
    the parenchyma level and ``threshold_hu`` the outer threshold used.
    """

    mask: np.ndarray
    solid: np.ndarray
    offset: tuple[int, int, int]
    hu: np.ndarray
    lung_hu: float
    threshold_hu: float
    part_solid: bool = False
    raw_hu: np.ndarray | None = None
    level_hu: float | None = None

    def transposed(self, axes) -> NoduleSegmentation:
        """The same segmentation of ``volume.transpose(axes)`` (crops and offset permuted alike)."""
        def move(array):
            return None if array is None else array.transpose(axes)

        z, y, x = (int(self.offset[a]) for a in axes)
        return replace(self, mask=move(self.mask), solid=move(self.solid), hu=move(self.hu), raw_hu=move(self.raw_hu),
                       offset=(z, y, x))

    def full_mask(self, shape) -> np.ndarray:
        """The mask on the whole ``(z, y, x)`` grid of ``shape``."""
        out = np.zeros(tuple(shape), bool)
        z, y, x = self.offset
        dz, dy, dx = self.mask.shape
        out[z:z + dz, y:y + dy, x:x + dx] = self.mask
        return out


def _image(array: np.ndarray, spacing: np.ndarray):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(tuple(float(s) for s in spacing))
    return image


def _distance_inside(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance (mm) of each voxel of ``mask`` to the nearest voxel outside it (0 outside); the image border is
    not "outside" (tissue goes on beyond a crop)."""
    import SimpleITK as sitk

    if not mask.any():
        return np.zeros(mask.shape, np.float32)
    if mask.all():
        return np.full(mask.shape, np.inf, np.float32)
    outside = _image((~mask).astype(np.uint8), spacing)
    maurer = sitk.SignedMaurerDistanceMapImageFilter()
    maurer.SetInsideIsPositive(False)
    maurer.SetSquaredDistance(False)
    maurer.SetUseImageSpacing(True)
    maurer.SetNumberOfThreads(1)  # small images: threads cost more than they give (and torch has the cores)
    d = sitk.GetArrayFromImage(maurer.Execute(outside))
    return np.where(mask, np.asarray(d, np.float32), 0)


def _opening(mask: np.ndarray, radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Morphological opening by a ball of ``radius_mm`` (anisotropic voxels), via two distance maps."""
    core = _distance_inside(mask, spacing) > radius_mm
    if not core.any():
        return core
    return (_distance_inside(~core, spacing) <= radius_mm) & mask


def _clip_to_sphere(mask: np.ndarray, spacing: np.ndarray, factor: float) -> np.ndarray:
    """``mask`` within ``factor`` times its inscribed radius of its deepest point: a nodule is compact (an
    ellipsoid 1.5:1, or a juxtapleural half ball, reaches about twice its inscribed radius from its centre); a
    vessel that survived the opening runs on beyond."""
    if factor <= 0 or not mask.any():
        return mask
    inside = _distance_inside(mask, spacing)
    deepest = np.unravel_index(int(np.argmax(inside)), inside.shape)
    reach = factor * float(inside[deepest]) + float(spacing.max())
    z, y, x = (np.arange(n) for n in mask.shape)
    sx, sy, sz = spacing
    d2 = (((z - deepest[0]) * sz) ** 2)[:, None, None] + (((y - deepest[1]) * sy) ** 2)[None, :, None] \
        + (((x - deepest[2]) * sx) ** 2)[None, None, :]
    return _largest(mask & (d2 <= reach * reach))


def _smooth_inplane(crop: np.ndarray) -> np.ndarray:
    """A 3x3 binomial filter in each slice: takes the edge off CT noise without moving an edge."""
    a = np.pad(crop.astype(np.float32), ((0, 0), (1, 1), (1, 1)), mode="edge")
    a = 0.25 * a[:, :-2] + 0.5 * a[:, 1:-1] + 0.25 * a[:, 2:]
    return 0.25 * a[:, :, :-2] + 0.5 * a[:, :, 1:-1] + 0.25 * a[:, :, 2:]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    import SimpleITK as sitk

    fill = sitk.BinaryFillholeImageFilter()
    fill.SetNumberOfThreads(1)
    return sitk.GetArrayFromImage(fill.Execute(sitk.GetImageFromArray(mask.astype(np.uint8)))).astype(bool)


def _component_at(mask: np.ndarray, seed: tuple[int, int, int]) -> np.ndarray:
    """The 26-connected component of ``mask`` holding ``seed`` (or the one nearest to it)."""
    import SimpleITK as sitk

    if not mask.any():
        return mask
    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)),
                                                                True))
    value = int(labels[seed])
    if value == 0:
        idx = np.argwhere(mask)
        value = int(labels[tuple(idx[np.argmin(((idx - np.asarray(seed)) ** 2).sum(1))])])
    return np.asarray(labels) == value


def _beyond_pleura(wall: np.ndarray, not_air: np.ndarray, seed, spacing: np.ndarray, reach_mm: float,
                   radius_mm: float) -> np.ndarray:
    """The part of ``wall`` on the lung's side of the pleura around a juxtapleural nodule (to give back to it).

    An opening by a ball of radius W rises about ``R² / 2W`` into the flat base of a nodule of radius R lying on
    the pleura (3 mm for a 16 mm nodule): the cut runs along the ball, not the pleura. The pleura itself is where
    the wall meets the lung's air around the nodule's base: a quadric fitted to those wall voxels in a ring around
    the nodule (:data:`PLEURA_RING_INNER_MM`, :data:`PLEURA_RING_OUTER`; ``radius_mm`` the nodule's) continues it
    under the nodule, and what the opening took on the lung's side of it (within ``reach_mm`` of the seed)
    belongs to the nodule. Nothing when the pleura there is not smooth (a fit off by more than
    :data:`PLEURA_FIT_MM` rms, a corner or a fissure) or too few voxels show it.
    """
    none = np.zeros(wall.shape, bool)
    air = ~not_air
    near_air = np.zeros(wall.shape, bool)
    for axis in range(3):
        for step in (1, -1):
            near_air |= np.roll(air, step, axis)
    surface = wall & near_air
    surface[[0, -1]] = surface[:, [0, -1]] = False
    surface[:, :, [0, -1]] = False
    idx = np.argwhere(surface)
    if len(idx) < 20:
        return none
    zyx_mm = spacing[::-1]
    points = idx * zyx_mm
    centre = np.asarray(seed, float) * zyx_mm
    distance = np.linalg.norm(points - centre, axis=1)
    ring = (distance >= radius_mm + PLEURA_RING_INNER_MM) & (distance <= PLEURA_RING_OUTER * reach_mm)
    fit = _fit_quadric(points[ring], centre)
    if fit is None:
        fit = _fit_quadric(points[distance <= reach_mm], centre)
    if fit is None:
        return none
    mean, axes, coef = fit
    z, y, x = (np.arange(n) * d for n, d in zip(wall.shape, zyx_mm))
    grid = np.stack(np.meshgrid(z, y, x, indexing="ij"), axis=-1) - mean
    gu, gv, gh = grid @ axes[0], grid @ axes[1], grid @ axes[2]
    surface_h = coef[0] + coef[1] * gu + coef[2] * gv + coef[3] * gu * gu + coef[4] * gu * gv + coef[5] * gv * gv
    height = gh - surface_h
    dist2 = ((grid + mean - centre) ** 2).sum(-1)
    half_voxel = 0.5 * float(np.abs(axes[2]) @ zyx_mm)  # a surface voxel's centre lies this far inside the wall
    return wall & (height > PLEURA_OFFSET * half_voxel) & (dist2 <= reach_mm ** 2)


def _fit_quadric(points: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A quadric height field over the plane of ``points`` (mm), its normal towards ``centre``: ``(mean, axes,
    coef)`` with ``axes`` the plane's two directions and its normal, or None for fewer than 20 points or a fit
    off by more than :data:`PLEURA_FIT_MM` rms."""
    if len(points) < 20:
        return None
    mean = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - mean, full_matrices=False)
    normal = vt[2] if np.dot(centre - mean, vt[2]) >= 0 else -vt[2]
    # a quadric over the plane: the pleura curves (the lung's base, a costophrenic recess)
    rel = points - mean
    u, v, h = rel @ vt[0], rel @ vt[1], rel @ normal
    design = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)
    coef, *_ = np.linalg.lstsq(design, h, rcond=None)
    if float(np.sqrt(np.mean((design @ coef - h) ** 2))) > PLEURA_FIT_MM:
        return None
    return mean, np.stack([vt[0], vt[1], normal]), coef


def segment_nodule(hu: np.ndarray, affine: np.ndarray, box_voxel, extent: LungExtent | None = None
                   ) -> NoduleSegmentation | None:
    """Segment the nodule of one finding inside its (slightly enlarged) box, at the volume's own resolution.

    Parameters
    ----------
    hu
        ``(z, y, x)`` CT volume in HU (not modified).
    affine
        Its index -> LPS affine.
    box_voxel
        ``[z0, y0, x0, z1, y1, x1]`` half-open voxel box of the finding (``Detections.boxes_voxel``).
    extent
        :func:`lung_extent` of the scan: with it, the air outside the patient counts as "not lung" when the
        chest wall is cut off (a thin chest wall holds no ball larger than the nodule; wall plus the air beyond
        it does).

    Returns
    -------
    NoduleSegmentation or None
        ``None`` when nothing denser than the lung around it lies in the box. A coronal or sagittal volume is
        segmented as if stored axially (:func:`axial_order`: the smoothing and the wall's cut work slice by slice),
        so it gets the axial volume's mask; the result is on the volume's own grid.
    """
    order = axial_order(affine)
    if order != (0, 1, 2):
        box = np.asarray(box_voxel, np.int64).reshape(2, 3)[:, order].ravel()
        axial = segment_nodule(np.asarray(hu).transpose(order), _axial_affine(affine, order), box, extent)
        return None if axial is None else axial.transposed(tuple(int(a) for a in np.argsort(order)))
    first = _segment_in_box(hu, affine, box_voxel, extent)
    wider = None if first is None else _box_beyond(first, affine, np.shape(hu))
    if first is None or wider is None:
        return first
    # The nodule runs on through a side of its window: the finding's box held only part of it (a blob candidate
    # on a quadrant of a 16.5 mm nodule measured it -66 %). Segment again in a box grown across those sides, and
    # keep that only when it closes inside its own window and holds the first mask: otherwise the wider window let
    # the region leak into vessels or the chest wall (unguarded, 3 of 31 evaluation nodules went over +500 %).
    again = _segment_in_box(hu, affine, wider, extent)
    if again is None or _box_beyond(again, affine, np.shape(hu)) is not None or _share_inside(first, again) < 0.9:
        return first
    return again


def _box_beyond(segmentation: NoduleSegmentation, affine: np.ndarray, shape) -> np.ndarray | None:
    """A box grown across each side of the segmentation's window that the mask meets broadly (at least
    :data:`RUNS_ON_MM2` and :data:`RUNS_ON_SHARE` of its widest section across that axis: the nodule itself,
    not a vessel, runs on there) by the mask's extent along that axis; None when it meets none (the volume's own
    edges do not count)."""
    mask = segmentation.mask
    where = np.argwhere(mask)
    if not len(where):
        return None
    spacing = _spacing(affine)[::-1]  # (z, y, x)
    offset = np.asarray(segmentation.offset)
    lo, hi = where.min(axis=0), where.max(axis=0) + 1
    grow = np.zeros((2, 3), np.int64)
    for axis in range(3):
        pixel_mm2 = float(np.prod(np.delete(spacing, axis)))
        sections = np.moveaxis(mask, axis, 0).reshape(mask.shape[axis], -1).sum(axis=1) * pixel_mm2
        inner_side = (offset[axis] > 0, offset[axis] + mask.shape[axis] < shape[axis])
        for side, area in enumerate((sections[0], sections[-1])):
            if inner_side[side] and area >= RUNS_ON_MM2 and area >= RUNS_ON_SHARE * sections.max():
                grow[side, axis] = hi[axis] - lo[axis]
    if not grow.any():
        return None
    return np.r_[np.maximum(offset + lo - grow[0], 0), np.minimum(offset + hi + grow[1], shape)]


def _share_inside(inner: NoduleSegmentation, outer: NoduleSegmentation) -> float:
    """The share of ``inner``'s mask voxels that ``outer``'s mask holds."""
    points = np.argwhere(inner.mask) + np.asarray(inner.offset) - np.asarray(outer.offset)
    inside = (points >= 0).all(axis=1) & (points < np.asarray(outer.mask.shape)).all(axis=1)
    return float(outer.mask[tuple(points[inside].T)].sum()) / max(len(points), 1)


def _core_hu(glass_hu: np.ndarray, volume_mm3: float) -> float:
    """The HU from which a nodule's voxels (``glass_hu``: those of its region at glass level) are its solid core:
    :data:`SOLID_HU`, or above dense glass (see :data:`CORE_ABOVE_GLASS_HU`)."""
    median = float(np.median(glass_hu)) if glass_hu.size else SOLID_HU
    if median >= SOLID_HU or (6 * volume_mm3 / np.pi) ** (1 / 3) < CORE_ABOVE_GLASS_MIN_MM:
        return SOLID_HU
    return max(SOLID_HU, median + CORE_ABOVE_GLASS_HU)


def _segment_in_box(hu: np.ndarray, affine: np.ndarray, box_voxel, extent: LungExtent | None
                    ) -> NoduleSegmentation | None:
    """:func:`segment_nodule` in the window of one box, on an axial volume."""
    hu = np.asarray(hu)
    spacing = _spacing(affine)  # (sx, sy, sz)
    zyx_spacing = spacing[::-1]
    box = np.asarray(box_voxel, np.int64).reshape(6)
    lo, hi = box[:3], np.maximum(box[3:], box[:3] + 1)
    extent_mm = (hi - lo) * zyx_spacing
    radius_mm = 0.5 * float(np.sort(extent_mm)[1:].mean())  # the in-plane-ish size, robust to one long side
    # The chest wall is cut by an opening with a ball larger than the nodule; the crop must hold that ball
    # inside the wall, so its margin grows with the nodule.
    wall_radius = 1.25 * 0.5 * float(extent_mm.max()) + 2.0
    margin = np.ceil((wall_radius + 3.0) / zyx_spacing).astype(np.int64)
    c0 = np.maximum(lo - margin, 0)
    c1 = np.minimum(hi + margin, hu.shape)
    crop = hu[c0[0]:c1[0], c0[1]:c1[1], c0[2]:c1[2]]
    smooth = _smooth_inplane(crop)

    # Where the nodule may be: the box enlarged (WINDOW_*; vessels running on beyond it are cut here).
    # A detector's box of a small nodule can be thinner than it along one axis (one slice of a 4-slice nodule):
    # the window is at least as deep along every axis as the box is along its longest (a nodule is compact).
    reach_mm = np.maximum(extent_mm, WINDOW_CUBE * float(extent_mm.max()))
    grow = np.ceil((0.5 * (reach_mm - extent_mm) + WINDOW_SHARE * reach_mm + WINDOW_MM) / zyx_spacing
                   ).astype(np.int64)
    b0 = np.maximum(lo - grow, c0) - c0
    b1 = np.minimum(hi + grow, c1) - c0

    parenchyma = smooth[smooth < -600]
    lung_hu = float(np.median(parenchyma)) if parenchyma.size > 20 else DEFAULT_LUNG_HU

    # Seed: the box centre when it is clearly denser than the lung, else the densest voxel of the box's middle.
    centre = tuple(int(v) for v in ((lo + hi - 1) // 2 - c0))
    q = np.maximum((hi - lo) // 4, 1)
    m0 = np.maximum(np.asarray(centre) - q, 0)
    m1 = np.minimum(np.asarray(centre) + q + 1, crop.shape)
    middle = smooth[m0[0]:m1[0], m0[1]:m1[1], m0[2]:m1[2]]
    peak_at = tuple(int(v) for v in np.unravel_index(int(np.argmax(middle)), middle.shape) + m0)
    peak = float(smooth[peak_at])
    if peak < lung_hu + 120:
        return None
    # A faint ground-glass nodule fills the middle of its box at a level a vessel crossing it outshines: the
    # middle's median tells its level, and the seed is the voxel nearest the centre at half that level.
    middle_level = float(np.median(middle))
    outer_level = GROUND_GLASS_LEVEL_HU
    if smooth[centre] >= lung_hu + 150:
        seed = centre
    elif middle_level >= lung_hu + FAINT_GLASS_HU:
        outer_level = min(outer_level, middle_level)
        near = np.argwhere(middle >= 0.5 * (lung_hu + middle_level))
        near = near[np.argmin(((near + m0 - np.asarray(centre)) ** 2).sum(1))] + m0
        seed = tuple(int(v) for v in near)
    else:
        seed = peak_at

    # From here on only the enlarged box matters: work on it alone (much less to label and open).
    sub = (slice(b0[0], b1[0]), slice(b0[1], b1[1]), slice(b0[2], b1[2]))
    smooth_b = smooth[sub]
    free = [np.ones(smooth_b.shape, bool)]
    wall_cut = [False]
    raw_b = np.asarray(crop[sub], np.float32)
    seed_b = int3(np.clip(np.asarray(seed) - b0, 0, np.asarray(smooth_b.shape) - 1))

    def cut_wall() -> np.ndarray:
        """Not the chest wall (nor the mediastinum): only needed when the nodule leaks out of its box."""
        # On a grid coarsened 2x in-plane (a quarter of the voxels; the cut lies within a pixel of the fine one):
        # the distance maps of a ball larger than the nodule are the costliest step of a measurement.
        f = 2 if max(spacing[0], spacing[1]) < 1.2 else 1
        coarse_spacing = spacing * np.array([f, f, 1.0])
        not_air = (smooth >= NON_AIR_HU)[:, ::f, ::f]
        lung = extent.lung_near(c0, c1) if extent is not None else None
        if lung is not None and lung.any():
            lung = lung[:, ::f, ::f]
            # far (> 4 mm, beyond the coarse grid's error) from the lung: wall, mediastinum or air outside the body
            not_air |= ~(_distance_inside(~lung, coarse_spacing) <= 4.0) & ~lung
        wall = _opening(not_air, wall_radius, coarse_spacing)
        # The ball rises a little into the base of a juxtapleural nodule: give the nodule back the first mm.
        wall = _distance_inside(wall, coarse_spacing) > 1.0
        wall &= ~_beyond_pleura(wall, not_air, (seed[0], seed[1] // f, seed[2] // f), coarse_spacing, wall_radius,
                                0.5 * float(extent_mm.max()))
        wall = np.repeat(np.repeat(wall, f, axis=1), f, axis=2)[:, :smooth.shape[1], :smooth.shape[2]][sub]
        if wall[seed_b]:  # the nodule itself held the ball (it lies against something as thick): no cut
            return np.ones(smooth_b.shape, bool)
        return ~wall

    def touches_edge(mask: np.ndarray) -> bool:
        # a faces of the enlarged box that is not the volume's own edge: something runs on beyond the nodule
        lo_open, hi_open = (c0 + b0) > 0, (c0 + b1) < np.asarray(hu.shape)
        for axis in range(3):
            m = np.moveaxis(mask, axis, 0)
            if (lo_open[axis] and m[0].any()) or (hi_open[axis] and m[-1].any()):
                return True
        return False

    def region(threshold: float, at=seed_b, cap_mm: float = math.inf) -> np.ndarray:
        part = _component_at((smooth_b >= threshold) & free[0], at)
        if touches_edge(part) and not wall_cut[0]:  # runs on beyond the box: cut the chest wall off first
            free[0], wall_cut[0] = cut_wall(), True
            part = _component_at((smooth_b >= threshold) & free[0], at)
        if not part.any():
            return part
        # Holes first: textured glass thresholded at its half level is patchy, and a ball does not fit a patchy
        # region (two part-solid nodules of 35 mm kept under half their glass).
        part = _fill_holes(part)
        # Cut attached vessels (and a leak into a large vessel or the wall) with an opening: a ball a bit under
        # half the nodule's radius first, larger ones while the part still runs out of the box.
        # (each threshold starts again with the smallest ball: starting the nodule's final threshold with the
        # ball its first one ended with cut LIDC-IDRI-0001's nodule to 16 mm)
        for factor in (0.45, 0.7, 0.95):
            ball = max(min(factor * radius_mm, factor / 0.45 * cap_mm), 0.8)
            opened = _opening(part, ball, spacing)
            if not opened.any():
                break
            # the piece at the seed (or nearest it), not the one with most voxels in the box: that was a corner of
            # the heart beside a 32 mm part-solid nodule
            piece = _component_at(opened, at)
            if not piece.any():
                break
            part_was, part = part, piece
            if not touches_edge(part):
                break
            if factor == 0.95 and part.sum() < 0.2 * part_was.sum():
                break
        return _fill_holes(_clip_to_sphere(part, spacing, SPHERE_CLIP))

    offset = int3(c0 + b0)
    # The blurred edge of a sphere of radius R crosses its true edge at about 0.5 - 0.4 s / R of the way from the
    # lung to the nodule (s the blur); half-way for a large one, lower for a small one.
    edge = float(np.clip(0.5 - 0.4 * EDGE_BLUR_MM / max(radius_mm, 0.5), EDGE_FRACTION, 0.5))
    glass_edge = EDGE_FRACTION  # ground glass: its texture makes a higher edge ragged (tried: worse)

    def result(mask, solid, threshold, part_solid=False, level=None):
        return NoduleSegmentation(mask, solid, offset, smooth_b, lung_hu, threshold, part_solid, raw_b, level)

    outer = region(0.5 * (lung_hu + outer_level))
    dense = outer & (smooth_b >= _core_hu(smooth_b[outer], float(outer.sum()) * float(np.prod(spacing))))
    # the solid part at the seed: the largest one was the heart's edge beside a juxtamediastinal nodule
    core = _component_at(dense, seed_b) if dense[seed_b] else _largest(dense)
    if core.any() and core.sum() * float(np.prod(spacing)) < 0.5 * float(outer.sum()) * float(np.prod(spacing)):
        # a solid part much smaller than the nodule: a core only if it is more than a vessel crossing the glass
        core = _largest(_opening(core, SOLID_CORE_MIN_RADIUS_MM, spacing))
    if not core.any():  # ground glass: its own level, half-way to the lung
        glass_level = float(np.median(smooth_b[outer])) if outer.any() else peak
        threshold = lung_hu + glass_edge * (glass_level - lung_hu)
        mask = region(threshold)
        return result(mask, np.zeros_like(mask), threshold, level=glass_level)
    import SimpleITK as sitk

    # Ground glass around the core, beyond the core's own blurred rim, makes it part-solid.
    rim = sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.GetImageFromArray(core.astype(np.uint8)),
                                                   [2, 2, 1])).astype(bool)
    voxel = float(np.prod(spacing))

    def halo_round(glass: np.ndarray) -> np.ndarray | None:
        """The glass beyond the rim when there is more of it than core, all round it (a fissure through a
        perifissural nodule, or a vessel, touches a ring of it); else None. (The shell is taken here: the wall
        may have been cut since.)"""
        halo = glass & ~rim
        shell = sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.GetImageFromArray(rim.astype(np.uint8)),
                                                         [1, 1, 1])).astype(bool) & ~rim & free[0]
        around = float((shell & glass).sum()) / max(float(shell.sum()), 1.0)
        return halo if halo.sum() >= max(1.0 * core.sum(), 14.0 / voxel) and around >= HALO_AROUND else None

    halo = halo_round(outer)
    if halo is None:
        # Patchy glass: a ball of half the nodule's radius takes most of it (part-solid nodules of 35 mm kept
        # a third and half of their glass and were measured as their core, -88 % and -81 %). Judge the halo
        # again with the vessel cut's smaller ball. Only then: for all nodules, that ball kept a vessel on one
        # 37 mm part-solid nodule's core (+9 mm).
        halo = halo_round(region(0.5 * (lung_hu + outer_level), cap_mm=VESSEL_BALL_MM))
    if halo is not None:
        # the glass's level from its glass: denser voxels of the halo are vessels, or the mediastinum beside a
        # juxtamediastinal nodule, which set it at -131 HU and drew the edge inside the glass (-79 %)
        glassy = halo & (smooth_b < SOLID_HU)
        glass_level = float(np.median(smooth_b[glassy if glassy.any() else halo]))
        threshold = lung_hu + glass_edge * (glass_level - lung_hu)
        mask = region(threshold) | core
        return result(mask, core, threshold, True, glass_level)
    solid_level = min(float(np.percentile(smooth_b[core], 75)), peak, 150.0)
    threshold = lung_hu + edge * (solid_level - lung_hu)
    at = seed_b if core[seed_b] else tuple(int(v) for v in np.argwhere(core)[0])
    mask = region(threshold, at, VESSEL_BALL_MM)
    return result(mask, mask.copy(), threshold, level=solid_level)


def nodule_type(segmentation: NoduleSegmentation) -> str:
    """Calcified, solid, part-solid or ground-glass, from the HU of the segmented voxels.

    Calcified: at least :data:`CALCIFIED_FRACTION` of the voxels at or above :data:`CALCIFIED_HU` (a reader
    would still check the pattern: complete, central, popcorn or laminated calcification is benign).
    Part-solid: a ground-glass halo larger than its solid core (see :func:`segment_nodule`). Ground glass: no
    voxel cluster at solid density. Solid otherwise.
    """
    values = (segmentation.raw_hu if segmentation.raw_hu is not None else segmentation.hu)[segmentation.mask]
    if values.size and np.mean(values >= CALCIFIED_HU) >= CALCIFIED_FRACTION and (values >= CALCIFIED_HU).sum() >= 3:
        return "calcified"
    if segmentation.part_solid:
        return "part-solid"
    if not segmentation.solid.any():
        return "ground-glass"
    return "solid"


# ---------------------------------------------------------------------------------------------------------------
# Location.

@dataclass(frozen=True, eq=False)
class LungExtent:
    """Where the lungs are: the LPS x of the midline between them and each side's craniocaudal (S) range.

    ``found`` is False when no lung could be found (then the midline is the volume's centre and no zone is
    given). ``coarse`` is the lung air mask on the grid ``[:, ::step, ::step]`` of the volume made axial
    (``volume.transpose(axial_order(affine))``; None when not found): it tells the chest wall and the air outside
    the patient from the lung around a juxtapleural nodule.
    """

    midline_x: float
    right_z: tuple[float, float] | None
    left_z: tuple[float, float] | None
    found: bool = True
    coarse: np.ndarray | None = None
    step: int = 4

    def lung_near(self, c0, c1) -> np.ndarray | None:
        """The coarse lung mask over the index range ``[c0, c1)`` of the axial view (nearest neighbour), or
        None."""
        if self.coarse is None:
            return None
        zz = np.arange(c0[0], c1[0])
        yy = np.minimum(np.arange(c0[1], c1[1]) // self.step, self.coarse.shape[1] - 1)
        xx = np.minimum(np.arange(c0[2], c1[2]) // self.step, self.coarse.shape[2] - 1)
        return self.coarse[np.ix_(zz, yy, xx)]


def lung_extent(hu: np.ndarray, affine: np.ndarray, threshold_hu: float = -400.0) -> LungExtent:
    """The lungs' midline and craniocaudal extent by thresholding (no learning), once per scan.

    Air below ``threshold_hu`` on a grid coarsened 4x in-plane is split into components; those touching the
    in-plane border are outside the patient; the rest at least a fifth of the largest are the lungs. A coronal or
    sagittal volume is read as if stored axially (:func:`axial_order`): its in-plane border would otherwise cut
    the lungs off at the first and last axial level it holds, and its slices would have no craniocaudal extent.
    """
    import SimpleITK as sitk

    order = axial_order(affine)
    hu = np.asarray(hu).transpose(order)
    affine = _axial_affine(affine, order)
    step = 4
    air = hu[:, ::step, ::step] < threshold_hu
    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(air.astype(np.uint8))))
    labels = np.asarray(labels)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    border = np.unique(np.concatenate([labels[:, 0].ravel(), labels[:, -1].ravel(),
                                       labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]))
    sizes[border] = 0
    centre = affine @ np.array([(hu.shape[2] - 1) / 2, (hu.shape[1] - 1) / 2, (hu.shape[0] - 1) / 2, 1.0])
    if not sizes.any():
        return LungExtent(float(centre[0]), None, None, found=False)
    keep = sizes >= 0.2 * sizes.max()
    coarse = keep[labels]
    # projections instead of every lung voxel: LPS x of each in-plane pixel (its slice 0), S of each slice
    rows, cols = np.nonzero(coarse.any(axis=0))
    x_of = affine[0, 0] * (cols * step) + affine[0, 1] * (rows * step) + affine[0, 3]
    midline = 0.5 * (float(x_of.min()) + float(x_of.max()))
    plane_x = (affine[0, 0] * (np.arange(coarse.shape[2]) * step)[None, :]
               + affine[0, 1] * (np.arange(coarse.shape[1]) * step)[:, None] + affine[0, 3])
    left_plane = plane_x > midline  # patient left is +x in LPS
    centre_col, centre_row = (hu.shape[2] - 1) / 2, (hu.shape[1] - 1) / 2

    def z_range(side_plane):
        slices = np.flatnonzero((coarse & side_plane[None]).any(axis=(1, 2)))
        if not len(slices):
            return None
        s = affine[2, 0] * centre_col + affine[2, 1] * centre_row + affine[2, 2] * slices + affine[2, 3]
        return float(s.min()), float(s.max())

    return LungExtent(midline, z_range(~left_plane), z_range(left_plane), True, coarse, step)


def location(center_lps, extent: LungExtent | None) -> dict:
    """``{"side": "right"|"left", "zone": "upper"|"middle"|"lower"|None, "lobe_model": False}``.

    Side: the centre's LPS x against the lungs' midline (larger x is the patient's left). Zone: the thirds of
    that side's lung between its lowest and highest point (no lobe model: a zone is not a lobe).
    """
    x, _, z = (float(v) for v in center_lps)
    if extent is None:
        return {"side": "left" if x > 0 else "right", "zone": None, "lobe_model": False}
    side = "left" if x > extent.midline_x else "right"
    span = extent.left_z if side == "left" else extent.right_z
    zone = None
    if span is not None and span[1] > span[0]:
        f = (z - span[0]) / (span[1] - span[0])
        zone = "upper" if f >= 2 / 3 else ("middle" if f >= 1 / 3 else "lower")
    return {"side": side, "zone": zone, "lobe_model": False}


# ---------------------------------------------------------------------------------------------------------------
# Measurement.

def partial_volume_mm3(segmentation: NoduleSegmentation, affine: np.ndarray) -> float:
    """Volume (mm³) of a segmented nodule by partial-volume analysis (see :data:`PV_BAND_MM`,
    :data:`PV_LEVEL_MIN_VOXELS`).

    Falls back to the voxel count (:func:`volume_mm3`) without the HU or the nodule's level, or when the nodule
    is less than 50 HU above the lung.
    """
    import SimpleITK as sitk

    mask = segmentation.mask
    raw = segmentation.raw_hu
    level = segmentation.level_hu
    voxel = abs(float(np.linalg.det(np.asarray(affine, float)[:3, :3])))
    if raw is None or level is None or not mask.any() or level - segmentation.lung_hu < 50:
        return volume_mm3(mask, affine)
    spacing = _spacing(affine)
    reach = np.maximum(np.ceil(PV_BAND_MM / spacing).astype(int), 1)  # (x, y, z) voxels
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    outer = sitk.GetArrayFromImage(sitk.BinaryDilate(image, [int(v) for v in reach])).astype(bool)
    inner = sitk.GetArrayFromImage(sitk.BinaryErode(image, [int(v) for v in reach])).astype(bool)
    band = outer & ~inner
    if level > SOLID_HU and np.count_nonzero(inner) >= PV_LEVEL_MIN_VOXELS:
        level = max(float(np.median(raw[inner])), segmentation.lung_hu + 50)
    # beyond the mask only what lies below the edge threshold: above it is another structure (a vessel or the
    # chest wall that the segmentation cut off)
    band &= mask | (segmentation.hu < segmentation.threshold_hu)
    share = np.clip((raw[band] - segmentation.lung_hu) / (level - segmentation.lung_hu), 0.0, 1.0)
    return (float(np.count_nonzero(inner)) + float(share.sum())) * voxel


def measure_segmentation(segmentation: NoduleSegmentation, affine: np.ndarray,
                         extent: LungExtent | None = None) -> dict:
    """The reader's figures of a segmented nodule (see :func:`measure_nodule`)."""
    affine = np.asarray(affine, float)
    mask = segmentation.mask
    long_mm, short_mm, k = axial_axes_mm(mask, affine, segmentation.offset)
    long_r, short_r = round_half_up(long_mm, 1), round_half_up(short_mm, 1)
    mean_r = round_half_up((long_r + short_r) / 2, 1)  # Lung-RADS: the mean of the reported axes, one decimal
    typ = nodule_type(segmentation)
    solid_mm = None
    if typ == "part-solid":
        s_long, s_short, _ = axial_axes_mm(_largest(segmentation.solid), affine)
        solid_mm = round_half_up((round_half_up(s_long) + round_half_up(s_short)) / 2, 1)
    centroid = np.argwhere(mask).mean(axis=0) + np.asarray(segmentation.offset)
    center = affine[:3, :3] @ centroid[::-1] + affine[:3, 3]
    return {
        "volume_mm3": int(round_half_up(partial_volume_mm3(segmentation, affine), 0)),
        "long_axis_mm": long_r,
        "short_axis_mm": short_r,
        "mean_diameter_mm": mean_r,
        "type": typ,
        "solid_component_mm": solid_mm,
        "location": location(center, extent),
        "lung_rads": lung_rads_baseline(typ, mean_r, solid_mm),
        "center_lps": [round(float(v), 2) for v in center],
        "axial_slice": int(k),
    }


def _largest(mask: np.ndarray) -> np.ndarray:
    import SimpleITK as sitk

    if not mask.any():
        return mask
    labels = sitk.GetArrayFromImage(sitk.RelabelComponent(
        sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)), True)))
    return np.asarray(labels) == 1


def measure_nodule(hu: np.ndarray, affine: np.ndarray, box_voxel, extent: LungExtent | None = None) -> dict | None:
    """Segment and measure the nodule of one finding.

    Parameters
    ----------
    hu, affine
        The native-resolution CT (HU, ``(z, y, x)``) and its index -> LPS affine.
    box_voxel
        The finding's half-open ``[z0, y0, x0, z1, y1, x1]`` voxel box.
    extent
        From :func:`lung_extent` (compute it once per scan); without it the side is a guess from x and no zone.

    Returns
    -------
    dict or None
        ``volume_mm3`` (int, nearest mm³), ``long_axis_mm``, ``short_axis_mm``, ``mean_diameter_mm`` (one
        decimal, Lung-RADS v2022), ``type`` (:data:`NODULE_TYPES`), ``solid_component_mm`` (part-solid only, else
        None), ``location`` (:func:`location`), ``lung_rads`` (baseline category), ``center_lps`` (segmented
        centroid) and ``axial_slice`` (where the long axis was measured: the index along the volume's
        head-foot axis, :func:`axial_axes_mm`). ``None`` when nothing could be segmented.
    """
    segmentation = segment_nodule(hu, affine, box_voxel, extent)
    if segmentation is None or not segmentation.mask.any():
        return None
    return measure_segmentation(segmentation, affine, extent)


def measure_detections(hu: np.ndarray, affine: np.ndarray, detections, min_score: float = 0.0
                       ) -> list[dict | None]:
    """:func:`measure_nodule` for every box of an ``inference.types.Detections`` scoring at least ``min_score``
    (same order; ``None`` for the others: a measurement costs tens of milliseconds, and a detector lists many
    low-scoring candidates nobody reads)."""
    if len(detections) == 0:
        return []
    extent = lung_extent(hu, affine)
    return [measure_nodule(hu, affine, box, extent) if score >= min_score else None
            for box, score in zip(detections.boxes_voxel, detections.scores)]


def mask_measurements(mask: np.ndarray, affine: np.ndarray) -> dict:
    """Volume and axial axes of an exact mask (e.g. a phantom's nodule label): the truth measured the same
    way as a finding. Returns ``volume_mm3``, ``long_axis_mm``, ``short_axis_mm``, ``mean_diameter_mm``
    (unrounded)."""
    long_mm, short_mm, _ = axial_axes_mm(mask, affine)
    return {"volume_mm3": volume_mm3(mask, affine), "long_axis_mm": long_mm, "short_axis_mm": short_mm,
            "mean_diameter_mm": 0.5 * (long_mm + short_mm)}


def summary_text(m: dict | None) -> str:
    """One short line for a reader: ``"12.3 mm solid, 950 mm³, R upper, LR 4A"`` ("" without measurements)."""
    if not m:
        return ""
    typ = m["type"]
    if typ == "part-solid" and m.get("solid_component_mm") is not None:
        typ = f"part-solid ({m['solid_component_mm']:.1f} mm solid)"
    loc = m.get("location") or {}
    where = " ".join(p for p in ((loc.get("side") or "")[:1].upper(), loc.get("zone") or "") if p)
    parts = [f"{m['mean_diameter_mm']:.1f} mm {typ}", f"{m['volume_mm3']} mm³"]
    if where:
        parts.append(where)
    parts.append(f"Lung-RADS {m['lung_rads']}")
    return ", ".join(parts)


__all__ = ["LUNG_RADS_V2022_BASELINE", "NODULE_TYPES", "NoduleSegmentation", "LungExtent", "round_half_up",
           "lung_rads_baseline", "volume_mm3", "partial_volume_mm3", "axial_order", "axial_axes_mm", "segment_nodule",
           "nodule_type", "lung_extent", "location", "measure_segmentation", "measure_nodule", "measure_detections",
           "mask_measurements", "summary_text"]
