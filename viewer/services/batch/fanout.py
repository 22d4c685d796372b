"""Fan a function out over items as Ray tasks - how ``hounsfield evaluate --address`` scores a cohort's cases in
parallel on the same local runtime or cluster ``hounsfield batch`` uses (:class:`~viewer.services.batch.executors.
RaySession`)."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from viewer.services.batch.executors import RaySession

LOCAL = "local"


def ray_map(function: Callable[[Any], Any], items: Sequence[Any], *, address: str | None = None,
            workers: int | None = None, cpus_per_task: float = 1.0, gpus_per_task: float = 0.0) -> Iterator[Any]:
    """``function(item)`` for every item as Ray tasks; yields the results in item order as they become available.

    Parameters
    ----------
    function
        Picklable (a module-level function, or a ``functools.partial`` of one); it runs in a Ray worker.
    items
        Its arguments, one task each.
    address
        None or ``local``: a local runtime on loopback; else a cluster address (see :class:`RaySession`).
    workers
        Tasks at a time on a local runtime (default: its cores); on a cluster Ray schedules by the resources.
    cpus_per_task, gpus_per_task
        What each task reserves.

    Raises
    ------
    Exception
        The first task's error, as the function raised it (Ray re-raises it as the same class).
    """
    from inference.device import cpu_cores

    address = None if address in (None, LOCAL) else address
    local_cpus = (workers or cpu_cores()) * cpus_per_task
    with RaySession(address, local_cpus) as session:
        ray = session.ray
        # a task retried once when its worker process dies; an error the function raises is not retried
        task = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=1)(_apply)
        shipped = ray.put(function)  # once, not with every task
        refs = [task.remote(shipped, item) for item in items]
        for ref in refs:
            yield ray.get(ref)


def _apply(function: Callable[[Any], Any], item: Any) -> Any:
    """The Ray task: ``function(item)`` (Ray's decorator takes plain functions, not ``functools.partial``)."""
    return function(item)
