"""Fixtures for driving the real widgets offscreen: a themed app, a main window with throw-away settings."""
from __future__ import annotations

import gc
import time

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent, QPoint, QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent, QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

LOAD_TIMEOUT_MS = 60_000


@pytest.fixture(autouse=True)
def _collect_garbage_in_the_gui_thread():
    """Python's cyclic collector frees Qt objects in whichever thread triggers it. In a worker thread that destroys a
    QObject there, and can deadlock: seen in CI as a pool thread in ``~QObject`` waiting for the GIL while the GUI
    thread, holding the GIL, waited in another ``~QObject`` for Qt's signal-slot mutex. As the app does
    (:func:`viewer.qt.app.garbage_collected_in_the_gui_thread`), automatic collection is off while a test runs and the
    garbage is collected here, in the GUI thread."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()
    gc.collect()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Settings, caches and the sample study go to a temporary folder."""
    monkeypatch.setenv("HOUNSFIELD_HOME", str(tmp_path / "home"))


@pytest.fixture(autouse=True)
def _fail_on_swallowed_errors(monkeypatch):
    """pyqtgraph prints exceptions raised in mouse handlers instead of raising them: make them fail the test."""
    from pyqtgraph import debug

    swallowed = []
    original = debug.printExc

    def record(msg="", indent=4, prefix="|"):
        import traceback

        swallowed.append(f"{msg}\n{traceback.format_exc()}")
        original(msg, indent, prefix)

    monkeypatch.setattr(debug, "printExc", record)
    yield
    assert not swallowed, "exception inside a pyqtgraph event handler:\n" + "\n".join(swallowed)


@pytest.fixture
def themed_app(qapp):
    from viewer.qt.theme import apply_dark_theme

    apply_dark_theme(qapp)
    return qapp


@pytest.fixture
def settings(tmp_path):
    from viewer.qt.settings import Settings

    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    # No hanging protocols: a series opens as it did before them (1x1, its DICOM window), which the GUI tests
    # expect; tests of the hanging protocols set ``settings.set_hanging_protocols(None)`` (the defaults) first.
    settings.set_hanging_protocols("[]")
    return settings


@pytest.fixture
def main_window(themed_app, qtbot, settings):
    from viewer.qt.main_window import MainWindow

    window = MainWindow(settings)
    window.resize(1400, 900)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    yield window
    window.cancel_jobs()
    from viewer.qt.workers import job_pool

    job_pool().waitForDone(5000)


def open_and_wait(qtbot, window, paths, timeout=LOAD_TIMEOUT_MS):
    """Open ``paths`` and wait until the chosen series has finished loading."""
    with qtbot.waitSignal(window.series_loaded, timeout=timeout):
        window.open_paths([str(p) for p in paths])
    qtbot.wait(20)
    return window


@pytest.fixture
def lidc_window(main_window, qtbot, lidc_dir):
    """The main window with LIDC-IDRI-0001 loaded (1x1 axial)."""
    open_and_wait(qtbot, main_window, [lidc_dir])
    main_window.viewer.set_layout("1x1")
    qtbot.wait(20)
    return main_window


def send_mouse(widget, kind, pos, button=Qt.MouseButton.LeftButton, buttons=None,
               modifiers=Qt.KeyboardModifier.NoModifier):
    """Send one mouse event to ``widget`` (a view's viewport) at widget pixel ``pos``."""
    types = {"press": QEvent.Type.MouseButtonPress, "move": QEvent.Type.MouseMove,
             "release": QEvent.Type.MouseButtonRelease}
    if buttons is None:
        buttons = Qt.MouseButton.NoButton if kind == "release" else button
    local = QPointF(pos)
    event = QMouseEvent(types[kind], local, QPointF(widget.mapToGlobal(local.toPoint())),
                        Qt.MouseButton.NoButton if kind == "move" else button, buttons, modifiers)
    QApplication.sendEvent(widget, event)


def drag(widget, start, end, button=Qt.MouseButton.LeftButton, steps=8, modifiers=Qt.KeyboardModifier.NoModifier):
    """Press at ``start``, move in ``steps`` to ``end``, release (like a hand would).

    Moves are spaced 12 ms apart: pyqtgraph drops mouse moves closer than 10 ms (``mouseRateLimit``).
    """
    start, end = QPointF(start), QPointF(end)
    send_mouse(widget, "press", start, button, modifiers=modifiers)
    for i in range(1, steps + 1):
        time.sleep(0.012)
        p = start + (end - start) * (i / steps)
        send_mouse(widget, "move", p, button, buttons=button, modifiers=modifiers)
        QApplication.processEvents()
    send_mouse(widget, "release", end, button, modifiers=modifiers)
    QApplication.processEvents()


def click(widget, pos, button=Qt.MouseButton.LeftButton):
    """A single click (with a pause afterwards so the next one is not a double click)."""
    send_mouse(widget, "press", pos, button)
    send_mouse(widget, "release", pos, button)
    QApplication.processEvents()
    time.sleep(0.01)


def wheel(widget, pos, notches: int, modifiers=Qt.KeyboardModifier.NoModifier):
    """Turn the wheel ``notches`` notches (negative = towards the user = next slice)."""
    local = QPointF(pos)
    event = QWheelEvent(local, QPointF(widget.mapToGlobal(local.toPoint())), QPoint(0, 0), QPoint(0, 120 * notches),
                        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)
    QApplication.processEvents()


def widget_pos_of_voxel(view, xyz):
    """Widget pixel (rounded, as a mouse would be) of a voxel index in ``view``'s plane."""
    _, sx, sy = view.geometry_.scene_from_index(xyz)
    p = view.view_pos_of_scene(sx, sy)
    return QPointF(round(p.x()), round(p.y()))


def two_detections(volume):
    """Two nodule detections at known voxel boxes on ``volume`` (scores 0.9 and 0.8)."""
    import numpy as np

    from inference.types import Detections, Label

    boxes_voxel = np.array([[60, 200, 200, 70, 220, 220], [30, 300, 300, 36, 310, 310]])
    corners = [volume.index_to_lps(np.stack([b[[2, 1, 0]], b[[5, 4, 3]] - 1]).astype(float)) for b in boxes_voxel]
    boxes_lps = np.array([np.r_[c.min(axis=0), c.max(axis=0)] for c in corners])
    return Detections(boxes_lps, boxes_voxel, np.array([0.9, 0.8]), np.array([1, 1]), volume.affine,
                      tuple(volume.shape), {1: Label(1, "nodule")}, "test-detector")
