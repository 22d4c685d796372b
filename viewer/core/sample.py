"""The built-in sample study: a generated chest CT written as a real DICOM series, with its ground truth beside it.

Layout of ``write_sample_study(out_dir, seed)``::

    out_dir/dicom/                      the CT series (one uncompressed file per slice)
    out_dir/ground_truth/labels.nii.gz  label map on the same grid (RAS affine): 1 left lung, 2 right lung,
                                        3 airway, 4 nodule
    out_dir/ground_truth/labels.json    the label table
    out_dir/ground_truth/nodules.json   {"nodules": [{"center_lps": [x, y, z], "diameter_mm": d, ...}]}

``write_followup_study(out_dir, seed, days)`` writes the same study and, under ``out_dir/followup``, a second
study of the same patient ``days`` later (nodules grown, one new, one resolved, the patient moved on the table)::

    out_dir/followup/dicom/                      the follow-up CT (new StudyInstanceUID, later StudyDate)
    out_dir/followup/ground_truth/nodules.json   its nodules, in its own LPS
    out_dir/followup/ground_truth/followup.json  the link: motion (current_to_prior), per nodule ids then/now,
                                                 volumes, diameters and volume doubling times

The phantom itself lives in ``inference.training.phantom`` (training draws phantoms from it in memory).
"""
from __future__ import annotations

import datetime
import json
import shutil
import tempfile
from pathlib import Path

from inference.training.phantom import (
    DEFAULT_SHAPE,
    DEFAULT_SPACING,
    PHANTOM_VERSION,
    generate_phantom,
    save_ground_truth,
)
from viewer.core.dicom.synthetic import write_series
from viewer.core.paths import user_cache_dir

LUNG_WINDOW = (-600.0, 1500.0)
SAMPLE_STUDY_DATE = "20240101"
"""StudyDate of the sample study; a follow-up is dated ``days`` after it."""
DEMO_MODELS = ("hounsfield-chest-ct-nodule-detection", "hounsfield-chest-ct-segmentation")
"""The built-in models the app runs on the sample study when it opens it (in this order)."""


def write_sample_study(out_dir: str | Path, seed: int = 0, *, shape: tuple[int, int, int] | None = None,
                       spacing: tuple[float, float, float] | None = None) -> Path:
    """Generate the phantom for ``seed``, write it to ``out_dir/dicom`` (+ ``ground_truth``); return the DICOM folder.

    The same seed (and grid) writes the same pixels and the same UIDs (derived from the seed, the grid and the
    phantom version). ``shape``/``spacing`` (``(z, y, x)`` voxels and mm) give another grid, e.g. small studies
    that tests and benchmarks run the models on quickly; the default is the routine 2.5 mm / 0.9 mm chest CT.
    """
    out_dir = Path(out_dir)
    phantom = generate_phantom(seed, shape or DEFAULT_SHAPE, spacing or DEFAULT_SPACING)
    return _write_study(out_dir, phantom, seed, grid=_grid_tag(shape, spacing))


def _grid_tag(shape, spacing) -> str:
    """Part of the UID seed for a grid other than the default, so another grid never reuses the default's UIDs."""
    if (shape is None or tuple(shape) == DEFAULT_SHAPE) and (spacing is None or tuple(spacing) == DEFAULT_SPACING):
        return ""
    grid = tuple(shape or DEFAULT_SHAPE) + tuple(float(v) for v in (spacing or DEFAULT_SPACING))
    return "/grid/" + "x".join(f"{v:g}" for v in grid)


def _write_study(out_dir: Path, phantom, seed: int, days: int = 0, grid: str = "") -> Path:
    """Write one phantom study (the sample, or with ``days`` > 0 its follow-up) with its ground truth."""
    dicom_dir = out_dir / "dicom"
    uid_seed = f"hounsfield-sample/v{PHANTOM_VERSION}/{seed}" + grid + (f"/followup/{days}" if days else "")
    date = datetime.datetime.strptime(SAMPLE_STUDY_DATE, "%Y%m%d").date() + datetime.timedelta(days=days)
    description = f"Sample chest CT, synthetic (seed {seed})" + (f", follow-up +{days} d" if days else "")
    write_series(dicom_dir, phantom.hu, spacing=phantom.spacing, origin=phantom.origin_lps,
                 patient_id=f"HF-SAMPLE-{seed:04d}", patient_name="Sample^Chest Phantom",
                 description=description, window=LUNG_WINDOW, uid_seed=uid_seed, study_date=date.strftime("%Y%m%d"),
                 study_description="Hounsfield synthetic chest CT")
    save_ground_truth(phantom, out_dir / "ground_truth")
    return dicom_dir


def write_followup_study(out_dir: str | Path, seed: int = 0, days: int = 365, *,
                         shape: tuple[int, int, int] | None = None,
                         spacing: tuple[float, float, float] | None = None) -> tuple[Path, Path]:
    """Write the sample study of ``seed`` (as :func:`write_sample_study`) and its follow-up ``days`` later.

    The follow-up is the same patient (PatientID, name) in a new study (new UIDs, StudyDate ``days`` later), made
    by :func:`inference.training.phantom.followup.generate_followup`; its ground truth adds ``followup.json``
    (the true motion as ``current_to_prior``, and per nodule the ids in both studies, volumes, diameters, VDTs).
    ``shape``/``spacing`` give a coarser grid (tests); the default is the sample study's.

    Returns
    -------
    (Path, Path)
        The prior's and the follow-up's DICOM folders.
    """
    from inference.training.phantom.followup import generate_followup

    out_dir = Path(out_dir)
    pair = generate_followup(seed, days, shape or DEFAULT_SHAPE, spacing or DEFAULT_SPACING)
    prior_dir = _write_study(out_dir, pair.prior, seed)
    current_dir = _write_study(out_dir / "followup", pair.current, seed, pair.days)
    (out_dir / "followup" / "ground_truth" / "followup.json").write_text(json.dumps(pair.truth, indent=2))
    return prior_dir, current_dir


def demo_study_path() -> Path:
    """The cached sample study's DICOM folder, generated on first use (written atomically via a rename).

    The cache is keyed by the phantom version, so a new generator never shows a stale study.
    """
    target = user_cache_dir() / f"sample-study-v{PHANTOM_VERSION}"
    dicom_dir = target / "dicom"
    if dicom_dir.is_dir() and any(dicom_dir.iterdir()):
        return dicom_dir
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".sample-", dir=target.parent))
    try:
        write_sample_study(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        staging.rename(target)
    except OSError:  # another process won the race: use its copy
        shutil.rmtree(staging, ignore_errors=True)
    return dicom_dir
