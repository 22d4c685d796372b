"""Hanging protocols: how a series is first laid out, by modality, keywords and acquisition plane.

A small ordered table of :class:`HangingRule` s; the first rule whose conditions all hold wins
(:meth:`HangingProtocols.match`). A rule says which layout (``1x1``, ``1x3``, ``2x2``), window preset, slab and
starting slice the series gets the first time it is shown; ``None`` in a field leaves that choice as it is (the
user's last layout, the series' DICOM window, ...). The table is stored as JSON (:meth:`HangingProtocols.to_json`),
editable by the user; :func:`protocols_from_json` checks a user's table field by field and falls back to the
defaults with a clear message when it cannot be used.

JSON schema (a list, or ``{"rules": [...]}``); every field but ``name`` is optional::

    {"name": "Chest CT",               # shown in the dialog
     "modality": ["CT"],               # any of these (DICOM Modality); absent or [] = any
     "keywords": ["chest", "lung"],    # any of these words in BodyPartExamined, series or study description
     "plane": "axial",                 # acquisition plane: axial | coronal | sagittal; absent = any
     "layout": "1x3",                  # 1x1 | 1x3 | 2x2; null = keep the current layout
     "window": "lung",                 # a window preset name, "default" (DICOM VOI) or "auto"; null = default
     "slab": "off",                    # "off", or {"projection": "mip"|"minip"|"avg", "mm": 10}; null = as is
     "start": "first"}                 # first (image 1 in display order) | middle; null = the usual opening
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from viewer.core.reformat import Plane
from viewer.core.slab import SLAB_MM_RANGE, Projection

LAYOUT_NAMES = ("1x1", "1x3", "2x2")
STARTS = ("first", "middle")
#: Most rules and list entries a user table may have, and the longest text (a table is not a data dump).
MAX_RULES = 100
MAX_ITEMS = 50
MAX_TEXT = 200
_FIELDS = {"name", "modality", "keywords", "plane", "layout", "window", "slab", "start"}


class HangingProtocolError(ValueError):
    """A hanging-protocol table that cannot be used; the message names the rule and the field."""


@dataclass(frozen=True)
class SlabSpec:
    """A slab a rule turns on (``projection`` NONE: the slab off)."""

    projection: Projection = Projection.NONE
    mm: float = 10.0


@dataclass(frozen=True)
class HangingRule:
    """One row of the table: conditions (modality, keywords, plane) and what a matching series gets."""

    name: str
    modality: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    plane: Plane | None = None
    layout: str | None = None
    window: str | None = None
    slab: SlabSpec | None = None
    start: str | None = None

    def matches(self, modality: str, text: str, plane: Plane | str | None) -> bool:
        """True when the series (its Modality, its descriptive ``text``, its acquisition plane) fits the rule."""
        if self.modality and str(modality or "").upper() not in self.modality:
            return False
        if self.keywords and not any(k in str(text or "").lower() for k in self.keywords):
            return False
        return self.plane is None or (plane is not None and Plane(plane) == self.plane)

    def to_dict(self) -> dict[str, Any]:
        """The rule as the JSON object of the schema."""
        out: dict[str, Any] = {"name": self.name}
        if self.modality:
            out["modality"] = list(self.modality)
        if self.keywords:
            out["keywords"] = list(self.keywords)
        if self.plane is not None:
            out["plane"] = self.plane.value
        out["layout"] = self.layout
        out["window"] = self.window
        if self.slab is None:
            out["slab"] = None
        elif self.slab.projection is Projection.NONE:
            out["slab"] = "off"
        else:
            out["slab"] = {"projection": self.slab.projection.value, "mm": self.slab.mm}
        out["start"] = self.start
        return out


#: The shipped table: chest CT in three planes on the lung window, head CT on the brain window, other CT at image 1
#: in the user's layout, MR in one view at its middle slice.
DEFAULT_RULES: tuple[HangingRule, ...] = (
    HangingRule("Chest CT", ("CT",), ("chest", "thorax", "lung", "thx"), Plane.AXIAL, "1x3", "lung",
                SlabSpec(), "first"),
    HangingRule("Head CT", ("CT",), ("head", "brain", "skull", "cranial"), None, "1x1", "brain", SlabSpec(),
                "first"),
    HangingRule("CT", ("CT",), (), None, None, None, None, "first"),
    HangingRule("MR", ("MR",), (), None, "1x1", None, SlabSpec(), "middle"),
)


@dataclass
class HangingProtocols:
    """The ordered rule table (first match wins)."""

    rules: list[HangingRule] = field(default_factory=lambda: list(DEFAULT_RULES))

    def match(self, modality: str, text: str = "", plane: Plane | str | None = None) -> HangingRule | None:
        """The first rule the series fits, None when none does (then nothing is changed)."""
        return next((r for r in self.rules if r.matches(modality, text, plane)), None)

    def to_json(self) -> str:
        """The table as the JSON of the schema (indented for a person to edit)."""
        return json.dumps([r.to_dict() for r in self.rules], indent=2)

    @classmethod
    def from_json(cls, text: str) -> HangingProtocols:
        """Read and check a table; a :class:`HangingProtocolError` says which rule and field is wrong."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise HangingProtocolError(f"the hanging protocols are not JSON: {exc}") from None
        if isinstance(data, dict) and set(data) == {"rules"}:
            data = data["rules"]
        if not isinstance(data, list):
            raise HangingProtocolError("the hanging protocols must be a JSON list of rules (or {\"rules\": [...]})")
        if len(data) > MAX_RULES:
            raise HangingProtocolError(f"{len(data)} rules: at most {MAX_RULES} are accepted")
        return cls([_rule(i + 1, item) for i, item in enumerate(data)])


def _text(where: str, value, allowed=None) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise HangingProtocolError(f"{where} must be a non-empty text of at most {MAX_TEXT} characters")
    value = value.strip()
    if allowed is not None and value.lower() not in allowed:
        raise HangingProtocolError(f"{where} is {value!r}: use one of {', '.join(allowed)}")
    return value.lower() if allowed is not None else value


def _texts(where: str, value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise HangingProtocolError(f"{where} must be a list of at most {MAX_ITEMS} texts")
    return tuple(_text(f"{where}[{i}]", v) for i, v in enumerate(value))


def _slab(where: str, value) -> SlabSpec | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in ("off", "none"):
        return SlabSpec()
    if not isinstance(value, dict) or set(value) - {"projection", "mm"}:
        raise HangingProtocolError(f"{where} must be \"off\" or {{\"projection\": \"mip\", \"mm\": 10}}")
    projection = _text(f"{where}.projection", value.get("projection", "mip"), ("mip", "minip", "avg"))
    mm = value.get("mm", 10.0)
    if isinstance(mm, bool) or not isinstance(mm, (int, float)) or not SLAB_MM_RANGE[0] <= mm <= SLAB_MM_RANGE[1]:
        raise HangingProtocolError(f"{where}.mm must be a number of mm from {SLAB_MM_RANGE[0]:g} to "
                                   f"{SLAB_MM_RANGE[1]:g}")
    return SlabSpec(Projection(projection), float(mm))


def _rule(number: int, item) -> HangingRule:
    where = f"rule {number}"
    if not isinstance(item, dict):
        raise HangingProtocolError(f"{where} must be a JSON object")
    unknown = set(item) - _FIELDS
    if unknown:
        raise HangingProtocolError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
                                   f"the fields are {', '.join(sorted(_FIELDS))}")
    name = _text(f"{where}.name", item.get("name", f"Rule {number}"))
    where = f"rule {number} ({name})"

    def optional(key: str, allowed=None):
        value = item.get(key)
        return None if value is None else _text(f"{where}.{key}", value, allowed)

    plane = optional("plane", tuple(p.value for p in Plane))
    return HangingRule(
        name=name,
        modality=tuple(m.upper() for m in _texts(f"{where}.modality", item.get("modality"))),
        keywords=tuple(k.lower() for k in _texts(f"{where}.keywords", item.get("keywords"))),
        plane=Plane(plane) if plane is not None else None,
        layout=optional("layout", LAYOUT_NAMES),
        window=optional("window"),
        slab=_slab(f"{where}.slab", item.get("slab")),
        start=optional("start", STARTS),
    )


def protocols_from_json(text: str | None) -> tuple[HangingProtocols, str]:
    """The user's table from ``text`` (None or "" : the defaults), and "" - or, when it cannot be used, the
    defaults and the reason, for the user to read."""
    if not text:
        return HangingProtocols(), ""
    try:
        return HangingProtocols.from_json(text), ""
    except HangingProtocolError as exc:
        return HangingProtocols(), f"Hanging protocols not used (defaults instead): {exc}"


def series_text(info: dict, body_part: str = "") -> str:
    """What the keywords are looked for in: BodyPartExamined, series and study description."""
    parts = (body_part, info.get("series_description", ""), info.get("study_description", ""))
    return " ".join(str(p) for p in parts if p)


def apply_rule(rule: HangingRule | None, display) -> None:
    """Give a fresh :class:`~viewer.core.display.DisplayState` the rule's window, slab and starting slice (what
    ``None`` fields leave alone stays as the state opened)."""
    if rule is None:
        return
    if rule.window is not None:
        name = rule.window.lower()
        if name == "auto":
            display.auto_window()
        elif name not in ("default", "voi"):
            display.apply_preset(rule.window)  # an unknown preset name leaves the DICOM window
    if rule.slab is not None:
        if rule.slab.projection is Projection.NONE:
            display.set_slab(Projection.NONE)
        else:
            display.set_slab(rule.slab.projection, rule.slab.mm)
    if rule.start is not None:
        plane = display.native_plane
        if rule.start == "first":
            display.go_to_number(plane, 1)
        else:
            display.set_slice(plane, display.n_slices(plane) // 2)
