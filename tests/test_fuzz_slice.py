"""CI slice of ``make fuzz`` (bench/fuzz.py): the targeted hostile cases of issue 10 plus a seeded handful of
mutations, each in a forked child with an address-space cap and a time limit. Under 2 minutes on 2 cores."""
from __future__ import annotations

import collections
import sys

import pytest

from bench import fuzz
from tests.conftest import data_path

pytestmark = pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="the fuzz runner forks (POSIX)")

SLICE_SEED = 7
SLICE_CASES = 150


def test_seeded_fuzz_slice_never_crashes_hangs_leaks_or_blows_up(tmp_path):
    data_path()  # skips with the reason when ../shared/data is absent
    seeds = fuzz.collect_seeds()
    assert len({s.syntax for s in seeds}) >= 12  # every transfer syntax folder is among the seeds
    cases = fuzz.targeted_cases() + list(fuzz.mutated_cases(seeds, SLICE_CASES, SLICE_SEED))
    results = fuzz.run_campaign(cases, tmp_path, workers=2, timeout=20)
    print(fuzz.table(results), file=sys.stderr)
    assert len(results) == len(cases)
    bad = [f"{r.outcome}: {r.case.name} {r.case.kind} [{r.case.seed_file}] {r.detail[-300:]}"
           for r in results if r.outcome in fuzz.BAD]
    assert not bad, "\n".join(bad)
    counts = collections.Counter(r.outcome for r in results)
    assert counts["ok"] >= 10 and counts["refused"] >= 10  # the mutations both pass and get refused
    targeted = {r.case.kind: r for r in results if r.case.name.startswith("t-")}
    assert "declares 2147483647 frames but holds 1" in targeted["frames_2^31"].detail
    assert "expands beyond" in targeted["deflate_bomb_1GiB"].detail
    assert targeted["rle_rust_panic"].outcome == "ok"  # nine good frames, one blank with a warning
    assert "decode_failed" in targeted["rle_rust_panic"].detail
    assert "non_orthogonal" in targeted["non_orthogonal"].detail
