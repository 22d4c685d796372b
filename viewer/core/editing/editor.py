"""One façade the GUI binds to: a volume's segmentation, findings review, shared history and autosave.

Every user action here is one named undo step; the tools stay pure (:mod:`.tools`) and the models stay
ignorant of the history (:mod:`.segmentation` returns undo atoms, :mod:`.review` pushes its own steps).
"""
from __future__ import annotations

import numpy as np

from viewer.core.editing import tools
from viewer.core.editing.errors import EditRefused
from viewer.core.editing.history import EditHistory
from viewer.core.editing.review import FindingsReview
from viewer.core.editing.segmentation import Segment, Segmentation, SegmentLockedError
from viewer.core.interaction import PointerDrag, PointerEvent, PointerPhase


class AnnotationEditor:
    """Edit the annotation of one volume.

    Parameters
    ----------
    volume
        The :class:`~viewer.core.volume.Volume` (its ``array`` is the image the threshold tools read).
    segmentation, review, history
        Existing models (e.g. restored from an autosave); new empty ones by default.
    autosave
        An :class:`~viewer.core.editing.autosave.Autosave`; told about every history change.
    """

    def __init__(self, volume, segmentation: Segmentation | None = None, review: FindingsReview | None = None,
                 history: EditHistory | None = None, autosave=None) -> None:
        self.volume = volume
        # "is None", not "or": empty models have len() 0 and would be replaced
        self.history = EditHistory() if history is None else history
        self.segmentation = Segmentation.for_volume(volume) if segmentation is None else segmentation
        self.review = FindingsReview(volume.affine, volume.shape, self.history) if review is None else review
        self.review.history = self.history
        self.autosave = autosave
        if autosave is not None:
            self.history.changed.connect(autosave.note_edit)
        self._stroke: dict | None = None

    @property
    def image(self) -> np.ndarray:
        """The volume's voxels (HU for CT)."""
        return self.volume.array

    def _name(self, number: int) -> str:
        return self.segmentation[number].name

    def _active(self, number: int | None) -> int:
        number = self.segmentation.active if number is None else number
        if number is None:
            raise EditRefused("no active segment")
        return number

    # -- segments ---------------------------------------------------------------------------------------------
    def add_segment(self, name: str, color=None, **kwargs) -> Segment:
        """New manual segment, made active ("Add segment (name)")."""
        segment, atoms = self.segmentation.add_segment(name, color, **kwargs)
        self.history.push(f"Add segment ({name})", atoms)
        return segment

    def delete_segment(self, number: int) -> None:
        """Delete ("Delete segment (name)"; undo brings it back whole)."""
        name = self._name(number)
        self.history.push(f"Delete segment ({name})", self.segmentation.delete(number))

    def rename_segment(self, number: int, name: str) -> None:
        """Rename ("Rename segment")."""
        self.history.push("Rename segment", [self.segmentation.rename(number, name)])

    def recolor_segment(self, number: int, color) -> None:
        """Recolour ("Recolour segment")."""
        self.history.push("Recolour segment", [self.segmentation.recolor(number, color)])

    def lock_segment(self, number: int, locked: bool = True) -> None:
        """Lock or unlock ("Lock segment" / "Unlock segment")."""
        self.history.push("Lock segment" if locked else "Unlock segment",
                          [self.segmentation.set_locked(number, locked)])

    def set_visible(self, number: int, visible: bool) -> None:
        """Show/hide: view state, not an undo step."""
        self.segmentation.set_visible(number, visible)

    def set_active(self, number: int | None) -> None:
        """Choose the active segment: view state, not an undo step."""
        self.segmentation.set_active(number)

    def accept_model_result(self, result, algorithm_name: str = "", algorithm_version: str = "0") -> list[Segment]:
        """Add a model's :class:`~inference.types.SegResult` as AUTOMATIC segments ("Accept model result")."""
        atoms = self.segmentation.import_seg_result(result, algorithm_name, algorithm_version)
        self.history.push("Accept model result", atoms)
        return [a.segment for a in atoms if hasattr(a, "segment")]

    def merge(self, loaded: Segmentation, name: str) -> int:
        """Add the segments of ``loaded`` (e.g. a DICOM SEG just read) as one step ("Open segmentation (name)").

        Their masks are taken over, not copied (``loaded`` is not used afterwards). The first one becomes active
        when none is. An annotation without unsaved changes stays unmodified: what was opened is saved on disk.
        Returns how many segments were added.
        """
        segmentation = self.segmentation
        was_modified = self.history.modified
        atoms: list = []
        for s in loaded:
            segment = segmentation.new_segment(s.name, s.color, origin=s.origin, algorithm_name=s.algorithm_name,
                                               algorithm_version=s.algorithm_version, category=s.category,
                                               type=s.type, mask=s.mask)
            segment.edited = s.edited
            atoms += segmentation.add(segment, make_active=segmentation.active is None)
        self.history.push(f"Open segmentation ({name})", atoms)
        if not was_modified:
            self.history.mark_saved()
        return len(loaded)

    def accept_detections(self, detections) -> FindingsReview:
        """Start reviewing a detector's findings (replaces the current review; not an undo step)."""
        self.review = FindingsReview.from_detections(detections, self.history)
        if self.autosave is not None:
            self.autosave.review = self.review
            self.autosave.note_edit()
        return self.review

    # -- brush strokes: press, move, release = one step ------------------------------------------------------
    def begin_stroke(self, point, radius_mm: float, axis: int = 0, *, number: int | None = None,
                     erase: bool = False, hu_range: tuple[float, float] | None = None,
                     overwrite_others: bool = False) -> None:
        """Mouse press: open the step and paint the first dab at ``point`` ``(z, y, x)``."""
        number = self._active(number)
        if self.segmentation[number].locked:  # refuse before a step is opened
            raise SegmentLockedError(f"segment {number} ({self._name(number)}) is locked")
        kind = "Erase stroke" if erase else ("Threshold brush stroke" if hu_range else "Brush stroke")
        self.history.begin(f"{kind} ({self._name(number)})")
        self._stroke = dict(number=number, radius_mm=radius_mm, axis=axis, erase=erase, hu_range=hu_range,
                            overwrite_others=overwrite_others, last=np.asarray(point, float))
        self._dab(self._stroke, [point])

    def stroke_to(self, point) -> None:
        """Mouse move: paint from the last point to ``point``."""
        if self._stroke is None:
            return
        self._dab(self._stroke, [self._stroke["last"], point])
        self._stroke["last"] = np.asarray(point, float)

    def end_stroke(self) -> None:
        """Mouse release: close the step."""
        self._stroke = None
        self.history.end()

    def stroke(self, press: PointerEvent, radius_mm: float, *, number: int | None = None, erase: bool = False,
               hu_range: tuple[float, float] | None = None) -> PointerDrag:
        """The stroke as a drag (see :mod:`viewer.core.interaction`): :meth:`begin_stroke` at the press in its
        plane, :meth:`stroke_to` every point sent, :meth:`end_stroke` after the release, or when the drag is
        dropped, or when the press fails (a locked segment raises on the first ``next``)."""
        try:
            self.begin_stroke(press.point, radius_mm, press.array_axis, number=number, erase=erase,
                              hu_range=hu_range)
            while True:
                event = yield
                self.stroke_to(event.point)
                if event.phase is PointerPhase.RELEASE:
                    return
        finally:
            self.end_stroke()

    def _dab(self, s: dict, points) -> None:
        changes = tools.brush(self.segmentation, s["number"], points, s["radius_mm"], s["axis"], erase=s["erase"],
                              image=self.image if s["hu_range"] else None, hu_range=s["hu_range"],
                              overwrite_others=s["overwrite_others"])
        self.history.extend(self.segmentation.apply(changes))

    # -- one-shot tools ---------------------------------------------------------------------------------------
    def _run(self, name: str, changes) -> int:
        atoms = self.segmentation.apply(changes)
        self.history.push(name, atoms)
        return sum(c.changed for c in changes)

    def fill(self, seed, *, number: int | None = None, hu_range=None, axis: int | None = None,
             erase: bool = False) -> int:
        """Flood fill at ``seed`` ("Fill (name)"); returns the voxels changed."""
        number = self._active(number)
        changes = tools.flood_fill(self.segmentation, number, seed, image=self.image, hu_range=hu_range,
                                   axis=axis, erase=erase)
        return self._run(f"Fill ({self._name(number)})", changes)

    def polygon(self, vertices, axis: int = 0, *, number: int | None = None, erase: bool = False) -> int:
        """Polygon/lasso fill ("Polygon fill (name)")."""
        number = self._active(number)
        changes = tools.polygon_fill(self.segmentation, number, vertices, axis, erase=erase)
        return self._run(f"Polygon fill ({self._name(number)})", changes)

    def interpolate(self, axis: int = 0, *, number: int | None = None) -> int:
        """Interpolate between edited slices ("Interpolate (name)")."""
        number = self._active(number)
        return self._run(f"Interpolate ({self._name(number)})", tools.interpolate(self.segmentation, number, axis))

    def remove_small_islands(self, min_volume_mm3: float, *, number: int | None = None) -> int:
        """Remove islands below a volume ("Remove small islands (name)")."""
        number = self._active(number)
        changes = tools.remove_small_islands(self.segmentation, number, min_volume_mm3)
        return self._run(f"Remove small islands ({self._name(number)})", changes)

    # -- history ----------------------------------------------------------------------------------------------
    def undo(self) -> str | None:
        """Undo the last step; returns its name."""
        self._stroke = None
        return self.history.undo()

    def redo(self) -> str | None:
        """Redo; returns the step's name."""
        return self.history.redo()
