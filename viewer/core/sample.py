"""The built-in sample study: a generated chest CT written as a real DICOM series, with its ground truth beside it.

Layout of ``write_sample_study(out_dir, seed)``::

    out_dir/dicom/                      the CT series (one uncompressed file per slice)
    out_dir/ground_truth/labels.nii.gz  label map on the same grid (RAS affine): 1 left lung, 2 right lung,
                                        3 airway, 4 nodule
    out_dir/ground_truth/labels.json    the label table
    out_dir/ground_truth/nodules.json   {"nodules": [{"center_lps": [x, y, z], "diameter_mm": d, ...}]}

The phantom itself lives in ``inference.training.phantom`` (training draws phantoms from it in memory).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from inference.training.phantom import PHANTOM_VERSION, generate_phantom, save_ground_truth
from viewer.core.dicom.synthetic import write_series
from viewer.core.paths import user_cache_dir

LUNG_WINDOW = (-600.0, 1500.0)
DEMO_MODELS = ("hounsfield-chest-ct-nodule-detection", "hounsfield-chest-ct-segmentation")
"""The built-in models the app runs on the sample study when it opens it (in this order)."""


def write_sample_study(out_dir: str | Path, seed: int = 0) -> Path:
    """Generate the phantom for ``seed``, write it to ``out_dir/dicom`` (+ ``ground_truth``); return the DICOM folder.

    The same seed writes the same pixels and the same UIDs (derived from the seed and the phantom version).
    """
    out_dir = Path(out_dir)
    phantom = generate_phantom(seed)
    dicom_dir = out_dir / "dicom"
    write_series(dicom_dir, phantom.hu, spacing=phantom.spacing, origin=phantom.origin_lps,
                 patient_id=f"HF-SAMPLE-{seed:04d}", patient_name="Sample^Chest Phantom",
                 description=f"Sample chest CT, synthetic (seed {seed})", window=LUNG_WINDOW,
                 uid_seed=f"hounsfield-sample/v{PHANTOM_VERSION}/{seed}", study_date="20240101",
                 study_description="Hounsfield synthetic chest CT")
    save_ground_truth(phantom, out_dir / "ground_truth")
    return dicom_dir


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
