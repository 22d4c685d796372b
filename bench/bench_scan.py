"""Scan speed: our header scan of a 3,000-file / 20-series folder vs SimpleITK's ``GetGDCMSeriesIDs``.

Also printed, all measured in the same run on a warm cache (best of 3): plain pydicom
``dcmread(stop_before_pixels=True)`` file by file, in threads and in processes, and our scan in threads and
in processes, so reading inline by default stays justified by numbers from the machine at hand.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from bench.common import best_of, warm_cache

N_SERIES = 20
FILES_PER_SERIES = 150
MATRIX = 128


def make_folder(workdir: Path) -> Path:
    """Generate (once, cached under ``workdir``) the 20 x 150-file folder of 128x128 synthetic CT."""
    from pydicom.uid import generate_uid

    from viewer.core.dicom.synthetic import phantom_ct, write_series

    # One flat folder, as GetGDCMSeriesIDs reads a single directory (it does not recurse).
    folder = Path(workdir) / f"scan_{N_SERIES}x{FILES_PER_SERIES}"
    done = Path(workdir) / f"scan_{N_SERIES}x{FILES_PER_SERIES}.complete"
    if done.exists() and folder.is_dir():
        return folder
    shutil.rmtree(folder, ignore_errors=True)  # a run interrupted half-way left a partial folder
    hu = phantom_ct((FILES_PER_SERIES, MATRIX, MATRIX), seed=1)
    study_uid = generate_uid()
    folder.mkdir(parents=True)
    for k in range(N_SERIES):
        staging = folder / f"_series_{k:02d}"
        for path in write_series(
            staging, hu, study_uid=study_uid, series_number=k + 1, description=f"Bench series {k + 1}"
        ):
            path.rename(folder / f"S{k + 1:02d}_{path.name}")
        staging.rmdir()
    done.write_text("ok\n")
    return folder


def _files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*.dcm"))






def run(workdir: Path) -> list[str]:
    """Generate/cache the folder, warm the cache, time each reader (best of 3); lines to print."""
    import pydicom
    import SimpleITK as sitk

    from viewer.core.dicom import scan as scan_mod

    folder = make_folder(Path(workdir))
    warm_cache(_files(folder))
    n_files = len(_files(folder))
    lines = [f"folder: {n_files} files, {N_SERIES} series of {FILES_PER_SERIES} x {MATRIX}x{MATRIX}"]

    def ours(**kw):
        catalog = scan_mod.scan([folder], **kw)
        assert len(catalog.all_series()) == N_SERIES, "scan found the wrong number of series"
        return catalog

    cores = os.cpu_count() or 1
    t_ours, _ = best_of(ours)  # the default: inline
    t_sitk, ids = best_of(lambda: sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    assert len(ids) == N_SERIES, f"SimpleITK found {len(ids)} series"

    def pydicom_sequential():
        for path in _files(folder):
            pydicom.dcmread(path, stop_before_pixels=True)

    t_pyd, _ = best_of(pydicom_sequential)
    t_threads, _ = best_of(lambda: ours(workers=cores, executor="thread"))
    # The first process pool also starts the forkserver: reported apart from the best of 3.
    start = time.perf_counter()
    ours(workers=cores, executor="process")
    t_proc_first = time.perf_counter() - start
    t_proc, _ = best_of(lambda: ours(workers=cores, executor="process"))
    # The GIL-bound case the issue names: every file through pydicom, in threads vs processes.
    t_pyd_threads, _ = best_of(lambda: _pydicom_pool(folder, "thread", cores))
    t_pyd_procs, _ = best_of(lambda: _pydicom_pool(folder, "process", cores))

    lines += [
        f"hounsfield scan, inline (default):   {t_ours:.3f} s",
        f"hounsfield scan, {cores} threads:         {t_threads:.3f} s",
        f"hounsfield scan, {cores} processes:       {t_proc:.3f} s"
        f" (first call, starting workers: {t_proc_first:.3f} s)",
        f"SimpleITK GetGDCMSeriesIDs:          {t_sitk:.3f} s",
        f"pydicom dcmread sequential:          {t_pyd:.3f} s",
        f"pydicom dcmread, {cores} threads:         {t_pyd_threads:.3f} s",
        f"pydicom dcmread, {cores} processes:       {t_pyd_procs:.3f} s",
        f"ratio ours / SimpleITK: {t_ours / t_sitk:.2f}x (target <= 1.0x)",
    ]
    return lines


def _pydicom_headers(paths: list[str]) -> int:
    import pydicom

    for path in paths:
        pydicom.dcmread(path, stop_before_pixels=True)
    return len(paths)


def _pydicom_pool(folder: Path, executor: str, workers: int) -> None:
    from viewer.core.dicom import scan as scan_mod

    files = _files(folder)
    chunks = [files[i : i + 100] for i in range(0, len(files), 100)]
    with scan_mod._make_pool(executor, workers) as pool:
        assert sum(pool.map(_pydicom_headers, chunks)) == len(files)


if __name__ == "__main__":
    for line in run(Path(__file__).resolve().parent / "out"):
        print(line)
