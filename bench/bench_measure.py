"""Nodule measurements alone, on the evaluation phantoms' true boxes (``python -m bench bench_measure``; issue 11).

The figures of ``hounsfield evaluate``'s "measurement" section without the detector: every nodule of the 60
evaluation phantoms (:data:`inference.training.data.EVAL_SEEDS`, each at its own acquisition grid) is measured by
:func:`inference.nodule_measurements.measure_nodule` on the box of its exact label (label 4, one connected
component) and compared, as the evaluation does, with the same measurement of that label: volume = the label's
voxel count on the sampled grid (the phantom draws a voxel into it when at least half of it is nodule), mean
diameter = :func:`inference.nodule_measurements.axial_axes_mm` of the label. A detector's box is often smaller
than its nodule, so these figures are not the evaluation's; they show the segmentation itself in seconds.

The phantoms are generated once (about 12 minutes) and cached under ``bench/out/measure_phantoms/``.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def _phantom(seed: int, cache: Path):
    """``(hu, nodule mask, affine, nodules)`` of evaluation phantom ``seed`` (cached)."""
    path = cache / f"{seed}.npz"
    if not path.exists():
        from inference.training.data import acquisition_grid
        from inference.training.phantom import generate_phantom

        shape, spacing = acquisition_grid(seed)
        p = generate_phantom(seed, shape=shape, spacing=spacing)
        nodules = [{"center_lps": list(n.center_lps), "diameter_mm": n.diameter_mm, "type": n.type,
                    "juxtapleural": n.juxtapleural, "vessel": n.touches_vessel, "perifissural": n.perifissural}
                   for n in p.nodules]
        np.savez_compressed(path, hu=p.hu, nodule=p.labels == 4, affine=p.affine,
                            nodules=np.array(json.dumps(nodules)))
    data = np.load(path)
    return data["hu"], data["nodule"], data["affine"], json.loads(str(data["nodules"]))


def measure_rows(seeds, cache: Path) -> tuple[list[dict], float]:
    """Per nodule ``{"seed", "diameter_mm", "band", "type", "kind", "volume_error_pct", "diameter_error_mm"}``
    and the mean seconds per measurement."""
    import SimpleITK as sitk

    from inference.nodule_measurements import lung_extent, mask_measurements, measure_nodule
    from viewer.core.evaluation_measurements import band_of

    rows, seconds = [], []
    for seed in seeds:
        hu, nodule, affine, nodules = _phantom(seed, cache)
        components = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(nodule.astype(np.uint8)),
                                                                    True))
        extent = lung_extent(hu, affine)
        inverse = np.linalg.inv(affine)
        for n in nodules:
            index = np.rint((inverse[:3, :3] @ np.asarray(n["center_lps"]) + inverse[:3, 3])[::-1]).astype(int)
            label = int(components[tuple(index)])
            if not label:
                continue
            where = np.argwhere(components == label)
            lo, hi = where.min(0), where.max(0) + 1
            truth = mask_measurements(components[tuple(slice(a, b) for a, b in zip(lo, hi))] == label, affine)
            start = time.perf_counter()
            m = measure_nodule(hu, affine, np.r_[lo, hi], extent)
            seconds.append(time.perf_counter() - start)
            kind = "juxtapleural" if n["juxtapleural"] else "vessel" if n["vessel"] else \
                "perifissural" if n["perifissural"] else "free"
            row = {"seed": seed, "diameter_mm": n["diameter_mm"], "band": band_of(n["diameter_mm"]),
                   "type": n["type"], "kind": kind, "volume_error_pct": None, "diameter_error_mm": None}
            if m is not None:
                row["volume_error_pct"] = 100.0 * (m["volume_mm3"] / truth["volume_mm3"] - 1.0)
                row["diameter_error_mm"] = m["mean_diameter_mm"] - truth["mean_diameter_mm"]
                row["measured_type"] = m["type"]
            rows.append(row)
    return rows, float(np.mean(seconds)) if seconds else 0.0


def _line(name: str, rows: list[dict]) -> str:
    measured = [r for r in rows if r["volume_error_pct"] is not None]
    if not measured:
        return f"{name:<14} {len(rows):>3} nodules, none measured"
    volume = np.abs([r["volume_error_pct"] for r in measured])
    diameter = np.abs([r["diameter_error_mm"] for r in measured])
    return (f"{name:<14} {len(measured):>3} measured: volume within 15 % {np.mean(volume <= 15):.2f} "
            f"(MAE {volume.mean():.1f} %), mean diameter within 1.5 mm {np.mean(diameter <= 1.5):.2f} "
            f"(MAE {diameter.mean():.2f} mm)")


def run(workdir: Path) -> Iterator[str]:
    from inference.training.data import EVAL_SEEDS
    from viewer.core.evaluation_measurements import BANDS_MM

    cache = workdir / "measure_phantoms"
    cache.mkdir(exist_ok=True)
    rows, seconds = measure_rows(EVAL_SEEDS, cache)
    yield _line(">= 6 mm", [r for r in rows if r["diameter_mm"] >= 6])
    for lo, hi in BANDS_MM:
        band = f"{lo:g}-{hi:g}"
        yield _line(band + " mm", [r for r in rows if r["band"] == band])
    for kind in ("free", "juxtapleural", "vessel", "perifissural"):
        yield _line(kind, [r for r in rows if r["kind"] == kind and r["diameter_mm"] >= 6])
    for typ in ("solid", "part-solid", "ground-glass", "calcified"):
        yield _line(typ, [r for r in rows if r["type"] == typ and r["diameter_mm"] >= 6])
    yield f"measurement time {1000 * seconds:.0f} ms per nodule (true boxes)"
