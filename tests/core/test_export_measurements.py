"""Nodule measurements travel: Detections -> review -> findings.json and the TID 1500 SR (read back)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from inference.geometry import box_corners, voxel_box
from inference.nodule_measurements import lung_extent, measure_nodule
from inference.types import Detections, label_table
from tests.inference.helpers import data_path, real_volume
from viewer.core.editing.history import EditHistory
from viewer.core.editing.review import FindingsReview
from viewer.core.export.findings import MEASUREMENT_KEYS, findings_dict, read_findings, review_dict, write_findings
from viewer.core.export.seg import read_sources
from viewer.core.export.sr import read_measurements, write_measurement_report


def _lidc_detections():
    """The LIDC-IDRI-0001 readers' nodule as a detection, measured as the built-in detector's findings are."""
    from viewer.core.lidc import find_lidc_xml, read_lidc_nodules

    series, volume = real_volume("lidc-idri-0001")
    (nodule,) = [n for n in read_lidc_nodules(find_lidc_xml(data_path("lidc-idri-0001"))[0], volume.affine,
                                                getattr(volume, "slice_positions", None)) if n.n_readers >= 3]
    c, half = np.asarray(nodule.center_lps), 0.6 * nodule.diameter_mm
    box_lps = np.r_[c - half, c + half]
    box = voxel_box(box_corners(box_lps), volume.affine, volume.shape)
    m = measure_nodule(volume.array, volume.affine, box, lung_extent(volume.array, volume.affine))
    detections = Detections([box_lps, box_lps + 40], [box, box], [0.95, 0.5], [1, 1], volume.affine,
                            volume.shape, label_table({1: "nodule"}), "hounsfield-chest-ct-nodule-detection",
                            measurements=[m, None])
    return series, volume, detections, m


def test_findings_json_has_the_measurement_fields(tmp_path):
    _, _, detections, m = _lidc_detections()
    path = write_findings(tmp_path / "findings.json", detections, detections.model_id, "1.2.3")
    doc = read_findings(path)
    first, second = doc["findings"]
    assert {k: first[k] for k in MEASUREMENT_KEYS} == {k: m[k] for k in MEASUREMENT_KEYS}
    assert first["type"] in ("solid", "part-solid") and first["location"]["side"] in ("left", "right")
    assert first["location"]["lobe_model"] is False
    assert all(second[k] is None for k in MEASUREMENT_KEYS)  # a box with nothing to measure says so
    assert json.loads(path.read_text())["findings"][0]["lung_rads"] == m["lung_rads"]
    # filtering keeps each measurement with its box
    assert detections.above(0.9).measurements == [m]
    assert findings_dict(detections.above(0.9), "x", "1")["findings"][0]["volume_mm3"] == m["volume_mm3"]
    # a review carries them; moving a box drops them (they describe the box as found)
    review = FindingsReview.from_detections(detections, EditHistory())
    assert review_dict(review, "1")["findings"][0]["mean_diameter_mm"] == m["mean_diameter_mm"]
    review.move(0, [5.0, 0, 0])
    assert review_dict(review, "1")["findings"][0].get("mean_diameter_mm") is None
    assert FindingsReview.from_state(review.to_state())[1].measurements is None


def test_sr_holds_the_measurements_as_coded_content(tmp_path):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    series, volume, detections, m = _lidc_detections()
    review = FindingsReview.from_detections(detections, EditHistory())
    review.accept(0)
    path = write_measurement_report(tmp_path / "sr.dcm", review, read_sources([i.path for i in series.instances]))
    (read,) = read_measurements(path)
    assert read["volume_mm3"] == m["volume_mm3"]
    assert read["long_axis_mm"] == pytest.approx(m["long_axis_mm"])
    assert read["short_axis_mm"] == pytest.approx(m["short_axis_mm"])
    assert read["mean_diameter_mm"] == pytest.approx(m["mean_diameter_mm"])
    assert m["lung_rads"] in read["lung_rads"] and m["location"]["side"].capitalize() in read["finding_site"]
    assert read["diameter_mm"] is not None  # the box diameter is still there
    group = hd.sr.srread(str(path)).content.get_planar_roi_measurement_groups()[0]
    (volume_item,) = group.get_measurements(name=codes.SCT.Volume)
    assert volume_item.unit == codes.UCUM.CubicMillimeter
    (long_item,) = group.get_measurements(name=codes.SCT.LongAxis)
    assert long_item.unit == codes.UCUM.Millimeter
    assert group.finding_sites[0].laterality in (codes.SCT.Right, codes.SCT.Left)
