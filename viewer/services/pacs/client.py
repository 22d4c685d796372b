"""``open_client(node)``: the client for a node's kind (imported lazily, so the GUI starts without pynetdicom)."""
from __future__ import annotations

from viewer.services.pacs.model import PacsClient
from viewer.services.pacs.nodes import NodeKind, PacsNode


def open_client(node: PacsNode) -> PacsClient:
    """A :class:`~viewer.services.pacs.model.PacsClient` for ``node`` (validated first; NodeError if invalid)."""
    node.validate()
    if node.kind is NodeKind.DICOMWEB:
        from viewer.services.pacs.dicomweb import DicomwebClient

        return DicomwebClient(node)
    from viewer.services.pacs.dimse import DimseClient

    return DimseClient(node)
