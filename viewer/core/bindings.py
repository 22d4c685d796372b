"""Key and mouse bindings as one table: action ids with their default keys, and which drag each mouse button (with
its modifiers) starts, plus the named presets ("Hounsfield", "Slicer-like", "PACS-like").

Plain data, no Qt: the Qt layer sets each ``QAction``'s key sequences from :attr:`Bindings.keys` and asks
:func:`drag_operation` what a press starts; the settings store :meth:`Bindings.to_json`. Keys are written as Qt's
portable key text (``"Ctrl+Shift+O"``, ``"PgDown"``); :func:`normalise_key` compares them (modifier order and
letter case do not matter), so :meth:`Bindings.conflicts` finds two actions on the same key.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum

from viewer.core.interaction import Modifiers, PointerButton


class DragOp(str, Enum):
    """What a mouse drag does. ``TOOL`` is the tool chosen in the toolbar (Window/Level unless another)."""

    TOOL = "tool"
    WINDOW = "window"
    PAN = "pan"
    ZOOM = "zoom"
    SCROLL = "scroll"
    CROSSHAIR = "crosshair"
    NONE = "none"

    @property
    def label(self) -> str:
        """Words for the bindings dialog."""
        return _OP_LABELS[self]


_OP_LABELS = {DragOp.TOOL: "Chosen tool", DragOp.WINDOW: "Window/level", DragOp.PAN: "Pan", DragOp.ZOOM: "Zoom",
              DragOp.SCROLL: "Scroll slices", DragOp.CROSSHAIR: "Move crosshair", DragOp.NONE: "Nothing"}

#: The mouse chords the table can bind, in dialog order: ``[modifier+]button``.
MOUSE_CHORDS = ("left", "shift+left", "ctrl+left", "alt+left", "middle", "shift+middle", "ctrl+middle", "right",
                "shift+right", "ctrl+right")


@dataclass(frozen=True)
class KeyAction:
    """One action that can have keys: its id (``viewer.actions`` key or a window action), label, section and
    default keys."""

    id: str
    label: str
    section: str
    default: tuple[str, ...] = ()


def _tools() -> tuple[KeyAction, ...]:
    tools = (("window", "Window/Level", "W"), ("pan", "Pan", "P"), ("zoom", "Zoom", "Z"),
             ("crosshair", "Crosshair", "C"), ("length", "Length", "L"), ("ellipse", "Ellipse ROI", "E"),
             ("rectangle", "Rectangle ROI", "B"), ("probe", "Probe", "V"), ("brush", "Brush", "D"),
             ("eraser", "Eraser", "Shift+D"), ("fill", "Fill 2D", "G"), ("fill3d", "Fill 3D", "Shift+G"),
             ("polygon", "Polygon / Lasso", "O"))
    return tuple(KeyAction(f"tool_{t}", f"Tool: {label}", "Tools", (key,)) for t, label, key in tools)


#: Every action with keys, in dialog order, with today's keys as defaults.
KEY_ACTIONS: tuple[KeyAction, ...] = (
    KeyAction("next_slice", "Next slice", "Slices", ("Down", "Right")),
    KeyAction("previous_slice", "Previous slice", "Slices", ("Up", "Left")),
    KeyAction("page_forward", "10 slices forward", "Slices", ("PgDown",)),
    KeyAction("page_back", "10 slices back", "Slices", ("PgUp",)),
    KeyAction("first_slice", "First slice", "Slices", ("Home",)),
    KeyAction("last_slice", "Last slice", "Slices", ("End",)),
    KeyAction("cine", "Cine play/pause", "Slices", ("Space",)),
    KeyAction("cine_faster", "Cine faster / larger brush", "Slices", ("]",)),
    KeyAction("cine_slower", "Cine slower / smaller brush", "Slices", ("[",)),
    *(KeyAction(f"preset_{n}", f"Window preset {n}", "Window", (str(n),)) for n in range(1, 10)),
    KeyAction("window_default", "DICOM window (series)", "Window", ("0",)),
    KeyAction("window_image", "DICOM window (this image)", "Window", ()),
    KeyAction("window_auto", "Auto window", "Window", ("A",)),
    KeyAction("invert", "Invert", "Window", ("I",)),
    KeyAction("fit", "Fit to window", "View", ("F",)),
    KeyAction("reset", "Reset view", "View", ("R",)),
    KeyAction("zoom_in", "Zoom in", "View", ("+", "=")),
    KeyAction("zoom_out", "Zoom out", "View", ("-",)),
    KeyAction("crosshair", "Show crosshair", "View", ("X",)),
    KeyAction("layout_1x1", "Layout 1x1", "View", ("Ctrl+1",)),
    KeyAction("layout_1x3", "Layout 1x3", "View", ("Ctrl+3",)),
    KeyAction("layout_2x2", "Layout 2x2", "View", ("Ctrl+4",)),
    KeyAction("hide_panels", "Hide all panels", "View", ("Ctrl+Shift+H",)),
    KeyAction("slab", "Thick slab on/off", "Thick slab", ("M",)),
    KeyAction("slab_projection", "Slab projection", "Thick slab", ("Shift+M",)),
    KeyAction("slab_thicker", "Thicker slab", "Thick slab", (".",)),
    KeyAction("slab_thinner", "Thinner slab", "Thick slab", (",",)),
    *_tools(),
    KeyAction("delete_measurement", "Delete measurement", "Tools", ("Delete", "Backspace")),
    KeyAction("escape", "Cancel", "Tools", ("Esc",)),
    KeyAction("threshold", "Threshold brush and fill", "Edit", ("T",)),
    KeyAction("undo", "Undo", "Edit", ("Ctrl+Z",)),
    KeyAction("redo", "Redo", "Edit", ("Ctrl+Shift+Z", "Ctrl+Y")),
    KeyAction("open_folder", "Open folder", "Files", ("Ctrl+O",)),
    KeyAction("open_files", "Open files", "Files", ("Ctrl+Shift+O",)),
    KeyAction("save_screenshot", "Save screenshot", "Files", ("Ctrl+S",)),
    KeyAction("copy_screenshot", "Copy screenshot", "Files", ("Ctrl+Shift+C",)),
    KeyAction("run_model", "Run model", "Files", ("Ctrl+R",)),
    KeyAction("pacs_query", "Query PACS", "Files", ("Ctrl+Shift+Q",)),
)
ACTIONS_BY_ID = {a.id: a for a in KEY_ACTIONS}

#: Today's mouse: the chosen tool on the left (Window/Level to start with), middle or Shift + left pans, right or
#: Ctrl + left zooms (drag up = in).
DEFAULT_MOUSE: dict[str, DragOp] = {"left": DragOp.TOOL, "shift+left": DragOp.PAN, "ctrl+left": DragOp.ZOOM,
                                    "middle": DragOp.PAN, "right": DragOp.ZOOM}


@dataclass(frozen=True)
class BindingPreset:
    """A named set of mouse bindings and key changes from the defaults."""

    name: str
    label: str
    description: str
    mouse: dict[str, DragOp]
    keys: dict[str, tuple[str, ...]] = field(default_factory=dict)


PRESETS: tuple[BindingPreset, ...] = (
    BindingPreset("hounsfield", "Hounsfield (default)",
                  "Left: the chosen tool (Window/Level to start with); middle or Shift + left: pan; right or "
                  "Ctrl + left: zoom; wheel: slices.", dict(DEFAULT_MOUSE)),
    BindingPreset("slicer", "Slicer-like",
                  "As 3D Slicer's slice views: left: window/level; middle or Shift + left: pan; right: zoom; "
                  "Ctrl + left: move the crosshair (Slicer: Shift + move); wheel: slices.",
                  {"left": DragOp.WINDOW, "shift+left": DragOp.PAN, "ctrl+left": DragOp.CROSSHAIR,
                   "middle": DragOp.PAN, "right": DragOp.ZOOM}),
    BindingPreset("pacs", "PACS-like",
                  "As the stack mode of reading PACS (Sectra, Visage; Horos with its stack tool): left: scroll "
                  "slices (drag down = next); right: window/level; middle or Shift + left: pan; Ctrl + left or "
                  "Ctrl + right: zoom; wheel: slices.",
                  {"left": DragOp.SCROLL, "shift+left": DragOp.PAN, "ctrl+left": DragOp.ZOOM,
                   "middle": DragOp.PAN, "right": DragOp.WINDOW, "ctrl+right": DragOp.ZOOM}),
)
PRESETS_BY_NAME = {p.name: p for p in PRESETS}

_MODIFIER_ORDER = ("CTRL", "ALT", "SHIFT", "META")
_MODIFIER_NAMES = {"CTRL": "Ctrl", "CONTROL": "Ctrl", "ALT": "Alt", "SHIFT": "Shift", "META": "Meta", "CMD": "Meta"}
_KEY_ALIASES = {"PAGEDOWN": "PgDown", "PAGE DOWN": "PgDown", "PGDOWN": "PgDown", "PAGEUP": "PgUp",
                "PAGE UP": "PgUp", "PGUP": "PgUp", "ESCAPE": "Esc", "ESC": "Esc", "DEL": "Delete",
                "RETURN": "Return", "ENTER": "Enter", "SPACE": "Space", "BACKSPACE": "Backspace", "HOME": "Home",
                "END": "End", "UP": "Up", "DOWN": "Down", "LEFT": "Left", "RIGHT": "Right", "DELETE": "Delete",
                "TAB": "Tab", "INS": "Ins", "INSERT": "Ins"}
#: Longest key text accepted from a settings file (anything longer is not a key).
MAX_KEY_TEXT = 40
MAX_KEYS_PER_ACTION = 4


class BindingsError(ValueError):
    """A bindings table (from the settings or a file) that cannot be used; the message says what is wrong."""


def normalise_key(text: str) -> str:
    """A key text in one spelling: modifiers first in Ctrl, Alt, Shift, Meta order, named keys as Qt writes them,
    letters upper case (``"shift+ctrl+o"`` -> ``"Ctrl+Shift+O"``, ``"Ctrl++"`` stays). ``""`` for no key."""
    text = str(text).strip()
    if not text:
        return ""
    if text == "+":
        return "+"
    if text.endswith("++"):
        parts, key = text[:-2].split("+") if len(text) > 2 else [], "+"
    else:
        *parts, key = text.split("+")
    mods = set()
    for part in parts:
        name = _MODIFIER_NAMES.get(part.strip().upper())
        if name is None:
            raise BindingsError(f"unknown modifier {part!r} in key {text!r}")
        mods.add(name.upper())
    key = key.strip()
    if not key:
        raise BindingsError(f"no key in {text!r}")
    key = _KEY_ALIASES.get(key.upper(), key.upper() if len(key) == 1 else key[:1].upper() + key[1:])
    ordered = [_MODIFIER_NAMES[m] for m in _MODIFIER_ORDER if m in mods]
    return "+".join(ordered + [key])


def chord(button: PointerButton, modifiers: Modifiers) -> str:
    """The chord text of a press: ``"left"``, ``"shift+right"`` (one modifier: the first of Ctrl, Shift, Alt)."""
    for flag, name in ((Modifiers.CTRL, "ctrl"), (Modifiers.SHIFT, "shift"), (Modifiers.ALT, "alt")):
        if flag in modifiers:
            return f"{name}+{button.value}"
    return button.value


def drag_operation(mouse: dict[str, DragOp], button: PointerButton, modifiers: Modifiers,
                   default_tool: bool = True) -> DragOp:
    """What a press of ``button`` with ``modifiers`` starts under the ``mouse`` table.

    A chord with a binding of its own (``"shift+left"``) wins; otherwise the plain button's binding applies. A
    left drag that falls back to the plain left binding uses the chosen tool whenever that is not the default
    Window/Level tool (``default_tool`` False): a user who picked Length, Brush or Pan gets it, whatever the preset
    does with the plain left button (PACS-like: scroll).
    """
    if button is PointerButton.NONE:
        return DragOp.NONE
    own = mouse.get(chord(button, modifiers))
    if own is not None and modifiers != Modifiers.NONE:
        return own
    if button is PointerButton.LEFT and not default_tool:
        return DragOp.TOOL
    return mouse.get(button.value, DragOp.NONE)


@dataclass
class Bindings:
    """The user's bindings: keys per action id and the mouse table, plus the preset they started from."""

    keys: dict[str, tuple[str, ...]] = field(default_factory=lambda: {a.id: a.default for a in KEY_ACTIONS})
    mouse: dict[str, DragOp] = field(default_factory=lambda: dict(DEFAULT_MOUSE))
    preset: str = "hounsfield"

    @classmethod
    def from_preset(cls, name: str) -> Bindings:
        """The defaults changed by preset ``name`` (a :class:`BindingsError` for an unknown one)."""
        preset = PRESETS_BY_NAME.get(name)
        if preset is None:
            raise BindingsError(f"unknown bindings preset {name!r}: use one of {', '.join(PRESETS_BY_NAME)}")
        bindings = cls(mouse=dict(preset.mouse), preset=name)
        bindings.keys.update(preset.keys)
        return bindings

    def keys_of(self, action_id: str) -> tuple[str, ...]:
        """The keys of an action (its default when the table has none for it)."""
        if action_id in self.keys:
            return self.keys[action_id]
        action = ACTIONS_BY_ID.get(action_id)
        return action.default if action is not None else ()

    def conflicts(self) -> dict[str, list[str]]:
        """Keys bound to more than one action: normalised key -> the action ids (empty when there is none)."""
        owners: dict[str, list[str]] = {}
        for action_id, keys in self.keys.items():
            for key in keys:
                norm = normalise_key(key)
                if norm and action_id not in owners.setdefault(norm, []):
                    owners[norm].append(action_id)
        return {key: ids for key, ids in owners.items() if len(ids) > 1}

    def conflict_message(self) -> str:
        """Words for the user about :meth:`conflicts` ("" when there are none)."""
        lines = []
        for key, ids in sorted(self.conflicts().items()):
            labels = [ACTIONS_BY_ID[i].label if i in ACTIONS_BY_ID else i for i in ids]
            lines.append(f"{key} is bound to {' and '.join(labels)}")
        return "; ".join(lines)

    def to_json(self) -> str:
        """What the settings keep: the preset and only what differs from it."""
        base = Bindings.from_preset(self.preset)
        keys = {k: list(v) for k, v in self.keys.items() if base.keys_of(k) != tuple(v)}
        mouse: dict[str, str | None] = {c: op.value for c, op in self.mouse.items() if base.mouse.get(c) != op}
        mouse.update({c: None for c in base.mouse if c not in self.mouse})
        return json.dumps({"preset": self.preset, "keys": keys, "mouse": mouse}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Bindings:
        """Read :meth:`to_json`'s text, checking everything; a :class:`BindingsError` says what is wrong."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise BindingsError(f"the bindings are not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise BindingsError("the bindings must be a JSON object with preset, keys and mouse")
        unknown = set(data) - {"preset", "keys", "mouse"}
        if unknown:
            raise BindingsError(f"unknown bindings field(s): {', '.join(sorted(map(str, unknown)))}")
        bindings = cls.from_preset(str(data.get("preset", "hounsfield")))
        keys, mouse = data.get("keys", {}), data.get("mouse", {})
        if not isinstance(keys, dict) or not isinstance(mouse, dict):
            raise BindingsError("keys and mouse must be JSON objects")
        for action_id, value in keys.items():
            if action_id not in ACTIONS_BY_ID:
                raise BindingsError(f"unknown action {action_id!r} in the key bindings")
            if not isinstance(value, list) or len(value) > MAX_KEYS_PER_ACTION or not all(
                    isinstance(k, str) and len(k) <= MAX_KEY_TEXT for k in value):
                raise BindingsError(f"the keys of {action_id!r} must be a list of at most "
                                    f"{MAX_KEYS_PER_ACTION} key texts")
            bindings.keys[action_id] = tuple(normalise_key(k) for k in value if k.strip())
        for name, op in mouse.items():
            if name not in MOUSE_CHORDS:
                raise BindingsError(f"unknown mouse chord {name!r}: use one of {', '.join(MOUSE_CHORDS)}")
            if op is None:
                bindings.mouse.pop(name, None)
                continue
            try:
                bindings.mouse[name] = DragOp(op)
            except ValueError:
                raise BindingsError(f"unknown drag operation {op!r} for {name}: use one of "
                                    f"{', '.join(o.value for o in DragOp)}") from None
        return bindings
