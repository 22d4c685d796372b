"""Run every benchmark (``python -m bench [NAME ...]``); generated data is cached under bench/out/."""
from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

BENCHES = ("bench_load", "bench_codecs", "bench_scan", "bench_view", "bench_infer", "bench_compare", "bench_pacs",
           "bench_batch")


def main(names: list[str]) -> int:
    workdir = Path(__file__).resolve().parent / "out"
    workdir.mkdir(exist_ok=True)
    for name in names or BENCHES:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        for line in module.run(workdir):
            print(f"   {line}", flush=True)
        print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
