"""Review of a detector's findings: accept, reject, move/resize (in LPS mm) or add by hand - each an undo step.

Boxes stay in LPS mm (the design's rule for boxes); the voxel box on the grid is derived on demand, so moving a
finding never drifts through rounding.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from inference.types import int3
from viewer.core.editing.errors import EditRefused
from viewer.core.events import Event

PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"
STATUSES = (PENDING, ACCEPTED, REJECTED)

BoxLPS = tuple[float, float, float, float, float, float]
"""``(x0, y0, z0, x1, y1, z1)`` axis-aligned LPS mm (min corner, max corner)."""


def _float6(values) -> BoxLPS:
    """Six floats from a sequence of six numbers; ValueError for any other length."""
    a, b, c, d, e, f = values
    return float(a), float(b), float(c), float(d), float(e), float(f)


@dataclass(frozen=True)
class Finding:
    """One finding under review.

    Parameters
    ----------
    id
        Stable within the review (model findings keep their detection order 0..N-1; added ones follow).
    label
        Label name ("nodule").
    score
        Model score, ``None`` for a finding added by hand.
    box_lps
        ``(x0, y0, z0, x1, y1, z1)`` axis-aligned LPS mm (min corner, max corner).
    status
        ``"pending"``, ``"accepted"`` or ``"rejected"``.
    source
        ``"model"`` or ``"manual"``; ``edited`` is True once a person moved or resized a model box.
    measurements
        The nodule's measurements from the detector run (:mod:`inference.nodule_measurements`), or None; they
        describe the box as found, so moving or resizing the box drops them.
    """

    id: int
    label: str
    score: float | None
    box_lps: BoxLPS
    status: str = PENDING
    source: str = "model"
    edited: bool = False
    measurements: dict | None = None

    @property
    def center_lps(self) -> np.ndarray:
        """Box centre in LPS mm."""
        b = np.asarray(self.box_lps, float)
        return (b[:3] + b[3:]) / 2

    @property
    def size_mm(self) -> np.ndarray:
        """Extents along L, P, S in mm."""
        b = np.asarray(self.box_lps, float)
        return b[3:] - b[:3]

    @property
    def diameter_mm(self) -> float:
        """Largest box extent in mm (the nodule's diameter for a box drawn around it)."""
        return float(self.size_mm.max())


def _box(center, size) -> BoxLPS:
    center, size = np.asarray(center, float), np.abs(np.asarray(size, float))
    return _float6(np.concatenate([center - size / 2, center + size / 2]))


@dataclass(eq=False)
class FindingChange:
    """Undo atom: a finding's state before and after (``None`` = absent)."""

    review: FindingsReview
    before: Finding | None
    after: Finding | None
    nbytes: int = 300

    def _set(self, finding: Finding | None, other: Finding | None) -> None:
        key = (finding or other).id  # type: ignore[union-attr]
        if finding is None:
            self.review._findings.pop(key, None)
        else:
            self.review._findings[key] = finding
            self.review._findings = dict(sorted(self.review._findings.items()))
        self.review.changed.emit(key)

    def undo(self) -> None:
        self._set(self.before, self.after)

    def redo(self) -> None:
        self._set(self.after, self.before)


class FindingsReview:
    """The findings of one series and what the reader decided about each.

    Parameters
    ----------
    affine, shape
        The volume grid (to give each finding its voxel box).
    history
        The shared :class:`~viewer.core.editing.history.EditHistory`; every change is pushed as a named step.
    model_id
        The detector that produced the findings ("" for none).
    """

    def __init__(self, affine: np.ndarray, shape: Sequence[int], history=None, model_id: str = "") -> None:
        self.affine = np.asarray(affine, dtype=np.float64)
        self.shape = int3(shape)
        self.history = history
        self.model_id = model_id
        self._findings: dict[int, Finding] = {}
        self.changed = Event()  # (finding id) after every change

    @classmethod
    def from_detections(cls, detections, history=None) -> FindingsReview:
        """All detections as pending findings (in the detector's order)."""
        review = cls(detections.affine, detections.shape, history, detections.model_id)
        for i in range(len(detections)):
            value = int(detections.labels[i])
            label = detections.table[value].name if value in detections.table else f"label {value}"
            measured = getattr(detections, "measurements", None)
            review._findings[i] = Finding(i, label, float(detections.scores[i]),
                                          _float6(detections.boxes_lps[i]),
                                          measurements=measured[i] if measured is not None else None)
        return review

    @property
    def findings(self) -> list[Finding]:
        """All findings, by id."""
        return list(self._findings.values())

    def __getitem__(self, finding_id: int) -> Finding:
        return self._findings[finding_id]

    def __len__(self) -> int:
        return len(self._findings)

    def with_status(self, status: str) -> list[Finding]:
        """Findings with that status."""
        return [f for f in self._findings.values() if f.status == status]

    def box_voxel(self, finding: Finding) -> np.ndarray:
        """Half-open ``[z0, y0, x0, z1, y1, x1]`` on the grid (as :class:`inference.types.Detections`)."""
        from inference.geometry import box_corners, voxel_box

        return voxel_box(box_corners(np.asarray(finding.box_lps)), self.affine, self.shape)

    def to_detections(self, base=None):
        """The reviewed findings as :class:`~inference.types.Detections`, one row per finding (what the detection
        overlay draws after boxes were moved, resized or added by hand).

        Parameters
        ----------
        base
            The detections shown now (the detector's, or an earlier call's), or None. Its label table gives the
            label values (``{1: nodule}`` without one); a row whose box was not moved keeps its voxel box and its
            measurements.

        Returns
        -------
        Detections or None
            ``base`` itself when it already has these boxes and scores (nothing to redraw); None when the ids are
            no longer row numbers (a finding added by hand was deleted), so no table of rows can match them.
            Findings added by hand score 1.0: above any threshold.
        """
        from inference.types import Detections, Label

        rows = sorted(self._findings.values(), key=lambda f: f.id)
        if [f.id for f in rows] != list(range(len(rows))):
            return None
        table = dict(base.table) if base is not None and base.table else {1: Label(1, "nodule")}
        values = {label.name: int(value) for value, label in table.items()}
        boxes = np.array([f.box_lps for f in rows], float).reshape(-1, 6)
        scores = np.array([1.0 if f.score is None else f.score for f in rows])
        if base is not None and len(base) == len(rows) and np.allclose(base.boxes_lps, boxes) \
                and np.allclose(base.scores, scores):
            return base
        voxels = [base.boxes_voxel[f.id] if base is not None and f.id < len(base)
                  and np.allclose(base.boxes_lps[f.id], f.box_lps) else self.box_voxel(f) for f in rows]
        measured = [f.measurements for f in rows]  # moving or resizing a box dropped its own
        return Detections(boxes, np.array(voxels).reshape(-1, 6), scores,
                          np.array([values.get(f.label, min(table)) for f in rows]), self.affine, self.shape, table,
                          self.model_id, measurements=measured if any(m is not None for m in measured) else None)

    # -- changes (each one undo step) -------------------------------------------------------------------------
    @overload
    def _commit(self, name: str, before: Finding | None, after: Finding) -> Finding: ...
    @overload
    def _commit(self, name: str, before: Finding | None, after: None) -> None: ...
    def _commit(self, name: str, before: Finding | None, after: Finding | None) -> Finding | None:
        atom = FindingChange(self, before, after)
        atom.redo()
        if self.history is not None:
            self.history.push(name, [atom])
        return after

    def accept(self, finding_id: int) -> Finding:
        """Mark accepted ("Accept finding")."""
        old = self._findings[finding_id]
        return self._commit("Accept finding", old, dataclasses.replace(old, status=ACCEPTED))

    def reject(self, finding_id: int) -> Finding:
        """Mark rejected ("Reject finding")."""
        old = self._findings[finding_id]
        return self._commit("Reject finding", old, dataclasses.replace(old, status=REJECTED))

    def reset(self, finding_id: int) -> Finding:
        """Back to pending ("Reset finding")."""
        old = self._findings[finding_id]
        return self._commit("Reset finding", old, dataclasses.replace(old, status=PENDING))

    def set_box(self, finding_id: int, box_lps, name: str = "Edit finding") -> Finding:
        """Replace the box ``(x0, y0, z0, x1, y1, z1)`` LPS mm (move/resize)."""
        old = self._findings[finding_id]
        b = np.asarray(box_lps, float).reshape(6)
        box = _float6(np.concatenate([np.minimum(b[:3], b[3:]), np.maximum(b[:3], b[3:])]))
        return self._commit(name, old, dataclasses.replace(old, box_lps=box, edited=True, measurements=None))

    def move(self, finding_id: int, delta_lps) -> Finding:
        """Shift by ``delta_lps`` mm ("Move finding")."""
        old = self._findings[finding_id]
        return self.set_box(finding_id, _box(old.center_lps + np.asarray(delta_lps, float), old.size_mm),
                            "Move finding")

    def resize(self, finding_id: int, size_mm) -> Finding:
        """New extents in mm about the same centre ("Resize finding")."""
        old = self._findings[finding_id]
        return self.set_box(finding_id, _box(old.center_lps, size_mm), "Resize finding")

    def add(self, center_lps, size_mm, label: str = "nodule", status: str = ACCEPTED) -> Finding:
        """A finding drawn by hand ("Add finding"), accepted by default."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        new_id = max(self._findings, default=-1) + 1
        finding = Finding(new_id, label, None, _box(center_lps, size_mm), status, "manual")
        return self._commit("Add finding", None, finding)

    def remove(self, finding_id: int) -> None:
        """Delete a finding added by hand ("Delete finding"); model findings are rejected instead."""
        old = self._findings[finding_id]
        if old.source != "manual":
            raise EditRefused("model findings are rejected, not deleted")
        self._commit("Delete finding", old, None)

    # -- persistence ------------------------------------------------------------------------------------------
    def to_state(self) -> dict:
        """JSON-ready state (autosave)."""
        return {"model_id": self.model_id, "affine": self.affine.tolist(), "shape": list(self.shape),
                "findings": [dataclasses.asdict(f) for f in self._findings.values()]}

    @classmethod
    def from_state(cls, state: dict, history=None) -> FindingsReview:
        """Rebuild from :meth:`to_state`."""
        review = cls(np.asarray(state["affine"]), state["shape"], history, state.get("model_id", ""))
        for item in state["findings"]:
            item = dict(item, box_lps=tuple(item["box_lps"]))
            review._findings[int(item["id"])] = Finding(**item)
        return review
