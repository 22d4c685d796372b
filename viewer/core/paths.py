"""Per-user folders (data, cache) without Qt, following XDG on Linux and the usual places elsewhere."""
from __future__ import annotations

import os
import sys
from pathlib import Path

APP = "hounsfield"


def user_data_dir() -> Path:
    """Where autosaves, settings files and user models live (``HOUNSFIELD_HOME`` overrides)."""
    if override := os.environ.get("HOUNSFIELD_HOME"):
        return Path(override)
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / APP
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / APP


def user_cache_dir() -> Path:
    """Where regenerable files (the demo study) are kept."""
    if override := os.environ.get("HOUNSFIELD_HOME"):
        return Path(override) / "cache"
    if sys.platform == "win32":
        return user_data_dir() / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / APP
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / APP
