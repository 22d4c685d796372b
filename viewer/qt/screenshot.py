"""Headless rendering of a series through the same viewer widgets: ``hounsfield screenshot``."""
from __future__ import annotations

import os
from pathlib import Path

from viewer.core.jobs import run_job

VIEW_SIZE = 768  # pixels per view (square)


def _quiet_offscreen_messages() -> None:
    """The offscreen platform warns "does not support propagateSizeHints()" for every window: drop only that."""
    import sys

    from PySide6.QtCore import qInstallMessageHandler

    def handler(mode, context, message):
        if "propagateSizeHints" not in message:
            print(message, file=sys.stderr)

    qInstallMessageHandler(handler)


def _application():
    """The running QApplication, or a new offscreen one (no display needed)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        if os.environ["QT_QPA_PLATFORM"] == "offscreen":
            _quiet_offscreen_messages()
        app = QApplication(["hounsfield-screenshot"])
    from viewer.qt.theme import apply_dark_theme

    apply_dark_theme(app)
    return app


def _choose_series(catalog, series: str | None):
    from viewer.core.dicom.catalog import default_image_series

    if series:
        found = catalog.find_series(series)
        if found is None:
            raise ValueError(f"no series {series!r} in {len(catalog.all_series())} series found")
        if found.kind != "image":
            raise ValueError(f"series {series!r} is a {found.kind.upper()} object, not an image")
        return found
    chosen = default_image_series(catalog)
    if chosen is None:
        skipped = catalog.unreadable
        detail = f" ({len(skipped)} file(s) skipped; first: {skipped[0].path}: {skipped[0].reason})" if skipped else ""
        raise ValueError(f"no DICOM image series found{detail}")
    return chosen


def _slab_arguments(slab_mm: float | None, projection: str | None) -> tuple[str, float] | None:
    """``(projection, thickness_mm)`` for the display state, or None for single slices; checks both."""
    from viewer.core.slab import DEFAULT_SLAB_MM, SLAB_MM_RANGE, Projection

    if slab_mm is None and projection is None:
        return None
    choices = [p.value for p in Projection if p != Projection.NONE]
    if projection is not None and str(projection).lower() not in choices:
        raise ValueError(f"unknown slab projection {projection!r}: use {', '.join(choices)}")
    thickness = DEFAULT_SLAB_MM if slab_mm is None else float(slab_mm)
    lo, hi = SLAB_MM_RANGE
    if not lo <= thickness <= hi:  # (NaN fails this too)
        raise ValueError(f"slab thickness {thickness:g} mm is outside {lo:g}..{hi:g} mm")
    return (str(projection).lower() if projection else Projection.MIP.value), thickness


def render_screenshot(path: str, out: str, series: str | None = None, image_number: int | None = None,
                      window: str | None = None, layout: str = "1x1", slab_mm: float | None = None,
                      projection: str | None = None) -> None:
    """Render ``path`` (folder, files or DICOMDIR) to the PNG ``out`` through the viewer widgets, offscreen.

    Parameters
    ----------
    series
        SeriesInstanceUID (or catalog key) to show; default: the largest image series.
    image_number
        1-based image number of the acquisition plane as the viewer counts it ("Im N/..."): display order, so
        image 1 of an axial series is its most superior slice (head first, as PACS count); default: the middle
        image. In 1x3 the other two planes cut through the middle of the volume.
    window
        A preset name (``lung``, ``mediastinum``, ``bone``, ``brain``, ``abdomen``, ``liver``) or ``"W,L"``
        (width, level: ``"1500,-600"``); default: the DICOM VOI window, or automatic.
    layout
        ``"1x1"`` (the acquisition plane) or ``"1x3"`` (axial, coronal, sagittal).
    slab_mm, projection
        A thick slab of ``slab_mm`` mm centred on the slice, along each plane's own normal, combined by
        ``projection`` (``"mip"``, ``"minip"`` or ``"avg"``); either alone turns the slab on (MIP, 10 mm by
        default). The corner text says so ("MIP 10 mm (4 im)"). Default: single slices.

    Raises ``ValueError`` for a bad series, slice, window, layout, slab or projection, or when there is no image;
    ``RuntimeError`` when the series cannot be decoded at all (the reason, e.g. a declared size refused, is in
    the message).
    """
    from viewer.core.dicom.load import iter_load
    from viewer.core.dicom.scan import iter_scan
    from viewer.core.session import series_info
    from viewer.core.windowing import parse_window

    if layout not in ("1x1", "1x3", "2x2"):
        raise ValueError(f"unknown layout {layout!r}: use 1x1, 1x3 or 2x2")
    parsed_window = parse_window(window) if window else None
    slab = _slab_arguments(slab_mm, projection)
    catalog = run_job(iter_scan([path]))
    chosen = _choose_series(catalog, series)
    try:
        volume = run_job(iter_load(chosen))
    except Exception as error:  # noqa: BLE001 - untrusted files: any decoder failure is a refusal
        raise RuntimeError(f"cannot load series {chosen.key}: {error}") from error
    n = volume.shape[0]
    if image_number is not None and not 1 <= image_number <= n:
        raise ValueError(f"slice (image number) {image_number} is outside 1..{n}")

    app = _application()
    from PySide6.QtCore import Qt

    from viewer.qt.viewer_widget import ViewerWidget

    info = {}
    for patient in catalog.patients:
        for study in patient.studies:
            if chosen in study.series:
                info = series_info(patient, study, chosen)
    viewer = ViewerWidget()
    viewer.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    viewer.show_active_frame = False
    viewer.set_layout(layout)
    viewer.set_volume(volume, info)
    z, y, x = volume.shape
    viewer.state.set_position(((x - 1) / 2, (y - 1) / 2, (n - 1) // 2))
    if image_number is not None:
        viewer.state.go_to_number(viewer.state.native_plane, image_number)
    if parsed_window is not None:
        name = window.strip().lower() if not any(c.isdigit() for c in window) else "custom"
        viewer.state.set_window(parsed_window, name)
    if slab is not None:
        viewer.state.set_slab(*slab)
    columns, rows = {"1x1": (1, 1), "1x3": (3, 1), "2x2": (2, 2)}[layout]
    viewer.resize(VIEW_SIZE * columns + 2 * (columns - 1), VIEW_SIZE * rows + 2 * (rows - 1))
    viewer.show()
    app.processEvents()
    viewer.fit()
    app.processEvents()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    image = viewer.grab_views()
    viewer.close()
    viewer.deleteLater()
    app.processEvents()
    if not image.save(str(out), "PNG"):
        raise OSError(f"could not write {out}")
