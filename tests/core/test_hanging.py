"""Hanging protocols without Qt: matching order, the JSON a user edits (hostile tables fall back to the defaults
with a reason), and what a rule does to a fresh display state of the real chest CT and MR."""
from __future__ import annotations

import json

import pytest

from viewer.core.hanging import (
    DEFAULT_RULES,
    HangingProtocolError,
    HangingProtocols,
    HangingRule,
    SlabSpec,
    protocols_from_json,
)
from viewer.core.reformat import Plane
from viewer.core.session import Session
from viewer.core.slab import Projection


def test_first_matching_rule_wins():
    table = HangingProtocols()
    assert table.match("CT", "CHEST", Plane.AXIAL).name == "Chest CT"
    assert table.match("CT", "CHEST", Plane.CORONAL).name == "CT", "chest CT rule asks for axial acquisitions"
    assert table.match("ct", "Head routine", None).name == "Head CT"
    assert table.match("CT", "", Plane.AXIAL).name == "CT"
    assert table.match("MR", "t1_fl2d_sag", Plane.SAGITTAL).name == "MR"
    assert table.match("US", "", None) is None
    swapped = HangingProtocols([DEFAULT_RULES[2], DEFAULT_RULES[0]])
    assert swapped.match("CT", "CHEST", Plane.AXIAL).name == "CT", "order decides, not specificity"


def test_json_round_trip():
    table = HangingProtocols()
    again = HangingProtocols.from_json(table.to_json())
    assert again == table
    custom = HangingProtocols.from_json(json.dumps({"rules": [
        {"name": "Lung MIP", "modality": "ct", "keywords": ["LUNG"], "layout": "2x2",
         "slab": {"projection": "mip", "mm": 15}}]}))
    rule = custom.rules[0]
    assert rule == HangingRule("Lung MIP", ("CT",), ("lung",), None, "2x2", None, SlabSpec(Projection.MIP, 15.0))


@pytest.mark.parametrize("text, message", [
    ('{"name": "x"}', "must be a JSON list"),
    ('[{"name": "x", "layout": "3x3"}]', r"rule 1 \(x\)\.layout is '3x3': use one of 1x1, 1x3, 2x2"),
    ('[{"name": "x", "colour": "red"}]', "unknown field"),
    ('[{"name": "x", "slab": {"projection": "mip", "mm": 1e9}}]', "mm must be a number"),
    ('[{"name": "x", "slab": {"projection": "max"}}]', "projection is 'max'"),
    ('[{"name": "x", "plane": "oblique"}]', "plane is 'oblique'"),
    ('[{"name": "x", "start": 3}]', "start must be a non-empty text"),
    ('[{"name": "x", "modality": [1, 2]}]', r"modality\[0\]"),
    ('[{"name": ""}]', "name must be a non-empty text"),
    ("[7]", "rule 1 must be a JSON object"),
    ("[" + ",".join(["{}"] * 101) + "]", "at most 100"),
    ("[" * 100000, "not JSON"),
])
def test_hostile_tables_are_refused_with_a_reason(text, message):
    with pytest.raises(HangingProtocolError, match=message):
        HangingProtocols.from_json(text)
    table, error = protocols_from_json(text)
    assert table == HangingProtocols() and error.startswith("Hanging protocols not used (defaults instead): ")


def test_empty_settings_mean_defaults():
    assert protocols_from_json(None) == (HangingProtocols(), "")


def _shown(path, hanging=True, slab_defaults=None):
    session = Session()
    session.hanging = HangingProtocols() if hanging else None
    session.slab_defaults = slab_defaults
    session.open(path)
    series = session.default_image_series()
    return session.show(series.key, session.load(series.key))


def test_rules_on_real_series(lidc_dir, mr_sagittal_dir):
    ct = _shown(lidc_dir, slab_defaults=("avg", 20.0))
    assert ct.hanging.name == "Chest CT" and ct.times_shown == 1
    display = ct.display
    assert display.window_name == "lung" and not display.slab_on
    assert display.display_number(display.native_plane) == 1
    display.toggle_slab()
    assert display.projection is Projection.AVG and display.slab_mm == 20.0, "the user's last slab comes back"
    mr = _shown(mr_sagittal_dir)
    assert mr.hanging.name == "MR"
    plane = mr.display.native_plane
    assert plane is Plane.SAGITTAL
    assert mr.display.slice_index(plane) == mr.display.n_slices(plane) // 2
    plain = _shown(lidc_dir, hanging=False)
    assert plain.hanging is None and plain.display.window_name != "lung"
