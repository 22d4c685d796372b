"""The measurements autosave: exact points back, deletions kept, damaged or foreign files refused with a reason."""
from __future__ import annotations

import json

import numpy as np

from tests.core.test_sr_measurements import every_kind
from tests.inference.helpers import real_volume
from viewer.core.editing.measurement_autosave import (
    discard_measurements,
    load_measurements,
    measurements_path,
    save_measurements,
)


def test_round_trip_is_exact_and_an_empty_list_is_kept(tmp_path):
    _, volume = real_volume("lidc-idri-0001")
    ms = every_kind(volume)
    ms[0].uid = "1.2.3.4"
    path = save_measurements(volume.series_uid, ms, volume.shape, tmp_path, ["/study"])
    assert path == measurements_path(volume.series_uid, tmp_path) and volume.series_uid not in str(path)
    restored = load_measurements(volume, tmp_path)
    assert restored.problems == [] and len(restored.measurements) == len(ms)
    for a, b in zip(ms, restored.measurements):
        assert (a.kind, a.plane, a.slice_index, a.uid) == (b.kind, b.plane, b.slice_index, b.uid)
        assert np.array_equal(np.asarray(a.points), np.asarray(b.points)) and a.summary() == b.summary()
    save_measurements(volume.series_uid, [], volume.shape, tmp_path)
    assert load_measurements(volume, tmp_path).measurements == []
    discard_measurements(volume.series_uid, tmp_path)
    assert load_measurements(volume, tmp_path) is None


def test_damaged_and_foreign_autosaves_say_why(tmp_path):
    _, volume = real_volume("lidc-idri-0001")
    path = save_measurements(volume.series_uid, every_kind(volume)[:2], (1, 2, 3), tmp_path)
    assert "another grid" in load_measurements(volume, tmp_path).problems[0]
    path.write_text("{not json")
    assert "damaged" in load_measurements(volume, tmp_path).problems[0]
    doc = {"format": 1, "shape": list(volume.shape), "measurements": [
        {"kind": "spiral", "plane": "axial", "slice_index": 1, "points": [[0, 0, 0]]},
        {"kind": "length", "plane": "axial", "slice_index": 1, "points": [[0, 0, 1]]},
        {"kind": "probe", "plane": "axial", "slice_index": 1, "points": [[3, 4, 1]]}]}
    path.write_text(json.dumps(doc))
    restored = load_measurements(volume, tmp_path)
    assert [m.kind for m in restored.measurements] == ["probe"]
    assert "unknown measurement kind 'spiral'" in restored.problems[0] and "1 point(s)" in restored.problems[1]
