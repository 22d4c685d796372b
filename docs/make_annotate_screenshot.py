"""Make docs/annotate-screenshot.png: the Segments panel, two painted segments in 1x3 and the round brush cursor on
LIDC-IDRI-0001 (needs ../shared/data).

Run from the repository root, on a display or under Xvfb::

    xvfb-run -a .venv/bin/python docs/make_annotate_screenshot.py [OUT.png]

The strokes are painted through the same calls a mouse drag makes (the controller's begin / paint_to / end), on
the axial view: a ring in the right lung and a small blob named "nodule" at the crosshair on three slices. Both are
sketches to show the tools, not a reading.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LIDC = Path(os.environ.get("HOUNSFIELD_SHARED", REPO.parent / "shared")) / "data" / "lidc-idri-0001"


def main(out: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="hounsfield-shot-"))
    os.environ["HOUNSFIELD_HOME"] = str(home / "home")
    from PySide6.QtCore import QPointF, QSettings
    from PySide6.QtWidgets import QApplication

    from viewer.core.reformat import Plane
    from viewer.qt.app import configure_runtime
    from viewer.qt.main_window import MainWindow
    from viewer.qt.settings import Settings
    from viewer.qt.theme import apply_dark_theme

    configure_runtime()
    app = QApplication.instance() or QApplication(["hounsfield"])
    apply_dark_theme(app)
    window = MainWindow(Settings(QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)))
    window.ask_unsaved = lambda action: "discard"
    window.resize(1600, 900)
    window.show()
    loaded = []
    window.series_loaded.connect(loaded.append)
    window.open_paths([str(LIDC)])
    deadline = time.time() + 120
    while not loaded and time.time() < deadline:
        app.processEvents()
        time.sleep(0.01)
    viewer, an = window.viewer, window.annotation
    viewer.set_layout("1x3")
    viewer.apply_preset("lung")
    window.segments_dock.raise_()
    k = 88
    viewer.state.set_position((330.0, 350.0, float(k)))
    viewer.set_tool("brush")
    axial = viewer.views[Plane.AXIAL]

    def paint(points, radius):
        viewer.set_brush_radius(radius)
        an.begin(axial, np.array([k, points[0][1], points[0][0]], float), erase=False)
        for x, y in points[1:]:
            an.paint_to(axial, np.array([k, y, x], float))
        an.end(axial)

    an.add_segment("right lung (sketch)")
    an.editor.recolor_segment(an.editor.segmentation.active, (60, 180, 255))
    t = np.linspace(0, 2 * np.pi, 40)
    paint([(150 + 60 * np.cos(a), 260 + 90 * np.sin(a)) for a in t], 6.0)
    an.add_segment("nodule")
    viewer.set_brush_radius(5.0)
    for dz in (-1, 0, 1):
        viewer.state.set_slice("axial", k + dz)
        an.begin(axial, np.array([k + dz, 350.0, 330.0]), erase=False)
        an.end(axial)
    viewer.state.set_position((330.0, 350.0, float(k)))
    _, sx, sy = axial.geometry_.scene_from_index((380.0, 300.0, float(k)))
    axial.update_brush_cursor(QPointF(sx, sy))
    for _ in range(30):
        app.processEvents()
        time.sleep(0.01)
    window.grab().save(str(out), "PNG")
    print(f"wrote {out}: {an.undo_action.text()}")
    window.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "annotate-screenshot.png")
