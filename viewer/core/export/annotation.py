"""Exporting an annotation: a frozen snapshot of it, and the one job that writes it as SEG, NIfTI, findings or SR.

The GUI runs :func:`export_job` on a worker (the user goes on editing: the job reads only the snapshot), a batch
run or a test drains it synchronously (:func:`~viewer.core.jobs.run_job`); both then call :func:`note_exported`.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viewer.core.editing.errors import EditRefused
from viewer.core.editing.review import FindingsReview
from viewer.core.editing.segmentation import Segmentation
from viewer.core.jobs import Progress

#: What :func:`export_job` writes: DICOM SEG, NIfTI labels, findings JSON, DICOM SR of the accepted findings.
EXPORT_KINDS = ("seg", "nifti", "findings", "sr")
#: Exports that save the segments (they make the annotation "not modified"; the findings ones do not).
SEGMENT_EXPORTS = ("seg", "nifti")


@dataclass(frozen=True)
class AnnotationSnapshot:
    """An annotation as it was when an export was asked for, independent of later edits.

    Attributes
    ----------
    segmentation
        A copy (:meth:`~viewer.core.editing.segmentation.Segmentation.copy`).
    review
        A copy of the findings review (by its state; no history).
    volume
        The :class:`~viewer.core.volume.Volume` annotated (read only).
    source_paths
        Files of the series (a SEG or SR references their headers).
    series_uid
        The annotated series.
    revision
        The edit history's revision at the snapshot (:func:`note_exported` compares it).
    """

    segmentation: Segmentation
    review: FindingsReview
    volume: Any
    source_paths: tuple[str, ...]
    series_uid: str
    revision: int

    @classmethod
    def of(cls, editor, source_paths: Sequence[str] = ()) -> AnnotationSnapshot:
        """Snapshot an :class:`~viewer.core.editing.editor.AnnotationEditor` (its volume, segments and review)."""
        volume = editor.volume
        return cls(editor.segmentation.copy(), FindingsReview.from_state(editor.review.to_state()), volume,
                   tuple(str(p) for p in source_paths), volume.series_uid, editor.history.revision)


def export_job(kind: str, path: str | os.PathLike, snapshot: AnnotationSnapshot, nifti_mode: str | None = None):
    """Write one export of ``snapshot``: a job (yields :class:`~viewer.core.jobs.Progress`) that returns what was
    written as text (the path, or for NIfTI a summary: :class:`~viewer.core.export.nifti_segments.NiftiExport`).

    Parameters
    ----------
    kind
        One of :data:`EXPORT_KINDS`.
    path
        The file (for NIfTI per segment, the name the files are derived from).
    snapshot
        What to write (:meth:`AnnotationSnapshot.of`).
    nifti_mode
        ``"last_wins"`` (one label map) or ``"per_segment"`` (one file per segment); None refuses overlapping
        segments (nothing is silently lost).

    Raises
    ------
    EditRefused
        A SEG of no segments, a label map of overlapping segments without a ``nifti_mode``.
    ValueError
        An unknown ``kind``.
    """
    yield Progress(0, 1, f"Exporting {kind.upper() if kind in ('seg', 'sr') else kind}")
    segmentation, review = snapshot.segmentation, snapshot.review
    written: Path | str  # a file's path, or the summary of a NIfTI export per segment
    if kind == "seg":
        from viewer.core.editing.io import save_seg
        from viewer.core.export.seg import read_sources

        if not len(segmentation):
            raise EditRefused("there are no segments to export")
        sources = read_sources(snapshot.source_paths)
        yield Progress(0, 1, "Writing DICOM SEG")
        written = save_seg(segmentation, path, snapshot.volume, sources)
    elif kind == "nifti":
        from viewer.core.editing.io import save_nifti_labels
        from viewer.core.export.nifti_segments import export_segments_nifti

        if nifti_mode is None:
            written = save_nifti_labels(segmentation, path)
        else:
            written = export_segments_nifti(segmentation, path, nifti_mode).summary()
    elif kind == "findings":
        from viewer.core.export.findings import write_review

        written = write_review(path, review, snapshot.series_uid)
    elif kind == "sr":
        from viewer.core.export.seg import read_sources
        from viewer.core.export.sr import write_measurement_report

        written = write_measurement_report(path, review, read_sources(snapshot.source_paths))
    else:
        raise ValueError(f"unknown export {kind!r}")
    yield Progress(1, 1, "Exported")
    return str(written)


def note_exported(editor, kind: str, snapshot: AnnotationSnapshot) -> None:
    """Tell ``editor`` its ``snapshot`` was written as ``kind``: after a SEG or NIfTI its segments are saved (the
    annotation is unmodified unless it was edited while the file was written) and its autosave is no longer
    offered for restoring."""
    if kind not in SEGMENT_EXPORTS:
        return
    if editor.history.revision == snapshot.revision:
        editor.history.mark_saved()
    if editor.autosave is not None:
        editor.autosave.note_exported()
