"""Shared fixtures: the real DICOM data in ../shared/data (tests skip cleanly when it is absent)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HOUNSFIELD_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"


def data_path(*parts: str) -> Path:
    """Path under ../shared/data, or skip the calling test with the reason when it is missing."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test data not available: {path} (clone with ../shared beside the repo)")
    return path


@pytest.fixture
def shared_data() -> Path:
    """The ../shared/data folder (skips when absent)."""
    return data_path()


@pytest.fixture
def lidc_dir() -> Path:
    """The LIDC-IDRI-0001 chest CT (133 slices)."""
    return data_path("lidc-idri-0001")


@pytest.fixture
def mr_sagittal_dir() -> Path:
    """The sagittal MR acquired head-first decubitus right."""
    return data_path("mr-decubitus-hfdr")


#: Seeds whose phantoms, on :data:`SMALL_GRID`, the built-in chest models accept (enough lung in 160 mm of chest).
SMALL_SEEDS = (2, 3, 4, 5, 8, 9)
#: A small chest CT grid (32 x 160 x 160 voxels, 5 x 1.5 x 1.5 mm): both built-in models run on it in ~3 s on a core.
SMALL_GRID = {"shape": (32, 160, 160), "spacing": (5.0, 1.5, 1.5)}


@pytest.fixture(scope="session")
def small_studies(tmp_path_factory) -> list[Path]:
    """Six small phantom chest CT studies written by ``hounsfield sample`` (each folder: ``dicom/`` and
    ``ground_truth/``), one patient and study per seed of :data:`SMALL_SEEDS`. Read-only for tests."""
    from viewer.core.sample import write_sample_study

    root = tmp_path_factory.mktemp("small-studies")
    return [write_sample_study(root / f"seed-{seed}", seed=seed, **SMALL_GRID).parent for seed in SMALL_SEEDS]
