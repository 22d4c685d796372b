"""How well the nodule measurements agree with an exact truth (``hounsfield evaluate``, issue 11).

For every true nodule of a case with an exact nodule mask (generated phantoms and ``hounsfield sample`` studies:
the generator's label 4, each nodule one connected component) that the detector found, the measurement of the
hitting finding (the best-scoring detection whose centre lies within ``max(d/2, 4 mm)`` of the nodule, as the
FROC counts hits) is compared with the same measurement of the nodule's own mask: the truth mean diameter is
:func:`inference.nodule_measurements.axial_axes_mm` applied to the mask, so only the segmentation differs.

Targets (issue 11, nodules >= 6 mm): volume within +-15 % and mean diameter within +-1.5 mm. Reported overall
(>= 6 mm) and per size band of the nodule's nominal diameter (3-6, 6-10, 10-20, 20-40 mm; the last band holds
everything above 20 mm).
"""
from __future__ import annotations

import numpy as np

from inference.metrics import wilson_interval

#: Nodule size bands (mm), as the detection figures of issue 11.
BANDS_MM = ((3.0, 6.0), (6.0, 10.0), (10.0, 20.0), (20.0, 40.0))
VOLUME_TARGET = 0.15
DIAMETER_TARGET_MM = 1.5
MIN_TARGET_DIAMETER_MM = 6.0
EXACT_REFERENCES = ("generated", "sample ground truth")


def band_of(diameter_mm: float) -> str | None:
    """``"6-10"`` ...: the band of a nominal diameter (None below 3 mm)."""
    for lo, hi in BANDS_MM:
        if lo <= diameter_mm < hi or (hi == BANDS_MM[-1][1] and diameter_mm >= lo):
            return f"{lo:g}-{hi:g}"
    return None


def _hitting(detections, centre, diameter_mm) -> int | None:
    from inference.metrics import match_radius

    if len(detections) == 0:
        return None
    d = np.linalg.norm(detections.centers_lps - np.asarray(centre, float)[None], axis=1)
    hits = np.flatnonzero(d <= match_radius(diameter_mm))
    return int(hits[np.argmax(detections.scores[hits])]) if hits.size else None


def measurement_rows(detections, nodule_mask: np.ndarray, affine: np.ndarray, centres_lps, diameters_mm
                     ) -> list[dict]:
    """Per true nodule: ``{"diameter_mm", "band", "found", "truth": {...}, "measured": {...} | None,
    "volume_error_pct", "mean_diameter_error_mm", "within_target"}`` (errors None when not found or not
    measured).

    Parameters
    ----------
    detections
        The detector's ``Detections`` with ``measurements``.
    nodule_mask
        Boolean ``(z, y, x)`` exact nodule mask; each nodule one connected component holding its centre voxel.
    affine, centres_lps, diameters_mm
        The grid's index -> LPS affine and the nodules' centres (LPS mm) and nominal diameters.
    """
    import SimpleITK as sitk

    from inference.nodule_measurements import mask_measurements

    components = sitk.GetArrayFromImage(sitk.ConnectedComponent(
        sitk.GetImageFromArray(np.asarray(nodule_mask, np.uint8)), True))
    inverse = np.linalg.inv(np.asarray(affine, float))
    measurements = getattr(detections, "measurements", None)
    rows = []
    for centre, diameter in zip(np.asarray(centres_lps, float).reshape(-1, 3), np.asarray(diameters_mm, float)):
        index = np.rint((inverse[:3, :3] @ centre + inverse[:3, 3])[::-1]).astype(int)
        index = np.clip(index, 0, np.asarray(components.shape) - 1)
        label = int(components[tuple(index)])
        row: dict = {"diameter_mm": round(float(diameter), 1), "band": band_of(float(diameter)), "found": False,
                     "truth": None, "measured": None, "volume_error_pct": None, "mean_diameter_error_mm": None,
                     "within_target": None}
        if label:
            box = _label_box(components, label)
            truth = mask_measurements(components[box] == label, affine)
            row["truth"] = {"volume_mm3": round(truth["volume_mm3"], 1),
                            "mean_diameter_mm": round(truth["mean_diameter_mm"], 2)}
        hit = _hitting(detections, centre, diameter)
        if hit is not None:
            row["found"] = True
            m = measurements[hit] if measurements is not None else None
            if m is not None and row["truth"] is not None:
                row["measured"] = {"volume_mm3": m["volume_mm3"], "mean_diameter_mm": m["mean_diameter_mm"],
                                   "type": m["type"]}
                volume_error = 100.0 * (m["volume_mm3"] / row["truth"]["volume_mm3"] - 1.0)
                diameter_error = m["mean_diameter_mm"] - row["truth"]["mean_diameter_mm"]
                row["volume_error_pct"] = round(volume_error, 1)
                row["mean_diameter_error_mm"] = round(diameter_error, 2)
                row["within_target"] = bool(abs(volume_error) <= 100 * VOLUME_TARGET
                                            and abs(diameter_error) <= DIAMETER_TARGET_MM)
        rows.append(row)
    return rows


def _label_box(components: np.ndarray, label: int):
    """Slices around one label (so the truth is measured on a small crop, offset-free in mm)."""
    where = np.argwhere(components == label)
    lo, hi = where.min(0), where.max(0) + 1
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def measurement_row(result, case, scan=None) -> dict:
    """``{"measurements": [...]}`` for a case with an exact nodule mask scored with a measuring detector, else
    ``{}`` (what :func:`viewer.core.evaluation.score_case` adds to its row)."""
    if getattr(result, "measurements", None) is None or case.reference not in EXACT_REFERENCES:
        return {}
    mask = case.masks.get("nodule")
    if mask is None or not len(case.nodules_lps):
        return {}
    return {"measurements": measurement_rows(result, mask, case.affine, case.nodules_lps, case.nodule_diameters)}


def _figures(items: list[dict]) -> dict:
    measured = [r for r in items if r["within_target"] is not None]
    out = {"nodules": len(items), "found": sum(r["found"] for r in items), "measured": len(measured)}
    if measured:
        volume = np.abs([r["volume_error_pct"] for r in measured])
        diameter = np.abs([r["mean_diameter_error_mm"] for r in measured])
        within = sum(bool(r["within_target"]) for r in measured)
        out.update({
            "within_target": round(within / len(measured), 3),
            "within_target_ci95": wilson_interval(within, len(measured)),
            "volume_within_15pct": round(float(np.mean(volume <= 100 * VOLUME_TARGET)), 3),
            "diameter_within_1_5mm": round(float(np.mean(diameter <= DIAMETER_TARGET_MM)), 3),
            "volume_mae_pct": round(float(volume.mean()), 1),
            "mean_diameter_mae_mm": round(float(diameter.mean()), 2)})
    return out


def measurement_summary(rows: list[dict]) -> dict:
    """``{"measurement": {"target": {...}, ">=6": {...}, "by_size_mm": {band: {...}}}}`` over the case rows
    that carry ``"measurements"`` (``{}`` when none does): found and measured nodules, the fraction within
    target (both), within the volume and the diameter target alone, mean absolute volume error (%) and mean
    diameter error (mm)."""
    items = [m for r in rows for m in r.get("measurements", [])]
    if not items:
        return {}
    bands = {f"{lo:g}-{hi:g}": _figures([m for m in items if m["band"] == f"{lo:g}-{hi:g}"]) for lo, hi in BANDS_MM}
    large = _figures([m for m in items if m["diameter_mm"] >= MIN_TARGET_DIAMETER_MM])
    return {"measurement": {"target": {"volume_pct": 100 * VOLUME_TARGET, "mean_diameter_mm": DIAMETER_TARGET_MM,
                                       "min_diameter_mm": MIN_TARGET_DIAMETER_MM},
                            ">=6": large, "by_size_mm": bands}}


def measurement_lines(summary: dict) -> list[str]:
    """The lines ``format_report`` prints for a summary's ``"measurement"`` entry (none without one)."""
    entry = summary.get("measurement")
    if not entry:
        return []

    def line(name: str, f: dict) -> str:
        if not f.get("measured"):
            return f"    {name:<9} {f['nodules']:>3} nodules, {f['found']} found, none measured"
        ci = f.get("within_target_ci95")
        interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
        return (f"    {name:<9} {f['nodules']:>3} nodules, {f['measured']:>3} measured: within target "
                f"{f['within_target']:.2f}{interval} (volume {f['volume_within_15pct']:.2f}, diameter "
                f"{f['diameter_within_1_5mm']:.2f}); MAE volume {f['volume_mae_pct']:.1f} %, mean diameter "
                f"{f['mean_diameter_mae_mm']:.2f} mm")

    lines = ["  measurements of found nodules vs exact truth (targets: volume +-15 %, mean diameter +-1.5 mm):",
             line(">= 6 mm", entry[">=6"])]
    lines += [line(band + " mm", f) for band, f in entry["by_size_mm"].items()]
    return lines


__all__ = ["BANDS_MM", "band_of", "measurement_rows", "measurement_row", "measurement_summary",
           "measurement_lines"]
