"""``hounsfield batch`` throughput: a plain loop beside Ray with 1 and 2 workers, on LIDC-sized studies.

Six phantom chest CTs at LIDC-IDRI-0001's size (133 x 512 x 512, 2.5 x 0.7 x 0.7 mm; cached under bench/out),
both built-in models (segmentation and nodule detection, one shared network run), one torch thread per worker:

1. The plain loop - the reference: load each series, run both models with ``infer_to_dir`` (what ``hounsfield
   infer`` does), models loaded once before the clock starts. Seconds per series.
2. ``hounsfield batch`` on a local Ray runtime with 1 worker, then 2 workers: start-up (the runtime and the
   workers loading their models) apart from the steady state (from the workers being ready to the last series
   written), series per minute, and Ray's overhead per series beside the plain loop.
3. Where Ray's time goes, per series: the object-store put of the volume and its headers on the driver, and the
   round trip beyond the worker's own time (scheduling, the argument's read from shared memory, the result's
   bytes back).

Target (issue 16): Ray adds at most 10 % per series on LIDC-sized studies. The machine's 2 cores are shared with
the driver's loading, the runtime's own processes, and anything else running, so 2 workers cannot quite double.
``BENCH_BATCH_SERIES`` sets how many studies (default 6).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

MODELS = ("hounsfield-chest-ct-segmentation", "hounsfield-chest-ct-nodule-detection")
GRID = {"shape": (133, 512, 512), "spacing": (2.5, 0.7, 0.7)}
SEEDS = (2, 3, 4, 5, 8, 9, 10, 11)


def _studies(workdir: Path, count: int) -> list[Path]:
    from viewer.core.sample import write_sample_study

    root = workdir / "batch-studies-133x512x512"
    studies = []
    for seed in SEEDS[:count]:
        folder = root / f"seed-{seed}"
        if not (folder / "dicom").is_dir():
            write_sample_study(folder, seed=seed, **GRID)
        studies.append(folder)
    return studies


def _plain_loop(studies: list[Path], out: Path) -> tuple[float, list[float]]:
    """Model load seconds, and seconds per series of load + both models + export, one after the other."""
    from inference.bundle import load_bundle
    from inference.device import configure_threads
    from inference.registry import find_model
    from viewer.core.dicom.scan import scan
    from viewer.core.run_model import infer_to_dir, pick_series

    configure_threads(1)
    start = time.perf_counter()
    bundles = [load_bundle(find_model(m), device="cpu") for m in MODELS]
    load = time.perf_counter() - start
    seconds = []
    for study in studies:
        start = time.perf_counter()
        series = pick_series(scan([study / "dicom"]))
        for bundle in bundles:
            infer_to_dir(series, bundle, out / study.name / bundle.info.id, threads=1)
        seconds.append(time.perf_counter() - start)
    return load, seconds


def _batch(studies: list[Path], out: Path, workers: int) -> dict:
    from viewer.services.batch.run import BatchOptions, run_batch

    return run_batch(BatchOptions(models=list(MODELS), sources=[str(s) for s in studies], sink=str(out),
                                  workers=workers, threads=1))


def _put_seconds(study: Path) -> tuple[float, float]:
    """Seconds to load one series on the driver, and to put it into a (fresh, local) object store."""
    import ray

    from viewer.services.batch.executors import start_local_ray
    from viewer.services.batch.sources import FolderSource

    source = FolderSource([study])
    (item,) = source.discover()
    start = time.perf_counter()
    loaded = source.load(item)
    load = time.perf_counter() - start
    start_local_ray(num_cpus=1)
    try:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            ref = ray.put(loaded)
            best = min(best, time.perf_counter() - start)
            del ref
    finally:
        ray.shutdown()
    return load, best


def run(workdir: Path):
    """Yield the report lines."""
    try:
        import ray  # noqa: F401
    except ImportError:
        yield "skipped: Ray is not installed (pip install 'hounsfield[batch]')"
        return
    count = int(os.environ.get("BENCH_BATCH_SERIES", "6"))
    start = time.perf_counter()
    studies = _studies(workdir, count)
    yield f"{count} phantom chest CTs of 133 x 512 x 512 (2.5 x 0.7 x 0.7 mm), ready in " \
          f"{time.perf_counter() - start:.0f} s; models: {', '.join(MODELS)}; 1 torch thread per worker"
    scratch = Path(tempfile.mkdtemp(prefix="bench-batch-", dir=workdir))
    try:
        model_load, plain = _plain_loop(studies, scratch / "plain")
        per_plain = sum(plain) / len(plain)
        yield f"plain loop:        {per_plain:6.2f} s per series ({60 / per_plain:5.2f} series/min; model load " \
              f"{model_load:.1f} s before the clock)"
        runs = {}
        for workers in (1, 2):
            summary = _batch(studies, scratch / f"ray-{workers}", workers)
            r = runs[workers] = summary["run"]
            assert summary["manifest"]["done"] == count, summary
            per = r["steady_s"] / r["finished"] * workers
            yield f"Ray, {workers} worker{'s' if workers > 1 else ' '}:     {r['steady_s'] / r['finished']:6.2f} s " \
                  f"per series wall ({r['steady_per_minute']:5.2f} series/min steady, {r['per_minute']:5.2f} with " \
                  f"start-up); start-up {r['startup_s']:.1f} s (runtime + models); per worker {per:.2f} s per series"
        one = runs[1]["steady_s"] / runs[1]["finished"]
        yield f"Ray overhead per series, 1 worker beside the plain loop: {100 * (one / per_plain - 1):+.1f} % " \
              f"(target <= 10 %), steady state; start-up once per run: {runs[1]['startup_s']:.1f} s"
        yield f"2 workers vs 1: {runs[2]['steady_per_minute'] / runs[1]['steady_per_minute']:.2f}x throughput on " \
              f"{os.cpu_count()} cores (the driver's loading and Ray's processes share them)"
        mean = runs[1]["mean_seconds"]
        load, put = _put_seconds(studies[0])
        beyond = mean.get("roundtrip", 0.0) - mean.get("worker", 0.0)
        yield f"where Ray's time goes, per series (1 worker): driver load {load:.2f} s (overlaps the worker), " \
              f"object-store put {put:.3f} s, round trip beyond the worker's own time {beyond:.3f} s, " \
              f"sink write {mean.get('send', 0.0):.3f} s; worker: infer {mean.get('infer', 0.0):.2f} s, " \
              f"export {mean.get('export', 0.0):.2f} s"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    for line in run(out):
        print(line, flush=True)
