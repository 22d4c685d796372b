"""Rigid (optionally then affine) lung-focused registration of a current CT to its prior, as a cancellable job.

Alignment is by registration, not by table position: the patient lies differently at every visit. The method:

* both series are reduced by block averaging (``BinShrink``) to a pyramid of about 4 and 2 mm voxels; working on
  the small images from the start keeps a 512 x 512 x 133 pair within a few seconds on two cores;
* intensities are clamped to -1000..200 HU so bone and contrast cannot outweigh the lung structure;
* "lung-focused": the lungs are found by threshold and connected components on the coarse current image
  (:func:`viewer.core.evaluation.lung_reference`), dilated by about 10 mm to take in the pleura, diaphragm and
  mediastinal borders, and used as the fixed-image mask; the table and the body outline (which move differently
  from the lungs) do not count. The lungs' centroids initialise the translation (moments of the two masks);
* mean squares (same modality, same HU scale), regular-step gradient descent with scales from physical shift,
  a fixed random sample of the masked voxels per level, coarse to fine, each level from the last level's result.

The optimizer runs on a helper thread (:func:`inference.task.drive`) so the job yields a :class:`Progress` per
iteration; cancelling stops the optimizer at its next iteration (``StopRegistration``) and the job raises
:class:`~viewer.core.jobs.Cancelled`. Results go into a :class:`~viewer.core.followup.cache.RegistrationCache` when
one is given. The transform maps CURRENT LPS to PRIOR LPS (see :mod:`viewer.core.followup.transform`).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from viewer.core.followup.transform import Registration
from viewer.core.jobs import Cancelled, Job, Progress, is_cancelled

REVISION = 1
"""Bumped whenever the method changes what it returns: cached results of older revisions are not reused."""
CLAMP_HU = (-1000.0, 200.0)


@dataclass(frozen=True)
class RegistrationOptions:
    """How to register (all part of the cache key).

    Parameters
    ----------
    levels_mm
        Voxel size (mm, at least) of each pyramid level, coarse to fine.
    iterations
        Optimizer iterations per level at most.
    samples
        Fixed-image points sampled per level (a fraction of the masked voxels: the cost per iteration is set by
        this count, not by the image size).
    affine
        After the rigid levels, refine an affine transform (scale/shear: breathing) at the finest level.
    mask_dilate_mm
        How far the lung mask is widened before it limits the metric.
    """

    levels_mm: tuple[float, ...] = (4.0, 2.0, 1.0)
    iterations: int = 120
    samples: int = 40000
    affine: bool = False
    mask_dilate_mm: float = 10.0


def spacing_direction(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(spacing_xyz, direction 3x3, origin)`` of a Volume affine (columns of the 3x3 are the voxel axes)."""
    a = np.asarray(affine, float)
    spacing = np.linalg.norm(a[:3, :3], axis=0)
    return spacing, a[:3, :3] / spacing, a[:3, 3]


def to_sitk(array: np.ndarray, affine: np.ndarray):
    """A SimpleITK image of a ``(z, y, x)`` array on the Volume affine (LPS, which is also ITK's frame)."""
    import SimpleITK as sitk

    spacing, direction, origin = spacing_direction(affine)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(tuple(float(v) for v in spacing))
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    image.SetOrigin(tuple(float(v) for v in origin))
    return image


def _pyramid(image, levels_mm) -> list:
    """``image`` block-averaged to about each of ``levels_mm`` (float32, HU clamped)."""
    import SimpleITK as sitk

    spacing = np.asarray(image.GetSpacing())
    out = []
    for target in levels_mm:
        factors = [max(1, int(round(target / s))) for s in spacing]
        shrunk = sitk.BinShrink(image, factors) if max(factors) > 1 else image
        out.append(sitk.Clamp(sitk.Cast(shrunk, sitk.sitkFloat32), sitk.sitkFloat32, *CLAMP_HU))
    return out


def lung_air(array: np.ndarray, threshold_hu: float = -400.0) -> np.ndarray:
    """Air inside the body outline, slice by slice: lungs, airways (and gut gas) of a chest CT, as a bool mask.

    Per axial slice, so a trachea that opens to the air above the neck (as in the phantom) or a body cut by the
    field of view still leaves the lungs as holes of the body; components under 5 % of the largest are dropped.
    """
    import SimpleITK as sitk

    air = np.asarray(array) < threshold_hu
    inside = np.zeros_like(air)
    for z in range(air.shape[0]):
        tissue = sitk.GetImageFromArray((~air[z]).astype(np.uint8))
        inside[z] = sitk.GetArrayViewFromImage(sitk.BinaryFillhole(tissue)).astype(bool) & air[z]
    components = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(inside.astype(np.uint8))))
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    if not sizes.any():
        return inside
    return np.isin(components, np.flatnonzero(sizes >= 0.05 * sizes.max()))


def _lung_mask(image, dilate_mm: float):
    """The lungs of a coarse CT image, dilated by ``dilate_mm``, as a uint8 image on its grid (None if no lungs)."""
    import SimpleITK as sitk

    lungs = lung_air(sitk.GetArrayViewFromImage(image))
    if lungs.sum() < 100:
        return None
    mask = sitk.GetImageFromArray(lungs.astype(np.uint8))
    mask.CopyInformation(image)
    if dilate_mm <= 0:
        return mask
    radius = [max(1, int(round(dilate_mm / s))) for s in image.GetSpacing()]
    return sitk.BinaryDilate(mask, radius)


def _initial_transform(fixed, moving, fixed_lungs, moving_lungs):
    """Euler3D about the current lungs' centroid, translated so the lungs' centroids coincide (or the images')."""
    import SimpleITK as sitk

    if fixed_lungs is not None and moving_lungs is not None:
        return sitk.CenteredTransformInitializer(sitk.Cast(fixed_lungs, sitk.sitkFloat32),
                                                 sitk.Cast(moving_lungs, sitk.sitkFloat32), sitk.Euler3DTransform(),
                                                 sitk.CenteredTransformInitializerFilter.MOMENTS)
    return sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                             sitk.CenteredTransformInitializerFilter.GEOMETRY)


def _run_level(fixed, moving, mask, transform, options: RegistrationOptions, step_mm: float, reporter,
               level: int, n_levels: int, counter: list[int]):
    """One pyramid level: optimise ``transform`` in place; report each iteration; stop when cancelled."""
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMeanSquares()
    method.SetMetricSamplingStrategy(method.RANDOM)
    size = np.prod(fixed.GetSize())
    inside = size if mask is None else _mask_count(mask) * size / np.prod(mask.GetSize())
    # ITK draws the percentage over the whole image and drops the points outside the mask
    fraction = min(1.0, options.samples / max(inside, 1.0))
    method.SetMetricSamplingPercentage(float(fraction), 20260101)  # fixed seed: same pair, same result
    if mask is not None:
        method.SetMetricFixedMask(mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=step_mm, minStep=0.005 * step_mm,
                                                    numberOfIterations=options.iterations, relaxationFactor=0.6,
                                                    gradientMagnitudeTolerance=1e-8)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetInitialTransform(transform, inPlace=True)

    def on_iteration() -> None:
        counter[0] += 1
        if reporter.stop.is_set():
            method.StopRegistration()  # ends Execute at this iteration: cancel acts within a level, not after it
            return
        reporter.progress(level * options.iterations + method.GetOptimizerIteration(),
                          n_levels * options.iterations, f"Registering: level {level + 1}/{n_levels}")

    method.AddCommand(sitk.sitkIterationEvent, on_iteration)
    method.Execute(fixed, moving)
    reporter.check()
    return method.GetMetricValue()


def _mask_count(mask) -> float:
    import SimpleITK as sitk

    return float(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))


def _matrix_of(transform) -> np.ndarray:
    """4x4 of a SimpleITK matrix-offset transform (fixed -> moving physical points)."""
    m = np.eye(4)
    m[:3, :3] = np.asarray(transform.GetMatrix(), float).reshape(3, 3)
    centre = np.asarray(transform.GetCenter(), float)
    m[:3, 3] = np.asarray(transform.GetTranslation(), float) + centre - m[:3, :3] @ centre
    return m


def register(prior: Any, current: Any, *, options: RegistrationOptions | None = None, cancel: Any = None,
             cache: Any = None) -> Job[Registration]:
    """Register ``current`` to ``prior`` (job: yields :class:`Progress`, returns :class:`Registration`).

    Parameters
    ----------
    prior, current
        :class:`~viewer.core.volume.Volume` (or anything with ``array`` ``(z, y, x)`` in HU, ``affine`` and
        ``series_uid``) of the two CT series. Slice spacing, field of view and orientation may differ.
    options
        :class:`RegistrationOptions` (defaults: rigid, 4 then 2 mm).
    cancel
        A :class:`~viewer.core.jobs.CancelToken`; cancelling stops the optimizer and raises ``Cancelled``.
    cache
        A :class:`~viewer.core.followup.cache.RegistrationCache` consulted first and filled after.

    Returns
    -------
    Registration
        ``current_to_prior`` maps current LPS mm to prior LPS mm.
    """
    from inference.task import drive

    options = options or RegistrationOptions()
    for name, volume in (("prior", prior), ("current", current)):
        if np.asarray(volume.array).ndim != 3 or min(volume.array.shape) < 2:
            raise ValueError(f"the {name} series is not a 3D volume (shape {np.asarray(volume.array).shape})")
    key = None
    if cache is not None:
        key = cache.key(prior.series_uid, current.series_uid, REVISION, asdict(options))
        hit = cache.get(key)
        if hit is not None:
            yield Progress(1, 1, "Registration from the cache")
            return hit
    if is_cancelled(cancel):
        raise Cancelled()
    started = time.perf_counter()

    def work(reporter) -> Registration:
        import SimpleITK as sitk

        reporter.progress(0, 0, "Preparing the images for registration")
        fixed_levels = _pyramid(to_sitk(current.array, current.affine), options.levels_mm)
        reporter.check()
        moving_levels = _pyramid(to_sitk(prior.array, prior.affine), options.levels_mm)
        reporter.check()
        fixed_lungs = _lung_mask(fixed_levels[0], options.mask_dilate_mm)
        moving_lungs = _lung_mask(moving_levels[0], 0.0)
        reporter.check()
        transform = sitk.Euler3DTransform(_initial_transform(fixed_levels[0], moving_levels[0], fixed_lungs,
                                                             moving_lungs))
        counter = [0]
        n = len(options.levels_mm) + (1 if options.affine else 0)
        metric = None
        for level, (fixed, moving) in enumerate(zip(fixed_levels, moving_levels)):
            step = max(1.0, options.levels_mm[level])  # about one voxel of the level per first step
            metric = _run_level(fixed, moving, fixed_lungs, transform, options, step, reporter, level, n, counter)
        final: Any = transform
        if options.affine:
            affine = sitk.AffineTransform(3)
            affine.SetCenter(transform.GetCenter())
            affine.SetMatrix(transform.GetMatrix())
            affine.SetTranslation(transform.GetTranslation())
            metric = _run_level(fixed_levels[-1], moving_levels[-1], fixed_lungs, affine, options, 0.5 * step,
                                reporter, n - 1, n, counter)
            final = affine
        return Registration(_matrix_of(final), prior.series_uid, current.series_uid,
                            "affine" if options.affine else "rigid",
                            tuple(float(v) for v in transform.GetCenter()),  # type: ignore[arg-type]
                            None if metric is None else float(metric), counter[0],
                            time.perf_counter() - started, REVISION)

    result = yield from drive(work, cancel, name="hounsfield-registration")
    if cache is not None and key is not None:
        cache.put(key, result)
    return result
