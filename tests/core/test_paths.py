"""Per-user folders in each platform's standard places (the Qt side is compared in tests/qt/test_crash_and_paths.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from viewer.core import paths


@pytest.fixture
def no_override(monkeypatch):
    monkeypatch.delenv("HOUNSFIELD_HOME", raising=False)
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "APPDATA", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)


def test_linux_follows_xdg(no_override, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "platform", "linux")
    home = Path.home()
    assert paths.user_data_dir() == home / ".local" / "share" / "hounsfield"
    assert paths.user_config_dir() == home / ".config" / "hounsfield"
    assert paths.user_cache_dir() == home / ".cache" / "hounsfield"
    assert paths.user_log_dir() == home / ".local" / "state" / "hounsfield" / "logs"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert paths.user_log_dir() == tmp_path / "state" / "hounsfield" / "logs"
    assert paths.user_config_dir() == tmp_path / "config" / "hounsfield"


def test_macos_and_windows_places(no_override, monkeypatch, tmp_path):
    home = Path.home()
    monkeypatch.setattr(sys, "platform", "darwin")
    assert paths.user_data_dir() == home / "Library" / "Application Support" / "hounsfield"
    assert paths.user_config_dir() == home / "Library" / "Preferences" / "hounsfield"
    assert paths.user_cache_dir() == home / "Library" / "Caches" / "hounsfield"
    assert paths.user_log_dir() == home / "Library" / "Logs" / "hounsfield"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "Local"))
    assert paths.user_data_dir() == tmp_path / "Roaming" / "hounsfield"
    assert paths.user_config_dir() == tmp_path / "Local" / "hounsfield"
    assert paths.user_cache_dir() == tmp_path / "Local" / "hounsfield" / "cache"
    assert paths.user_log_dir() == tmp_path / "Local" / "hounsfield" / "logs"


def test_hounsfield_home_holds_everything(monkeypatch, tmp_path):
    monkeypatch.setenv("HOUNSFIELD_HOME", str(tmp_path))
    assert paths.user_data_dir() == paths.user_config_dir() == tmp_path
    assert paths.user_cache_dir() == tmp_path / "cache" and paths.user_log_dir() == tmp_path / "logs"
