"""Hounsfield: a desktop DICOM viewer with AI assistance (research use only, not for diagnosis)."""

__version__ = "0.1.0"
