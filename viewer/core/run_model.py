"""Headless model runs: the glue behind ``hounsfield infer`` and ``hounsfield models --json``.

``infer_to_dir`` = scan/load the series -> load the model (unless it is handed a loaded bundle) -> run it
(:mod:`inference.task`) -> :func:`write_outputs`, which batch callers use on their own:

- segmentation -> ``seg.dcm`` (DICOM SEG referencing the source images);
- detection -> ``findings.json`` (and its TID 1500 SR, and with ``explain`` each finding's map);
- saliency -> ``saliency.nii.gz``;

and returns what it did with per-stage timings in seconds (``load``, ``model``, ``preprocess``, ``network``,
``postprocess``, ``export``, ``total``). No patient data is printed or returned.

Before the model runs, the series is checked against what the model was made for
(:mod:`inference.suitability`): an unsuitable one raises :class:`UnsuitableInput` unless ``force`` is given,
and a forced run says in its messages what did not fit.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from viewer.core.dicom.model import Catalog, Series
from viewer.core.volume import Volume

OUTPUT_NAMES = {"segmentation": "seg.dcm", "detection": "findings.json", "saliency": "saliency.nii.gz"}
STAGES = ("load", "model", "preprocess", "network", "candidates", "postprocess", "measurements", "export", "explain")


class InferError(RuntimeError):
    """A headless run cannot go ahead (no such series/model, ambiguous input); the message says why."""


class UnsuitableInput(InferError):
    """The series is not what the model was made for; ``reasons`` (:class:`inference.suitability.Unsuitable`)
    say why. Run anyway with ``force``."""

    def __init__(self, model_name: str, reasons: list) -> None:
        self.reasons = list(reasons)
        super().__init__(f"{model_name} is not made for this series: "
                         + "; ".join(str(r) for r in self.reasons) + " (use --force to run it anyway)")


def body_part_of(series: Series | None) -> str:
    """BodyPartExamined of the series' first image ("" when absent or unreadable); reads one header only."""
    if series is None or not series.instances:
        return ""
    try:
        from viewer.core.dicom.limits import dcmread

        ds = dcmread(series.instances[0].path, stop_before_pixels=True, specific_tags=["BodyPartExamined"], force=False)
        return str(ds.get("BodyPartExamined", "") or "").strip()
    except Exception:  # noqa: BLE001 - an unreadable header only means the tag is unknown
        return ""


def unsuitable_reasons(info, volume: Volume, body_part: str = "") -> list:
    """Why ``volume`` is not what model ``info`` was made for (empty: it fits or nothing is known); well under
    0.2 s on a 512 x 512 x 133 CT (the content test runs on a 4 mm subsample)."""
    from inference.suitability import check_input

    calibration = getattr(volume, "calibration", None)
    return check_input(getattr(info, "expected_input", None), volume.array, volume.affine, volume.modality,
                       body_part, pixel_spacing_known=calibration is None or calibration.source == "pixel_spacing")


def models_json(extra_dirs: Iterable[str | os.PathLike] = ()) -> list[dict[str, Any]]:
    """The model catalogue as JSON records (``hounsfield models --json``); imports no torch."""
    from inference.registry import list_models

    return [info.to_json() for info in list_models(extra_dirs)]


def _image_series(catalog: Catalog) -> list[Series]:
    return [s for s in catalog.all_series() if s.kind == "image"]


def pick_series(catalog: Catalog, series_uid: str | None = None) -> Series:
    """The series to run on: the one with ``series_uid`` (UID or catalog key), or the only image series.

    Raises
    ------
    InferError
        When the UID is unknown, or several image series are present and none was named (lists their UIDs).
    """
    if series_uid:
        series = catalog.find_series(series_uid)
        if series is None:
            raise InferError(f"no series {series_uid} here")
        return series
    images = _image_series(catalog)
    if not images:
        raise InferError("no image series found")
    if len(images) > 1:
        listing = "; ".join(f"{s.key} ({s.modality}, {s.n_frames} frames)" for s in images)
        raise InferError(f"{len(images)} image series found, choose one with --series: {listing}")
    return images[0]


def _report(progress: Callable[[Any], None] | None, message: str) -> None:
    if progress is not None:
        from inference.task import Progress

        progress(Progress(0, 0, message))


def infer_to_dir(series_or_path: Series | Volume | str | os.PathLike | Sequence[str | os.PathLike], model_id: Any,
                 out_dir: str | os.PathLike, device: str | None = None, series_uid: str | None = None,
                 progress: Callable[[Any], None] | None = None, *, cancel: Any = None,
                 extra_model_dirs: Iterable[str | os.PathLike] = (), random_weights: bool = False,
                 overrides: dict | None = None, sources: Sequence[Any] | None = None,
                 min_score: float = 0.0, force: bool = False, body_part: str | None = None,
                 explain: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Run a model on one series and write its result into ``out_dir``: load, infer, :func:`write_outputs`.

    Parameters
    ----------
    series_or_path
        A DICOM file/folder (or several), a catalogued :class:`Series`, or an already loaded :class:`Volume`
        (then ``sources`` - the series' DICOM datasets - are needed for a SEG).
    model_id
        Registry id (see :func:`models_json`), bundle folder or ``ModelInfo``; or a bundle already loaded
        (:class:`inference.bundle.LoadedBundle`), run as it is: ``device``, ``random_weights`` and ``overrides``
        are then not used and there is no ``model`` timing.
    out_dir
        Created if needed; receives ``seg.dcm``, ``findings.json`` or ``saliency.nii.gz``.
    device
        ``cpu``, ``cuda``, ``mps`` or None for the best available.
    series_uid
        Which series, when the path holds several.
    progress
        Called with each ``Progress`` (done, total, message).
    cancel
        A :class:`~viewer.core.jobs.CancelToken`; a cancelled run raises :class:`~viewer.core.jobs.Cancelled`
        (also while the series is loading).
    random_weights, overrides
        For bundles without weights (tests, benchmarks) and config overrides (see ``inference.bundle``).
    min_score
        Detections below it are left out of findings.json.
    force
        Run even when the series is not what the model was made for (the reasons go into ``messages``).
    body_part
        The series' BodyPartExamined when known; read from the series' first header otherwise.
    explain
        Detection models: also write each finding's map (:mod:`viewer.core.export.finding_maps`), named in
        ``findings.json`` and listed under ``finding_maps`` (time under ``explain``).
    threads
        torch CPU threads (default: all cores but one, :func:`inference.device.inference_threads`); a batch worker
        passes its share of the node's cores.

    Raises
    ------
    UnsuitableInput
        When the series does not fit the model's expected input and ``force`` is not given (nothing is written).

    Returns
    -------
    dict
        ``model``, ``task``, ``series_uid``, ``outputs`` (``{kind: path}``), ``timings``, ``device``,
        ``messages``, ``patches``, and ``labels_present`` (segmentation) or ``n_findings`` (detection).
    """
    from inference.bundle import LoadedBundle
    from inference.registry import ModelInfo, find_model
    from inference.task import load_model, run_bundle, run_job

    started = time.perf_counter()
    bundle = model_id if isinstance(model_id, LoadedBundle) else None
    if bundle is not None:
        info = bundle.info
    else:
        info = model_id if isinstance(model_id, ModelInfo) else find_model(model_id, extra_model_dirs)
    timings: dict[str, float] = {}

    _report(progress, "Loading the series")
    start = time.perf_counter()
    volume, series = _load_volume(series_or_path, series_uid, cancel)
    timings["load"] = time.perf_counter() - start

    reasons = unsuitable_reasons(info, volume, body_part if body_part is not None else body_part_of(series))
    if reasons and not force:
        raise UnsuitableInput(info.name, reasons)
    forced = [f"Run anyway (forced), although: {r}" for r in reasons]

    if bundle is None:  # loaded here, not inside run_model: the findings' maps reuse it
        start = time.perf_counter()
        bundle = run_job(load_model(info, device=device, cancel=cancel, random_weights=random_weights,
                                    overrides=overrides), progress)
        timings["model"] = time.perf_counter() - start
    outcome = run_job(run_bundle(bundle, volume.array, volume.affine, cancel=cancel, threads=threads), progress)
    timings.update(outcome.timings)

    written = write_outputs(outcome.result, info, volume, out_dir, series=series, sources=sources,
                            min_score=min_score, explain=bundle if explain else None, progress=progress,
                            cancel=cancel)
    timings.update(written.pop("timings"))
    timings["total"] = time.perf_counter() - started
    return {
        "model": info.id, "task": info.task, "series_uid": volume.series_uid,
        "outputs": written.pop("outputs"), "timings": {k: round(v, 3) for k, v in timings.items()},
        "device": outcome.device, "messages": forced + list(outcome.messages), "patches": outcome.patches,
        "unsuitable": [{"code": r.code, "message": r.message} for r in reasons], **written,
    }


def _load_volume(series_or_path, series_uid: str | None, cancel) -> tuple[Volume, Series | None]:
    """The volume to run on and the series it was loaded from (None for a volume handed in)."""
    series: Series | None = None
    if isinstance(series_or_path, Volume):
        volume = series_or_path
    else:
        from viewer.core.dicom.load import load_series

        if isinstance(series_or_path, Series):
            series = series_or_path
        else:
            from viewer.core.dicom.scan import scan

            paths = [series_or_path] if isinstance(series_or_path, (str, os.PathLike)) else list(series_or_path)
            series = pick_series(scan(paths), series_uid)
        volume = load_series(series, cancel)
    if volume.is_rgb:
        raise InferError("colour images cannot be run through the models")
    return volume, series


def write_outputs(result, info, volume: Volume, out_dir: str | os.PathLike, *, series: Series | None = None,
                  sources: Sequence[Any] | None = None, min_score: float = 0.0, explain: Any = None,
                  progress: Callable[[Any], None] | None = None, cancel: Any = None) -> dict[str, Any]:
    """Write a model's result on ``volume`` into ``out_dir``, as ``hounsfield infer`` does.

    - segmentation -> ``seg.dcm`` (DICOM SEG referencing the source images);
    - detection -> ``findings.json``, ``findings.sr.dcm`` (TID 1500; with a ``series`` or ``sources`` and a finding
      at or above ``min_score``) and, with ``explain``, ``finding_maps/`` (one map per finding, named in
      the JSON);
    - saliency -> ``saliency.nii.gz``.

    Parameters
    ----------
    result
        The model's result on the volume's grid (``InferenceResult.result``: ``SegResult``, ``Detections`` or
        ``SaliencyMap``).
    info
        The model's :class:`inference.registry.ModelInfo`: its task picks the writer, its name, id and version
        go into the files.
    volume
        The volume the model ran on.
    out_dir
        Created if needed.
    series
        The catalogued series ``volume`` was loaded from: the SEG's and the SR's source images.
    sources
        The series' DICOM datasets (headers suffice), for a SEG or an SR when there is no ``series``.
    min_score
        Detections below it are left out of findings.json and the SR.
    explain
        The loaded detection bundle that found ``result``: explain each finding with it; None: no maps.
    progress, cancel
        Progress and a cancel token for the maps.

    Raises
    ------
    InferError
        When a SEG has no source images (neither ``series`` nor ``sources``), or the task has no writer.

    Returns
    -------
    dict
        ``outputs`` (``{kind: path}``), ``timings`` (``export``, and ``explain`` for the maps), and
        ``labels_present`` (segmentation) or ``n_findings`` (and ``finding_maps``) (detection).
    """
    writer = _WRITERS.get(info.task)
    if writer is None:
        raise InferError(f"no writer for task '{info.task}' (known tasks: {', '.join(_WRITERS)})")
    _report(progress, "Writing the result")
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / OUTPUT_NAMES[info.task]
    written: dict[str, Any] = {"outputs": {info.task: str(target)}}
    stages: dict[str, float] = {}  # parts a writer times apart (the maps)
    writer(written, stages, result, info, volume, target, series=series, sources=sources, min_score=min_score,
           explain=explain, progress=progress, cancel=cancel)
    written["timings"] = {"export": time.perf_counter() - start - sum(stages.values()), **stages}
    return written


def _write_segmentation(written: dict, stages: dict, result, info, volume: Volume, target: Path, *, series, sources,
                        **_) -> None:
    from viewer.core.export.seg import read_sources, write_seg

    if sources is None:
        if series is None:
            raise InferError("a DICOM SEG needs the source images: pass a series or a path, or `sources`")
        sources = read_sources([i.path for i in series.instances])
    write_seg(target, result.labels, result.table, sources, volume.slice_sop_uids,
              slice_frame_numbers=volume.slice_frame_numbers or None, affine=volume.affine,
              algorithm_name=info.name,
              algorithm_version=info.version or "0", series_description=f"{info.name} (AI)"[:64])
    written["labels_present"] = {str(v): result.table[v].name if v in result.table else str(v)
                                 for v in result.present}


def _write_detection(written: dict, stages: dict, result, info, volume: Volume, target: Path, *, series, sources,
                     min_score: float, explain, progress, cancel, **_) -> None:
    from viewer.core.export.findings import write_findings

    write_findings(target, result, info.id, volume.series_uid, min_score=min_score)
    written["n_findings"] = int((result.scores >= min_score).sum())
    if written["n_findings"] and (series is not None or sources is not None):
        written["outputs"]["sr"] = str(_write_findings_sr(target.parent / "findings.sr.dcm", result, series,
                                                          min_score, info, sources))
    if explain is not None:  # issue 11: the findings' maps (hounsfield infer --explain)
        start = time.perf_counter()
        written["finding_maps"] = _write_finding_maps(target.parent, target, explain, volume, result, min_score,
                                                      progress, cancel)
        written["outputs"]["finding_maps"] = str(target.parent / "finding_maps")
        stages["explain"] = time.perf_counter() - start


def _write_saliency(written: dict, stages: dict, result, info, volume: Volume, target: Path, **_) -> None:
    from viewer.core.export.nifti import write_nifti

    write_nifti(target, result.values.astype("float32"), result.affine, description=f"{info.id} saliency")


#: How each task's result is written (:func:`write_outputs`).
_WRITERS: dict[str, Callable[..., None]] = {"segmentation": _write_segmentation,
                                             "detection": _write_detection, "saliency": _write_saliency}


def _write_finding_maps(out_dir: Path, findings_path: Path, bundle, volume: Volume, detections, min_score: float,
                        progress, cancel) -> list[str]:
    """Each finding's map as NIfTI, named in ``findings.json``; returns the relative paths."""
    from viewer.core.export.finding_maps import name_maps_in_findings, write_finding_maps

    _report(progress, "Explaining the findings")
    names = write_finding_maps(out_dir, bundle, volume.array, volume.affine, detections, min_score=min_score,
                               progress=progress, cancel=cancel)
    name_maps_in_findings(findings_path, names)
    return names


def _write_findings_sr(path: Path, detections, series: Series | None, min_score: float, info,
                       sources: Sequence[Any] | None = None) -> Path:
    """The detections at or above ``min_score`` as a TID 1500 SR (centre and diameter of each, model-sourced).

    Headless runs have no reader to accept findings, so every reported one goes in; the SR's algorithm
    identification says they come from the model. ``sources`` (the series' headers) spare reading them again from
    the series' files (a batch worker is handed them with the volume, and may not see the files at all).
    """
    from viewer.core.editing.review import FindingsReview
    from viewer.core.export.seg import read_sources
    from viewer.core.export.sr import write_measurement_report

    review = FindingsReview.from_detections(detections)
    for finding in review.findings:
        if finding.score is not None and finding.score >= min_score:
            review.accept(finding.id)
    if sources is None:
        if series is None:
            raise InferError("a DICOM SR needs the source images: pass a series or `sources`")
        sources = read_sources([i.path for i in series.instances])
    return write_measurement_report(path, review, sources, algorithm_version=info.version or "0")


def format_timings(timings: dict[str, float]) -> list[str]:
    """``stage: 1.234 s`` lines in pipeline order, for the CLI."""
    order = [s for s in (*STAGES, "total") if s in timings]
    return [f"{stage:<12}{timings[stage]:8.3f} s" for stage in order]
