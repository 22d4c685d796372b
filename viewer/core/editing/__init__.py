"""Mask editing and review, Qt-free: the segmentation model (:mod:`.segmentation`), pure tools (:mod:`.tools`),
one undo history (:mod:`.history`), findings review (:mod:`.review`), SEG/NIfTI I/O (:mod:`.io`), autosave
(:mod:`.autosave`) and the façade the GUI binds to (:mod:`.editor`)."""
