"""What a PACS client does, as plain data and one protocol shared by the DICOMweb and DIMSE clients.

Long operations are jobs (:mod:`inference.jobs`): generators that ``yield`` :class:`~inference.jobs.Progress` and
``return`` their result, checking a cancel token at each yield. The GUI runs them on a worker thread, the CLI and
tests drain them with :func:`~inference.jobs.run_job`. A client object holds no association or HTTP session open
between calls and is used from one thread at a time (pynetdicom associations are not thread-safe).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from inference.jobs import CancelToken, Job


class PacsError(RuntimeError):
    """A PACS operation failed; the message says what, with which node, and why (never patient data)."""


@dataclass(frozen=True)
class QueryFilter:
    """Study-level query keys; empty means "any". ``patient_name`` may use DICOM wildcards (``*``, ``?``).

    ``limit`` / ``offset`` page the study list (QIDO-RS ``limit``/``offset``; for C-FIND the client pages locally).
    """

    patient_name: str = ""
    patient_id: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    modality: str = ""
    accession: str = ""
    study_uid: str = ""
    limit: int = 100
    offset: int = 0

    def date_range(self) -> str:
        """The DICOM date range (``YYYYMMDD-YYYYMMDD``, open ends allowed), or "" for any date."""
        if self.date_from is None and self.date_to is None:
            return ""
        low = self.date_from.strftime("%Y%m%d") if self.date_from else ""
        high = self.date_to.strftime("%Y%m%d") if self.date_to else ""
        return low if low == high else f"{low}-{high}"


@dataclass(frozen=True)
class StudyHit:
    """One study found by a query."""

    study_uid: str
    patient_name: str = ""
    patient_id: str = ""
    study_date: str = ""
    description: str = ""
    accession: str = ""
    modalities: tuple[str, ...] = ()
    n_series: int | None = None
    n_instances: int | None = None


@dataclass(frozen=True)
class SeriesHit:
    """One series of a study."""

    study_uid: str
    series_uid: str
    modality: str = ""
    series_number: int | None = None
    description: str = ""
    n_instances: int | None = None
    sop_class_uids: tuple[str, ...] = ()


@dataclass(frozen=True)
class EchoResult:
    """Whether the node answered (C-ECHO or a QIDO ping), how fast, and the reason when it did not."""

    ok: bool
    seconds: float
    message: str = ""


@dataclass(frozen=True)
class RetrieveResult:
    """A finished retrieve: the cache folder of each series and how many instances came.

    ``warnings`` says what the user should know although the retrieve succeeded - fewer instances than the PACS
    counted, parts skipped because they were not DICOM or of another series - in words, without patient data.
    """

    series_dirs: dict[str, Path]
    n_instances: int
    n_bytes: int
    seconds: float
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class SendResult:
    """What the node said about one object we sent."""

    path: Path
    sop_instance_uid: str
    ok: bool
    message: str = ""


@dataclass
class RetrieveProgressPayload:
    """``Progress.payload`` while retrieving: the instance file just stored (in the series' staging folder)."""

    series_uid: str
    path: Path
    received: int
    expected: int | None = None
    extra: dict = field(default_factory=dict)


class PacsClient(Protocol):
    """One node's client. Every method raises :class:`PacsError` with a clear message on failure."""

    def echo(self) -> EchoResult:
        """C-ECHO (DIMSE) or a minimal QIDO-RS request (DICOMweb); never raises, reports in the result."""
        ...

    def query_studies(self, query: QueryFilter, cancel: CancelToken | None = None) -> Job[list[StudyHit]]:
        """Studies matching ``query`` (one page: ``query.limit`` from ``query.offset``)."""
        ...

    def query_series(self, study_uid: str, cancel: CancelToken | None = None) -> Job[list[SeriesHit]]:
        """The series of one study."""
        ...

    def retrieve(self, study_uid: str, series_uid: str | None, cache: object,
                 cancel: CancelToken | None = None) -> Job[RetrieveResult]:
        """Fetch a study (``series_uid`` None) or one series into ``cache`` (a retrieve cache), streaming:
        each stored instance is announced in ``Progress.payload`` (:class:`RetrieveProgressPayload`). A cancelled
        or failed retrieve leaves no partial series in the cache."""
        ...

    def send(self, paths: list[Path], cancel: CancelToken | None = None) -> Job[list[SendResult]]:
        """STOW-RS or C-STORE each file; one :class:`SendResult` per file."""
        ...
