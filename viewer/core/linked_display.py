"""Two display states that move together: a prior study beside the current one.

Scrolling either study moves the other to the same anatomy - through the registration transform, not by table
position or slice number, so studies with different slice spacing, table height or patient position stay in step.
Window/level and inversion are shared as well (a reader compares like with like). Qt-free: the compare layout
binds two viewers' states with it, and tests drive it directly.
"""
from __future__ import annotations

import numpy as np


def apply_transform(matrix: np.ndarray, lps) -> np.ndarray:
    """``matrix`` (4x4, homogeneous) applied to LPS points ``(..., 3)``."""
    lps = np.asarray(lps, dtype=float)
    return lps @ matrix[:3, :3].T + matrix[:3, 3]


class LinkedDisplays:
    """Keeps ``prior`` following ``current`` and the other way round.

    ``current_to_prior`` maps a point in the current study's LPS to the same anatomy in the prior's LPS (identity:
    the two studies are assumed to share a patient coordinate system - table position). Change it with
    :meth:`set_transform`; :meth:`close` lets go of both states.
    """

    def __init__(self, current, prior, current_to_prior: np.ndarray | None = None, link_window: bool = True) -> None:
        self.current = current
        self.prior = prior
        self.link_window = link_window
        self._matrix = np.eye(4)
        self._inverse = np.eye(4)
        self._busy = False  # one move at a time: the echo of our own move must not move the first state again
        current.position_changed.connect(self._current_moved)
        prior.position_changed.connect(self._prior_moved)
        current.window_changed.connect(self._current_window)
        prior.window_changed.connect(self._prior_window)
        self.set_transform(current_to_prior)
        if link_window:
            self._copy_window(current, prior)

    @property
    def transform(self) -> np.ndarray:
        """The current → prior LPS transform (4x4, a copy)."""
        return self._matrix.copy()

    def set_transform(self, current_to_prior: np.ndarray | None) -> None:
        """Use a new current → prior transform (None: identity) and move the prior to match the current."""
        matrix = np.eye(4) if current_to_prior is None else np.asarray(current_to_prior, dtype=float)
        if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
            raise ValueError("the transform must be a finite 4x4 matrix")
        self._matrix = matrix
        self._inverse = np.linalg.inv(matrix)
        self._current_moved(self.current.position)

    def prior_point(self, current_lps) -> np.ndarray:
        """Where the anatomy at ``current_lps`` lies in the prior (LPS mm)."""
        return apply_transform(self._matrix, current_lps)

    def current_point(self, prior_lps) -> np.ndarray:
        """Where the anatomy at ``prior_lps`` lies in the current study (LPS mm)."""
        return apply_transform(self._inverse, prior_lps)

    def _current_moved(self, _position) -> None:
        if not self._busy:
            self._busy = True
            try:
                self.prior.set_position_lps(self.prior_point(self.current.position_lps))
            finally:
                self._busy = False

    def _prior_moved(self, _position) -> None:
        if not self._busy:
            self._busy = True
            try:
                self.current.set_position_lps(self.current_point(self.prior.position_lps))
            finally:
                self._busy = False

    def _current_window(self, *_args) -> None:
        if self.link_window and not self._busy:
            self._copy_window(self.current, self.prior)

    def _prior_window(self, *_args) -> None:
        if self.link_window and not self._busy:
            self._copy_window(self.prior, self.current)

    def _copy_window(self, source, target) -> None:
        self._busy = True
        try:
            target.set_window(source.window, source.window_name)
            target.set_invert(source.invert)
        finally:
            self._busy = False

    def close(self) -> None:
        """Stop linking (the states keep where they are)."""
        self.current.position_changed.disconnect(self._current_moved)
        self.prior.position_changed.disconnect(self._prior_moved)
        self.current.window_changed.disconnect(self._current_window)
        self.prior.window_changed.disconnect(self._prior_window)
