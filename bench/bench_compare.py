"""Registration time of a prior comparison (issue 13), on a LIDC-sized pair; target <= 10 s on 2 cores.

Pairs:

* LIDC-IDRI-0001 (512 x 512 x 133, 0.70 x 0.70 x 2.5 mm) against a copy of itself moved by a known rigid motion
  (3 degrees about z, 1 degree tilt, a (6, -4, 8) mm shift), resampled (linear) onto the same axis-aligned grid,
  with 15 HU of fresh noise so the two do not share their noise - when ../shared/data is present;
* the phantom pair of ``hounsfield sample --follow-up 365`` (seed 0, 384 x 384 x 128, 0.9 x 0.9 x 2.5 mm):
  grown, new and resolved nodules, separately rendered noise.

Accuracy: target registration error (TRE) at points of the lungs (LIDC: the lung voxels' centroid and six points
40 mm from it; phantom: the nodule centres). The reference measured in the same run is plain SimpleITK doing
the least any registration must: read the series (``ImageSeriesReader``) and resample it once through a rigid
transform on its own grid.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

MOTION = {"angles_deg": (1.0, 0.0, 3.0), "shift_mm": (6.0, -4.0, 8.0)}


def _shared() -> Path:
    return Path(os.environ.get("HOUNSFIELD_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def _register(prior, current):
    from viewer.core.followup.registration import register
    from viewer.core.jobs import run_job

    start = time.perf_counter()
    reg = run_job(register(prior, current))
    return time.perf_counter() - start, reg


def _tre(reg, points, true_current_to_prior) -> np.ndarray:
    t = true_current_to_prior
    return np.linalg.norm(reg.to_prior(points) - (points @ t[:3, :3].T + t[:3, 3]), axis=1)


def _reference(folder: Path, matrix: np.ndarray) -> float:
    """Plain SimpleITK: read the series and resample it once through ``matrix`` (seconds)."""
    import SimpleITK as sitk

    start = time.perf_counter()
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(float(v) for v in matrix[:3, :3].ravel()))
    transform.SetTranslation(tuple(float(v) for v in matrix[:3, 3]))
    sitk.Resample(image, image, transform, sitk.sitkLinear, -1024.0)
    return time.perf_counter() - start


def _lidc_pair(folder: Path):
    """LIDC-0001 and its moved copy (as current), the true current->prior matrix, lung test points (current LPS),
    the motion and the series folder."""
    import SimpleITK as sitk

    from inference.training.phantom.followup import rigid_matrix
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan
    from viewer.core.followup.registration import lung_air, to_sitk

    series = max(scan([str(folder)]).all_series(), key=lambda s: s.n_instances)
    volume = load_series(series)
    lungs = np.argwhere(lung_air(volume.array[:, ::4, ::4]))
    centre = volume.index_to_lps(lungs.mean(0)[::-1] * [4, 4, 1])
    prior_to_current = rigid_matrix(MOTION["angles_deg"], MOTION["shift_mm"], centre)
    current_to_prior = np.linalg.inv(prior_to_current)
    image = to_sitk(volume.array, volume.affine)
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(float(v) for v in current_to_prior[:3, :3].ravel()))
    transform.SetTranslation(tuple(float(v) for v in current_to_prior[:3, 3]))
    moved = sitk.GetArrayFromImage(sitk.Resample(image, image, transform, sitk.sitkLinear, -1024.0))
    noise = np.random.default_rng(13).normal(0, 15, moved.shape).astype(np.float32)
    moved = np.clip(moved + noise, -1024, 3071).astype(np.int16)
    prior = SimpleNamespace(array=volume.array, affine=volume.affine, series_uid="lidc")
    current = SimpleNamespace(array=moved, affine=volume.affine, series_uid="lidc-moved")
    offsets = np.array([[40, 0, 0], [-40, 0, 0], [0, 40, 0], [0, -40, 0], [0, 0, 40], [0, 0, -40]], float)
    points = prior_to_current[:3, :3] @ centre + prior_to_current[:3, 3] + np.vstack([[0, 0, 0], offsets])
    return prior, current, current_to_prior, points, prior_to_current, Path(series.instances[0].path).parent


def run(workdir: Path):
    """Yield the report lines."""
    lidc = _shared() / "data" / "lidc-idri-0001"
    if lidc.is_dir():
        prior, current, truth, points, motion, series_dir = _lidc_pair(lidc)
        reference = min(_reference(series_dir, motion) for _ in range(2))
        seconds, reg = _register(prior, current)
        tre = _tre(reg, points, truth)
        yield (f"LIDC-IDRI-0001 vs its moved copy (512x512x133): registration {seconds:.2f} s (target <= 10 s), "
               f"{reg.iterations} iterations; reference SimpleITK read + one resample {reference:.2f} s "
               f"(ratio {seconds / reference:.1f}x)")
        yield (f"   TRE at 7 lung points: median {np.median(tre):.2f} mm, max {tre.max():.2f} mm; "
               f"rotation found {reg.rotation_deg:.2f} deg (true "
               f"{np.degrees(np.arccos((np.trace(truth[:3, :3]) - 1) / 2)):.2f})")
    else:
        yield "LIDC-IDRI-0001 not present (../shared/data): LIDC pair skipped"

    from inference.training.phantom.followup import generate_followup

    start = time.perf_counter()
    pair = generate_followup(0, 365)
    generated = time.perf_counter() - start
    prior = SimpleNamespace(array=pair.prior.hu, affine=pair.prior.affine, series_uid="phantom-prior")
    current = SimpleNamespace(array=pair.current.hu, affine=pair.current.affine, series_uid="phantom-current")
    seconds, reg = _register(prior, current)
    centres = np.array([n.center_lps for n in pair.current.nodules])
    tre = _tre(reg, centres, pair.current_to_prior)
    yield (f"phantom pair (seed 0, +365 d, 384x384x128): registration {seconds:.2f} s, {reg.iterations} iterations "
           f"(pair generated in {generated:.1f} s); TRE at {len(tre)} nodules: max {tre.max():.2f} mm")
