"""Results out of the app: DICOM SEG (:mod:`.seg`), findings JSON (:mod:`.findings`), NIfTI (:mod:`.nifti`),
measurement report DICOM SR (:mod:`.sr`)."""
