"""Make docs/ai-screenshot.png: the sample study as `make run` opens it - the built-in nodule detector's findings,
the built-in segmentation under them and the occlusion map of the top finding.

Run from the repository root, on a display or under Xvfb::

    xvfb-run -a .venv/bin/python docs/make_ai_screenshot.py [OUT.png]
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(out: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="hounsfield-shot-"))
    os.environ["HOUNSFIELD_HOME"] = str(home / "home")
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtWidgets import QApplication

    from viewer.qt.app import configure_runtime
    from viewer.qt.main_window import MainWindow
    from viewer.qt.settings import Settings
    from viewer.qt.theme import apply_dark_theme

    configure_runtime()
    app = QApplication.instance() or QApplication(["hounsfield"])
    apply_dark_theme(app)
    window = MainWindow(Settings(QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)))
    window.resize(1680, 980)
    window.show()

    def wait(condition, seconds=300.0):
        end = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > end:
                raise TimeoutError("timed out")
            app.processEvents()
            time.sleep(0.01)

    lane = window.inference
    applied = []
    lane.result_applied.connect(applied.append)
    window.open_demo()  # as `make run`: the sample study, then both built-in models
    wait(lambda: len(applied) >= 2 and not lane.busy)
    top = window.findings_panel.shown()[0].index
    window.findings_panel.select(top)
    window.findings_panel.explain_button.click()
    wait(lambda: len(applied) >= 3 and not lane.busy)
    status = window.statusBar().currentMessage()
    viewer = window.viewer
    viewer.set_layout("1x3")
    viewer.state.apply_preset("lung")
    app.processEvents()
    window.resizeDocks([window.series_dock, window.ai_dock], [250, 400], Qt.Orientation.Horizontal)
    app.processEvents()
    for view in viewer.views.values():
        view.fit()
        view.zoom_by(1.3)
    lane.go_to_finding(top)
    window.findings_dock.raise_()
    window.statusBar().showMessage(status)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    for view in viewer.views.values():
        view.draw_still()
    app.processEvents()
    pixmap = window.grab()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not pixmap.save(str(out), "PNG"):
        raise SystemExit(f"could not write {out}")
    print(f"wrote {out} ({pixmap.width()}x{pixmap.height()})")
    window.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "ai-screenshot.png")
