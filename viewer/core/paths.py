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
