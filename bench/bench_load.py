"""Load speed and memory: a 512x512x300 CT series through our loader vs SimpleITK, pydicom and a raw read.

All measured in the same run on a warm cache, best of 3:

* raw: read each file and ``np.frombuffer`` its last 512 KiB into a preallocated int16 volume (the floor);
* pydicom: ``dcmread`` + ``pixel_array`` file by file into a preallocated int16 volume (rescale applied);
* SimpleITK: ``ImageSeriesReader`` with int16 output (file names sorted beforehand, outside the timing);
* ours: :func:`viewer.core.dicom.load.load_series` on the series from our scan (scanned outside the timing).

Peak RSS of our load is measured in a fresh subprocess (``ru_maxrss``) and compared with the volume's size.
Targets (issue 2, section 5): load <= 0.4x SimpleITK; peak RSS <= 1.5x the volume + 300 MB.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.common import best_of, warm_cache

SHAPE = (300, 512, 512)


def make_series(workdir: Path) -> Path:
    """Generate (once, cached under ``workdir``) the 300-slice 512x512 synthetic CT series."""
    from viewer.core.dicom.synthetic import phantom_ct, write_series

    folder = Path(workdir) / f"load_ct_{SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]}"
    done = Path(workdir) / f"{folder.name}.complete"
    if done.exists() and folder.is_dir():
        return folder
    write_series(folder, phantom_ct(SHAPE))
    done.write_text("ok\n")
    return folder


def _files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.glob("*.dcm"))






def _raw(files: list[str]):
    import numpy as np

    frame_bytes = SHAPE[1] * SHAPE[2] * 2
    out = np.empty(SHAPE, np.int16)
    for k, path in enumerate(files):
        with open(path, "rb") as f:
            data = f.read()
        out[k] = np.frombuffer(data, np.int16, count=SHAPE[1] * SHAPE[2], offset=len(data) - frame_bytes).reshape(
            SHAPE[1:])
    return out


def _pydicom(files: list[str]):
    import numpy as np
    import pydicom

    out = np.empty(SHAPE, np.int16)
    for k, path in enumerate(files):
        ds = pydicom.dcmread(path)
        out[k] = ds.pixel_array  # uint16 stored values below 32768: exact in int16
        out[k] *= int(ds.RescaleSlope)
        out[k] += int(ds.RescaleIntercept)
    return out


def _sitk(files: list[str]):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.SetOutputPixelType(sitk.sitkInt16)
    return reader.Execute()


# ru_maxrss survives exec on Linux (the child inherits the high-water mark of the forked parent), so the child
# also reports VmHWM, the peak of its own address space, and the parent starts it before holding any volume.
_RSS_CHILD = r"""
import json, resource, sys, time


def hwm_kib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


from viewer.core.dicom.scan import scan
from viewer.core.dicom.load import load_series
series = scan(sys.argv[1]).all_series()[0]
before = hwm_kib() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
volume = load_series(series)
elapsed = time.perf_counter() - start
print(json.dumps({"before_kib": before, "hwm_kib": hwm_kib(),
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "volume_bytes": volume.array.nbytes, "seconds": elapsed}))
"""


def _peak_rss(folder: Path) -> dict:
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(folder)], cwd=repo, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(workdir: Path) -> list[str]:
    """Generate/cache the series, warm the cache, time each reader (best of 3); lines to print."""
    import numpy as np
    import SimpleITK as sitk

    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan

    folder = make_series(Path(workdir))
    files = _files(folder)
    warm_cache(files)
    rss = _peak_rss(folder)  # first, while this process is still small (see _RSS_CHILD)
    sitk_files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    series = scan(folder).all_series()[0]
    volume_mb = np.prod(SHAPE) * 2 / 1e6

    t_raw, _ = best_of(lambda: _raw(files))
    t_pyd, pyd = best_of(lambda: _pydicom(files))
    t_sitk, image = best_of(lambda: _sitk(sitk_files))
    t_ours, volume = best_of(lambda: load_series(series))
    t_ours_2, _ = best_of(lambda: load_series(series, workers=2))

    # The figures mean nothing unless all readers agree on every voxel.
    ours = volume.array
    assert ours.dtype == np.int16 and ours.shape == SHAPE, (ours.dtype, ours.shape)
    assert np.array_equal(ours, pyd), "ours differs from pydicom"
    assert np.array_equal(ours, sitk.GetArrayViewFromImage(image)), "ours differs from SimpleITK"
    del pyd, image, volume, ours

    peak_kib = rss["hwm_kib"] or rss["maxrss_kib"]
    peak_mb = peak_kib * 1024 / 1e6
    limit_mb = 1.5 * rss["volume_bytes"] / 1e6 + 300
    return [
        f"series: {len(files)} files, {SHAPE[2]}x{SHAPE[1]}x{SHAPE[0]} int16 ({volume_mb:.0f} MB)",
        f"raw read + np.frombuffer:         {t_raw:.3f} s",
        f"pydicom sequential (int16):       {t_pyd:.3f} s",
        f"SimpleITK ImageSeriesReader int16: {t_sitk:.3f} s",
        f"hounsfield load_series:           {t_ours:.3f} s  (forced 2 threads: {t_ours_2:.3f} s)",
        f"ratio ours / SimpleITK: {t_ours / t_sitk:.2f}x (target <= 0.40x)",
        f"ratio ours / pydicom:   {t_ours / t_pyd:.2f}x",
        f"ratio ours / raw read:  {t_ours / t_raw:.2f}x",
        f"peak RSS of a fresh load: {peak_mb:.0f} MB (after imports + scan: {rss['before_kib'] * 1024 / 1e6:.0f} MB;"
        f" ru_maxrss {rss['maxrss_kib'] * 1024 / 1e6:.0f} MB; limit 1.5 x volume + 300 MB = {limit_mb:.0f} MB)"
        f" -> {peak_mb / limit_mb:.2f} of the limit",
    ]


if __name__ == "__main__":
    for line in run(Path(__file__).resolve().parent / "out"):
        print(line)
