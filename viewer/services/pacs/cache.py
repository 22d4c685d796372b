"""The local cache of retrieved series: a size-capped folder, least recently used series evicted first.

Layout: ``ROOT/<study uid>/<series uid>/<sop instance uid>.dcm``. A retrieve writes into a staging folder
(``ROOT/.staging/<random>/<series uid>/``) and only a complete series is moved into place (one ``rename`` per series,
so a reader never sees half a series); a cancelled or failed retrieve removes its staging folder. UIDs are checked
before they become path parts, so a hostile header cannot write outside the cache. Eviction happens after a commit
and never removes the series just committed or one in use (see :meth:`RetrieveCache.pin`).
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")

#: Default cap of the cache (bytes); the GUI lets the user change it.
DEFAULT_MAX_BYTES = 20 * 1024**3


def default_cache_root() -> Path:
    """The cache's folder unless the user chose another: ``<user cache dir>/pacs`` (the GUI's and the CLI's)."""
    from viewer.core.paths import user_cache_dir

    return user_cache_dir() / "pacs"


def checked_uid(uid: str) -> str:
    """``uid`` when it is a valid DICOM UID (digits and dots, ≤ 64 characters); ValueError otherwise."""
    uid = (uid or "").strip().rstrip("\0")
    if not (0 < len(uid) <= 64 and _UID.match(uid)):
        raise ValueError(f"not a valid DICOM UID: {uid[:70]!r}")
    return uid


@dataclass(frozen=True)
class CachedSeries:
    """One complete series in the cache."""

    study_uid: str
    series_uid: str
    path: Path
    n_bytes: int
    last_used: float


class Staging:
    """Where one retrieve writes; :meth:`commit` moves each finished series into the cache, :meth:`abort` drops all.

    Use as a context manager: leaving the block without :meth:`commit` (an exception, a cancel) aborts.
    """

    def __init__(self, cache: RetrieveCache) -> None:
        self.cache = cache
        cache.root.mkdir(parents=True, exist_ok=True)
        (cache.root / ".staging").mkdir(exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="retrieve-", dir=cache.root / ".staging"))
        self._studies: dict[str, str] = {}
        self._made: set[Path] = set()
        self._incoming = itertools.count()
        self.n_bytes = 0
        self.committed: dict[str, Path] = {}

    def series_folder(self, study_uid: str, series_uid: str) -> Path:
        """The staging folder of one series (created)."""
        study_uid, series_uid = checked_uid(study_uid), checked_uid(series_uid)
        self._studies[series_uid] = study_uid
        folder = self.folder / series_uid
        if folder not in self._made:
            folder.mkdir(exist_ok=True)
            self._made.add(folder)
        return folder

    def add_bytes(self, study_uid: str, series_uid: str, sop_uid: str, data: bytes) -> Path:
        """Write one instance's file bytes; returns its staging path."""
        path = self.series_folder(study_uid, series_uid) / f"{checked_uid(sop_uid)}.dcm"
        path.write_bytes(data)
        self.n_bytes += len(data)
        return path

    def add_parts(self, study_uid: str, series_uid: str, sop_uid: str,
                  parts: tuple[bytes | bytearray | memoryview, ...]) -> Path:
        """Write one instance's file from pieces (e.g. its file meta and the data set as received, not joined into
        one more copy); returns its staging path."""
        path = self.series_folder(study_uid, series_uid) / f"{checked_uid(sop_uid)}.dcm"
        with open(path, "wb") as handle:
            for part in parts:
                handle.write(part)
        self.n_bytes += sum(len(part) for part in parts)
        return path

    def incoming(self) -> Path:
        """A fresh path in the staging folder for an instance still arriving (its UIDs not known yet); see
        :meth:`place`. Whatever is left there is removed with the staging folder."""
        return self.folder / f".incoming-{next(self._incoming)}.part"

    def place(self, source: Path, study_uid: str, series_uid: str, sop_uid: str, n_bytes: int) -> Path:
        """Move a complete instance file written at an :meth:`incoming` path to its place (one rename)."""
        path = self.series_folder(study_uid, series_uid) / f"{checked_uid(sop_uid)}.dcm"
        os.replace(source, path)
        self.n_bytes += n_bytes
        return path

    def add_file(self, study_uid: str, series_uid: str, sop_uid: str, source: Path) -> Path:
        """Move an instance file written elsewhere (e.g. by a storage SCP) into staging."""
        path = self.series_folder(study_uid, series_uid) / f"{checked_uid(sop_uid)}.dcm"
        shutil.move(str(source), path)
        self.n_bytes += path.stat().st_size
        return path

    def commit(self) -> dict[str, Path]:
        """Move every staged series into the cache (replacing an older copy); returns series uid → final folder."""
        for series_uid, study_uid in self._studies.items():
            self.committed[series_uid] = self.cache._install(study_uid, series_uid, self.folder / series_uid)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.cache.evict(keep=set(self.committed))
        return self.committed

    def abort(self) -> None:
        """Remove everything staged."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None or not self.committed:
            self.abort()


class RetrieveCache:
    """A folder of retrieved series, capped at ``max_bytes`` (least recently used series evicted first)."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._pinned: set[str] = set()

    def staging(self) -> Staging:
        """A new staging area for one retrieve."""
        return Staging(self)

    def series_path(self, study_uid: str, series_uid: str) -> Path | None:
        """The cached folder of a complete series (and marks it used), or None."""
        path = self.root / checked_uid(study_uid) / checked_uid(series_uid)
        if not path.is_dir():
            return None
        os.utime(path)
        return path

    def pin(self, series_uid: str, pinned: bool = True) -> None:
        """Keep a series (e.g. open in the viewer) from being evicted."""
        with self._lock:
            (self._pinned.add if pinned else self._pinned.discard)(series_uid)

    def entries(self) -> list[CachedSeries]:
        """Every complete series, least recently used first."""
        found: list[CachedSeries] = []
        if not self.root.is_dir():
            return found
        for study in self.root.iterdir():
            if study.name.startswith(".") or not study.is_dir():
                continue
            for series in study.iterdir():
                if series.is_dir():
                    size = sum(f.stat().st_size for f in series.iterdir() if f.is_file())
                    found.append(CachedSeries(study.name, series.name, series, size, series.stat().st_mtime))
        return sorted(found, key=lambda entry: entry.last_used)

    def total_bytes(self) -> int:
        """Bytes held by complete series."""
        return sum(entry.n_bytes for entry in self.entries())

    def evict(self, keep: set[str] | frozenset[str] = frozenset()) -> list[CachedSeries]:
        """Remove least recently used series until the cache fits ``max_bytes``; returns what was removed."""
        removed = []
        with self._lock:
            entries = self.entries()
            total = sum(entry.n_bytes for entry in entries)
            for entry in entries:
                if total <= self.max_bytes:
                    break
                if entry.series_uid in keep or entry.series_uid in self._pinned:
                    continue
                shutil.rmtree(entry.path, ignore_errors=True)
                total -= entry.n_bytes
                removed.append(entry)
                if not any(entry.path.parent.iterdir()):
                    entry.path.parent.rmdir()
        return removed

    def clear_stale_staging(self, older_than_s: float = 3600.0) -> None:
        """Remove staging folders left by a crash (older than ``older_than_s``)."""
        staging = self.root / ".staging"
        if staging.is_dir():
            for folder in staging.iterdir():
                if time.time() - folder.stat().st_mtime > older_than_s:
                    shutil.rmtree(folder, ignore_errors=True)

    def _install(self, study_uid: str, series_uid: str, staged: Path) -> Path:
        final = self.root / checked_uid(study_uid) / checked_uid(series_uid)
        final.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if final.exists():
                old = final.with_name(f".{series_uid}.old-{os.getpid()}-{time.monotonic_ns()}")
                final.rename(old)
                shutil.rmtree(old, ignore_errors=True)
            staged.rename(final)
        return final
