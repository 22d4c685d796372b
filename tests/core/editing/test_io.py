"""Save and open: DICOM SEG round trip voxel-exact with overlaps and provenance (LIDC, sagittal MR), real SEGs by
dcmqi and highdicom read into Segmentations, NIfTI label maps with the RAS affine that refuse to flatten."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from inference.jobs import run_job
from inference.types import SegResult, label_table
from tests.conftest import data_path
from tests.inference.helpers import real_volume
from viewer.core.editing import tools
from viewer.core.editing.io import open_seg, open_seg_job, save_nifti_labels, save_seg
from viewer.core.editing.segmentation import Segmentation
from viewer.core.export.seg import check_seg_claims, read_sources


def _load(folder):
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan

    series = max((s for s in scan([folder]).all_series() if s.kind == "image"), key=lambda s: s.n_frames)
    return series, load_series(series)


def _annotated(volume) -> Segmentation:
    """A model's lung and nodule (nodule inside the lung: overlap), the nodule corrected, plus a manual airway."""
    seg = Segmentation.for_volume(volume)
    nz, ny, nx = volume.shape
    labels = np.zeros(volume.shape, np.uint8)
    labels[nz // 3:2 * nz // 3, ny // 4:ny // 2, nx // 4:nx // 2] = 1
    result = SegResult(labels, volume.affine, label_table({1: "lung"}), model_id="lung-seg")
    seg.import_seg_result(result, algorithm_version="2.0")
    nodule = seg.new_segment("nodule", (255, 200, 0), origin="AUTOMATIC", algorithm_name="nodule-det",
                             algorithm_version="1.1")
    seg.add(nodule)
    center = [nz // 2, 3 * ny // 8, 3 * nx // 8]
    seg.apply(tools.brush(seg, 2, center, 8.0, 0), by_person=False)  # the model's nodule...
    seg.apply(tools.brush(seg, 2, [center[0], center[1] + 6, center[2]], 5.0, 1))  # ...corrected by a person
    seg.add_segment("airway", (0, 128, 255))
    seg.apply(tools.brush(seg, 3, [nz // 2, ny // 8, nx // 2], 6.0, 2))
    return seg


@pytest.mark.parametrize("name", ["lidc-idri-0001", "mr-decubitus-hfdr"])
def test_seg_round_trip_is_voxel_exact_with_overlaps_names_colours_codes_and_provenance(tmp_path, name):
    import highdicom as hd

    series, volume = real_volume(name)
    seg = _annotated(volume)
    assert seg.overlap_count() > 0
    assert [s.algorithm_type for s in seg] == ["AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"]
    path = save_seg(seg, tmp_path / "seg.dcm", volume, read_sources([i.path for i in series.instances]))
    back = open_seg(path, volume)
    assert [s.name for s in back] == ["lung", "nodule", "airway"]
    for a, b in zip(seg, back):
        assert np.array_equal(a.mask.full(), b.mask.full()), a.name
        assert (b.color, b.algorithm_type, b.algorithm_name, b.algorithm_version) == (
            a.color, a.algorithm_type, a.algorithm_name, a.algorithm_version)
    assert back.overlap_count() == seg.overlap_count()
    assert back[1].type == ("39607008", "SCT", "Lung") and back[2].type == ("27925004", "SCT", "Nodule")
    assert back[3].type == ("89187006", "SCT", "Airway structure")
    dataset = hd.seg.segread(str(path))  # highdicom reads it cleanly
    assert dataset.SegmentationType == "BINARY" and len(dataset.SegmentSequence) == 3
    lung = dataset.SegmentSequence[0]
    assert lung.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "lung-seg"
    assert "SegmentationAlgorithmIdentificationSequence" not in dataset.SegmentSequence[2]  # MANUAL
    assert dataset.ReferencedSeriesSequence[0].SeriesInstanceUID == volume.series_uid


def test_a_known_lps_point_lands_on_the_same_voxel_in_the_segmentation_and_the_seg(tmp_path):
    series, volume = real_volume("mr-decubitus-hfdr")
    seg = Segmentation.for_volume(volume)
    seg.add_segment("point")
    point = volume.index_to_lps([100, 140, 17])
    z, y, x = np.rint(volume.lps_to_index(point)[::-1]).astype(int)
    seg.apply(tools.brush(seg, 1, [z, y, x], 0.1))
    assert seg[1].mask.count() == 1
    back = open_seg(save_seg(seg, tmp_path / "p.dcm", volume, read_sources([i.path for i in series.instances])),
                    volume)
    assert list(zip(*np.nonzero(back.mask(1)))) == [(17, 140, 100)]


def test_dcmqi_segs_open_as_segmentations_with_their_overlaps():
    _, volume = _load(data_path("seg-rtstruct", "dcmqi", "segmentations", "ct-3slice"))
    folder = data_path("seg-rtstruct", "dcmqi", "segmentations")
    liver = open_seg(folder / "liver.dcm", volume)
    (segment,) = list(liver)
    assert segment.name == "Liver" and segment.algorithm_type == "SEMIAUTOMATIC" and segment.mask.count() > 10_000
    assert segment.type[2] == "Liver"
    overlaps = open_seg(folder / "partial_overlaps.dcm", volume)
    assert [s.name for s in overlaps] == ["GREEN", "ORANGE", "PURPLE", "LIGHT_BLUE", "DARK_BLUE"]
    assert overlaps.overlap_count() > 0  # preserved, not flattened
    total = sum(s.mask.count() for s in overlaps)
    labels, _ = overlaps.label_map(on_overlap="last_wins")
    assert np.count_nonzero(labels) < total


@pytest.mark.parametrize("claim, reason", [
    ({"NumberOfFrames": 1_000_000_000}, "declares 1000000000 frames but holds 3"),
    ({"Rows": 65535, "Columns": 65535}, r"declares 65535 x 65535 pixels \(512.0 MiB a frame\) but holds 96.0 KiB"),
    ({"Columns": 2048}, r"declares 512 x 2048 pixels"),
    # bench/fuzz.py seed 89: cut before its pixel data, nothing bounded its 2^31 frames (highdicom: OOM-killed);
    # a million here, so that a regression costs seconds
    ({"PixelData": None, "PerFrameFunctionalGroupsSequence": None, "NumberOfFrames": 1_000_000},
     "the SEG holds no pixel data"),
])
def test_a_seg_whose_sizes_do_not_fit_the_volume_is_refused_before_highdicom_reads_it(tmp_path, monkeypatch, claim,
                                                                                     reason):
    """Fuzzed copies of dcmqi's liver SEG asked highdicom or our masks for 12 GiB (or a billion frames); each is
    refused with the reason, and the real file still opens under the same limit."""
    import pydicom

    _, volume = _load(data_path("seg-rtstruct", "dcmqi", "segmentations", "ct-3slice"))
    source = data_path("seg-rtstruct", "dcmqi", "segmentations", "liver.dcm")
    monkeypatch.setenv("HOUNSFIELD_MAX_SERIES_BYTES", "4M")
    assert [s.name for s in open_seg(source, volume)] == ["Liver"]
    ds = pydicom.dcmread(source)
    for keyword, value in claim.items():
        if value is None:
            del ds[keyword]
        else:
            setattr(ds, keyword, value)
    ds.save_as(tmp_path / "hostile.dcm")
    with pytest.raises(ValueError, match=reason):  # first: on a regression open_seg takes 12+ GiB (OOM-killed)
        check_seg_claims(tmp_path / "hostile.dcm", volume.shape)
    with pytest.raises(ValueError, match=reason):
        open_seg(tmp_path / "hostile.dcm", volume)


@pytest.mark.parametrize("damage", ["code meaning", "dimension index", "orientation NaN", "segmentation type",
                                    "frame orientation of 5 values"])
def test_a_damaged_seg_is_refused_with_a_reason_not_highdicom_internals(tmp_path, damage):
    """bench/fuzz.py --seg: highdicom met damaged SEGs with AttributeError, KeyError or RuntimeError from deep in its
    parse (the GUI said "Open SEG failed: AttributeError: 'Dataset' object has no attribute ..."). They are the
    reader's refusals now: a ValueError that says the SEG is damaged, and what was missing. Our own geometry check
    let numpy's words through ("cannot reshape array of size 5 into shape (2,3)"), as if they were its refusal."""
    import pydicom

    _, volume = _load(data_path("seg-rtstruct", "dcmqi", "segmentations", "ct-3slice"))
    ds = pydicom.dcmread(data_path("seg-rtstruct", "dcmqi", "segmentations", "liver.dcm"))
    if damage == "code meaning":
        del ds.SegmentSequence[0].SegmentedPropertyCategoryCodeSequence[0].CodeMeaning
    elif damage == "dimension index":
        del ds.DimensionIndexSequence[0].DimensionIndexPointer
    elif damage == "segmentation type":  # highdicom reads it; our reader met it (bench/fuzz.py --seg, seed 5)
        del ds.SegmentationType
    elif damage == "orientation NaN":  # highdicom's frame index (SQLite) refused it (bench/fuzz.py --seg, seed 1)
        ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient = [float("nan")] * 6
    else:  # highdicom reads it; _check_frame_geometry does not
        frame = ds.PerFrameFunctionalGroupsSequence[0]
        frame.PlaneOrientationSequence = copy.deepcopy(ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence)
        frame.PlaneOrientationSequence[0].ImageOrientationPatient = [1, 0, 0, 0, 1]
    ds.save_as(tmp_path / "damaged.dcm")
    why = r"AttributeError|KeyError|Integrity|cannot reshape array of size 5"
    with pytest.raises(ValueError, match=rf"the SEG is damaged or incomplete \(({why})"):
        open_seg(tmp_path / "damaged.dcm", volume)


def test_a_seg_frame_position_of_100000_values_is_refused_without_converting_them(tmp_path, monkeypatch):
    """bench/fuzz.py --seg, seed 13: a frame's ImagePositionPatient held 900,000 decimal strings. pydicom converted
    them in the scan's header read (10 s) and again under highdicom: 19 s to refuse, near the campaign's hang limit.
    The scan now reads the stored text, and the SEG is refused from the value's raw length before highdicom."""
    import pydicom
    import pydicom.values

    from viewer.core.dicom.scan import read_header

    _, volume = _load(data_path("seg-rtstruct", "dcmqi", "segmentations", "ct-3slice"))
    ds = pydicom.dcmread(data_path("seg-rtstruct", "dcmqi", "segmentations", "liver.dcm"))
    ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient = ["1.5"] * 100_000
    ds.save_as(tmp_path / "long.dcm")
    converted: list[int] = []  # the length of each decimal string value pydicom converts
    convert = pydicom.values.converters["DS"]
    monkeypatch.setitem(pydicom.values.converters, "DS",
                        lambda raw, *args, **kwargs: converted.append(len(raw)) or convert(raw, *args, **kwargs))
    assert read_header(tmp_path / "long.dcm").frames[0].position is None  # the same as before: not 3 values
    with pytest.raises(ValueError, match="^the SEG's ImagePositionPatient holds 100000 values, not 3$"):
        open_seg(tmp_path / "long.dcm", volume)
    assert max(converted, default=0) < 1000


def test_a_seg_listing_a_segment_twice_is_refused_before_highdicom_reads_it(tmp_path):
    """A fuzzed SEG listed its segment 1 3,000 times: highdicom took 9 s to parse it and 89 s to read it segment by
    segment (bench/fuzz.py --seg, seed 2). Its frames are ambiguous; it is refused from the header, in 0.5 s."""
    import pydicom

    _, volume = _load(data_path("seg-rtstruct", "dcmqi", "segmentations", "ct-3slice"))
    ds = pydicom.dcmread(data_path("seg-rtstruct", "dcmqi", "segmentations", "liver.dcm"))
    ds.SegmentSequence = [copy.deepcopy(ds.SegmentSequence[0]) for _ in range(3)]
    ds.save_as(tmp_path / "twice.dcm")
    with pytest.raises(ValueError, match="^the SEG lists segment 1 more than once$"):
        open_seg(tmp_path / "twice.dcm", volume)


@pytest.mark.parametrize("box, opens", [((8, 40), True), ((100, 300), False)], ids=["small organs", "too much"])
def test_a_seg_of_many_segments_opens_in_what_they_cover(tmp_path, monkeypatch, box, opens):
    """TotalSegmentator's 117 segments over a 600-slice CT are 18 GB as full masks: segments are read one at a time
    and kept over their bounding boxes. Here 40 segments over a 3 x 512 x 512 CT under a 1 MiB limit: as full masks
    (30 MiB) they were refused; over small boxes they open voxel-exact, and what they cover is still bounded."""
    from viewer.core.editing.segmentation import SparseMask

    series, volume = _load(data_path("seg-rtstruct", "dcmqi", "segmentations", "ct-3slice"))
    segmentation = Segmentation.for_volume(volume)
    masks = []
    for k in range(40):
        mask = np.zeros(volume.shape, bool)
        mask[k % 3, 8 * k:8 * k + box[0], 100:100 + box[1]] = True
        masks.append(mask)
        segmentation.add(segmentation.new_segment(f"organ {k}", mask=SparseMask.from_full(mask)))
    path = save_seg(segmentation, tmp_path / "many.dcm", volume, read_sources([i.path for i in series.instances]))
    monkeypatch.setenv("HOUNSFIELD_MAX_SERIES_BYTES", "1M")  # one full mask (768 KiB) fits, not 40
    if not opens:  # 40 x 100 x 300 voxels: 1.1 MiB
        with pytest.raises(ValueError, match=r"the SEG's segments cover more than 1.0 MiB of this volume"):
            open_seg(path, volume)
        return
    progress = []
    back = run_job(open_seg_job(path, volume), progress.append)  # a step a segment: the GUI shows it, and may cancel
    assert [(p.done, p.total) for p in progress[1:]] == [(k, 40) for k in range(1, 41)]
    assert [s.name for s in back] == [f"organ {k}" for k in range(40)]
    assert all(np.array_equal(s.mask.full(), mask) for s, mask in zip(back, masks))
    assert sum(s.mask.nbytes for s in back) == 40 * box[0] * box[1]


def test_a_segmentation_too_large_for_one_seg_is_refused_with_the_reason(tmp_path, monkeypatch):
    """A SEG is written from one full mask a segment: 40 segments over this CT under a 1 MiB limit are refused
    before anything is allocated, and the message says what to do."""
    from viewer.core.editing.errors import EditRefused

    series, volume = _load(data_path("seg-rtstruct", "dcmqi", "segmentations", "ct-3slice"))
    segmentation = Segmentation.for_volume(volume)
    for k in range(40):
        segmentation.add_segment(f"organ {k}")
    monkeypatch.setenv("HOUNSFIELD_MAX_SERIES_BYTES", "1M")
    with pytest.raises(EditRefused, match="40 segments are too many to write as one DICOM SEG .*save them as NIfTI"):
        save_seg(segmentation, tmp_path / "many.dcm", volume, read_sources([i.path for i in series.instances]))
    assert not (tmp_path / "many.dcm").exists()


def test_highdicom_segs_open_over_their_uneven_referenced_ct():
    _, volume = _load(data_path("seg-rtstruct", "highdicom", "referenced_pydicom_CT2"))
    folder = data_path("seg-rtstruct", "highdicom")
    binary = open_seg(folder / "seg_image_ct_binary.dcm", volume)
    overlap = open_seg(folder / "seg_image_ct_binary_overlap.dcm", volume)
    fractional = open_seg(folder / "seg_image_ct_binary_fractional.dcm", volume)
    assert [s.name for s in overlap] == ["first segment", "second segment"] and overlap.overlap_count() > 0
    assert np.array_equal(binary.mask(1), fractional.mask(1)) and binary[1].mask.count() > 0
    # the first slice (far from the others) is not referenced by these SEGs and stays empty
    assert not binary.mask(1)[0].any()


def test_a_seg_of_another_series_is_refused(tmp_path):
    _, volume = _load(data_path("seg-rtstruct", "dcmqi", "segmentations", "ct-3slice"))
    with pytest.raises(ValueError, match="references none"):
        open_seg(data_path("seg-rtstruct", "highdicom", "seg_image_ct_binary.dcm"), volume)


def test_nifti_label_map_has_the_ras_affine_and_refuses_to_flatten_overlaps(tmp_path):
    import SimpleITK as sitk

    _, volume = real_volume("mr-decubitus-hfdr")
    seg = _annotated(volume)
    with pytest.raises(ValueError, match="more than one segment"):
        save_nifti_labels(seg, tmp_path / "labels.nii.gz")
    seg.delete(1)  # the lung held the overlap; numbers 2 and 3 stay as they are
    path = save_nifti_labels(seg, tmp_path / "labels.nii.gz")
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    assert np.array_equal(array == 2, seg.mask(2)) and np.array_equal(array == 3, seg.mask(3))
    for index in ([0, 0, 0], [255, 0, 34], [17, 200, 9]):  # ITK reports LPS: the file's RAS sform was right
        assert np.allclose(image.TransformIndexToPhysicalPoint(index), volume.index_to_lps(index), atol=1e-3)
    import nibabel

    ras = nibabel.load(str(path)).affine
    assert np.allclose(ras, np.diag([-1, -1, 1, 1]) @ volume.affine, atol=1e-4)


def test_seg_round_trip_over_an_enhanced_multiframe_source(tmp_path):
    series, volume = _load(data_path("enh-multiframe", "dcm_qa_xa30", "5_anat-T1w_acq-tfl"))
    assert len(set(volume.slice_sop_uids)) == 1  # one object, one frame per slice
    seg = Segmentation.for_volume(volume)
    seg.add_segment("a")
    seg.add_segment("b")
    seg.apply(tools.brush(seg, 1, [5, 15, 35], 6.0))
    seg.apply(tools.brush(seg, 2, [5, 15, 37], 4.0, 1))
    seg.apply(tools.brush(seg, 2, [80, 62, 62], 3.0))
    path = save_seg(seg, tmp_path / "mf.dcm", volume, read_sources([i.path for i in series.instances]))
    back = open_seg(path, volume)
    assert back.overlap_count() == seg.overlap_count() > 0
    for a, b in zip(seg, back):
        assert np.array_equal(a.mask.full(), b.mask.full())
