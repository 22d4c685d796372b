"""resources_dir(): checkout, explicit override, PyInstaller bundle, installed package data."""
from __future__ import annotations

import sys
from pathlib import Path

from inference import resources

REPO = Path(__file__).resolve().parents[2]


def test_checkout_resources_folder_is_found(monkeypatch):
    monkeypatch.delenv("HOUNSFIELD_RESOURCES", raising=False)
    assert resources.resources_dir() == REPO / "resources"
    assert resources.builtin_models_dir() == REPO / "resources" / "models"


def test_environment_override_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("HOUNSFIELD_RESOURCES", str(tmp_path))
    assert resources.resources_dir() == tmp_path


def test_frozen_app_uses_meipass(monkeypatch, tmp_path):
    monkeypatch.delenv("HOUNSFIELD_RESOURCES", raising=False)
    (tmp_path / "resources").mkdir()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resources.resources_dir() == tmp_path / "resources"


def test_installed_package_data_is_found(monkeypatch, tmp_path):
    monkeypatch.delenv("HOUNSFIELD_RESOURCES", raising=False)
    package = tmp_path / "site" / resources.PACKAGE_NAME
    package.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    # As in an installed wheel: no checkout folder beside the package.
    fake_file = tmp_path / "site" / "inference" / "resources.py"
    monkeypatch.setattr(resources, "__file__", str(fake_file))
    sys.modules.pop(resources.PACKAGE_NAME, None)
    assert resources.resources_dir() == package
