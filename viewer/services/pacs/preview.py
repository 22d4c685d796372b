"""The first image of a retrieve, on screen while the rest arrive.

:func:`retrieve_with_preview` wraps a client's retrieve job: when the first instance of a series lands in the
staging folder it is read (header scan and pixel load, as for a local file) into a one-slice
:class:`~viewer.core.volume.Volume` and announced as the payload of one :class:`~inference.jobs.Progress`
(:class:`RetrievePreview`). It runs on the retrieve's own thread while the client's generator waits at its yield,
so the file is complete and cannot move away (a series folder moves into the cache only at the very end); the
other progress steps are passed on without their per-instance payloads (nothing in the GUI needs them, and the
worker passes the first payload on at once, unthrottled). Instances that are not images (a SEG, an SR at the head
of a study) are skipped for the preview; a file that cannot be read only means no preview, never a failed retrieve.

Why only one image: the stack's order and spacing come from every slice's position, which a PACS does not send
before the instances themselves; the complete series is then opened the normal way (scan, progressive load).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from inference.jobs import CancelToken, Job, is_cancelled
from viewer.services.pacs.model import PacsClient, RetrieveProgressPayload, RetrieveResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrievePreview:
    """The first image of a series being retrieved.

    ``volume`` has one slice (a multi-frame instance: its frames); ``info`` is the corner text
    (:func:`~viewer.core.session.series_info`); ``seconds`` is the time from the start of the retrieve;
    ``expected`` the instance count of the whole retrieve when the PACS said it (0 when not).
    """

    series_uid: str
    volume: Any
    info: dict
    seconds: float
    expected: int = 0


def preview_of(path: str | Path) -> tuple[Any, dict] | None:
    """``(volume, corner info)`` of one DICOM file read like a local one, or None when it holds no image."""
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan
    from viewer.core.session import series_info

    catalog = scan([str(path)])
    for patient in catalog.patients:
        for study in patient.studies:
            for series in study.series:
                if series.kind == "image" and series.n_instances:
                    return load_series(series), series_info(patient, study, series)
    return None


def retrieve_with_preview(client: PacsClient, study_uid: str, series_uid: str | None, cache: object,
                          cancel: CancelToken | None = None) -> Job[RetrieveResult]:
    """``client.retrieve(...)`` whose progress carries a :class:`RetrievePreview` once, for the first image that
    arrives (see the module doc); returns the retrieve's result. Closing this job closes the retrieve (its staging
    folder is dropped). One series comes with the study's model results (a SEG, a findings SR: see
    :mod:`viewer.services.pacs.results_companions`), so the app can show them over it."""
    started = time.perf_counter()
    job = client.retrieve(study_uid, series_uid, cache, cancel)
    tried: set[str] = set()
    shown = False
    try:
        while True:
            try:
                progress = next(job)
            except StopIteration as stop:
                if series_uid is None:  # a whole study: its AI results came with it
                    return stop.value
                from viewer.services.pacs.results_companions import retrieve_model_results

                return (yield from retrieve_model_results(client, study_uid, stop.value, cache, cancel))
            payload = progress.payload
            if not shown and isinstance(payload, RetrieveProgressPayload) and payload.series_uid not in tried:
                tried.add(payload.series_uid)  # one try per series: a series of SEGs is not read 50 times
                made = _try_preview(payload.path)
                if made is not None:
                    shown = True
                    volume, info = made
                    preview = RetrievePreview(payload.series_uid, volume, info, time.perf_counter() - started,
                                              progress.total)
                    yield replace(progress, payload=preview)
                    continue
            yield replace(progress, payload=None)
    finally:
        _stop(job, cancel)


def _stop(job: Job, cancel: CancelToken | None) -> None:
    """Close the client's job; when it was cancelled, first let it reach its own cancellation point.

    This job is closed at a yield when its runner sees the cancel first (the GUI's worker does): closing the client's
    job there would drop a DIMSE retrieve by aborting the association, and the client then waits for a response that
    cannot come (up to the node's timeout). Resumed once, the client sees the token and stops as it means to - a
    C-CANCEL that the PACS acknowledges, or (DICOMweb) closing the download - and its staging folder goes with it.
    """
    if is_cancelled(cancel):
        try:
            next(job)
        except Exception:  # Cancelled (as expected), or the retrieve ended or failed meanwhile: closed below anyway
            pass
    job.close()


def _try_preview(path: Path) -> tuple[Any, dict] | None:
    try:
        return preview_of(path)
    except Exception as error:  # untrusted input: no preview, the retrieve goes on (the full load reports it)
        log.info("no preview of a retrieved instance: %s", type(error).__name__)
        return None
