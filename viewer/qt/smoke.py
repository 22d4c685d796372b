"""``hounsfield --smoke-test [PATH ...]``: prove the GUI works, then exit - 0 when it did, 1 (with the reason on
stderr) when anything failed or it took longer than ``--smoke-timeout``. Never a sleep-and-kill.

Without paths it opens the built-in sample study, lets the built-in models run on it (as ``--demo`` does), and
checks that the detector found something and the segmentation labelled the lungs; with paths it opens them and
checks the first image. Either way it then renders the window and checks the image is not blank.

One line ``SMOKE-TEST {json}`` on stdout reports the outcome and the times (seconds since the process started):
``first_window_s`` (the main window shown and painted), ``first_image_s`` (the first slice on screen), ``done_s``.
``packaging/dist_check.py`` runs it on the frozen app and on the venv, cold and warm.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication

MARKER = "SMOKE-TEST"
DEFAULT_TIMEOUT_S = 300.0
_POLL_MS = 5


def process_started_at() -> float:
    """The epoch time this process started (Linux: from /proc; elsewhere: when this module was first imported)."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks after boot
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED_AT


_IMPORTED_AT = time.time()


def rendered_colours(image) -> int:
    """How many distinct colours a QImage holds (sampled on a grid): a blank or failed render has one or two."""
    step = max(1, min(image.width(), image.height()) // 64)
    return len({image.pixel(x, y) for y in range(0, image.height(), step) for x in range(0, image.width(), step)})


class SmokeTestRunner(QObject):
    """Drives ``window`` through the smoke test; :attr:`exit_code` is set when it ends (then the app quits)."""

    def __init__(self, window, paths: list[str], timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        super().__init__(window)
        self.window = window
        self.paths = list(paths)
        self.t0 = process_started_at()
        self.times: dict[str, float] = {}
        self.report: dict = {"mode": "paths" if paths else "sample"}
        self.exit_code: int | None = None
        self.applied: list[str] = []
        self._poll = QTimer(self)
        self._poll.setInterval(_POLL_MS)
        self._poll.timeout.connect(self._check)
        self._deadline = QTimer(self)
        self._deadline.setSingleShot(True)
        self._deadline.timeout.connect(lambda: self.fail(f"timed out after {timeout_s:g} s at: {self._stage()}"))
        self._deadline.start(int(timeout_s * 1000))
        window.job_failed.connect(lambda reason: self.fail(f"opening failed: {reason}"))
        window.inference.run_failed.connect(lambda reason: self.fail(f"a model failed: {reason}"))
        window.inference.result_applied.connect(self.applied.append)

    def _since_start(self) -> float:
        return round(time.time() - self.t0, 3)

    def _stage(self) -> str:
        for stage in ("first_window_s", "first_image_s", "models_s", "done_s"):
            if stage not in self.times:
                return stage[:-2].replace("_", " ")
        return "exit"

    def start(self) -> None:
        """Call after ``window.show()``: opens the paths (or the sample) on the next turn of the event loop."""
        sys.excepthook = self._excepthook
        QTimer.singleShot(0, self._shown)

    def _excepthook(self, exc_type, exc, tb) -> None:
        import logging

        logging.getLogger(__name__).critical("unhandled exception", exc_info=(exc_type, exc, tb))
        traceback.print_exception(exc_type, exc, tb)
        self.fail(f"unhandled exception: {exc_type.__name__}: {exc}")

    def _shown(self) -> None:
        QApplication.processEvents()  # the first paint of the window
        if not self.window.isVisible():
            self.fail("the main window is not visible")
            return
        self.times["first_window_s"] = self._since_start()
        if self.paths:
            self.window.open_paths(self.paths, remember=False)
        else:
            self.window.open_demo()
        self._poll.start()

    def _check(self) -> None:
        if self.exit_code is not None:
            return
        window = self.window
        if "first_image_s" not in self.times:
            if window.viewer.volume is None:
                if self.paths and not window.busy:  # the scan ended and nothing is shown: no readable image
                    message = window.statusBar().currentMessage() or "no image series"
                    self.fail(f"opening failed: {message}")
                return
            QApplication.processEvents()
            self.times["first_image_s"] = self._since_start()
        if not self.paths and "models_s" not in self.times:
            from viewer.core.sample import DEMO_MODELS

            lane = window.inference
            if len(self.applied) < len(DEMO_MODELS) or lane.busy or window.demo.models:
                return
            self.times["models_s"] = self._since_start()
        if window.busy:
            return
        self._poll.stop()
        self._finish()

    def _finish(self) -> None:
        window = self.window
        volume = window.viewer.volume
        self.report["shape"] = list(volume.shape)
        if not self.paths:
            shown = window.findings_panel.shown()
            seg = window.inference.layer("segmentation")
            labels = sorted(seg.label_name(v) for v in seg.present) if seg is not None else []
            self.report.update(models=self.applied, findings=len(shown), labels=labels)
            if not shown:
                return self.fail("the detector found nothing in the sample study")
            if not {"lung_left", "lung_right"} <= set(labels):
                return self.fail(f"the segmentation did not label both lungs: {labels}")
        image = window.grab().toImage()
        colours = rendered_colours(image)
        self.report.update(rendered=[image.width(), image.height()], colours=colours)
        if image.isNull() or colours < 16:
            return self.fail(f"the rendered window looks blank ({colours} colours)")
        self.times["done_s"] = self._since_start()
        self._end(0)

    def fail(self, reason: str) -> None:
        """End the test with exit code 1 and ``reason`` on stderr."""
        if self.exit_code is not None:
            return
        self.report["error"] = reason
        print(f"hounsfield --smoke-test: FAILED: {reason}", file=sys.stderr, flush=True)
        self._end(1)

    def _end(self, code: int) -> None:
        self.exit_code = code
        self._poll.stop()
        self._deadline.stop()
        self.report.update(self.times, ok=code == 0, frozen=bool(getattr(sys, "frozen", False)))
        print(f"{MARKER} {json.dumps(self.report)}", flush=True)
        self.window.cancel_jobs()
        QTimer.singleShot(0, lambda: QApplication.exit(code))
