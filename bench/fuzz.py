"""A seeded mutation campaign over real DICOM (``make fuzz``): hostile input must never crash, hang or blow up.

Each case is a real file of ../shared/data, mutated deterministically from the seed (bit flips, truncation,
header values - Rows, Columns, NumberOfFrames, BitsAllocated, transfer syntax... -, element and fragment
lengths, deep sequence nesting, codec frame headers), or one of the targeted cases of issue 10. A case runs
what ``hounsfield info`` does - scan, pick the default series, load it - and renders its middle slice to uint8
through the core windowing (no Qt), in a forked child with an address-space cap and an alarm. Outcomes:

=========  ===========================================================================================
ok         a volume loaded and a slice rendered (warnings allowed, e.g. blank undecodable slices)
refused    a clean refusal: the file listed unreadable with a reason, or the load refused with one
traceback  any other exception escaped (a bug: a reader should have turned it into a reason)
crash      the child died of a signal (a C/Rust decoder crashed) or exited oddly
hang       the child outlived its time limit
memory     MemoryError anywhere (even caught), or the child's peak RSS over the limit
=========  ===========================================================================================

The campaign fails (exit 1) on any of the last four, and on a reason quoting the file's patient name or ID.
Usage: ``python -m bench.fuzz [--seed N] [--cases N] [--workers 2] [--timeout 20] [--keep DIR] [--seg | --reports]``.

``--seg`` mutates the real DICOM SEGs of ../shared/data/seg-rtstruct instead, and opens each over the series it
references (loaded once, before the children fork) as File > Open Segmentation does: ``ok`` when it opened,
``refused`` on a ``ValueError`` (the reader's refusals), ``traceback`` on any other exception.
``--reports`` does the same for the RT Structure Sets and SRs there: half its operators edit an element anywhere
in the tree (contour points, SR content items, nested sequences). A structure set is read and placed on every slice
of the three planes; an SR's measurements are placed on the volume and its nodule findings read as the batch
runner does. ``ok`` when something was read, ``refused`` when only reasons came back.
The parent imports the reader once and forks per case (os.fork), so a case costs its own work only.
"""
from __future__ import annotations

import argparse
import collections
import functools
import itertools
import os
import random
import resource
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("HOUNSFIELD_SHARED", REPO.parent / "shared")) / "data"

BAD = ("traceback", "crash", "hang", "memory")
OUTCOMES = ("ok", "refused") + BAD
_EXIT = {"ok": 0, "refused": 10, "traceback": 11, "memory": 12}
_FROM_EXIT = {v: k for k, v in _EXIT.items()}

ADDRESS_SPACE = 6 << 30  # the 4 GiB series cap plus the interpreter, numpy, pydicom and a decoder's scratch
RSS_LIMIT = 2 << 30  # inputs are a few MB: a case touching more than 2 GiB trusted a size claim
MAX_SEED_BYTES = 12 << 20
PER_GROUP = 6  # seed files per (folder, transfer syntax): every syntax is covered, big folders do not dominate

TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.201", "9.9.9",
]
HOSTILE_VALUES = {
    "Rows": [0, 1, 2, 3, 255, 4095, 32768, 65535],
    "Columns": [0, 1, 2, 3, 255, 4095, 32768, 65535],
    "NumberOfFrames": ["0", "-1", "2", "3", "65536", "1000000000", "2147483647", "4294967297", "1e9", "abc", ""],
    "BitsAllocated": [0, 1, 7, 8, 12, 16, 24, 32, 64, 65535],
    "BitsStored": [0, 1, 8, 12, 16, 17, 32, 65535],
    "HighBit": [0, 7, 15, 31, 65535],
    "SamplesPerPixel": [0, 1, 2, 3, 4, 65535],
    "PixelRepresentation": [0, 1, 2, 65535],
    "PlanarConfiguration": [0, 1, 2],
    "PhotometricInterpretation": ["MONOCHROME1", "RGB", "PALETTE COLOR", "YBR_FULL_422", "YBR_RCT", "", "XYZ"],
    "ImageOrientationPatient": [[1, 0, 0, 0.2, 0.98, 0], [1, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0],
                                [1e308, 0, 0, 0, 1, 0]],
    "ImagePositionPatient": [[0, 0, 1e308], [float("nan"), 0, 0], [0, 0]],
    "PixelSpacing": [[0, 0], [-1, 1], [1e-300, 1e300], [1]],
    "RescaleSlope": ["0", "1e300", "-1", "nan"],
    "WindowWidth": ["0", "-1", "1e300"],
}


@dataclass
class Case:
    """One input: a file (or folder) to write, how it was made, and the patient strings it must not leak."""

    name: str
    kind: str  # mutation operators or the targeted case's name
    syntax: str
    build: Callable[[Path], Path]  # writes the case under a folder, returns what to scan
    private: tuple[str, ...] = ()
    seed_file: str = ""
    run: Callable[[str, tuple[str, ...]], tuple[str, str]] | None = None  # None: run_case


@dataclass
class Result:
    case: Case
    outcome: str
    detail: str
    seconds: float
    rss: int


@dataclass
class Seed:
    path: Path
    syntax: str
    raw: bytes
    private: tuple[str, ...]
    group: str
    fields: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------- seeds
def collect_seeds(data: Path = DATA) -> list[Seed]:
    """Real DICOM files of ``data``, a few per (top folder, transfer syntax), in a stable order."""
    from viewer.core.dicom.scan import DicomReadError, read_header

    groups: dict[tuple[str, str], list[Seed]] = collections.defaultdict(list)
    for path in sorted(p for p in data.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if path.stat().st_size > MAX_SEED_BYTES or path.suffix.lower() in (".txt", ".md", ".rst", ".xml", ".json"):
            continue
        try:
            header = read_header(path)
        except DicomReadError:
            continue
        top = path.relative_to(data).parts[0]
        key = (top, header.transfer_syntax_uid)
        if len(groups[key]) >= PER_GROUP:
            continue
        private = tuple(v for v in (header.patient_name, header.patient_id) if len(v.strip()) >= 4)
        groups[key].append(Seed(path, header.transfer_syntax_uid, path.read_bytes(), private, top))
    return [s for key in sorted(groups) for s in groups[key]]


# ------------------------------------------------------------------------------------- raw byte surgery
def _dataset_start(raw: bytes) -> int | None:
    """Offset after the file meta (explicit VR LE group 0002), or None when the file has no Part 10 header."""
    if raw[128:132] != b"DICM":
        return None
    pos = 132
    while pos + 8 <= len(raw):
        group = struct.unpack_from("<H", raw, pos)[0]
        if group != 0x0002:
            return pos
        vr = raw[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR"):
            pos += 12 + struct.unpack_from("<I", raw, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", raw, pos + 6)[0]
    return None


def _element_headers(raw: bytes, limit: int = 400) -> list[tuple[int, int, int]]:
    """``(offset of the length field, its width, value)`` of top-level elements (explicit or implicit VR LE)."""
    start = _dataset_start(raw)
    if start is None:
        return []
    explicit = 0x40 < raw[start + 4] < 0x5B and 0x40 < raw[start + 5] < 0x5B if start + 6 <= len(raw) else True
    out, pos = [], start
    while pos + 8 <= len(raw) and len(out) < limit:
        if explicit:
            vr = raw[pos + 4:pos + 6]
            if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR", b"OF", b"OD", b"OL", b"OV", b"SV", b"UV"):
                if pos + 12 > len(raw):
                    break
                length = struct.unpack_from("<I", raw, pos + 8)[0]
                out.append((pos + 8, 4, length))
                header = 12
            else:
                length = struct.unpack_from("<H", raw, pos + 6)[0]
                out.append((pos + 6, 2, length))
                header = 8
        else:
            length = struct.unpack_from("<I", raw, pos + 4)[0]
            out.append((pos + 4, 4, length))
            header = 8
        if length == 0xFFFFFFFF:
            break  # a sequence of undefined length: stop at the top-level walk's first hard case
        pos += header + length
    return out


def _nested_sequence(depth: int, explicit: bool) -> bytes:
    """A private sequence nested ``depth`` levels deep, each level one undefined-length item."""
    creator = b"\x09\x00\x10\x00" + (b"LO\x04\x00" if explicit else b"\x04\x00\x00\x00") + b"FUZZ"
    open_seq = b"\x09\x00\x00\x10" + (b"SQ\x00\x00" if explicit else b"") + b"\xff\xff\xff\xff"
    item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    close = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    return creator + (open_seq + item) * depth + close * depth


def _codestream_offsets(raw: bytes) -> list[int]:
    """Offsets of JPEG SOI / JPEG 2000 SOC markers that start a fragment (right after an item header)."""
    out, pos = [], raw.find(b"\xfe\xff\x00\xe0")
    while pos >= 0 and len(out) < 64:
        start = pos + 8
        if raw[start:start + 2] in (b"\xff\xd8", b"\xff\x4f") or raw[start:start + 4] == b"\x00\x00\x00\x0c":
            out.append(start)
        pos = raw.find(b"\xfe\xff\x00\xe0", pos + 4)
    return out


# ------------------------------------------------------------------------------------------- mutators
def _flip(rng: random.Random, raw: bytearray) -> str:
    n = rng.choice((1, 2, 4, 8, 32))
    for _ in range(n):
        span = min(len(raw), 4096) if rng.random() < 0.7 else len(raw)
        at = rng.randrange(span)
        raw[at] ^= 1 << rng.randrange(8)
    return f"flip{n}"


def _truncate(rng: random.Random, raw: bytearray) -> str:
    cut = rng.randrange(min(len(raw), 4096)) if rng.random() < 0.5 else rng.randrange(len(raw))
    del raw[cut:]
    return "truncate"


def _length(rng: random.Random, raw: bytearray) -> str:
    headers = _element_headers(bytes(raw))
    if not headers:
        return _flip(rng, raw)
    at, width, value = rng.choice(headers)
    top = (1 << (8 * width)) - 1
    new = rng.choice([0, 1, value + 1, value - 1 if value else 3, value * 2 + 2, top, top - 1, 0x7FFFFFFF & top])
    raw[at:at + width] = (new & top).to_bytes(width, "little")
    return "length"


def _fragment_length(rng: random.Random, raw: bytearray) -> str:
    items, pos = [], raw.find(b"\xfe\xff\x00\xe0")
    while 0 <= pos <= len(raw) - 8 and len(items) < 64:  # an item tag cut by an earlier truncation has no length
        items.append(pos)
        pos = raw.find(b"\xfe\xff\x00\xe0", pos + 4)
    if not items:
        return _length(rng, raw)
    at = rng.choice(items) + 4
    value = struct.unpack_from("<I", raw, at)[0]
    new = rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, value + 2, max(0, value - 2)]) & 0xFFFFFFFF
    raw[at:at + 4] = new.to_bytes(4, "little")
    return "fragment_length"


def _syntax(rng: random.Random, raw: bytearray) -> str:
    pos = raw.find(b"\x02\x00\x10\x00UI")
    if pos < 0:
        return _flip(rng, raw)
    length = struct.unpack_from("<H", raw, pos + 6)[0]
    fitting = [t for t in TRANSFER_SYNTAXES if len(t) <= length]
    uid = rng.choice(fitting).encode() if fitting else b""
    raw[pos + 8:pos + 8 + length] = uid + b"\x00" * (length - len(uid))
    return "syntax"


def _nest(rng: random.Random, raw: bytearray) -> str:
    start = _dataset_start(bytes(raw))
    if start is None or start + 6 > len(raw):
        return _flip(rng, raw)
    explicit = 0x40 < raw[start + 4] < 0x5B and 0x40 < raw[start + 5] < 0x5B
    depth = rng.choice((40, 400, 4000))
    raw[start:start] = _nested_sequence(depth, explicit)
    return f"nest{depth}"


def _codestream(rng: random.Random, raw: bytearray) -> str:
    offsets = _codestream_offsets(bytes(raw))
    if not offsets:
        return _fragment_length(rng, raw)
    at = rng.choice(offsets)
    if raw[at:at + 2] == b"\xff\xd8":
        sof = next((i for i in range(at, min(len(raw) - 9, at + 4096)) if raw[i] == 0xFF and raw[i + 1] in
                    (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7)), None)
        if sof is not None and rng.random() < 0.7:
            size = rng.choice((0, 1, 65500, 65535))
            raw[sof + 5:sof + 9] = size.to_bytes(2, "big") + rng.choice((size, 1, 65500)).to_bytes(2, "big")
            return "sof"
    elif raw[at:at + 2] == b"\xff\x4f" and raw[at + 2:at + 4] == b"\xff\x51" and rng.random() < 0.7:
        raw[at + 8:at + 16] = rng.choice((0xFFFF0000, 65500, 0)).to_bytes(4, "big") * 2
        return "siz"
    for _ in range(rng.choice((1, 4, 16))):  # inside the codec's own headers (RLE segment table, SOF, SIZ...)
        target = at + rng.randrange(64)
        if target < len(raw):
            raw[target] ^= 1 << rng.randrange(8)
    return "codec_header"


def _tag_edit(rng: random.Random, seed: Seed) -> tuple[bytes, str] | None:
    """A header value set to a hostile one through pydicom (the rest of the file unchanged)."""
    import io
    import warnings

    import pydicom

    keyword = rng.choice(sorted(HOSTILE_VALUES))
    value = rng.choice(HOSTILE_VALUES[keyword])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(seed.raw), force=True)
            setattr(ds, keyword, value)
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=False)
    except Exception:  # noqa: BLE001 - some values cannot be written with some VRs: another mutation then
        return None
    return out.getvalue(), f"tag:{keyword}"


_VALUE_TYPES = ["CONTAINER", "NUM", "SCOORD", "SCOORD3D", "IMAGE", "TEXT", "CODE", "UIDREF", "", "XYZ"]
MAX_EDITED_BYTES = 64 << 20


def _hostile_value(rng: random.Random, element) -> Any:
    """A hostile replacement for ``element``'s value, by its VR (None: empty it)."""
    vr, value = element.VR, element.value
    count = len(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else 1
    if vr in ("DS", "FD", "FL", "OF", "OD"):
        pick = rng.choice(("nan", "inf", "-1e308", "1e308", "0", "odd", "many"))
        if pick == "odd":  # a point cut short
            return [0.0] * max(1, count - 1) if vr in ("DS", "FD", "FL") else None
        if pick == "many":  # a contour of 300,000 points
            return [1.5] * 900_000 if vr in ("DS", "FD", "FL") else None
        return [pick] * count if vr == "DS" else [float(pick)] * count
    if vr in ("IS", "US", "UL", "SS", "SL", "UV", "SV"):
        pick = rng.choice((0, 1, 65535, 2**31 - 1, -1))
        if pick < 0 and vr in ("US", "UL", "UV"):
            pick = 0
        return str(pick) if vr == "IS" else pick
    if element.keyword == "ValueType":
        return rng.choice(_VALUE_TYPES)
    if element.keyword in ("GraphicType", "ContourGeometricType"):
        return rng.choice(("POINT", "POLYLINE", "MULTIPOINT", "ELLIPSE", "ELLIPSOID", "CIRCLE", "POLYGON",
                           "CLOSED_PLANAR", "OPEN_PLANAR", "", "X"))
    return rng.choice((None, "X" * 64, "1.2.3"))


def _deep_edit(rng: random.Random, seed: Seed) -> tuple[bytes, str] | None:
    """An element anywhere in the data set tree (inside sequences too: contours, SR content items) deleted,
    emptied, set to a hostile value, or - for a sequence - emptied, its first item repeated, or nested 150 deep
    (pydicom's writer recurses: 400 levels exhaust the stack, its error messages then the memory)."""
    import copy
    import io
    import warnings

    import pydicom
    from pydicom.dataset import Dataset

    def elements(ds, out):
        for element in ds:
            if element.tag == 0x7FE00010:
                continue
            out.append((ds, element))
            if element.VR == "SQ":
                for item in element.value:
                    elements(item, out)
        return out

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(seed.raw), force=True)
            found = elements(ds, [])
            if not found:
                return None
            parent, element = rng.choice(found)
            action = rng.choice(("delete", "value", "value", "value"))
            if action == "delete":
                del parent[element.tag]
            elif element.VR == "SQ":
                action = rng.choice(("empty", "repeat", "nest"))
                items = element.value
                if action == "empty" or not items:
                    element.value = []
                elif action == "repeat":
                    # bounded before copying: 3,000 copies of a large contour item would take the parent's memory
                    repeats = min(rng.choice((2, 100, 3000)), MAX_EDITED_BYTES // max(1, len(seed.raw)))
                    element.value = [copy.deepcopy(items[0]) for _ in range(max(2, repeats))]
                else:
                    inner = items[0]
                    for _ in range(rng.choice((20, 150))):
                        outer = Dataset()
                        outer.ValueType = "CONTAINER"
                        setattr(outer, element.keyword or "ContentSequence", [inner])
                        inner = outer
                    element.value = [inner]
            else:
                element.value = _hostile_value(rng, element)
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=False)
    except Exception:  # noqa: BLE001 - some values cannot be written with some VRs: another mutation then
        return None
    if out.tell() > MAX_EDITED_BYTES:
        return None
    return out.getvalue(), f"deep:{element.keyword or element.tag}:{action}"


_RAW_MUTATORS = (_flip, _flip, _truncate, _length, _length, _fragment_length, _syntax, _nest, _codestream,
                 _codestream)


def mutate(seed: Seed, rng: random.Random, structured: float = 0.0) -> tuple[bytes, str]:
    """One mutated copy of ``seed``: one to three operators, chosen by ``rng``; ``structured`` is the share of
    operators that edit an element anywhere in the tree (:func:`_deep_edit`)."""
    ops: list[str] = []
    raw = bytearray(seed.raw)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if not raw:  # truncated to nothing (seed 103): that empty file is the case
            break
        # Once nested deep, pydicom cannot write it again: its writer recurses and chains its error messages,
        # which took the campaign's memory (24 GB) or crashed it (a segfault formatting them).
        rewritable = not any(op.startswith("nest") or op.endswith(":nest") for op in ops)
        if structured and rng.random() < structured and rewritable:
            edited = _deep_edit(rng, Seed(seed.path, seed.syntax, bytes(raw), seed.private, seed.group))
            if edited is not None:
                raw = bytearray(edited[0])
                ops.append(edited[1])
                continue
        if rng.random() < 0.3 and rewritable:
            edited = _tag_edit(rng, Seed(seed.path, seed.syntax, bytes(raw), seed.private, seed.group))
            if edited is not None:
                raw = bytearray(edited[0])
                ops.append(edited[1])
                continue
        ops.append(rng.choice(_RAW_MUTATORS)(rng, raw))
    return bytes(raw), "+".join(ops)


def _write(name: str, data: bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return build


def mutated_cases(seeds: list[Seed], count: int, seed: int) -> Iterator[Case]:
    """``count`` mutations of the seeds (round robin over the seeds, operators from the seed)."""
    for n in range(count):
        source = seeds[n % len(seeds)]
        rng = random.Random(seed * 1_000_003 + n)
        data, kind = mutate(source, rng)
        yield Case(f"m{n:05d}", kind, source.syntax, _write("case.dcm", data), source.private,
                   str(source.path.relative_to(DATA)))


def seg_seeds(data: Path = DATA) -> list[tuple[Seed, Any]]:
    """Each real DICOM SEG under ``data/seg-rtstruct`` whose referenced series is there too, with that series
    loaded (the children inherit it)."""
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan
    from viewer.core.editing import io  # noqa: F401 - the reader (and highdicom) imported once, before the forks

    catalog = scan([data / "seg-rtstruct"])
    images = {s.uid: s for s in catalog.all_series() if s.kind == "image"}
    volumes: dict[str, Any] = {}
    pairs = []
    for series in sorted((s for s in catalog.all_series() if s.kind == "seg"), key=lambda s: s.key):
        for header in series.instances:
            uid = next((u for u in header.referenced_series_uids if u in images), None)
            if uid is None:
                continue
            if uid not in volumes:
                volumes[uid] = load_series(images[uid])
            path = Path(header.path)
            private = tuple(v for v in (header.patient_name, header.patient_id) if len(v.strip()) >= 4)
            pairs.append((Seed(path, header.transfer_syntax_uid, path.read_bytes(), private, "seg"), volumes[uid]))
    return pairs


def run_seg_case(target: str, private: tuple[str, ...], volume: Any) -> tuple[str, str]:
    """Open the SEG ``target`` over ``volume`` as the viewer does; ``(outcome, detail)`` (see the module doc)."""
    from viewer.core.editing.io import open_seg

    try:
        segmentation = open_seg(target, volume)
    except ValueError as error:
        detail, outcome = str(error), "refused"
    else:
        detail, outcome = f"{len(segmentation)} segment(s)", "ok"
    return _checked(outcome, detail, [detail], private)


def seg_cases(pairs: list[tuple[Seed, Any]], count: int, seed: int) -> Iterator[Case]:
    """``count`` mutations of the SEG seeds, each opened over its referenced volume."""
    return _object_cases(pairs, count, seed, "s", lambda source, volume: functools.partial(run_seg_case,
                                                                                            volume=volume))


def _object_cases(pairs: list[tuple[Seed, Any]], count: int, seed: int, prefix: str,
                  runner: Callable[[Seed, Any], Callable[[str, tuple[str, ...]], tuple[str, str]]]) -> Iterator[Case]:
    """``count`` mutations of the seeds (round robin), half the operators editing elements anywhere in the tree;
    ``runner(seed, volume)`` is what a case runs."""
    for n in range(count):
        source, volume = pairs[n % len(pairs)]
        data, kind = mutate(source, random.Random(seed * 1_000_003 + n), structured=0.5)
        yield Case(f"{prefix}{n:05d}", kind, source.syntax, _write(source.path.name, data), source.private,
                   str(source.path.relative_to(DATA)), runner(source, volume))


def report_seeds(data: Path = DATA) -> list[tuple[Seed, Any]]:
    """Each real RT Structure Set and SR under ``data/seg-rtstruct``, with the volume it is read over: the series it
    references where that is there, else the first such series (a report over the wrong grid is a case too)."""
    from viewer.core import rtstruct  # noqa: F401 - the readers (and highdicom) imported once, before the forks
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan
    from viewer.core.export import sr, sr_measurements  # noqa: F401

    catalog = scan([data / "seg-rtstruct"])
    images = {s.uid: s for s in catalog.all_series() if s.kind == "image"}
    volumes: dict[str, Any] = {}
    pairs = []
    for series in sorted((s for s in catalog.all_series() if s.kind in ("rtstruct", "sr")), key=lambda s: s.key):
        for header in series.instances:
            uid = next((u for u in header.referenced_series_uids if u in images), None) or min(images)
            if uid not in volumes:
                volumes[uid] = load_series(images[uid])
            path = Path(header.path)
            private = tuple(v for v in (header.patient_name, header.patient_id) if len(v.strip()) >= 4)
            pairs.append((Seed(path, header.transfer_syntax_uid, path.read_bytes(), private, series.kind),
                          volumes[uid]))
    return pairs


def run_report_case(target: str, private: tuple[str, ...], volume: Any, kind: str) -> tuple[str, str]:
    """Read the RT Structure Set or SR ``target`` over ``volume`` as the viewer does - the structures placed on
    every slice of the three planes, the SR's measurements placed on the volume and, for the batch runner, its
    nodule findings read; ``(outcome, detail)`` (see the module doc)."""
    if kind == "rtstruct":
        from viewer.core.rtstruct import RTStructOnVolume, read_rtstruct_set

        try:
            structure_set = read_rtstruct_set(target)
        except ValueError as error:
            return _checked("refused", str(error), [str(error)], private)
        mapped = RTStructOnVolume(structure_set.rois, volume)
        drawn = sum(len(mapped.on_slice(k, axis)) for axis in range(3) for k in mapped.slices(axis))
        detail = f"{len(structure_set.rois)} ROI(s), {drawn} contour(s) drawn"
        return _checked("ok", detail, [detail, structure_set.label], private)
    from viewer.core.export.sr import read_measurements
    from viewer.core.export.sr_measurements import load_measurements

    placed = load_measurements(target, volume)
    texts = list(placed.problems)
    try:
        texts.append(f"{len(read_measurements(target))} nodule finding(s)")
    except ValueError as error:
        texts.append(str(error))
    outcome = "ok" if placed.measurements or not placed.problems else "refused"
    return _checked(outcome, f"{len(placed.measurements)} measurement(s); " + "; ".join(texts), texts, private)


def report_cases(pairs: list[tuple[Seed, Any]], count: int, seed: int) -> Iterator[Case]:
    """``count`` mutations of the RT Structure Set and SR seeds, each read over its volume."""
    return _object_cases(pairs, count, seed, "r", lambda source, volume: functools.partial(
        run_report_case, volume=volume, kind=source.group))


# ---------------------------------------------------------------------------------------- targeted cases
def _dataset_edit(src: Path, **changes) -> bytes:
    import io

    import pydicom

    ds = pydicom.dcmread(src)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def _targeted_builders(data: Path) -> list[tuple[str, Callable[[Path], Path]]]:
    ct = data / "ts-cornerstone-ct" / "CTImage.dcm_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm"
    jpeg = data / "ts-pylibjpeg-data" / "JPEGBaseline" / "JPEGBaseline_1s_1f_u_08_08.dcm"
    jpegls = data / "ts-pylibjpeg-data" / "JPEGLS" / "CT1_JLSN.dcm"
    j2k = data / "ts-pylibjpeg-data" / "JPEG2000Lossless" / "JPEG2KLossless_1s_1f_u_16_16.dcm"
    rle = data / "ts-pylibjpeg-data" / "RLELossless" / "emri_small_RLE.dcm"
    jpeg_lossless = data / "ts-cornerstone-ct" / "CTImage.dcm_JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70.dcm"
    enhanced = data / "enh-multiframe" / "pydicom-data" / "eCT_Supplemental.dcm"

    def frames(value: str, src: Path = ct) -> Callable[[Path], Path]:
        return lambda folder: _put(folder, "case.dcm", _dataset_edit(src, NumberOfFrames=value))

    def sized(rows: int) -> Callable[[Path], Path]:
        return lambda folder: _put(folder, "case.dcm", _dataset_edit(ct, Rows=rows, Columns=rows))

    def codestream(src: Path, size: int) -> Callable[[Path], Path]:
        def build(folder: Path) -> Path:
            raw = bytearray(src.read_bytes())
            at = _codestream_offsets(bytes(raw))[0]
            if raw[at:at + 2] == b"\xff\xd8":
                sof = next(i for i in range(at, at + 4096) if raw[i] == 0xFF and raw[i + 1] in (0xC0, 0xC1, 0xC3, 0xF7))
                raw[sof + 5:sof + 9] = size.to_bytes(2, "big") * 2
            else:
                raw[at + 8:at + 16] = size.to_bytes(4, "big") * 2
            return _put(folder, "case.dcm", bytes(raw))
        return build

    def rle_panic(folder: Path) -> Path:
        import pydicom
        from pydicom.encaps import encapsulate, generate_frames

        ds = pydicom.dcmread(rle)
        parts = [bytearray(f) for f in generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames))]
        parts[3][8] = 0xFE  # pylibjpeg-rle panics (Rust) on this segment offset
        ds.PixelData = encapsulate([bytes(p) for p in parts])
        ds.save_as(folder / "case.dcm")
        return folder / "case.dcm"

    def deflated(trailer: bytes, zeros_mib: int) -> Callable[[Path], Path]:
        """The CT deflated, then ``trailer`` and ``zeros_mib`` MiB of zeros in the same deflate stream."""
        def build(folder: Path) -> Path:
            import pydicom
            from pydicom.filebase import DicomBytesIO
            from pydicom.filewriter import write_file_meta_info

            raw = ct.read_bytes()
            start = _dataset_start(raw)
            file_meta = pydicom.dcmread(ct, stop_before_pixels=True).file_meta
            file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1.99"
            buffer = DicomBytesIO()
            write_file_meta_info(buffer, file_meta, enforce_standard=True)
            meta = b"\0" * 128 + b"DICM" + buffer.getvalue()
            squash = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
            body = squash.compress(raw[start:] + trailer)
            zeros = bytes(1 << 20)
            body += b"".join(squash.compress(zeros) for _ in range(zeros_mib)) + squash.flush()
            return _put(folder, "case.dcm", meta + body)
        return build

    def dicomdir(reference: str) -> Callable[[Path], Path]:
        def build(folder: Path) -> Path:
            import pydicom

            media = folder / "media"
            shutil.copytree(data / "dicomdir-pydicom" / "98892001", media / "98892001")
            shutil.copy(ct, folder / "outside.dcm")
            ds = pydicom.dcmread(data / "dicomdir-pydicom" / "DICOMDIR")
            for record in ds.DirectoryRecordSequence:
                if "ReferencedFileID" in record:
                    record.ReferencedFileID = (["..", "outside.dcm"] if reference == "dotdot"
                                               else [str(folder / "outside.dcm")])
            ds.save_as(media / "DICOMDIR")
            return media / "DICOMDIR"
        return build

    def special_files(folder: Path) -> Path:
        study = folder / "study"
        study.mkdir()
        shutil.copy(ct, study / "ct.dcm")
        os.mkfifo(study / "fifo.dcm")
        (study / "out.dcm").symlink_to(jpeg)
        (study / "dev").symlink_to("/dev/zero")
        return study

    return [
        ("frames_2^31", frames("2147483647")),
        ("frames_1e9_enhanced", frames("1000000000", enhanced)),
        ("rows_cols_65535", sized(65535)),
        ("jpeg_sof_65500", codestream(jpeg, 65500)),
        ("jpeg_sof_zero", codestream(jpeg, 0)),
        ("jpeg_precision_144", lambda folder: _put(folder, "case.dcm", _jpeg_precision(jpeg_lossless, 144))),
        ("jpegls_sof_65500", codestream(jpegls, 65500)),
        ("j2k_siz_65500", codestream(j2k, 65500)),
        ("rle_rust_panic", rle_panic),
        ("deflate_bomb_1GiB", deflated(b"\x09\x00\x10\x10OB\x00\x00" + (1 << 30).to_bytes(4, "little"), 1024)),
        # the zeros after the pixel data's end parse as empty 8-byte elements: 33 million of them before the cap
        ("deflate_flood_256MiB", deflated(b"", 256)),
        ("dicomdir_dotdot", dicomdir("dotdot")),
        ("dicomdir_absolute", dicomdir("absolute")),
        ("fifo_symlink_device", special_files),
        ("non_orthogonal", lambda folder: _put(folder, "case.dcm", _dataset_edit(
            ct, ImageOrientationPatient=[1, 0, 0, 0.2, 0.9797959, 0]))),
        ("nesting_20000", lambda folder: _put(folder, "case.dcm", _insert_nesting(ct.read_bytes(), 20000))),
    ]


def _jpeg_precision(src: Path, bits: int) -> bytes:
    raw = bytearray(src.read_bytes())
    at = raw.index(b"\xff\xc3", _codestream_offsets(bytes(raw))[0])
    raw[at + 4] = bits  # GDCM crashed on 144 (found by seed 11)
    return bytes(raw)


def _insert_nesting(raw: bytes, depth: int) -> bytes:
    start = _dataset_start(raw)
    return raw[:start] + _nested_sequence(depth, True) + raw[start:]


def _put(folder: Path, name: str, data: bytes) -> Path:
    (folder / name).write_bytes(data)
    return folder / name


def targeted_cases(data: Path = DATA) -> list[Case]:
    """The hostile inputs issue 10 names, each built from a real file."""
    return [Case(f"t-{name}", name, "", build) for name, build in _targeted_builders(data)]


# ------------------------------------------------------------------------------------------------ a case
def run_case(target: str, private: tuple[str, ...] = ()) -> tuple[str, str]:
    """What ``hounsfield info`` does, then a uint8 render of the middle slice; ``(outcome, detail)``.

    Runs in the forked child. Any exception other than the readers' own refusals propagates (traceback).
    """
    import numpy as np

    from viewer.core.dicom.catalog import default_image_series
    from viewer.core.dicom.decode import DecodeError
    from viewer.core.dicom.limits import SizeLimitError
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan
    from viewer.core.windowing import apply_window, initial_window

    catalog = scan(target)
    texts = [u.reason for u in catalog.unreadable]
    outcome, detail = "refused", ""
    series = default_image_series(catalog)
    if series is None:
        kinds = sorted({f"{s.kind} ({s.n_instances} file(s))" for s in catalog.all_series()})
        detail = texts[0] if texts else f"no image series; read as {', '.join(kinds) or 'nothing'}"
    else:
        try:
            volume = load_series(series)
        except (DecodeError, SizeLimitError) as error:
            detail = str(error)
        else:
            texts += [w.message for w in volume.warnings]
            image = volume.array[volume.shape[0] // 2]
            window, _ = initial_window(volume)
            shown = image if image.ndim == 3 else apply_window(image, window)
            if shown.dtype != np.uint8 or shown.shape[:2] != image.shape[:2]:
                raise AssertionError(f"render gave {shown.dtype} {shown.shape} for {image.shape}")
            outcome = "ok"
            detail = ",".join(sorted({w.code for w in volume.warnings}))
    texts.append(detail)
    return _checked(outcome, detail, texts, private)


def _checked(outcome: str, detail: str, texts: list[str], private: tuple[str, ...]) -> tuple[str, str]:
    """``(outcome, detail)``, unless a text holds a MemoryError (memory) or quotes the patient (traceback)."""
    if any("MemoryError" in t for t in texts):
        return "memory", next(t for t in texts if "MemoryError" in t)
    # Whole tokens only: a PatientID of "00000000" is not leaked by "declares 1000000000 frames".
    import re

    leaked = [p for p in private if any(re.search(rf"(?<![0-9A-Za-z]){re.escape(p)}(?![0-9A-Za-z])", t)
                                        for t in texts)]
    if leaked:
        return "traceback", "a reason quotes the patient's name or ID"
    return outcome, detail


def _child(case_dir: Path, target: str, case: Case, timeout: int) -> None:
    code, detail = _EXIT["traceback"], ""
    try:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
        signal.alarm(timeout)  # default action: the child dies of SIGALRM - a hang
        log = os.open(case_dir / "stderr.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(log, 1)
        os.dup2(log, 2)
        outcome, detail = (case.run or run_case)(target, case.private)
        code = _EXIT[outcome]
    except MemoryError:
        code, detail = _EXIT["memory"], "MemoryError"
    except BaseException as error:  # noqa: BLE001 - whatever escaped is the finding
        code = _EXIT["traceback"]
        detail = "".join(traceback.format_exception(type(error), error, error.__traceback__)[-3:])
    try:
        (case_dir / "result.txt").write_text(detail[:4000])
    finally:
        os._exit(code)


def _classify(status: int, rss: int) -> str:
    if os.WIFSIGNALED(status):
        return "hang" if os.WTERMSIG(status) == signal.SIGALRM else "crash"
    outcome = _FROM_EXIT.get(os.WEXITSTATUS(status), "crash")
    if rss > RSS_LIMIT and outcome not in ("crash", "hang"):
        return "memory"
    return outcome


# -------------------------------------------------------------------------------------------- the runner
def run_campaign(cases: Iterator[Case] | list[Case], workdir: Path, workers: int = 2, timeout: int = 20,
                 keep_bad: bool = True, progress: Callable[[int, Result], None] | None = None) -> list[Result]:
    """Run every case in a forked child, ``workers`` at a time; returns one :class:`Result` per case.

    The cases of bad outcomes stay under ``workdir`` (with the child's stderr) when ``keep_bad``.
    """
    import viewer.core.dicom.load  # noqa: F401 - imported once here, inherited by every child
    import viewer.core.dicom.scan  # noqa: F401
    import viewer.core.windowing  # noqa: F401

    results: list[Result] = []
    running: dict[int, tuple[Case, Path, float]] = {}
    cases = iter(cases)
    exhausted = False
    while True:
        while not exhausted and len(running) < workers:
            case = next(cases, None)
            if case is None:
                exhausted = True
                break
            case_dir = workdir / case.name
            case_dir.mkdir(parents=True, exist_ok=True)
            try:
                target = str(case.build(case_dir))
            except Exception as error:  # noqa: BLE001 - a generator bug is not the reader's: say so, go on
                print(f"   could not build {case.name} ({case.kind}): {error!r}", file=sys.stderr)
                shutil.rmtree(case_dir, ignore_errors=True)
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(case_dir, target, case, timeout)
            running[pid] = (case, case_dir, time.perf_counter())
        if not running:
            break
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        case, case_dir, started = running.pop(pid)
        rss = usage.ru_maxrss * 1024  # KiB on Linux
        outcome = _classify(status, rss)
        result_file = case_dir / "result.txt"
        detail = result_file.read_text(errors="replace") if result_file.exists() else ""
        if outcome in ("crash", "hang"):
            err = case_dir / "stderr.txt"
            detail = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else
                      f"exit {os.WEXITSTATUS(status)}") + (" " + err.read_text(errors="replace")[-300:]
                                                           if err.exists() else "")
        if outcome == "memory" and rss > RSS_LIMIT:
            detail = f"peak RSS {rss / 2**30:.1f} GiB; {detail}"
        result = Result(case, outcome, detail.strip(), time.perf_counter() - started, rss)
        results.append(result)
        if progress is not None:
            progress(len(results), result)
        if outcome not in BAD or not keep_bad:
            shutil.rmtree(case_dir, ignore_errors=True)
    return results


def table(results: list[Result]) -> str:
    """The outcome table: by case family (targeted / mutated by operator) and by seed transfer syntax."""
    lines = []
    width = max(len(o) for o in OUTCOMES)

    def row(label: str, rs: list[Result]) -> str:
        counts = collections.Counter(r.outcome for r in rs)
        return f"{label:<34}" + "".join(f"{counts.get(o, 0):>{width + 2}}" for o in OUTCOMES) + f"{len(rs):>8}"

    header = f"{'':<34}" + "".join(f"{o:>{width + 2}}" for o in OUTCOMES) + f"{'total':>8}"
    lines.append(header)
    targeted = [r for r in results if r.case.name.startswith("t-")]
    mutated = [r for r in results if not r.case.name.startswith("t-")]
    for r in targeted:
        lines.append(row(f"targeted {r.case.kind}", [r]))
    by_op: dict[str, list[Result]] = collections.defaultdict(list)
    for r in mutated:
        for op in {o.split(":")[0].rstrip("0123456789") for o in r.case.kind.split("+")}:
            by_op[op].append(r)
    for op in sorted(by_op):
        lines.append(row(f"mutation {op}", by_op[op]))
    by_ts: dict[str, list[Result]] = collections.defaultdict(list)
    for r in mutated:
        by_ts[r.case.syntax].append(r)
    for ts in sorted(by_ts):
        lines.append(row(f"syntax {ts}", by_ts[ts]))
    lines.append(row("ALL", results))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--cases", type=int, default=2500, help="mutated files (the targeted cases come on top)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=20, help="seconds a case may take before it is a hang")
    parser.add_argument("--keep", type=Path, help="folder for the cases (kept there when bad); default: a temp dir")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--seg", action="store_true", help="mutate the real SEGs and open each over its volume")
    mode.add_argument("--reports", action="store_true",
                      help="mutate the real RT Structure Sets and SRs and read each over a volume")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"fuzz: no real data at {DATA} (clone with ../shared beside the repo)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    cases: Iterator[Case]
    if args.seg or args.reports:
        seeds, make, what = ((seg_seeds, seg_cases, "SEGs opened over their referenced series") if args.seg else
                             (report_seeds, report_cases, "RT Structure Sets and SRs read over a volume"))
        pairs = seeds()
        print(f"fuzz: seed {args.seed}, {len(pairs)} {what}, {args.cases} mutations, {args.workers} workers, "
              f"{args.timeout} s and {ADDRESS_SPACE >> 30} GiB address space a case", flush=True)
        cases = make(pairs, args.cases, args.seed)
    else:
        seeds = collect_seeds()
        syntaxes = sorted({s.syntax for s in seeds})
        print(f"fuzz: seed {args.seed}, {len(seeds)} seed files over {len(syntaxes)} transfer syntaxes, "
              f"{args.cases} mutations + {len(_targeted_builders(DATA))} targeted cases, {args.workers} workers, "
              f"{args.timeout} s and {ADDRESS_SPACE >> 30} GiB address space a case", flush=True)
        cases = itertools.chain(targeted_cases(), mutated_cases(seeds, args.cases, args.seed))
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="hounsfield-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)

    def progress(n: int, result: Result) -> None:
        if result.outcome in BAD:
            print(f"   {result.outcome.upper()}: {result.case.name} {result.case.kind} "
                  f"[{result.case.seed_file}] {result.detail[-400:]!r}", flush=True)
        if n % 250 == 0:
            print(f"   {n} cases, {time.perf_counter() - started:.0f} s", flush=True)

    results = run_campaign(cases, workdir, args.workers, args.timeout, progress=progress)
    print(table(results))
    slowest = max(results, key=lambda r: r.seconds)
    print(f"{len(results)} cases in {time.perf_counter() - started:.0f} s; slowest {slowest.case.name} "
          f"({slowest.case.kind}) {slowest.seconds:.1f} s; peak RSS {max(r.rss for r in results) / 2**20:.0f} MiB")
    reasons = collections.Counter(_normalised(r.detail) for r in results if r.outcome == "refused")
    print("most common refusal reasons:")
    for reason, count in reasons.most_common(12):
        print(f"  {count:>5}  {reason}")
    bad = [r for r in results if r.outcome in BAD]
    if bad:
        print(f"FAILED: {len(bad)} bad outcomes; cases kept under {workdir}")
        return 1
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _normalised(text: str) -> str:
    import re

    text = re.sub(r"/\S+", "<path>", text)
    return re.sub(r"\d+(\.\d+)?", "N", text)[:110]


if __name__ == "__main__":
    raise SystemExit(main())
