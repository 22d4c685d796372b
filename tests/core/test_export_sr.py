"""DICOM SR measurement report (TID 1500): each accepted nodule's centre and diameter, read back by highdicom."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest

from tests.inference.helpers import real_volume
from viewer.core.editing.history import EditHistory
from viewer.core.editing.review import FindingsReview
from viewer.core.export.seg import read_sources
from viewer.core.export.sr import read_measurements, write_measurement_report


def test_accepted_nodules_are_written_as_tid1500_measurements_and_read_back(tmp_path):
    series, volume = real_volume("lidc-idri-0001")
    review = FindingsReview(volume.affine, volume.shape, EditHistory(), model_id="lung_nodule_ct_detection")
    centre = volume.index_to_lps([310, 220, 80])
    review.add(centre, [9.0, 8.0, 7.5])  # accepted by hand
    rejected = review.add(centre + 30, [5, 5, 5])
    review.reject(rejected.id)
    review.add(centre - 20, [4, 6, 4], status="pending")
    path = write_measurement_report(tmp_path / "findings.sr.dcm", review,
                                    read_sources([i.path for i in series.instances]), algorithm_version="1.0")
    ds = pydicom.dcmread(path)
    assert ds.Modality == "SR" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert ds.StudyInstanceUID == volume.study_uid
    evidence = {str(i.ReferencedSOPInstanceUID) for s in ds.CurrentRequestedProcedureEvidenceSequence
                for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
    assert evidence == set(volume.slice_sop_uids)
    (measurement,) = read_measurements(path)  # only the accepted one
    assert measurement["finding_type"] == "Nodule" and measurement["tracking_id"] == "nodule 1"
    assert np.allclose(measurement["center_lps"], centre, atol=1e-3)
    assert measurement["diameter_mm"] == 9.0
    # and the point lands on the voxel it came from
    assert np.allclose(volume.lps_to_index(measurement["center_lps"]), [310, 220, 80], atol=1e-3)
    assert "PatientName" not in str(measurement)


def test_a_report_without_accepted_findings_is_refused_clearly():
    series, volume = real_volume("mr-decubitus-hfdr")
    review = FindingsReview(volume.affine, volume.shape)
    review.add(volume.index_to_lps([10, 10, 3]), [5, 5, 5], status="rejected")
    with pytest.raises(ValueError, match="no accepted findings"):
        write_measurement_report("unused.dcm", review, read_sources([i.path for i in series.instances]))
