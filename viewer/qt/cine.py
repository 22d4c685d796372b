"""Cine: a timer that steps the active view through its images in a loop."""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

FPS_RANGE = (1, 60)


class CinePlayer(QObject):
    """Plays at the rate a series' file asks for, or else at the user's rate (kept for the next series).

    Signals
    -------
    frame()
        Time for the next image.
    running_changed(bool)
        Started or paused.
    fps_changed(float)
        The rate in use changed (the corner text shows it while playing).
    """

    frame = Signal()
    running_changed = Signal(bool)
    fps_changed = Signal(float)

    def __init__(self, parent: QObject | None = None, fps: int = 10) -> None:
        super().__init__(parent)
        #: The rate in use (frames per second; a file's rate may have a decimal).
        self.fps: float = fps
        #: The rate the user chose (settings, [ and ]); a series whose file gives a cine rate plays at that.
        self.user_fps = fps
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.frame)

    @property
    def running(self) -> bool:
        """True while playing."""
        return self._timer.isActive()

    def set_user_fps(self, fps: float) -> None:
        """The user's rate (whole frames per second, clamped to 1..60), used from now on."""
        lo, hi = FPS_RANGE
        self.user_fps = int(max(lo, min(hi, round(fps))))
        self.use_fps(self.user_fps)

    def use_fps(self, fps: float) -> None:
        """Play at ``fps`` (clamped to 1..60) without changing the user's rate: a series' own rate."""
        lo, hi = FPS_RANGE
        # a file's FrameTime may ask for e.g. 26.3 fps: keep it (QTimer rounds to whole milliseconds)
        fps = float(max(lo, min(hi, fps)))
        self.fps = int(fps) if fps.is_integer() else round(fps, 1)
        self._timer.setInterval(int(round(1000 / fps)))
        self.fps_changed.emit(self.fps)

    def start(self) -> None:
        """Play (loops until stopped)."""
        if not self.running:
            self._timer.start(int(round(1000 / self.fps)))
            self.running_changed.emit(True)

    def stop(self) -> None:
        """Pause."""
        if self.running:
            self._timer.stop()
            self.running_changed.emit(False)
