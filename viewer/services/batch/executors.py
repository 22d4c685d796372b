"""How a batch runs its workers: on Ray (a local runtime or a cluster, the same code), or inline for a plain loop.

Both executors hand a :class:`~viewer.services.batch.sources.LoadedSeries` to a
:class:`~viewer.services.batch.worker.ModelWorker` and give back what it replied, or that the worker died under
it. The driver (:mod:`viewer.services.batch.run`) does the rest - loading, the manifest, the sink - the same
way for both, so the benchmark's plain loop differs from a Ray run only in what Ray itself adds.

Ray's local runtime listens on loopback only (:func:`start_local_ray`); a cluster is reached at the address the
user gave (``ray://host:10001`` for Ray Client, ``host:6379`` or ``auto`` from a cluster node).
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Local runtime: object store size unless asked otherwise (two LIDC-sized volumes in flight per worker fit).
DEFAULT_OBJECT_STORE_MB = 500


class ExecutorError(RuntimeError):
    """The workers could not be started (Ray missing, no cluster at the address, a model that fails to load)."""


@dataclass
class Outcome:
    """What came back for one series: the worker's ``reply`` dict, or ``crashed`` with the reason."""

    key: str
    reply: dict | None
    crashed: str = ""
    roundtrip: float = 0.0


class InlineExecutor:
    """One worker in this process, run synchronously: the plain loop (and ``--address inline``, no Ray needed)."""

    name = "inline"

    def __init__(self, make_worker: Callable[[], Any]) -> None:
        self._make_worker = make_worker
        self.worker: Any = None
        self._done: list[Outcome] = []
        self.workers = 1

    def start(self) -> list[dict]:
        """Load the models; returns the worker's description."""
        self.worker = self._make_worker()
        return [self.worker.describe()]

    def put(self, loaded):
        """Nothing to transfer in-process."""
        return loaded

    def has_idle(self) -> bool:
        """The single worker is always free between calls (each call runs to the end)."""
        return True

    def submit(self, key: str, loaded) -> str:
        """Run the series now; the outcome is collected by the next :meth:`wait`."""
        started = time.perf_counter()
        reply = self.worker.process(loaded)
        self._done.append(Outcome(key, reply, roundtrip=time.perf_counter() - started))
        return self.worker.name

    def in_flight(self) -> int:
        """Series submitted and not collected."""
        return len(self._done)

    def wait(self, timeout: float) -> list[Outcome]:
        """Everything finished since the last call."""
        done, self._done = self._done, []
        return done

    def shutdown(self) -> None:
        """Drop the worker (and its models)."""
        self.worker = None


def _ray():
    try:
        import ray
    except ImportError:
        raise ExecutorError("Ray is not installed: pip install 'hounsfield[batch]' (or run with --address inline "
                            "for a plain loop in this process)") from None
    return ray


def start_local_ray(num_cpus: float, num_gpus: float | None = None,
                    object_store_mb: int = DEFAULT_OBJECT_STORE_MB) -> None:
    """Start a Ray runtime on this machine, reachable on loopback only, without the dashboard.

    Ray binds its servers to the node's address, and takes the machine's outward address for a node even when
    asked for 127.0.0.1 unless clustering is off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read at import and by
    the processes ``ray.init`` starts, which inherit this environment): with it off, every server of the runtime
    listens on 127.0.0.1. The workers also inherit ``PYTHONPATH`` with the folder this code is imported from, so
    they run the same ``viewer``/``inference`` as the driver (a source checkout beside an installed copy).
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    code_root = str(Path(__file__).resolve().parents[3])
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if code_root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([code_root, *paths])
    ray = _ray()
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # in case ray was imported before the variable was set
    import logging

    ray.init(num_cpus=max(1, math.ceil(num_cpus)), num_gpus=num_gpus, object_store_memory=object_store_mb << 20,
             include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             logging_level=logging.WARNING, namespace="hounsfield-batch")


class RaySession:
    """Ray for one batch: connects to ``address`` or starts a local runtime, and shuts down only what it started.

    Parameters
    ----------
    address
        None: a local runtime (:func:`start_local_ray`); ``auto``, ``host:port`` or ``ray://host:port``: a cluster.
        When Ray is already initialised in this process (tests, notebooks) it is used as it is.
    """

    def __init__(self, address: str | None, num_cpus: float, num_gpus: float | None = None,
                 object_store_mb: int = DEFAULT_OBJECT_STORE_MB) -> None:
        self.address = address
        self.num_cpus, self.num_gpus, self.object_store_mb = num_cpus, num_gpus, object_store_mb
        self.started = False
        self.seconds = 0.0
        self.ray: Any = None

    def __enter__(self) -> RaySession:
        ray = self.ray = _ray()
        started = time.perf_counter()
        if not ray.is_initialized():
            try:
                if self.address:
                    ray.init(address=self.address, log_to_driver=False, namespace="hounsfield-batch")
                else:
                    start_local_ray(self.num_cpus, self.num_gpus, self.object_store_mb)
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise ExecutorError(f"cannot start or reach Ray ({self.address or 'local'}): {error}") from None
            self.started = True
        self.seconds = time.perf_counter() - started
        return self

    def describe(self) -> str:
        """``local`` or the cluster address, for the summary."""
        return self.address or "local Ray"

    def resources(self) -> dict:
        """The cluster's total resources (``CPU``, ``GPU``...)."""
        return dict(_ray().cluster_resources())

    def __exit__(self, *_exc) -> None:
        if self.started:
            _ray().shutdown()


#: Errors that mean the worker process (or its node) died under a call, not that the series failed.
def _crash_types(ray) -> tuple[type[BaseException], ...]:
    from ray import exceptions

    names = ("RayActorError", "ActorDiedError", "ActorUnavailableError", "WorkerCrashedError", "ObjectLostError",
             "OwnerDiedError", "NodeDiedError", "LocalRayletDiedError")
    return tuple(getattr(exceptions, n) for n in names if hasattr(exceptions, n))


class RayExecutor:
    """``workers`` Ray actors of ``worker_class``, each with one series in flight at a time.

    Parameters
    ----------
    worker_class
        :class:`~viewer.services.batch.worker.ModelWorker` (or a subclass: tests inject faults this way).
    worker_args
        Its constructor's keyword arguments.
    workers, cpus_per_worker, gpus_per_worker
        How many actors, and the resources each reserves (a fraction of a GPU lets several share one).
    """

    name = "ray"

    def __init__(self, worker_class: type, worker_args: dict, workers: int, cpus_per_worker: float = 1.0,
                 gpus_per_worker: float = 0.0) -> None:
        self.ray = _ray()
        self._crashes = _crash_types(self.ray)
        self._actor_class = self.ray.remote(worker_class).options(
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=0, max_task_retries=0)
        self._worker_args = worker_args
        self.workers = workers
        self._idle: list = []
        self._names: dict = {}
        self._in_flight: dict = {}  # ObjectRef -> (actor, key, submitted at)

    def _new_actor(self):
        return self._actor_class.remote(**self._worker_args)

    def start(self) -> list[dict]:
        """Start the actors and wait until each has loaded its models; returns their descriptions."""
        actors = [self._new_actor() for _ in range(self.workers)]
        try:
            described = self.ray.get([a.describe.remote() for a in actors])
        except Exception as error:  # noqa: BLE001 - a model that fails to load (or no resources) ends the run
            raise ExecutorError(f"the workers could not start: {_reason(error)}") from None
        for actor, info in zip(actors, described):
            self._names[actor] = info["worker"]
            self._idle.append(actor)
        return described

    def put(self, loaded):
        """Into the object store once: the worker reads the volume's array from shared memory, without a copy."""
        return self.ray.put(loaded)

    def has_idle(self) -> bool:
        """Some actor has nothing in flight."""
        return bool(self._idle)

    def in_flight(self) -> int:
        """Series handed out and not back yet."""
        return len(self._in_flight)

    def submit(self, key: str, loaded_ref) -> str:
        """Hand a series to an idle actor; returns the worker's name."""
        actor = self._idle.pop()
        ref = actor.process.remote(loaded_ref)
        self._in_flight[ref] = (actor, key, time.perf_counter())
        return self._names.get(actor, "")

    def wait(self, timeout: float) -> list[Outcome]:
        """The series that came back within ``timeout`` seconds (a dead actor is replaced by a fresh one)."""
        if not self._in_flight:
            return []
        ready, _ = self.ray.wait(list(self._in_flight), num_returns=len(self._in_flight), timeout=timeout)
        outcomes = []
        for ref in ready:
            actor, key, submitted = self._in_flight.pop(ref)
            roundtrip = time.perf_counter() - submitted
            try:
                reply = self.ray.get(ref)
            except self._crashes as error:
                outcomes.append(Outcome(key, None, f"worker died: {_reason(error)}", roundtrip))
                self._replace(actor)
                continue
            except Exception as error:  # noqa: BLE001 - the worker raised (it should not): this series failed
                reply = {"state": "failed", "error": _reason(error), "files": {}, "worker": self._names.get(actor)}
            outcomes.append(Outcome(key, reply, roundtrip=roundtrip))
            self._idle.append(actor)
        return outcomes

    def _replace(self, dead) -> None:
        """A fresh actor in place of one that died (it loads its models before its first series runs)."""
        name = self._names.pop(dead, "")
        try:
            self.ray.kill(dead, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        actor = self._new_actor()
        self._names[actor] = f"{name} (replacement)" if name else "replacement"
        self._idle.append(actor)

    def shutdown(self) -> None:
        """Stop the actors (the runtime itself is the session's)."""
        for actor in [*self._idle, *(a for a, _, _ in self._in_flight.values())]:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._idle.clear()
        self._in_flight.clear()


def _reason(error: BaseException) -> str:
    """A one-line reason from a Ray error (its first line; Ray's messages carry the remote traceback after it)."""
    text = str(error).strip().splitlines()
    first = next((line for line in text if line.strip()), "")
    return f"{type(error).__name__}: {first}"[:300]
