"""Long jobs as generators: they ``yield`` :class:`Progress` and ``return`` their result.

The GUI drains a job on a worker thread, the CLI and tests drain it synchronously with :func:`run_job`.
Every ``yield`` is a cancellation point: a job checks its :class:`CancelToken` there. Defined here, the lowest
layer, so that scanning, loading and inference share one protocol (``viewer.core.jobs`` re-exports it).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

Job = Generator["Progress", None, T]


@dataclass(frozen=True)
class Progress:
    """One step of a long job.

    Parameters
    ----------
    done, total
        Units of work finished and expected (``total`` 0 when unknown).
    message
        Short human text ("Reading headers", "Decoding slice 12/133"); no patient data.
    payload
        Optional partial result (e.g. the Volume being filled) the GUI may show early.
    """

    done: int
    total: int
    message: str = ""
    payload: Any = None

    @property
    def fraction(self) -> float:
        """Fraction done in [0, 1] (0 when the total is unknown)."""
        return min(1.0, self.done / self.total) if self.total else 0.0


class Cancelled(Exception):
    """Raised inside a job when its :class:`CancelToken` was set."""


class CancelToken:
    """A thread-safe flag a job polls at each yield."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop at its next cancellation point."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`Cancelled` when cancellation was requested."""
        if self._event.is_set():
            raise Cancelled()


def is_cancelled(token: Any) -> bool:
    """True when ``token`` (None, a :class:`CancelToken`, or an Event-like ``is_set()``) is set."""
    if token is None:
        return False
    flag = getattr(token, "cancelled", None)
    if flag is not None:
        return bool(flag() if callable(flag) else flag)
    is_set = getattr(token, "is_set", None)
    return bool(is_set()) if callable(is_set) else False


def run_job(job: Job[T], on_progress: Callable[[Progress], None] | None = None) -> T:
    """Drain a job synchronously and return its result (``StopIteration.value``)."""
    while True:
        try:
            progress = next(job)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(progress)
