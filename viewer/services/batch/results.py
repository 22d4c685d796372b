"""A series' batch results read back, for the app: a study opened after ``hounsfield batch`` ran on it shows what
the models found, labelled by model and time, without running them again.

The sink folder (:mod:`viewer.services.batch.sinks`) holds ``<study UID>/<series key>/batch.json`` and per model
its files; :func:`find_batch_results` lists what is there for a series and :func:`read_batch_result` turns one
model's files into the result the viewer draws (``seg.dcm`` -> :class:`~inference.types.SegResult`,
``findings.json`` -> :class:`~inference.types.Detections`) on the shown volume's grid. :func:`batch_results_job`
does both as a job for the GUI's worker pool.
"""
from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from viewer.core.jobs import Job, Progress
from viewer.services.batch.sinks import RECORD_NAME, safe_name

#: What each task's result file is called inside a model's folder (as ``hounsfield infer`` names them).
RESULT_FILES = {"segmentation": "seg.dcm", "detection": "findings.json"}


@dataclass(frozen=True)
class StoredResult:
    """One model's result of a series in a batch sink."""

    model_id: str
    model_name: str
    task: str
    path: Path
    created: float
    version: str = ""
    #: Where it was found, for the label: ``"batch"`` (a sink folder), ``"PACS"`` or ``"study"`` (a SEG / SR in the
    #: series' study, :mod:`viewer.services.batch.study_results`).
    origin: str = "batch"

    @property
    def label(self) -> str:
        """What the app calls it: the model's name, where the result was found and when it was made (local time)."""
        when = datetime.datetime.fromtimestamp(self.created).strftime("%Y-%m-%d %H:%M")
        return f"{self.model_name} ({self.origin} {when})"


def series_folder(root: str | os.PathLike, study_uid: str, series_key: str) -> Path:
    """Where a series' results are in the sink ``root``."""
    return Path(root) / safe_name(study_uid or "no-study") / safe_name(series_key)


def find_batch_results(root: str | os.PathLike, study_uid: str, series_key: str) -> list[StoredResult]:
    """The results a batch left for a series (empty when there are none or the record is unreadable).

    Only tasks the viewer can show come back (segmentation, detection), one per task - the last model of that task
    in the run, as a second model of a task replaces the first in the app.
    """
    folder = series_folder(root, study_uid, series_key)
    try:
        record = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
        created = datetime.datetime.fromisoformat(record["created"]).timestamp()
        models = list(record["models"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    found: dict[str, StoredResult] = {}
    for model in models:
        task = str(model.get("task", ""))
        name = RESULT_FILES.get(task)
        path = folder / safe_name(str(model.get("id", ""))) / name if name else None
        if path is not None and path.is_file():
            found[task] = StoredResult(str(model["id"]), str(model.get("name") or model["id"]), task, path, created,
                                       str(model.get("version", "")))
    return list(found.values())


def _model_table(model_id: str) -> dict:
    """The model's label table when it is installed here (names and colours), else empty."""
    from inference.registry import ModelNotFound, find_model

    try:
        return find_model(model_id).table
    except (ModelNotFound, OSError, ValueError):
        return {}


def _nodule_table() -> dict:
    from inference.types import label_table

    return label_table({1: "nodule"})


def read_batch_result(stored: StoredResult, volume) -> Any:
    """The stored result on ``volume``'s grid: a :class:`~inference.types.SegResult` or
    :class:`~inference.types.Detections`.

    Raises
    ------
    ValueError
        When the file does not belong to this volume (another series, another grid) or cannot be read.
    """
    if stored.task == "segmentation":
        return _read_segmentation(stored, volume)
    if stored.task == "detection" and stored.path.suffix.lower() != ".json":  # a findings SR of the study
        from viewer.services.batch.study_results import read_sr_detections

        return read_sr_detections(stored, volume, _model_table(stored.model_id) or _nodule_table())
    if stored.task == "detection":
        return _read_detections(stored, volume)
    raise ValueError(f"cannot show a stored {stored.task} result")


def _read_segmentation(stored: StoredResult, volume):
    from inference.types import SegResult, label_table
    from viewer.core.export.seg import read_seg_labels

    numbers, names = read_seg_labels(stored.path, volume.slice_sop_uids, tuple(volume.shape),
                                     volume.slice_frame_numbers or None)
    # The SEG numbers its segments 1..N; the model's own values (and colours) come back through the names.
    table = _model_table(stored.model_id)
    value_of = {label.name: value for value, label in table.items()}
    labels = np.zeros(numbers.shape, np.uint16)
    used = {}
    for number, name in names.items():
        value = value_of.get(name, number)
        labels[numbers == number] = value
        used[value] = name
    full = {v: table[v] for v in used if v in table}
    full.update({v: lab for v, lab in label_table({v: n for v, n in used.items() if v not in table}).items()})
    return SegResult(labels, volume.affine, full, stored.model_id)


def _read_detections(stored: StoredResult, volume):
    from inference.types import Detections
    from viewer.core.export.findings import MEASUREMENT_KEYS, read_findings

    doc = read_findings(stored.path)
    if doc["series_uid"] and volume.series_uid and doc["series_uid"] != volume.series_uid:
        raise ValueError("the findings belong to another series")
    table = _model_table(stored.model_id) or _nodule_table()
    value_of = {label.name: value for value, label in table.items()}
    findings = doc["findings"]
    centres = np.array([f["center_lps"] for f in findings], float).reshape(-1, 3)
    sizes = np.array([f["size_mm"] for f in findings], float).reshape(-1, 3)
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
    voxels = np.array([f["box_voxel"] for f in findings], int).reshape(-1, 6)
    nz, ny, nx = (int(s) for s in volume.shape)
    shape = (nz, ny, nx)
    if len(voxels) and (voxels[:, 3:] > np.array(shape)).any():
        raise ValueError("the findings' boxes lie outside this volume")
    measured = any(any(k in f for k in MEASUREMENT_KEYS) for f in findings)
    measurements: list[dict | None] | None = None
    if measured:
        measurements = [{k: f.get(k) for k in MEASUREMENT_KEYS} for f in findings]
    return Detections(boxes, voxels, np.array([f["score"] for f in findings], float),
                      np.array([value_of.get(f["label"], min(table)) for f in findings], int), volume.affine, shape,
                      table, stored.model_id, notes=list(doc.get("notes") or []), measurements=measurements)


def batch_results_job(root: str | os.PathLike | None, study_uid: str, series_key: str, volume,
                      stored: list[StoredResult] | None = None) -> Job:
    """Find and read a series' batch results (a job: yields progress, returns ``[(StoredResult, result)]``).
    ``stored``: read these instead of looking in ``root`` (results found in the study, or both).
    A result that cannot be read is left out (logged without patient data), never failing the others."""
    import logging

    if stored is None:
        stored = find_batch_results(root or "", study_uid, series_key)
    read = []
    for k, entry in enumerate(stored):
        yield Progress(k, len(stored), f"Reading the batch result of {entry.model_name}")
        try:
            read.append((entry, read_batch_result(entry, volume)))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            logging.getLogger(__name__).warning("batch result %s not shown: %s", entry.path, error)
    return read
