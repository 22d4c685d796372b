"""``hounsfield evaluate``: how well a model does on studies with a known answer.

Data (``DATA...`` on the command line):

* ``phantom:SEEDS`` - phantoms generated in memory at their random acquisition grids (``phantom:5000-5019``,
  ``phantom:0,7``); ground truth from the generator. :data:`inference.training.data.EVAL_SEEDS` are never trained on.
* a folder written by ``hounsfield sample`` (``dicom/`` + ``ground_truth/``).
* a DICOM folder with an LIDC-IDRI XML: the readers' nodules >= 3 mm (:mod:`viewer.core.lidc`) and a lung reference
  from thresholding and connected components (:func:`lung_reference`), since LIDC has no lung masks.

Metrics: Dice per reference label (per case; the summary is the mean over cases where the label exists in the
reference), and for detection models the FROC sensitivity at 1/8 ... 8 false positives per scan
(:mod:`inference.metrics`: a hit is a box centre within ``max(radius, 4 mm)`` of a nodule centre). Segmentation
models are also scored as nodule detectors at their single operating point (one candidate per connected nodule
component).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.metrics import ScanDetections, best_hits, dice, froc

LUNG_NAMES = ("lung_left", "lung_right")
AIRWAY = "airway"
NODULE = "nodule"
LUNGS_WITH_AIRWAYS = "lungs+airways"


@dataclass
class EvalCase:
    """A volume with its reference: label masks by name and nodules (LPS centres, diameters)."""

    name: str
    array: np.ndarray
    affine: np.ndarray
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    nodules_lps: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    nodule_diameters: np.ndarray = field(default_factory=lambda: np.zeros(0))
    reference: str = ""
    modality: str = "CT"


# ---------------------------------------------------------------------------------------------------------------
# References.

def lung_reference(array: np.ndarray, threshold_hu: float = -400.0) -> np.ndarray:
    """Lungs (with airways) of a chest CT by threshold and connected components - no learning involved.

    Air below ``threshold_hu`` is split into 3D components; those touching the in-plane border are outside the
    body and go; of the rest, components of at least 20 % of the largest are the lungs (one or two: the airways
    join them). Vessels inside the lungs (above the threshold) are put back by a small closing and by filling
    the holes of every axial slice.
    """
    import SimpleITK as sitk

    air = sitk.GetImageFromArray((np.asarray(array) < threshold_hu).astype(np.uint8))
    components = sitk.GetArrayFromImage(sitk.ConnectedComponent(air, False))
    border = np.unique(np.concatenate([components[:, 0].ravel(), components[:, -1].ravel(),
                                       components[:, :, 0].ravel(), components[:, :, -1].ravel()]))
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    sizes[border] = 0
    if not sizes.any():
        return np.zeros(components.shape, bool)
    keep = np.flatnonzero(sizes >= 0.2 * sizes.max())
    lungs = sitk.GetImageFromArray(np.isin(components, keep).astype(np.uint8))
    lungs = sitk.BinaryMorphologicalClosing(lungs, [2, 2, 1])
    filled = sitk.GetArrayFromImage(lungs).astype(bool)
    for z in range(filled.shape[0]):
        if filled[z].any():
            filled[z] = sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk.GetImageFromArray(filled[z].astype(np.uint8))))
    return filled


def _reference_masks(labels: np.ndarray, names: dict[int, str]) -> dict[str, np.ndarray]:
    masks = {name: labels == value for value, name in names.items() if value}
    if all(n in masks for n in LUNG_NAMES):
        masks[LUNGS_WITH_AIRWAYS] = masks[LUNG_NAMES[0]] | masks[LUNG_NAMES[1]] | masks.get(AIRWAY, False)
    return masks


def phantom_case(seed: int) -> EvalCase:
    """Phantom ``seed`` with its generated truth, at its own random acquisition grid (slices 0.625-5 mm, pixels
    0.6-0.95 mm, :func:`inference.training.data.acquisition_grid`); the demo seed at the routine 2.5 / 0.9 mm."""
    from inference.training.data import acquisition_grid
    from inference.training.phantom import DEMO_SEED, LABELS, generate_phantom

    if seed == DEMO_SEED:
        phantom = generate_phantom(seed)
    else:
        shape, spacing = acquisition_grid(seed)
        phantom = generate_phantom(seed, shape=shape, spacing=spacing)
    centres = np.array([n.center_lps for n in phantom.nodules], float).reshape(-1, 3)
    diameters = np.array([n.diameter_mm for n in phantom.nodules], float)
    return EvalCase(f"phantom {seed}", phantom.hu, phantom.affine, _reference_masks(phantom.labels, LABELS),
                    centres, diameters, "generated")


def load_largest_series(folder: Path):
    """The volume of the image series with the most frames under ``folder``."""
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan

    series = [s for s in scan([folder]).all_series() if s.kind == "image"]
    if not series:
        raise ValueError(f"{folder}: no image series")
    return load_series(max(series, key=lambda s: s.n_frames))


def sample_case(folder: str | Path) -> EvalCase:
    """A study written by ``hounsfield sample``: its DICOM volume and ``ground_truth/``."""
    import nibabel as nib
    from nibabel.spatialimages import SpatialImage

    from inference.geometry import lps_affine

    folder = Path(folder)
    volume = load_largest_series(folder / "dicom")
    truth = folder / "ground_truth"
    image = nib.load(str(truth / "labels.nii.gz"))
    if not isinstance(image, SpatialImage):
        raise ValueError(f"{truth}: labels.nii.gz is not an image")
    index_to_volume = np.linalg.inv(volume.affine) @ lps_affine(image.affine)
    if not np.allclose(index_to_volume, np.eye(4), atol=1e-3):
        raise ValueError(f"{truth}: labels.nii.gz is not on the DICOM series' grid")
    labels = np.asarray(image.dataobj).transpose(2, 1, 0)
    table = json.loads((truth / "labels.json").read_text())["labels"]
    # `hounsfield sample` writes a list of {value, name, description}; older folders a {value: name} mapping
    names = ({int(e["value"]): str(e["name"]) for e in table} if isinstance(table, list)
             else {int(k): v for k, v in table.items()})
    nodules = json.loads((truth / "nodules.json").read_text())["nodules"]
    return EvalCase(folder.name, volume.array, volume.affine, _reference_masks(labels, names),
                    np.array([n["center_lps"] for n in nodules], float).reshape(-1, 3),
                    np.array([n["diameter_mm"] for n in nodules], float), "sample ground truth",
                    volume.modality or "CT")


def lidc_case(folder: str | Path) -> EvalCase:
    """An LIDC-IDRI study: readers' nodules >= 3 mm from its XML, lungs by :func:`lung_reference`."""
    from viewer.core.lidc import find_lidc_xml, read_lidc_nodules

    folder = Path(folder)
    xmls = find_lidc_xml(folder)
    if not xmls:
        raise ValueError(f"{folder}: no LIDC XML (nothing to compare with)")
    volume = load_largest_series(folder)
    nodules = read_lidc_nodules(xmls[0], volume.affine, getattr(volume, "slice_positions", None))
    return EvalCase(folder.name, volume.array, volume.affine, {LUNGS_WITH_AIRWAYS: lung_reference(volume.array)},
                    np.array([n.center_lps for n in nodules], float).reshape(-1, 3),
                    np.array([n.diameter_mm for n in nodules], float), "LIDC readers + threshold lungs",
                    volume.modality or "CT")


def parse_seeds(text: str) -> list[int]:
    """``"5000-5009"`` / ``"0,7,9"`` -> seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part[1:]:
            a, b = part.split("-", 1)
            seeds.extend(range(int(a), int(b) + 1))
        elif part:
            seeds.append(int(part))
    return seeds


def cases_from(data: list[str]) -> Iterator[EvalCase]:
    """The cases named on the command line, built one at a time (phantoms are generated on the way)."""
    for item in data:
        if item.startswith("phantom:"):
            for seed in parse_seeds(item.split(":", 1)[1]):
                yield phantom_case(seed)
        elif (Path(item) / "ground_truth").is_dir():
            yield sample_case(item)
        else:
            yield lidc_case(item)


# ---------------------------------------------------------------------------------------------------------------
# Scoring.

def _component_centres(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    import SimpleITK as sitk

    if not mask.any():
        return np.zeros((0, 3))
    labels = sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)), True)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(labels)
    centres = np.array([stats.GetCentroid(k) for k in stats.GetLabels()], float)  # (x, y, z) index units
    return centres @ affine[:3, :3].T + affine[:3, 3]


def score_case(model, case: EvalCase, *, threads: int | None = None) -> dict:
    """Run ``model`` (a registry id, folder or ``ModelInfo``) on one case and score it against the reference."""
    from inference.jobs import run_job
    from inference.task import run_model
    from inference.types import Detections, SegResult

    start = time.perf_counter()
    outcome = run_job(run_model(model, case.array, case.affine, device="cpu", threads=threads))
    seconds = time.perf_counter() - start
    result = outcome.result
    row: dict = {"case": case.name, "seconds": round(seconds, 2), "n_nodules": int(len(case.nodules_lps))}
    if isinstance(result, SegResult):
        names = {v: label.name for v, label in result.table.items()}
        predicted = _reference_masks(result.labels, names)
        row["dice"] = {name: dice(predicted.get(name, np.zeros(ref.shape, bool)), ref)
                       for name, ref in case.masks.items()}
        centres = _component_centres(predicted.get(NODULE, np.zeros(case.array.shape, bool)), case.affine)
        scores = np.ones(len(centres))
    elif isinstance(result, Detections):
        centres, scores = result.centers_lps, result.scores
    else:
        raise ValueError(f"cannot evaluate a {type(result).__name__}")
    scan = ScanDetections(centres, scores, case.nodules_lps, case.nodule_diameters)
    row["scan"] = scan
    row["_result"] = result  # issue 11: for the map checks of evaluate(explain=True), which pops it
    row["nodules"] = [{"center_lps": [round(float(v), 1) for v in c], "diameter_mm": round(float(d), 1), **hit}
                      for c, d, hit in zip(case.nodules_lps, case.nodule_diameters, best_hits(scan))]
    from viewer.core.evaluation_measurements import measurement_row  # issue 11: measurement errors

    row.update(measurement_row(result, case, scan))
    return row


def summarise(rows: list[dict], operating_point: float | None = None) -> dict:
    """Mean Dice per label (over cases whose reference has it) and the FROC of all cases together; for a detector
    also CPM, FROC per size band, calibration and the figures at its ``operating_point``."""
    summary: dict = {"cases": len(rows), "seconds_mean": round(float(np.mean([r["seconds"] for r in rows])), 2)}
    names = sorted({name for r in rows for name in r.get("dice", {})})
    if names:
        summary["dice"] = {}
        for name in names:
            values = [r["dice"][name] for r in rows if r["dice"].get(name) is not None]
            present = [r["dice"][name] for r in rows
                       if r["dice"].get(name) is not None and _present(r, name)]
            summary["dice"][name] = {"mean": round(float(np.mean(present)), 4) if present else None,
                                     "min": round(float(np.min(present)), 4) if present else None,
                                     "cases": len(present), "all_cases": len(values)}
    curve = froc([r["scan"] for r in rows])
    summary["detection"] = {"nodules": curve["n_nodules"], "detections": curve["n_detections"]}
    if not any("dice" in r for r in rows):  # a detector: scores to rank by
        summary["detection"].update(detector_summary([r["scan"] for r in rows], curve, operating_point))
    else:  # a segmentation: one operating point
        found = sum(h["found"] for r in rows for h in r["nodules"])
        false = sum(_false_positives(r["scan"]) for r in rows)
        summary["detection"]["operating_point"] = {"found": found, "false_positives_per_scan":
                                                   round(false / max(1, len(rows)), 2)}
    from viewer.core.evaluation_measurements import measurement_summary  # issue 11: measurement errors

    summary.update(measurement_summary(rows))
    return summary


def detector_summary(scans: list[ScanDetections], curve: dict, operating_point: float | None) -> dict:
    """What a detector's scores are worth: the FROC (and CPM) overall and per nodule size band, the calibration
    of its scores as probabilities (each detection is a nodule or not), and sensitivity and false positives per
    scan at its operating point."""
    from inference.metrics import calibration, cpm, detection_outcomes, froc_by_size, froc_confidence

    out: dict = {"sensitivity_at_fp_per_scan": {str(k): v for k, v in curve["sensitivity_at"].items()},
                 "cpm": cpm(curve["sensitivity_at"]), "ci95": _ci95(froc_confidence(scans))}
    out["by_size_mm"] = {band: {"nodules": v["nodules"], "cpm": v["cpm"],
                                "sensitivity_at_fp_per_scan": {str(k): s for k, s in v["sensitivity_at"].items()},
                                "ci95": _ci95(v["confidence"])}
                         for band, v in froc_by_size(scans, confidence=True).items()}
    scores = np.concatenate([s.scores for s in scans]) if scans else np.zeros(0)
    outcomes = np.concatenate([detection_outcomes(s) for s in scans]) if scans else np.zeros(0)
    out["calibration"] = calibration(scores, outcomes)
    if operating_point is not None:
        kept = [ScanDetections(s.centers_lps[s.scores >= operating_point], s.scores[s.scores >= operating_point],
                               s.truth_lps, s.truth_diameters_mm) for s in scans]
        found = sum(h["found"] for s in kept for h in best_hits(s))
        out["operating_point"] = {"score": operating_point, "found": found,
                                  "sensitivity": found / curve["n_nodules"] if curve["n_nodules"] else None,
                                  "false_positives_per_scan": round(sum(_false_positives(s) for s in kept)
                                                                    / max(1, len(kept)), 2)}
    return out


def _ci95(ci: dict) -> dict:
    """A :func:`inference.metrics.froc_confidence` result (95 % bootstrap intervals of the FROC's sensitivities
    and the CPM) keyed as the summary's figures: with 60 scans one nodule more or less is within them, which a
    reader of the figures should know."""
    return {"sensitivity_at_fp_per_scan": {str(k): v for k, v in ci["sensitivity_at"].items()}, "cpm": ci["cpm"],
            "resamples": ci["resamples"]}


def _present(row: dict, name: str) -> bool:
    return row.get("_present", {}).get(name, True)


def _false_positives(scan: ScanDetections) -> int:
    from inference.metrics import match_radius

    if not len(scan.centers_lps):
        return 0
    if not len(scan.truth_lps):
        return len(scan.centers_lps)
    d = np.linalg.norm(scan.centers_lps[:, None] - scan.truth_lps[None], axis=2)
    radius = np.array([match_radius(v) for v in scan.truth_diameters_mm])
    return int((~np.any(d <= radius[None], axis=1)).sum())


def case_specs(data: list[str]) -> list[str]:
    """The command line's DATA as one spec per case (``phantom:5000-5002`` -> three ``phantom:N``), so cases can be
    handed out one by one (:func:`evaluate` with ``map_cases``)."""
    specs: list[str] = []
    for item in data:
        if item.startswith("phantom:"):
            specs += [f"phantom:{seed}" for seed in parse_seeds(item.split(":", 1)[1])]
        else:
            specs.append(item)
    return specs


def score_spec(models: list, spec: str, *, threads: int | None = None, force: bool = False,
               explain: bool = False) -> list[tuple[str, dict]]:
    """Build the case ``spec`` and score every model on it: ``[(model id, row)]`` in model order.

    Self-contained (models are ids, folders or ``ModelInfo`` objects; the case is built here), so it can run in another
    process: a Ray task of ``hounsfield evaluate --address``. The rows hold no volumes (the result is dropped once
    the map checks had it).

    Raises
    ------
    UnsuitableInput
        When the case is not what a model was made for and ``force`` is not given.
    """
    from inference.registry import ModelInfo, find_model
    from inference.suitability import check_input
    from viewer.core.run_model import UnsuitableInput

    infos = [m if isinstance(m, ModelInfo) else find_model(m) for m in models]
    (case,) = cases_from([spec])
    present = {name: bool(mask.any()) for name, mask in case.masks.items()}
    rows = []
    for info in infos:
        reasons = [] if force else check_input(info.expected_input, case.array, case.affine, case.modality)
        if reasons:
            raise UnsuitableInput(f"{info.name} ({case.name})", reasons)
        row = score_case(info, case, threads=threads)
        result = row.pop("_result", None)
        if explain:  # issue 11: pointing game and randomisation check of the findings' maps
            from viewer.core.evaluation_explain import explain_row

            row["explain"] = explain_row(info, case, result)
        row["_present"] = present
        if info.operating_point is not None and "dice" not in row:
            row["at_operating_point"] = _at_operating_point(row["scan"], info.operating_point)
        rows.append((info.id, row))
    return rows


def evaluate(models: list, data: list[str], *, threads: int | None = None,
             log: Callable[[str], None] = print, force: bool = False, explain: bool = False,
             map_cases: Callable[[Callable[[str], list], list[str]], Iterator[list]] | None = None) -> dict:
    """Score every model on every case; returns ``{model: {"cases": [...], "summary": {...}}}`` (JSON-ready).

    A case that is not what a model was made for (:mod:`inference.suitability`) raises
    :class:`~viewer.core.run_model.UnsuitableInput` before that model runs on it, unless ``force``. With
    ``explain``, detectors' findings also get the map checks of :mod:`viewer.core.evaluation_explain`.

    ``map_cases(score, specs)`` runs ``score`` (a picklable :func:`score_spec` with the options bound) on every
    case spec and yields the results in spec order - e.g. on a Ray cluster
    (:func:`viewer.services.batch.fanout.ray_map`); None scores them here one after the other.
    """
    import functools

    from inference.registry import ModelInfo, find_model

    infos = [m if isinstance(m, ModelInfo) else find_model(m) for m in models]
    rows: dict[str, list[dict]] = {info.id: [] for info in infos}
    score = functools.partial(score_spec, infos, threads=threads, force=force, explain=explain)
    specs = case_specs(data)
    results = map_cases(score, specs) if map_cases is not None else map(score, specs)
    for case_rows in results:
        for model_id, row in case_rows:
            rows[model_id].append(row)
            log(_case_line(model_id, row))
    report = {}
    points = {info.id: info.operating_point for info in infos}
    for model_id, model_rows in rows.items():
        summary = summarise(model_rows, points.get(model_id))
        if explain:  # issue 11: over all the model's explained findings
            from viewer.core.evaluation_explain import summarise_explain

            summary["explain"] = summarise_explain([e for r in model_rows for e in r.get("explain") or []])
        cases = [{k: v for k, v in r.items() if k not in ("scan", "_present")} for r in model_rows]
        report[model_id] = {"summary": summary, "cases": cases}
    return report


def write_card_metrics(report: dict, section: str, data: list[str]) -> list[Path]:
    """Put each built-in model's summary into its model card (``configs/metadata.json``,
    ``hounsfield.metrics[section]``), with the data it was measured on and the date; returns the cards written.
    Other models' cards are not touched (they are not ours to edit)."""
    import datetime

    from inference.registry import find_model

    written = []
    for model_id, entry in report.items():
        info = find_model(model_id)
        if not info.builtin:
            continue
        card = Path(info.path) / "configs" / "metadata.json"
        metadata = json.loads(card.read_text())
        metrics = metadata.setdefault("hounsfield", {}).setdefault("metrics", {})
        metrics[section] = {"data": " ".join(data), "measured": datetime.date.today().isoformat(),
                            "evaluated_with": "hounsfield evaluate (viewer/core/evaluation.py)",
                            **json.loads(json.dumps(entry["summary"], default=float))}
        if len(entry["cases"]) == 1:  # one study (LIDC): its nodules and what the default threshold shows
            case = entry["cases"][0]
            metrics[section].update({k: case[k] for k in ("nodules", "at_operating_point") if k in case})
        tmp = card.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(metadata, indent=2) + "\n")
        tmp.replace(card)
        written.append(card)
    return written


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _interval(bounds) -> str:
    return "" if not bounds else f" [{bounds[0]:.2f}, {bounds[1]:.2f}]"


def _at_operating_point(scan: ScanDetections, point: float) -> dict:
    """What a reader sees of one scan at the detector's default threshold: findings shown, and how many of them
    hit no nodule."""
    shown = scan.scores >= point
    kept = ScanDetections(scan.centers_lps[shown], scan.scores[shown], scan.truth_lps, scan.truth_diameters_mm)
    return {"score": point, "findings": int(shown.sum()), "false_positives": _false_positives(kept)}


def _case_line(model_id: str, row: dict) -> str:
    parts = [f"{model_id} | {row['case']}: {row['seconds']:.1f} s"]
    if "dice" in row:
        parts.append("Dice " + ", ".join(f"{k} {_fmt(v)}" for k, v in row["dice"].items()))
    hits = row["nodules"]
    if hits:
        parts.append("nodules " + ", ".join(
            f"{h['diameter_mm']:.0f} mm {'found' if h['found'] else 'missed'}"
            + (f" ({h['score']:.2f})" if h["found"] and h["score"] is not None else "") for h in hits))
    if "at_operating_point" in row:
        op = row["at_operating_point"]
        parts.append(f"{op['findings']} findings from score {op['score']:.2f}, {op['false_positives']} on no nodule")
    return "; ".join(parts)


def _detector_lines(det: dict) -> list[str]:
    sens = det.get("sensitivity_at_fp_per_scan", {})
    lines = [f"  nodules {det['nodules']}, sensitivity at 1/8 1/4 1/2 1 2 4 8 FP per scan: "
             + " ".join(_fmt(sens.get(k)) for k in ("0.125", "0.25", "0.5", "1", "2", "4", "8"))
             + f"; CPM {_fmt(det.get('cpm'))}"]
    ci = det.get("ci95")
    if ci and ci["cpm"]:
        lines.append(f"    95 % intervals (scans resampled {ci['resamples']} times): sensitivity at 1 FP/scan"
                     f"{_interval(ci['sensitivity_at_fp_per_scan'].get('1'))}, CPM{_interval(ci['cpm'])}")
    for band, v in det.get("by_size_mm", {}).items():
        s = v["sensitivity_at_fp_per_scan"]
        band_ci = v.get("ci95") or {}
        lines.append(f"    {band + ' mm':<9} {v['nodules']:>3} nodules: sensitivity at 1 FP/scan {_fmt(s.get('1'))}"
                     f"{_interval((band_ci.get('sensitivity_at_fp_per_scan') or {}).get('1'))}, "
                     f"CPM {_fmt(v['cpm'])}{_interval(band_ci.get('cpm'))}")
    op = det.get("operating_point")
    if op:
        lines.append(f"  at the operating point (score >= {op['score']:.3f}): {op['found']}/{det['nodules']} found, "
                     f"{op['false_positives_per_scan']:.2f} false positives per scan")
    cal = det.get("calibration")
    if cal and cal["n"]:
        lines.append(f"  calibration of {cal['n']} scores: expected calibration error {_fmt(cal['ece'])}")
        lines.append("    score bin    n   mean score  observed")
        for lo, hi, n, mean, observed in cal["table"]:
            if n:
                lines.append(f"    {lo:.1f}-{hi:.1f}  {n:>5}   {mean:.3f}       {observed:.3f}")
    return lines


def format_report(report: dict) -> str:
    """The summary table ``hounsfield evaluate`` prints."""
    lines = []
    for model_id, entry in report.items():
        s = entry["summary"]
        lines.append(f"{model_id}: {s['cases']} cases, {s['seconds_mean']:.1f} s per case")
        for name, d in s.get("dice", {}).items():
            lines.append(f"  Dice {name:<14} mean {_fmt(d['mean'])}  min {_fmt(d['min'])}  ({d['cases']} cases)")
        det = s["detection"]
        if "sensitivity_at_fp_per_scan" not in det:  # a segmentation scored at its one operating point
            op = det["operating_point"]
            lines.append(f"  nodules found {op['found']}/{det['nodules']}, "
                         f"{op['false_positives_per_scan']:.2f} false positives per scan")
        else:
            lines.extend(_detector_lines(det))
        from viewer.core.evaluation_measurements import measurement_lines  # issue 11: measurement errors

        lines.extend(measurement_lines(s))
    from viewer.core.evaluation_explain import format_explain  # issue 11: map checks (evaluate --explain)

    for model_id, entry in report.items():
        if entry["summary"].get("explain"):
            lines.append(f"{model_id}: explanations")
            lines.extend(format_explain(entry["summary"]["explain"]))
    return "\n".join(lines)
