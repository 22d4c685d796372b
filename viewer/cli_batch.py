"""``hounsfield batch --model ID [--model ID] SOURCE... [--out SINK] [--address ray://...|auto] [--workers N]``:
models over every series of some folders (or a PACS query), on a local Ray runtime or a Ray cluster, results where
the app finds them (or on the PACS).

Exit codes as the other subcommands: 0 every series done or skipped (not made for the models), 1 some failed or
the batch could not start (reason on stderr), 2 no image series in SOURCE.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_NO_DICOM = 0, 1, 2


def add_parser(sub) -> None:
    """Register the ``batch`` subcommand on ``sub`` (argparse subparsers)."""
    parser = sub.add_parser(
        "batch", help="run models over every series of folders on a Ray cluster (or a local Ray runtime)",
        description="Every image series found under SOURCE goes through the models (loaded once per worker); each "
        "series' results (DICOM SEG, findings.json and SR) are written to SINK/<study UID>/<series UID>/ whole or not "
        "at all, and the app shows them when the study is opened. A manifest (SQLite, SINK/batch-manifest.sqlite) "
        "records every series: re-running the same command resumes (finished series are skipped; failed ones are "
        "tried again). Without --address a local Ray runtime is started (loopback only); with it the same run "
        "goes to a cluster whose nodes have hounsfield[batch] installed.")
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="DICOM folders (each series found by a scan), or pacs:NODE?QUERY: the image series of "
                        "the studies a query on a configured node finds (QUERY: date=today|YYYYMMDD[-YYYYMMDD], "
                        "modality=CT, patient_id=..., accession=..., study_uid=..., joined by &)")
    parser.add_argument("--model", action="append", required=True, dest="models", metavar="ID",
                        help="model id (repeat for several; they run in this order and share a network run)")
    parser.add_argument("--out", metavar="SINK",
                        help="results folder (default: the app's batch results folder), or pacs:NODE to store the "
                        "SEG and SR on a configured node (the manifest then goes to the user data folder)")
    parser.add_argument("--address", metavar="ADDR",
                        help="Ray cluster: ray://HEAD:10001 (Ray Client), HEAD:6379 or auto (on a cluster node); "
                        "'inline' runs one worker in this process without Ray. Default: a local Ray runtime")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="workers (one model copy each). Default: one per --cpus-per-worker cores here; on a "
                        "cluster one per GPU share with --gpus-per-task, else one per --cpus-per-worker CPUs")
    parser.add_argument("--gpus-per-task", type=float, default=0.0, metavar="F",
                        help="GPUs each worker reserves (0.5: two workers share a GPU; default 0, CPU)")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C",
                        help="CPU cores each worker reserves; its torch threads (default 1)")
    parser.add_argument("--device", choices=("cpu", "cuda", "mps"), help="default: best available on the worker")
    parser.add_argument("--force", action="store_true",
                        help="run models on series they were not made for (default: such series are skipped; "
                        "with --force a re-run also runs the series an earlier run skipped)")
    parser.add_argument("--retries", type=int, default=2, metavar="N",
                        help="times a series is tried again after its worker died (default 2)")
    parser.add_argument("--manifest", type=Path, metavar="FILE", help="default: SINK/batch-manifest.sqlite")
    parser.add_argument("--watch", action="store_true",
                        help="keep polling SOURCE and run new series as they arrive (a series is taken once its "
                        "files stopped changing between two polls); stop with Ctrl+C")
    parser.add_argument("--interval", type=float, default=30.0, metavar="S",
                        help="seconds between polls with --watch (default 30)")
    parser.add_argument("--object-store-mb", type=int, default=500, metavar="MB",
                        help="object store of the local Ray runtime (default 500)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=cmd_batch)


def _pacs_nodes() -> list:
    """The PACS nodes configured in the app (``hounsfield pacs nodes`` lists them)."""
    from viewer.qt.settings import Settings  # QtCore only (QSettings): the app's settings file

    return Settings().pacs_nodes()


def cmd_batch(args) -> int:
    """Run the batch, print the live line on stderr and the summary on stdout; returns the exit code."""
    import signal
    import threading

    from viewer.services.batch.progress import summary_lines
    from viewer.services.batch.run import BatchError, BatchOptions, default_sink_folder, run_batch

    nodes = _pacs_nodes() if any(str(s).startswith("pacs:") for s in [*args.sources, args.out or ""]) else []
    options = BatchOptions(models=args.models, sources=args.sources, sink=args.out or str(default_sink_folder()),
                           address=args.address, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                           gpus_per_task=args.gpus_per_task, device=args.device, force=args.force,
                           retries=max(0, args.retries), manifest=str(args.manifest) if args.manifest else None,
                           watch=args.watch, interval=max(1.0, args.interval), object_store_mb=args.object_store_mb,
                           pacs_nodes=nodes)

    def show(text: str) -> None:
        print(text, end="", file=sys.stderr, flush=True)

    stop = threading.Event()
    # SIGTERM ends a --watch run cleanly: the series in flight finish and are recorded first
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        summary = run_batch(options, write=None if args.json else show, stop=stop, terminal=sys.stderr.isatty())
    except BatchError as error:
        print(f"hounsfield: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:  # the manifest holds what finished: the same command resumes
        print("\nhounsfield: stopped; run the same command again to resume", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        json.dump(summary, sys.stdout, indent=1, default=str)
        print()
    else:
        print("\n".join(summary_lines(summary)))
        print(f"results: {summary['sink']}\nmanifest: {summary['manifest_path']}")
    counts = summary["manifest"]
    if not any(counts.values()):
        print("hounsfield: no image series found in " + ", ".join(args.sources), file=sys.stderr)
        return EXIT_NO_DICOM
    return EXIT_FAILED if counts.get("failed") else EXIT_OK
