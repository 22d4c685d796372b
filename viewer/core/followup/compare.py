"""Headless prior comparison, the glue behind ``hounsfield compare PRIOR CURRENT``: load both series, register
the current to the prior, and, where findings are at hand (a detection model run on both, or findings files),
match them and report growth.

The result (``compare_studies``) is JSON-ready::

    {"prior": {"series_uid", "study_uid", "study_date"}, "current": {...}, "days": 365,
     "transform": Registration.to_json(),          # current LPS mm -> prior LPS mm
     "findings_source": "model <id>" | "files" | null,
     "nodules": [follow_up record, ...] | null,    # see viewer.core.followup.matching.follow_up
     "summary": {"matched", "new", "resolved", "growing"} | null,
     "timings": {"load", "register", "model", "total"}}

Nothing about the patient (names, IDs) is returned.
"""
from __future__ import annotations

import datetime
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viewer.core.followup.matching import FollowUpError, follow_up
from viewer.core.followup.registration import RegistrationOptions, register
from viewer.core.jobs import run_job
from viewer.core.volume import Volume


@dataclass
class LoadedStudy:
    """One side of a comparison: the volume, its series (None for a volume handed in) and its StudyDate."""

    volume: Volume
    series: Any = None
    study_date: str = ""

    def to_json(self) -> dict:
        """UIDs and date only."""
        return {"series_uid": self.volume.series_uid, "study_uid": self.volume.study_uid,
                "study_date": self.study_date or None}


def load_study(path: str | os.PathLike, series_uid: str | None = None, cancel: Any = None) -> LoadedStudy:
    """Scan ``path``, pick its image series (or ``series_uid``), load it; raises ``InferError`` if ambiguous."""
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan
    from viewer.core.run_model import pick_series

    series = pick_series(scan([path]), series_uid)
    volume = load_series(series, cancel)
    date = next((i.study_date for i in series.instances if i.study_date), "")
    return LoadedStudy(volume, series, date)


def days_between(prior_date: str, current_date: str) -> int | None:
    """Days from the prior's StudyDate to the current's (DICOM ``YYYYMMDD``); None when either is missing/bad."""
    try:
        then = datetime.datetime.strptime(prior_date.strip()[:8], "%Y%m%d").date()
        now = datetime.datetime.strptime(current_date.strip()[:8], "%Y%m%d").date()
    except (ValueError, AttributeError):
        return None
    return (now - then).days


def model_findings(study: LoadedStudy, model_id: Any, out_dir: str | os.PathLike, *, device: str | None = None,
                   cancel: Any = None, progress: Callable[[Any], None] | None = None, min_score: float | None = None,
                   **infer: Any) -> list[dict]:
    """Run detection model ``model_id`` (registry id, folder, or a loaded bundle) on a loaded study
    (``infer_to_dir``, as ``hounsfield infer``) and return its findings (``findings.json`` in ``out_dir``) scoring
    at least ``min_score`` - by default the model's operating point (what the viewer shows), so candidates far
    below it do not become "new" nodules."""
    from inference.bundle import LoadedBundle
    from inference.registry import ModelInfo, find_model
    from viewer.core.export.findings import read_findings
    from viewer.core.run_model import InferError, infer_to_dir

    if min_score is None:
        info = (model_id.info if isinstance(model_id, LoadedBundle)
                else model_id if isinstance(model_id, ModelInfo) else find_model(model_id))
        min_score = getattr(info, "operating_point", None) or 0.0
    done = infer_to_dir(study.volume, model_id, out_dir, device=device, progress=progress, cancel=cancel,
                        body_part=_body_part(study), min_score=min_score, **infer)
    if done["task"] != "detection":
        raise InferError(f"{done['model']} is a {done['task']} model; compare needs a detection model")
    return read_findings(done["outputs"]["detection"])["findings"]


def _body_part(study: LoadedStudy) -> str:
    from viewer.core.run_model import body_part_of

    return body_part_of(study.series)


def compare_studies(prior: str | os.PathLike | LoadedStudy, current: str | os.PathLike | LoadedStudy, *,
                    model: Any = None, prior_findings: list[dict] | None = None,
                    current_findings: list[dict] | None = None, options: RegistrationOptions | None = None,
                    cache: Any = None, device: str | None = None, out_dir: str | os.PathLike | None = None,
                    days: int | None = None, cancel: Any = None, progress: Callable[[Any], None] | None = None,
                    **limits: float) -> dict[str, Any]:
    """Compare a current study with its prior (see the module notes for the result).

    Parameters
    ----------
    prior, current
        DICOM folders/files (one image series each) or :class:`LoadedStudy`.
    model
        A detection model (registry id, folder): run on both series, its findings matched.
    prior_findings, current_findings
        Findings lists (``findings.json``'s ``findings``) to match instead of running a model.
    options, cache
        Registration options and :class:`~viewer.core.followup.cache.RegistrationCache`.
    out_dir
        Where the model runs write their outputs (``prior/``, ``current/``); a temporary folder when None.
    days
        Days between the studies; from the StudyDates when None.
    limits
        ``max_distance_mm`` / ``size_factor`` of :func:`~viewer.core.followup.matching.match_findings`.

    Raises
    ------
    FollowUpError
        When findings are to be matched and the studies are not at least a day apart (or undated).
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    if (prior_findings is None) != (current_findings is None):
        raise FollowUpError("give findings for both studies, or for neither")
    start = time.perf_counter()
    before = prior if isinstance(prior, LoadedStudy) else load_study(prior, cancel=cancel)
    after = current if isinstance(current, LoadedStudy) else load_study(current, cancel=cancel)
    timings["load"] = time.perf_counter() - start
    if days is None:
        days = days_between(before.study_date, after.study_date)
    matching = model is not None or prior_findings is not None
    if matching and (days is None or days <= 0):
        # checked before the slow steps: a doubling time needs time between the studies
        raise FollowUpError("the current study must be at least one day after the prior to measure growth "
                            f"(StudyDates {before.study_date or '?'} -> {after.study_date or '?'}, days={days})")

    start = time.perf_counter()
    registration = run_job(register(before.volume, after.volume, options=options, cancel=cancel, cache=cache),
                           progress)
    timings["register"] = time.perf_counter() - start

    source = None
    if model is not None:
        from inference.task import load_model

        start = time.perf_counter()
        bundle = run_job(load_model(model, device=device, cancel=cancel), progress)  # once for both series
        with tempfile.TemporaryDirectory(prefix="hounsfield-compare-") as tmp:
            base = Path(out_dir) if out_dir is not None else Path(tmp)
            prior_findings = model_findings(before, bundle, base / "prior", cancel=cancel, progress=progress)
            current_findings = model_findings(after, bundle, base / "current", cancel=cancel, progress=progress)
        timings["model"] = time.perf_counter() - start
        source = f"model {model}"
    elif prior_findings is not None:
        source = "files"

    nodules = None
    summary = None
    if prior_findings is not None and current_findings is not None:
        assert days is not None  # checked above
        nodules = follow_up(prior_findings, current_findings, registration, days, **limits)
        summary = summarize(nodules)
    timings["total"] = time.perf_counter() - started
    return {"prior": before.to_json(), "current": after.to_json(), "days": days,
            "transform": registration.to_json(), "findings_source": source, "nodules": nodules,
            "summary": summary, "timings": {k: round(v, 3) for k, v in timings.items()}}


def summarize(nodules: list[dict[str, Any]]) -> dict[str, int]:
    """How many nodules are matched, new, resolved and growing."""
    summary = {status: sum(1 for n in nodules if n["status"] == status) for status in ("matched", "new", "resolved")}
    summary["growing"] = sum(1 for n in nodules if n.get("vdt_note") == "growing")
    return summary


def follow_up_any_interval(prior_findings: list[dict], current_findings: list[dict], registration: Any,
                           days: int | None, **limits: float) -> list[dict[str, Any]]:
    """:func:`~viewer.core.followup.matching.follow_up`, also for studies without a known interval (undated, or
    the same day: the viewer compares any two series). Then the pairs and their growth % are still given, but no
    doubling time: ``vdt_days`` None with ``vdt_note`` ``"no interval"``."""
    if days is not None and days > 0:
        return follow_up(prior_findings, current_findings, registration, days, **limits)
    nodules = follow_up(prior_findings, current_findings, registration, 1.0, **limits)
    for n in nodules:
        if n["status"] == "matched":
            n.update(vdt_days=None, vdt_note="no interval")
    return nodules


def format_comparison(result: dict[str, Any]) -> list[str]:
    """Human lines of a :func:`compare_studies` result (the CLI's default output)."""
    t = result["transform"]
    lines = [f"days between studies: {result['days'] if result['days'] is not None else 'unknown'}",
             f"transform ({t['kind']}, {t['direction']}): translation "
             + ", ".join(f"{v:+.1f}" for v in t["translation_mm"]) + " mm (L, P, S), rotation "
             + f"{t['rotation_deg']:.2f} deg (x, y, z: " + ", ".join(f"{v:+.2f}" for v in t["angles_deg_xyz"])
             + f"), {t['seconds']:.1f} s" + (" (cached)" if t["cached"] else "")]
    if result["nodules"] is None:
        return lines
    s = result["summary"]
    lines.append(f"nodules ({result['findings_source']}): {s['matched']} matched, {s['new']} new, "
                 f"{s['resolved']} resolved, {s['growing']} growing")
    for n in result["nodules"]:
        v0, v1 = n["volume_mm3"]
        d0, d1 = n["diameter_mm"]
        size = f"{_num(d0)} -> {_num(d1)} mm, {_num(v0)} -> {_num(v1)} mm3"
        if n["status"] == "matched":
            vdt = f"VDT {n['vdt_days']:.0f} d" if n.get("vdt_days") else n.get("vdt_note", "")
            growth = "" if n.get("growth_pct") is None else f", {n['growth_pct']:+.0f} %"
            lines.append(f"  matched #{n['prior_index']} -> #{n['current_index']} ({n['distance_mm']:.1f} mm apart): "
                         f"{size}{growth}, {vdt}")
        else:
            index = n["prior_index"] if n["status"] == "resolved" else n["current_index"]
            lines.append(f"  {n['status']} #{index}: {size}")
    return lines


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.0f}" if float(value) >= 100 else f"{float(value):.1f}"
