"""Sending files to a PACS by C-STORE, one result per file.

Each file's header is read first (SOP class, instance UID, transfer syntax): an unreadable file gets a failed
:class:`~viewer.services.pacs.model.SendResult` and is not sent. The rest go in batches whose presentation contexts
(one per SOP class and encoding) fit in one association (128 at most), each batch over its own association.
Files keep their encoding when it is compressed; uncompressed ones may go in either little-endian encoding.
"""
from __future__ import annotations

from pathlib import Path

from pydicom.uid import UID
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS

from inference.jobs import Cancelled, CancelToken, Job, Progress, is_cancelled
from viewer.core.dicom.limits import dcmread
from viewer.services.pacs.dimse_assoc import associate, describe_status, finish, status_code
from viewer.services.pacs.dimse_contexts import batch_send_contexts, contexts_for, send_context
from viewer.services.pacs.model import SendResult
from viewer.services.pacs.nodes import PacsNode


def _header(path: Path) -> tuple[str, str, str]:
    """(SOP class UID, SOP instance UID, transfer syntax UID) of a DICOM file; ValueError with the reason."""
    try:
        header = dcmread(path, stop_before_pixels=True, force=False)
    except Exception as exc:  # untrusted input: any reader error means "not sendable"
        raise ValueError(f"not a readable DICOM file ({type(exc).__name__})") from None
    sop_class = str(header.get("SOPClassUID", "") or getattr(header.file_meta, "MediaStorageSOPClassUID", ""))
    sop_uid = str(header.get("SOPInstanceUID", "") or "")
    syntax = str(getattr(header.file_meta, "TransferSyntaxUID", "") or "")
    if not (sop_class and sop_uid and syntax):
        raise ValueError("no SOP class, SOP instance UID or transfer syntax in the file")
    return sop_class, sop_uid, syntax


def send_files(node: PacsNode, paths: list[Path], cancel: CancelToken | None = None) -> Job[list[SendResult]]:
    """C-STORE ``paths`` to ``node``; one :class:`SendResult` per path, in order (see the module doc)."""
    results: dict[int, SendResult] = {}
    sendable: list[tuple[int, str, str, str]] = []  # (index, sop class, sop uid, syntax)
    for index, path in enumerate(paths):
        try:
            sendable.append((index, *_header(path)))
        except (ValueError, OSError) as exc:
            results[index] = SendResult(path, "", False, str(exc))
    keys = [send_context(sop_class, syntax) for _, sop_class, _, syntax in sendable]
    total = len(paths)
    yield Progress(len(results), total, "Sending")
    for batch in batch_send_contexts(keys):
        assoc = associate(node, contexts_for(keys[i] for i in batch), service="storage (C-STORE)")
        ok = False
        try:
            accepted = {(cx.abstract_syntax, cx.transfer_syntax[0]) for cx in assoc.accepted_contexts}
            for position in batch:
                index, sop_class, sop_uid, syntax = sendable[position]
                results[index] = _store_one(assoc, paths[index], sop_class, sop_uid, syntax, accepted,
                                            node.describe())
                yield Progress(len(results), total, f"Sent {len(results)}/{total}")
                if is_cancelled(cancel):
                    raise Cancelled()
            ok = True
        finally:
            finish(assoc, ok)
    return [results[i] for i in range(total)]


def _store_one(assoc, path: Path, sop_class: str, sop_uid: str, syntax: str, accepted: set,
               where: str) -> SendResult:
    _, offered = send_context(sop_class, syntax)
    if not any((sop_class, ts) in accepted for ts in offered):
        return SendResult(path, sop_uid, False, f"{where} does not accept {UID(sop_class).name} in "
                                                f"{UID(syntax).name}")
    try:
        code = status_code(assoc.send_c_store(path))
    except Exception as exc:  # pynetdicom re-reads the file; a file changed or broken since is this file's failure
        return SendResult(path, sop_uid, False, f"not sent: {exc}")
    if code is None:
        return SendResult(path, sop_uid, False, f"no answer from {where}")
    if code == 0:
        return SendResult(path, sop_uid, True)
    text = describe_status(code, STORAGE_SERVICE_CLASS_STATUS)
    if 0xB000 <= code <= 0xBFFF:
        return SendResult(path, sop_uid, True, f"stored with warning {text}")
    return SendResult(path, sop_uid, False, f"refused: {text}")
