"""Where the shipped assets (``resources/``: built-in model bundles, presets, colour tables, icons) live.

The same code runs from a source checkout, an installed wheel and a PyInstaller-frozen app, so the folder is
looked up in that order of explicitness:

1. ``HOUNSFIELD_RESOURCES`` (an explicit override, e.g. for tests or packagers);
2. a frozen app: ``<sys._MEIPASS>/resources`` (the spec copies ``resources/`` there);
3. a source checkout or editable install: ``<repo>/resources`` beside the ``inference`` package;
4. an installed wheel: the ``hounsfield_resources`` package (``setup.py`` maps ``resources/`` onto that name).

Nothing here imports torch, Qt or ``viewer``.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ENV_VAR = "HOUNSFIELD_RESOURCES"
PACKAGE_NAME = "hounsfield_resources"


def resource_candidates() -> list[Path]:
    """Every place :func:`resources_dir` looks, most explicit first (existing or not)."""
    candidates: list[Path] = []
    if override := os.environ.get(ENV_VAR):
        candidates.append(Path(override))
    meipass = getattr(sys, "_MEIPASS", None)
    if getattr(sys, "frozen", False) and meipass:
        candidates.append(Path(meipass) / "resources")
    candidates.append(Path(__file__).resolve().parent.parent / "resources")
    try:
        spec = importlib.util.find_spec(PACKAGE_NAME)
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        candidates.extend(Path(p) for p in (spec.submodule_search_locations or []))
    return candidates


def resources_dir() -> Path:
    """The folder holding the shipped assets.

    Returns the first existing candidate of :func:`resource_candidates`; when none exists (a bare wheel
    without data) the checkout location is returned so callers get an empty, predictable path.
    """
    candidates = resource_candidates()
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parent.parent / "resources"


def builtin_models_dir() -> Path:
    """``<resources>/models``: the built-in MONAI bundles, one folder each."""
    return resources_dir() / "models"
