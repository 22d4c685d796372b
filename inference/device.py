"""Where models run: CUDA > Apple MPS > CPU (or what the user asks for), CPU threads that leave the GUI a core,
and falling back to the CPU when the GPU runs out of memory."""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def cpu_cores() -> int:
    """Cores this process may use (affinity-aware where the OS says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def inference_threads() -> int:
    """``max(1, cores - 1)``: torch's intra-op threads, leaving one core to the GUI thread."""
    return max(1, cpu_cores() - 1)


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count (default :func:`inference_threads`); returns it."""
    import torch

    threads = int(threads or inference_threads())
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def available_devices() -> list[str]:
    """Device kinds usable here, best first (always ends with ``cpu``)."""
    import torch

    kinds = []
    if torch.cuda.is_available():
        kinds.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        kinds.append("mps")
    kinds.append("cpu")
    return kinds


def choose_device(preference: str | None = None):
    """The torch device to run on.

    Parameters
    ----------
    preference
        ``None``/``"auto"`` for the best available (cuda > mps > cpu), or ``"cpu"``, ``"cuda"``, ``"cuda:1"``,
        ``"mps"``.

    Raises
    ------
    ValueError
        When the requested device is not available here (the message lists those that are).
    """
    import torch

    if preference in (None, "", "auto"):
        return torch.device(available_devices()[0])
    device = torch.device(preference)
    if device.type not in available_devices():
        raise ValueError(f"device '{preference}' is not available here (available: {', '.join(available_devices())})")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device '{preference}' does not exist ({torch.cuda.device_count()} CUDA device(s))")
    return device


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a GPU out-of-memory error (CUDA's own type, or the RuntimeError older builds and MPS raise)."""
    import torch

    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def run_with_cpu_fallback(step: Callable[[object], T], device, notify: Callable[[str], None] | None = None) -> T:
    """Run ``step(device)``; if a GPU runs out of memory, free its cache and run ``step(cpu)`` instead.

    ``notify`` receives a one-line message when falling back (shown in the GUI and printed by the CLI).
    Errors other than out-of-memory, and any error on the CPU, propagate.
    """
    import torch

    try:
        return step(device)
    except Exception as exc:  # noqa: BLE001 - filtered just below
        if getattr(device, "type", "cpu") == "cpu" or not is_out_of_memory(exc):
            raise
        if getattr(device, "type", "") == "cuda":
            torch.cuda.empty_cache()
        elif getattr(device, "type", "") == "mps" and hasattr(torch, "mps"):
            torch.mps.empty_cache()
        if notify is not None:
            notify(f"{device.type.upper()} ran out of memory; running on the CPU instead (slower)")
    return step(torch.device("cpu"))
