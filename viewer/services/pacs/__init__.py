"""Talking to a PACS: DICOMweb (dicomweb-client) and DIMSE (pynetdicom) behind one client interface.

``open_client(node)`` gives a :class:`~viewer.services.pacs.model.PacsClient` for a configured
:class:`~viewer.services.pacs.nodes.PacsNode`; the GUI, the CLI (``hounsfield pacs``) and the tests all go through it.
"""
