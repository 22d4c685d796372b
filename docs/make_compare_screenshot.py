"""Make docs/compare-screenshot.png: the follow-up sample (a phantom patient and the same patient a year later,
moved on the table, nodules grown, one new, one gone) compared side by side - registered, the built-in nodule
detector's findings on both, the Follow-up dock with growth and doubling times, the growing nodule in view.

Run from the repository root, on a display or under Xvfb (or with QT_QPA_PLATFORM=offscreen)::

    xvfb-run -a .venv/bin/python docs/make_compare_screenshot.py [OUT.png]
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MODEL = "hounsfield-chest-ct-nodule-detection"


def main(out: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="hounsfield-shot-"))
    os.environ["HOUNSFIELD_HOME"] = str(home / "home")
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtWidgets import QApplication

    from inference.jobs import run_job
    from inference.task import run_model
    from viewer.core.sample import write_followup_study
    from viewer.qt.app import configure_runtime
    from viewer.qt.main_window import MainWindow
    from viewer.qt.settings import Settings
    from viewer.qt.theme import apply_dark_theme

    configure_runtime()
    app = QApplication.instance() or QApplication(["hounsfield"])
    apply_dark_theme(app)
    settings = Settings(QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat))
    settings.set_hanging_protocols([])  # open as acquired: 1x1
    window = MainWindow(settings)
    window.resize(1920, 1000)
    window.show()

    def wait(condition, seconds=300.0):
        end = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > end:
                raise TimeoutError("timed out")
            app.processEvents()
            time.sleep(0.01)

    prior_dir, current_dir = write_followup_study(home / "followup-sample", seed=0, days=365)
    window.open_paths([str(prior_dir), str(current_dir)])
    wait(lambda: window.session.current is not None and window.session.current.volume is not None
         and window.session.current.volume.complete)
    keys = {study.date: study.series[0].key for p in window.session.catalog.patients for study in p.studies}
    if window.session.current.key != keys["20241231"]:
        window.open_series(keys["20241231"])
        wait(lambda: window.session.current.key == keys["20241231"] and window.session.current.volume.complete)
    compare = window.compare
    compare.auto_register = False
    compare.compare_with(keys["20240101"])
    wait(lambda: compare.active)
    for key in keys.values():
        state = window.session.state(key)
        state.set_result(run_job(run_model(MODEL, state.volume.array, state.volume.affine)).result,
                         "Nodule detection (built-in)")
    window.findings_panel.set_min_score(next(m for m in window.ai_panel.models if m.id == MODEL).operating_point)
    compare.register()
    wait(lambda: compare.registration is not None)
    viewer = window.viewer
    viewer.set_layout("1x1")
    viewer.state.apply_preset("lung")
    window.resizeDocks([window.series_dock, compare.followup_dock], [220, 540], Qt.Orientation.Horizontal)
    compare.followup_dock.raise_()
    rows = compare.followup.nodules
    growing = max(range(len(rows)), key=lambda i: rows[i].get("growth_pct") or -1e9)
    compare.followup.widget.table.setCurrentItem(compare.followup.widget.table.topLevelItem(growing))
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
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "compare-screenshot.png")
