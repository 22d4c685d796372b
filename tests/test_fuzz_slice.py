"""CI slice of ``make fuzz`` (bench/fuzz.py): the targeted hostile cases of issue 10 plus a seeded handful of
mutations, each in a forked child with an address-space cap and a time limit. Under 2 minutes on 2 cores.

The campaign runs in a fresh interpreter: a child forked from this test process would inherit its address space
and resident pages (torch, Qt and the rest of the suite: ~2 GB), which the caps would then count against the case.
"""
from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import fuzz
from tests.conftest import data_path

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="the fuzz runner forks (POSIX)")

SLICE_SEED = 7
SLICE_CASES = 150


def test_seeded_fuzz_slice_never_crashes_hangs_leaks_or_blows_up(tmp_path):
    data_path()  # skips with the reason when ../shared/data is absent
    seeds = fuzz.collect_seeds()
    assert len({s.syntax for s in seeds}) >= 12  # every transfer syntax folder is among the seeds
    results = _campaign_in_fresh_interpreter(tmp_path)
    assert len(results) == len(fuzz.targeted_cases()) + SLICE_CASES
    bad = [f"{r.outcome}: {r.case.name} {r.case.kind} [{r.case.seed_file}] {r.detail[-300:]}"
           for r in results if r.outcome in fuzz.BAD]
    assert not bad, "\n".join(bad)
    counts = collections.Counter(r.outcome for r in results)
    assert counts["ok"] >= 10 and counts["refused"] >= 10  # the mutations both pass and get refused
    targeted = {r.case.kind: r for r in results if r.case.name.startswith("t-")}
    assert "declares 2147483647 frames but holds 1" in targeted["frames_2^31"].detail
    assert "expands beyond" in targeted["deflate_bomb_1GiB"].detail
    assert "a run of zero bytes" in targeted["deflate_flood_256MiB"].detail
    assert targeted["rle_rust_panic"].outcome == "ok"  # nine good frames, one blank with a warning
    assert "decode_failed" in targeted["rle_rust_panic"].detail
    assert "non_orthogonal" in targeted["non_orthogonal"].detail


@pytest.mark.parametrize("kind", ["seg", "report"])
def test_seeded_object_fuzz_slice_opens_or_refuses_every_damaged_object(tmp_path, kind):
    """``bench/fuzz.py --seg``: mutated real SEGs opened over their referenced series, as File > Open Segmentation
    does (before: highdicom's AttributeError, KeyError and RuntimeError reached the user, a SEG without pixel data
    was OOM-killed). ``--reports``: mutated real RT Structure Sets and SRs read over a volume as the viewer and the
    batch runner do (before: highdicom's AttributeError on the batch runner's SR reader, pydicom's OSError and
    RecursionError, an OverflowError placing a contour 1e308 mm away). Every one opens or is refused with a reason."""
    data_path("seg-rtstruct")
    cases = f"cases = list(fuzz.{kind}_cases(fuzz.{kind}_seeds(), {OBJECT_SLICE_CASES}, {SLICE_SEED}))"
    results = _campaign_in_fresh_interpreter(tmp_path, cases)
    assert len(results) == OBJECT_SLICE_CASES
    bad = [f"{r.outcome}: {r.case.name} {r.case.kind} [{r.case.seed_file}] {r.detail[-300:]}"
           for r in results if r.outcome in fuzz.BAD]
    assert not bad, "\n".join(bad)
    counts = collections.Counter(r.outcome for r in results)
    assert counts["ok"] >= 5 and counts["refused"] >= 5


OBJECT_SLICE_CASES = 40
_CASES = """
seeds = fuzz.collect_seeds()
cases = fuzz.targeted_cases() + list(fuzz.mutated_cases(seeds, {cases}, {seed}))
"""
_CAMPAIGN = """
import json, sys
from pathlib import Path
from bench import fuzz
{cases}
results = fuzz.run_campaign(cases, Path(sys.argv[1]), workers=2, timeout=20)
print(fuzz.table(results), file=sys.stderr)
json.dump([dict(name=r.case.name, kind=r.case.kind, seed_file=r.case.seed_file, outcome=r.outcome,
                detail=r.detail) for r in results], open(sys.argv[2], "w"))
"""


def _campaign_in_fresh_interpreter(tmp_path: Path, cases: str | None = None) -> list:
    """Run the slice (``cases``: code that sets ``cases``; default the main slice) with ``python -c`` in the
    repository; its results as objects shaped like fuzz.Result."""
    out = tmp_path / "results.json"
    work = tmp_path / "cases"
    work.mkdir()
    code = _CAMPAIGN.format(cases=cases or _CASES.format(cases=SLICE_CASES, seed=SLICE_SEED))
    run = subprocess.run([sys.executable, "-c", code, str(work), str(out)], cwd=REPO, capture_output=True,
                         text=True, timeout=600)
    print(run.stderr[-6000:], file=sys.stderr)
    assert run.returncode == 0, run.stderr[-3000:]
    return [SimpleNamespace(outcome=r["outcome"], detail=r["detail"],
                            case=SimpleNamespace(name=r["name"], kind=r["kind"], seed_file=r["seed_file"]))
            for r in json.loads(out.read_text())]


def test_a_file_truncated_to_nothing_is_a_case_not_the_end_of_the_campaign():
    """Seed 103 stopped the campaign after 2,091 cases: a truncation left no byte, and the next operator drew a
    position in an empty file (ValueError: empty range for randrange())."""
    import random

    seed = fuzz.Seed(Path("one-byte.dcm"), "1.2.840.10008.1.2.1", b"\x00", (), "one byte")
    outcomes = {fuzz.mutate(seed, random.Random(n))[0] for n in range(300)}
    assert b"" in outcomes  # some cases were truncated to nothing, and the later operators stepped aside
