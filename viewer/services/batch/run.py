"""The batch driver: every series of a source through the models on a pool of workers, results into a sink.

Per series: the driver loads it (:meth:`~viewer.services.batch.sources.FolderSource.load`, on a prefetch thread
that stays a few series ahead) and puts it into Ray's object store; a worker actor, its models loaded once, runs
them (sharing a network run between models that share the network) and exports SEG / findings.json / SR; the
driver writes what came back into the sink, whole or not at all, and records it in the manifest.

A re-run of the same command resumes from the manifest: finished series are skipped. When a worker dies under a
series (killed, out of memory, a segfault in a codec) the series is queued again, at most ``retries`` times, then
marked failed with the reason; a series whose model raises fails at once (it would fail again) and never stops
the others.
"""
from __future__ import annotations

import datetime
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from viewer.services.batch.executors import (
    DEFAULT_OBJECT_STORE_MB,
    InlineExecutor,
    RayExecutor,
    RaySession,
)
from viewer.services.batch.manifest import DONE, FAILED, QUEUED, RUNNING, SKIPPED, Manifest, job_key
from viewer.services.batch.progress import LiveLine, Tally
from viewer.services.batch.sinks import open_sink
from viewer.services.batch.sources import Settling, open_source
from viewer.services.batch.worker import ModelWorker, describe_models

INLINE = "inline"


@dataclass
class BatchOptions:
    """What ``hounsfield batch`` was asked to do (see :mod:`viewer.cli_batch` for each option's meaning)."""

    models: Sequence[str]
    sources: Sequence[str]
    sink: str
    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_task: float = 0.0
    threads: int | None = None
    device: str | None = None
    force: bool = False
    retries: int = 2
    manifest: str | None = None
    watch: bool = False
    interval: float = 30.0
    object_store_mb: int = DEFAULT_OBJECT_STORE_MB
    extra_model_dirs: Sequence[str] = field(default_factory=tuple)
    #: The configured PACS nodes a ``pacs:NODE`` source or sink may name (the command line reads the app's).
    pacs_nodes: Sequence[Any] = field(default_factory=tuple)


class BatchError(RuntimeError):
    """The batch cannot run at all (bad source, unknown model, no Ray); the message says why."""


@dataclass
class _Loaded:
    item: Any
    ref: Any = None
    seconds: float = 0.0
    error: str = ""


class _Prefetcher:
    """Loads queued series in order on a thread, at most ``depth`` ahead of the workers (that bounds the volumes
    held in the object store), and puts each into the executor's store."""

    def __init__(self, source, put: Callable[[Any], Any], depth: int) -> None:
        self._source, self._put = source, put
        self._todo: queue.Queue = queue.Queue()
        self.ready: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.pending = 0  # items added and not taken from ``ready``
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hounsfield-batch-load", daemon=True)
        self._thread.start()

    def add(self, item) -> None:
        self.pending += 1
        self._todo.put(item)

    def take(self) -> _Loaded | None:
        try:
            loaded = self.ready.get_nowait()
        except queue.Empty:
            return None
        self.pending -= 1
        return loaded

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._todo.get(timeout=0.2)
            except queue.Empty:
                continue
            started = time.perf_counter()
            try:
                ref = self._put(self._source.load(item))
                result = _Loaded(item, ref, time.perf_counter() - started)
            except Exception as error:  # noqa: BLE001 - an unreadable series fails alone
                result = _Loaded(item, None, time.perf_counter() - started, f"cannot load: {_one_line(error)}")
            while not self._stop.is_set():
                try:
                    self.ready.put(result, timeout=0.2)
                    break
                except queue.Full:
                    continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def _worker_args(options: BatchOptions) -> dict:
    return {"model_ids": list(options.models), "device": options.device,
            "threads": options.threads or max(1, int(options.cpus_per_worker)), "force": options.force,
            "extra_model_dirs": list(options.extra_model_dirs)}


def _default_workers(options: BatchOptions, session: RaySession | None) -> int:
    """Local: one per ``cpus_per_worker`` cores. Cluster: one per GPU share with ``--gpus-per-task``, else one per
    ``cpus_per_worker`` of the cluster's CPUs."""
    if options.workers:
        return max(1, int(options.workers))
    if session is None or not session.address:
        from inference.device import cpu_cores

        return max(1, int(cpu_cores() // max(options.cpus_per_worker, 1e-3)))
    resources = session.resources()
    if options.gpus_per_task:
        return max(1, int(resources.get("GPU", 0) // options.gpus_per_task))
    return max(1, int(resources.get("CPU", 1) // max(options.cpus_per_worker, 1e-3)))


def run_batch(options: BatchOptions, *, write: Callable[[str], None] | None = None,
              stop: threading.Event | None = None, worker_class: type = ModelWorker, terminal: bool = True) -> dict:
    """Run (or resume) a batch; returns the summary (also what ``--json`` prints).

    Parameters
    ----------
    options
        What to run, where from, where to.
    write
        Where the live progress line goes (None: nowhere); ``terminal``: rewritten in place, else a line per change.
    stop
        Set it to end the run (``--watch`` runs until then); series in flight finish first.
    worker_class
        The worker (tests pass a subclass that fails on purpose).

    Returns
    -------
    dict
        ``job``, ``models``, ``manifest`` (counts by state over all runs of this job), ``run`` (this run: counts,
        finished, seconds, per_minute, startup_s - Ray and the workers' models -, steady_s and steady_per_minute -
        from the workers being ready -, workers, address, mean_seconds per stage), ``failures``
        (series key and error), ``manifest_path``, ``sink``.

    Raises
    ------
    BatchError
        When the models, the source, the sink or the workers cannot be set up.
    """
    from inference.registry import ModelNotFound
    from viewer.services.batch.executors import ExecutorError
    from viewer.services.batch.sources import SourceError

    try:
        models = describe_models(options.models, options.extra_model_dirs)
        source = open_source(options.sources, options.pacs_nodes)
        sink = open_sink(options.sink, options.pacs_nodes)
        sink.open()
        items = source.discover()
    except (ModelNotFound, SourceError, OSError) as error:
        raise BatchError(str(error).strip("'\"")) from None
    job = job_key(models)
    manifest = Manifest(options.manifest or sink.default_manifest())
    # nothing to run and nothing to wait for: no Ray runtime started (it takes seconds to come up)
    inline = options.address == INLINE or (not options.watch and not manifest.unfinished(items, job, options.force))
    started = time.perf_counter()
    try:
        if inline:
            executor: Any = InlineExecutor(lambda: worker_class(**_worker_args(options)))
            driver = _Driver(options, models, job, manifest, source, sink, executor, None, write, stop, terminal)
            return driver.run(items, started)
        workers = options.workers or 0
        cpus = (workers or _default_workers(options, None)) * options.cpus_per_worker
        with RaySession(options.address, cpus, None, options.object_store_mb) as session:
            workers = _default_workers(options, session)
            executor = RayExecutor(worker_class, _worker_args(options), workers, options.cpus_per_worker,
                                   options.gpus_per_task)
            driver = _Driver(options, models, job, manifest, source, sink, executor, session, write, stop,
                             terminal)
            return driver.run(items, started)
    except ExecutorError as error:
        raise BatchError(str(error)) from None
    finally:
        manifest.close()


class _Driver:
    """One run's loop (see the module docstring): hands loaded series to idle workers, collects what comes back,
    keeps the manifest and the live line current, polls the source with ``--watch``."""

    def __init__(self, options: BatchOptions, models: list[dict], job: str, manifest: Manifest, source, sink,
                 executor, session: RaySession | None, write, stop, terminal: bool = True) -> None:
        self.options, self.models, self.job = options, models, job
        self.manifest, self.source, self.sink = manifest, source, sink
        self.executor, self.session, self.write, self.stop = executor, session, write, stop
        self.tally = Tally()
        self.live = LiveLine(write, terminal=terminal) if write is not None else None
        self.settling = Settling()
        self.by_key: dict[str, Any] = {}
        self.active: set[str] = set()  # queued in this run, loading or in flight
        self.load_seconds: dict[str, float] = {}
        self.stats: dict[str, list[float]] = {}
        self.run_id = 0
        self.loop_started = time.perf_counter()  # when the workers were ready (steady-state throughput from here)
        # loading starts with the first series queued and overlaps the workers loading their models
        self.prefetch = _Prefetcher(source, executor.put, depth=executor.workers)

    def run(self, items: list, started: float) -> dict:
        """Queue ``items``, start the workers, loop until done (or stopped); returns the summary."""
        self.run_id = self.manifest.start_run(self.job, self.models, self.options.address or "local",
                                              self.executor.workers)
        startup = time.perf_counter()
        described: list = []
        try:
            self._enqueue(items)
            if self.active or self.options.watch:  # nothing to do (all finished before): no models loaded
                described = self.executor.start()
            startup_s = time.perf_counter() - startup + (self.session.seconds if self.session is not None else 0.0)
            self.loop_started = time.perf_counter()
            self._loop()
        finally:
            self.prefetch.close()
            self.executor.shutdown()
            self.manifest.finish_run(self.run_id)
        if self.live is not None:
            self.live.update(self.tally, force=True)
            self.live.close()
        return self._summary(started, startup_s, described)

    def _loop(self) -> None:
        options, executor = self.options, self.executor
        next_poll = time.perf_counter() + options.interval
        while True:
            self._hand_out()
            for outcome in executor.wait(timeout=0.1):
                self._collect(outcome)
            if self.live is not None:
                self.live.update(self.tally)
            if self.stop is not None and self.stop.is_set() and not executor.in_flight():
                return
            if options.watch and time.perf_counter() >= next_poll:
                self._poll()
                next_poll = time.perf_counter() + options.interval
            elif not options.watch and not self.active:
                return
            if not executor.in_flight():
                time.sleep(0.05)  # waiting for a load (or the next poll): do not spin

    def _poll(self) -> None:
        """``--watch``: look for new series; a source that does not answer (a PACS down) is tried next poll."""
        from viewer.services.batch.sources import SourceError

        try:
            found = self.source.discover()
        except (SourceError, OSError) as error:
            if self.write is not None:
                self.write(f"\npoll failed, trying again in {self.options.interval:g} s: {error}\n")
            return
        self._enqueue(found)

    def _enqueue(self, found: list) -> None:
        """Queue what the source found and this job has not finished (with ``--watch``: once its files settled)."""
        ready = self.settling.ready(found) if self.options.watch else found
        fresh = {item.key: item for item in ready if item.key not in self.active}
        for key in self.manifest.enqueue(list(fresh.values()), self.job, self.models, self.options.force):
            self.by_key[key] = fresh[key]
            self.active.add(key)
            self.prefetch.add(fresh[key])
            self.tally.move(None, QUEUED)

    def _hand_out(self) -> None:
        """Give each idle worker the next loaded series; a series that could not be loaded fails here."""
        while self.executor.has_idle():
            loaded = self.prefetch.take()
            if loaded is None:
                return
            key = loaded.item.key
            self.load_seconds[key] = loaded.seconds
            if loaded.error:
                self.manifest.mark_running(key, self.job, self.run_id)
                self._fail(key, loaded.error, {"load": loaded.seconds}, "", QUEUED)
                continue
            worker = self.executor.submit(key, loaded.ref)
            self.manifest.mark_running(key, self.job, self.run_id, worker)
            self.tally.move(QUEUED, RUNNING)

    def _fail(self, key: str, error: str, timings: dict, worker: str, old: str = RUNNING) -> None:
        self.manifest.mark_failed(key, self.job, error, timings=timings, worker=worker)
        self.tally.move(old, FAILED)
        self.active.discard(key)

    def _collect(self, outcome) -> None:
        """Record what came back for one series: written to the sink, failed, or queued again after a crash."""
        key, item, job = outcome.key, self.by_key[outcome.key], self.job
        if outcome.reply is None:  # the worker died under it: again, up to the bound
            attempts = self.manifest.attempts(key, job)
            if attempts <= self.options.retries:
                self.manifest.requeue(key, job, outcome.crashed)
                self.prefetch.add(item)
                self.tally.move(RUNNING, QUEUED)
            else:
                self._fail(key, f"{outcome.crashed} (tried {attempts} times)", {}, "")
            return
        reply = outcome.reply
        timings = {**reply.get("timings", {}), "load": self.load_seconds.get(key, 0.0),
                   "roundtrip": outcome.roundtrip}
        if reply["state"] == FAILED:
            self._fail(key, reply["error"], timings, reply.get("worker") or "")
            return
        outputs: dict = {}
        if reply["state"] == DONE:
            started = time.perf_counter()
            try:
                outputs = self.sink.write(item, reply["files"], _record(item, job, self.models, reply))
            except (OSError, ValueError) as error:
                self._fail(key, f"cannot write the results: {_one_line(error)}", timings, reply.get("worker") or "")
                return
            timings["send"] = time.perf_counter() - started
        timings["total"] = timings["load"] + outcome.roundtrip + timings.get("send", 0.0)
        for stage in ("load", "infer", "export", "send", "worker", "roundtrip", "total"):
            if stage in timings:
                self.stats.setdefault(stage, []).append(float(timings[stage]))
        self.manifest.mark_done(key, job, state=reply["state"], timings=timings, device=reply.get("device", ""),
                                worker=reply.get("worker", ""), outputs=outputs, messages=reply.get("messages", []),
                                error=reply.get("error", "") if reply["state"] == SKIPPED else "")
        self.tally.move(RUNNING, reply["state"])
        self.active.discard(key)

    def _summary(self, started: float, startup_s: float, described: list) -> dict:
        now = time.perf_counter()
        seconds, steady = now - started, now - self.loop_started
        tally, executor = self.tally, self.executor
        failures = [{"series_key": r.series_key, "error": r.error} for r in self.manifest.rows(self.job)
                    if r.state == FAILED]
        address = self.options.address or "local Ray"
        return {
            "job": self.job, "models": self.models, "manifest": self.manifest.counts(self.job), "failures": failures,
            "manifest_path": str(self.manifest.path), "sink": self.sink.describe(),
            "run": {"counts": dict(tally.counts), "finished": tally.finished, "seconds": round(seconds, 2),
                    "per_minute": round(60.0 * tally.finished / seconds, 3) if seconds > 0 else 0.0,
                    "startup_s": round(startup_s, 2), "steady_s": round(steady, 2),
                    "steady_per_minute": round(60.0 * tally.finished / steady, 3) if steady > 0 else 0.0,
                    "workers": executor.workers, "address": address,
                    "worker_info": described,
                    "mean_seconds": {k: round(sum(v) / len(v), 3) for k, v in self.stats.items() if v}},
        }


def _record(item, job: str, models: list[dict], reply: dict) -> dict:
    """``batch.json``: what made the series' results, for the app (model names and the time) and for people."""
    from viewer import __version__

    now = datetime.datetime.now(datetime.UTC)
    ran = {m["model"] for m in reply["models"]}
    return {"series_uid": item.series_uid, "study_uid": item.study_uid, "series_key": item.key, "job": job,
            "created": now.isoformat(timespec="seconds"), "hounsfield": __version__,
            "device": reply.get("device", ""), "worker": reply.get("worker", ""),
            "models": [m for m in models if m["id"] in ran], "results": reply["models"],
            "messages": reply.get("messages", [])}


def default_sink_folder() -> Path:
    """Where ``hounsfield batch`` writes when no ``--out`` is given, and where the app looks for results unless
    the user chose another folder: ``<user data>/batch-results``."""
    from inference.registry import user_data_dir

    return user_data_dir() / "batch-results"
