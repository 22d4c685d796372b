"""A PACS as a batch source (``pacs:NODE?query``) and sink (``pacs:NODE``), over the app's PACS clients
(:mod:`viewer.services.pacs`: DICOMweb or DIMSE, whichever the node is).

Source: the query names studies - ``date`` (``today``, ``YYYYMMDD`` or ``YYYYMMDD-YYYYMMDD``; ``today`` is read again
at every ``--watch`` poll), ``modality``, ``patient_id``, ``accession``, ``study_uid`` (DICOM keywords such as
``StudyDate`` or ``ModalitiesInStudy`` work too) - and every image series of those studies is a batch item (SEG, SR,
RTSTRUCT, presentation states and the like are not images, so the batch's own results are never run again). The
driver retrieves a series into the app's retrieve cache (complete or not at all) when it loads it; the workers never
talk to the PACS. A series' fingerprint for ``--watch`` is its instance count: one still arriving waits.

Sink: the DICOM results (SEG, SR) are stored on the node (STOW-RS or C-STORE); ``findings.json`` and ``batch.json``
stay in the manifest's record only. A PACS cannot take a series back, so "whole or nothing" holds per object: an
object the node refuses fails the series in the manifest (with the node's reason) and the next run sends it again
(storing the same SOP instance again replaces it).

Which nodes exist is the app's setting (AI > PACS nodes in the GUI); the command line passes them in. Nothing here
logs patient data: studies and series are named by UID.
"""
from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from viewer.services.batch.sources import SeriesItem, SourceError, load_catalogued

#: Modalities of series that are not images (the batch's own SEG and SR among them).
NOT_IMAGES = frozenset({"SEG", "SR", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "PR", "KO", "REG", "DOC", "RWV",
                        "FID", "PLAN", "AU", "ECG"})
#: Query keys accepted, by the name a user may write -> QueryFilter field.
QUERY_KEYS = {"date": "date", "studydate": "date", "modality": "modality", "modalitiesinstudy": "modality",
              "patient_id": "patient_id", "patientid": "patient_id", "accession": "accession",
              "accessionnumber": "accession", "study_uid": "study_uid", "studyinstanceuid": "study_uid"}
PAGE = 100


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``pacs:NODE?key=value&...`` -> ``(NODE, {field: value})``; SourceError for an unknown key."""
    if not spec.startswith("pacs:"):
        raise SourceError(f"not a PACS spec: {spec!r}")
    name, _, query = spec[len("pacs:"):].partition("?")
    params = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        norm = key.strip().lower()
        field = QUERY_KEYS.get(norm) or QUERY_KEYS.get(norm.replace("_", ""))
        if field is None:
            raise SourceError(f"unknown PACS query key {key!r} (known: date, modality, patient_id, accession, "
                              "study_uid)")
        params[field] = value.strip()
    if not name.strip():
        raise SourceError(f"no node named in {spec!r} (pacs:NODE?date=today)")
    return name.strip(), params


def find_node(name: str, nodes: Sequence[Any]):
    """The configured node called ``name``; SourceError listing the known ones otherwise."""
    for node in nodes:
        if node.name == name:
            return node.validate()
    known = ", ".join(n.name for n in nodes) or "none configured (add them in the app: PACS > Nodes)"
    raise SourceError(f"no PACS node named {name!r} (known: {known})")


def _date(text: str, today: dt.date) -> tuple[dt.date | None, dt.date | None]:
    if not text:
        return None, None
    if text.lower() == "today":
        return today, today
    low, dash, high = text.partition("-")
    try:
        first = dt.datetime.strptime(low, "%Y%m%d").date() if low else None
        # "YYYYMMDD" is that day; "YYYYMMDD-" and "-YYYYMMDD" are open ranges
        last = dt.datetime.strptime(high, "%Y%m%d").date() if high else (None if dash else first)
    except ValueError:
        raise SourceError(f"date: YYYYMMDD, YYYYMMDD-YYYYMMDD or today, not {text!r}") from None
    return first, last


def query_filter(params: Mapping[str, str], today: dt.date | None = None):
    """The study query of the spec's parameters (``date=today`` is today when called)."""
    from viewer.services.pacs.model import QueryFilter

    first, last = _date(params.get("date", ""), today or dt.date.today())
    return QueryFilter(patient_id=params.get("patient_id", ""), date_from=first, date_to=last,
                       modality=params.get("modality", ""), accession=params.get("accession", ""),
                       study_uid=params.get("study_uid", ""), limit=PAGE)


def _run(job):
    from inference.jobs import run_job

    return run_job(job)


class PacsSource:
    """Image series of the studies a query finds on a node (see the module docstring)."""

    def __init__(self, node, params: Mapping[str, str], cache_root: str | os.PathLike | None = None) -> None:
        from viewer.services.pacs.cache import RetrieveCache, default_cache_root

        self.node, self.params = node, dict(params)
        self.cache = RetrieveCache(Path(cache_root) if cache_root else default_cache_root())
        self.unreadable: list = []

    @classmethod
    def from_spec(cls, spec: str, nodes: Sequence[Any]) -> PacsSource:
        """``pacs:NODE?query`` with NODE among ``nodes``."""
        name, params = parse_spec(spec)
        query_filter(params)  # a bad date is refused now, not at the first poll
        return cls(find_node(name, nodes), params)

    def describe(self) -> str:
        """``pacs:NODE`` (the query may hold patient IDs: not repeated)."""
        return f"pacs:{self.node.name}"

    def _client(self):
        # a client per call: clients hold nothing open and are used from one thread at a time, while the driver
        # queries on its thread and retrieves on its loading thread
        from viewer.services.pacs.client import open_client

        return open_client(self.node)

    def discover(self) -> list[SeriesItem]:
        """Query the studies (every page), then each study's series."""
        from dataclasses import replace

        from viewer.services.pacs.model import PacsError

        query = query_filter(self.params)
        try:
            studies: list = []
            while True:
                page = _run(self._client().query_studies(replace(query, offset=len(studies))))
                studies += page
                if len(page) < query.limit:
                    break
            items = []
            for study in studies:
                for series in _run(self._client().query_series(study.study_uid)):
                    if (series.modality or "").upper() in NOT_IMAGES:
                        continue
                    items.append(SeriesItem(series.series_uid, series.series_uid, study.study_uid,
                                            self.describe(), series.modality, series.n_instances or 0,
                                            (series.n_instances,)))
        except PacsError as error:
            raise SourceError(str(error)) from None
        return items

    def load(self, item: SeriesItem):
        """Retrieve the series into the retrieve cache (unless it is there) and load it from there."""
        from viewer.core.dicom.scan import scan

        folder = self.cache.series_path(item.study_uid, item.series_uid)
        if folder is None:
            result = _run(self._client().retrieve(item.study_uid, item.series_uid, self.cache))
            folder = result.series_dirs.get(item.series_uid)
            if folder is None:
                raise SourceError("the PACS sent nothing of the series")
        self.cache.pin(item.series_uid)  # not evicted while it loads
        try:
            found = [s for s in scan([folder]).all_series() if s.kind == "image" and s.uid == item.series_uid]
            if not found:
                raise SourceError("no image of the series could be read")
            return load_catalogued(item, max(found, key=lambda s: s.n_frames))
        finally:
            self.cache.pin(item.series_uid, False)


class PacsSink:
    """Stores each series' DICOM results on a node (see the module docstring)."""

    def __init__(self, node) -> None:
        self.node = node

    @classmethod
    def from_spec(cls, spec: str, nodes: Sequence[Any]) -> PacsSink:
        """``pacs:NODE`` with NODE among ``nodes`` (a query is not allowed here)."""
        name, params = parse_spec(spec)
        if params:
            raise SourceError("a PACS sink takes no query: --out pacs:NODE")
        return cls(find_node(name, nodes))

    def describe(self) -> str:
        """``pacs:NODE``."""
        return f"pacs:{self.node.name}"

    def open(self) -> None:
        """Check that the node answers (before any model runs)."""
        from viewer.services.pacs.client import open_client

        echo = open_client(self.node).echo()
        if not echo.ok:
            raise SourceError(f"{self.node.describe()} does not answer: {echo.message}")

    def default_manifest(self) -> Path:
        """``<user data>/batch/manifest-<node>.sqlite``: a PACS has no folder of ours."""
        from inference.registry import user_data_dir
        from viewer.services.batch.sinks import safe_name

        return user_data_dir() / "batch" / f"manifest-{safe_name(self.node.name)}.sqlite"

    def write(self, item, files: Mapping[str, bytes], record: dict) -> dict[str, str]:
        """Store the ``.dcm`` results; returns ``{relative path: "pacs:NODE/<SOP instance UID>"}``.

        Raises
        ------
        OSError
            When the node refused an object (its reason; the series is failed and sent again next run).
        """
        from viewer.services.pacs.client import open_client
        from viewer.services.pacs.model import PacsError

        dicom = {name: data for name, data in files.items() if name.endswith(".dcm")}
        if not dicom:
            return {}
        with tempfile.TemporaryDirectory(prefix="hounsfield-send-") as folder:
            paths = {}
            for k, (name, data) in enumerate(sorted(dicom.items())):
                paths[name] = Path(folder) / f"{k}.dcm"
                paths[name].write_bytes(data)
            try:
                results = _run(open_client(self.node).send(list(paths.values())))
            except PacsError as error:
                raise OSError(str(error)) from None
        refused = [r for r in results if not r.ok]
        if refused:
            raise OSError(f"{self.node.name} refused {len(refused)} of {len(results)} object(s): "
                          f"{refused[0].message}")
        by_path = {r.path: r.sop_instance_uid for r in results}
        return {name: f"{self.describe()}/{by_path.get(path, '')}" for name, path in paths.items()}
