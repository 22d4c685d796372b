"""The tag browser on a deflate bomb (issue 10): the header is shown without inflating what follows the pixels."""
from __future__ import annotations

import tracemalloc

from tests.core.dicom.test_hostile_input import _deflate_bomb
from viewer.core.jobs import run_job
from viewer.qt.tag_browser import iter_read_tags


def test_tags_of_a_deflated_file_hiding_1_gib_after_its_pixels(tmp_path):
    bomb = _deflate_bomb(tmp_path, 1 << 30, keep_pixels=True)
    tracemalloc.start()
    rows = run_job(iter_read_tags(str(bomb)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert any(r.keyword == "Rows" and r.value == "512" for r in rows)
    assert peak < 32 << 20  # pydicom's own dcmread inflated all 1 GiB here
