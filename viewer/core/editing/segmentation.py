"""The editable segmentation: segments on a volume's grid, each its own sparse bit-plane, with provenance.

Representation (why): every segment owns a :class:`SparseMask` - a boolean array covering only its bounding box
(grown on demand, ``(z, y, x)`` half-open boxes on the volume grid). Segments therefore overlap freely: painting
one never clears another unless a tool is told to (``overwrite_others``), and nothing is flattened until an
export that cannot hold overlaps (a NIfTI label map) is asked for, which then refuses or says how many voxels
it merged. One byte per voxel of a bounding box costs 35 MB for a whole-lung segment on a 512x512x133 CT and
next to nothing for a nodule - cheaper and simpler than a label map plus overlap layers.

Provenance: a segment comes from a model (``origin="AUTOMATIC"``, with algorithm name and version) or from a
person (``"MANUAL"``). Each segment also keeps ``edited``, a second sparse mask of the voxels a person changed
(added or removed); a model segment with any edited voxel exports as ``SEMIAUTOMATIC``. Undo clears the marks
again (the history stores them in the same XOR deltas as the mask).
"""
from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from inference.types import default_color, int3
from viewer.core.editing.errors import EditRefused
from viewer.core.events import Event

Box = tuple[int, int, int, int, int, int]
"""Half-open voxel box ``(z0, y0, x0, z1, y1, x1)`` on the volume grid."""

AUTOMATIC, SEMIAUTOMATIC, MANUAL = "AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"

# How far a mask's array grows past the box being written, so a brush stroke moving outward reallocates every
# few dabs instead of at each one.
_GROW_MARGIN = (2, 16, 16)


class SegmentLockedError(EditRefused):
    """Raised when an edit would change a locked segment."""


@overload
def box_union(a: Box | None, b: Box) -> Box: ...
@overload
def box_union(a: Box, b: Box | None) -> Box: ...
@overload
def box_union(a: Box | None, b: Box | None) -> Box | None: ...
def box_union(a: Box | None, b: Box | None) -> Box | None:
    """Smallest box holding both (``None`` = empty)."""
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), min(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]), max(a[4], b[4]), max(a[5], b[5]))


def box_intersection(a: Box, b: Box) -> Box | None:
    """Overlap of two boxes, or ``None``."""
    lo = (max(a[0], b[0]), max(a[1], b[1]), max(a[2], b[2]))
    hi = (min(a[3], b[3]), min(a[4], b[4]), min(a[5], b[5]))
    if any(h <= lo_ for lo_, h in zip(lo, hi)):
        return None
    return (*lo, *hi)


def box_shape(box: Box) -> tuple[int, int, int]:
    """``(nz, ny, nx)`` of a box."""
    return (box[3] - box[0], box[4] - box[1], box[5] - box[2])


def box_slices(box: Box, origin: Sequence[int] = (0, 0, 0)) -> tuple[slice, slice, slice]:
    """Slices selecting ``box`` in an array whose element 0 sits at ``origin``."""
    return (slice(box[0] - origin[0], box[3] - origin[0]), slice(box[1] - origin[1], box[4] - origin[1]),
            slice(box[2] - origin[2], box[5] - origin[2]))


def tight_box(mask: np.ndarray, origin: Sequence[int] = (0, 0, 0)) -> Box | None:
    """Bounding box of the True voxels of ``mask`` (offset by ``origin``), or ``None`` when empty."""
    if not mask.any():
        return None
    bounds = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        bounds.append((hits[0] + origin[axis], hits[-1] + 1 + origin[axis]))
    return (int(bounds[0][0]), int(bounds[1][0]), int(bounds[2][0]),
            int(bounds[0][1]), int(bounds[1][1]), int(bounds[2][1]))


class SparseMask:
    """A boolean ``(z, y, x)`` mask on a grid, stored only over a (growing) bounding box.

    Parameters
    ----------
    shape
        The full grid ``(z, y, x)``.
    """

    def __init__(self, shape: Sequence[int]) -> None:
        self.shape = int3(shape)
        self.origin = (0, 0, 0)
        self.data = np.zeros((0, 0, 0), dtype=bool)

    @classmethod
    def from_full(cls, mask: np.ndarray) -> SparseMask:
        """Wrap a full-grid boolean mask (stored cropped to its bounding box)."""
        out = cls(mask.shape)
        box = tight_box(mask)
        if box is not None:
            out.origin = box[:3]
            out.data = np.ascontiguousarray(mask[box_slices(box)], dtype=bool)
        return out

    @classmethod
    def from_box(cls, shape: Sequence[int], box: Box, data: np.ndarray) -> SparseMask:
        """A mask holding ``data`` at ``box`` (the array is copied)."""
        out = cls(shape)
        out.origin = tuple(int(v) for v in box[:3])  # type: ignore[assignment]
        out.data = np.array(data, dtype=bool)
        return out

    @property
    def box(self) -> Box | None:
        """The stored box (``None`` while nothing was ever written); may be larger than the True voxels."""
        if self.data.size == 0:
            return None
        z, y, x = self.origin
        nz, ny, nx = self.data.shape
        return (z, y, x, z + nz, y + ny, x + nx)

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return int(self.data.nbytes)

    def count(self) -> int:
        """Number of True voxels."""
        return int(np.count_nonzero(self.data))

    def any(self) -> bool:
        """True when some voxel is set."""
        return bool(self.data.any())

    def bounding_box(self) -> Box | None:
        """Tight box of the True voxels."""
        return tight_box(self.data, self.origin)

    def region(self, box: Box) -> np.ndarray:
        """A copy of the mask over ``box`` (False outside what is stored)."""
        out = np.zeros(box_shape(box), dtype=bool)
        stored = self.box
        common = box_intersection(box, stored) if stored is not None else None
        if common is not None:
            out[box_slices(common, box[:3])] = self.data[box_slices(common, self.origin)]
        return out

    def full(self) -> np.ndarray:
        """The whole-grid mask (allocates the grid)."""
        return self.region((0, 0, 0, *self.shape))

    def _ensure(self, box: Box) -> None:
        stored = self.box
        if stored is not None and box_intersection(box, stored) == box:
            return
        lo = [max(0, box[a] - _GROW_MARGIN[a]) for a in range(3)]
        hi = [min(self.shape[a], box[a + 3] + _GROW_MARGIN[a]) for a in range(3)]
        grown = box_union(stored, (lo[0], lo[1], lo[2], hi[0], hi[1], hi[2]))
        data = np.zeros(box_shape(grown), dtype=bool)
        if stored is not None:
            data[box_slices(stored, grown[:3])] = self.data
        self.origin, self.data = grown[:3], data

    def write(self, box: Box, values: np.ndarray) -> None:
        """Set the mask over ``box`` to ``values``."""
        values = np.asarray(values, dtype=bool)
        if values.any():
            self._ensure(box)
        stored = self.box
        common = box_intersection(box, stored) if stored is not None else None
        if common is not None:
            self.data[box_slices(common, self.origin)] = values[box_slices(common, box[:3])]

    def toggle(self, box: Box, bits: np.ndarray) -> None:
        """XOR ``bits`` into the mask over ``box`` (how undo and redo replay a delta)."""
        if bits.any():
            self._ensure(box)
            self.data[box_slices(box, self.origin)] ^= bits

    def trim(self) -> None:
        """Shrink the stored box to the True voxels (after large erasures)."""
        box = self.bounding_box()
        if box is None:
            self.origin, self.data = (0, 0, 0), np.zeros((0, 0, 0), dtype=bool)
        else:
            self.data = np.ascontiguousarray(self.data[box_slices(box, self.origin)])
            self.origin = box[:3]

    def copy(self) -> SparseMask:
        """An independent copy."""
        out = SparseMask(self.shape)
        out.origin, out.data = self.origin, self.data.copy()
        return out


Code = tuple[str, str, str]
"""A coded concept as ``(value, scheme designator, meaning)``."""


@dataclass(eq=False)
class Segment:
    """One segment: a sparse mask plus how it is shown and where it came from.

    Parameters
    ----------
    number
        Its number in this segmentation (stable while it lives; exports renumber 1..N in order).
    name, color
        Label text and RGB 0-255 colour.
    visible, locked
        Shown or not; a locked segment is never changed by any tool.
    category, type
        Coded segmented property category/type; ``None`` derives them from ``name`` (lung, nodule, airway...).
    origin
        ``"AUTOMATIC"`` (from a model) or ``"MANUAL"`` (drawn by a person).
    algorithm_name, algorithm_version
        The model, for automatic segments.
    """

    number: int
    name: str
    color: tuple[int, int, int]
    mask: SparseMask
    edited: SparseMask
    visible: bool = True
    locked: bool = False
    category: Code | None = None
    type: Code | None = None
    origin: str = MANUAL
    algorithm_name: str = ""
    algorithm_version: str = ""

    @property
    def algorithm_type(self) -> str:
        """DICOM SEG algorithm type: MANUAL, AUTOMATIC, or SEMIAUTOMATIC once a person changed model voxels."""
        if self.origin == MANUAL:
            return MANUAL
        return SEMIAUTOMATIC if self.edited.any() else AUTOMATIC

    def provenance(self, box: Box | None = None) -> np.ndarray:
        """uint8 over ``box`` (whole grid by default): 0 outside, 1 voxel from the model, 2 set by a person.

        Voxels a person erased are 0 here; :attr:`edited` still marks them.
        """
        box = box or (0, 0, 0, *self.mask.shape)
        inside = self.mask.region(box)
        out = inside.astype(np.uint8)
        if self.origin == MANUAL:
            out[inside] = 2
        else:
            out[inside & self.edited.region(box)] = 2
        return out


@dataclass(frozen=True)
class MaskChange:
    """What a tool wants to change in one segment: the box and the mask before and after over it."""

    number: int
    box: Box
    before: np.ndarray
    after: np.ndarray

    @property
    def changed(self) -> int:
        """How many voxels differ."""
        return int(np.count_nonzero(self.before != self.after))


def _pack(bits: np.ndarray) -> bytes:
    return zlib.compress(np.packbits(bits.ravel()).tobytes(), 1)


def _unpack(blob: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    n = int(np.prod(shape))
    return np.unpackbits(np.frombuffer(zlib.decompress(blob), dtype=np.uint8), count=n).reshape(shape).view(bool)


@dataclass(eq=False)
class MaskDelta:
    """An undo atom for a segment's voxels: XOR bit-planes of the mask and of its edited marks over a box.

    XOR makes undo and redo the same operation; the bits are packed and zlib-compressed, so a stroke costs a few
    bytes per changed row, never a volume copy.
    """

    segmentation: Segmentation
    number: int
    box: Box
    mask_bits: bytes
    edited_bits: bytes

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return len(self.mask_bits) + len(self.edited_bits) + 200

    def _toggle(self) -> None:
        segment = self.segmentation.segments[self.number]
        shape = box_shape(self.box)
        segment.mask.toggle(self.box, _unpack(self.mask_bits, shape))
        segment.edited.toggle(self.box, _unpack(self.edited_bits, shape))
        self.segmentation._changed(self.number, self.box)

    undo = _toggle
    redo = _toggle

    @classmethod
    def make(cls, segmentation: Segmentation, number: int, box: Box, mask_xor: np.ndarray,
             edited_xor: np.ndarray) -> MaskDelta:
        """Pack XOR planes over ``box``."""
        return cls(segmentation, number, box, _pack(mask_xor), _pack(edited_xor))

    @classmethod
    def merge(cls, deltas: Sequence[MaskDelta]) -> MaskDelta:
        """One delta equal to applying ``deltas`` in turn (same segmentation and segment)."""
        box = deltas[0].box
        for delta in deltas[1:]:
            box = box_union(box, delta.box)
        mask = np.zeros(box_shape(box), dtype=bool)
        edited = np.zeros_like(mask)
        for delta in deltas:
            shape = box_shape(delta.box)
            where = box_slices(delta.box, box[:3])
            mask[where] ^= _unpack(delta.mask_bits, shape)
            edited[where] ^= _unpack(delta.edited_bits, shape)
        return cls.make(deltas[0].segmentation, deltas[0].number, box, mask, edited)


@dataclass(eq=False)
class SegmentPresence:
    """An undo atom that adds (``present_after``) or removes a whole segment, keeping the object."""

    segmentation: Segmentation
    segment: Segment
    present_after: bool
    position: int

    @property
    def nbytes(self) -> int:
        """Bytes held only by this atom: the masks count while the segment is out of the segmentation."""
        live = self.segmentation.segments.get(self.segment.number) is self.segment
        return 500 + (0 if live else self.segment.mask.nbytes + self.segment.edited.nbytes)

    def _set(self, present: bool) -> None:
        if present:
            self.segmentation._insert(self.segment, self.position)
        else:
            self.segmentation._remove(self.segment.number)

    def undo(self) -> None:
        self._set(not self.present_after)

    def redo(self) -> None:
        self._set(self.present_after)


@dataclass(eq=False)
class SegmentProperty:
    """An undo atom for one display/identity property (name, color, visible, locked, active)."""

    segmentation: Segmentation
    number: int | None
    attribute: str
    before: object
    after: object
    nbytes: int = 200

    def _set(self, value) -> None:
        if self.attribute == "active":
            self.segmentation.active = value
        else:
            assert self.number is not None  # every property but "active" is a segment's
            setattr(self.segmentation.segments[self.number], self.attribute, value)
        self.segmentation._changed(self.number, None)

    def undo(self) -> None:
        self._set(self.before)

    def redo(self) -> None:
        self._set(self.after)


class Segmentation:
    """Segments on one volume grid; one of them active.

    Parameters
    ----------
    shape
        ``(z, y, x)`` of the volume grid.
    affine
        The volume's affine (index -> LPS mm).
    series_uid, frame_of_reference_uid
        The volume it belongs to.

    Mutating methods return undo atoms (``undo()``/``redo()``/``nbytes``) for :class:`~.history.EditHistory`;
    :attr:`changed` (an :class:`~viewer.core.events.Event`) is emitted with ``(segment number or None, box or
    None)`` after every change.
    """

    def __init__(self, shape: Sequence[int], affine: np.ndarray, series_uid: str = "",
                 frame_of_reference_uid: str = "") -> None:
        self.shape = tuple(int(s) for s in shape)
        self.affine = np.asarray(affine, dtype=np.float64)
        self.series_uid = series_uid
        self.frame_of_reference_uid = frame_of_reference_uid
        self.segments: dict[int, Segment] = {}
        self.active: int | None = None
        self.changed = Event()

    @classmethod
    def for_volume(cls, volume) -> Segmentation:
        """An empty segmentation on a :class:`~viewer.core.volume.Volume`'s grid."""
        return cls(volume.shape, volume.affine, volume.series_uid, volume.frame_of_reference_uid)

    # -- geometry --------------------------------------------------------------------------------------------
    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm ``(z, y, x)``."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)[::-1].copy()

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm^3 (from the affine's determinant: correct for sheared grids too)."""
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    # -- segments ---------------------------------------------------------------------------------------------
    def __iter__(self):
        return iter(self.segments.values())

    def __len__(self) -> int:
        return len(self.segments)

    def __getitem__(self, number: int) -> Segment:
        return self.segments[number]

    def next_number(self) -> int:
        """The lowest unused segment number."""
        number = 1
        while number in self.segments:
            number += 1
        return number

    def new_segment(self, name: str, color: tuple[int, int, int] | None = None, *, number: int | None = None,
                    origin: str = MANUAL, algorithm_name: str = "", algorithm_version: str = "",
                    category: Code | None = None, type: Code | None = None, mask: SparseMask | None = None
                    ) -> Segment:
        """A segment object for this grid (not yet added: see :meth:`add`)."""
        number = self.next_number() if number is None else int(number)
        if number in self.segments:
            raise ValueError(f"segment {number} exists")
        return Segment(number=number, name=name, color=int3(color or default_color(number)),
                       mask=mask or SparseMask(self.shape), edited=SparseMask(self.shape), origin=origin,
                       algorithm_name=algorithm_name, algorithm_version=algorithm_version,
                       category=category, type=type)

    def add(self, segment: Segment, make_active: bool = True) -> list:
        """Add ``segment``; returns undo atoms."""
        if segment.number in self.segments:
            raise ValueError(f"segment {segment.number} exists")
        atoms: list[SegmentPresence | SegmentProperty] = [SegmentPresence(self, segment, True, len(self.segments))]
        atoms[0].redo()
        if make_active:
            atoms.append(self.set_active(segment.number))
        return atoms

    def add_segment(self, name: str, color: tuple[int, int, int] | None = None, **kwargs) -> tuple[Segment, list]:
        """Create and add a (manual) segment, make it active; returns ``(segment, undo atoms)``."""
        segment = self.new_segment(name, color, **kwargs)
        return segment, self.add(segment)

    def copy(self) -> Segmentation:
        """An independent copy: the same segments (numbers, order, names, colours, codes, shown/locked, origin and
        algorithm) with their own masks and edited marks, the same active segment, no listeners.

        What an export reads on a worker while the user goes on editing the original.
        """
        out = Segmentation(self.shape, self.affine.copy(), self.series_uid, self.frame_of_reference_uid)
        for segment in self:
            out.segments[segment.number] = dataclasses.replace(segment, mask=segment.mask.copy(),
                                                               edited=segment.edited.copy())
        out.active = self.active
        return out

    def delete(self, number: int) -> list:
        """Remove a segment (undoable: the atom keeps it); returns undo atoms."""
        segment = self.segments[number]
        position = list(self.segments).index(number)
        atoms: list = []
        if self.active == number:
            atoms.append(self.set_active(None))
        atom = SegmentPresence(self, segment, False, position)
        atom.redo()
        return atoms + [atom]

    def _set_property(self, number: int, attribute: str, value) -> SegmentProperty:
        atom = SegmentProperty(self, number, attribute, getattr(self.segments[number], attribute), value)
        atom.redo()
        return atom

    def rename(self, number: int, name: str) -> SegmentProperty:
        """Rename; returns the undo atom."""
        return self._set_property(number, "name", str(name))

    def recolor(self, number: int, color: tuple[int, int, int]) -> SegmentProperty:
        """Change the colour; returns the undo atom."""
        return self._set_property(number, "color", tuple(int(c) for c in color))

    def set_visible(self, number: int, visible: bool) -> SegmentProperty:
        """Show or hide; returns the undo atom."""
        return self._set_property(number, "visible", bool(visible))

    def set_locked(self, number: int, locked: bool) -> SegmentProperty:
        """Lock or unlock; returns the undo atom."""
        return self._set_property(number, "locked", bool(locked))

    def set_active(self, number: int | None) -> SegmentProperty:
        """Choose the active segment (``None`` for none); returns the undo atom."""
        if number is not None and number not in self.segments:
            raise KeyError(number)
        atom = SegmentProperty(self, None, "active", self.active, number)
        atom.redo()
        return atom

    def _insert(self, segment: Segment, position: int) -> None:
        items = list(self.segments.items())
        items.insert(min(position, len(items)), (segment.number, segment))
        self.segments = dict(items)
        self._changed(segment.number, None)

    def _remove(self, number: int) -> None:
        del self.segments[number]
        if self.active == number:
            self.active = None
        self._changed(number, None)

    def _changed(self, number: int | None, box: Box | None) -> None:
        self.changed.emit(number, box)

    # -- voxels -----------------------------------------------------------------------------------------------
    def mask(self, number: int) -> np.ndarray:
        """Full-grid boolean mask of a segment."""
        return self.segments[number].mask.full()

    def region(self, number: int, box: Box) -> np.ndarray:
        """A segment's mask over ``box``."""
        return self.segments[number].mask.region(box)

    def apply(self, changes: Iterable[MaskChange], by_person: bool = True) -> list[MaskDelta]:
        """Write tool output into the segments; returns the undo atoms.

        ``by_person`` marks changed voxels as edited (provenance). Raises :class:`SegmentLockedError` if a
        change targets a locked segment (tools never produce those; this is the last guard).
        """
        changes = list(changes)
        for change in changes:
            if self.segments[change.number].locked:
                raise SegmentLockedError(f"segment {change.number} ({self.segments[change.number].name}) is locked")
        atoms = []
        for change in changes:
            segment = self.segments[change.number]
            current = segment.mask.region(change.box)
            mask_xor = current ^ np.asarray(change.after, dtype=bool)
            if not mask_xor.any():
                continue
            if by_person:
                edited_xor = mask_xor & ~segment.edited.region(change.box)
            else:
                edited_xor = np.zeros_like(mask_xor)
            atom = MaskDelta.make(self, change.number, change.box, mask_xor, edited_xor)
            segment.mask.toggle(change.box, mask_xor)
            segment.edited.toggle(change.box, edited_xor)
            self._changed(change.number, change.box)
            atoms.append(atom)
        return atoms

    def overlap_count(self) -> int:
        """Voxels that belong to more than one segment."""
        counts = np.zeros(self.shape, dtype=np.uint8)
        for segment in self:
            box = segment.mask.box
            if box is not None:
                view = counts[box_slices(box)]
                view += segment.mask.data
        return int(np.count_nonzero(counts > 1))

    def label_map(self, on_overlap: str = "raise") -> tuple[np.ndarray, dict[int, str]]:
        """Flatten to a uint16 label map of segment numbers: ``(labels, {number: name})``.

        ``on_overlap="raise"`` (default) refuses when segments overlap - flattening loses voxels - and
        ``"last_wins"`` lets later segments cover earlier ones, explicitly.
        """
        if on_overlap not in ("raise", "last_wins"):
            raise ValueError("on_overlap must be 'raise' or 'last_wins'")
        if on_overlap == "raise" and (n := self.overlap_count()):
            raise EditRefused(f"{n} voxels belong to more than one segment; a label map would drop some")
        labels = np.zeros(self.shape, dtype=np.uint16)
        for segment in self:
            box = segment.mask.box
            if box is not None:
                labels[box_slices(box)][segment.mask.data] = segment.number
        return labels, {s.number: s.name for s in self}

    def import_seg_result(self, result, algorithm_name: str = "", algorithm_version: str = "0") -> list:
        """Add each label of a model's :class:`~inference.types.SegResult` as an AUTOMATIC segment.

        Returns the undo atoms (one "Accept model result" step for the history).
        """
        if tuple(result.labels.shape) != self.shape:
            raise EditRefused(f"result grid {result.labels.shape} is not the segmentation grid {self.shape}")
        if not np.allclose(result.affine, self.affine, atol=1e-4):
            raise EditRefused("the result's affine differs from the segmentation's grid")
        atoms: list = []
        name = algorithm_name or result.model_id or "model"
        for value in result.present:
            label = result.table.get(value)
            segment = self.new_segment(
                label.name if label else f"label {value}", label.color if label else None, origin=AUTOMATIC,
                algorithm_name=name, algorithm_version=str(algorithm_version),
                mask=SparseMask.from_full(result.labels == value))
            atoms += self.add(segment, make_active=False)
        if atoms and self.active is None:
            atoms.append(self.set_active(atoms[0].segment.number))
        return atoms
