"""Where a batch finds its series: folders (every image series a scan finds), or a PACS query
(:mod:`viewer.services.batch.pacs`).

A source discovers :class:`SeriesItem` records (plain, picklable identifiers: no pixels, no patient data) and
loads one of them on the driver into a :class:`LoadedSeries`: the volume and the source headers a SEG or SR
references. The driver hands that to a worker through Ray's object store, so workers need no access to the files.

For ``--watch`` each item carries a ``fingerprint`` of its files (count, bytes, newest change): a series whose
fingerprint still changes between two polls is being written and waits (:class:`Settling`).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SourceError(RuntimeError):
    """A source cannot be read at all (no such folder, unknown PACS node); the message says why."""


@dataclass(frozen=True)
class SeriesItem:
    """One series to run: how the manifest and the sink name it, and how its source finds it again.

    ``key`` is the catalog key (the SeriesInstanceUID, or ``<uid>#<n>`` for a part of a split series);
    ``origin`` says where it came from (a folder, ``pacs:NODE``) for the manifest.
    """

    key: str
    series_uid: str
    study_uid: str
    origin: str
    modality: str = ""
    n_frames: int = 0
    fingerprint: tuple = ()


@dataclass
class LoadedSeries:
    """A series ready for the models: its :class:`~viewer.core.volume.Volume` and its DICOM headers (no pixels),
    which the SEG and SR reference; ``body_part`` is BodyPartExamined for the models' input check."""

    item: SeriesItem
    volume: Any
    sources: list = field(default_factory=list)
    body_part: str = ""


class LoadRefused(RuntimeError):
    """The series loaded but must not go to a model (e.g. slices that could not be decoded); the message says
    why."""


def _fingerprint(series) -> tuple:
    """``(files, bytes, newest mtime in ns)`` of a catalogued series: changes while the series is being written."""
    files = size = newest = 0
    for inst in series.instances:
        try:
            st = os.stat(inst.path)
        except OSError:
            continue
        files += 1
        size += st.st_size
        newest = max(newest, st.st_mtime_ns)
    return (files, size, newest)


class FolderSource:
    """Every image series under some folders (scanned header-only, as ``hounsfield scan`` does).

    Parameters
    ----------
    paths
        Folders or files. A folder that is missing raises :class:`SourceError` at :meth:`discover`.
    """

    def __init__(self, paths: Sequence[str | os.PathLike]) -> None:
        self.paths = [Path(p) for p in paths]
        self._series: dict[str, Any] = {}
        #: Files the last scan could not read (path, reason), for the summary.
        self.unreadable: list = []

    def describe(self) -> str:
        """What the source is, for the progress line and the manifest."""
        return ", ".join(str(p) for p in self.paths)

    def discover(self) -> list[SeriesItem]:
        """Scan the folders; the image series found, largest study first as the scan orders them."""
        from viewer.core.dicom.scan import scan

        missing = [p for p in self.paths if not p.exists()]
        if missing:
            raise SourceError(f"no such file or folder: {missing[0]}")
        catalog = scan(self.paths)
        self.unreadable = list(catalog.unreadable)
        items = []
        for patient in catalog.patients:
            for study in patient.studies:
                for series in study.series:
                    if series.kind != "image" or not series.instances:
                        continue
                    self._series[series.key] = series
                    items.append(SeriesItem(series.key, series.uid, study.uid, self._origin(series),
                                            series.modality, series.n_frames, _fingerprint(series)))
        return items

    def _origin(self, series) -> str:
        first = Path(series.instances[0].path).resolve()
        for root in self.paths:
            root = root.resolve()
            if first == root or root in first.parents:
                return str(root)
        return str(first.parent)

    def load(self, item: SeriesItem) -> LoadedSeries:
        """Decode the series and read its headers (:func:`load_catalogued`)."""
        return load_catalogued(item, self._series[item.key])


def load_catalogued(item: SeriesItem, series) -> LoadedSeries:
    """Decode a catalogued series and read its headers.

    Raises
    ------
    LoadRefused
        When some slices could not be decoded (a model is never run on a volume with blank slices), or the images
        are colour.
    """
    from viewer.core.dicom.load import load_series
    from viewer.core.export.seg import read_sources

    volume = load_series(series)
    if volume.failed_slices:
        raise LoadRefused(f"{len(volume.failed_slices)} of {volume.shape[0]} slices could not be decoded")
    if volume.is_rgb:
        raise LoadRefused("colour images cannot be run through the models")
    sources = read_sources([inst.path for inst in series.instances])
    body_part = str(sources[0].get("BodyPartExamined", "") or "").strip() if sources else ""
    return LoadedSeries(item, volume, sources, body_part)


class Settling:
    """Which discovered series are ready for ``--watch``: those whose fingerprint did not change since the
    previous poll (a series still arriving is seen again next time)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple] = {}

    def ready(self, items: Sequence[SeriesItem]) -> list[SeriesItem]:
        """The items whose files are the same as at the previous call."""
        ready = [item for item in items if self._seen.get(item.key) == item.fingerprint]
        self._seen = {item.key: item.fingerprint for item in items}
        return ready


def open_source(specs: Sequence[str], nodes: Sequence[Any] = ()):
    """The source for the command line's SOURCE arguments: folders, or one ``pacs:NODE?query`` (``nodes``: the
    configured PACS nodes, :class:`~viewer.services.pacs.nodes.PacsNode`, it may name)."""
    pacs = [s for s in specs if str(s).startswith("pacs:")]
    if not pacs:
        return FolderSource(specs)
    if len(specs) > 1:
        raise SourceError("a PACS source is given alone (one pacs:NODE?query, no folders beside it)")
    from viewer.services.batch.pacs import PacsSource

    return PacsSource.from_spec(pacs[0], nodes)
