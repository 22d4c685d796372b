"""Sending the work on a series back to a PACS: its DICOM SEG, its TID 1500 SR and, on request, its images.

:class:`SendRequest` is a snapshot taken on the GUI thread (copies of the segments, the measurements and the findings
review; the series' files); :func:`send_job` writes the SEG and the SR into a temporary folder exactly as File >
Export / Save Measurements write them (:func:`~viewer.core.editing.io.save_seg`,
:func:`~viewer.core.export.sr_measurements.write_measurements_report`), sends everything through the node's client
(STOW-RS or C-STORE) and returns one :class:`SentObject` per object: a SEG or SR that could not be written is a
failed object with the reason, and the others are still sent. The temporary files are removed afterwards (the
PACS holds them now; File > Export keeps local copies).
"""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.jobs import Cancelled, CancelToken, Job, Progress, is_cancelled
from viewer.services.pacs.model import PacsClient, SendResult

#: What can be sent, in the order it is sent and listed.
SEG, SR, IMAGE = "SEG", "SR", "Image"


@dataclass(frozen=True)
class SendRequest:
    """What to send, taken from the shown series.

    ``segmentation`` is a copy of the annotation's segments (None: no SEG); the SR reports ``measurements`` and the
    accepted findings of ``review`` (``sr`` False: no SR); ``images`` sends ``source_paths`` too.
    """

    volume: Any
    source_paths: tuple[str, ...]
    segmentation: Any = None
    measurements: tuple = ()
    review: Any = None
    sr: bool = True
    images: bool = False


@dataclass(frozen=True)
class SentObject:
    """One object of a send and what became of it (``message``: the PACS's words, or why it was not sent)."""

    kind: str
    name: str
    ok: bool
    message: str = ""
    sop_instance_uid: str = ""


@dataclass
class _Outgoing:
    kind: str
    name: str
    path: Path | None = None
    problem: str = ""
    result: SendResult | None = field(default=None, repr=False)


def accepted_findings(review: Any) -> list:
    """The findings a report carries (accepted ones); none without a review."""
    return list(review.with_status("accepted")) if review is not None else []


def send_job(client: PacsClient, request: SendRequest, cancel: CancelToken | None = None,
             folder: str | Path | None = None) -> Job[list[SentObject]]:
    """Write the SEG and the SR of ``request`` (into ``folder``, a temporary one by default) and send them, and the
    images when asked, through ``client``; one :class:`SentObject` per object, in the order SEG, SR, images."""
    with tempfile.TemporaryDirectory(prefix="hounsfield-send-") as temporary:
        out = Path(folder) if folder is not None else Path(temporary)
        outgoing: list[_Outgoing] = []
        if request.segmentation is not None:
            yield Progress(0, 0, "Writing the DICOM SEG")
            outgoing.append(_write_seg(request, out))
        if request.sr:
            yield Progress(0, 0, "Writing the DICOM SR")
            outgoing.append(_write_sr(request, out))
        if request.images:
            outgoing += [_Outgoing(IMAGE, Path(p).name, Path(p)) for p in request.source_paths]
        if is_cancelled(cancel):
            raise Cancelled()
        ready = [item for item in outgoing if item.path is not None and not item.problem]
        if ready:
            results = yield from client.send([item.path for item in ready if item.path is not None], cancel)
            for item, result in zip(ready, results):
                item.result = result
        return [_sent(item) for item in outgoing]


def _write_seg(request: SendRequest, out: Path) -> _Outgoing:
    from viewer.core.editing.io import save_seg
    from viewer.core.export.seg import read_sources

    item = _Outgoing(SEG, "Segmentation (DICOM SEG)")
    try:
        if not len(request.segmentation):
            raise ValueError("there are no segments")
        item.path = save_seg(request.segmentation, out / "segmentation.seg.dcm", request.volume,
                             read_sources(request.source_paths))
    except Exception as error:  # noqa: BLE001 - this object fails with the reason; the others are still sent
        item.problem = f"not written: {error}"
    return item


def _write_sr(request: SendRequest, out: Path) -> _Outgoing:
    from viewer.core.export.seg import read_sources
    from viewer.core.export.sr_measurements import write_measurements_report

    item = _Outgoing(SR, "Measurements and findings (DICOM SR)")
    review = request.review if accepted_findings(request.review) else None
    try:
        item.path = write_measurements_report(out / "measurements.sr.dcm", list(request.measurements),
                                              request.volume, read_sources(request.source_paths), review)
    except Exception as error:  # noqa: BLE001 - as for the SEG
        item.problem = f"not written: {error}"
    return item


def _sent(item: _Outgoing) -> SentObject:
    if item.problem:
        return SentObject(item.kind, item.name, False, item.problem)
    result = item.result
    if result is None:
        return SentObject(item.kind, item.name, False, "not sent")
    message = result.message or ("stored" if result.ok else "refused")
    return SentObject(item.kind, item.name, result.ok, message, result.sop_instance_uid)


def summary(sent: Sequence[SentObject]) -> str:
    """One line for the status bar: how many objects were stored, and of which kinds failed."""
    failed = sorted({s.kind for s in sent if not s.ok})
    stored = sum(s.ok for s in sent)
    text = f"{stored} of {len(sent)} objects stored"
    return text + (f"; failed: {', '.join(failed)}" if failed else "")
