"""Warnings as data: a stable code for programs, a message for people."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SeriesWarning:
    """Something a reader must know about a series or a file (tilt, gaps, skipped frames ...).

    ``code`` is stable and machine-readable (``gantry_tilt``, ``uneven_spacing``, ``missing_slices``,
    ``duplicate_positions``, ``mixed_orientation``, ``mixed_size``, ``split_series`` ...);
    ``message`` is one human sentence without patient data.
    """

    code: str
    message: str

    def to_dict(self) -> dict:
        """JSON-ready form ``{"code", "message"}``."""
        return asdict(self)
