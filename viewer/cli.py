"""The ``hounsfield`` command: GUI by default; ``scan``, ``info``, ``models``, ``infer``, ``compare``, ``sample``,
``screenshot``, ``pacs`` (:mod:`viewer.cli_pacs`), ``anonymize`` (:mod:`viewer.cli_anonymize`), ``batch``
(:mod:`viewer.cli_batch`).

Exit codes: 0 success, 1 failure, 2 when the input holds no readable DICOM (reason on stderr).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from viewer import __version__

EXIT_OK, EXIT_FAILED, EXIT_NO_DICOM = 0, 1, 2
SUBCOMMANDS = ("scan", "info", "models", "infer", "evaluate", "compare", "sample", "screenshot", "pacs", "anonymize",
               "batch")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the GUI or a subcommand; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        args = _subcommand_parser().parse_args(argv)
        return args.handler(args)
    args = _gui_parser().parse_args(argv)
    from viewer.qt.app import run_gui  # Qt only when the GUI is wanted

    return run_gui([str(p) for p in args.paths], demo=args.demo, smoke_test=args.smoke_test,
                   smoke_timeout=args.smoke_timeout)


def _gui_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hounsfield",
        description="DICOM viewer with AI assistance (research use only, not for diagnosis). "
        f"Subcommands: {', '.join(SUBCOMMANDS)} (hounsfield SUBCOMMAND --help).",
    )
    parser.add_argument("paths", nargs="*", type=Path, help="DICOM folders, files or DICOMDIRs to open")
    parser.add_argument("--demo", action="store_true", help="open the built-in sample study")
    parser.add_argument("--version", action="version", version=f"hounsfield {__version__}")
    parser.add_argument("--smoke-test", action="store_true",
                        help="open PATHS (default: the sample study, running the built-in models), render, check, "
                        "print a SMOKE-TEST line with the times and exit: 0 when all worked, 1 otherwise")
    parser.add_argument("--smoke-timeout", type=float, default=300.0, metavar="S",
                        help="--smoke-test fails after S seconds (default 300)")
    return parser


def _subcommand_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hounsfield")
    sub = parser.add_subparsers(dest="command", required=True)

    scan = sub.add_parser("scan", help="list patients, studies and series under PATH")
    scan.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    scan.add_argument("--json", action="store_true", help="machine-readable output")
    scan.set_defaults(handler=cmd_scan)

    info = sub.add_parser("info", help="load one series and print its geometry")
    info.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    info.add_argument("--series", help="SeriesInstanceUID (or split-series key); default: the largest image series")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(handler=cmd_info)

    models = sub.add_parser("models", help="list built-in and user models")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.set_defaults(handler=cmd_models)

    infer = sub.add_parser("infer", help="run a model on a series and write its results")
    infer.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    infer.add_argument("--model", required=True, help="model id (see `hounsfield models`)")
    infer.add_argument("--series", help="SeriesInstanceUID; default: the largest image series")
    infer.add_argument("--out", required=True, type=Path, help="output folder")
    infer.add_argument("--device", choices=("cpu", "cuda", "mps"), help="default: best available")
    infer.add_argument("--force", action="store_true",
                       help="run even when the series is not what the model was made for (modality, body part, "
                       "spacing); without it such a run is refused")
    infer.add_argument("--explain", action="store_true",
                       help="detection models: also write each finding's map (NIfTI, named in findings.json; "
                       "occlusion for the built-in detector, Grad-CAM otherwise)")
    infer.set_defaults(handler=cmd_infer)

    evaluate = sub.add_parser("evaluate", help="score models against studies with a known answer",
                              description="DATA: phantom:SEEDS (e.g. phantom:5000-5009, generated in memory), a "
                              "folder written by `hounsfield sample`, or a DICOM folder with an LIDC-IDRI XML. "
                              "Default: the 60 evaluation phantoms (seeds never used in training or calibration).")
    evaluate.add_argument("data", nargs="*", metavar="DATA")
    evaluate.add_argument("--model", action="append", required=True, help="model id (repeat for several)")
    evaluate.add_argument("--json", type=Path, help="also write the full report (per case) to this file")
    evaluate.add_argument("--threads", type=int, help="torch CPU threads (default: all cores but one)")
    evaluate.add_argument("--force", action="store_true",
                          help="score a model even on studies it was not made for (refused otherwise)")
    evaluate.add_argument("--card", metavar="SECTION",
                          help="also write each built-in model's summary into its model card (configs/metadata.json "
                          "hounsfield.metrics.SECTION, e.g. phantoms or lidc_idri_0001)")
    evaluate.add_argument("--explain", action="store_true",
                          help="also check detectors' finding maps: pointing game (peak inside the true nodule) and "
                          "model-randomisation sanity check (slower: each found nodule is explained again by a "
                          "re-initialised model)")
    evaluate.add_argument("--address", metavar="ADDR",
                          help="score the cases in parallel as Ray tasks: 'local' (a Ray runtime on this machine), "
                          "or a cluster (ray://HEAD:10001, HEAD:6379, auto) as for `hounsfield batch`")
    evaluate.add_argument("--workers", type=int, metavar="N",
                          help="with --address local: cases at a time (default: one per core)")
    evaluate.add_argument("--gpus-per-task", type=float, default=0.0, metavar="F",
                          help="with --address: GPUs each case reserves (default 0)")
    evaluate.set_defaults(handler=cmd_evaluate)

    compare = sub.add_parser("compare", help="register a current study to its prior; match nodules and their growth",
                             description="Prints the transform (current LPS mm -> prior LPS mm, in mm and degrees); "
                             "with --model (run on both series) or --prior-findings/--current-findings also the "
                             "nodules matched, new and resolved, with volume growth and doubling time.")
    compare.add_argument("prior", type=Path, metavar="PRIOR")
    compare.add_argument("current", type=Path, metavar="CURRENT")
    compare.add_argument("--model", help="detection model id to run on both series (e.g. "
                         "hounsfield-chest-ct-nodule-detection)")
    compare.add_argument("--prior-findings", type=Path, metavar="FILE", help="findings.json of the prior")
    compare.add_argument("--current-findings", type=Path, metavar="FILE", help="findings.json of the current study")
    compare.add_argument("--affine", action="store_true", help="refine the rigid transform to an affine one")
    compare.add_argument("--cache", action="store_true", help="keep/reuse the registration in the user cache folder")
    compare.add_argument("--device", choices=("cpu", "cuda", "mps"), help="for --model; default: best available")
    compare.add_argument("--out", type=Path, help="keep the model runs' outputs here (prior/, current/)")
    compare.add_argument("--json", action="store_true", help="machine-readable output")
    compare.set_defaults(handler=cmd_compare)

    sample = sub.add_parser("sample", help="write the built-in sample study")
    sample.add_argument("--out", required=True, type=Path)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--follow-up", type=int, metavar="DAYS", dest="follow_up",
                        help="also write a follow-up study DAYS later under OUT/followup (nodules grown, one new, "
                        "one resolved, the patient moved), with its ground truth")
    sample.add_argument("--shape", type=_triple(int), metavar="Z,Y,X",
                        help="voxels of the grid (default 128,384,384); with --spacing e.g. 32,160,160 and 5,1.5,1.5 "
                        "for a small study the models run on in seconds")
    sample.add_argument("--spacing", type=_triple(float), metavar="Z,Y,X",
                        help="voxel size in mm: slice, row, column (default 2.5,0.9,0.9)")
    sample.set_defaults(handler=cmd_sample)

    shot = sub.add_parser("screenshot", help="render a view offscreen to a PNG")
    shot.add_argument("path", type=Path, metavar="PATH")
    shot.add_argument("--out", required=True, type=Path)
    shot.add_argument("--series")
    shot.add_argument("--slice", type=int, dest="image_number", metavar="N",
                      help="image number N (1-based) as the viewer shows it: axial counts from the head down")
    shot.add_argument("--window", help="preset name (lung, bone, ...) or W,L")
    shot.add_argument("--layout", choices=("1x1", "1x3", "2x2"), default="1x1")
    shot.add_argument("--slab", type=_slab_mm, metavar="MM",
                      help="thick slab of MM mm around the slice, along each plane's normal (default projection MIP)")
    shot.add_argument("--projection", choices=("mip", "minip", "avg"),
                      help="how the slab is combined (with no --slab: a 10 mm slab)")
    shot.set_defaults(handler=cmd_screenshot)

    from viewer.cli_anonymize import add_parser as add_anonymize  # argparse only: the work is imported when run
    from viewer.cli_batch import add_parser as add_batch  # argparse only: no Ray or torch import here
    from viewer.cli_pacs import add_parser as add_pacs_parser  # argparse only: no network or Qt import here

    add_pacs_parser(sub)
    add_anonymize(sub)
    add_batch(sub)
    return parser


def _triple(kind):
    """``Z,Y,X`` -> a tuple of three positive ``kind`` values (argparse type)."""
    def parse(text: str):
        try:
            values = tuple(kind(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not three numbers Z,Y,X: {text!r}") from None
        if len(values) != 3 or min(values) <= 0:
            raise argparse.ArgumentTypeError(f"expected three positive numbers Z,Y,X: {text!r}")
        return values
    return parse


def _slab_mm(text: str) -> float:
    """``--slab MM``: a thickness in mm within the range the viewer accepts."""
    from viewer.core.slab import SLAB_MM_RANGE

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of mm: {text!r}") from None
    lo, hi = SLAB_MM_RANGE
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"{value:g} mm is outside {lo:g}..{hi:g} mm")
    return value


def _scan_or_explain(paths: list[Path], report_skipped: bool = True):
    """Scan ``paths``; returns the catalog, or None after printing why there is nothing to show.

    Files skipped are listed on stderr with their reasons (``report_skipped``), whatever the outcome.
    """
    from viewer.core.dicom.scan import scan

    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"hounsfield: no such file or folder: {missing[0]}", file=sys.stderr)
        return None
    catalog = scan(paths)
    if report_skipped or not catalog.all_series():
        _print_skipped(catalog.unreadable)
    if not catalog.all_series():
        reason = f"{len(catalog.unreadable)} file(s) unreadable" if catalog.unreadable else "no files found"
        print(f"hounsfield: no readable DICOM in {', '.join(map(str, paths))} ({reason})", file=sys.stderr)
        return None
    return catalog


_SKIPPED_SHOWN = 50  # lines of skipped files on stderr; `scan --json` lists them all


def _print_skipped(unreadable) -> None:
    """Each skipped file and why, on stderr (reasons carry no patient data)."""
    if not unreadable:
        return
    print(f"hounsfield: {len(unreadable)} file(s) skipped:", file=sys.stderr)
    for bad in unreadable[:_SKIPPED_SHOWN]:
        print(f"  {bad.path}: {bad.reason}", file=sys.stderr)
    if len(unreadable) > _SKIPPED_SHOWN:
        print(f"  ... and {len(unreadable) - _SKIPPED_SHOWN} more (hounsfield scan --json lists all)", file=sys.stderr)


def _pick_series(catalog, key: str | None):
    """The requested series, or the default image series (:func:`~viewer.core.dicom.catalog.default_image_series`)."""
    if key:
        series = catalog.find_series(key)
        if series is None:
            print(f"hounsfield: no series {key}", file=sys.stderr)
        return series
    from viewer.core.dicom.catalog import default_image_series

    series = default_image_series(catalog)
    if series is None:
        print("hounsfield: no image series found", file=sys.stderr)
    return series


def cmd_scan(args) -> int:
    """``hounsfield scan PATH [--json]``."""
    from viewer.core.dicom.catalog import catalog_to_json

    catalog = _scan_or_explain(args.paths, report_skipped=args.json)  # as text they are listed on stdout
    if catalog is None:
        return EXIT_NO_DICOM
    if args.json:
        json.dump(catalog_to_json(catalog), sys.stdout, indent=1)
        print()
        return EXIT_OK
    for patient in catalog.patients:
        print(f"Patient {patient.patient_name or '(no name)'} [{patient.patient_id or 'no id'}]")
        for study in patient.studies:
            print(f"  Study {study.date or '(no date)'} {study.description} ({study.uid})")
            for s in study.series:
                size = f"{s.columns}x{s.rows}" if s.rows else "-"
                print(f"    #{s.series_number if s.series_number is not None else '-':>4} {s.modality:<3} {s.kind:<8} "
                      f"{s.n_instances:>4} files {s.n_frames:>5} frames {size:>9}  {s.description}  [{s.key}]")
                for ref in s.references:
                    print(f"           references {ref}")
                for w in s.warnings:
                    print(f"           ! {w.message}")
    if catalog.unreadable:
        print(f"{len(catalog.unreadable)} unreadable file(s) skipped:")
        for bad in catalog.unreadable:
            print(f"  {bad.path}: {bad.reason}")
    return EXIT_OK


def volume_info(volume) -> dict:
    """The ``hounsfield info --json`` record of a loaded Volume."""
    return {
        "series_uid": volume.series_uid,
        "modality": volume.modality,
        "shape": list(volume.shape),
        "dtype": str(volume.array.dtype),
        "spacing": [round(float(v), 6) for v in volume.spacing],
        "affine": [[round(float(v), 6) for v in row] for row in volume.affine],
        "calibration": calibration_info(volume),
        "frame_rate": round(float(volume.frame_rate), 3) if volume.frame_rate else None,
        "warnings": [w.to_dict() for w in volume.warnings],
    }


def calibration_info(volume) -> dict:
    """What a pixel measures (see :mod:`viewer.core.calibration`): source, unit, caveat, patient orientation."""
    calibration = volume.calibration
    if calibration is None:
        return {"source": "pixel_spacing", "unit": "mm", "caveat": "", "has_orientation": True}
    return {"source": calibration.source, "unit": calibration.unit, "caveat": calibration.caveat,
            "has_orientation": calibration.has_orientation,
            "ultrasound_regions": len(calibration.regions)}


def cmd_info(args) -> int:
    """``hounsfield info PATH [--series UID] [--json]``."""
    from viewer.core.dicom.load import load_series

    catalog = _scan_or_explain(args.paths)
    if catalog is None:
        return EXIT_NO_DICOM
    series = _pick_series(catalog, args.series)
    if series is None:
        return EXIT_FAILED
    try:
        volume = load_series(series)
    except Exception as error:  # a broken series is reported, never a traceback
        print(f"hounsfield: cannot load series {series.key}: {error}", file=sys.stderr)
        return EXIT_FAILED
    info = volume_info(volume)
    known = {(w["code"], w["message"]) for w in info["warnings"]}
    info["warnings"] += [w.to_dict() for w in series.warnings if (w.code, w.message) not in known]
    if args.json:
        json.dump(info, sys.stdout, indent=1)
        print()
        return EXIT_OK
    print(f"Series    {info['series_uid']}  ({info['modality']})")
    print(f"Shape     {info['shape']} (z, y, x)  {info['dtype']}")
    print(f"Spacing   {info['spacing']} mm (z, y, x)")
    calibration = info["calibration"]
    if calibration["source"] != "pixel_spacing" or not calibration["has_orientation"]:
        # the spacing above is then partly nominal (no PixelSpacing, or no positions): say what distances are
        note = calibration["caveat"] or ("mm per ultrasound region" if calibration["source"] == "ultrasound_regions"
                                         else "mm from PixelSpacing")
        where = "" if calibration["has_orientation"] else "; no patient position/orientation"
        print(f"Calibration {calibration['source']}: {note}{where}")
    if info["frame_rate"]:
        print(f"Cine      {info['frame_rate']:g} fps (from the file)")
    print("Affine    (column, row, slice) -> LPS mm")
    for row in info["affine"]:
        print("          " + "  ".join(f"{v:10.4f}" for v in row))
    for w in info["warnings"]:
        print(f"Warning   {w['code']}: {w['message']}")
    return EXIT_OK


def cmd_models(args) -> int:
    """``hounsfield models [--json]``."""
    from inference.registry import scan_models
    from viewer.core.run_model import models_json

    models = models_json()
    for path, reason in scan_models()[1]:  # broken bundles: listed with the reason, never hiding the others
        print(f"hounsfield: model bundle skipped: {path}: {reason}", file=sys.stderr)
    if args.json:
        json.dump(models, sys.stdout, indent=1)
        print()
        return EXIT_OK
    if not models:
        print("no models found")
    for m in models:
        origin = "built-in" if m["builtin"] else ("user, trusted" if m["trusted"] else "user")
        print(f"{m['id']:<32} {m['task']:<13} {m['modality']:<4} {m['name']}  ({origin}: {m['path']})")
    return EXIT_OK


def cmd_infer(args) -> int:
    """``hounsfield infer --model ID PATH --out DIR``."""
    from viewer.core.run_model import InferError, format_timings, infer_to_dir, pick_series

    catalog = _scan_or_explain(args.paths)
    if catalog is None:
        return EXIT_NO_DICOM

    def show(progress) -> None:
        print(f"\r{progress.message} {progress.done}/{progress.total}" if progress.total else f"\r{progress.message}",
              end="", file=sys.stderr, flush=True)

    try:
        series = pick_series(catalog, args.series)  # refuses to guess between several image series
        report = infer_to_dir(series, args.model, args.out, device=args.device, progress=show, force=args.force,
                              explain=args.explain)
    except InferError as error:
        print(f"\nhounsfield: {error}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # a failing model is reported, never a traceback
        print(f"\nhounsfield: inference failed: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(file=sys.stderr)
    for message in report["messages"]:
        print(message, file=sys.stderr)
    for kind, path in report["outputs"].items():
        print(f"{kind}: {path}")
    print("\n".join(format_timings(report["timings"])))
    return EXIT_OK


def cmd_evaluate(args) -> int:
    """``hounsfield evaluate --model ID [--model ID2] [DATA...] [--json FILE]``."""
    from inference.registry import ModelNotFound
    from inference.training.data import EVAL_SEEDS
    from viewer.core.evaluation import evaluate, format_report
    from viewer.core.run_model import UnsuitableInput

    data = args.data or [f"phantom:{EVAL_SEEDS[0]}-{EVAL_SEEDS[-1]}"]
    map_cases = None
    if args.address:  # the same Ray runtime or cluster as `hounsfield batch`: one task per case
        import functools

        from viewer.services.batch.fanout import ray_map

        map_cases = functools.partial(ray_map, address=args.address, workers=args.workers,
                                      cpus_per_task=float(args.threads or 1), gpus_per_task=args.gpus_per_task)
    try:
        report = evaluate(args.model, data, threads=args.threads or (1 if args.address else None), force=args.force,
                          explain=args.explain, map_cases=map_cases)
    except (ModelNotFound, ValueError, OSError, UnsuitableInput) as error:
        print(f"hounsfield: {error}", file=sys.stderr)
        return EXIT_FAILED
    except RuntimeError as error:  # Ray missing or unreachable (ExecutorError), said in one line
        print(f"hounsfield: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(format_report(report))
    if args.card:
        from viewer.core.evaluation import write_card_metrics

        for path in write_card_metrics(report, args.card, data):
            print(f"model card: {path}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))
    return EXIT_OK


def cmd_compare(args) -> int:
    """``hounsfield compare PRIOR CURRENT [--model ID | --prior-findings F --current-findings F] [--json]``."""
    from viewer.core.export.findings import read_findings
    from viewer.core.followup.cache import RegistrationCache, default_cache_dir
    from viewer.core.followup.compare import compare_studies, format_comparison
    from viewer.core.followup.registration import RegistrationOptions
    from viewer.core.run_model import InferError

    try:
        findings = [read_findings(f)["findings"] if f else None for f in (args.prior_findings, args.current_findings)]
        result = compare_studies(args.prior, args.current, model=args.model, prior_findings=findings[0],
                                 current_findings=findings[1], options=RegistrationOptions(affine=args.affine),
                                 cache=RegistrationCache(default_cache_dir() if args.cache else None),
                                 device=args.device, out_dir=args.out)
    except (InferError, ValueError, OSError) as error:  # FollowUpError is a ValueError
        print(f"hounsfield: {error}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # a failing registration or model is reported, never a traceback
        print(f"hounsfield: compare failed: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(result, indent=1) if args.json else "\n".join(format_comparison(result)))
    return EXIT_OK


def cmd_sample(args) -> int:
    """``hounsfield sample --out DIR [--seed N] [--follow-up DAYS] [--shape Z,Y,X] [--spacing Z,Y,X]``."""
    from viewer.core.sample import write_followup_study, write_sample_study

    if args.follow_up is None:
        print(write_sample_study(args.out, seed=args.seed, shape=args.shape, spacing=args.spacing))
        return EXIT_OK
    if args.follow_up <= 0:
        print("hounsfield: --follow-up needs a positive number of days", file=sys.stderr)
        return EXIT_FAILED
    for path in write_followup_study(args.out, seed=args.seed, days=args.follow_up, shape=args.shape,
                                     spacing=args.spacing):
        print(path)
    return EXIT_OK


def cmd_screenshot(args) -> int:
    """``hounsfield screenshot PATH --out FILE.png``."""
    from viewer.qt.screenshot import render_screenshot

    if not args.path.exists():
        print(f"hounsfield: no such file or folder: {args.path}", file=sys.stderr)
        return EXIT_NO_DICOM
    try:
        render_screenshot(str(args.path), str(args.out), series=args.series, image_number=args.image_number,
                          window=args.window, layout=args.layout, slab_mm=args.slab, projection=args.projection)
    except ValueError as error:  # bad --window / --series / --slice, or no readable DICOM
        print(f"hounsfield: {error}", file=sys.stderr)
        return EXIT_NO_DICOM
    except Exception as error:  # noqa: BLE001 - an undecodable series (any decoder error) is reported, never a traceback
        print(f"hounsfield: cannot render {args.path}: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
