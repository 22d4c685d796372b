"""``hounsfield anonymize PATH... --out DIR [--profile basic|retain-dates]``: a de-identified copy of DICOM files.

Exit codes as the other subcommands: 0 done (flagged and skipped files are listed, not errors), 1 refused or
failed, 2 nothing readable as DICOM under PATH.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_NO_DICOM = 0, 1, 2


def add_parser(sub) -> None:
    """Register the ``anonymize`` subcommand on ``sub`` (argparse subparsers)."""
    parser = sub.add_parser(
        "anonymize", help="write a de-identified copy of DICOM files (PS3.15 Basic Profile)",
        description="DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile, with the Clean "
        "Descriptors and Clean Structured Content options (and, with --profile retain-dates, Retain Longitudinal "
        "Temporal Information with Full Dates). New UIDs are consistent across all files of a run, so SEG, SR and "
        "RTSTRUCT still reference their images; private tags are removed; pixel data are copied unchanged. Images "
        "that may show identity in their pixels (BurnedInAnnotation YES; ultrasound, secondary capture and photos "
        "unless BurnedInAnnotation NO) are flagged and not exported unless --include-flagged. The UID map (old -> "
        "new, and the pseudonyms) is written to the user data folder or --uid-map, never into DIR.")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="DICOM files or folders")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--profile", choices=("basic", "retain-dates"), default="basic",
                        help="basic: dates removed or emptied; retain-dates: dates and times kept (default basic)")
    parser.add_argument("--no-clean-descriptors", action="store_true",
                        help="remove Study/Series descriptions, protocol and ROI names as the Basic Profile does "
                        "(default: keep them cleaned of names, IDs and dates)")
    parser.add_argument("--pseudonym", default="", metavar="NAME",
                        help="PatientName/PatientID to use (further patients get NAME-2...); default ANON^<hash>")
    parser.add_argument("--include-flagged", action="store_true",
                        help="also export images flagged for burned-in annotation (still listed in the report)")
    parser.add_argument("--uid-map", type=Path, metavar="FILE",
                        help="where to keep the UID map; an existing map is continued (same study -> same UIDs)")
    parser.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    parser.set_defaults(handler=cmd_anonymize)


def _refusal(args) -> str | None:
    from viewer.services.deid.export import output_folder_problem

    missing = [p for p in args.paths if not p.exists()]
    if missing:
        return f"no such file or folder: {missing[0]}"
    return output_folder_problem(args.out, args.paths)


def cmd_anonymize(args) -> int:
    """Run the export, print the summary (or ``--json``); returns the exit code."""
    from inference.jobs import run_job
    from viewer.services.deid import DeidOptions, anonymize_job, iter_report_lines

    refusal = _refusal(args)
    if refusal:
        print(f"hounsfield: {refusal}", file=sys.stderr)
        return EXIT_FAILED
    options = DeidOptions(profile=args.profile, clean_descriptors=not args.no_clean_descriptors,
                          pseudonym=args.pseudonym, include_flagged=args.include_flagged, uid_map=args.uid_map)

    def show(progress) -> None:
        if not args.json:
            print(f"\r{progress.message}", end="", file=sys.stderr, flush=True)

    try:
        report = run_job(anonymize_job(args.paths, args.out, options), show)
    except (ValueError, OSError) as error:  # a refused map location, an unreadable map, a full disk
        print(f"\nhounsfield: {error}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=1)
        print()
    else:
        print(file=sys.stderr)
        print("\n".join(iter_report_lines(report)))
    if not report.written and not report.flagged:
        print("hounsfield: no readable DICOM to export", file=sys.stderr)
        return EXIT_NO_DICOM
    return EXIT_OK
