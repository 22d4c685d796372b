"""The built-in sample study: a generated chest-CT-like series written as real DICOM files."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from viewer.core.dicom.synthetic import phantom_ct, write_series
from viewer.core.paths import user_cache_dir

SAMPLE_SHAPE = (120, 256, 256)
SAMPLE_SPACING = (2.0, 1.2, 1.2)


def write_sample_study(out_dir: str | Path, seed: int = 0) -> Path:
    """Write the sample study to ``out_dir/dicom`` and return that folder."""
    dicom_dir = Path(out_dir) / "dicom"
    hu = phantom_ct(SAMPLE_SHAPE, seed=seed)
    write_series(dicom_dir, hu, spacing=SAMPLE_SPACING, description=f"Hounsfield sample (seed {seed})")
    return dicom_dir


def demo_study_path() -> Path:
    """The cached sample study's DICOM folder, generated on first use (written atomically via a rename)."""
    target = user_cache_dir() / "sample-study"
    dicom_dir = target / "dicom"
    if dicom_dir.is_dir() and any(dicom_dir.iterdir()):
        return dicom_dir
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".sample-", dir=target.parent))
    write_sample_study(staging)
    try:
        staging.rename(target)
    except OSError:  # another process won the race: use its copy
        shutil.rmtree(staging, ignore_errors=True)
    return dicom_dir
