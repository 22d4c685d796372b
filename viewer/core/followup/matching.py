"""Nodule follow-up: findings of a prior and a current study matched through the registration, with growth.

Findings are plain dicts as in ``findings.json`` (:mod:`viewer.core.export.findings`: ``center_lps`` and, from the
built-in detector, ``volume_mm3``, ``mean_diameter_mm``, ``long_axis_mm``) or as in a sample's ground-truth
``nodules.json`` (``center_lps``, ``volume_mm3``, ``diameter_mm``). Current centres are mapped into the prior's
LPS (``Registration.to_prior``) and paired by the Hungarian method on distance; a pair further apart than the
limit is no pair: the current one is ``new``, the prior one ``resolved``. The assignment is
:func:`linear_sum_assignment` here (scipy's would do the same, but scipy is not a dependency of the app and a
few dozen findings need no more than this O(n^3) loop).

Volume doubling time: ``VDT = days * ln 2 / ln(V_now / V_then)``. It is reported only for growth; a nodule whose
volume did not change or shrank has ``vdt_days`` None and ``vdt_note`` ``"no growth"`` or ``"shrinking"`` (its
doubling time would be infinite or negative).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_DISTANCE_MM = 15.0
"""Two findings further apart than this (after registration) are not the same nodule..."""
SIZE_FACTOR = 0.5
"""...unless half the larger diameter is more: a 40 mm mass may have its centre move more than a 5 mm nodule."""


class FollowUpError(ValueError):
    """A follow-up cannot be computed as asked (e.g. both studies on the same day); the message says why."""


def linear_sum_assignment(cost) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a minimum-cost assignment of a rectangular cost matrix (the Hungarian method with
    potentials, O(n^2 m)); as ``scipy.optimize.linear_sum_assignment``: ``min(n, m)`` pairs, rows ascending."""
    cost = np.asarray(cost, float)
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:
        cost = cost.T
    n, m = cost.shape
    if n == 0:
        return np.zeros(0, int), np.zeros(0, int)
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    owner = np.zeros(m + 1, int)  # owner[j]: the row (1-based) assigned to column j; column 0 is the free root
    way = np.zeros(m + 1, int)
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:  # grow an alternating tree from row i until it reaches a free column
            used[j0] = True
            i0 = owner[j0]
            free = ~used[1:]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[owner[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    cols = np.flatnonzero(owner[1:])
    rows = owner[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows)
    return rows[order], cols[order]


def _diameter(finding: dict) -> float | None:
    for key in ("mean_diameter_mm", "diameter_mm", "long_axis_mm"):
        value = finding.get(key)
        if value is not None:
            return float(value)
    return None


def growth(volume_then: float | None, volume_now: float | None, days: float) -> dict[str, Any]:
    """Growth of one nodule between two studies ``days`` apart.

    Returns
    -------
    dict
        ``growth_pct`` (volume change, %), ``vdt_days`` (None unless it grew) and ``vdt_note`` (``"growing"``,
        ``"no growth"``, ``"shrinking"``, or ``"no volume"`` when either volume is unknown).

    Raises
    ------
    FollowUpError
        When ``days`` is not positive: a doubling time needs time between the studies.
    """
    if not days or days <= 0:
        raise FollowUpError(f"the studies are {days} days apart: a volume doubling time needs a later current study")
    if volume_then is None or volume_now is None or volume_then <= 0 or volume_now <= 0:
        return {"growth_pct": None, "vdt_days": None, "vdt_note": "no volume"}
    ratio = float(volume_now) / float(volume_then)
    record: dict[str, Any] = {"growth_pct": round(100.0 * (ratio - 1.0), 1)}
    if ratio > 1.0:
        record.update(vdt_days=round(days * math.log(2.0) / math.log(ratio), 1), vdt_note="growing")
    else:
        record.update(vdt_days=None, vdt_note="no growth" if ratio == 1.0 else "shrinking")
    return record


@dataclass(frozen=True)
class Match:
    """One nodule across the two studies: ``prior``/``current`` indices into the two lists (None: absent)."""

    prior: int | None
    current: int | None
    distance_mm: float | None = None

    @property
    def status(self) -> str:
        """``matched``, ``new`` or ``resolved``."""
        if self.prior is None:
            return "new"
        return "resolved" if self.current is None else "matched"


def match_findings(prior: list[dict], current: list[dict], registration: Any = None, *,
                   max_distance_mm: float = MAX_DISTANCE_MM, size_factor: float = SIZE_FACTOR) -> list[Match]:
    """Pair ``current`` findings with ``prior`` ones (Hungarian on distance after mapping into prior LPS).

    Parameters
    ----------
    prior, current
        Findings (dicts with ``center_lps``, and ``*diameter*`` for the size-scaled limit).
    registration
        A :class:`~viewer.core.followup.transform.Registration` (current -> prior); None: the same LPS.
    max_distance_mm, size_factor
        A pair is allowed up to ``max(max_distance_mm, size_factor * larger diameter)`` apart.

    Returns
    -------
    list of Match
        Matched pairs first (in prior order), then resolved prior findings, then new current ones.
    """
    if not prior or not current:
        return [Match(i, None) for i in range(len(prior))] + [Match(None, j) for j in range(len(current))]
    p = np.array([f["center_lps"] for f in prior], float).reshape(-1, 3)
    c = np.array([f["center_lps"] for f in current], float).reshape(-1, 3)
    if registration is not None:
        c = registration.to_prior(c)
    distance = np.linalg.norm(p[:, None, :] - c[None, :, :], axis=2)
    dp = np.array([_diameter(f) or 0.0 for f in prior])
    dc = np.array([_diameter(f) or 0.0 for f in current])
    limit = np.maximum(max_distance_mm, size_factor * np.maximum(dp[:, None], dc[None, :]))
    # pairs over the limit get a cost no allowed pair can reach, so they are chosen only when nothing else is left
    # (and then dropped): the assignment never trades an allowed pair for a forbidden one
    cost = np.where(distance <= limit, distance, 1e6 + distance)
    rows, cols = linear_sum_assignment(cost)
    matches = [Match(int(i), int(j), float(distance[i, j]))
               for i, j in zip(rows, cols) if distance[i, j] <= limit[i, j]]
    paired_p = {m.prior for m in matches}
    paired_c = {m.current for m in matches}
    return (sorted(matches, key=lambda m: m.prior or 0)
            + [Match(i, None) for i in range(len(prior)) if i not in paired_p]
            + [Match(None, j) for j in range(len(current)) if j not in paired_c])


def follow_up(prior: list[dict], current: list[dict], registration: Any, days: float, **limits: float
              ) -> list[dict[str, Any]]:
    """Matches with their measurements then and now and growth: the ``nodules`` of ``hounsfield compare --json``.

    Each record: ``status`` (matched / new / resolved), ``prior_index`` / ``current_index``, ``distance_mm``,
    ``center_lps`` ``[then, now]`` (each in its own study's LPS), ``volume_mm3`` and ``diameter_mm``
    ``[then, now]``, and for matched pairs :func:`growth` (``growth_pct``, ``vdt_days``, ``vdt_note``).

    Raises
    ------
    FollowUpError
        When a pair is matched and ``days`` is not positive.
    """
    records = []
    for m in match_findings(prior, current, registration, **limits):
        then = prior[m.prior] if m.prior is not None else None
        now = current[m.current] if m.current is not None else None
        record: dict[str, Any] = {
            "status": m.status, "prior_index": m.prior, "current_index": m.current,
            "distance_mm": None if m.distance_mm is None else round(m.distance_mm, 2),
            "center_lps": [None if f is None else [round(float(v), 2) for v in f["center_lps"]] for f in (then, now)],
            "volume_mm3": [None if f is None else f.get("volume_mm3") for f in (then, now)],
            "diameter_mm": [None if f is None else _diameter(f) for f in (then, now)],
        }
        if then is not None and now is not None:
            record.update(growth(then.get("volume_mm3"), now.get("volume_mm3"), days))
        records.append(record)
    return records
