"""Results out of the app: DICOM SEG (:mod:`.seg`), findings JSON (:mod:`.findings`), NIfTI (:mod:`.nifti`)."""
