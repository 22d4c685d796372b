"""What to tell the reader about an open: the one line shown over the views and the details behind it.

Plain data built from what scanning and loading already return (the catalog's skipped files, the volume's
warnings and blank slices), so the GUI only shows it and the wording is tested without Qt. Nothing here names a
patient: file paths and the loader's messages only.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from viewer.core.issues import SeriesWarning

ERROR, WARNING, INFO = "error", "warning", "info"
#: Warning codes that are worth the details but not a banner of their own (the display already handles them).
QUIET_CODES = ("monochrome1",)


@dataclass
class LoadReport:
    """One open's outcome for the reader.

    Parameters
    ----------
    level
        ``"error"`` (nothing usable, or blank slices), ``"warning"`` (shown, but read with care) or ``"info"``.
    headline
        One sentence for the banner over the views.
    warnings
        Everything the loader flagged, for the details.
    skipped
        ``(path, reason)`` of every file that was not read.
    models_blocked
        Why AI models must not run on what is shown ("" when they may).
    """

    level: str
    headline: str
    warnings: list[SeriesWarning] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    models_blocked: str = ""

    def details_text(self) -> str:
        """The details as plain text (for the dialog's copy button and for logs)."""
        lines = [self.headline]
        if self.models_blocked:
            lines += ["", f"AI models: {self.models_blocked}"]
        if self.warnings:
            lines += ["", "Warnings:"] + [f"  [{w.code}] {w.message}" for w in self.warnings]
        if self.skipped:
            lines += ["", f"Skipped files ({len(self.skipped)}):"] + [f"  {p}: {r}" for p, r in self.skipped]
        return "\n".join(lines)


def _skipped(catalog) -> list[tuple[str, str]]:
    return [(u.path, u.reason) for u in getattr(catalog, "unreadable", None) or []]


def _where(paths: Iterable[str]) -> str:
    return ", ".join(os.path.basename(str(p).rstrip("/\\")) or str(p) for p in paths)


def blocked_reason(volume) -> str:
    """Why a model must not run on ``volume`` ("" when it may): still loading, stopped part-way, blank slices."""
    if volume is None:
        return "Open a series first"
    failed = getattr(volume, "failed_slices", None) or []
    if failed or any(w.code == "decode_failed" for w in volume.warnings or []):
        n = len(failed) or "Some"
        return f"{n} slice{'s' if n != 1 else ''} could not be decoded: results on blank slices would be wrong"
    if not volume.complete:
        return f"Only {volume.slices_loaded} of {volume.shape[0]} slices are loaded"
    return ""


def report_no_images(paths: Iterable[str], catalog) -> LoadReport:
    """Nothing to show: no image series in what was opened."""
    skipped = _skipped(catalog)
    headline = f"No DICOM images found in {_where(paths)}"
    if skipped:
        headline += f" — {len(skipped)} file{'s' if len(skipped) != 1 else ''} skipped"
    others = [s for s in (catalog.all_series() if catalog is not None else []) if s.kind != "image"]
    if others:
        headline += f" ({len(others)} non-image object{'s' if len(others) != 1 else ''})"
    return LoadReport(ERROR, headline, [], skipped, "Nothing is loaded")


def report_failed(what: str, reason: str, catalog=None) -> LoadReport:
    """Scanning or loading stopped with an error: ``what`` failed because ``reason``."""
    return LoadReport(ERROR, f"{what} failed: {reason}", [], _skipped(catalog), "Nothing is loaded")


def report_volume(volume, catalog=None, series_warnings: Iterable[SeriesWarning] = (),
                  image_number: Callable[[int], int] | None = None) -> LoadReport | None:
    """What the reader must know about a shown volume (None when there is nothing to say).

    Blank (undecodable) slices are an error, a volume stopped part-way or any loader warning a warning; files
    skipped while scanning alone give an info line. ``image_number`` maps an array slice to the image number the
    views show (display order may run the other way); with it the blank images are named as the reader sees them.
    """
    warnings = list(volume.warnings or [])
    for w in series_warnings:
        if w not in warnings:
            warnings.append(w)
    skipped = _skipped(catalog)
    blocked = blocked_reason(volume)
    failed = getattr(volume, "failed_slices", None) or []
    decode = next((w for w in warnings if w.code == "decode_failed"), None)
    others = [w for w in warnings if w.code not in ("decode_failed",) + QUIET_CODES]
    if failed or decode is not None:
        headline = decode.message if decode is not None else (
            f"{len(failed)} of {volume.shape[0]} slices could not be decoded and are left blank.")
        if failed and image_number is not None:
            numbers = sorted(image_number(k) for k in failed)
            named = ", ".join(str(n) for n in numbers[:5]) + (", …" if len(numbers) > 5 else "")
            headline = (f"Image {named} of {volume.shape[0]} could not be decoded and is left blank."
                        if len(numbers) == 1 else f"{len(numbers)} of {volume.shape[0]} images could not be "
                        f"decoded and are left blank (images {named}).")
        return LoadReport(ERROR, headline + " AI models are off for this series.", warnings, skipped, blocked)
    if not volume.complete:
        headline = f"Partly loaded: {volume.slices_loaded} of {volume.shape[0]} slices. AI models are off."
        return LoadReport(WARNING, headline, warnings, skipped, blocked)
    if others:
        headline = others[0].message
        if len(others) > 1:
            headline += f" (+{len(others) - 1} more)"
        return LoadReport(WARNING, headline, warnings, skipped, blocked)
    if skipped:
        n = len(skipped)
        return LoadReport(INFO, f"{n} file{'s' if n != 1 else ''} skipped (not DICOM or unreadable).", warnings,
                          skipped, blocked)
    return None


#: How a series without PixelSpacing is measured, in the status bar's words.
CALIBRATION_WORDS = {"ultrasound_regions": "mm per ultrasound region", "imager_pixel_spacing": "mm at the detector",
                     "none": "no pixel spacing: measured in px"}


def loaded_message(series, volume, seconds: float | None) -> str:
    """The status line after a load: modality, grid, spacing (or how the image is calibrated), time, warnings."""
    z, y, x = volume.shape
    dz, dy, dx = volume.spacing
    calibration = getattr(volume, "calibration", None)
    if calibration is None or calibration.source == "pixel_spacing":
        text = f"{series.modality} {x}x{y}x{z}, {dx:.2f}x{dy:.2f}x{dz:.2f} mm"
    else:  # the grid is nominal (1 mm a pixel): say how the image is calibrated instead
        text = f"{series.modality} {x}x{y}x{z}, {CALIBRATION_WORDS.get(calibration.source, calibration.source)}"
    if seconds is not None:
        text += f", loaded in {seconds:.2f} s"
    if volume.warnings:  # the whole text is in the banner over the views (a long one was cut off there)
        n = len(volume.warnings)
        text += f"   ⚠ {n} warning{'s' if n != 1 else ''} (see above the image)"
    return text
