"""The built-in models: shipped as bundles with model cards, small, and really working on unseen phantoms."""
from __future__ import annotations

import json

import numpy as np
import pytest

from inference.registry import find_model, list_models
from inference.resources import builtin_models_dir
from viewer.core.sample import DEMO_MODELS

SEGMENTATION, DETECTION = DEMO_MODELS[1], DEMO_MODELS[0]
CARD_FIELDS = ("name", "version", "description", "intended_use", "data_source", "training", "limitations",
               "license")


def test_built_in_bundles_are_listed_with_weights_and_model_cards():
    builtin = {m.id: m for m in list_models() if m.builtin}
    assert set(DEMO_MODELS) <= set(builtin)
    total = 0
    for model_id in DEMO_MODELS:
        info = builtin[model_id]
        assert info.has_weights and info.trusted and info.gradcam_layer
        metadata = json.loads((builtin_models_dir() / info.path.split("/")[-1] / "configs" / "metadata.json")
                              .read_text())
        for key in CARD_FIELDS:
            assert str(metadata.get(key, "")).strip(), key
        assert "synthetic" in metadata["data_source"].lower()
        assert "not for diagnosis" in metadata["intended_use"].lower()
        metrics = metadata["hounsfield"]["metrics"]
        assert metrics["phantoms"]["data"].startswith("phantom:") and metrics["lidc_idri_0001"], \
            "the card quotes its evaluation"
        total += sum(f.stat().st_size for f in (builtin_models_dir() / info.path.split("/")[-1] / "models").iterdir())
    assert total <= 20 * 2 ** 20, f"shipped weights {total / 2 ** 20:.1f} MB > 20 MB"


def test_weights_load_strictly_through_the_safe_loader():
    from inference.bundle import load_bundle

    for model_id in DEMO_MODELS:
        bundle = load_bundle(find_model(model_id), device="cpu")
        assert bundle.weights.endswith("model.pt") and not bundle.dropped


@pytest.fixture(scope="module")
def unseen_phantom():
    from inference.training.data import EVAL_SEEDS
    from viewer.core.evaluation import phantom_case

    return phantom_case(EVAL_SEEDS[3])  # two nodules: a 33 mm part-solid mass and a 12 mm perifissural nodule


def test_segmentation_of_an_unseen_phantom(unseen_phantom):
    """Regression guards at the measured level (lungs meet the issue's 0.95; nodule Dice 0.96 on this case)."""
    from viewer.core.evaluation import score_case

    row = score_case(SEGMENTATION, unseen_phantom)
    assert row["dice"]["lung_left"] >= 0.97 and row["dice"]["lung_right"] >= 0.97, row["dice"]
    assert row["dice"]["airway"] >= 0.6, row["dice"]
    assert row["dice"]["nodule"] >= 0.85, row["dice"]


def test_the_nodule_label_is_checked_by_the_classifier_and_redrawn(unseen_phantom):
    """The segmentation's nodule label with and without its check (inference.confirm_nodules): the network's own
    label has coarse edges (and, with earlier networks, vessels); the checked one keeps the two true nodules,
    redrawn closer. Measured: 0.936 -> 0.963 with the shipped network (0.755 -> 0.964 with the previous one)."""
    from inference.bundle import load_bundle
    from inference.jobs import run_job
    from inference.metrics import dice
    from inference.task import run_bundle

    bundle = load_bundle(find_model(SEGMENTATION), device="cpu")
    assert bundle.nodule_classifier is not None and bundle.info.operating_point is not None
    nodule = next(v for v, label in bundle.info.table.items() if label.name == "nodule")
    checked = run_job(run_bundle(bundle, unseen_phantom.array, unseen_phantom.affine)).result.labels == nodule
    bundle.nodule_classifier = None
    raw = run_job(run_bundle(bundle, unseen_phantom.array, unseen_phantom.affine)).result.labels == nodule
    truth = unseen_phantom.masks["nodule"]
    assert dice(checked, truth) >= max(dice(raw, truth) + 0.02, 0.95), (dice(checked, truth), dice(raw, truth))
    assert (checked & ~truth).sum() < (raw & ~truth).sum()  # fewer voxels called nodule that are not


def test_detection_of_an_unseen_phantom(unseen_phantom):
    """Both nodules found above the operating point the card names, with at most one false positive there; every
    score is a probability and the list is ordered by it."""
    from inference.registry import find_model
    from viewer.core.evaluation import _false_positives, score_case

    point = find_model(DETECTION).operating_point
    assert point is not None and 0 < point < 1
    row = score_case(DETECTION, unseen_phantom)
    assert row["n_nodules"] == 2
    assert all(h["found"] and h["score"] >= point and h["distance_mm"] < 5 for h in row["nodules"]), row["nodules"]
    scores = row["scan"].scores
    assert ((scores >= 0.02) & (scores <= 1)).all() and (np.diff(scores) <= 0).all()
    shown = row["scan"].scores >= point
    from inference.metrics import ScanDetections

    above = ScanDetections(row["scan"].centers_lps[shown], scores[shown], row["scan"].truth_lps,
                           row["scan"].truth_diameters_mm)
    assert _false_positives(above) <= 1


def test_both_models_run_on_a_study_of_two_slices(lidc_dir, tmp_path):
    """Two slices of LIDC-IDRI-0001 written as a study of their own (pydicom): too thin for the blob candidates'
    filters and for most of the network's context, yet both models finish with a result, not an error."""
    import pydicom

    from inference.jobs import run_job
    from inference.task import run_model
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan

    files = sorted(p for p in lidc_dir.rglob("*.dcm"))
    slices = sorted((pydicom.dcmread(p) for p in files[:40]), key=lambda d: float(d.ImagePositionPatient[2]))[:2]
    for n, ds in enumerate(slices):
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1234.2"
        ds.save_as(tmp_path / f"{n}.dcm")
    series, = scan([tmp_path]).all_series()
    volume = load_series(series)
    assert volume.array.shape[0] == 2
    for model_id in DEMO_MODELS:
        outcome = run_job(run_model(model_id, volume.array, volume.affine, device="cpu"))
        assert outcome.result is not None
