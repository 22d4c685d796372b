"""Never lose work: the working annotation saved atomically to the user data dir, and found again after a crash.

Layout: ``user_data_dir()/autosave/<sha256(series UID)[:16]>/annotation.npz`` - one file holding every segment's
mask and edited marks (bit-packed, cropped to their boxes) plus a JSON ``meta`` entry (grid, segment properties,
findings review state, times). One file so a save is one atomic ``os.replace`` (written to a temporary file in
the same folder and fsync'ed first): a crash leaves either the previous save or the new one, never half.
``exported.json`` beside it records the last explicit export; :func:`find_restorable` lists autosaves newer
than that.

The GUI owns the timing: it calls :meth:`Autosave.note_edit` after each history step and
:meth:`Autosave.maybe_save` from a timer (or after each edit).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from viewer.core.editing.segmentation import Segmentation, SparseMask

FORMAT = 1
ANNOTATION = "annotation.npz"
EXPORTED = "exported.json"


def autosave_root() -> Path:
    """``user_data_dir()/autosave``."""
    from viewer.core.paths import user_data_dir

    return user_data_dir() / "autosave"


def series_key(series_uid: str) -> str:
    """Folder name for a series: a hash, so no UID (or anything about the patient) appears in paths."""
    return hashlib.sha256(series_uid.encode("utf-8")).hexdigest()[:16]


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder, fsync, ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _pack_mask(mask: SparseMask) -> tuple[list[int] | None, np.ndarray]:
    box = mask.bounding_box()
    if box is None:
        return None, np.zeros(0, np.uint8)
    return list(box), np.packbits(mask.region(box).ravel())


def _unpack_mask(shape, box, bits: np.ndarray) -> SparseMask:
    if box is None:
        return SparseMask(shape)
    size = (box[3] - box[0], box[4] - box[1], box[5] - box[2])
    data = np.unpackbits(bits, count=int(np.prod(size))).reshape(size).astype(bool)
    return SparseMask.from_box(shape, tuple(box), data)


def snapshot(segmentation: Segmentation, review=None, description: str = "", edits: int = 0,
             source_paths=()) -> bytes:
    """The annotation as the bytes of an ``.npz`` (what :func:`restore` reads).

    ``source_paths`` are the paths the study was opened from (so the next start can reopen it); optional: older
    autosaves have none.
    """
    arrays: dict[str, np.ndarray] = {}
    segments = []
    for i, s in enumerate(segmentation):
        box, bits = _pack_mask(s.mask)
        edited_box, edited_bits = _pack_mask(s.edited)
        arrays[f"mask{i}"], arrays[f"edited{i}"] = bits, edited_bits
        segments.append({"number": s.number, "name": s.name, "color": list(s.color), "visible": s.visible,
                         "locked": s.locked, "category": s.category, "type": s.type, "origin": s.origin,
                         "algorithm_name": s.algorithm_name, "algorithm_version": s.algorithm_version,
                         "box": box, "edited_box": edited_box})
    meta = {"format": FORMAT, "saved_at": time.time(), "description": description, "edits": int(edits),
            "series_uid": segmentation.series_uid, "frame_of_reference_uid": segmentation.frame_of_reference_uid,
            "shape": list(segmentation.shape), "affine": segmentation.affine.tolist(), "active": segmentation.active,
            "segments": segments, "review": review.to_state() if review is not None else None,
            "source_paths": [str(p) for p in source_paths]}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stubs: a **dict might fill allow_pickle
    return buffer.getvalue()


def read_meta(path: str | os.PathLike) -> dict:
    """The JSON metadata of an autosave file (masks not decoded)."""
    with np.load(path) as data:
        return json.loads(data["meta"].tobytes().decode("utf-8"))


def restore(path: str | os.PathLike, history=None):
    """Rebuild ``(Segmentation, FindingsReview or None)`` from an autosave file (or its folder).

    ``history`` is given to the review so that further finding changes are undo steps again.
    """
    from viewer.core.editing.review import FindingsReview

    path = Path(path)
    if path.is_dir():
        path = path / ANNOTATION
    with np.load(path) as data:
        meta = json.loads(data["meta"].tobytes().decode("utf-8"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"unknown autosave format {meta.get('format')}")
        shape = tuple(meta["shape"])
        segmentation = Segmentation(shape, np.asarray(meta["affine"]), meta["series_uid"],
                                    meta.get("frame_of_reference_uid", ""))
        for i, item in enumerate(meta["segments"]):
            segment = segmentation.new_segment(
                item["name"], tuple(item["color"]), number=item["number"], origin=item["origin"],
                algorithm_name=item["algorithm_name"], algorithm_version=item["algorithm_version"],
                category=tuple(item["category"]) if item["category"] else None,
                type=tuple(item["type"]) if item["type"] else None,
                mask=_unpack_mask(shape, item["box"], data[f"mask{i}"]))
            segment.edited = _unpack_mask(shape, item["edited_box"], data[f"edited{i}"])
            segment.visible, segment.locked = bool(item["visible"]), bool(item["locked"])
            segmentation.add(segment, make_active=False)
    segmentation.active = meta.get("active")
    review = FindingsReview.from_state(meta["review"], history) if meta.get("review") else None
    return segmentation, review


@dataclass(frozen=True)
class AutosaveInfo:
    """An autosave that holds work newer than its last export."""

    folder: Path
    series_uid: str
    saved_at: float
    exported_at: float | None
    description: str
    edits: int
    n_segments: int
    n_findings: int
    #: Paths the study was opened from (empty for autosaves written before they were recorded).
    source_paths: tuple[str, ...] = ()


def _exported_at(folder: Path) -> float | None:
    try:
        return float(json.loads((folder / EXPORTED).read_text(encoding="utf-8"))["exported_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_restorable(root: str | os.PathLike | None = None) -> list[AutosaveInfo]:
    """Autosaves newer than their last explicit export, newest first (unreadable ones are skipped)."""
    root = Path(root) if root is not None else autosave_root()
    found = []
    for path in sorted(root.glob(f"*/{ANNOTATION}")):
        try:
            meta = read_meta(path)
        except Exception:  # noqa: BLE001 - a damaged autosave must not stop the app from starting
            continue
        exported = _exported_at(path.parent)
        if exported is not None and exported >= meta["saved_at"]:
            continue
        review = meta.get("review") or {}
        found.append(AutosaveInfo(path.parent, meta["series_uid"], meta["saved_at"], exported,
                                  meta.get("description", ""), int(meta.get("edits", 0)), len(meta["segments"]),
                                  len(review.get("findings", [])),
                                  tuple(str(p) for p in meta.get("source_paths") or ())))
    return sorted(found, key=lambda info: -info.saved_at)


class Autosave:
    """When and where to save the working annotation of one series.

    Parameters
    ----------
    segmentation, review
        What to save (the review may be None).
    every_edits, every_seconds
        Save once this many edits are unsaved, or when the oldest unsaved edit is this old.
    root
        Folder of all autosaves (default :func:`autosave_root`).
    description
        Shown in the restore dialog (no patient data: e.g. the series description).
    clock
        Monotonic seconds (tests pass their own).
    source_paths
        The paths the study was opened from (recorded so the next start can offer to reopen it).
    """

    def __init__(self, segmentation: Segmentation, review=None, *, every_edits: int = 5,
                 every_seconds: float = 30.0, root: str | os.PathLike | None = None, description: str = "",
                 clock=time.monotonic, source_paths=()) -> None:
        self.segmentation, self.review = segmentation, review
        self.every_edits, self.every_seconds = int(every_edits), float(every_seconds)
        self.root = Path(root) if root is not None else autosave_root()
        self.description = description
        self.source_paths = [str(p) for p in source_paths]
        self.clock = clock
        self.pending = 0
        self.total_edits = 0
        self._first_pending: float | None = None

    @property
    def folder(self) -> Path:
        """This series' autosave folder."""
        return self.root / series_key(self.segmentation.series_uid)

    @property
    def path(self) -> Path:
        """The annotation file."""
        return self.folder / ANNOTATION

    def note_edit(self, count: int = 1) -> None:
        """Tell the policy that the annotation changed (each history step, undo or redo)."""
        if self.pending == 0:
            self._first_pending = self.clock()
        self.pending += count
        self.total_edits += count

    def due(self, now: float | None = None) -> bool:
        """True when unsaved edits reached the count or the age limit."""
        if self.pending == 0:
            return False
        now = self.clock() if now is None else now
        first = now if self._first_pending is None else self._first_pending
        return self.pending >= self.every_edits or now - first >= self.every_seconds

    def maybe_save(self, now: float | None = None) -> bool:
        """Save if :meth:`due`; returns whether it saved."""
        if not self.due(now):
            return False
        self.save()
        return True

    def save(self) -> Path:
        """Save now (atomically)."""
        data = snapshot(self.segmentation, self.review, self.description, self.total_edits,
                        self.source_paths)
        write_atomic(self.path, data)
        self.pending = 0
        self._first_pending = None
        return self.path

    def note_exported(self) -> None:
        """Record an explicit export: the autosave is no longer offered for restore until the next edit."""
        if self.pending:
            self.save()
        write_atomic(self.folder / EXPORTED, json.dumps({"exported_at": time.time()}).encode("utf-8"))

    def discard(self) -> None:
        """Delete this series' autosave (the user closed without keeping, or declined a restore)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.pending = 0
        self._first_pending = None


__all__ = ["Autosave", "AutosaveInfo", "autosave_root", "find_restorable", "read_meta", "restore", "series_key",
           "snapshot", "write_atomic"]
