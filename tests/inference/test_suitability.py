"""Models only on what they were made for: the expected-input declaration, the check on real studies, and the
oversized-detection post-step."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from inference.jobs import run_job
from inference.registry import find_model, read_bundle
from inference.suitability import (
    ExpectedInput,
    check_input,
    drop_oversized,
    expected_input_from_metadata,
    lung_air_fraction,
)
from inference.types import Detections, label_table
from tests.conftest import data_path
from tests.inference.helpers import tiny_unet_config, write_bundle, zoo_bundle
from viewer.core.sample import DEMO_MODELS

HEAD_CT_SERIES = "1.2.826.0.1.3680043.9.4245.3115138630835728997848661150714813892"  # 28 tilted head slices


def _load(folder, key=None):
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan
    from viewer.core.run_model import body_part_of

    catalog = scan([folder])
    series = catalog.find_series(key) if key else max(
        (s for s in catalog.all_series() if s.kind == "image"), key=lambda s: s.n_frames)
    return load_series(series), body_part_of(series)


@pytest.fixture(scope="module")
def chest_expected():
    return find_model(DEMO_MODELS[0]).expected_input


def test_the_built_in_bundles_declare_a_chest_ct_and_the_detector_a_maximum_size():
    for model_id in DEMO_MODELS:
        info = find_model(model_id)
        expected = info.expected_input
        assert expected.declared and expected.modalities == ("CT",) and expected.body_parts == ("CHEST",)
        assert expected.in_plane_mm and expected.between_slices_mm and expected.lung_air_fraction
        assert info.to_json()["expected_input"]["modality"] == ["CT"]
    assert find_model(DEMO_MODELS[0]).max_finding_mm == 60  # boxes of 40 mm nodules on its 2.5 mm grid run over 40
    # the segmentation draws the detector's findings into its nodule label: the same boxes, dropped the same way
    assert find_model(DEMO_MODELS[1]).max_finding_mm == 60


def test_model_zoo_bundles_without_a_declaration_get_what_their_metadata_says(tmp_path):
    lung = read_bundle(zoo_bundle("lung_nodule_ct_detection"))
    assert lung.expected_input.modalities == ("CT",) and lung.expected_input.body_parts == ("CHEST",)
    assert not lung.expected_input.declared and "known Model Zoo" in lung.expected_input.note
    assert lung.max_finding_mm == 40
    spleen = read_bundle(zoo_bundle("spleen_ct_segmentation"))
    assert spleen.expected_input.body_parts == ("ABDOMEN",) and spleen.expected_input.lung_air_fraction is None
    # a bundle no table knows: modality from network_data_format, body part from its prose
    liver = expected_input_from_metadata({"name": "Liver tumour segmentation", "network_data_format": {
        "inputs": {"image": {"modality": "CT"}}}})
    assert liver.modalities == ("CT",) and liver.body_parts == ("ABDOMEN",) and "inferred" in liver.note
    # nothing known: allowed, with a note saying so
    unknown = expected_input_from_metadata({"name": "Something"})
    assert not unknown.checks_anything and "declares no expected input" in unknown.note
    assert check_input(unknown, np.zeros((4, 4, 4)), np.eye(4), "MR") == []
    # a bundle folder without the declaration lists with the note (no torch, nothing evaluated)
    folder = write_bundle(tmp_path / "b", tiny_unet_config(), {"name": "Brain MR thing", "hounsfield": {
        "modality": "MR"}})
    info = read_bundle(folder)
    assert info.expected_input.modalities == ("MR",) and info.expected_input.body_parts == ("HEAD",)


def test_lidc_and_the_sample_study_pass_silently_and_fast(chest_expected):
    volume, body_part = _load(data_path("lidc-idri-0001"))
    assert check_input(chest_expected, volume.array, volume.affine, volume.modality, body_part) == []
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        check_input(chest_expected, volume.array, volume.affine, volume.modality, body_part)
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.2, timings  # measured ~0.012 s on 512 x 512 x 133

    from inference.training.phantom import generate_phantom

    sample = generate_phantom(0)  # the sample study's phantom
    assert check_input(chest_expected, sample.hu, sample.affine, "CT") == []


def test_the_tilted_head_ct_is_flagged_as_not_a_chest(chest_expected):
    volume, body_part = _load(data_path("ct-gantry-tilt"), HEAD_CT_SERIES)
    reasons = check_input(chest_expected, volume.array, volume.affine, volume.modality, body_part)
    codes = {r.code for r in reasons}
    assert "not_a_chest" in codes, reasons
    fraction = lung_air_fraction(volume.array, volume.affine)
    assert fraction < 0.05  # ~0.02 (LIDC: ~0.19)
    # the content decides on CT, so the HEAD tag is not repeated as a separate reason
    assert "body_part" not in codes


def test_the_brain_mr_is_flagged_by_modality_and_its_label(chest_expected):
    volume, body_part = _load(data_path("mr-decubitus-hfdr"))
    reasons = check_input(chest_expected, volume.array, volume.affine, volume.modality, body_part)
    assert {r.code for r in reasons} == {"modality", "body_part"}
    assert "made for CT; this series is MR" in str(reasons[0])


def test_spacing_extent_and_a_lying_body_part_tag():
    expected = ExpectedInput(modalities=("CT",), body_parts=("ABDOMEN",), in_plane_mm=(0.3, 1.5),
                             between_slices_mm=(0.5, 5.0), extent_si_mm=(100, 2000))
    affine = np.diag([2.0, 2.0, 8.0, 1.0])
    reasons = check_input(expected, np.zeros((10, 8, 8), np.int16), affine, "CT", "Head")
    assert [r.code for r in reasons] == ["spacing", "spacing", "extent", "body_part"]
    assert "8.00 mm" in reasons[1].message and "80 mm head to feet" in reasons[2].message
    # a chest model accepts the chest's synonyms, and a chest-abdomen label, when no content test applies
    chest = ExpectedInput(body_parts=("CHEST",))
    assert check_input(chest, np.zeros((2, 2, 2)), np.eye(4), "MR", "CHEST_ABDOMEN") == []
    assert check_input(chest, np.zeros((2, 2, 2)), np.eye(4), "MR", "thorax") == []


def test_a_chest_ct_without_usable_pixel_spacing_is_flagged(tmp_path, chest_expected):
    """LIDC with PixelSpacing 0: the stack is placed on 1 mm pixels (inside the expected 0.3-1.5 mm), so the model
    ran, at the wrong scale, and reported sizes in millimetres the file never gave."""
    import shutil

    import pydicom

    from viewer.core.run_model import unsuitable_reasons

    folder = tmp_path / "lidc"
    shutil.copytree(data_path("lidc-idri-0001"), folder)
    for path in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        if "PixelSpacing" in ds:
            ds.PixelSpacing = [0, 0]
            ds.save_as(path)
    volume, body_part = _load(folder)
    assert volume.calibration.source == "none" and np.allclose(np.abs(volume.affine[:2, :2]).sum(axis=0), 1.0)
    reasons = unsuitable_reasons(find_model(DEMO_MODELS[0]), volume, body_part)
    assert [r.code for r in reasons] == ["spacing"]
    assert "no pixel spacing in millimetres" in reasons[0].message
    original, body_part = _load(data_path("lidc-idri-0001"))  # the same CT with its spacing passes
    assert unsuitable_reasons(find_model(DEMO_MODELS[0]), original, body_part) == []


def _detections(sizes_mm, scores):
    boxes = [[0, 0, 0, s, s / 2, s / 3] for s in sizes_mm]
    return Detections(np.array(boxes, float), np.zeros((len(sizes_mm), 6)), np.array(scores, float),
                      np.ones(len(sizes_mm), int), np.eye(4), (300, 300, 300), label_table({1: "nodule"}), "m")


def test_detections_above_the_maximum_size_are_dropped_with_a_note_in_findings_json(tmp_path):
    from viewer.core.export.findings import write_findings

    kept, note = drop_oversized(_detections([216.0, 12.0, 41.0], [0.99, 0.7, 0.99]), 40.0)
    assert len(kept) == 1 and kept.scores[0] == 0.7
    assert note and note.startswith("2 detections larger than") and "216 mm" in note
    assert kept.notes == [note] and kept.above(0.5).notes == [note]
    same, none = drop_oversized(_detections([12.0], [0.5]), 40.0)
    assert none is None and len(same) == 1
    doc = json.loads(write_findings(tmp_path / "findings.json", kept, "m", "1.2.3").read_text())
    assert doc["notes"] == [note] and len(doc["findings"]) == 1


def test_the_detection_post_step_drops_boxes_above_the_bundle_maximum():
    """The real built-in detector on a crop of the sample phantom around its largest nodule (24 mm), its declared
    maximum lowered to 10 mm: that finding is then too large, is dropped, and the run says so."""
    import dataclasses

    from inference.bundle import load_bundle
    from inference.task import run_bundle
    from inference.training.phantom import generate_phantom

    phantom = generate_phantom(0)
    nodule = max(phantom.nodules, key=lambda n: n.diameter_mm)
    centre = np.round(np.linalg.inv(phantom.affine) @ np.r_[nodule.center_lps, 1])[:3].astype(int)  # x, y, z
    low = np.maximum(centre - [48, 48, 12], 0)
    crop = phantom.hu[low[2]:low[2] + 24, low[1]:low[1] + 96, low[0]:low[0] + 96]
    shift = np.eye(4)
    shift[:3, 3] = low
    affine = phantom.affine @ shift
    bundle = load_bundle(find_model(DEMO_MODELS[0]), device="cpu")
    bundle.info = dataclasses.replace(bundle.info, max_finding_mm=10.0)
    outcome = run_job(run_bundle(bundle, crop, affine))
    detections = outcome.result
    assert all(size.max() <= 10.0 for size in detections.sizes_mm)
    notes = [m for m in outcome.messages if "maximum finding size (10 mm)" in m]
    assert notes and detections.notes == notes  # dropped, and said so (the 24 mm nodule's box at least)


def test_an_abdomen_model_takes_a_chest_abdomen_label_but_not_a_chest_one():
    spleen = read_bundle(zoo_bundle("spleen_ct_segmentation")).expected_input
    volume = np.zeros((2, 2, 2))
    assert check_input(spleen, volume, np.eye(4), "CT", "CHEST_ABDOMEN") == []
    assert check_input(spleen, volume, np.eye(4), "CT", "WHOLEBODY") == []
    assert [r.code for r in check_input(spleen, volume, np.eye(4), "CT", "CHEST")] == ["body_part"]
