"""Screenshots of what a new user meets first, at 1024x700 and 1920x1080: chest CT in 1x3, the decubitus MR, a
calibrated colour ultrasound with a length, a series with a truncated file, and the demo after its models finish.

Run from the repository root (offscreen or on a display)::

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_first_contact_screenshots.py [OUT_DIR]

Without OUT_DIR the pictures go to bench/out/screenshots/; the ones the guides show are copied to docs/ by hand.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))
SIZES = {"1024x700": (1024, 700), "1920x1080": (1920, 1080)}


def ultrasound(folder: Path) -> Path:
    """pydicom's real colour ultrasound (US1_UNCR) as a 3-frame cine with two calibrated regions."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    def region(x0, x1, delta_cm):
        item = Dataset()
        item.RegionSpatialFormat, item.RegionDataType, item.RegionFlags = 1, 1, 0
        item.RegionLocationMinX0, item.RegionLocationMinY0 = x0, 0
        item.RegionLocationMaxX1, item.RegionLocationMaxY1 = x1, 479
        item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = 3  # cm
        item.PhysicalDeltaX = item.PhysicalDeltaY = delta_cm
        return item

    ds = pydicom.dcmread(get_testdata_file("US1_UNCR.dcm"))
    ds.NumberOfFrames = 3
    ds.PixelData = ds.PixelData * 3
    ds.FrameTime = "33.3"
    ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    ds.SequenceOfUltrasoundRegions = Sequence([region(0, 319, 0.051), region(320, 639, 0.1)])
    folder.mkdir(parents=True)
    ds.save_as(folder / "us.dcm")
    return folder


def truncated_ct(folder: Path) -> Path:
    """LIDC-IDRI-0001 with one file cut inside its pixel data."""
    folder.mkdir(parents=True)
    files = sorted((DATA / "lidc-idri-0001").rglob("*.dcm"))
    for f in files:
        shutil.copyfile(f, folder / f.name)
    victim = folder / files[40].name
    with open(victim, "r+b") as fh:
        fh.truncate(victim.stat().st_size - 200_000)
    return folder


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
    out.mkdir(parents=True, exist_ok=True)

    def wait(condition, seconds=300.0):
        end = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > end:
                raise TimeoutError("timed out")
            app.processEvents()
            time.sleep(0.01)

    def window_at(size):
        # fresh settings each time: a window restores the dock widths the previous (smaller) one saved
        ini = tempfile.mkstemp(suffix=".ini", dir=home)[1]
        window = MainWindow(Settings(QSettings(ini, QSettings.Format.IniFormat)))
        window.resize(*size)
        window.show()
        app.processEvents()
        return window

    def open_and_shoot(name, paths, layout="1x1", before=None):
        for label, size in SIZES.items():
            window = window_at(size)
            window.open_paths([str(p) for p in paths], remember=False)
            wait(lambda window=window: not window.busy and window.viewer.volume is not None, 60)
            window.viewer.set_layout(layout)
            if before is not None:
                before(window)
            for _ in range(20):
                app.processEvents()
                time.sleep(0.01)
            window.grab().save(str(out / f"{name}-{label}.png"))
            print(f"{name}-{label}: {window.statusBar().currentMessage()!r}")
            window.close()
            window.deleteLater()
            app.processEvents()

    def measure_us(window):
        view = window.viewer.views[Plane.AXIAL]
        # a 50 mm horizontal line inside the 0.051 cm/px region: 98 px
        anchor = QPointF(100.0, 240.0)
        view._drag = {"anchor": anchor}
        view._start_drawing("length", anchor)
        view._continue_drawing(QPointF(198.0, 240.0), finish=True)
        view._drag = None
        print("US length:", [m.summary(window.viewer.value_unit()) for m in window.viewer.measurements])

    open_and_shoot("ct-1x3", [DATA / "lidc-idri-0001"], "1x3")
    open_and_shoot("mr", [DATA / "mr-decubitus-hfdr"])
    open_and_shoot("us", [ultrasound(home / "us")], before=measure_us)
    open_and_shoot("failed-load", [truncated_ct(home / "truncated")])

    for label, size in SIZES.items():  # the demo, as `make run`: the sample study and both built-in models
        window = window_at(size)
        lane = window.inference
        applied = []
        lane.result_applied.connect(applied.append)
        window.open_demo()
        wait(lambda applied=applied, lane=lane: len(applied) >= 2 and not lane.busy, 600)
        for _ in range(20):
            app.processEvents()
            time.sleep(0.01)
        window.grab().save(str(out / f"demo-{label}.png"))
        print(f"demo-{label}: {window.statusBar().currentMessage()!r}")
        window.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "bench" / "out" / "screenshots")
