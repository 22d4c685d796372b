"""Hounsfield: a desktop DICOM viewer with AI assistance (research use only, not for diagnosis)."""

__version__ = "0.1.0"

import inference  # noqa: E402,F401  (sets PyTorch's allocator up before anything imports torch)
