"""The de-identified export as a job: files in, de-identified copies out, a report of what happened to each.

Images that may show the patient's identity in their pixels (BurnedInAnnotation YES; ultrasound, secondary capture,
photographs and encapsulated documents unless BurnedInAnnotation is NO) are flagged: listed with the reason and,
unless ``include_flagged``, not exported. Files that cannot be read are skipped with the reason. Nothing is passed
silently. Pixel data are copied byte for byte in the original transfer syntax.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from inference.jobs import Cancelled, Job, Progress, is_cancelled
from viewer.services.deid.dataset import deidentify_dataset
from viewer.services.deid.profile import Profile, build_rules
from viewer.services.deid.uids import UidMap, default_map_path, short_name

_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # and its multi-frame variants .7.1 - .7.4
_VISIBLE_LIGHT = "1.2.840.10008.5.1.4.1.1.77.1."  # photographs, endoscopy, microscopy, ophthalmic photography
_ENCAPSULATED = "1.2.840.10008.5.1.4.1.1.104."  # PDF, CDA, STL, OBJ, MTL


@dataclass
class DeidOptions:
    """What the user chose. ``uid_map``: where the local map goes (default: a new file in the user data folder);
    an existing map there is continued, so a later export of the same study keeps the same UIDs."""

    profile: Profile | str = Profile.BASIC
    clean_descriptors: bool = True
    pseudonym: str = ""
    include_flagged: bool = False
    uid_map: Path | None = None


@dataclass
class DeidReport:
    """What one run did. Paths are local; reasons carry no patient data."""

    out_dir: Path
    uid_map: Path | None = None
    written: list[tuple[str, str]] = field(default_factory=list)  # (source, output)
    flagged: list[tuple[str, str, bool]] = field(default_factory=list)  # (source, reason, exported anyway)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    cancelled: bool = False

    def to_dict(self) -> dict:
        """JSON-ready summary (``hounsfield anonymize --json``)."""
        return {"out_dir": str(self.out_dir), "uid_map": str(self.uid_map) if self.uid_map else None,
                "written": [{"source": s, "output": o} for s, o in self.written],
                "flagged": [{"source": s, "reason": r, "exported": e} for s, r, e in self.flagged],
                "skipped": [{"source": s, "reason": r} for s, r in self.skipped],
                "cancelled": self.cancelled}


def burned_in_reason(ds) -> str | None:
    """Why ``ds`` may show identity in its pixels (None when nothing says so)."""
    burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if burned == "YES":
        return "BurnedInAnnotation is YES"
    if str(ds.get("RecognizableVisualFeatures", "") or "").strip().upper() == "YES":
        return "RecognizableVisualFeatures is YES (e.g. a face)"
    if burned == "NO":
        return None
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if str(ds.get("Modality", "") or "").upper() == "US":
        return "ultrasound without BurnedInAnnotation NO (text is often burned into the image)"
    if sop_class == _SECONDARY_CAPTURE or sop_class.startswith(_SECONDARY_CAPTURE + "."):
        return "secondary capture without BurnedInAnnotation NO (a screen capture may show patient data)"
    if sop_class.startswith(_VISIBLE_LIGHT):
        return "photograph / visible-light image without BurnedInAnnotation NO"
    if sop_class.startswith(_ENCAPSULATED):
        return "encapsulated document (PDF, CDA...): its content is not de-identified"
    return None


def collect_files(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Regular files under ``paths`` (folders walked, sorted), and the entries refused with the reason.

    Symbolic links, FIFOs and devices are listed, never read (they could point anywhere).
    """
    files: list[Path] = []
    refused: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_symlink():
            refused.append((str(path), "symbolic link (not followed)"))
        elif path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs.sort()
                for name in sorted(names):
                    _add_file(Path(root) / name, files, refused)
        elif path.exists():
            _add_file(path, files, refused)
        else:
            refused.append((str(path), "no such file or folder"))
    return files, refused


def _add_file(path: Path, files: list[Path], refused: list[tuple[str, str]]) -> None:
    if path.is_symlink():
        refused.append((str(path), "symbolic link (not followed)"))
    elif not path.is_file():
        refused.append((str(path), "not a regular file"))
    elif path.name.upper() == "DICOMDIR":
        refused.append((str(path), "DICOMDIR index (not exported: it would list the original files)"))
    else:
        files.append(path)


def _read(path: Path):
    """The full data set, after the scanner's checks for untrusted files (its reasons are the user's reasons)."""
    from viewer.core.dicom.limits import SizeLimitError, dcmread
    from viewer.core.dicom.scan import DicomReadError, read_header

    try:
        read_header(path)
        ds = dcmread(path, force=False)
    except (DicomReadError, SizeLimitError) as error:
        raise ValueError(str(error)) from None
    except Exception as error:  # noqa: BLE001 - any parser error of an untrusted file is a reason, not a crash
        raise ValueError(f"unreadable DICOM ({type(error).__name__})") from None
    if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
        raise ValueError("no SOP Class/Instance UID (not a DICOM instance)")
    _check_complete(ds)
    return ds


def _check_complete(ds) -> None:
    """Refuse native pixel data shorter than the image declares: the file was cut (pydicom reads it silently)."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if "PixelData" not in ds or syntax is None or syntax.is_compressed:
        return
    from pydicom.pixels.utils import get_expected_length

    try:
        expected = int(get_expected_length(ds, unit="bytes"))  # knows YBR_FULL_422's subsampling, 1-bit images...
    except (AttributeError, KeyError, TypeError, ValueError):
        raise ValueError("pixel data without a usable Rows/Columns/BitsAllocated") from None
    if len(ds.PixelData) < expected:
        raise ValueError("truncated: the pixel data are shorter than the image size declares")


def _write(ds, target: Path) -> None:
    """Write atomically: a temporary file in the target folder, renamed when complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    try:
        ds.save_as(str(tmp), enforce_file_format=True)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _output_path(out_dir: Path, ds) -> Path:
    """``OUT/<patient pseudonym>/<study>/<modality>-<series>/<instance>.dcm``, names from the *new* UIDs only."""
    patient = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(ds.PatientID))[:64] or "ANON"
    modality = "".join(c for c in str(ds.get("Modality", "") or "") if c.isalnum())[:8] or "OT"
    return (out_dir / patient / f"study-{short_name(str(ds.get('StudyInstanceUID', '')), 8)}"
            / f"{modality}-{short_name(str(ds.get('SeriesInstanceUID', '')), 8)}"
            / f"{short_name(str(ds.SOPInstanceUID), 16)}.dcm")


def output_folder_problem(out_dir: str | os.PathLike, sources: Iterable[str | os.PathLike]) -> str | None:
    """Why ``out_dir`` cannot take the export of ``sources`` (None when it can): a file, or inside an input folder
    (a later export or scan of that folder would mix originals and copies)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        return f"{out} is a file, not a folder"
    resolved = out.resolve()
    for source in sources:
        folder = Path(source).resolve()
        if folder.is_dir() and (resolved == folder or folder in resolved.parents):
            return f"the output folder {out} is inside the input {source}: choose a folder outside it"
    return None


def _check_map_location(out_dir: Path, map_path: Path) -> None:
    out, where = out_dir.resolve(), map_path.resolve()
    if where == out or out in where.parents:
        raise ValueError("the UID map must not be written inside the export folder (it links back to the patient)")


def anonymize_job(sources: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
                  options: DeidOptions | None = None, cancel=None) -> Job[DeidReport]:
    """De-identify the DICOM files under ``sources`` into ``out_dir``; yields Progress, returns a DeidReport.

    One UID map for the whole run keeps references (SEG, SR, RTSTRUCT -> images) valid; it is saved to
    ``options.uid_map`` (or a new file in the user data folder), never inside ``out_dir``. Raises ValueError
    before writing anything when the map would land inside ``out_dir`` or an existing map cannot be read.
    """
    options = options or DeidOptions()
    out = Path(out_dir)
    map_path = Path(options.uid_map) if options.uid_map else default_map_path()
    _check_map_location(out, map_path)
    uid_map = UidMap.load(map_path) if map_path.exists() else UidMap()
    rules = build_rules(options.profile, options.clean_descriptors)
    report = DeidReport(out)
    yield Progress(0, 0, "Listing files")
    files, report.skipped = collect_files(sources)
    written: set[Path] = set()
    try:
        for index, path in enumerate(files):
            if is_cancelled(cancel):
                raise Cancelled()
            yield Progress(index, len(files), f"De-identifying file {index + 1}/{len(files)}")
            _one(path, out, rules, uid_map, options, report, written)
        yield Progress(len(files), len(files), "Done")
    except Cancelled:
        report.cancelled = True
    finally:
        if uid_map.uids or uid_map.patients:
            report.uid_map = uid_map.save(map_path)
    return report


def _one(path: Path, out: Path, rules, uid_map: UidMap, options: DeidOptions, report: DeidReport,
         written: set[Path]) -> None:
    try:
        ds = _read(path)
    except ValueError as error:
        report.skipped.append((str(path), str(error)))
        return
    reason = burned_in_reason(ds)
    if reason:
        report.flagged.append((str(path), reason, options.include_flagged))
        if not options.include_flagged:
            return
    try:
        deidentify_dataset(ds, rules, uid_map, options.pseudonym)
        target = _output_path(out, ds)
        if target in written:
            report.skipped.append((str(path), "same SOP Instance UID as a file already exported in this run"))
            return
        _write(ds, target)
    except OSError as error:
        report.skipped.append((str(path), f"cannot write: {error.strerror or type(error).__name__}"))
        return
    except Exception as error:  # noqa: BLE001 - a malformed attribute stops this file only, with its reason
        report.skipped.append((str(path), f"cannot de-identify ({type(error).__name__})"))
        return
    written.add(target)
    report.written.append((str(path), str(target)))


def iter_report_lines(report: DeidReport) -> Iterator[str]:
    """A human summary: counts, then each flagged and skipped file with its reason."""
    yield f"{len(report.written)} file(s) written to {report.out_dir}"
    if report.cancelled:
        yield "cancelled: the files above were written, the rest were not"
    for source, reason, exported in report.flagged:
        yield f"flagged{' (exported anyway)' if exported else ' (not exported)'}: {source}: {reason}"
    for source, reason in report.skipped:
        yield f"skipped: {source}: {reason}"
    if report.uid_map:
        yield f"UID map (keep it private, it links back to the patients): {report.uid_map}"
