"""``run_gui``: the application entry point the CLI calls."""
from __future__ import annotations

import logging
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from viewer.qt.theme import apply_dark_theme

log = logging.getLogger(__name__)


#: How long (s) a thread may hold the GIL before a waiting one gets it. Python's default 5 ms lets a worker's
#: Python-level loop (job generators, pydicom, model pre/post-processing) delay a GUI frame by 5 ms per hand-over;
#: 1 ms keeps slice changes within budget while a job runs, and the worker's throughput does not suffer
#: (bench_view measured it doing more work, not less).
GUI_SWITCH_INTERVAL = 0.001


def configure_runtime() -> None:
    """Interpreter settings for an interactive GUI process (see :data:`GUI_SWITCH_INTERVAL`)."""
    sys.setswitchinterval(GUI_SWITCH_INTERVAL)


def create_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (reused when one exists), named and themed."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("Hounsfield")
    app.setOrganizationName("Hounsfield")
    app.setApplicationDisplayName("Hounsfield")
    apply_dark_theme(app)
    return app


def run_gui(paths: list[str], demo: bool = False) -> int:
    """Start the viewer, open ``paths`` (or the sample study with ``demo``) and run until the window closes.

    Returns the application's exit code.
    """
    from viewer.qt.main_window import MainWindow

    configure_runtime()
    app = create_application()
    window = MainWindow()
    window.show()
    if paths:
        QTimer.singleShot(0, lambda: window.open_paths(list(paths)))
    elif demo:
        QTimer.singleShot(0, window.open_demo)
    else:  # a plain start: offer the newest autosave that was not exported (after a crash, say)
        QTimer.singleShot(0, window.offer_startup_restore)
    return int(app.exec())
