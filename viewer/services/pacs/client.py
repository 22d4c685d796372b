"""``open_client(node)``: the client for a node's kind (imported lazily, so the GUI starts without pynetdicom)."""
from __future__ import annotations

from inference.jobs import Job, Progress
from viewer.services.pacs.model import EchoResult, PacsClient
from viewer.services.pacs.nodes import NodeKind, PacsNode


def open_client(node: PacsNode) -> PacsClient:
    """A :class:`~viewer.services.pacs.model.PacsClient` for ``node`` (validated first; NodeError if invalid)."""
    node.validate()
    if node.kind is NodeKind.DICOMWEB:
        from viewer.services.pacs.dicomweb import DicomwebClient

        return DicomwebClient(node)
    from viewer.services.pacs.dimse import DimseClient

    return DimseClient(node)


def echo_job(node: PacsNode) -> Job[EchoResult]:
    """``open_client(node).echo()`` as a job, so a GUI runs the C-ECHO / QIDO ping on a worker (it may wait for the
    node's whole timeout). An invalid node fails the job with :class:`~viewer.services.pacs.nodes.NodeError`."""
    yield Progress(0, 1, f"Testing {node.name}")
    result = open_client(node).echo()
    yield Progress(1, 1, "Answered" if result.ok else "No answer")
    return result
