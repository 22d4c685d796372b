"""``run_gui``: the application entry point the CLI calls."""
from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
from collections.abc import Iterator

from PySide6.QtCore import QTimer, qVersion
from PySide6.QtWidgets import QApplication

from viewer import __version__
from viewer.qt.theme import apply_dark_theme

log = logging.getLogger(__name__)


#: How long (s) a thread may hold the GIL before a waiting one gets it. Python's default 5 ms lets a worker's
#: Python-level loop (job generators, pydicom, model pre/post-processing) delay a GUI frame by 5 ms per hand-over;
#: 1 ms keeps slice changes within budget while a job runs, and the worker's throughput does not suffer
#: (bench_view measured it doing more work, not less).
GUI_SWITCH_INTERVAL = 0.001
#: How long a --smoke-test waits for cancelled jobs before it exits without them.
SMOKE_DRAIN_MS = 30_000


def configure_runtime() -> None:
    """Interpreter settings for an interactive GUI process (see :data:`GUI_SWITCH_INTERVAL`)."""
    sys.setswitchinterval(GUI_SWITCH_INTERVAL)


@contextlib.contextmanager
def garbage_collected_in_the_gui_thread() -> Iterator[None]:
    """While in the block, Python's automatic cyclic garbage collection is off and a timer in the GUI thread
    collects instead.

    The collector frees objects in whichever thread happens to trigger it. When that is a worker and the garbage
    holds Qt objects (a closed dialog's widgets, a finished job's signals), they are destroyed in the worker, which
    Qt does not allow and which can deadlock the GUI thread (it happened in the tests). pyqtgraph's
    ``GarbageCollector`` is the known cure: collection goes on, only in the GUI thread, once a second.
    """
    from pyqtgraph.util.garbage_collector import GarbageCollector

    collector = GarbageCollector(interval=1.0)
    try:
        yield
    finally:
        collector.timer.stop()
        gc.enable()


def create_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (reused when one exists), named and themed."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
    # "hounsfield" with no organisation: QStandardPaths then names the folders viewer.core.paths uses (a test checks)
    app.setApplicationName("hounsfield")
    app.setOrganizationName("")
    app.setApplicationDisplayName("Hounsfield")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("hounsfield")  # the .desktop entry packaging/linux/install.sh installs: icon, taskbar
    apply_dark_theme(app)
    return app


def run_gui(paths: list[str], demo: bool = False, smoke_test: bool = False,
            smoke_timeout: float = 300.0) -> int:
    """Start the viewer, open ``paths`` (or the sample study with ``demo``) and run until the window closes.

    With ``smoke_test`` it checks itself and exits instead (:mod:`viewer.qt.smoke`). Returns the exit code.
    """
    from viewer.core.logs import setup_file_logging, stop_file_logging
    from viewer.qt.crash import install_crash_handler

    configure_runtime()
    log_path = setup_file_logging()
    app = create_application()
    uninstall = install_crash_handler()
    log.info("hounsfield %s started (frozen: %s, Qt %s)", __version__, getattr(sys, "frozen", False), qVersion())
    try:
        with garbage_collected_in_the_gui_thread():
            return _run(app, paths, demo, smoke_test, smoke_timeout)
    finally:
        log.info("hounsfield ended (log %s)", log_path)
        uninstall()
        stop_file_logging()


def _run(app: QApplication, paths: list[str], demo: bool, smoke_test: bool, smoke_timeout: float) -> int:
    from viewer.qt.main_window import MainWindow

    window = MainWindow()
    window.show()
    if smoke_test:
        from viewer.qt.smoke import SmokeTestRunner

        runner = SmokeTestRunner(window, list(paths), timeout_s=smoke_timeout)
        runner.start()
        app.exec()
        window.close()
        code = runner.exit_code if runner.exit_code is not None else 1
        from viewer.qt.workers import job_pool

        if not job_pool().waitForDone(SMOKE_DRAIN_MS):  # a model still running after a failure: exit, not abort
            print("hounsfield --smoke-test: a worker did not stop; exiting", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(code)
        return code
    if paths:
        QTimer.singleShot(0, lambda: window.open_paths(list(paths)))
    elif demo:
        QTimer.singleShot(0, window.open_demo)
    else:  # a plain start: offer the newest autosave that was not exported (after a crash, say)
        QTimer.singleShot(0, window.offer_startup_restore)
    return int(app.exec())
