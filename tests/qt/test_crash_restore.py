"""Never lose work, proven with the real app: a child process starts the viewer exactly as ``hounsfield`` does
(:func:`viewer.qt.app.run_gui`) on LIDC-IDRI-0001, paints two brush strokes with mouse events on the view, waits
until the autosave timer has written them, and is then killed with SIGKILL - no close event, no "unsaved changes"
prompt, no clean shutdown. A fresh window in the test process, on the same user data dir (``HOUNSFIELD_HOME``),
opens the study again, is offered the autosave, restores it, and holds exactly the voxels the child painted.
The ``start-up`` variant starts the fresh window without paths: the start-up offer (the autosave records the
study's paths) reopens the study and restores it without a second question."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from tests.qt.conftest import LOAD_TIMEOUT_MS, open_and_wait

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MARKER = "HOUNSFIELD-CRASH-TEST: autosaved"
CHILD_TIMEOUT_S = 90.0

#: The child: the real entry point (``run_gui``) with a timer that drives the window like a user once the series
#: has loaded. The only test-only change is the autosave's age limit (30 s -> 0.5 s), so the real 2 s autosave
#: timer writes the strokes within a tick instead of after half a minute.
DRIVER = textwrap.dedent('''
    import json, os, sys, time, traceback

    import numpy as np
    from PySide6.QtCore import QEvent, QPointF, Qt, QTimer
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from viewer.qt.app import create_application, run_gui
    from viewer.qt.main_window import MainWindow

    STUDY, EXPECTED, SLICE, MARKER = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


    def fail(message):
        print("DRIVER FAILED: " + message, flush=True)
        os._exit(3)


    def send_mouse(widget, kind, pos, buttons):
        types = {"press": QEvent.Type.MouseButtonPress, "move": QEvent.Type.MouseMove,
                 "release": QEvent.Type.MouseButtonRelease}
        button = Qt.MouseButton.NoButton if kind == "move" else Qt.MouseButton.LeftButton
        event = QMouseEvent(types[kind], QPointF(pos), QPointF(widget.mapToGlobal(QPointF(pos).toPoint())),
                            button, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget, event)


    def drag(widget, start, end, steps=10):
        left = Qt.MouseButton.LeftButton
        send_mouse(widget, "press", start, left)
        for i in range(1, steps + 1):
            time.sleep(0.012)  # pyqtgraph drops moves closer than 10 ms
            send_mouse(widget, "move", start + (end - start) * (i / steps), left)
            QApplication.processEvents()
        send_mouse(widget, "release", end, Qt.MouseButton.NoButton)
        QApplication.processEvents()


    def widget_pos(view, xyz):
        _, sx, sy = view.geometry_.scene_from_index(xyz)
        p = view.view_pos_of_scene(sx, sy)
        return QPointF(round(p.x()), round(p.y()))


    def window_of_app():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        if len(windows) != 1:
            fail(f"expected one main window, found {len(windows)}")
        return windows[0]


    def paint(window):
        try:
            viewer, an = window.viewer, window.annotation
            view = viewer.active_view
            viewer.state.set_slice("axial", SLICE)
            view.setFocus()
            QTest.keyClick(view, Qt.Key.Key_D)  # the Brush tool, as a user chooses it
            QApplication.processEvents()
            an.editor.autosave.every_seconds = 0.5
            for start, end in (((200.0, 250.0), (300.0, 250.0)), ((220.0, 300.0), (260.0, 340.0))):
                drag(view.viewport(), widget_pos(view, (*start, SLICE)), widget_pos(view, (*end, SLICE)))
            editor = an.editor
            segmentation = editor.segmentation
            if len(segmentation) != 1 or not segmentation.mask(segmentation.active).any():
                fail("the strokes painted nothing")
            mask = segmentation.mask(segmentation.active)
            undo_name = editor.history.undo_name
            deadline = time.monotonic() + 30.0

            def wait_for_autosave():
                # the real timer (AnnotationController.autosave_timer) saves; nothing here calls save()
                if editor.autosave.path.is_file() and editor.autosave.pending == 0:
                    with open(EXPECTED, "w", encoding="utf-8") as f:
                        json.dump({"shape": list(mask.shape), "voxels": np.flatnonzero(mask).tolist(),
                                   "series_uid": viewer.volume.series_uid, "undo": undo_name,
                                   "autosave": str(editor.autosave.path), "pid": os.getpid()}, f)
                    print(MARKER, flush=True)  # the parent kills us now; keep the session going meanwhile
                    return
                if time.monotonic() > deadline:
                    fail("no autosave within 30 s")
                QTimer.singleShot(100, wait_for_autosave)

            wait_for_autosave()
        except Exception:
            fail(traceback.format_exc())


    def start():
        window = window_of_app()
        started = []

        def loaded(_key):
            if not started:  # the first loaded series is the one shown
                started.append(True)
                QTimer.singleShot(50, lambda: paint(window))

        window.series_loaded.connect(loaded)


    app = create_application()
    QTimer.singleShot(0, start)  # runs before run_gui's own open_paths timer
    run_gui([STUDY])
''')


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)


@pytest.mark.parametrize("start", ["same-study", "start-up"])
def test_killed_app_restores_its_autosaved_strokes(start, tmp_path, lidc_dir, main_window, qtbot, monkeypatch):
    from viewer.qt.main_window import MainWindow

    monkeypatch.setattr(MainWindow, "ask_unsaved", lambda self, action: "discard")
    home = os.environ["HOUNSFIELD_HOME"]  # tests/qt/conftest.py: tmp_path / "home", shared with the child
    driver, expected_path = tmp_path / "crash_driver.py", tmp_path / "expected.json"
    driver.write_text(DRIVER, encoding="utf-8")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOUNSFIELD_HOME=home,
               PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
    child = subprocess.Popen([sys.executable, str(driver), str(lidc_dir), str(expected_path), "66", MARKER],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(child.stdout, lines), daemon=True).start()
    output = []
    try:
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail("the child app never autosaved:\n" + "".join(output))
            if line is None:
                pytest.fail(f"the child app ended early (rc {child.wait()}):\n" + "".join(output))
            output.append(line)
            if line.strip() == MARKER:
                break
        # mid-session: the app is running its event loop with unsaved-to-export work; no chance to clean up
        assert child.poll() is None, "the child must still be running when it is killed"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)

    expected = json.loads(expected_path.read_text(encoding="utf-8"))
    painted = np.zeros(int(np.prod(expected["shape"])), dtype=bool)
    painted[expected["voxels"]] = True
    painted = painted.reshape(expected["shape"])
    assert painted.sum() > 500, "two brush strokes paint more than a few voxels"
    assert os.path.isfile(expected["autosave"])
    assert expected["autosave"].startswith(home), "the autosave must go to the user data dir (HOUNSFIELD_HOME)"

    an = main_window.annotation
    asked = []
    if start == "same-study":
        # the restarted app: same user data dir, same study; the restore prompt is answered yes
        monkeypatch.setattr(an, "ask_restore", lambda info: asked.append(info) or True)
        open_and_wait(qtbot, main_window, [lidc_dir])
    else:
        # the restarted app, started without paths: the start-up offer (answered yes) reopens the study and
        # restores it; the per-series prompt must not ask a second time
        monkeypatch.setattr(an, "ask_restore", lambda info: pytest.fail("asked a second time"))
        monkeypatch.setattr(main_window, "ask_startup_restore", lambda info: asked.append(info) or True)
        assert main_window.paths == []
        with qtbot.waitSignal(main_window.series_loaded, timeout=LOAD_TIMEOUT_MS):
            assert main_window.offer_startup_restore()
        qtbot.wait(20)
        assert main_window.paths == [str(lidc_dir)]
    assert len(asked) == 1, "the restarted app must offer the autosave once"
    info = asked[0]
    assert info.source_paths == (str(lidc_dir),), "the autosave records the paths the study was opened from"
    assert info.series_uid == expected["series_uid"] == main_window.viewer.volume.series_uid
    assert info.n_segments == 1 and info.edits >= 3  # add segment + two strokes
    segmentation = an.editor.segmentation
    assert len(segmentation) == 1
    restored = segmentation.mask(segmentation.active)
    assert restored.shape == painted.shape
    assert np.array_equal(restored, painted), "the restored mask differs from the voxels the killed app painted"
    assert segmentation[segmentation.active].origin == "MANUAL"
    assert an.modified, "restored work still counts as unsaved"
    assert an.layers[main_window.current_series.key] in main_window.viewer.layers
