"""``hounsfield pacs``: echo, query, list series, retrieve and send, headless, through the same clients as the GUI.

The node is one the GUI configured (``--node NAME``, read from the settings) or one given by flags: ``--url`` for
DICOMweb, ``--aet/--host/--port`` for DIMSE. A password or token is never a flag (it would show in ``ps`` and the
shell history): it comes from ``$HOUNSFIELD_PACS_SECRET`` or, on a terminal, a prompt. Exit codes: 0 success,
1 failure (the reason on stderr), 130 interrupted (Ctrl-C: a retrieve leaves nothing half-written in the cache).
"""
from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
SECRET_ENV = "HOUNSFIELD_PACS_SECRET"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``pacs`` and its actions to the ``hounsfield`` subcommand parser."""
    pacs = sub.add_parser("pacs", help="query, retrieve from and send to a PACS (DICOMweb or DIMSE)",
                          description="Talk to a PACS without the GUI. The node: --node NAME (configured in the GUI) "
                          "or --url (DICOMweb) or --aet/--host/--port (DIMSE). A password or token comes from "
                          f"${SECRET_ENV} or a prompt, never from a flag.")
    actions = pacs.add_subparsers(dest="action", required=True)

    nodes = actions.add_parser("nodes", help="list the nodes configured in the GUI")
    nodes.add_argument("--json", action="store_true", help="machine-readable output (never the secrets)")
    nodes.set_defaults(handler=cmd_nodes)

    echo = actions.add_parser("echo", help="check that the node answers (C-ECHO / a QIDO-RS search)")
    _node_options(echo)
    echo.set_defaults(handler=cmd_echo)

    query = actions.add_parser("query", help="search studies")
    _node_options(query)
    query.add_argument("--name", default="", help="patient name; DICOM wildcards * and ? allowed (quote them)")
    query.add_argument("--patient-id", default="")
    query.add_argument("--date", type=_date_range, metavar="FROM[-TO]",
                       help="study date YYYYMMDD, or a range YYYYMMDD-YYYYMMDD (either end may be left open)")
    query.add_argument("--modality", default="", help="a modality in the study (CT, MR, ...)")
    query.add_argument("--accession", default="")
    query.add_argument("--study", default="", metavar="UID", help="StudyInstanceUID")
    query.add_argument("--limit", type=int, default=100, help="studies per page (default 100)")
    query.add_argument("--offset", type=int, default=0, help="skip this many studies (paging)")
    query.add_argument("--json", action="store_true", help="machine-readable output")
    query.set_defaults(handler=cmd_query)

    series = actions.add_parser("series", help="list the series of a study")
    _node_options(series)
    series.add_argument("study", metavar="STUDY_UID")
    series.add_argument("--json", action="store_true", help="machine-readable output")
    series.set_defaults(handler=cmd_series)

    retrieve = actions.add_parser("retrieve", help="fetch a study or one series into the local cache",
                                  description="Prints each series' cache folder (open it with `hounsfield PATH`).")
    _node_options(retrieve)
    retrieve.add_argument("study", metavar="STUDY_UID")
    retrieve.add_argument("--series", metavar="UID", help="only this series (default: the whole study)")
    retrieve.add_argument("--cache", type=Path, metavar="DIR", help="cache folder (default: the GUI's)")
    retrieve.add_argument("--cache-gb", type=float, metavar="GB", help="cache cap (default: the GUI's setting)")
    retrieve.add_argument("--json", action="store_true", help="machine-readable output")
    retrieve.set_defaults(handler=cmd_retrieve)

    send = actions.add_parser("send", help="store DICOM files (folders: every file below) on the node")
    _node_options(send)
    send.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    send.add_argument("--json", action="store_true", help="machine-readable output")
    send.set_defaults(handler=cmd_send)


def _node_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("node")
    group.add_argument("--node", metavar="NAME", help="a node configured in the GUI (see `hounsfield pacs nodes`)")
    group.add_argument("--url", help="DICOMweb service root, e.g. http://127.0.0.1:8042/dicom-web")
    group.add_argument("--user", help=f"DICOMweb basic-auth user (password from ${SECRET_ENV} or a prompt)")
    group.add_argument("--bearer", action="store_true", help=f"DICOMweb bearer token from ${SECRET_ENV} or a prompt")
    group.add_argument("--aet", help="DIMSE: the PACS AE title")
    group.add_argument("--host", help="DIMSE: the PACS host")
    group.add_argument("--port", type=int, help="DIMSE: the PACS port")
    group.add_argument("--our-aet", default="HOUNSFIELD", help="DIMSE: our AE title (default HOUNSFIELD)")
    group.add_argument("--storage-port", type=int, default=0, help="DIMSE: our storage SCP port for C-MOVE")
    group.add_argument("--move", action="store_true", help="DIMSE: retrieve by C-MOVE (default C-GET)")
    group.add_argument("--timeout", type=float, metavar="S", help="connection and answer timeout (default 10 s)")


def _date_range(text: str) -> tuple[dt.date | None, dt.date | None]:
    low, sep, high = text.partition("-")
    try:
        first = dt.datetime.strptime(low, "%Y%m%d").date() if low else None
        last = dt.datetime.strptime(high, "%Y%m%d").date() if high else (None if sep else first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not YYYYMMDD or YYYYMMDD-YYYYMMDD") from None
    if first is None and last is None:
        raise argparse.ArgumentTypeError("a date range needs at least one end")
    return first, last


# ---- which node ---------------------------------------------------------------------------------------------------
class _Refused(Exception):
    """Bad command-line input; the message is printed as is."""


def _configured_nodes() -> list:
    from viewer.qt.settings import Settings  # QtCore only (QSettings): the GUI's settings file

    return Settings().pacs_nodes()


def _secret(what: str) -> str:
    secret = os.environ.get(SECRET_ENV, "")
    if secret:
        return secret
    if sys.stdin.isatty():
        return getpass.getpass(f"{what}: ")
    raise _Refused(f"{what} needed: set ${SECRET_ENV} (a prompt is offered only on a terminal)")


def node_from_args(args: argparse.Namespace):
    """The :class:`~viewer.services.pacs.nodes.PacsNode` the flags name (validated); raises ``_Refused``."""
    from viewer.services.pacs.nodes import AuthKind, NodeError, NodeKind, PacsNode, RetrieveRoute

    given = [flag for flag, value in (("--node", args.node), ("--url", args.url), ("--aet", args.aet)) if value]
    if len(given) != 1:
        raise _Refused("name the node: --node NAME, or --url URL (DICOMweb), or --aet/--host/--port (DIMSE)"
                       if not given else f"{' and '.join(given)} cannot be combined: give one node")
    changes: dict = {} if args.timeout is None else {"timeout_s": args.timeout}
    try:
        if args.node:
            found = [node for node in _configured_nodes() if node.name == args.node]
            if not found:
                names = ", ".join(node.name for node in _configured_nodes()) or "none configured"
                raise _Refused(f"no PACS node named {args.node!r} (known: {names})")
            node = found[0]
            if changes:
                from dataclasses import replace

                node = replace(node, **changes)
        elif args.url:
            auth, user, secret = AuthKind.NONE, "", ""
            if args.user:
                auth, user, secret = AuthKind.BASIC, args.user, _secret(f"password of {args.user}")
            elif args.bearer:
                auth, secret = AuthKind.BEARER, _secret("bearer token")
            node = PacsNode(name="PACS", kind=NodeKind.DICOMWEB, url=args.url, auth=auth, username=user,
                            secret=secret, **changes)
        else:
            route = RetrieveRoute.C_MOVE if args.move else RetrieveRoute.C_GET
            node = PacsNode(name="PACS", kind=NodeKind.DIMSE, aet=args.aet, host=args.host or "",
                            port=args.port or 0, our_aet=args.our_aet, storage_port=args.storage_port,
                            retrieve_route=route, **changes)
        return node.validate()
    except NodeError as error:
        raise _Refused(f"invalid node: {error}") from None


def _run(handler, args: argparse.Namespace) -> int:
    """Run one action with the node's client; every failure becomes one line on stderr."""
    from inference.jobs import Cancelled
    from viewer.services.pacs.client import open_client
    from viewer.services.pacs.model import PacsError

    try:
        node = node_from_args(args)
        return handler(open_client(node), node, args)
    except _Refused as error:
        print(f"hounsfield pacs: {error}", file=sys.stderr)
    except PacsError as error:
        print(f"{_end_progress()}hounsfield pacs: {error}", file=sys.stderr)
    except ImportError as error:  # e.g. the DIMSE client when pynetdicom is missing
        print(f"hounsfield pacs: this kind of node is not available here: {error}", file=sys.stderr)
    except (KeyboardInterrupt, Cancelled):
        print(f"{_end_progress()}hounsfield pacs: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED


def _end_progress() -> str:
    """A newline that ends the progress line, when one is shown (a terminal)."""
    return "\n" if sys.stderr.isatty() else ""


def _drain(job):
    """Run a job with a one-line progress display on stderr; closes it (its clean-up runs) when interrupted."""
    from inference.jobs import run_job

    def show(progress) -> None:
        count = f" {progress.done}/{progress.total}" if progress.total else ""
        print(f"\r{progress.message}{count}\033[K", end="", file=sys.stderr, flush=True)

    try:
        result = run_job(job, show if sys.stderr.isatty() else None)
    except BaseException:
        job.close()
        raise
    if sys.stderr.isatty():
        print(file=sys.stderr)
    return result


def _print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=1, default=str)
    print()


# ---- the actions --------------------------------------------------------------------------------------------------
def cmd_nodes(args: argparse.Namespace) -> int:
    """``hounsfield pacs nodes``: the configured nodes (never their secrets)."""
    nodes = _configured_nodes()
    if args.json:
        _print_json([{k: v for k, v in node.to_dict().items() if k != "secret"} for node in nodes])
    elif not nodes:
        print("No PACS node configured (add one in the GUI, or give --url / --aet to each command).")
    for node in [] if args.json else nodes:
        print(node.describe())
    return EXIT_OK


def cmd_echo(args: argparse.Namespace) -> int:
    """``hounsfield pacs echo``."""

    def echo(client, node, args) -> int:
        result = client.echo()
        if result.ok:
            print(f"{node.describe()}: answered in {result.seconds * 1000:.0f} ms")
            return EXIT_OK
        print(f"hounsfield pacs: {result.message}", file=sys.stderr)
        return EXIT_FAILED

    return _run(echo, args)


def cmd_query(args: argparse.Namespace) -> int:
    """``hounsfield pacs query``: one page of studies."""
    from viewer.services.pacs.model import QueryFilter

    date_from, date_to = args.date or (None, None)
    query = QueryFilter(patient_name=args.name, patient_id=args.patient_id, date_from=date_from, date_to=date_to,
                        modality=args.modality, accession=args.accession, study_uid=args.study,
                        limit=max(0, args.limit), offset=max(0, args.offset))

    def run(client, node, args) -> int:
        hits = _drain(client.query_studies(query))
        if args.json:
            _print_json([hit.__dict__ for hit in hits])
            return EXIT_OK
        for hit in hits:
            counts = f"{hit.n_series if hit.n_series is not None else '?'} series, " \
                     f"{hit.n_instances if hit.n_instances is not None else '?'} instances"
            print(f"{hit.study_date or '--------'}  {hit.patient_name or '(no name)'} [{hit.patient_id or 'no id'}]  "
                  f"{'/'.join(hit.modalities) or '-'}  {counts}  {hit.description}  ({hit.study_uid})")
        more = " (more may follow: --offset)" if query.limit and len(hits) == query.limit else ""
        print(f"{len(hits)} studies{more}", file=sys.stderr)
        return EXIT_OK

    return _run(run, args)


def cmd_series(args: argparse.Namespace) -> int:
    """``hounsfield pacs series STUDY_UID``."""

    def run(client, node, args) -> int:
        hits = _drain(client.query_series(args.study))
        if args.json:
            _print_json([hit.__dict__ for hit in hits])
            return EXIT_OK
        for hit in hits:
            number = hit.series_number if hit.series_number is not None else "-"
            count = hit.n_instances if hit.n_instances is not None else "?"
            print(f"#{number:>4} {hit.modality or '-':<8} {count:>5} instances  {hit.description}  ({hit.series_uid})")
        return EXIT_OK

    return _run(run, args)


def _cache(args: argparse.Namespace):
    from viewer.services.pacs.cache import RetrieveCache, default_cache_root

    gb = args.cache_gb
    if gb is None:
        try:
            from viewer.qt.settings import Settings

            gb = Settings().pacs_cache_gb
        except ImportError:  # a headless install without Qt: the default cap
            from viewer.services.pacs.cache import DEFAULT_MAX_BYTES

            gb = DEFAULT_MAX_BYTES / 1024**3
    if gb <= 0:
        raise _Refused("--cache-gb must be positive")
    return RetrieveCache(args.cache or default_cache_root(), max_bytes=int(gb * 1024**3))


def cmd_retrieve(args: argparse.Namespace) -> int:
    """``hounsfield pacs retrieve STUDY_UID [--series UID]``: prints each series' cache folder."""

    def run(client, node, args) -> int:
        result = _drain(client.retrieve(args.study, args.series, _cache(args)))
        if args.json:
            _print_json({"series": {uid: str(path) for uid, path in result.series_dirs.items()},
                         "instances": result.n_instances, "bytes": result.n_bytes, "seconds": result.seconds,
                         "warnings": list(result.warnings)})
            return EXIT_OK
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        rate = result.n_bytes / 1e6 / result.seconds if result.seconds > 0 else 0.0
        print(f"{result.n_instances} instances, {result.n_bytes / 1e6:.1f} MB in {result.seconds:.1f} s "
              f"({rate:.0f} MB/s)", file=sys.stderr)
        for path in result.series_dirs.values():
            print(path)
        return EXIT_OK

    return _run(run, args)


def _files_below(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        else:
            files.append(path)  # a missing file is reported per file by the client
    return files


def cmd_send(args: argparse.Namespace) -> int:
    """``hounsfield pacs send PATH...``: one line per file that failed, a summary, exit 1 if any failed."""

    def run(client, node, args) -> int:
        files = _files_below(args.paths)
        if not files:
            raise _Refused("no files to send")
        results = _drain(client.send(files))
        if args.json:
            _print_json([{"path": str(r.path), "sop_instance_uid": r.sop_instance_uid, "ok": r.ok,
                          "message": r.message} for r in results])
        else:
            for result in results:
                if not result.ok:
                    print(f"{result.path}: {result.message}", file=sys.stderr)
            print(f"{sum(r.ok for r in results)} of {len(results)} files stored on {node.describe()}")
        return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED

    return _run(run, args)
