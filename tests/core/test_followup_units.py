"""Follow-up building blocks on a coarse phantom pair (48 x 128 x 128 voxels): registration accuracy, progress,
cancel, cache and identity; the assignment, matching limits and growth rules; the hostile cases.

The full-size pair with the detector is in test_followup.py.
"""
from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest

from inference.training.phantom import generate_phantom
from inference.training.phantom.followup import generate_followup
from viewer.core.followup.cache import RegistrationCache
from viewer.core.followup.matching import FollowUpError, follow_up, growth, linear_sum_assignment, match_findings
from viewer.core.followup.registration import register
from viewer.core.followup.transform import Registration, rotation_angle_deg
from viewer.core.jobs import Cancelled, CancelToken, run_job

SMALL = {"shape": (48, 128, 128), "spacing": (6.5, 2.7, 2.7)}


@pytest.fixture(scope="module")
def pair():
    """Seed 0 and its follow-up a year later, on a coarse grid (about 2 s)."""
    return generate_followup(0, 365, **SMALL)


def _volume(phantom, uid):
    return SimpleNamespace(array=phantom.hu, affine=phantom.affine, series_uid=uid)


def _truth_findings(pair, side: int) -> list[dict]:
    """The true nodules of one study as findings (centre, volume, diameter), in truth order of that study."""
    phantom = pair.prior if side == 0 else pair.current
    return [{"center_lps": list(n.center_lps), "volume_mm3": n.volume_mm3, "diameter_mm": n.diameter_mm}
            for n in phantom.nodules]


def test_prior_is_the_sample_phantom_pixel_for_pixel(pair):
    plain = generate_phantom(0, **SMALL)
    assert np.array_equal(plain.hu, pair.prior.hu) and np.array_equal(plain.labels, pair.prior.labels)
    assert [n.to_json() for n in plain.nodules] == [n.to_json() for n in pair.prior.nodules]


def test_registration_recovers_the_motion_at_the_nodules(pair):
    progress = []
    reg = run_job(register(_volume(pair.prior, "p"), _volume(pair.current, "c")), progress.append)
    assert len(progress) > 3 and reg.kind == "rigid"
    true = pair.current_to_prior
    centres = np.array([r["center_lps"][1] for r in pair.truth["nodules"] if r["center_lps"][1]])
    tre = np.linalg.norm(reg.to_prior(centres) - (centres @ true[:3, :3].T + true[:3, 3]), axis=1)
    assert tre.max() < 1.5, tre
    assert rotation_angle_deg(reg.current_to_prior[:3, :3].T @ true[:3, :3]) < 1.0
    # the inverse takes prior points back
    assert np.allclose(reg.to_current(reg.to_prior(centres)), centres)


def _tre(reg, pair) -> np.ndarray:
    true = pair.current_to_prior
    centres = np.array([n.center_lps for n in pair.current.nodules])
    return np.linalg.norm(reg.to_prior(centres) - (centres @ true[:3, :3].T + true[:3, 3]), axis=1)


def test_prior_on_another_grid_registers_in_patient_coordinates(pair):
    """A prior with other slice spacing, pixel size and field of view: the transform is in LPS mm, not voxels."""
    import SimpleITK as sitk

    from viewer.core.followup.registration import to_sitk

    image = to_sitk(pair.prior.hu, pair.prior.affine)
    grid = sitk.Image([100, 100, 30], sitk.sitkInt16)
    grid.SetSpacing((3.3, 3.3, 9.0))
    grid.SetOrigin(tuple(np.add(image.GetOrigin(), (8.0, 5.0, 20.0))))
    resampled = sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, -1000)
    affine = np.diag([3.3, 3.3, 9.0, 1.0])
    affine[:3, 3] = grid.GetOrigin()
    prior = SimpleNamespace(array=sitk.GetArrayFromImage(resampled), affine=affine, series_uid="p2")
    reg = run_job(register(prior, _volume(pair.current, "c")))
    assert _tre(reg, pair).max() < 2.0


def test_affine_refinement_keeps_the_alignment(pair):
    from viewer.core.followup.registration import RegistrationOptions

    reg = run_job(register(_volume(pair.prior, "p"), _volume(pair.current, "c"),
                           options=RegistrationOptions(affine=True)))
    assert reg.kind == "affine" and _tre(reg, pair).max() < 1.5
    assert Registration.from_json(reg.to_json()).kind == "affine"


def test_identical_studies_register_to_the_identity(pair):
    reg = run_job(register(_volume(pair.prior, "p"), _volume(pair.prior, "p")))
    points = np.array([n.center_lps for n in pair.prior.nodules])
    assert np.linalg.norm(reg.to_prior(points) - points, axis=1).max() < 0.5
    assert reg.rotation_deg < 0.2


def test_cancel_stops_the_registration_inside_a_level(pair):
    token = CancelToken()
    job = register(_volume(pair.prior, "p"), _volume(pair.current, "c"), cancel=token)
    seen = 0
    with pytest.raises(Cancelled):
        for progress in job:
            seen += 1
            if progress.total and progress.done >= 2:  # the optimizer is iterating: cancel now
                token.cancel()
    assert seen < 20


def test_cache_returns_the_pair_without_registering_again(pair, tmp_path):
    cache = RegistrationCache(tmp_path)
    first = run_job(register(_volume(pair.prior, "p"), _volume(pair.current, "c"), cache=cache))
    again = list(register(_volume(pair.prior, "p"), _volume(pair.current, "c"), cache=RegistrationCache(tmp_path)))
    assert len(again) == 1  # one "from the cache" step, no optimizer iterations
    hit = RegistrationCache(tmp_path).get(next(iter(p.stem for p in tmp_path.glob("*.json"))))
    assert hit is not None and hit.cached and np.allclose(hit.current_to_prior, first.current_to_prior, atol=1e-5)
    # another pair (order matters) is a miss
    assert cache.get(cache.key("c", "p", 1)) is None


def test_identity_reset_and_json_round_trip():
    reg = Registration.identity("p", "c")
    assert reg.kind == "identity" and np.array_equal(reg.to_prior([[1.0, 2.0, 3.0]]), [[1.0, 2.0, 3.0]])
    back = Registration.from_json(reg.to_json())
    assert np.array_equal(back.current_to_prior, np.eye(4)) and back.kind == "identity"


def test_inverse_swaps_the_sides_of_a_registration():
    angle = math.radians(4.0)
    matrix = np.eye(4)
    matrix[:2, :2] = [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    matrix[:3, 3] = (5.0, -3.0, 12.0)
    reg = Registration(matrix, "1.2.prior", "1.2.current", center_lps=(10.0, 20.0, -30.0))
    back = reg.inverse()
    assert (back.prior_uid, back.current_uid) == ("1.2.current", "1.2.prior")
    points = np.array([[0.0, 0.0, 0.0], [100.0, -50.0, 20.0]])
    np.testing.assert_allclose(back.to_prior(reg.to_prior(points)), points, atol=1e-9)
    assert back.rotation_deg == pytest.approx(4.0)
    np.testing.assert_allclose(back.translation_mm, -reg.translation_mm, atol=1e-9)


def test_matching_through_the_registration_uses_the_truth(pair):
    reg = Registration(pair.current_to_prior, "p", "c")
    records = follow_up(_truth_findings(pair, 0), _truth_findings(pair, 1), reg, pair.days)
    for rec in pair.truth["nodules"]:
        expected = {"growing": "matched", "stable": "matched"}.get(rec["status"], rec["status"])
        got = [r for r in records if (r["prior_index"], r["current_index"]) == (rec["prior_id"], rec["current_id"])]
        assert len(got) == 1 and got[0]["status"] == expected, (rec, records)
        if rec["vdt_days"]:
            assert got[0]["vdt_days"] == pytest.approx(rec["vdt_days"], rel=0.01)
        if rec["status"] == "stable":
            assert got[0]["vdt_days"] is None and got[0]["vdt_note"] == "no growth"
    # without the registration (table position only) the same lists still pair, but further apart
    plain = match_findings(_truth_findings(pair, 0), _truth_findings(pair, 1))
    assert max(m.distance_mm or 0 for m in plain) > max(r["distance_mm"] or 0 for r in records)


def test_far_findings_stay_unmatched_and_the_limit_scales_with_size():
    prior = [{"center_lps": [0, 0, 0], "diameter_mm": 6}, {"center_lps": [100, 0, 0], "diameter_mm": 40}]
    current = [{"center_lps": [0, 0, 30], "diameter_mm": 6}, {"center_lps": [100, 0, 18], "diameter_mm": 40}]
    matches = match_findings(prior, current)
    statuses = sorted((m.status, m.prior, m.current) for m in matches)
    # 30 mm is too far for a 6 mm nodule (limit 15 mm); 18 mm is within half of a 40 mm mass's diameter
    assert statuses == [("matched", 1, 1), ("new", None, 0), ("resolved", 0, None)]


def test_assignment_is_optimal_against_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(60):
        n, m = (int(v) for v in rng.integers(1, 6, 2))
        cost = np.round(rng.random((n, m)) * 10, 1)
        rows, cols = linear_sum_assignment(cost)
        k = min(n, m)
        best = min(sum(cost[i, j] for i, j in zip(r, c)) for r in itertools.combinations(range(n), k)
                   for c in itertools.permutations(range(m), k))
        assert len(rows) == k and cost[rows, cols].sum() == pytest.approx(best)


def test_growth_rules_and_hostile_inputs():
    assert growth(100, 200, 100)["vdt_days"] == pytest.approx(100.0)
    assert growth(100, 100, 100) == {"growth_pct": 0.0, "vdt_days": None, "vdt_note": "no growth"}
    assert growth(200, 100, 100)["vdt_note"] == "shrinking"
    assert growth(None, 100, 100)["vdt_note"] == "no volume"
    with pytest.raises(FollowUpError, match="days"):
        growth(100, 200, 0)
    with pytest.raises(FollowUpError):
        follow_up([{"center_lps": [0, 0, 0], "volume_mm3": 1}], [{"center_lps": [0, 0, 0], "volume_mm3": 2}], None, 0)
    assert follow_up([], [], None, 0) == []  # nothing to match: no days needed
    assert [r["status"] for r in follow_up([], [{"center_lps": [0, 0, 0]}], None, 30)] == ["new"]
    with pytest.raises(ValueError):
        generate_followup(0, 0, **SMALL)
    flat = SimpleNamespace(array=np.zeros((1, 8, 8), np.int16), affine=np.eye(4), series_uid="x")
    with pytest.raises(ValueError, match="3D"):
        run_job(register(flat, flat))
    assert math.isclose(rotation_angle_deg(np.eye(3)), 0.0)
