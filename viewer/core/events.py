"""The one observer mechanism of the Qt-free core.

Core objects (display state, edit history, segmentation, findings review, session) announce changes through
:class:`Event` attributes; a Qt consumer connects to them in one place and disconnects when it lets go. Named
``Event`` so it is never confused with PySide6's ``Signal`` (which needs a QObject and an event loop).
"""

from __future__ import annotations

from collections.abc import Callable


class Event:
    """A synchronous observer list: ``connect(callback)``, ``emit(*args)``; callbacks' exceptions propagate."""

    def __init__(self) -> None:
        self._callbacks: list[Callable] = []

    def connect(self, callback: Callable) -> None:
        """Call ``callback(*args)`` on every :meth:`emit` (connecting twice is a no-op)."""
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    def disconnect(self, callback: Callable | None = None) -> None:
        """Stop calling ``callback`` (all callbacks when None); one never connected is ignored."""
        if callback is None:
            self._callbacks.clear()
        elif callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args) -> None:
        """Call every connected callback in connection order (a callback may disconnect itself meanwhile)."""
        for callback in list(self._callbacks):
            callback(*args)

    def __len__(self) -> int:
        """How many callbacks are connected."""
        return len(self._callbacks)
