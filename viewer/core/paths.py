"""Per-user folders (data, config, cache, logs) without Qt: the places Qt's ``QStandardPaths`` gives an application
named ``hounsfield`` with no organisation (``viewer.qt.app`` names it so, and a test compares the two on Linux).

- data: Linux ``$XDG_DATA_HOME/hounsfield``; macOS ``~/Library/Application Support/hounsfield``; Windows
  ``%APPDATA%/hounsfield``.
- config: ``$XDG_CONFIG_HOME/hounsfield``; ``~/Library/Preferences/hounsfield``; ``%LOCALAPPDATA%/hounsfield``.
- cache: ``$XDG_CACHE_HOME/hounsfield``; ``~/Library/Caches/hounsfield``; ``%LOCALAPPDATA%/hounsfield/cache``.
- logs: ``$XDG_STATE_HOME/hounsfield/logs``; ``~/Library/Logs/hounsfield``; ``%LOCALAPPDATA%/hounsfield/logs``.

Data holds autosaves, the models folder and trusted-model records; config holds ``settings.ini``. ``HOUNSFIELD_HOME``
puts all of them in one folder (tests, portable installs): data and config are that folder, cache and logs below it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

APP = "hounsfield"


def _env_dir(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value) if value else default


def _local_appdata() -> Path:
    return _env_dir("LOCALAPPDATA", Path.home() / "AppData" / "Local")


def user_data_dir() -> Path:
    """Where autosaves, user models and trusted-model records live (``HOUNSFIELD_HOME`` overrides)."""
    if override := os.environ.get("HOUNSFIELD_HOME"):
        return Path(override)
    if sys.platform == "win32":
        return _env_dir("APPDATA", Path.home() / "AppData" / "Roaming") / APP
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP
    return _env_dir("XDG_DATA_HOME", Path.home() / ".local" / "share") / APP


def user_config_dir() -> Path:
    """Where ``settings.ini`` lives (``HOUNSFIELD_HOME`` overrides: the same folder as the data)."""
    if override := os.environ.get("HOUNSFIELD_HOME"):
        return Path(override)
    if sys.platform == "win32":
        return _local_appdata() / APP
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Preferences" / APP
    return _env_dir("XDG_CONFIG_HOME", Path.home() / ".config") / APP


def user_cache_dir() -> Path:
    """Where regenerable files (the demo study) are kept."""
    if override := os.environ.get("HOUNSFIELD_HOME"):
        return Path(override) / "cache"
    if sys.platform == "win32":
        return _local_appdata() / APP / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / APP
    return _env_dir("XDG_CACHE_HOME", Path.home() / ".cache") / APP


def user_log_dir() -> Path:
    """Where the rotating log files go (``HOUNSFIELD_HOME/logs`` with the override)."""
    if override := os.environ.get("HOUNSFIELD_HOME"):
        return Path(override) / "logs"
    if sys.platform == "win32":
        return _local_appdata() / APP / "logs"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Logs" / APP
    return _env_dir("XDG_STATE_HOME", Path.home() / ".local" / "state") / APP / "logs"


def user_exports_dir() -> Path:
    """Where exports (SEG, NIfTI, findings, screenshots) go by default: ``Documents/Hounsfield exports``
    (``$XDG_DOCUMENTS_DIR`` when set; ``HOUNSFIELD_HOME/exports`` when that override is set, e.g. for tests)."""
    if override := os.environ.get("HOUNSFIELD_HOME"):
        return Path(override) / "exports"
    documents = os.environ.get("XDG_DOCUMENTS_DIR") if sys.platform.startswith("linux") else None
    return Path(documents or Path.home() / "Documents") / "Hounsfield exports"


def _inside(folder: Path, parent: Path) -> bool:
    return folder == parent or parent in folder.parents


def export_start_folder(remembered: str | os.PathLike | None, sources=()) -> Path:
    """The folder an export dialog opens in: the one the user exported to last (``remembered``) when it still
    exists and is not inside a folder the study was read from, else :func:`user_exports_dir`.

    Exports never default into a source folder: a file written there would be scanned as part of the study the
    next time it is opened, and the source may be a read-only share or a CD.

    Parameters
    ----------
    remembered
        The last export folder ("" or None: none).
    sources
        Paths the shown study was opened from (folders or files).
    """
    source_dirs = []
    for source in sources:
        path = Path(source).expanduser().resolve()
        source_dirs.append(path if path.is_dir() else path.parent)
    if remembered:
        folder = Path(remembered).expanduser().resolve()
        if folder.is_dir() and not any(_inside(folder, s) for s in source_dirs):
            return folder
    return user_exports_dir()
