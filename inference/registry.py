"""The models the app can run: built-in bundles under ``resources/models`` and user bundles in models folders.

A model is a MONAI bundle folder (Model Zoo layout)::

    <bundle>/configs/metadata.json        model card (MONAI schema), optional "hounsfield" block
    <bundle>/configs/inference.json       (or .yaml / .yml) how to build and run it
    <bundle>/models/model.pt              weights (state_dict; loaded with weights_only=True)
    <bundle>/models/model.ts              TorchScript (used only for trusted bundles)

Listing reads these files as JSON only - it imports no torch and evaluates nothing. Everything we show about a
model comes from its metadata: an optional ``"hounsfield"`` block in metadata.json (our built-in bundles carry
one; keys ``id, name, task, modality, labels {"1": {"name", "color"}}, spacing, licence, notice``), then the
standard Model Zoo fields (``name``, ``network_data_format``, ``intended_use``), then a small table of known
Model Zoo bundles (:data:`KNOWN_BUNDLES`).

Folders searched, in order (the first bundle with a given id wins):

1. built-in: ``<resources>/models`` (trusted: they ship with the app);
2. folders passed in (e.g. the Settings entry);
3. ``HOUNSFIELD_MODELS`` (``os.pathsep``-separated);
4. the user's data dir: :func:`user_models_dir`.

A folder may be a bundle itself or contain bundles one level down.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.resources import builtin_models_dir
from inference.safety import literal_value
from inference.suitability import ExpectedInput, expected_input_from_metadata, mapping_at, max_finding_from_metadata
from inference.types import Label, default_color, label_table

TASKS = ("segmentation", "detection", "saliency")
CONFIG_NAMES = ("inference.json", "inference.yaml", "inference.yml")
ENV_MODELS = "HOUNSFIELD_MODELS"
RESEARCH_NOTICE = "For research and demonstration only - not a medical device, not for diagnosis."

#: Facts about Model Zoo bundles that their configs do not state in a machine-readable way.
#: ``overrides`` replace config items before anything is parsed. lung_nodule_ct_detection defaults to inputs
#: already resampled to 0.703x0.703x1.25 mm (``whether_raw_luna16: false`` disables its Spacingd); we always
#: feed the raw DICOM grid, so its own resampling must be on.
KNOWN_BUNDLES: dict[str, dict[str, Any]] = {
    "Lung nodule CT detection": {
        "task": "detection", "labels": {1: "nodule"}, "overrides": {"whether_raw_luna16": True},
        # LUNA16: chest CT; its reference nodules are 3-30 mm, so a box over 40 mm is no nodule it learnt
        "expected_input": {"modality": ["CT"], "body_part": ["CHEST"], "lung_air_fraction": [0.05, 1.0]},
        "max_finding_mm": 40.0,
        "licence": "Apache-2.0 (MONAI Model Zoo bundle); see the bundle's docs for its training data's terms",
    },
    "Spleen CT segmentation": {
        "task": "segmentation", "labels": {1: "spleen"},
        "expected_input": {"modality": ["CT"], "body_part": ["ABDOMEN"]},
        "licence": "Apache-2.0 (MONAI Model Zoo bundle); see the bundle's docs for its training data's terms",
    },
}


class InvalidBundle(ValueError):
    """A folder looks like a bundle but its metadata/config cannot be read (the reason says why)."""


class ModelNotFound(KeyError):
    """No model with this id in any models folder."""


@dataclass(frozen=True)
class ModelInfo:
    """What the app knows about one model without loading it.

    ``labels`` maps label values (1-based; 0 is background) to names, ``colors`` to RGB 0-255.
    ``spacing`` is the voxel size (mm, along the bundle's x, y, z after its Orientation) the model works at,
    when its preprocessing resamples. ``overrides`` are config items replaced before parsing. ``gradcam_layer``
    names the network layer Grad-CAM explains at (empty: no Grad-CAM), ``gradcam_channels`` the network channel of
    each output label where postprocessing changes them. ``expected_input`` is what the model was made for
    (:mod:`inference.suitability`; declared in metadata ``hounsfield.expected_input`` or inferred), and
    ``max_finding_mm`` the longest box side a detection may have (larger ones are dropped with a note).
    ``operating_point`` the score from which a detector's findings are shown by default (metadata
    ``hounsfield.operating_point``, chosen on held-out data and named in the model card).
    """

    id: str
    name: str
    task: str
    path: str
    modality: str = ""
    labels: dict[int, str] = field(default_factory=dict)
    colors: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    spacing: tuple[float, ...] | None = None
    licence: str = ""
    notice: str = RESEARCH_NOTICE
    builtin: bool = False
    trusted: bool = False
    version: str = ""
    description: str = ""
    has_weights: bool = False
    config_file: str = "inference.json"
    overrides: dict[str, Any] = field(default_factory=dict)
    gradcam_layer: str = ""
    gradcam_channels: dict[int, int] = field(default_factory=dict)
    expected_input: ExpectedInput = field(default_factory=ExpectedInput)
    max_finding_mm: float | None = None
    operating_point: float | None = None

    def channel_of(self, label: int) -> int:
        """The network output channel behind output ``label`` (metadata ``hounsfield.gradcam_channels``; default
        the label itself), for Grad-CAM."""
        return int(self.gradcam_channels.get(int(label), int(label)))

    @property
    def table(self) -> dict[int, Label]:
        """``{value: Label}`` with names and colours."""
        return label_table(self.labels, self.colors)

    def to_json(self) -> dict[str, Any]:
        """The ``hounsfield models --json`` record (issue 4 schema, plus display extras)."""
        return {
            "id": self.id, "name": self.name, "task": self.task, "modality": self.modality,
            "labels": {str(k): v for k, v in sorted(self.labels.items())},
            "builtin": self.builtin, "path": self.path, "trusted": self.trusted,
            "colors": {str(k): list(v) for k, v in sorted(self.colors.items())},
            "spacing": list(self.spacing) if self.spacing else None, "licence": self.licence,
            "notice": self.notice, "version": self.version, "has_weights": self.has_weights,
            "expected_input": self.expected_input.to_json(), "max_finding_mm": self.max_finding_mm,
            "operating_point": self.operating_point,
        }


# ---------------------------------------------------------------------------------------------------------------
# Folders.

def user_data_dir() -> Path:
    """The per-user data folder; same rules as ``viewer.core.paths.user_data_dir`` (kept in step by a test)."""
    if override := os.environ.get("HOUNSFIELD_HOME"):
        return Path(override)
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "hounsfield"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "hounsfield"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "hounsfield"


def user_models_dir() -> Path:
    """``<user data dir>/models``: drop a bundle folder here and it is listed."""
    return user_data_dir() / "models"


def model_folders(extra: Iterable[str | os.PathLike] = (), include_builtin: bool = True) -> list[tuple[Path, bool]]:
    """``[(folder, builtin)]`` in search order (see module docstring); missing folders are kept out."""
    folders: list[tuple[Path, bool]] = []
    if include_builtin:
        folders.append((builtin_models_dir(), True))
    folders += [(Path(p), False) for p in extra]
    env = os.environ.get(ENV_MODELS, "")
    folders += [(Path(p), False) for p in env.split(os.pathsep) if p.strip()]
    folders.append((user_models_dir(), False))
    seen, out = set(), []
    for folder, builtin in folders:
        key = str(folder.expanduser().resolve()) if folder.exists() else None
        if key is None or key in seen:
            continue
        seen.add(key)
        out.append((folder.expanduser(), builtin))
    return out


def config_path(bundle: Path) -> Path | None:
    """The bundle's inference config file, or None."""
    for name in CONFIG_NAMES:
        if (bundle / "configs" / name).is_file():
            return bundle / "configs" / name
    return None


def is_bundle(path: Path) -> bool:
    """True when ``path`` has configs/metadata.json and an inference config."""
    return (path / "configs" / "metadata.json").is_file() and config_path(path) is not None


def read_config(path: Path) -> dict:
    """Parse a config file as data (JSON, or YAML when PyYAML is installed); never evaluates anything."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        try:
            import yaml
        except ImportError:
            raise InvalidBundle(f"{path.name}: YAML configs need PyYAML, which is not installed") from None
        data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise InvalidBundle(f"{path.name}: the top level must be a mapping")
    return data


# ---------------------------------------------------------------------------------------------------------------
# Trust: a small JSON file mapping a bundle's resolved path to the hash of its configs at the time it was trusted,
# so editing a trusted bundle's configs revokes the trust.

def trust_file() -> Path:
    """Where trust decisions are kept."""
    return user_data_dir() / "trusted_models.json"


def bundle_fingerprint(bundle: Path) -> str:
    """SHA-256 over the bundle's config files (names and bytes)."""
    digest = hashlib.sha256()
    configs = Path(bundle) / "configs"
    for path in sorted(configs.glob("*")) if configs.is_dir() else []:
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _read_trust() -> dict[str, str]:
    try:
        data = json.loads(trust_file().read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def is_trusted(bundle: str | os.PathLike) -> bool:
    """True when the user trusted this bundle and its configs have not changed since."""
    bundle = Path(bundle).resolve()
    return _read_trust().get(str(bundle)) == bundle_fingerprint(bundle)


def set_trusted(bundle: str | os.PathLike, trusted: bool = True) -> None:
    """Record (or withdraw) the user's trust in a bundle as it is now."""
    bundle = Path(bundle).resolve()
    data = _read_trust()
    if trusted:
        data[str(bundle)] = bundle_fingerprint(bundle)
    else:
        data.pop(str(bundle), None)
    path = trust_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------------------------
# Reading one bundle.

def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "-", text.lower()).strip("-") or "model"


def _color(value: Any, fallback: tuple[int, int, int]) -> tuple[int, int, int]:
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(c, (int, float)) for c in value):
        return tuple(int(max(0, min(255, c))) for c in value)  # type: ignore[return-value]
    if isinstance(value, str) and re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        return tuple(int(value[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    return fallback


def _int_map(value: Any) -> dict[int, int]:
    if not isinstance(value, dict):
        return {}
    return {int(k): int(v) for k, v in value.items() if str(k).isdigit() and str(v).isdigit()}


def guess_task(config: dict, metadata: dict) -> str:
    """``detection`` when the config builds a detector or the output is a box dict, ``saliency`` when declared,
    else ``segmentation``."""
    if "detector" in config:
        return "detection"
    outputs = metadata.get("network_data_format", {}).get("outputs", {}) if isinstance(metadata, dict) else {}
    pred = outputs.get("pred", {}) if isinstance(outputs, dict) else {}
    if isinstance(pred, dict):
        if pred.get("format") == "dict" or pred.get("type") == "object":
            return "detection"
        if pred.get("format") in ("saliency", "heatmap"):
            return "saliency"
    return "segmentation"


def _preprocessing_spacing(config: dict) -> tuple[float, ...] | None:
    pre = config.get("preprocessing")
    transforms = pre.get("transforms", []) if isinstance(pre, dict) else []
    if not isinstance(transforms, list):
        return None
    for t in transforms:
        name = str(t.get("_target_", "")).split(".")[-1] if isinstance(t, dict) else ""
        if name not in ("Spacingd", "Spacing", "SeparableSpacingd"):
            continue
        try:
            if literal_value(config, t.get("_disabled_", False)):
                continue
            pixdim = literal_value(config, t.get("pixdim"))
        except ValueError:
            return None
        if isinstance(pixdim, (int, float)):
            pixdim = [pixdim] * 3
        if isinstance(pixdim, list) and all(isinstance(v, (int, float)) for v in pixdim):
            return tuple(float(v) for v in pixdim)
    return None


def read_bundle(bundle: str | os.PathLike, builtin: bool = False, trusted: bool | None = None) -> ModelInfo:
    """Describe one bundle from its metadata and config (JSON only; no torch, nothing evaluated).

    Raises
    ------
    InvalidBundle
        When metadata.json or the inference config is missing or unreadable.
    """
    bundle = Path(bundle)
    cfg_path = config_path(bundle)
    meta_path = bundle / "configs" / "metadata.json"
    if cfg_path is None or not meta_path.is_file():
        raise InvalidBundle(f"{bundle.name}: not a MONAI bundle (needs configs/metadata.json and "
                            f"configs/inference.json)")
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
        config = read_config(cfg_path)
    except InvalidBundle:
        raise
    except RecursionError:  # a hostile or broken file nesting thousands of levels deep
        raise InvalidBundle(f"{bundle.name}: a config nests too deeply to read") from None
    except (OSError, ValueError) as exc:
        raise InvalidBundle(f"{bundle.name}: cannot read its configs ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - e.g. YAML errors: one bad bundle never hides the others
        raise InvalidBundle(f"{bundle.name}: cannot read its configs ({type(exc).__name__})") from None
    if not isinstance(metadata, dict):
        raise InvalidBundle(f"{bundle.name}: metadata.json must be a mapping")
    ours = mapping_at(metadata, "hounsfield")
    known = KNOWN_BUNDLES.get(str(metadata.get("name", "")), {})
    overrides = {**known.get("overrides", {}), **(ours.get("overrides") or {})}
    effective = {**config, **overrides}

    task = ours.get("task") or known.get("task") or guess_task(config, metadata)
    if task not in TASKS:
        raise InvalidBundle(f"{bundle.name}: unknown task '{task}' (expected one of {', '.join(TASKS)})")

    labels: dict[int, str] = {}
    colors: dict[int, tuple[int, int, int]] = {}
    if isinstance(ours.get("labels"), dict):
        for key, value in ours["labels"].items():
            if not str(key).lstrip("-").isdigit() or int(key) == 0:
                continue
            value_int = int(key)
            if isinstance(value, dict):
                labels[value_int] = str(value.get("name", f"label {value_int}"))
                colors[value_int] = _color(value.get("color"), default_color(value_int))
            else:
                labels[value_int] = str(value)
    elif known.get("labels"):
        labels = {int(k): str(v) for k, v in known["labels"].items()}
    else:
        try:
            channel_def = metadata["network_data_format"]["outputs"]["pred"]["channel_def"]
            labels = {int(k): str(v) for k, v in channel_def.items()
                      if str(k).isdigit() and int(k) > 0 and str(v).lower() != "background"}
        except (KeyError, TypeError, AttributeError):
            labels = {}
    if not labels:
        labels = {1: "finding" if task == "detection" else "foreground"}
    for value in labels:
        colors.setdefault(value, default_color(value))

    try:
        image = metadata["network_data_format"]["inputs"]["image"]
        modality = str(ours.get("modality") or image.get("modality", ""))
    except (KeyError, TypeError, AttributeError):
        modality = str(ours.get("modality", ""))

    spacing = ours.get("spacing")
    spacing = tuple(float(v) for v in spacing) if isinstance(spacing, list) else _preprocessing_spacing(effective)

    licence = str(ours.get("licence") or metadata.get("license") or known.get("licence") or "")
    if not licence and (bundle / "LICENSE").is_file():
        try:
            licence = (bundle / "LICENSE").read_text(encoding="utf-8", errors="replace").strip().splitlines()[0][:120]
        except (OSError, IndexError):
            licence = ""
    intended = str(metadata.get("intended_use", "")).strip()
    notice = str(ours.get("notice") or (f"{intended.rstrip('.')}. {RESEARCH_NOTICE}" if intended else RESEARCH_NOTICE))

    model_id = _slug(str(ours.get("id") or bundle.name))
    if trusted is None:
        trusted = True if builtin else is_trusted(bundle)
    weights = bundle / "models"
    return ModelInfo(
        id=model_id, name=str(ours.get("name") or metadata.get("name") or bundle.name), task=task,
        path=str(bundle.resolve()), modality=modality, labels=labels, colors=colors, spacing=spacing,
        licence=licence, notice=notice, builtin=builtin, trusted=bool(trusted),
        version=str(metadata.get("version", "")), description=str(metadata.get("description", "")),
        has_weights=(weights / "model.pt").is_file() or (weights / "model.ts").is_file(),
        config_file=cfg_path.name, overrides=overrides, gradcam_layer=str(ours.get("gradcam_layer") or ""),
        gradcam_channels=_int_map(ours.get("gradcam_channels")),
        expected_input=expected_input_from_metadata(metadata, known),
        max_finding_mm=max_finding_from_metadata(metadata, known),
        operating_point=_probability(ours.get("operating_point")),
    )


def _probability(value) -> float | None:
    """A score in [0, 1] from metadata, else None."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0
    return float(value) if ok else None


# ---------------------------------------------------------------------------------------------------------------
# Discovery.

def scan_models(extra_dirs: Iterable[str | os.PathLike] = (), include_builtin: bool = True
                ) -> tuple[list[ModelInfo], list[tuple[str, str]]]:
    """Every model in the models folders, and ``[(path, reason)]`` for bundles that could not be read
    or whose id was already taken."""
    models: list[ModelInfo] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for folder, builtin in model_folders(extra_dirs, include_builtin):
        candidates = [folder] if is_bundle(folder) else sorted(
            p for p in folder.iterdir() if p.is_dir() and (p / "configs").is_dir()) if folder.is_dir() else []
        for path in candidates:
            try:
                info = read_bundle(path, builtin=builtin)
            except InvalidBundle as exc:
                problems.append((str(path), str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - one bad bundle (any fault in its metadata) never hides the others
                problems.append((str(path), f"{path.name}: unreadable bundle ({type(exc).__name__})"))
                continue
            if info.id in seen:
                problems.append((str(path), f"id '{info.id}' is already used by another model; skipped"))
                continue
            seen.add(info.id)
            models.append(info)
    return models, problems


def list_models(extra_dirs: Iterable[str | os.PathLike] = (), include_builtin: bool = True) -> list[ModelInfo]:
    """The runnable catalogue (see :func:`scan_models` for the ones left out and why)."""
    return scan_models(extra_dirs, include_builtin)[0]


def find_model(model_id_or_path: str | os.PathLike, extra_dirs: Iterable[str | os.PathLike] = ()) -> ModelInfo:
    """A model by registry id, or by the path of a bundle folder.

    Raises
    ------
    ModelNotFound
        Listing the ids that exist.
    """
    candidate = Path(model_id_or_path)
    if candidate.is_dir() and is_bundle(candidate):
        return read_bundle(candidate)
    models = list_models(extra_dirs)
    for info in models:
        if info.id == str(model_id_or_path):
            return info
    known = ", ".join(m.id for m in models) or "none"
    raise ModelNotFound(f"no model '{model_id_or_path}' (available: {known})")
