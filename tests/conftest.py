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
