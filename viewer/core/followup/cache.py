"""Registrations cached per pair of series: in memory, and optionally as small JSON files on disk.

The key is the two SeriesInstanceUIDs, the method's revision and its options; the value is the transform
(:meth:`Registration.to_json`). Nothing about the patient is written, only UIDs and numbers (hashed in the name).
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import replace
from pathlib import Path

from viewer.core.followup.transform import Registration


def default_cache_dir() -> Path:
    """``<user cache>/registrations``."""
    from viewer.core.paths import user_cache_dir

    return user_cache_dir() / "registrations"


class RegistrationCache:
    """Registrations by pair; thread-safe (the GUI registers on a worker thread).

    Parameters
    ----------
    directory
        Where to keep them on disk as well (e.g. :func:`default_cache_dir`); None keeps them in memory only.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self._memory: dict[str, Registration] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(prior_uid: str, current_uid: str, revision: int, options: dict | None = None) -> str:
        """The cache key of a pair (order matters: prior first)."""
        text = json.dumps([prior_uid, current_uid, revision, options or {}], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(self, key: str) -> Registration | None:
        """The cached registration (marked ``cached``), or None."""
        with self._lock:
            hit = self._memory.get(key)
        if hit is None and self.directory is not None:
            path = self.directory / f"{key}.json"
            try:
                hit = Registration.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError):  # absent or damaged: register again
                return None
            with self._lock:
                self._memory[key] = hit
        return None if hit is None else replace(hit, cached=True)

    def put(self, key: str, registration: Registration) -> None:
        """Keep ``registration`` (written atomically on disk when a directory is set)."""
        with self._lock:
            self._memory[key] = registration
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.directory / f".{key}.json.part"
            tmp.write_text(json.dumps(registration.to_json()))
            tmp.replace(self.directory / f"{key}.json")

    def forget(self, key: str) -> None:
        """Drop one pair (e.g. after the user reset the alignment and wants it redone)."""
        with self._lock:
            self._memory.pop(key, None)
        if self.directory is not None:
            (self.directory / f"{key}.json").unlink(missing_ok=True)
