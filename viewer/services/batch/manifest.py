"""The batch manifest: one SQLite row per (series, model set) with its state, timings, device, outputs and error.

Re-running the same command reads it to resume: ``done`` and ``skipped`` rows are not run again, rows left
``running`` by a driver that was killed go back to ``queued``, ``failed`` ones are tried again. Only the driver
writes it (one connection, one thread), in write-ahead-log mode so a reader (``sqlite3``, another ``hounsfield
batch`` polling it, a test) never blocks the run and a kill never leaves it half-written: every change is one
committed transaction.

A *job* is the model set a row was run with: :func:`job_key` of the models' ids and content hashes, so the same
series with another model set (or changed weights) is another row, and a finished row stays finished only for
exactly the models that made it.

No patient data is stored: series and study UIDs, where the series came from (the folder or ``pacs:NODE``),
times, the device, model ids and hashes, output paths and error messages.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUEUED, RUNNING, DONE, FAILED, SKIPPED = "queued", "running", "done", "failed", "skipped"
STATES = (QUEUED, RUNNING, DONE, FAILED, SKIPPED)
#: States a re-run leaves alone.
FINISHED = (DONE, SKIPPED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    series_key TEXT NOT NULL,
    job TEXT NOT NULL,
    series_uid TEXT NOT NULL DEFAULT '',
    study_uid TEXT NOT NULL DEFAULT '',
    origin TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    queued_at REAL, started_at REAL, finished_at REAL,
    run_id INTEGER,
    load_s REAL, infer_s REAL, export_s REAL, send_s REAL, total_s REAL,
    device TEXT NOT NULL DEFAULT '',
    worker TEXT NOT NULL DEFAULT '',
    models TEXT NOT NULL DEFAULT '[]',
    outputs TEXT NOT NULL DEFAULT '{}',
    messages TEXT NOT NULL DEFAULT '[]',
    error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (series_key, job)
);
CREATE INDEX IF NOT EXISTS series_state ON series (job, state);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL,
    job TEXT NOT NULL,
    models TEXT NOT NULL,
    address TEXT NOT NULL DEFAULT '',
    workers INTEGER NOT NULL DEFAULT 0,
    pid INTEGER NOT NULL DEFAULT 0
);
"""


def job_key(models: Sequence[dict]) -> str:
    """The key of a model set: ids and content hashes, order-independent (16 hex digits)."""
    text = json.dumps(sorted([m["id"], m.get("hash", "")] for m in models))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Row:
    """One series of one job, as read back (:meth:`Manifest.rows`)."""

    series_key: str
    job: str
    series_uid: str
    study_uid: str
    origin: str
    state: str
    attempts: int
    queued_at: float | None
    started_at: float | None
    finished_at: float | None
    run_id: int | None
    load_s: float | None
    infer_s: float | None
    export_s: float | None
    send_s: float | None
    total_s: float | None
    device: str
    worker: str
    models: list
    outputs: dict
    messages: list
    error: str


class Manifest:
    """The manifest file at ``path`` (created with its folder when missing).

    Parameters
    ----------
    path
        The SQLite file; by default ``batch-manifest.sqlite`` in the sink folder.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, each statement (or explicit BEGIN..COMMIT) is one transaction
        self._db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at each checkpoint, never corrupt
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection (the file stays)."""
        self._db.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    # ---- runs ---------------------------------------------------------------------------------------------
    def start_run(self, job: str, models: Sequence[dict], address: str = "", workers: int = 0) -> int:
        """Record the start of a run; returns its id. Rows a killed driver left ``running`` are queued again."""
        with self._transaction():
            # the driver's death is not the series' fault: that hand-off does not count towards the retry bound
            self._db.execute("UPDATE series SET state=?, started_at=NULL, worker='', attempts=MAX(attempts-1, 0) "
                             "WHERE state=?", (QUEUED, RUNNING))
            cursor = self._db.execute(
                "INSERT INTO runs (started_at, job, models, address, workers, pid) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), job, json.dumps(list(models)), address, int(workers), os.getpid()))
        return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int) -> None:
        """Record the end of run ``run_id``."""
        self._db.execute("UPDATE runs SET finished_at=? WHERE run_id=?", (time.time(), run_id))

    # ---- series -------------------------------------------------------------------------------------------
    def enqueue(self, items: Iterable[Any], job: str, models: Sequence[dict], retry_skipped: bool = False
                ) -> list[str]:
        """Queue every item (a :class:`~viewer.services.batch.sources.SeriesItem`) not finished for ``job``;
        failed ones (and skipped ones with ``retry_skipped``: a run with ``--force``) are queued again with their
        attempts reset. Returns the keys now queued, in item order."""
        now = time.time()
        again = (FAILED, SKIPPED) if retry_skipped else (FAILED,)
        queued = []
        models_text = json.dumps(list(models))
        with self._transaction():
            for item in items:
                row = self._db.execute("SELECT state FROM series WHERE series_key=? AND job=?",
                                       (item.key, job)).fetchone()
                if row is None:
                    self._db.execute(
                        "INSERT INTO series (series_key, job, series_uid, study_uid, origin, state, queued_at, models)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (item.key, job, item.series_uid, item.study_uid, item.origin, QUEUED, now, models_text))
                elif row[0] in again:
                    self._db.execute("UPDATE series SET state=?, attempts=0, queued_at=?, error='' "
                                     "WHERE series_key=? AND job=?", (QUEUED, now, item.key, job))
                elif row[0] in FINISHED:
                    continue
                queued.append(item.key)
        return queued

    def unfinished(self, items: Iterable[Any], job: str, retry_skipped: bool = False) -> list[str]:
        """Keys of the items :meth:`enqueue` would queue (read-only)."""
        states = (DONE,) if retry_skipped else FINISHED
        finished = {row[0] for row in self._db.execute(
            f"SELECT series_key FROM series WHERE job=? AND state IN ({', '.join('?' * len(states))})",
            (job, *states))}
        return [item.key for item in items if item.key not in finished]

    def mark_running(self, key: str, job: str, run_id: int, worker: str = "") -> None:
        """The series was handed to a worker."""
        self._db.execute("UPDATE series SET state=?, started_at=?, run_id=?, worker=?, attempts=attempts+1 "
                         "WHERE series_key=? AND job=?", (RUNNING, time.time(), run_id, worker, key, job))

    def mark_done(self, key: str, job: str, *, state: str = DONE, timings: dict | None = None, device: str = "",
                  worker: str = "", outputs: dict | None = None, messages: Sequence[str] = (), error: str = "") -> None:
        """The series finished (``done``, or ``skipped`` when no model was made for it, ``error`` saying why)."""
        t = timings or {}
        self._db.execute(
            "UPDATE series SET state=?, finished_at=?, load_s=?, infer_s=?, export_s=?, send_s=?, total_s=?, "
            "device=?, worker=?, outputs=?, messages=?, error=? WHERE series_key=? AND job=?",
            (state, time.time(), t.get("load"), t.get("infer"), t.get("export"), t.get("send"), t.get("total"),
             device, worker, json.dumps(outputs or {}), json.dumps(list(messages)), error, key, job))

    def mark_failed(self, key: str, job: str, error: str, *, timings: dict | None = None, worker: str = "") -> None:
        """The series failed for good; ``error`` says why (no patient data)."""
        t = timings or {}
        self._db.execute("UPDATE series SET state=?, finished_at=?, load_s=?, error=?, worker=? "
                         "WHERE series_key=? AND job=?",
                         (FAILED, time.time(), t.get("load"), error, worker, key, job))

    def requeue(self, key: str, job: str, error: str) -> None:
        """Back to ``queued`` after a worker crashed under it (``attempts`` keeps the count, ``error`` the cause)."""
        self._db.execute("UPDATE series SET state=?, started_at=NULL, error=? WHERE series_key=? AND job=?",
                         (QUEUED, error, key, job))

    # ---- reading ------------------------------------------------------------------------------------------
    def attempts(self, key: str, job: str) -> int:
        """How many times the series was handed to a worker for ``job``."""
        row = self._db.execute("SELECT attempts FROM series WHERE series_key=? AND job=?", (key, job)).fetchone()
        return int(row[0]) if row else 0

    def counts(self, job: str | None = None) -> dict[str, int]:
        """Rows per state (of ``job``, or of all jobs)."""
        counts = dict.fromkeys(STATES, 0)
        query = "SELECT state, COUNT(*) FROM series" + (" WHERE job=?" if job else "") + " GROUP BY state"
        for state, n in self._db.execute(query, (job,) if job else ()):
            counts[state] = int(n)
        return counts

    def rows(self, job: str | None = None) -> list[Row]:
        """Every row (of ``job``), in the order they were queued."""
        query = "SELECT * FROM series" + (" WHERE job=?" if job else "") + " ORDER BY queued_at, series_key"
        cursor = self._db.execute(query, (job,) if job else ())
        names = [d[0] for d in cursor.description]
        rows = []
        for values in cursor.fetchall():
            record = dict(zip(names, values))
            for name in ("models", "outputs", "messages"):
                record[name] = json.loads(record[name] or "null")
            rows.append(Row(**record))
        return rows

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    """``BEGIN IMMEDIATE`` .. ``COMMIT`` (``ROLLBACK`` on an exception) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *_rest) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
