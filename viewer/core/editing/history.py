"""One undo/redo history for everything an annotator does: named steps made of small undo atoms.

An atom is any object with ``undo()``, ``redo()`` and ``nbytes`` (mask deltas, segment add/remove, property
changes, finding changes). A step groups the atoms of one user action; a brush stroke from press to release is
one step (:meth:`EditHistory.begin` / :meth:`~EditHistory.extend` / :meth:`~EditHistory.end`), and its mask
deltas are merged per segment when it ends so a long stroke costs one packed box, not one per dab.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from viewer.core.editing.segmentation import MaskDelta
from viewer.core.events import Event


@dataclass(eq=False)
class Step:
    """A named user action: its atoms in the order they were applied."""

    name: str
    atoms: list = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        """Bytes held by the atoms."""
        return sum(int(a.nbytes) for a in self.atoms)

    def undo(self) -> None:
        for atom in reversed(self.atoms):
            atom.undo()

    def redo(self) -> None:
        for atom in self.atoms:
            atom.redo()


def _merge_mask_deltas(atoms: list) -> list:
    """Merge the MaskDeltas of each (segmentation, segment) into one (XOR composes), keeping other atoms.

    Only deltas with no other atom between them are merged, so the order of unlike atoms is kept.
    """
    out: list = []
    run: list[MaskDelta] = []

    def flush() -> None:
        groups: dict[tuple[int, int], list[MaskDelta]] = {}
        for delta in run:
            groups.setdefault((id(delta.segmentation), delta.number), []).append(delta)
        for deltas in groups.values():
            out.append(deltas[0] if len(deltas) == 1 else MaskDelta.merge(deltas))
        run.clear()

    for atom in atoms:
        if isinstance(atom, MaskDelta):
            run.append(atom)
        else:
            flush()
            out.append(atom)
    flush()
    return out


class EditHistory:
    """Undo/redo stack of named :class:`Step` s with a memory bound.

    Parameters
    ----------
    max_bytes
        When the atoms held exceed this, the oldest steps are dropped (never the newest one).

    The :class:`~viewer.core.events.Event` ``changed`` is emitted with no argument after every change (push, undo,
    redo, clear) - the GUI updates its Edit menu; :attr:`revision` counts changes (autosave), :attr:`modified`
    compares with :meth:`mark_saved`.
    """

    def __init__(self, max_bytes: int = 512 * 2**20) -> None:
        self.max_bytes = int(max_bytes)
        self._undo: list[Step] = []
        self._redo: list[Step] = []
        self._open: Step | None = None
        self._saved_at: Step | None | bool = None  # the top step when saved (None: empty history)
        self.revision = 0
        self.changed = Event()

    # -- recording --------------------------------------------------------------------------------------------
    def push(self, name: str, atoms: list) -> Step | None:
        """Record an already-applied action as one step (nothing when ``atoms`` is empty).

        While a step is open (a stroke in progress) the atoms join that step instead.
        """
        if self._open is not None:
            self.extend(atoms)
            return self._open
        atoms = [a for a in atoms if a is not None]
        if not atoms:
            return None
        step = Step(name, _merge_mask_deltas(atoms))
        self._record(step)
        return step

    def begin(self, name: str) -> None:
        """Open a step that collects atoms until :meth:`end` (press of a brush stroke)."""
        if self._open is not None:
            self.end()
        self._open = Step(name)

    def extend(self, atoms: list) -> None:
        """Add applied atoms to the open step (a dab of the stroke)."""
        if self._open is None:
            raise RuntimeError("no open step: call begin() first")
        self._open.atoms.extend(a for a in atoms if a is not None)

    def end(self) -> Step | None:
        """Close the open step (release); empty steps are dropped."""
        step, self._open = self._open, None
        if step is None or not step.atoms:
            return None
        step.atoms = _merge_mask_deltas(step.atoms)
        self._record(step)
        return step

    @property
    def in_step(self) -> bool:
        """True between :meth:`begin` and :meth:`end`."""
        return self._open is not None

    def _record(self, step: Step) -> None:
        self._undo.append(step)
        self._redo.clear()
        self._trim()
        self._notify()

    def _trim(self) -> None:
        total = self.nbytes
        while total > self.max_bytes and len(self._undo) > 1:
            dropped = self._undo.pop(0)
            total -= dropped.nbytes
            if self._saved_at is dropped:
                self._saved_at = False  # the saved state can no longer be reached by undo

    # -- replay -----------------------------------------------------------------------------------------------
    def undo(self) -> str | None:
        """Undo the last step (closing an open one first); returns its name."""
        self.end()
        if not self._undo:
            return None
        step = self._undo.pop()
        step.undo()
        self._redo.append(step)
        self._notify()
        return step.name

    def redo(self) -> str | None:
        """Redo the last undone step; returns its name."""
        if self._open is not None or not self._redo:
            return None
        step = self._redo.pop()
        step.redo()
        self._undo.append(step)
        self._notify()
        return step.name

    @property
    def can_undo(self) -> bool:
        return bool(self._undo) or bool(self._open and self._open.atoms)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo) and self._open is None

    @property
    def undo_name(self) -> str | None:
        """Name of the step Undo would revert (for "Undo <name>")."""
        if self._open is not None and self._open.atoms:
            return self._open.name
        return self._undo[-1].name if self._undo else None

    @property
    def redo_name(self) -> str | None:
        """Name of the step Redo would replay."""
        return self._redo[-1].name if self.can_redo else None

    def names(self) -> tuple[list[str], list[str]]:
        """``(undo names oldest first, redo names next first)``."""
        return [s.name for s in self._undo], [s.name for s in reversed(self._redo)]

    # -- bookkeeping ------------------------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes held by all steps."""
        return sum(s.nbytes for s in self._undo) + sum(s.nbytes for s in self._redo)

    def clear(self) -> None:
        """Forget all steps (a new study)."""
        self._undo.clear()
        self._redo.clear()
        self._open = None
        self._saved_at = None
        self._notify()

    def mark_saved(self) -> None:
        """Remember the current state as saved (an explicit export)."""
        self._saved_at = self._undo[-1] if self._undo else None

    def mark_unsaved(self) -> None:
        """Count the current state as not saved (e.g. restored from an autosave, never exported)."""
        self._saved_at = False

    @property
    def modified(self) -> bool:
        """True when the state differs from the last :meth:`mark_saved` (or from the start)."""
        if self._open is not None and self._open.atoms:
            return True
        top = self._undo[-1] if self._undo else None
        return top is not self._saved_at

    def _notify(self) -> None:
        self.revision += 1
        self.changed.emit()
