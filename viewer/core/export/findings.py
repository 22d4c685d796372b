"""Detections -> ``findings.json`` (the schema of issue 4), and back.

::

    {"model": "<id>", "series_uid": "<uid>",
     "findings": [{"label": "nodule", "score": 0.93, "center_lps": [x, y, z], "size_mm": [x, y, z],
                   "box_voxel": [z0, y0, x0, z1, y1, x1]}, ...],
     "notes": ["1 detection larger than the model's maximum finding size (40 mm) dropped ..."]}   # when any

A reviewed set (:class:`viewer.core.editing.review.FindingsReview`, :func:`review_dict`) adds per finding
``"status"`` (``pending`` / ``accepted`` / ``rejected``), ``"source"`` (``model`` / ``manual``) and ``"edited"``
(a person moved or resized the box); a finding added by hand has ``"score": null``.

Findings of the built-in nodule detector also carry the reader's measurements
(:mod:`inference.nodule_measurements`; ``null`` where the nodule could not be segmented): ``volume_mm3`` (int),
``long_axis_mm``, ``short_axis_mm``, ``mean_diameter_mm`` (axial, one decimal, Lung-RADS v2022), ``type``
(solid / part-solid / ground-glass / calcified), ``solid_component_mm`` (part-solid only), ``location``
(``{"side", "zone", "lobe_model": false}``) and ``lung_rads`` (suggested baseline category).

``center_lps`` / ``size_mm`` are the box centre and extents along L, P, S in mm; ``box_voxel`` is the half-open
voxel range on the series' volume grid (``(z, y, x)`` order, as the viewer's arrays). Findings are sorted by
score, highest first; nothing about the patient is written.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_KEYS = ("label", "score", "center_lps", "size_mm", "box_voxel")
MEASUREMENT_KEYS = ("volume_mm3", "long_axis_mm", "short_axis_mm", "mean_diameter_mm", "type", "solid_component_mm",
                    "location", "lung_rads")


def measurement_fields(measurement: dict | None) -> dict[str, Any]:
    """The findings.json measurement fields of one finding (all ``None`` when it was not measured)."""
    m = measurement or {}
    return {key: m.get(key) for key in MEASUREMENT_KEYS}
REVIEW_STATUSES = ("pending", "accepted", "rejected")


def findings_dict(detections, model_id: str, series_uid: str, min_score: float = 0.0) -> dict[str, Any]:
    """The findings document for ``detections`` (an ``inference.types.Detections``)."""
    order = np.argsort(-np.asarray(detections.scores), kind="stable")
    centers, sizes = detections.centers_lps, detections.sizes_mm
    findings = []
    for i in order:
        score = float(detections.scores[i])
        if score < min_score:
            continue
        value = int(detections.labels[i])
        label = detections.table[value].name if value in detections.table else f"label {value}"
        findings.append({
            "label": label,
            "score": round(score, 6),
            "center_lps": [round(float(c), 3) for c in centers[i]],
            "size_mm": [round(float(s), 3) for s in sizes[i]],
            "box_voxel": [int(v) for v in detections.boxes_voxel[i]],
        })
        if getattr(detections, "measurements", None) is not None:
            findings[-1].update(measurement_fields(detections.measurements[i]))
    doc = {"model": model_id, "series_uid": series_uid, "findings": findings}
    if getattr(detections, "notes", None):  # e.g. oversized detections the model dropped: say so in the file
        doc["notes"] = [str(n) for n in detections.notes]
    return doc


def write_findings(path: str | os.PathLike, detections, model_id: str, series_uid: str, min_score: float = 0.0
                   ) -> Path:
    """Write :func:`findings_dict` as pretty JSON (atomically); returns the path."""
    return _write_doc(path, findings_dict(detections, model_id, series_uid, min_score))


def review_dict(review, series_uid: str, model_id: str | None = None) -> dict[str, Any]:
    """The findings document of a :class:`~viewer.core.editing.review.FindingsReview`, with each finding's
    review ``status``, ``source`` and ``edited`` (model findings by score, then those added by hand)."""
    ordered = sorted(review.findings, key=lambda f: (f.score is None, -(f.score or 0.0), f.id))
    measured = any(getattr(f, "measurements", None) is not None for f in ordered)
    findings = []
    for f in ordered:
        findings.append({
            "label": f.label,
            "score": None if f.score is None else round(float(f.score), 6),
            "center_lps": [round(float(c), 3) for c in f.center_lps],
            "size_mm": [round(float(s), 3) for s in f.size_mm],
            "box_voxel": [int(v) for v in review.box_voxel(f)],
            "status": f.status, "source": f.source, "edited": bool(f.edited),
        })
        if measured:  # every finding gets the fields (null where not measured), as findings_dict does
            findings[-1].update(measurement_fields(getattr(f, "measurements", None)))
    return {"model": review.model_id if model_id is None else model_id, "series_uid": series_uid,
            "findings": findings}


def write_review(path: str | os.PathLike, review, series_uid: str, model_id: str | None = None) -> Path:
    """Write :func:`review_dict` as pretty JSON (atomically); returns the path."""
    return _write_doc(path, review_dict(review, series_uid, model_id))


def _write_doc(path: str | os.PathLike, doc: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    # One finding per line: readable, and diffs of two runs stay small.
    lines = [json.dumps(f) for f in doc["findings"]]
    body = ",\n  ".join(lines)
    notes = f',\n "notes": {json.dumps(doc["notes"])}' if doc.get("notes") else ""
    text = (f'{{"model": {json.dumps(doc["model"])}, "series_uid": {json.dumps(doc["series_uid"])},\n'
            f' "findings": [' + (f"\n  {body}\n ]" if lines else "]") + notes + "}\n")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def read_findings(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a findings document (raises ``ValueError`` when a key is missing)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not {"model", "series_uid", "findings"} <= set(data):
        raise ValueError("not a findings document (needs model, series_uid, findings)")
    for finding in data["findings"]:
        missing = [k for k in SCHEMA_KEYS if k not in finding]
        if missing:
            raise ValueError(f"finding without {', '.join(missing)}")
        if "status" in finding and finding["status"] not in REVIEW_STATUSES:
            raise ValueError(f"unknown finding status {finding['status']!r}")
    return data
