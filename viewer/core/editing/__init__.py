"""Mask editing and review, Qt-free: the segmentation model (:mod:`.segmentation`), pure tools (:mod:`.tools`),
one undo history (:mod:`.history`), findings review (:mod:`.review`), SEG/NIfTI I/O (:mod:`.io`), autosave
(:mod:`.autosave`), the façade the GUI binds to (:mod:`.editor`) and :class:`EditRefused`, the one base of the
refusals the user reads (:mod:`.errors`)."""
from viewer.core.editing.errors import EditRefused

__all__ = ["EditRefused"]
