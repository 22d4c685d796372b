"""NIfTI export of overlapping segments: one file per segment keeps every voxel; one label map gives shared
voxels to the later segment and says which segments lost how many; both carry the grid's RAS affine."""
from __future__ import annotations

import numpy as np
import pytest

from tests.inference.helpers import real_volume
from viewer.core.editing import tools
from viewer.core.editing.segmentation import Segmentation, SparseMask
from viewer.core.export.nifti_segments import (
    LAST_WINS,
    PER_SEGMENT,
    export_segments_nifti,
    segment_file_name,
    segment_overlaps,
)


def overlapping(volume) -> Segmentation:
    """A lung box, a nodule inside it (overlap), and an airway apart from both."""
    seg = Segmentation.for_volume(volume)
    nz, ny, nx = volume.shape
    lung = np.zeros(volume.shape, bool)
    lung[nz // 3:2 * nz // 3, ny // 4:ny // 2, nx // 4:nx // 2] = True
    seg.add(seg.new_segment("right lung", (200, 80, 80), mask=SparseMask.from_full(lung)))
    seg.add_segment("nodule/1", (255, 200, 0))
    seg.apply(tools.brush(seg, 2, [nz // 2, 3 * ny // 8, 3 * nx // 8], 8.0, 0))
    seg.add_segment("airway", (0, 128, 255))
    seg.apply(tools.brush(seg, 3, [nz // 2, ny // 8, nx // 2], 6.0, 2))
    return seg


def read(path):
    import nibabel

    image = nibabel.load(str(path))
    return np.asarray(image.dataobj).transpose(2, 1, 0), image.affine  # NIfTI (i, j, k) -> our (z, y, x)


def test_overlaps_are_listed_with_their_voxel_counts():
    _, volume = real_volume("mr-decubitus-hfdr")
    seg = overlapping(volume)
    overlaps = segment_overlaps(seg)
    assert [(o.earlier, o.later) for o in overlaps] == [(1, 2)]
    assert overlaps[0].voxels == int((seg.mask(1) & seg.mask(2)).sum()) == seg[2].mask.count() > 0
    assert "right lung (#1)" in overlaps[0].describe() and "nodule/1 (#2)" in overlaps[0].describe()


def test_one_file_per_segment_keeps_every_voxel(tmp_path):
    _, volume = real_volume("mr-decubitus-hfdr")
    seg = overlapping(volume)
    result = export_segments_nifti(seg, tmp_path / "study.nii.gz", PER_SEGMENT)
    assert [p.name for p in result.paths] == ["study_1_right-lung.nii.gz", "study_2_nodule-1.nii.gz",
                                              "study_3_airway.nii.gz"]
    assert not (tmp_path / "study.nii.gz").exists()
    for number, path in zip((1, 2, 3), result.paths):
        array, affine = read(path)
        assert set(np.unique(array)) <= {0, 1}
        assert np.array_equal(array.astype(bool), seg.mask(number))
        assert np.allclose(affine, np.diag([-1, -1, 1, 1]) @ volume.affine, atol=1e-4)
    assert "3 NIfTI files (one per segment)" in result.summary()


def test_label_map_last_wins_and_says_who_lost_voxels(tmp_path):
    _, volume = real_volume("mr-decubitus-hfdr")
    seg = overlapping(volume)
    result = export_segments_nifti(seg, tmp_path / "labels.nii.gz", LAST_WINS)
    assert [p.name for p in result.paths] == ["labels.nii.gz"]
    array, _ = read(result.paths[0])
    assert np.array_equal(array == 2, seg.mask(2)), "the later segment (the nodule) holds the shared voxels"
    assert np.array_equal(array == 1, seg.mask(1) & ~seg.mask(2))
    assert np.array_equal(array == 3, seg.mask(3))
    assert [(o.earlier, o.later, o.voxels) for o in result.overlaps] == [(1, 2, seg[2].mask.count())]
    assert f"{seg[2].mask.count()} overlapping voxels" in result.summary()


def test_unknown_mode_and_odd_names(tmp_path):
    _, volume = real_volume("mr-decubitus-hfdr")
    with pytest.raises(ValueError, match="per_segment or last_wins"):
        export_segments_nifti(overlapping(volume), tmp_path / "x.nii.gz", "merge")
    assert segment_file_name("s", 4, "../../etc/passwd") == "s_4_etc-passwd.nii.gz"
    assert segment_file_name("s", 5, "ü ") == "s_5_segment.nii.gz"
