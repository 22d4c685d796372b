"""``hounsfield infer --explain`` writes one Grad-CAM map per finding as NIfTI, on the series' grid, named in
findings.json (issue 11). Checked against the DICOM volume's affine with nibabel and SimpleITK."""
from __future__ import annotations

import json

import numpy as np

DETECTOR = "hounsfield-chest-ct-nodule-detection"


def test_infer_explain_writes_each_findings_map_on_the_series_grid(tmp_path, capsys):
    import nibabel as nib
    import SimpleITK as sitk

    from viewer.cli import main
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan
    from viewer.core.export.nifti import LPS_TO_RAS
    from viewer.core.sample import write_sample_study

    dicom = write_sample_study(tmp_path / "study", seed=0)
    out = tmp_path / "out"
    assert main(["infer", str(dicom), "--model", DETECTOR, "--out", str(out), "--device", "cpu", "--explain"]) == 0
    assert f"finding_maps: {out / 'finding_maps'}" in capsys.readouterr().out

    volume = load_series(scan([dicom]).all_series()[0])
    findings = json.loads((out / "findings.json").read_text())["findings"]
    assert findings and all("saliency_map" in f for f in findings)
    assert len(list((out / "finding_maps").glob("*.nii.gz"))) == len(findings)
    for n, finding in enumerate(findings[:3], start=1):
        path = out / finding["saliency_map"]
        assert path.name == f"finding_{n:03d}.nii.gz"
        image = nib.load(str(path))
        assert image.shape == tuple(volume.shape[::-1])  # (x, y, z) = (column, row, slice)
        assert np.allclose(image.affine, LPS_TO_RAS @ volume.affine, atol=1e-4)
        values = np.asarray(image.dataobj).transpose(2, 1, 0)  # back to (z, y, x)
        assert 0 <= values.min() and values.max() == np.float32(1.0)
        # the map's peak lies in the finding's box, both in our voxels and in SimpleITK's LPS world
        peak = np.unravel_index(int(np.argmax(values)), values.shape)
        z0, y0, x0, z1, y1, x1 = finding["box_voxel"]
        margin = 2  # voxels: the box's edge voxels and the map's smoothing
        inside = [lo - margin <= p < hi + margin for p, lo, hi in zip(peak, (z0, y0, x0), (z1, y1, x1))]
        assert all(inside), (peak, finding)
        itk = sitk.ReadImage(str(path))
        assert sitk.GetArrayViewFromImage(itk)[peak] == values[peak]
        point = np.array(itk.TransformIndexToPhysicalPoint([int(v) for v in peak[::-1]]))  # LPS mm
        assert np.allclose(point, volume.affine[:3, :3] @ np.array(peak[::-1], float) + volume.affine[:3, 3],
                           atol=1e-3)
        centre, size = np.array(finding["center_lps"]), np.array(finding["size_mm"])
        assert np.all(np.abs(point - centre) <= size / 2 + 2 * np.asarray(volume.spacing)[::-1]), (point, finding)
