"""Measurements that survive a crash: each series' measurements written atomically, as JSON, whenever they change.

Layout: ``autosave_root()/measurements/<sha256(series UID)[:16]>.json`` (the same root and key as the annotation
autosave of :mod:`viewer.core.editing.autosave`, a folder of its own so discarding an annotation autosave leaves
the measurements). The file keeps what a :class:`~viewer.core.measure.Measurement` is made of - kind, plane, slice
and voxel-index points, plus its SR tracking UID - and the grid it was made on; numbers are recomputed on restore.
An empty list is written too (the user deleted them all): restoring it must not bring old ones back.
The explicit save is the DICOM SR (:mod:`viewer.core.export.sr_measurements`).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from viewer.core.editing.autosave import autosave_root, series_key, write_atomic
from viewer.core.measure import KINDS, Measurement, evaluate
from viewer.core.reformat import Plane, reformat

FORMAT = 1


def measurements_path(series_uid: str, root: str | os.PathLike | None = None) -> Path:
    """Where the measurements of a series are autosaved."""
    base = Path(root) if root is not None else autosave_root()
    return base / "measurements" / f"{series_key(series_uid)}.json"


def to_dict(m: Measurement) -> dict:
    """The persistent part of a measurement."""
    return {"kind": m.kind, "plane": m.plane, "slice_index": int(m.slice_index), "uid": m.uid,
            "points": [[float(v) for v in p] for p in m.points]}


def from_dict(item: dict) -> Measurement:
    """A measurement from :func:`to_dict` (not evaluated). Raises ValueError for what is not one."""
    kind, plane = str(item["kind"]), str(item["plane"])
    if kind not in KINDS:
        raise ValueError(f"unknown measurement kind {kind!r}")
    Plane(plane)
    raw = [list(p) for p in item["points"]]
    if len(raw) != (1 if kind == "probe" else 2) or any(len(p) != 3 for p in raw):
        raise ValueError(f"a {kind} with {len(raw)} point(s)")
    points = [(float(p[0]), float(p[1]), float(p[2])) for p in raw]
    return Measurement(kind, plane, int(item["slice_index"]), points, uid=str(item.get("uid", "")))


def save_measurements(series_uid: str, measurements, shape, root: str | os.PathLike | None = None,
                      source_paths=()) -> Path:
    """Write the series' measurements (atomically); returns the file."""
    path = measurements_path(series_uid, root)
    doc = {"format": FORMAT, "saved_at": time.time(), "series_uid": series_uid, "shape": [int(n) for n in shape],
           "source_paths": [str(p) for p in source_paths], "measurements": [to_dict(m) for m in measurements]}
    write_atomic(path, json.dumps(doc, indent=1).encode("utf-8"))
    return path


@dataclass
class Restored:
    """What :func:`load_measurements` found: the measurements (evaluated on the volume), when they were saved, and
    the entries that could not be restored, with why."""

    measurements: list[Measurement] = field(default_factory=list)
    saved_at: float = 0.0
    problems: list[str] = field(default_factory=list)


def load_measurements(volume, root: str | os.PathLike | None = None) -> Restored | None:
    """The autosaved measurements of ``volume``'s series, evaluated on it; None when there is no autosave.
    A damaged file or one made on another grid gives a result with only the problem."""
    path = measurements_path(volume.series_uid, root)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise ValueError(f"unknown format {doc.get('format')}")
    except (OSError, ValueError, AttributeError) as exc:
        return Restored(problems=[f"the measurements autosave is damaged ({exc})"])
    out = Restored(saved_at=float(doc.get("saved_at", 0.0)))
    if [int(n) for n in doc.get("shape", [])] != [int(n) for n in volume.shape]:
        out.problems.append("the measurements autosave is on another grid than this series; not restored")
        return out
    for n, item in enumerate(doc.get("measurements", []), start=1):
        try:
            m = from_dict(item)
            out.measurements.append(evaluate(m, volume, reformat(volume, m.plane)))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            out.problems.append(f"autosaved measurement {n} skipped ({exc})")
    return out


def discard_measurements(series_uid: str, root: str | os.PathLike | None = None) -> None:
    """Delete a series' measurements autosave (if any)."""
    measurements_path(series_uid, root).unlink(missing_ok=True)


__all__ = ["Restored", "discard_measurements", "from_dict", "load_measurements", "measurements_path",
           "save_measurements", "to_dict"]
