"""Persistent user settings (QSettings in an INI file in the user config folder)."""
from __future__ import annotations

import json
import logging
import shutil

from PySide6.QtCore import QByteArray, QSettings

from viewer.core.bindings import Bindings, BindingsError
from viewer.core.hanging import HangingProtocols, protocols_from_json
from viewer.core.paths import user_config_dir, user_data_dir
from viewer.core.slab import DEFAULT_SLAB_MM, SLAB_MM_RANGE, Projection
from viewer.core.windowing import CT_PRESETS, Preset
from viewer.services.pacs.nodes import NodeError, PacsNode, nodes_from_json, nodes_to_json

MAX_RECENT = 10
log = logging.getLogger(__name__)


def default_qsettings() -> QSettings:
    """``<user config dir>/settings.ini`` (``HOUNSFIELD_HOME`` moves it, e.g. for tests).

    Earlier builds kept it in the user data folder: when only that one exists it is copied over once."""
    path = user_config_dir() / "settings.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = user_data_dir() / "settings.ini"
    if not path.exists() and old.exists() and old != path:
        shutil.copy2(old, path)
    return QSettings(str(path), QSettings.Format.IniFormat)


class Settings:
    """Typed access to what persists between runs: layout, last folder, recent studies, presets, cine, look, AI."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings if qsettings is not None else default_qsettings()

    def _get(self, key: str, default, kind=None):
        value = self.q.value(key, default)
        if kind is bool:
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        if kind is not None:
            try:
                return kind(value)
            except (TypeError, ValueError):
                return default
        return value

    def sync(self) -> None:
        """Write to disk now."""
        self.q.sync()

    # ---- view ---------------------------------------------------------------------------------------------------
    @property
    def layout(self) -> str:
        value = self._get("view/layout", "1x1", str)
        return value if value in ("1x1", "1x3", "2x2") else "1x1"

    @layout.setter
    def layout(self, value: str) -> None:
        self.q.setValue("view/layout", value)

    @property
    def image_order(self) -> str:
        """``head_first`` (PACS: axial from the head down; the default) or ``as_acquired``."""
        value = self._get("view/image_order", "head_first", str)
        return value if value in ("head_first", "as_acquired") else "head_first"

    @image_order.setter
    def image_order(self, value: str) -> None:
        self.q.setValue("view/image_order", str(value))

    @property
    def cine_fps(self) -> int:
        return max(1, min(60, self._get("view/cine_fps", 10, int)))

    @cine_fps.setter
    def cine_fps(self, value: int) -> None:
        self.q.setValue("view/cine_fps", int(value))

    @property
    def smooth(self) -> bool:
        return self._get("view/smooth", True, bool)

    @smooth.setter
    def smooth(self, value: bool) -> None:
        self.q.setValue("view/smooth", bool(value))

    @property
    def presets(self) -> tuple[Preset, ...]:
        """Window presets in number-key order (the built-in CT presets unless the user changed them)."""
        raw = self._get("view/presets", "", str)
        if not raw:
            return CT_PRESETS
        try:
            items = json.loads(raw)
            presets = tuple(Preset(str(p["name"]), str(p.get("label", p["name"])), float(p["center"]),
                                   float(p["width"])) for p in items)
        except (ValueError, KeyError, TypeError):
            return CT_PRESETS
        return presets or CT_PRESETS

    @presets.setter
    def presets(self, presets) -> None:
        if presets is None or tuple(presets) == CT_PRESETS:
            self.q.remove("view/presets")
            return
        self.q.setValue("view/presets", json.dumps(
            [{"name": p.name, "label": p.label, "center": p.center, "width": p.width} for p in presets]))

    @property
    def slab(self) -> tuple[str, float]:
        """The last slab projection (``mip``, ``minip``, ``avg``) and thickness in mm: what the slab key brings
        back in a newly shown series."""
        projection = self._get("view/slab_projection", "mip", str)
        mm = self._get("view/slab_mm", DEFAULT_SLAB_MM, float)
        if projection not in ("mip", "minip", "avg"):
            projection = "mip"
        if not SLAB_MM_RANGE[0] <= mm <= SLAB_MM_RANGE[1]:  # (NaN fails both)
            mm = DEFAULT_SLAB_MM
        return projection, mm

    @slab.setter
    def slab(self, value) -> None:
        projection, mm = value
        if Projection(projection) is not Projection.NONE:
            self.q.setValue("view/slab_projection", Projection(projection).value)
        self.q.setValue("view/slab_mm", float(mm))

    # ---- habits: bindings and hanging protocols ----------------------------------------------------------------
    def bindings(self) -> tuple[Bindings, str]:
        """The user's key and mouse bindings, and "" - or, when the stored ones cannot be used, the defaults and
        why (to show the user)."""
        raw = self._get("habits/bindings", "", str)
        if not raw:
            return Bindings(), ""
        try:
            bindings = Bindings.from_json(raw)
        except BindingsError as exc:
            return Bindings(), f"Key and mouse bindings not used (defaults instead): {exc}"
        return bindings, ""

    def set_bindings(self, bindings: Bindings | None) -> None:
        """Keep ``bindings`` (None: back to the defaults)."""
        if bindings is None or bindings == Bindings():
            self.q.remove("habits/bindings")
        else:
            self.q.setValue("habits/bindings", bindings.to_json())

    def hanging_protocols(self) -> tuple[HangingProtocols, str]:
        """The hanging-protocol table (:mod:`viewer.core.hanging`), and "" - or the defaults and why not."""
        return protocols_from_json(self._get("habits/hanging_protocols", "", str))

    def set_hanging_protocols(self, text: str | None) -> None:
        """Keep the table's JSON ``text`` as the user wrote it (None or "": back to the defaults)."""
        if text:
            self.q.setValue("habits/hanging_protocols", str(text))
        else:
            self.q.remove("habits/hanging_protocols")

    # ---- files ----------------------------------------------------------------------------------------------------
    @property
    def last_folder(self) -> str:
        return self._get("files/last_folder", "", str)

    @last_folder.setter
    def last_folder(self, value: str) -> None:
        self.q.setValue("files/last_folder", str(value))

    @property
    def exports_folder(self) -> str:
        """The folder the user last exported to ("" before the first export)."""
        return self._get("files/exports_folder", "", str)

    @exports_folder.setter
    def exports_folder(self, value: str) -> None:
        self.q.setValue("files/exports_folder", str(value))

    @property
    def recent(self) -> list[list[str]]:
        """Recently opened studies, newest first; each entry is the list of paths that was opened."""
        raw = self._get("files/recent", "[]", str)
        try:
            items = json.loads(raw)
        except ValueError:
            return []
        return [[str(p) for p in item] for item in items if isinstance(item, list) and item][:MAX_RECENT]

    def add_recent(self, paths: list[str]) -> None:
        """Put ``paths`` at the top of the recent list."""
        paths = [str(p) for p in paths]
        items = [paths] + [item for item in self.recent if item != paths]
        self.q.setValue("files/recent", json.dumps(items[:MAX_RECENT]))

    def clear_recent(self) -> None:
        self.q.setValue("files/recent", "[]")

    # ---- AI ----------------------------------------------------------------------------------------------------
    @property
    def models_folder(self) -> str:
        """An extra folder of model bundles (searched after the built-in ones), "" for none."""
        return self._get("ai/models_folder", "", str)

    @models_folder.setter
    def models_folder(self, value: str) -> None:
        self.q.setValue("ai/models_folder", str(value or ""))

    @property
    def batch_results_folder(self) -> str:
        """Where ``hounsfield batch`` results are looked for when a series is opened; "" for the default (the
        folder ``hounsfield batch`` writes to without ``--out``)."""
        return self._get("ai/batch_results_folder", "", str)

    @batch_results_folder.setter
    def batch_results_folder(self, value: str) -> None:
        self.q.setValue("ai/batch_results_folder", str(value or ""))

    @property
    def model_id(self) -> str:
        """The model last chosen in the AI panel."""
        return self._get("ai/model", "", str)

    @model_id.setter
    def model_id(self, value: str) -> None:
        self.q.setValue("ai/model", str(value or ""))

    @property
    def device(self) -> str:
        """Where models run: ``auto`` (cuda > mps > cpu), ``cpu``, ``cuda`` or ``mps``."""
        value = self._get("ai/device", "auto", str)
        return value if value in ("auto", "cpu", "cuda", "mps") else "auto"

    @device.setter
    def device(self, value: str) -> None:
        self.q.setValue("ai/device", str(value))

    @property
    def min_score(self) -> float:
        """Findings below this score are hidden (display only)."""
        return max(0.0, min(1.0, self._get("ai/min_score", 0.5, float)))

    @min_score.setter
    def min_score(self, value: float) -> None:
        self.q.setValue("ai/min_score", float(value))

    # ---- PACS ----------------------------------------------------------------------------------------------------
    def pacs_nodes(self) -> list[PacsNode]:
        """The configured PACS nodes (none when the stored list is unreadable; the message is logged)."""
        try:
            return nodes_from_json(str(self._get("pacs/nodes", "[]", str)))
        except NodeError as exc:
            log.warning("PACS nodes in the settings ignored: %s", exc)
            return []

    def set_pacs_nodes(self, nodes: list[PacsNode]) -> None:
        # Secrets are stored as given (the settings file is the user's own, like a browser profile); they never go
        # to logs: PacsNode's repr leaves them out.
        self.q.setValue("pacs/nodes", nodes_to_json(nodes))

    @property
    def pacs_cache_gb(self) -> float:
        """Cap of the retrieve cache in GB."""
        return max(0.5, min(10_000.0, self._get("pacs/cache_gb", 20.0, float)))

    @pacs_cache_gb.setter
    def pacs_cache_gb(self, value: float) -> None:
        self.q.setValue("pacs/cache_gb", float(value))

    # ---- window geometry ------------------------------------------------------------------------------------------
    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        return self.q.value("window/geometry"), self.q.value("window/state")

    def save_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self.q.setValue("window/geometry", geometry)
        self.q.setValue("window/state", state)
