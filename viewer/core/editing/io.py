"""A :class:`Segmentation` to and from files: DICOM SEG (overlaps kept, provenance recorded) and NIfTI.

The SEG side lives in :mod:`viewer.core.export.seg` (highdicom); this module only maps segments to
:class:`~viewer.core.export.seg.SegmentSpec` and back. Export renumbers segments 1..N in their order, so a
round trip keeps order, names, colours, codes, algorithm and every voxel, not gaps in the numbering.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from viewer.core.editing.errors import EditRefused
from viewer.core.editing.segmentation import AUTOMATIC, MANUAL, SEMIAUTOMATIC, Segmentation


def segment_specs(segmentation: Segmentation, numbers: Sequence[int] | None = None) -> list:
    """The :class:`SegmentSpec` s of the segments (all, in order, unless ``numbers``)."""
    from viewer.core.export.seg import SegmentSpec

    chosen = [segmentation[n] for n in numbers] if numbers is not None else list(segmentation)
    return [SegmentSpec(label=s.name, mask=s.mask.full(), algorithm_type=s.algorithm_type,
                        algorithm_name=s.algorithm_name, algorithm_version=s.algorithm_version,
                        category=s.category, type=s.type, color=tuple(s.color)) for s in chosen]


def save_seg(segmentation: Segmentation, path: str | os.PathLike, volume, sources, **kwargs) -> Path:
    """Write ``segmentation`` as a DICOM SEG over ``volume`` (``sources``: its headers, see
    :func:`~viewer.core.export.seg.read_sources`); keyword arguments go to ``build_seg_segments``."""
    from viewer.core.dicom import limits
    from viewer.core.export.seg import write_seg_segments

    if tuple(volume.shape) != segmentation.shape:
        raise EditRefused("the segmentation is not on this volume's grid")
    # A SEG is written from one full mask a segment (highdicom takes no other form): bounded like a series.
    slices, rows, columns = segmentation.shape
    try:
        limits.check_decoded_size(max(1, len(segmentation)) * slices, rows, columns, 1, 1)
    except limits.SizeLimitError as error:
        raise EditRefused(f"{len(segmentation)} segments are too many to write as one DICOM SEG "
                          f"({error.reason}); save them as NIfTI, or fewer at a time") from None
    frames = volume.slice_frame_numbers if len(set(volume.slice_sop_uids)) != len(volume.slice_sop_uids) else None
    return write_seg_segments(path, segment_specs(segmentation), sources, volume.slice_sop_uids,
                              slice_frame_numbers=frames, affine=volume.affine, **kwargs)


def open_seg(path: str | os.PathLike, volume) -> Segmentation:
    """Read a DICOM SEG onto ``volume``'s grid as an editable :class:`Segmentation` (overlaps kept).

    SEMIAUTOMATIC segments come back as model segments whose voxels are all marked as edited by a person - the
    file does not say which voxels were changed.
    """
    from viewer.core.jobs import run_job

    return run_job(open_seg_job(path, volume))


def open_seg_job(path: str | os.PathLike, volume):
    """:func:`open_seg` as a job (a generator yielding :class:`~viewer.core.jobs.Progress`, a segment a step) for a
    worker; returns the :class:`Segmentation`."""
    from viewer.core.export.seg import iter_seg_segments
    from viewer.core.jobs import Progress

    yield Progress(0, 1, "Reading DICOM SEG")
    frames = volume.slice_frame_numbers if len(set(volume.slice_sop_uids)) != len(volume.slice_sop_uids) else None
    segmentation = Segmentation.for_volume(volume)
    for done, total, item in iter_seg_segments(path, volume.slice_sop_uids, volume.shape, frames,
                                               affine=volume.affine, slice_positions=volume.slice_positions):
        origin = MANUAL if item.algorithm_type == MANUAL else AUTOMATIC
        segment = segmentation.new_segment(
            item.label, item.color, origin=origin, algorithm_name=item.algorithm_name,
            algorithm_version=item.algorithm_version, category=item.category, type=item.type, mask=item.mask)
        if item.algorithm_type == SEMIAUTOMATIC:
            segment.edited = segment.mask.copy()
        segmentation.add(segment, make_active=segmentation.active is None)
        yield Progress(done, total, f"Reading DICOM SEG: segment {done} of {total}")
    return segmentation


def save_nifti_labels(segmentation: Segmentation, path: str | os.PathLike, on_overlap: str = "raise") -> Path:
    """Write the segments as a NIfTI label map (values = segment numbers, RAS affine from the grid).

    A label map cannot hold overlaps: with overlapping segments this raises unless ``on_overlap="last_wins"``.
    """
    from viewer.core.export.nifti import write_nifti

    labels, _ = segmentation.label_map(on_overlap)
    dtype = np.uint8 if labels.max(initial=0) < 256 else np.uint16
    return write_nifti(path, labels.astype(dtype), segmentation.affine, description="Hounsfield segmentation")
