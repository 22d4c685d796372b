"""A follow-up study of a phantom patient: the same chest ``days`` later, nodules grown, one new, one gone, moved.

``generate_followup(seed, days)`` returns the prior (identical to ``generate_phantom(seed)``), the follow-up and
the ground truth linking them. How the follow-up is made, and why it stays exact:

* the anatomy, trees, mimics and nodule placement are those of the prior (``prepare_base``: one render for both);
* each prior nodule is drawn again by the same code (``draw_nodules``) from the same random state, at a radius
  scaled for its volume doubling time (VDT): ``r1 = r0 * 2 ** (days / (3 * VDT))``. Lobulation, clipping to the
  lung and partial volume make the drawn volume differ from a sphere's, so the truth reports the volumes of the
  drawn label voxels (then and now) and the VDT they give, beside the planned one;
* the smallest nodule (of two or more) resolves, and one new solid nodule appears, placed by the prior's rule;
* the patient moves on the table: the noiseless follow-up image is resampled through a rigid motion (a few degrees
  about the z axis, a small tilt, a few mm shift) onto the same axis-aligned grid, then acquired with its own noise.
  The table moves with the patient (it is part of the image), which is harmless to a lung-focused registration.

The motion is reported as ``current_to_prior``: the 4x4 matrix taking a point in the follow-up's LPS mm to the same
anatomical point in the prior's LPS mm (the direction a registration with the follow-up as fixed image finds).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from inference.training.phantom.acquisition import acquire
from inference.training.phantom.generate import (
                                                 DEFAULT_SHAPE,
                                                 DEFAULT_SPACING,
                                                 draw_mimics,
                                                 phantom_info,
                                                 prepare_base,
)
from inference.training.phantom.nodules import draw_nodules, place_nodules
from inference.training.phantom.truth import PHANTOM_VERSION, Nodule, Phantom
from inference.types import float3

VDT_PLAN_DAYS = (150.0, 250.0, 400.0)
"""Doubling times given in turn to the growing nodules (largest first after the stable one): fast to slow solid."""
MAX_GROWN_DIAMETER_MM = 30.0
"""A nodule's VDT is lengthened where needed so it does not grow past this diameter (the detector sees up to 40)."""
NEW_NODULE_MM = 8.0
_FOLLOWUP_STREAM = 7919  # tags the follow-up's random streams apart from the prior's


@dataclass(eq=False)
class FollowUp:
    """A prior phantom, its follow-up and the truth linking them.

    Parameters
    ----------
    prior, current
        The two phantoms (``current.nodules`` in the follow-up's LPS).
    days
        Days between the studies.
    current_to_prior
        4x4: follow-up LPS mm -> prior LPS mm.
    truth
        The ``followup.json`` content: ``days``, ``motion`` and per nodule ``prior_id``/``current_id``, volumes,
        diameters, centres and VDTs (see :func:`generate_followup`).
    """

    prior: Phantom
    current: Phantom
    days: int
    current_to_prior: np.ndarray
    truth: dict


def rigid_matrix(angles_deg, translation_mm, center) -> np.ndarray:
    """4x4 of ``p -> R (p - c) + c + t`` with ``R = Rz @ Ry @ Rx`` (angles about x, y, z in degrees)."""
    ax, ay, az = (math.radians(a) for a in angles_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    r = rz @ ry @ rx
    c = np.asarray(center, float)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = c - r @ c + np.asarray(translation_mm, float)
    return m


def _growth_plan(nodules: list[Nodule], days: int) -> tuple[int | None, dict[int, float]]:
    """Which prior nodule resolves (index or None) and each other nodule's planned VDT (``inf``: stable).

    The smallest of two or more resolves; the largest remaining is stable; the others grow with the VDTs of
    ``VDT_PLAN_DAYS`` in turn, slowed where they would pass ``MAX_GROWN_DIAMETER_MM``.
    """
    order = sorted(range(len(nodules)), key=lambda i: nodules[i].diameter_mm)
    gone = order.pop(0) if len(order) >= 2 else None
    vdt: dict[int, float] = {}
    for rank, i in enumerate(reversed(order)):
        if rank == 0 and len(order) >= 2:
            vdt[i] = math.inf
            continue
        planned = VDT_PLAN_DAYS[(rank - 1) % len(VDT_PLAN_DAYS)] if len(order) >= 2 else VDT_PLAN_DAYS[0]
        d0 = nodules[i].diameter_mm
        if d0 * 2 ** (days / (3 * planned)) > MAX_GROWN_DIAMETER_MM:
            planned = days / (3 * math.log2(max(MAX_GROWN_DIAMETER_MM / d0, 1.0 + 1e-3)))
        vdt[i] = round(planned, 1)
    return gone, vdt


def _resample(image: np.ndarray, spacing, origin, current_to_prior: np.ndarray, linear: bool, fill: float):
    """``image`` (prior frame) seen in the follow-up frame on the same grid: out(q) = image(current_to_prior q)."""
    import SimpleITK as sitk

    itk = sitk.GetImageFromArray(image)
    itk.SetSpacing(tuple(float(v) for v in spacing[::-1]))
    itk.SetOrigin(tuple(float(v) for v in origin))
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(float(v) for v in current_to_prior[:3, :3].ravel()))
    transform.SetTranslation(tuple(float(v) for v in current_to_prior[:3, 3]))
    out = sitk.Resample(itk, itk, transform, sitk.sitkBSpline if linear else sitk.sitkNearestNeighbor, fill,
                        itk.GetPixelID())
    return sitk.GetArrayFromImage(out)


def generate_followup(seed: int = 0, days: int = 365, shape=DEFAULT_SHAPE, spacing=DEFAULT_SPACING, *,
                      noise: bool = True) -> FollowUp:
    """The prior phantom of ``seed`` and its follow-up ``days`` later (see the module notes).

    Parameters
    ----------
    seed, shape, spacing, noise
        As :func:`~inference.training.phantom.generate_phantom`; the prior is that phantom, pixel for pixel.
    days
        Days between the studies (> 0): sets the growth.

    Returns
    -------
    FollowUp
        ``truth["nodules"]`` lists one record per nodule of either study: ``prior_id`` / ``current_id`` (indices
        into each study's ``nodules.json``, None where absent), ``status`` (``growing``, ``stable``, ``new``,
        ``resolved``), ``vdt_planned_days`` (None for stable), ``volume_mm3`` / ``diameter_mm`` ``[then, now]``
        (label voxels drawn; generating sphere), ``vdt_days`` (from the drawn volumes; None without growth) and
        ``center_lps`` ``[then, now]`` each in its own study's LPS.
    """
    if days <= 0:
        raise ValueError(f"a follow-up needs a positive number of days, not {days}")
    base = prepare_base(seed, shape, spacing, None)
    fu_streams = np.random.SeedSequence([PHANTOM_VERSION, int(seed), _FOLLOWUP_STREAM, int(days)]).spawn(3)
    rng_new, rng_motion, rng_noise_fu = (np.random.default_rng(s) for s in fu_streams)
    clean_fu, labels_fu = base.clean.copy(), base.labels.copy()
    mimic_state = base.rng_mimic.bit_generator.state

    # The prior, nodule by nodule, exactly as generate_phantom draws them; each nodule's random state is kept so the
    # follow-up draws the same nodule (its lobes, spicules) again at its grown size.
    prior_nodules: list[Nodule] = []
    states, kept_placed = [], []
    for placed in base.placed:
        state = base.rng_nodule.bit_generator.state
        drawn = draw_nodules(base.rng_nodule, base.clean, base.labels, base.spacing, [placed], base.origin)
        if drawn:
            prior_nodules += drawn
            states.append(state)
            kept_placed.append(placed)
    mimics = draw_mimics(base, base.rng_mimic, base.clean, base.labels)
    hu = acquire(base.rng_noise, base.clean, base.anatomy, base.spacing, noise)
    prior = Phantom(hu=hu, labels=base.labels, spacing=base.spacing, origin_lps=float3(base.origin),
                    nodules=prior_nodules, seed=int(seed), info=phantom_info(base, mimics))

    gone, vdt_plan = _growth_plan(prior_nodules, days)
    records: list[dict] = []
    current_frame: list[Nodule] = []  # follow-up nodules, still in the prior's frame
    for i, (placed, state) in enumerate(zip(kept_placed, states)):
        if i == gone:
            records.append({"prior_id": i, "current_id": None, "status": "resolved"})
            continue
        vdt = vdt_plan[i]
        rng = np.random.default_rng()
        rng.bit_generator.state = state
        centre, radius, typ, kind = placed
        scale = 2 ** (days / (3 * vdt)) if math.isfinite(vdt) else 1.0
        drawn = draw_nodules(rng, clean_fu, labels_fu, base.spacing, [(centre, radius * scale, typ, kind)],
                             base.origin)
        if not drawn:  # cannot happen for a nodule drawn before at a smaller size; kept honest anyway
            records.append({"prior_id": i, "current_id": None, "status": "resolved"})
            continue
        records.append({"prior_id": i, "current_id": len(current_frame),
                        "status": "growing" if math.isfinite(vdt) else "stable",
                        "vdt_planned_days": vdt if math.isfinite(vdt) else None})
        current_frame.append(drawn[0])

    # the new nodule: placed by the prior's rule, clear of every nodule of either study
    for _ in range(20):
        (new,) = place_nodules(rng_new, base.anatomy, [("free", NEW_NODULE_MM, "solid", 0)], base.pool,
                               base.trees.vessels) or [None]
        if new is not None and all(np.linalg.norm(new[0] - c) > new[1] + r * 1.5 + 8 for c, r, *_ in base.placed):
            drawn = draw_nodules(rng_new, clean_fu, labels_fu, base.spacing, [new], base.origin)
            if drawn:
                records.append({"prior_id": None, "current_id": len(current_frame), "status": "new"})
                current_frame.append(drawn[0])
                break
    rng_mimic = np.random.default_rng()
    rng_mimic.bit_generator.state = mimic_state
    draw_mimics(base, rng_mimic, clean_fu, labels_fu)

    # the patient moved: rotation about the volume centre, mostly about z (lying turned), a small tilt, a shift
    sz, sy, sx = base.spacing
    centre = base.origin + (np.array(base.shape[::-1]) - 1) * (sx, sy, sz) / 2
    angles = (rng_motion.uniform(-1.5, 1.5), rng_motion.uniform(-1.5, 1.5),
              rng_motion.choice([-1, 1]) * rng_motion.uniform(2.0, 5.0))
    shift = (rng_motion.uniform(-8, 8), rng_motion.uniform(-8, 8), rng_motion.uniform(-10, 10))
    prior_to_current = rigid_matrix(angles, shift, centre)
    current_to_prior = np.linalg.inv(prior_to_current)
    clean_cur = _resample(clean_fu, base.spacing, base.origin, current_to_prior, True, -1000.0)
    labels_cur = _resample(labels_fu, base.spacing, base.origin, current_to_prior, False, 0)
    hu_cur = acquire(rng_noise_fu, clean_cur, base.anatomy, base.spacing, noise)

    current_nodules = []
    for n in current_frame:
        c = prior_to_current[:3, :3] @ np.asarray(n.center_lps) + prior_to_current[:3, 3]
        current_nodules.append(Nodule(float3(c), n.diameter_mm, n.type, n.juxtapleural, n.touches_vessel,
                                      n.volume_mm3, n.perifissural, n.solid_core_mm))
    current = Phantom(hu=hu_cur, labels=labels_cur, spacing=base.spacing, origin_lps=float3(base.origin),
                      nodules=current_nodules, seed=int(seed), info={**prior.info, "followup_days": int(days)})

    for rec in records:
        then = prior_nodules[rec["prior_id"]] if rec["prior_id"] is not None else None
        now = current_nodules[rec["current_id"]] if rec["current_id"] is not None else None
        rec.setdefault("vdt_planned_days", None)
        rec["volume_mm3"] = [round(n.volume_mm3, 1) if n else None for n in (then, now)]
        rec["diameter_mm"] = [round(n.diameter_mm, 2) if n else None for n in (then, now)]
        rec["center_lps"] = [[round(float(v), 3) for v in n.center_lps] if n else None for n in (then, now)]
        rec["vdt_days"] = None
        if then and now and now.volume_mm3 > then.volume_mm3:
            rec["vdt_days"] = round(days * math.log(2) / math.log(now.volume_mm3 / then.volume_mm3), 1)
    truth = {
        "days": int(days), "seed": int(seed),
        "motion": {"current_to_prior": [[round(float(v), 6) for v in row] for row in current_to_prior],
                   "prior_to_current_angles_deg_xyz": [round(float(a), 3) for a in angles],
                   "prior_to_current_shift_mm": [round(float(v), 3) for v in shift],
                   "center_lps": [round(float(v), 3) for v in centre],
                   "convention": "current_to_prior maps follow-up LPS mm to prior LPS mm; "
                                 "prior_to_current is p -> Rz Ry Rx (p - center) + center + shift"},
        "nodules": records,
        "vdt": "volume doubling time in days = days * ln 2 / ln(V_now / V_then), from the drawn label volumes; "
               "null where the volume did not grow",
    }
    return FollowUp(prior, current, int(days), current_to_prior, truth)
