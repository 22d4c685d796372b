"""Run core job generators on worker threads and report to the GUI thread with queued signals.

A job (see :mod:`viewer.core.jobs`) is a generator that yields ``Progress`` and returns its result. A
:class:`JobRunnable` drains it on a ``QThreadPool`` thread; every signal crosses to the GUI thread through a
queued connection, so slots never run on the worker and the event loop is never blocked. Progress is throttled
(at most one signal per ``progress_interval``) except for the first progress that carries a payload and the
first one with ``done > 0``, which are passed on at once so a view can show the first decoded slice immediately.
Cancel through the handle's :class:`~viewer.core.jobs.CancelToken`; the job stops at its next ``yield`` and is
closed there, so its clean-up has run when ``cancelled`` (or ``failed``) arrives.
"""
from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal

from viewer.core.jobs import Cancelled, CancelToken, Job, Progress

log = logging.getLogger(__name__)


class JobHandle(QObject):
    """The GUI-side end of one running job: its signals, its cancel token and its state.

    Signals
    -------
    progressed(Progress)
        Throttled progress (always including the first one with a payload).
    finished(object)
        The job's return value.
    failed(str)
        A one-line reason (the traceback goes to the log and to :attr:`error_details`).
    cancelled()
        The job stopped because :meth:`cancel` was called.
    done()
        After any of the three above.
    """

    progressed = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    done = Signal()

    def __init__(self, name: str = "job", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.token = CancelToken()
        self.running = True
        self.last_progress: Progress | None = None
        self.error_details = ""  # the traceback of a failure, set before ``failed`` is emitted
        self.done.connect(self._mark_done)

    def cancel(self) -> None:
        """Ask the job to stop at its next cancellation point (returns at once)."""
        self.token.cancel()

    @property
    def is_cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self.token.cancelled

    def _mark_done(self) -> None:
        self.running = False
        # Drop the registry's reference on the GUI thread, a moment after the worker dropped its own: the last
        # reference to a QObject must not go on a worker thread while queued signals for it are pending.
        QTimer.singleShot(100, lambda: _live_handles.discard(self))


class JobRunnable(QRunnable):
    """Drains ``factory(token)`` on a pool thread, emitting through ``handle``."""

    def __init__(self, factory: Callable[[CancelToken], Job], handle: JobHandle, progress_interval: float) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._factory = factory
        self._handle = handle
        self._interval = progress_interval

    def run(self) -> None:  # noqa: D401 - Qt override, runs on the worker thread
        handle, token = self._handle, self._handle.token

        def emit(signal: str, *args) -> None:
            # The handle's Qt object goes with its parent (a dialog or window closed while the job ran): nobody is
            # listening any more, so the job stops at its next step instead of failing on every emit.
            try:
                getattr(handle, signal).emit(*args)
            except RuntimeError:
                token.cancel()

        last_emit = 0.0
        payload_seen = False
        started = False
        pending: Progress | None = None
        job: Job | None = None
        try:
            job = self._factory(token)
            while True:
                token.raise_if_cancelled()
                try:
                    progress = next(job)
                except StopIteration as stop:
                    result = stop.value
                    break
                now = time.monotonic()
                first_payload = progress.payload is not None and not payload_seen
                first_done = progress.done > 0 and not started
                if first_payload or first_done or now - last_emit >= self._interval:
                    payload_seen = payload_seen or progress.payload is not None
                    started = started or progress.done > 0
                    handle.last_progress = progress
                    emit("progressed", progress)
                    last_emit = now
                    pending = None
                else:
                    pending = progress
            if pending is not None:
                emit("progressed", pending)
            if token.cancelled:
                raise Cancelled()
            emit("finished", result)
        except Cancelled:
            _close(job)
            emit("cancelled")
        except Exception as exc:  # the job failed: report, never crash the GUI
            _close(job)
            details = traceback.format_exc()
            log.error("job %s failed:\n%s", handle.name, details)
            handle.error_details = details
            emit("failed", f"{type(exc).__name__}: {exc}")
        finally:
            emit("done")
            self._handle = None  # the GUI thread releases the handle (see JobHandle._mark_done)


def _close(job: Job | None) -> None:
    """Close a job stopped between two yields, so its clean-up (``finally``, ``with`` blocks: a retrieve's staging
    folder, an association) has run before ``cancelled`` / ``failed`` is emitted, not whenever it is collected."""
    if job is None:
        return
    try:
        job.close()
    except Exception:  # a clean-up that fails must not hide why the job stopped
        log.exception("closing a stopped job failed")


_pool: QThreadPool | None = None
_live_handles: set[JobHandle] = set()  # handles of running jobs, released on the GUI thread when done


def job_pool() -> QThreadPool:
    """The pool jobs run on (separate from Qt's global pool; two threads on this class of machine)."""
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(3)
        _pool.setExpiryTimeout(30_000)
    return _pool


def start_job(
    factory: Callable[[CancelToken], Job],
    name: str = "job",
    *,
    parent: QObject | None = None,
    progress_interval: float = 0.05,
    pool: QThreadPool | None = None,
) -> JobHandle:
    """Run ``factory(token)`` (which returns a job generator) on a worker; connect to the returned handle.

    The job is queued to the pool from the event loop (a zero-time timer), not from here: a signal emitted
    before its connection exists is lost, and a fast job could otherwise finish before the caller has connected
    ``finished``. Connect right after this returns, without going back to the event loop in between.
    """
    handle = JobHandle(name, parent)
    _live_handles.add(handle)
    runnable = JobRunnable(factory, handle, progress_interval)
    target = pool or job_pool()
    QTimer.singleShot(0, handle, lambda: target.start(runnable))
    return handle
