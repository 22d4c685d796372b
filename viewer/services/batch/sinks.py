"""Where a batch puts its results: a folder, one sub-folder per series, written whole or not at all.

Layout of a folder sink (also what the app reads back, :mod:`viewer.services.batch.results`)::

    SINK/<StudyInstanceUID>/<series key>/batch.json            what ran: models (id, name, version, hash),
                                                               created, device, timings, outputs
    SINK/<StudyInstanceUID>/<series key>/<model id>/seg.dcm    a segmentation model's DICOM SEG
    SINK/<StudyInstanceUID>/<series key>/<model id>/findings.json, findings.sr.dcm   a detector's findings
    SINK/batch-manifest.sqlite                                 the manifest (:mod:`~viewer.services.batch.manifest`)

Write-then-rename: a series' files go to ``SINK/.staging/<random>/`` first and the finished folder is renamed into
place (one ``rename`` on the same file system), so a reader - or a driver killed half-way - never sees a series
folder with some of its files. A folder that is already there (a re-run with other models) is swapped out the
same way. Leftover staging folders of a killed run are removed when the next run opens the sink.

Folder names are UIDs, never patient names or IDs.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MANIFEST_NAME = "batch-manifest.sqlite"
RECORD_NAME = "batch.json"
STAGING = ".staging"


def safe_name(text: str) -> str:
    """A file-system-safe folder name for a UID or series key (UIDs pass unchanged)."""
    name = re.sub(r"[^0-9A-Za-z._-]", "_", str(text)).strip(".") or "_"
    return name[:128]


class FolderSink:
    """Results under the folder ``root`` (created when missing)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        """What the sink is, for the progress line."""
        return str(self.root)

    def open(self) -> None:
        """Create the folder and remove staging folders a killed run left behind."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / STAGING
        if staging.is_dir():
            for leftover in staging.iterdir():
                shutil.rmtree(leftover, ignore_errors=True)

    def default_manifest(self) -> Path:
        """Where the manifest lives unless the command says otherwise."""
        return self.root / MANIFEST_NAME

    def series_dir(self, item) -> Path:
        """The final folder of a :class:`~viewer.services.batch.sources.SeriesItem`'s results."""
        return self.root / safe_name(item.study_uid or "no-study") / safe_name(item.key)

    def write(self, item, files: Mapping[str, bytes], record: dict[str, Any]) -> dict[str, str]:
        """Write one series' result files and its ``batch.json`` record, atomically as a whole.

        Parameters
        ----------
        item
            The series.
        files
            ``{relative path: bytes}`` as a worker returned them (``<model id>/seg.dcm`` ...).
        record
            What ran (goes to ``batch.json``, with ``outputs`` set to the final paths relative to the series
            folder).

        Returns
        -------
        dict
            ``{relative path: absolute final path}`` of every file written.
        """
        final = self.series_dir(item)
        final.parent.mkdir(parents=True, exist_ok=True)
        (self.root / STAGING).mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="series-", dir=self.root / STAGING))
        try:
            for relative, data in files.items():
                target = _inside(staging, relative)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            record = {**record, "outputs": sorted(files)}
            (staging / RECORD_NAME).write_text(json.dumps(record, indent=1, default=str) + "\n")
            _swap_into_place(staging, final, self.root / STAGING)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return {relative: str(final / relative) for relative in sorted(files)}


def _inside(folder: Path, relative: str) -> Path:
    """``folder / relative``, refusing names that would leave the folder (a worker's file names are data)."""
    target = (folder / relative).resolve()
    if folder.resolve() not in target.parents:
        raise ValueError(f"refusing output name outside the series folder: {relative!r}")
    return target


def _swap_into_place(staging: Path, final: Path, trash_parent: Path) -> None:
    """Rename ``staging`` to ``final``; an existing ``final`` is first renamed aside and removed afterwards."""
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix="old-", dir=trash_parent))
        old.rmdir()
        final.rename(old)
    staging.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def open_sink(spec: str | os.PathLike, nodes=()):
    """The sink for ``--out``: a folder, or ``pacs:NODE`` (one of the configured ``nodes``)."""
    if str(spec).startswith("pacs:"):
        from viewer.services.batch.pacs import PacsSink

        return PacsSink.from_spec(str(spec), nodes)
    return FolderSink(spec)
