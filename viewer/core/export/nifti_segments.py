"""Segments to NIfTI when they overlap: one file per segment, or one label map where the last segment wins.

A NIfTI label map holds one value per voxel, so segments that share voxels (a nodule inside a lung) cannot all
be kept in it. The caller chooses, knowing what is at stake (:func:`segment_overlaps` lists which segments
share how many voxels):

- ``"per_segment"``: one 0/1 file per segment (``<stem>_<number>_<name>.nii.gz``) - every voxel kept;
- ``"last_wins"``: one label map; where segments overlap the later one (in the list order) holds the voxel,
  and the returned :class:`NiftiExport` says which segment lost how many voxels to which.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viewer.core.export.nifti import write_nifti

PER_SEGMENT = "per_segment"
LAST_WINS = "last_wins"
MODES = (PER_SEGMENT, LAST_WINS)


@dataclass(frozen=True)
class SegmentOverlap:
    """Two segments sharing voxels: ``earlier`` comes first in the list, so a last-wins label map gives the shared
    voxels to ``later``."""

    earlier: int
    earlier_name: str
    later: int
    later_name: str
    voxels: int

    def describe(self) -> str:
        """``right lung (#1) and nodule (#2): 412 voxels``: a line for a dialog."""
        return f"{self.earlier_name} (#{self.earlier}) and {self.later_name} (#{self.later}): {self.voxels} voxels"


@dataclass
class NiftiExport:
    """What an export wrote: the files, the mode, and (last-wins) the overlaps resolved in favour of the later
    segment."""

    paths: list[Path]
    mode: str
    overlaps: list[SegmentOverlap] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the status bar."""
        if self.mode == PER_SEGMENT:
            folder = self.paths[0].parent if self.paths else ""
            return f"{len(self.paths)} NIfTI file{'s' if len(self.paths) != 1 else ''} (one per segment) in {folder}"
        lost = sum(o.voxels for o in self.overlaps)
        return f"{self.paths[0]}" + (f" ({lost} overlapping voxels went to the later segment)" if lost else "")


def _box_intersection(a, b):
    lo = [max(a[i], b[i]) for i in range(3)]
    hi = [min(a[i + 3], b[i + 3]) for i in range(3)]
    return None if any(h <= lo_ for lo_, h in zip(lo, hi)) else (*lo, *hi)


def _crop(mask, box) -> np.ndarray:
    z, y, x = mask.origin
    return mask.data[box[0] - z:box[3] - z, box[1] - y:box[4] - y, box[2] - x:box[5] - x]


def segment_overlaps(segmentation) -> list[SegmentOverlap]:
    """Every pair of segments that shares voxels, in list order, with the number of shared voxels.

    Only the two stored boxes' intersection is looked at, so this costs little for small segments.
    """
    segments = [s for s in segmentation if s.mask.box is not None]
    out = []
    for i, a in enumerate(segments):
        for b in segments[i + 1:]:
            box = _box_intersection(a.mask.box, b.mask.box)
            if box is None:
                continue
            shared = int(np.count_nonzero(_crop(a.mask, box) & _crop(b.mask, box)))
            if shared:
                out.append(SegmentOverlap(a.number, a.name, b.number, b.name, shared))
    return out


def segment_file_name(stem: str, number: int, name: str) -> str:
    """``<stem>_<number>_<name>.nii.gz`` with the name made safe for any file system."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._") or "segment"
    return f"{stem}_{number}_{safe[:60]}.nii.gz"


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    return path.stem


def export_segments_nifti(segmentation, path: str | os.PathLike, mode: str) -> NiftiExport:
    """Write ``segmentation`` as NIfTI in ``mode`` (:data:`PER_SEGMENT` or :data:`LAST_WINS`).

    Parameters
    ----------
    segmentation
        A :class:`~viewer.core.editing.segmentation.Segmentation` (its grid's affine goes into every file).
    path
        The label map (last wins), or the name the per-segment files are derived from (their folder and stem).
    mode
        How to treat overlapping segments (see the module docstring).

    Returns
    -------
    NiftiExport
        The files written and the overlaps found.
    """
    if mode not in MODES:
        raise ValueError(f"unknown NIfTI export mode {mode!r}: use {' or '.join(MODES)}")
    path = Path(path)
    overlaps = segment_overlaps(segmentation)
    if mode == LAST_WINS:
        labels, _ = segmentation.label_map("last_wins")
        dtype = np.uint8 if labels.max(initial=0) < 256 else np.uint16
        written = write_nifti(path, labels.astype(dtype), segmentation.affine,
                              description="Hounsfield segmentation (last wins)")
        return NiftiExport([written], mode, overlaps)
    if not len(segmentation):
        raise ValueError("there are no segments to export")
    paths = []
    for segment in segmentation:
        target = path.with_name(segment_file_name(_stem(path), segment.number, segment.name))
        paths.append(write_nifti(target, segment.mask.full().astype(np.uint8), segmentation.affine,
                                 description=f"Hounsfield segment {segment.number}"))
    return NiftiExport(paths, mode, overlaps)
