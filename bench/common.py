"""Timing helpers shared by the benchmarks."""
from __future__ import annotations

import time
from collections.abc import Callable


def warm_cache(paths: list[str]) -> None:
    """Read every byte once, so every timing after it sees the same (warm) page cache."""
    for path in paths:
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass


def best_of(fn: Callable[[], object], repeats: int = 3) -> tuple[float, object]:
    """Best wall time of ``repeats`` calls and the last result (dropped before each call, so volumes don't pile up)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        result = None
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result
