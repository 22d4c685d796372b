"""Importing our packages puts PyTorch's large CPU tensors on transparent huge pages (a user's setting wins)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
PROBE = r"""
import json, os, sys
import viewer  # our package first, as the app's entry points do
import torch
x = torch.ones(64 << 20, dtype=torch.uint8)  # 64 MiB, touched
with open("/proc/self/smaps_rollup") as f:
    huge_kb = next(int(line.split()[1]) for line in f if line.startswith("AnonHugePages:"))
print(json.dumps({"setting": os.environ.get("THP_MEM_ALLOC_ENABLE"), "huge_kb": huge_kb}))
"""


def _probe(**env) -> dict:
    clean = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"} | env
    out = subprocess.run([sys.executable, "-c", PROBE], env=clean, capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not THP.is_file() or "[never]" in THP.read_text() or not Path("/proc/self/smaps_rollup").is_file(),
                    reason="no transparent huge pages on this machine")
def test_large_tensors_get_huge_pages_unless_the_user_says_otherwise():
    ours = _probe()
    assert ours["setting"] == "1" and ours["huge_kb"] >= 32 << 10  # most of the 64 MiB on 2 MiB pages
    theirs = _probe(THP_MEM_ALLOC_ENABLE="0")
    assert theirs["setting"] == "0"
    if "[madvise]" in THP.read_text():  # with "always" the kernel gives huge pages whatever torch asks
        assert theirs["huge_kb"] < ours["huge_kb"]
