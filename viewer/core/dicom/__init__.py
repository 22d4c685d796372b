"""DICOM input: scan headers (:mod:`.scan`) -> catalog patients/studies/series (:mod:`.catalog`) -> load a Volume
(:mod:`.load`)."""
