"""Model results stored as DICOM in the shown series' own study, for the app: a study retrieved from a PACS that
``hounsfield batch --out pacs:NODE`` (or ``hounsfield infer`` and a send) already ran on holds a SEG and a findings
SR; the app shows them, labelled by model and time, instead of asking to open the SEG or to run the models again.

Which objects are ours - model results, not a person's work - is read from what our exporters write:

- SEG (:func:`viewer.core.export.seg.build_seg`): Manufacturer ``Hounsfield``, ContentLabel ``AI_SEG`` and every
  segment AUTOMATIC with its algorithm identification (the model's name and version). A corrected result
  (SEMIAUTOMATIC) or an annotation saved from the editor (ContentLabel ``SEGMENTATION``) is the user's work and is
  left to the annotation's "open this SEG?" offer.
- SR (:func:`viewer.core.export.sr.build_measurement_report`): Manufacturer ``Hounsfield`` and only planar ROI groups
  that are a SCOORD3D point with a Diameter and an algorithm identification (the model's id). A report of the
  user's own measurements has other groups and is not taken.

:func:`find_study_results` lists them as :class:`~viewer.services.batch.results.StoredResult` (the newest per task),
which :func:`~viewer.services.batch.results.read_batch_result` reads onto the shown volume like a batch sink's
files: the SEG through the same SEG reader, the SR through :func:`read_sr_detections` here.
"""
from __future__ import annotations

import datetime
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from viewer.services.batch.results import StoredResult

#: ContentLabel of a model's SEG (:func:`viewer.core.export.seg.build_seg`'s default, as ``hounsfield infer`` writes).
MODEL_SEG_LABEL = "AI_SEG"
_ALGORITHM_NAME = "111001"  # DCM "Algorithm Name" (TID 4019)
_ALGORITHM_VERSION = "111003"  # DCM "Algorithm Version"


def _read(path: str | os.PathLike, pixels: bool = False):
    from viewer.core.dicom.limits import dcmread

    try:
        return dcmread(path, stop_before_pixels=not pixels, force=False)
    except Exception:  # noqa: BLE001 - a damaged file in the study is not ours to show, never a crash
        return None


def _created(ds, path: str | os.PathLike) -> float:
    """When the object was made (ContentDate/Time, else SeriesDate/Time, else the file's time), local time."""
    for date_key, time_key in (("ContentDate", "ContentTime"), ("SeriesDate", "SeriesTime")):
        date, clock = str(ds.get(date_key, "") or ""), str(ds.get(time_key, "") or "")
        try:
            return datetime.datetime.strptime(date + (clock.split(".")[0] + "000000")[:6], "%Y%m%d%H%M%S").timestamp()
        except ValueError:
            continue
    return os.path.getmtime(path)


def model_names(algorithm: str) -> tuple[str, str]:
    """``(model id, model name)`` of the model a file names by id (the SR) or by name (the SEG); the text itself
    for both when no installed model has it."""
    from inference.registry import ModelNotFound, find_model, list_models

    try:
        info = find_model(algorithm)
        return info.id, info.name
    except (ModelNotFound, OSError, ValueError):
        pass
    try:
        found = [info for info in list_models() if info.name == algorithm]
    except (OSError, ValueError):
        found = []
    return (found[0].id, found[0].name) if found else (algorithm, algorithm)


def model_seg(ds) -> tuple[str, str] | None:
    """``(algorithm name, version)`` when the SEG dataset is a model's unedited result written here, else None."""
    from viewer.core.export.seg import MANUFACTURER

    if ds is None or str(ds.get("Modality", "")) != "SEG" or str(ds.get("Manufacturer", "")) != MANUFACTURER:
        return None
    if str(ds.get("ContentLabel", "")) != MODEL_SEG_LABEL:
        return None
    found = set()
    for segment in ds.get("SegmentSequence") or []:
        algorithm = segment.get("SegmentationAlgorithmIdentificationSequence")
        if str(segment.get("SegmentAlgorithmType", "")) != "AUTOMATIC" or not algorithm:
            return None
        found.add((str(algorithm[0].get("AlgorithmName", "")), str(algorithm[0].get("AlgorithmVersion", ""))))
    return found.pop() if len(found) == 1 else None  # one model made the whole SEG


def is_model_seg(path: str | os.PathLike) -> bool:
    """Whether the file is a model's SEG that the app shows as a result (so the annotation does not offer it)."""
    return model_seg(_read(path)) is not None


def _algorithm(items) -> tuple[str, str]:
    """The first algorithm identification (name, version) in a content tree (empty strings when none)."""
    name = version = ""
    for item in items or []:
        seq = item.get("ConceptNameCodeSequence")
        code = str(seq[0].get("CodeValue", "")) if seq else ""
        if code == _ALGORITHM_NAME and not name:
            name = str(item.get("TextValue", ""))
        elif code == _ALGORITHM_VERSION and not version:
            version = str(item.get("TextValue", ""))
        elif not name:
            name, version = _algorithm(item.get("ContentSequence"))
        if name and version:  # the version follows the name in TID 4019
            break
    return name, version


def model_sr(ds) -> tuple[str, str] | None:
    """``(algorithm name, version)`` when the SR dataset holds only model findings written here, else None."""
    from viewer.core.export.seg import MANUFACTURER
    from viewer.core.export.sr_measurements import read_report

    if ds is None or str(ds.get("Modality", "")) != "SR" or str(ds.get("Manufacturer", "")) != MANUFACTURER:
        return None
    try:
        report = read_report(ds)
    except ValueError:
        return None
    points = [g for g in report.groups if g.region == "SCOORD3D" and g.graphic_type == "POINT"
              and g.value("Diameter") is not None]
    if not points or len(points) != len(report.groups):
        return None  # a person's measurements are in it: the user's report, not a model's
    name, version = _algorithm(ds.get("ContentSequence"))
    return (name, version) if name else None


def _entry(path: str, kind: str, origin: str) -> StoredResult | None:
    ds = _read(path, pixels=False)
    found = (model_seg if kind == "seg" else model_sr)(ds)
    if found is None:
        return None
    algorithm, version = found
    model_id, name = model_names(algorithm)
    task = "segmentation" if kind == "seg" else "detection"
    return StoredResult(model_id, name, task, Path(path), _created(ds, path), version, origin)


def result_series(series: Iterable, series_uid: str) -> list:
    """The SEG and SR series among ``series`` that reference the image series ``series_uid`` (no file is read)."""
    return [s for s in series if s.kind in ("seg", "sr") and series_uid in (s.references or []) and s.instances]


def find_study_results(series: Iterable, series_uid: str,
                       pacs_root: str | os.PathLike | None = None) -> list[StoredResult]:
    """The model results among a study's catalogued ``series`` (:class:`~viewer.core.dicom.model.Series`) that
    reference the image series ``series_uid``: the newest per task (segmentation, detection).

    A file under ``pacs_root`` (the PACS retrieve cache) is labelled ``PACS``, any other ``study``."""
    root = Path(pacs_root).resolve() if pacs_root else None
    newest: dict[str, StoredResult] = {}
    for s in result_series(series, series_uid):
        for instance in s.instances:
            under = root is not None and Path(instance.path).resolve().is_relative_to(root)
            entry = _entry(instance.path, s.kind, "PACS" if under else "study")
            if entry is not None and (entry.task not in newest or entry.created > newest[entry.task].created):
                newest[entry.task] = entry
    return list(newest.values())


def read_sr_detections(stored: StoredResult, volume, table: dict):
    """A findings SR's model findings on ``volume``'s grid as :class:`~inference.types.Detections`.

    The SR keeps each finding's centre (a 3D point), its diameter (the box's largest extent) and the detector's
    score, not the box itself: each box comes back as a cube of that diameter around the centre. Measurements
    (volume, axes, mean diameter, type, Lung-RADS) come back as findings.json would give them, where the SR has them.

    Raises
    ------
    ValueError
        When a finding's centre lies outside the volume (the SR belongs to another grid).
    """
    from inference.types import Detections
    from viewer.core.export.sr import read_measurements

    rows = [r for r in read_measurements(stored.path) if r["center_lps"] is not None and r["diameter_mm"]]
    rows.sort(key=lambda r: -float(r.get("score", 0.0)))
    centres = np.array([r["center_lps"] for r in rows], float).reshape(-1, 3)
    sizes = np.repeat(np.array([r["diameter_mm"] for r in rows], float).reshape(-1, 1), 3, axis=1)
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
    nz, ny, nx = (int(s) for s in volume.shape)
    shape = (nz, ny, nx)
    voxels = np.array([_voxel_box(box, volume.affine, shape) for box in boxes], int).reshape(-1, 6)
    # The SR has no score for findings a person added; 1.0 keeps them above any threshold.
    scores = np.array([float(r.get("score", 1.0)) for r in rows], float)
    value_of = {label.name: value for value, label in table.items()}
    labels = np.array([value_of.get(str(r["finding_type"] or "").lower(), min(table)) for r in rows], int)
    measurements: list[dict | None] | None = None
    if any("volume_mm3" in r for r in rows):
        measurements = [_measurement(r) for r in rows]
    return Detections(boxes, voxels, scores, labels, volume.affine, shape, table, stored.model_id,
                      measurements=measurements)


def _voxel_box(box_lps: np.ndarray, affine: np.ndarray, shape: tuple[int, ...]) -> list[int]:
    """The half-open ``(z0, y0, x0, z1, y1, x1)`` voxel range an LPS box covers (its 8 corners mapped)."""
    corners = np.array([[x, y, z] for x in box_lps[[0, 3]] for y in box_lps[[1, 4]] for z in box_lps[[2, 5]]])
    index = (np.linalg.inv(affine) @ np.c_[corners, np.ones(8)].T)[:3].T[:, ::-1]  # (x, y, z) -> (z, y, x)
    centre = (np.linalg.inv(affine) @ np.r_[(box_lps[:3] + box_lps[3:]) / 2, 1.0])[:3][::-1]
    if ((centre < -0.5) | (centre > np.array(shape) - 0.5)).any():
        raise ValueError("a finding of the SR lies outside this volume")
    low = np.clip(np.floor(index.min(axis=0) + 0.5), 0, np.array(shape) - 1).astype(int)
    high = np.clip(np.floor(index.max(axis=0) + 0.5) + 1, low + 1, np.array(shape)).astype(int)
    return [*low.tolist(), *high.tolist()]


#: Nodule types whose SR code meaning is a standard concept's, not ``"<Type> nodule"`` (see viewer.core.export.sr).
_TYPES = {"calcified": "calcified", "ground glass opacity": "ground-glass"}


def _measurement(row: dict) -> dict | None:
    """findings.json's measurement fields of one SR finding (None when it was not measured)."""
    if "volume_mm3" not in row:
        return None
    site = str(row.get("finding_site", "")).lower()
    zone = next((z for z in ("upper", "middle", "lower") if z in site), "")
    side = next((s for s in ("right", "left") if s in site), "")
    lung_rads = str(row.get("lung_rads", ""))
    kind = str(row.get("type", "")).lower()
    return {"volume_mm3": int(round(row["volume_mm3"])), "long_axis_mm": row.get("long_axis_mm"),
            "solid_component_mm": None,  # not in the SR
            "short_axis_mm": row.get("short_axis_mm"), "mean_diameter_mm": row.get("mean_diameter_mm"),
            "type": _TYPES.get(kind, kind.removesuffix(" nodule")) or None,
            "location": {"side": side, "zone": zone, "lobe_model": False} if site else None,
            "lung_rads": lung_rads.removeprefix("Lung-RADS v2022 ").split(" ")[0] or None}
