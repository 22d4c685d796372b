"""The key and mouse binding table, without Qt: defaults, presets, conflicts, the JSON the settings keep."""
from __future__ import annotations

import json

import pytest

from viewer.core.bindings import (
    KEY_ACTIONS,
    PRESETS,
    Bindings,
    BindingsError,
    DragOp,
    drag_operation,
    normalise_key,
)
from viewer.core.interaction import Modifiers, PointerButton

LEFT, MIDDLE, RIGHT = PointerButton.LEFT, PointerButton.MIDDLE, PointerButton.RIGHT


def test_defaults_have_no_conflicts_and_match_todays_keys():
    bindings = Bindings()
    assert bindings.conflicts() == {}
    assert bindings.keys_of("next_slice") == ("Down", "Right")
    assert bindings.keys_of("slab_projection") == ("Shift+M",)
    assert bindings.keys_of("tool_eraser") == ("Shift+D",)
    assert len({a.id for a in KEY_ACTIONS}) == len(KEY_ACTIONS)


@pytest.mark.parametrize("text, expected", [("shift+ctrl+o", "Ctrl+Shift+O"), ("m", "M"), ("Ctrl++", "Ctrl++"),
                                            ("+", "+"), ("page down", "PgDown"), ("escape", "Esc"), ("F1", "F1")])
def test_normalise_key(text, expected):
    assert normalise_key(text) == expected


def test_normalise_key_refuses_nonsense():
    with pytest.raises(BindingsError, match="unknown modifier"):
        normalise_key("Hyper+X")


def test_conflict_found_and_explained():
    bindings = Bindings()
    bindings.keys["invert"] = ("f",)  # F fits the image already
    assert bindings.conflicts() == {"F": ["invert", "fit"]}
    assert bindings.conflict_message() == "F is bound to Invert and Fit to window"


def test_default_mouse_is_todays():
    mouse = Bindings().mouse
    assert drag_operation(mouse, LEFT, Modifiers.NONE) is DragOp.TOOL
    assert drag_operation(mouse, LEFT, Modifiers.SHIFT) is DragOp.PAN
    assert drag_operation(mouse, LEFT, Modifiers.CTRL) is DragOp.ZOOM
    assert drag_operation(mouse, LEFT, Modifiers.ALT) is DragOp.TOOL  # Alt + brush erases: the tool decides
    assert drag_operation(mouse, MIDDLE, Modifiers.NONE) is DragOp.PAN
    assert drag_operation(mouse, RIGHT, Modifiers.SHIFT) is DragOp.ZOOM
    assert drag_operation(mouse, PointerButton.NONE, Modifiers.NONE) is DragOp.NONE


def test_presets_differ_where_documented():
    slicer, pacs = Bindings.from_preset("slicer").mouse, Bindings.from_preset("pacs").mouse
    assert drag_operation(slicer, LEFT, Modifiers.NONE) is DragOp.WINDOW
    assert drag_operation(slicer, RIGHT, Modifiers.NONE) is DragOp.ZOOM
    assert drag_operation(slicer, MIDDLE, Modifiers.NONE) is DragOp.PAN
    assert drag_operation(pacs, LEFT, Modifiers.NONE) is DragOp.SCROLL
    assert drag_operation(pacs, RIGHT, Modifiers.NONE) is DragOp.WINDOW
    assert drag_operation(pacs, RIGHT, Modifiers.CTRL) is DragOp.ZOOM
    # a tool the user picked owns the plain left drag whatever the preset does with it
    assert drag_operation(pacs, LEFT, Modifiers.NONE, default_tool=False) is DragOp.TOOL
    assert drag_operation(pacs, LEFT, Modifiers.SHIFT, default_tool=False) is DragOp.PAN
    assert all(Bindings.from_preset(p.name).conflicts() == {} for p in PRESETS)


def test_json_round_trip_keeps_only_changes():
    bindings = Bindings.from_preset("pacs")
    bindings.keys["fit"] = ("Ctrl+Shift+F",)
    bindings.mouse["shift+right"] = DragOp.SCROLL
    del bindings.mouse["middle"]
    text = bindings.to_json()
    data = json.loads(text)
    assert data == {"preset": "pacs", "keys": {"fit": ["Ctrl+Shift+F"]},
                    "mouse": {"shift+right": "scroll", "middle": None}}
    again = Bindings.from_json(text)
    assert again == bindings


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "JSON object"),
    ("{not json", "not JSON"),
    ('{"preset": "osirix"}', "unknown bindings preset"),
    ('{"keys": {"self_destruct": ["X"]}}', "unknown action"),
    ('{"keys": {"fit": "F"}}', "list of at most"),
    ('{"keys": {"fit": ["' + "A" * 500 + '"]}}', "list of at most"),
    ('{"mouse": {"left": "teleport"}}', "unknown drag operation"),
    ('{"mouse": {"fifth+button": "pan"}}', "unknown mouse chord"),
    ('{"extra": 1}', "unknown bindings field"),
    ("[" * 100000, "not JSON"),
])
def test_hostile_json_is_refused_with_a_reason(text, message):
    with pytest.raises(BindingsError, match=message):
        Bindings.from_json(text)
