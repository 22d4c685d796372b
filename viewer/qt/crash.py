"""What an unhandled exception does in the GUI: it is logged (with its traceback, patient data redacted), every open
window's annotation edits are autosaved at once, and a dialog says what happened and where the log is. The app goes
on running - Qt has already returned from the slot that raised - so the user can export or close normally.

:func:`install_crash_handler` sets ``sys.excepthook`` and ``threading.excepthook``; :func:`show_crash_dialog` is the
one place a dialog is shown (tests replace it).
"""
from __future__ import annotations

import logging
import sys
import threading
import traceback

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QApplication, QMessageBox

log = logging.getLogger(__name__)

_handling = threading.local()


def _main_windows() -> list:
    from viewer.qt.main_window import MainWindow

    return [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]


def autosave_everything() -> int:
    """Force an autosave of every open window's unsaved annotation edits; returns how many were written."""
    saved = 0
    for window in _main_windows():
        try:
            window.annotation.end_strokes()
            saved += window.annotation.autosave_now(force=True)
        except Exception:  # noqa: BLE001 - the crash path must not raise in turn
            log.exception("autosave after an unhandled exception failed")
    return saved


def crash_message(exc_type, exc, log_path) -> str:
    """The dialog's text: what failed, that edits were autosaved, where the log is."""
    where = f"The details are in the log file:\n{log_path}" if log_path else "No log file is being written."
    return (f"Hounsfield hit an unexpected error: {exc_type.__name__}: {exc}\n\n"
            "Your annotation edits have been autosaved; the viewer keeps running, and the autosave is offered "
            f"back the next time the study is opened.\n\n{where}")


def show_crash_dialog(text: str, details: str) -> None:
    """Show the crash dialog (modal; tests replace this function)."""
    parent = next(iter(_main_windows()), None)
    box = QMessageBox(QMessageBox.Icon.Critical, "Unexpected error", text, QMessageBox.StandardButton.Ok, parent)
    box.setDetailedText(details)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.exec()


def handle_exception(exc_type, exc, tb) -> None:
    """``sys.excepthook`` for the GUI process (see the module doc)."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    from viewer.core.logs import log_file, redact

    log.critical("unhandled exception", exc_info=(exc_type, exc, tb))
    if getattr(_handling, "active", False):  # an error while showing the dialog: logged, nothing more
        return
    _handling.active = True
    try:
        autosave_everything()
        details = redact("".join(traceback.format_exception(exc_type, exc, tb)))
        show_crash_dialog(redact(crash_message(exc_type, exc, log_file())), details)
    except Exception:  # noqa: BLE001
        log.exception("the crash handler failed")
    finally:
        _handling.active = False


class _MainThreadRelay(QObject):
    """Carries a worker thread's unhandled exception to the GUI thread (dialogs live there)."""

    raised = Signal(object, object, object)

    def __init__(self) -> None:
        super().__init__()
        self.raised.connect(self._on_raised)  # queued: emitted on a worker, run on the relay's (GUI) thread

    @Slot(object, object, object)
    def _on_raised(self, exc_type, exc, tb) -> None:
        handle_exception(exc_type, exc, tb)


_relay: _MainThreadRelay | None = None


def _thread_hook(args) -> None:
    if args.exc_type is SystemExit:
        return
    if _relay is not None:
        _relay.raised.emit(args.exc_type, args.exc_value, args.exc_traceback)
    else:
        log.critical("unhandled exception in thread %s", args.thread and args.thread.name,
                     exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


def install_crash_handler():
    """Route unhandled exceptions of the GUI thread and of Python threads to :func:`handle_exception`; returns a
    function that puts the previous hooks back (``run_gui`` calls it when the event loop ends)."""
    global _relay
    previous = sys.excepthook, threading.excepthook
    if _relay is None:
        _relay = _MainThreadRelay()
        app = QApplication.instance()
        if app is not None:
            _relay.moveToThread(app.thread())
    sys.excepthook = handle_exception
    threading.excepthook = _thread_hook

    def uninstall() -> None:
        sys.excepthook, threading.excepthook = previous

    return uninstall
