"""Opening one DIMSE association for one operation, with every failure turned into a clear message.

Timeouts (connection, ACSE, DIMSE, network) all come from the node's ``timeout_s``, so a dead node - nothing
listening, or a port that accepts but never answers - fails within that time. pynetdicom logs request and response
identifiers (patient names, IDs) at INFO; its logger is kept at WARNING here and in the app's log set-up.
"""
from __future__ import annotations

import logging
import socket
import time
from collections.abc import Sequence

from pynetdicom import _config, evt
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.status import code_to_category

from viewer.services.pacs.dimse_transport import MAX_PDU, TunedAE
from viewer.services.pacs.model import PacsError
from viewer.services.pacs.nodes import PacsNode

_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False
_config.LOG_HANDLER_LEVEL = "none"  # no per-PDU / per-message debug handlers (their logger is at WARNING anyway)
logging.getLogger("pynetdicom").setLevel(logging.WARNING)

PENDING = (0xFF00, 0xFF01)
CANCELLED = 0xFE00


def new_ae(node: PacsNode) -> TunedAE:
    """An application entity titled ``node.our_aet`` with every timeout set to ``node.timeout_s``."""
    ae = TunedAE(ae_title=node.our_aet)
    ae.connection_timeout = ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = node.timeout_s
    return ae


def associate(node: PacsNode, contexts: Sequence[PresentationContext], *, roles: Sequence = (),
              handlers: Sequence = (), service: str = "") -> Association:
    """An established association with ``node`` proposing ``contexts``; PacsError with the reason otherwise."""
    answer: dict = {}

    def remember(event: evt.Event) -> None:  # the A-ASSOCIATE response, to say why it was rejected
        answer["primitive"] = getattr(event, "primitive", None)

    started = time.monotonic()
    assoc = new_ae(node).associate(node.host, node.port, contexts=list(contexts), ae_title=node.aet,
                                   ext_neg=list(roles) or None, max_pdu=MAX_PDU,
                                   evt_handlers=[(evt.EVT_ACSE_RECV, remember), *handlers])
    if assoc.is_established:
        return assoc
    raise PacsError(_refusal(node, assoc, answer.get("primitive"), time.monotonic() - started, service))


def _refusal(node: PacsNode, assoc: Association, primitive: object, elapsed: float, service: str) -> str:
    where = node.describe()
    if assoc.is_rejected and primitive is not None:
        reason = getattr(primitive, "reason_str", "") or "no reason given"
        hint = ""
        if "called AE title" in reason.lower() or "called ae title" in reason.lower():
            hint = f"; check the PACS AE title ({node.aet})"
        elif "calling ae title" in reason.lower():
            hint = f"; the PACS must know our AE title {node.our_aet}"
        return f"{where} rejected the association: {reason}{hint}"
    if assoc.rejected_contexts and not assoc.accepted_contexts:
        return f"{where} does not offer {service or 'the requested service'} to us (no proposed context accepted)"
    if elapsed >= 0.8 * node.timeout_s:
        return f"{where} did not answer within {node.timeout_s:g} s"
    return f"cannot connect to {where}: {_probe(node, node.timeout_s - elapsed)}"


def _probe(node: PacsNode, timeout_s: float) -> str:
    """Why the association failed fast: try a bare TCP connection to name the cause (refused, unknown host...)."""
    try:
        with socket.create_connection((node.host, node.port), timeout=max(0.5, timeout_s)):
            return "it accepts connections but does not speak DICOM, or closed the association"
    except socket.gaierror:
        return f"unknown host {node.host}"
    except OSError as exc:
        return (exc.strerror or str(exc) or type(exc).__name__).lower()


def status_code(status: object) -> int | None:
    """The Status of a response dataset, or None when there was no response (timeout, abort)."""
    code = getattr(status, "Status", None)
    return int(code) if code is not None else None


def describe_status(code: int, table: dict | None = None) -> str:
    """``0xA801 (Move destination unknown)``-style text for messages."""
    text = (table or {}).get(code, (code_to_category(code), ""))[1] or code_to_category(code)
    return f"0x{code:04X} ({text})"


def finish(assoc: Association | None, ok: bool) -> None:
    """Release after a completed operation, abort otherwise (a cancel, an error, a timeout)."""
    if assoc is None or not assoc.is_established:
        return
    if ok:
        assoc.release()
    else:
        assoc.abort()
