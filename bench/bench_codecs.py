"""Compressed-series speed: whole ``hounsfield info`` processes vs SimpleITK and pydicom, per transfer syntax.

LIDC-IDRI-0001 (133 slices, 512x512, from ../shared/data) is re-encoded losslessly with pydicom in each syntax
our encoders can write (RLE via pylibjpeg-rle, JPEG-LS via pyjpegls, JPEG 2000 via openjpeg), cached under
bench/out/. For each syntax three whole processes are timed, because that is what a user waits for - imports
and process-pool start-up count:

* ours: ``python -m viewer info FOLDER`` (scan + load + print);
* SimpleITK: a process that reads the series with ``ImageSeriesReader`` (file list from GDCM, int16 output);
* pydicom: a process that decodes the files with ``dcmread`` + ``pixel_array`` in 2 worker processes.

Each is run several times and the best wall time is kept (the target machine has 2 cores; other work on it
shows up as noise). Target: ours <= 1.0x the best of SimpleITK and pydicom, per syntax.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.common import warm_cache

REPO = Path(__file__).resolve().parents[1]
LIDC = REPO.parent / "shared" / "data" / "lidc-idri-0001"
#: (short name, pydicom UID name) of the syntaxes re-encoded; each needs an installed encoder plugin.
SYNTAXES = (
    ("rle", "RLELossless"),
    ("jpeg-ls", "JPEGLSLossless"),
    ("jpeg2000", "JPEG2000Lossless"),
)
REPEATS = 7


def source_files() -> list[Path]:
    """The LIDC-IDRI-0001 CT slices (empty when ../shared/data is absent)."""
    return sorted(LIDC.rglob("*.dcm")) if LIDC.is_dir() else []


def make_reencoded(workdir: Path, syntax: str) -> Path:
    """Re-encode LIDC-IDRI-0001 losslessly into ``syntax`` (a key of :data:`SYNTAXES`), once, cached."""
    import pydicom
    from pydicom import uid as uids

    folder = Path(workdir) / f"codecs_lidc0001_{syntax}"
    done = Path(workdir) / f"{folder.name}.complete"
    if done.exists() and folder.is_dir():
        return folder
    files = source_files()
    if not files:
        raise FileNotFoundError(f"{LIDC} is absent: the codec bench needs the real LIDC-IDRI-0001 series")
    transfer_syntax = getattr(uids, dict(SYNTAXES)[syntax])
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.compress(transfer_syntax)
        ds.save_as(folder / path.name, enforce_file_format=True)
    done.write_text("ok\n")
    return folder


# Reference processes: each reads the whole series into one int16 volume, as `hounsfield info` does.
_SITK_CHILD = r"""
import sys
import SimpleITK as sitk
reader = sitk.ImageSeriesReader()
reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(sys.argv[1]))
reader.SetOutputPixelType(sitk.sitkInt16)
image = reader.Execute()
print(image.GetSize())
"""

_PYDICOM_CHILD = r"""
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import numpy as np
import pydicom


def read(path):
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.int16)
    hu *= int(ds.RescaleSlope)
    hu += int(ds.RescaleIntercept)
    return float(ds.ImagePositionPatient[2]), hu


if __name__ == "__main__":
    files = sorted(str(p) for p in Path(sys.argv[1]).glob("*.dcm"))
    with ProcessPoolExecutor(2) as pool:
        slices = sorted(pool.map(read, files, chunksize=8), key=lambda item: item[0])
    volume = np.empty((len(slices),) + slices[0][1].shape, np.int16)
    for k, (_, hu) in enumerate(slices):
        volume[k] = hu
    print(volume.shape)
"""


def _whole_process(args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and every process it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(args, cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _per_frame_ms(folder: Path, count: int = 12) -> dict[str, float]:
    """Milliseconds per frame of each installed decoder on ``count`` slices (in this process, best of 2)."""
    import numpy as np
    import pydicom
    import SimpleITK as sitk

    from viewer.core.dicom import codecs
    from viewer.core.dicom.decode import read_pixel_header
    from viewer.core.dicom.encapsulated import EncapsulatedFrames

    files = sorted(folder.glob("*.dcm"))[:count]
    headers = [read_pixel_header(str(f)) for f in files]
    data = [EncapsulatedFrames(str(f), h.encapsulated_offset, 1).frame(0) for f, h in zip(files, headers)]
    timings: dict[str, float] = {}

    def timed(name: str, fn) -> None:
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            for k in range(len(files)):
                fn(k)
            best = min(best, time.perf_counter() - start)
        timings[name] = best / len(files) * 1e3

    for name, _module, decoder in codecs.RANKED[headers[0].transfer_syntax]:
        if name in codecs.decoders_for(headers[0].transfer_syntax):
            timed(name, lambda k, decoder=decoder: decoder(data[k], headers[k]))
    timed("pydicom pixel_array (whole file)", lambda k: pydicom.dcmread(files[k]).pixel_array)

    def gdcm(k: int) -> np.ndarray:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(files[k]))
        reader.SetImageIO("GDCMImageIO")
        return sitk.GetArrayViewFromImage(reader.Execute())

    timed("GDCM via SimpleITK (whole file)", gdcm)
    return timings


def _check_identical(folder: Path) -> str:
    """Ours on the re-encoded series must equal ours on the original (lossless): else the times mean nothing."""
    import numpy as np

    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan

    original = load_series(scan(LIDC).all_series()[0]).array
    for kw in ({}, {"processes": 0, "workers": 1}):
        again = load_series(scan(folder).all_series()[0], **kw).array
        if not np.array_equal(original, again):
            raise AssertionError(f"{folder.name} ({kw or 'default'}) differs from the original series")
    return "identical to the original"


def run(workdir: Path) -> list[str]:
    """Re-encode (cached), then time the three whole processes per syntax (best of REPEATS); lines to print."""
    if not source_files():
        return [f"skipped: {LIDC} is absent (the codec bench needs the real LIDC-IDRI-0001 series)"]
    lines = [f"LIDC-IDRI-0001, {len(source_files())} slices 512x512, lossless re-encodes; whole processes, best of "
             f"{REPEATS} (on a 2-core machine other work may share: noisy)"]
    rows = []
    for syntax, _ in SYNTAXES:
        folder = make_reencoded(Path(workdir), syntax)
        warm_cache([str(p) for p in folder.glob("*.dcm")])
        check = _check_identical(folder)
        frame_ms = _per_frame_ms(folder)
        commands = {
            "ours": [sys.executable, "-m", "viewer", "info", str(folder)],
            "sitk": [sys.executable, "-c", _SITK_CHILD, str(folder)],
            "pydicom": [sys.executable, "-c", _PYDICOM_CHILD, str(folder)],
        }
        best = {name: float("inf") for name in commands}
        cpu = dict(best)
        for _ in range(REPEATS):  # interleaved, so a burst of other work hits all three alike
            for name, args in commands.items():
                wall, used = _whole_process(args)
                best[name], cpu[name] = min(best[name], wall), min(cpu[name], used)
        reference = min(best["sitk"], best["pydicom"])
        rows.append((syntax, best, reference))
        lines.append(f"{syntax}: CPU seconds (all processes, least of {REPEATS}): "
                     + ", ".join(f"{name} {seconds:.2f}" for name, seconds in cpu.items()))
        lines.append(f"{syntax}: {check}; per frame " + ", ".join(f"{k} {v:.1f} ms" for k, v in frame_ms.items()))
    lines.append(f"{'syntax':<10} {'ours':>7} {'SimpleITK':>10} {'pydicom(2 proc)':>16} {'ours/best':>10}")
    for syntax, best, reference in rows:
        lines.append(f"{syntax:<10} {best['ours']:>6.2f}s {best['sitk']:>9.2f}s {best['pydicom']:>15.2f}s "
                     f"{best['ours'] / reference:>9.2f}x  (target <= 1.0x)")
    return lines


if __name__ == "__main__":
    for line in run(Path(__file__).resolve().parent / "out"):
        print(line)
