"""What a batch shows while it runs and when it ends: one live line of counts per state with the throughput, then a
summary table. Plain text, no patient data (series are named by UID only in the list of failures)."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from viewer.services.batch.manifest import DONE, FAILED, QUEUED, RUNNING, SKIPPED


@dataclass
class Tally:
    """Counts of this run by state, and when it started (for series per minute)."""

    counts: dict[str, int] = field(default_factory=lambda: {QUEUED: 0, RUNNING: 0, DONE: 0, FAILED: 0, SKIPPED: 0})
    started: float = field(default_factory=time.perf_counter)
    #: When the first series finished (throughput is measured from there once workers are warm).
    first_done: float | None = None

    def move(self, old: str | None, new: str) -> None:
        """A series went from ``old`` (None: newly queued) to ``new``."""
        if old is not None:
            self.counts[old] -= 1
        self.counts[new] += 1
        if new in (DONE, SKIPPED, FAILED) and self.first_done is None:
            self.first_done = time.perf_counter()

    @property
    def finished(self) -> int:
        """Series finished this run, whatever the outcome."""
        return self.counts[DONE] + self.counts[FAILED] + self.counts[SKIPPED]

    def per_minute(self) -> float:
        """Series finished per minute since the run started (0 before the first)."""
        elapsed = time.perf_counter() - self.started
        return 60.0 * self.finished / elapsed if elapsed > 0 and self.finished else 0.0

    def line(self) -> str:
        """``queued 4 | running 2 | done 3 | failed 0 | skipped 0 | 2.4 series/min``."""
        parts = [f"{state} {self.counts[state]}" for state in (QUEUED, RUNNING, DONE, FAILED, SKIPPED)]
        return " | ".join(parts) + f" | {self.per_minute():.1f} series/min"


class LiveLine:
    """Shows :meth:`Tally.line`: on a terminal one line rewritten in place (``\\r``) at most every ``interval``
    seconds; elsewhere (a log file, CI) a new line only when the counts change, so a log stays readable."""

    def __init__(self, write: Callable[[str], None], interval: float = 0.5, terminal: bool = True) -> None:
        self._write = write
        self._interval = interval
        self._terminal = terminal
        self._last = 0.0
        self._width = 0
        self._counts: dict[str, int] = {}

    def update(self, tally: Tally, force: bool = False) -> None:
        """Show the tally now when forced, or when it is due (see the class)."""
        if not self._terminal:
            if force or tally.counts != self._counts:
                self._counts = dict(tally.counts)
                self._write(tally.line() + "\n")
            return
        now = time.perf_counter()
        if force or now - self._last >= self._interval:
            self._last = now
            text = tally.line()
            self._write("\r" + text.ljust(self._width))  # blanks out the rest of a longer earlier line
            self._width = len(text)

    def close(self) -> None:
        """End the live line (a terminal's cursor goes to the next line)."""
        if self._terminal and self._width:
            self._write("\n")


def summary_lines(summary: dict) -> list[str]:
    """The table printed at the end of ``hounsfield batch`` (see :func:`viewer.services.batch.run.run_batch`)."""
    counts, run = summary["manifest"], summary["run"]
    lines = [f"{'state':<9}{'this run':>9}{'all runs':>10}"]
    for state in (DONE, SKIPPED, FAILED, QUEUED, RUNNING):
        lines.append(f"{state:<9}{run['counts'].get(state, 0):>9}{counts.get(state, 0):>10}")
    lines.append(f"{run['finished']} series in {run['seconds']:.1f} s: {run['per_minute']:.2f} series/min with "
                 f"{run['workers']} worker(s) ({run['address']})")
    stages = run.get("mean_seconds") or {}
    if stages:
        lines.append("mean per series: " + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()))
    for failure in summary.get("failures", []):
        lines.append(f"failed {failure['series_key']}: {failure['error']}")
    return lines
