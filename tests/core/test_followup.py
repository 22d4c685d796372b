"""The follow-up sample on disk (seed 0 and a year later, full size) and ``compare_studies`` on it with the built-in
nodule detector: ground truth consistent with the written DICOM, the registration against the true motion, the
model's findings matched as the truth links them, and volume doubling times against the true ones.

One comparison (registration + two detector runs, about 30 s on two cores) is shared by the tests.
"""
from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from viewer.core.followup.compare import compare_studies
from viewer.core.followup.transform import Registration, rotation_angle_deg
from viewer.core.sample import write_followup_study

nib = pytest.importorskip("nibabel")
MODEL = "hounsfield-chest-ct-nodule-detection"
DAYS = 365


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("followup")
    prior_dir, current_dir = write_followup_study(out, seed=0, days=DAYS)
    truth = json.loads((out / "followup" / "ground_truth" / "followup.json").read_text())
    return out, prior_dir, current_dir, truth


@pytest.fixture(scope="module")
def comparison(study):
    _, prior_dir, current_dir, _ = study
    return compare_studies(prior_dir, current_dir, model=MODEL)


def _nodules(out, which: str) -> list[dict]:
    folder = out if which == "prior" else out / "followup"
    return json.loads((folder / "ground_truth" / "nodules.json").read_text())["nodules"]


def test_followup_is_the_same_patient_in_a_later_study(study):
    _, prior_dir, current_dir, truth = study
    before = pydicom.dcmread(next(prior_dir.iterdir()), stop_before_pixels=True)
    after = pydicom.dcmread(next(current_dir.iterdir()), stop_before_pixels=True)
    assert before.PatientID == after.PatientID and str(before.PatientName) == str(after.PatientName)
    assert before.StudyInstanceUID != after.StudyInstanceUID and before.SeriesInstanceUID != after.SeriesInstanceUID
    assert before.FrameOfReferenceUID != after.FrameOfReferenceUID
    assert after.StudyDate == "20241231" and before.StudyDate == "20240101" and truth["days"] == DAYS
    statuses = sorted(r["status"] for r in truth["nodules"])
    assert statuses.count("new") == 1 and statuses.count("resolved") == 1 and "growing" in statuses


def test_ground_truth_volumes_are_the_drawn_label_voxels(study):
    out, _, _, truth = study
    image = nib.load(out / "followup" / "ground_truth" / "labels.nii.gz")
    labels = np.asarray(image.dataobj)
    voxel = float(np.prod(image.header.get_zooms()))
    ras_to_ijk = np.linalg.inv(image.affine)
    import SimpleITK as sitk

    components = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray((labels == 4).astype(np.uint8))))
    prior_nodules, current_nodules = _nodules(out, "prior"), _nodules(out, "current")
    for rec in truth["nodules"]:
        if rec["prior_id"] is not None:  # the record's "then" is the prior's nodules.json entry
            assert rec["volume_mm3"][0] == pytest.approx(prior_nodules[rec["prior_id"]]["volume_mm3"], abs=0.1)
        if rec["current_id"] is None:
            continue
        centre = current_nodules[rec["current_id"]]["center_lps"]
        assert centre == rec["center_lps"][1]
        i, j, k = np.rint(ras_to_ijk[:3, :3] @ (np.array(centre) * [-1, -1, 1]) + ras_to_ijk[:3, 3]).astype(int)
        component = components[i, j, k]
        assert component, f"no nodule label at the true centre of {rec}"
        # resampled through the motion by nearest neighbour, the label keeps the drawn volume within 3 %
        assert (components == component).sum() * voxel == pytest.approx(rec["volume_mm3"][1], rel=0.03)
        if rec["vdt_days"]:
            v0, v1 = rec["volume_mm3"]
            assert rec["vdt_days"] == pytest.approx(DAYS * np.log(2) / np.log(v1 / v0), rel=0.001)


def test_registration_recovers_the_true_motion(study, comparison):
    *_, truth = study
    true = np.array(truth["motion"]["current_to_prior"])
    t = comparison["transform"]
    reg = Registration(np.array(t["matrix"]), kind=t["kind"])
    centres = np.array([r["center_lps"][1] for r in truth["nodules"] if r["center_lps"][1]])
    tre = np.linalg.norm(reg.to_prior(centres) - (centres @ true[:3, :3].T + true[:3, 3]), axis=1)
    assert tre.max() < 1.5, tre
    assert rotation_angle_deg(reg.current_to_prior[:3, :3].T @ true[:3, :3]) < 1.0
    assert t["seconds"] < 30  # target 10 s on two cores (see make bench); generous under a loaded test run


def _finding_of(centre, findings, limit_mm: float = 8.0) -> int | None:
    """Index of the finding nearest to a true centre (same study's LPS), if within ``limit_mm``."""
    if not findings:
        return None
    d = [np.linalg.norm(np.subtract(f, centre)) for f in findings]
    return int(np.argmin(d)) if min(d) <= limit_mm else None


def test_model_findings_match_as_the_truth_links_them_with_their_growth(study, comparison):
    out, _, _, truth = study
    records = comparison["nodules"]
    assert comparison["days"] == DAYS and comparison["findings_source"] == f"model {MODEL}"
    prior_centres = {r["prior_index"]: r["center_lps"][0] for r in records if r["prior_index"] is not None}
    current_centres = {r["current_index"]: r["center_lps"][1] for r in records if r["current_index"] is not None}
    prior_list = [prior_centres[i] for i in sorted(prior_centres)]
    current_list = [current_centres[i] for i in sorted(current_centres)]
    vdt_errors = {}
    for rec in truth["nodules"]:
        then = _finding_of(rec["center_lps"][0], prior_list) if rec["center_lps"][0] else None
        now = _finding_of(rec["center_lps"][1], current_list) if rec["center_lps"][1] else None
        if rec["status"] in ("growing", "stable"):
            assert then is not None and now is not None, f"the detector missed {rec}"
            (got,) = [r for r in records if r["prior_index"] == then]
            assert got["status"] == "matched" and got["current_index"] == now, (rec, got)
            if rec["status"] == "stable":
                assert abs(got["growth_pct"]) < 15
                assert got["vdt_days"] is None or got["vdt_days"] > 10 * DAYS
            elif min(rec["diameter_mm"]) >= 6:
                error = got["vdt_days"] / rec["vdt_days"] - 1
                vdt_errors[rec["prior_id"]] = error
                print(f"VDT {rec['prior_id']}: {got['vdt_days']} vs {rec['vdt_days']} days ({100 * error:+.1f} %), "
                      f"volumes {got.get('volume_mm3')} vs {rec['volume_mm3']}")
                # The pipeline's VDT is exact on true volumes (test_followup_units); here the detector's
                # measurements decide - the juxtapleural nodule that grew along the pleura included, now that the
                # pleura under it is fitted rather than cut by the chest wall's opening (issue 11).
                assert abs(error) <= 0.25, (rec, got)
        elif rec["status"] == "new":
            assert now is not None
            (got,) = [r for r in records if r["current_index"] == now]
            assert got["status"] == "new"
        elif rec["status"] == "resolved" and then is not None:
            (got,) = [r for r in records if r["prior_index"] == then]
            assert got["status"] == "resolved"
    assert vdt_errors  # at least one growing nodule was held to its doubling time
