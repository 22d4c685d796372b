"""Exports: DICOM SEG over the real source images (highdicom reads it back onto the same voxels), findings JSON,
NIfTI with the right patient geometry."""
from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pydicom
import pytest

from inference.types import Detections, label_table
from tests.inference.helpers import real_volume
from viewer.core.export.findings import findings_dict, read_findings, write_findings
from viewer.core.export.nifti import write_nifti
from viewer.core.export.seg import build_seg, read_seg_labels, read_sources, write_seg


def _sources(series):
    return read_sources([i.path for i in series.instances])


def _frame_lps(seg, frame_index, row, col):
    """LPS of a SEG pixel from the SEG's own geometry (plane position + shared orientation and spacing)."""
    shared = seg.SharedFunctionalGroupsSequence[0]
    orientation = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float)
    spacing = np.array(shared.PixelMeasuresSequence[0].PixelSpacing, float)
    position = np.array(seg.PerFrameFunctionalGroupsSequence[frame_index].PlanePositionSequence[0]
                        .ImagePositionPatient, float)
    return position + orientation[:3] * spacing[1] * col + orientation[3:] * spacing[0] * row


@pytest.mark.parametrize("name", ["lidc-idri-0001", "mr-decubitus-hfdr"])
def test_seg_references_the_source_frames_and_reads_back_on_the_same_voxels(tmp_path, name):
    import highdicom as hd

    series, volume = real_volume(name)
    labels = np.zeros(volume.shape, np.uint8)
    nz, ny, nx = volume.shape
    labels[nz // 3:nz // 3 + 3, ny // 4:ny // 4 + 20, nx // 5:nx // 5 + 30] = 1
    labels[nz // 2, ny // 2:ny // 2 + 6, nx // 2:nx // 2 + 4] = 4
    path = write_seg(tmp_path / "seg.dcm", labels, label_table({1: "Lung", 4: "nodule"}), _sources(series),
                     volume.slice_sop_uids, algorithm_name="Test model", algorithm_version="2.1")
    seg = hd.seg.segread(str(path))
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == volume.series_uid
    assert seg.StudyInstanceUID == volume.study_uid
    # Every frame references the source image of its slice.
    for group in seg.PerFrameFunctionalGroupsSequence:
        uid = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        assert uid in volume.slice_sop_uids
    back, names = read_seg_labels(path, volume.slice_sop_uids, volume.shape)
    assert names == {1: "Lung", 2: "nodule"}
    assert np.array_equal(back == 1, labels == 1) and np.array_equal(back == 2, labels == 4)
    # Segment descriptions: coded concepts and the algorithm.
    lung, nodule = seg.SegmentSequence
    assert lung.SegmentedPropertyTypeCodeSequence[0].CodeValue == "39607008"
    assert lung.SegmentedPropertyCategoryCodeSequence[0].CodeMeaning == "Anatomical Structure"
    assert nodule.SegmentedPropertyTypeCodeSequence[0].CodeValue == "27925004"
    assert lung.SegmentAlgorithmType == "AUTOMATIC" and lung.SegmentAlgorithmName == "Test model"
    algorithm = lung.SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "Test model" and algorithm.AlgorithmVersion == "2.1"
    assert algorithm.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"


def test_a_seg_on_another_pixel_grid_is_refused_with_the_reason(tmp_path):
    """Frames of another size than the volume's slices cannot be laid on it voxel for voxel (a numpy broadcast
    error before)."""
    from pydicom.pixels import pack_bits

    series, volume = real_volume("mr-decubitus-hfdr")
    labels = np.zeros(volume.shape, np.uint8)
    labels[:, 4:20, 6:30] = 1
    path = write_seg(tmp_path / "seg.dcm", labels, {1: "x"}, _sources(series), volume.slice_sop_uids)
    seg = pydicom.dcmread(path)
    half = seg.pixel_array[:, ::2, ::2]
    seg.Rows, seg.Columns = half.shape[1:]
    seg.PixelData = pack_bits(half.ravel())
    seg.save_as(path)
    with pytest.raises(ValueError, match=r"SEG frames are \(\d+, \d+\), the volume's slices"):
        read_seg_labels(path, volume.slice_sop_uids, volume.shape)


def test_a_known_lps_point_lands_on_the_same_voxel_in_the_volume_and_in_the_seg(tmp_path):
    import highdicom as hd

    series, volume = real_volume("mr-decubitus-hfdr")
    point = volume.index_to_lps([100, 140, 17])  # (x, y, z) -> LPS; the SEG does not know our grid
    x, y, z = np.rint(volume.lps_to_index(point)).astype(int)
    labels = np.zeros(volume.shape, np.uint8)
    labels[z, y, x] = 1
    seg = hd.seg.segread(str(write_seg(tmp_path / "p.dcm", labels, {1: "point"}, _sources(series),
                                       volume.slice_sop_uids)))
    assert seg.NumberOfFrames == 1  # empty frames are left out
    pixels = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    rows, cols = np.nonzero(pixels[0])
    assert len(rows) == 1
    assert np.allclose(_frame_lps(seg, 0, rows[0], cols[0]), point, atol=1e-3)


def test_edited_results_say_semiautomatic_and_empty_maps_still_make_a_valid_seg(tmp_path):
    series, volume = real_volume("mr-decubitus-hfdr")
    sources = _sources(series)
    labels = np.zeros(volume.shape, np.uint8)
    labels[3, 5, 5] = 2
    seg = build_seg(labels, {2: "liver"}, sources, volume.slice_sop_uids, edited=True)
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"
    empty = build_seg(np.zeros(volume.shape, np.uint8), {1: "spleen"}, sources, volume.slice_sop_uids)
    assert empty.NumberOfFrames == volume.shape[0] and len(empty.SegmentSequence) == 1
    with pytest.raises(ValueError, match="no entry in the label table"):
        build_seg(labels, {1: "other"}, sources, volume.slice_sop_uids)
    with pytest.raises(ValueError, match="source image"):
        build_seg(labels, {2: "liver"}, sources[:-1], volume.slice_sop_uids)


def test_unknown_label_names_get_a_private_code(tmp_path):
    series, volume = real_volume("mr-decubitus-hfdr")
    labels = np.zeros(volume.shape, np.uint8)
    labels[1, 1, 1] = 7
    seg = build_seg(labels, {7: "ground glass"}, _sources(series), volume.slice_sop_uids)
    code = seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0]
    assert (code.CodingSchemeDesignator, code.CodeMeaning) == ("99HOUNSFIELD", "ground glass")


def test_nifti_keeps_the_patient_geometry(tmp_path):
    import SimpleITK as sitk

    _, volume = real_volume("mr-decubitus-hfdr")
    values = np.random.default_rng(0).random(volume.shape).astype(np.float32)
    path = write_nifti(tmp_path / "saliency.nii.gz", values, volume.affine)
    image = sitk.ReadImage(str(path))
    assert np.array_equal(sitk.GetArrayFromImage(image), values)
    for index in ([0, 0, 0], [255, 0, 34], [17, 200, 9]):
        assert np.allclose(image.TransformIndexToPhysicalPoint(index), volume.index_to_lps(index), atol=1e-3)


def test_nifti_stores_a_sheared_affine_exactly_in_the_sform(tmp_path):
    affine = np.array([[0.7, 0, 0, -100], [0, 0.7, 0.3, -50], [0, 0, 2.5, -300], [0, 0, 0, 1.0]])  # tilt shear
    path = write_nifti(tmp_path / "m.nii.gz", np.zeros((4, 5, 6), np.uint8), affine)
    header = gzip.decompress(path.read_bytes())[:348]
    srow = np.array(struct.unpack("<12f", header[280:328])).reshape(3, 4)
    assert np.allclose(srow, (np.diag([-1, -1, 1, 1.0]) @ affine)[:3], atol=1e-5)
    assert struct.unpack("<8h", header[40:56])[:4] == (3, 6, 5, 4)


def _detections():
    affine = np.diag([0.7, 0.7, 2.5, 1.0])
    return Detections(boxes_lps=[[0, 0, 0, 7, 7, 5], [10, 10, 10, 17, 14, 15]],
                      boxes_voxel=[[0, 0, 0, 3, 11, 11], [4, 15, 15, 7, 21, 25]], scores=[0.2, 0.9], labels=[1, 1],
                      affine=affine, shape=(10, 40, 40), table=label_table({1: "nodule"}), model_id="m")


def test_findings_follow_the_schema_sorted_by_score(tmp_path):
    path = write_findings(tmp_path / "findings.json", _detections(), "lung", "1.2.3")
    data = read_findings(path)
    assert data["model"] == "lung" and data["series_uid"] == "1.2.3"
    assert [f["score"] for f in data["findings"]] == [0.9, 0.2]
    first = data["findings"][0]
    assert first == {"label": "nodule", "score": 0.9, "center_lps": [13.5, 12.0, 12.5], "size_mm": [7.0, 4.0, 5.0],
                     "box_voxel": [4, 15, 15, 7, 21, 25]}
    assert len(findings_dict(_detections(), "lung", "1.2.3", min_score=0.5)["findings"]) == 1
    json.loads(path.read_text())
    assert "PatientName" not in path.read_text()


def test_the_seg_of_the_sources_has_no_pixel_data_requirement(tmp_path):
    # Headers are enough: the exporter never decodes the source pixels.
    series, volume = real_volume("mr-decubitus-hfdr")
    sources = _sources(series)
    assert all("PixelData" not in ds for ds in sources)
    labels = np.zeros(volume.shape, np.uint8)
    labels[0, 0, 0] = 1
    path = write_seg(tmp_path / "s.dcm", labels, {1: "x"}, sources, volume.slice_sop_uids)
    assert pydicom.dcmread(path).SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"


def test_seg_over_an_enhanced_multiframe_source_in_reversed_frame_order(tmp_path):
    import highdicom as hd

    from tests.conftest import data_path
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan

    folder = data_path("enh-multiframe", "dcm_qa_xa30", "5_anat-T1w_acq-tfl")
    series = [s for s in scan([folder]).all_series() if s.kind == "image"][0]
    volume = load_series(series)
    assert volume.slice_frame_numbers[0] > volume.slice_frame_numbers[-1]  # slices ascend against frame order
    labels = np.zeros(volume.shape, np.uint8)
    labels[5, 10:20, 30:40] = 1
    labels[80, 60:64, 60:64] = 1
    path = write_seg(tmp_path / "mf.dcm", labels, {1: "x"}, _sources(series), volume.slice_sop_uids,
                     slice_frame_numbers=volume.slice_frame_numbers, affine=volume.affine)
    back, _ = read_seg_labels(path, volume.slice_sop_uids, volume.shape, volume.slice_frame_numbers)
    assert np.array_equal(back, labels)
    seg = hd.seg.segread(str(path))
    source = pydicom.dcmread(series.instances[0].path, stop_before_pixels=True)
    for group in seg.PerFrameFunctionalGroupsSequence:
        frame = int(group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)
        want = source.PerFrameFunctionalGroupsSequence[frame - 1].PlanePositionSequence[0].ImagePositionPatient
        assert np.allclose(np.array(group.PlanePositionSequence[0].ImagePositionPatient, float),
                           np.array(want, float), atol=1e-3)
