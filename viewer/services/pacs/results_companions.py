"""After a single-series retrieve, the model results of that study too: ``hounsfield batch --out pacs:NODE`` stores a
SEG and a findings SR beside the image series, and the app shows them when the series opens
(:mod:`viewer.services.batch.study_results`) - but only if they were retrieved with it.

A series query says little: modality and description, not the manufacturer or what a series references. So a
series is fetched when it looks like ours by the descriptions our writers give (``"<model name> (AI)"`` for a SEG,
``"AI findings"`` for the SR); a person's SEG or a scanner's dose SR is not downloaded on the way. The app then
checks each fetched object properly (and ignores one that is not a model's result of the shown series). A failing
query or companion retrieve never fails the retrieve the user asked for: it is logged and the series opens alone.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import TypeVar

from inference.jobs import CancelToken, Job, Progress
from viewer.services.pacs.model import PacsClient, PacsError, RetrieveResult, SeriesHit

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The SR description ``hounsfield infer`` writes (:func:`viewer.core.export.sr.build_measurement_report`).
MODEL_SR_DESCRIPTION = "AI findings"


def looks_like_model_result(hit: SeriesHit) -> bool:
    """Whether a series of a query is likely a model's SEG or findings SR written here (see the module doc)."""
    description = (hit.description or "").strip()
    if hit.modality == "SEG":
        return description.endswith("(AI)")
    return hit.modality == "SR" and description == MODEL_SR_DESCRIPTION


def retrieve_model_results(client: PacsClient, study_uid: str, result: RetrieveResult, cache: object,
                           cancel: CancelToken | None = None) -> Job[RetrieveResult]:
    """The study's model-result series not in ``result`` retrieved into ``cache`` as well; returns ``result`` with
    their folders added. Progress repeats the finished retrieve's count (the views are not told of a new total) and
    carries ``result`` as its payload: the series asked for is in the cache already, so a cancel from here on keeps
    and opens it (:class:`viewer.qt.pacs_retrieve.PacsRetriever`)."""
    done = Progress(result.n_instances, result.n_instances, "Looking for the study's AI results", payload=result)
    try:
        hits = yield from _quiet(client.query_series(study_uid, cancel), done)
    except PacsError as error:
        log.info("no query for the study's AI results: %s", error)
        return result
    for hit in hits:
        if hit.series_uid in result.series_dirs or not looks_like_model_result(hit):
            continue
        yield done
        try:
            extra = yield from _quiet(client.retrieve(study_uid, hit.series_uid, cache, cancel), done)
        except PacsError as error:
            log.info("an AI result series was not retrieved: %s", error)
            continue
        result = replace(result, series_dirs={**result.series_dirs, **extra.series_dirs},
                         n_instances=result.n_instances + extra.n_instances, n_bytes=result.n_bytes + extra.n_bytes,
                         seconds=result.seconds + extra.seconds)
    return result


def _quiet(job: Job[T], done: Progress) -> Job[T]:
    """``job``, each of its steps passed on as ``done`` (still a cancellation point; its payloads are not needed)."""
    try:
        while True:
            try:
                next(job)
            except StopIteration as stop:
                return stop.value
            yield done
    finally:
        job.close()
