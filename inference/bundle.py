"""Load a MONAI bundle (Model Zoo layout) offline and build only what inference needs.

What is built, per task (everything else in the config is never parsed, checked or run):

- segmentation / saliency: ``network_def``, ``preprocessing``, ``inferer``, ``postprocessing`` - the same four
  pieces MONAI's ``SupervisedEvaluator`` is given. File readers/writers inside the transform lists are dropped
  (the volume is passed in memory, results are returned). Missing ``preprocessing``/``postprocessing`` are
  allowed; a missing ``inferer`` means one forward pass (``SimpleInferer``).
- detection: ``network_def``, ``preprocessing`` and ``detector`` (with the ``detector_ops`` calls that configure
  it). The bundle's ``inferer`` is *not* built: in the Model Zoo it is bundle script code
  (``scripts.detection_inferer.RetinaNetInferer``) whose only job - sliding windows for large images, one pass
  for small ones, optionally forced by ``force_sliding_window`` - :mod:`inference.task` does itself. Its
  ``postprocessing`` (clip boxes, convert to world coordinates, change box mode) is not built either: we map boxes
  to LPS mm and to our voxel grid exactly (:mod:`inference.geometry`), and those transforms only serve its
  file writer.

Before MONAI sees the config, :func:`inference.safety.prepare_config` checks and rewrites it (untrusted
bundles) - see that module for the allow-list. ``bundle_root`` and ``device`` are ours to set. Weights come only
from ``models/model.pt`` through ``torch.load(..., weights_only=True)``; ``models/model.ts`` (TorchScript, which
can run arbitrary code) only for trusted bundles. Sockets are closed while the bundle is built, so a network
that tries to download pretrained weights fails instead of reaching out.
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from inference.registry import ModelInfo, read_bundle, read_config
from inference.safety import BundleSafetyError, literal_value, prepare_config

__all__ = ["BundleError", "BundleSafetyError", "LoadedBundle", "load_bundle", "no_network", "roots_for"]


class BundleError(RuntimeError):
    """The bundle cannot be built or its weights cannot be loaded (the message says why)."""


@dataclass
class LoadedBundle:
    """A built bundle, ready for :func:`inference.task.run_bundle`.

    ``network`` is in eval mode on ``device``. ``detector`` is set for detection bundles (its ``network`` is
    ``network``). ``dropped`` lists config entries left out on purpose; ``weights`` says where the weights came
    from (``models/model.pt``, ``models/model.ts`` or ``random``).
    """

    info: ModelInfo
    network: Any
    device: Any
    preprocessing: Callable | None = None
    inferer: Any = None
    postprocessing: Callable | None = None
    detector: Any = None
    image_key: str = "image"
    pred_key: str = "pred"
    force_sliding_window: bool = False
    dropped: list[str] = field(default_factory=list)
    weights: str = ""
    #: sha256 of the weights file, the network definition and the preprocessing config: two bundles with the same
    #: key turn the same volume into the same network input and output (:mod:`inference.task` shares the run).
    #: Empty for random weights (never shared).
    network_key: str = ""
    #: Config ``crop_to_body`` (``{"threshold_hu": -500, "margin_mm": 10}``, optional ``skip_one_pass``, default
    #: true): the model's image is cropped in-plane to the patient (:func:`inference.task._prepare`) when it would
    #: need sliding windows; None: no crop.
    crop_to_body: dict | None = None
    #: Config ``nodule_classifier`` of a segmentation bundle (weights ``models/classifier.pt``): its nodule label is
    #: checked and redrawn by :func:`inference.confirm_nodules.confirm_nodules`. None: the network's label as it is.
    nodule_classifier: Any = None
    #: Config ``nodule_finder`` of a segmentation bundle: a :class:`inference.models.seg_detector.
    #: SegmentationDetector` on its network, whose candidates ``nodule_classifier`` keeps at the operating point
    #: are drawn into the nodule label too (the detector's findings the network's own label missed). None: not.
    nodule_finder: Any = None
    #: sha256 of what turns the network output into scored nodule findings - the detector's (or ``nodule_finder``'s)
    #: config, the classifier's weights and the largest finding size - on top of ``network_key``: a detection bundle
    #: and a segmentation bundle with the same key find the same findings (:mod:`inference.task` makes them once).
    #: Empty when there is nothing to share.
    findings_key: str = ""

    @property
    def task(self) -> str:
        """``segmentation``, ``detection`` or ``saliency``."""
        return self.info.task

    def to(self, device) -> LoadedBundle:
        """Move the network (and the detector's anchors cache) to ``device``; returns self."""
        import torch

        device = torch.device(device)
        self.network.to(device)
        if self.detector is not None:
            self.detector.anchors = None  # regenerated on the new device
        self.device = device
        return self


def roots_for(task: str) -> tuple[list[str], list[str], dict[str, str]]:
    """``(roots, optional roots, method roots)`` built for a task."""
    if task == "detection":
        return ["network_def", "preprocessing", "detector"], ["preprocessing"], {"detector_ops": "detector"}
    return (["network_def", "preprocessing", "inferer", "postprocessing", "nodule_classifier", "nodule_finder"],
            ["preprocessing", "inferer", "postprocessing", "nodule_classifier", "nodule_finder"], {})


_socket_lock = threading.Lock()


@contextlib.contextmanager
def no_network():
    """Make every socket connection and name lookup in this process fail while the block runs."""

    def refuse(*_args, **_kwargs):
        raise OSError("network access is disabled while a model bundle is loaded (no downloads at run time)")

    with _socket_lock:
        saved = socket.socket.connect, socket.socket.connect_ex, socket.create_connection, socket.getaddrinfo
        socket.socket.connect = refuse  # type: ignore[method-assign]
        socket.socket.connect_ex = refuse  # type: ignore[method-assign]
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        try:
            yield
        finally:
            (socket.socket.connect, socket.socket.connect_ex, socket.create_connection,  # type: ignore[method-assign]
             socket.getaddrinfo) = saved


def _state_dict(obj: Any) -> dict:
    import torch

    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = obj
    elif isinstance(obj, dict):
        for key in ("model", "state_dict", "network", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                return _state_dict(obj[key])
        raise BundleError("models/model.pt holds no state_dict (expected tensors, or a 'model'/'state_dict' entry)")
    else:
        raise BundleError("models/model.pt is not a state_dict")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _network_key(bundle_dir: Path, source: str, raw: dict, image_key: str) -> str:
    """See ``LoadedBundle.network_key``."""
    import hashlib
    import json

    if source not in ("models/model.pt", "models/model.ts"):
        return ""
    digest = hashlib.sha256()
    with open(bundle_dir / source, "rb") as weights:
        for chunk in iter(lambda: weights.read(1 << 20), b""):
            digest.update(chunk)
    # all but what acts after the network input is made (whatever preprocessing refers to stays in); how the
    # network is applied (inferer / detector windows) is compared separately, per image, by inference.task
    config = {k: v for k, v in raw.items()
              if k not in ("inferer", "postprocessing", "detector", "detector_ops", "nodule_classifier",
                           "nodule_finder")}
    config["image_key"] = image_key
    digest.update(json.dumps(config, sort_keys=True, default=repr).encode())
    return digest.hexdigest()


def _findings_key(bundle_dir: Path, network_key: str, raw: dict, info) -> str:
    """See ``LoadedBundle.findings_key``: for a detector with a second stage, or a segmentation with a nodule
    finder and classifier; ``""`` otherwise."""
    import hashlib
    import json

    finder = raw.get("detector" if info.task == "detection" else "nodule_finder")
    weights = bundle_dir / "models" / "classifier.pt"
    if not network_key or not isinstance(finder, dict) or not weights.is_file():
        return ""
    if info.task == "detection" and "classifier" not in finder:
        return ""
    digest = hashlib.sha256(network_key.encode())
    digest.update(weights.read_bytes())
    settings = {k: v for k, v in finder.items() if k not in ("network", "classifier")}
    digest.update(json.dumps([settings, info.max_finding_mm], sort_keys=True, default=repr).encode())
    return digest.hexdigest()


def _load_weights(network, bundle_dir: Path, trusted: bool, random_weights: bool, device):
    """Returns ``(network, source)``; the network is replaced only by a TorchScript module."""
    import torch

    pt, ts = bundle_dir / "models" / "model.pt", bundle_dir / "models" / "model.ts"
    if pt.is_file():
        try:
            checkpoint = torch.load(pt, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - pickle errors come in many types
            raise BundleError(f"models/model.pt cannot be read as plain weights (weights_only=True): "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
        try:
            network.load_state_dict(_state_dict(checkpoint), strict=True)
        except RuntimeError as exc:
            raise BundleError(f"models/model.pt does not fit the network: {str(exc)[:600]}") from None
        return network, "models/model.pt"
    if ts.is_file():
        if not trusted:
            raise BundleError("this bundle only has TorchScript weights (models/model.ts), which can run arbitrary "
                              "code: mark the bundle trusted to use them")
        return torch.jit.load(str(ts), map_location=device), "models/model.ts"
    if random_weights:
        return network, "random"
    raise BundleError("no weights: models/model.pt is missing from the bundle")


def _load_classifier(detector, bundle_dir: Path) -> None:
    """Weights of a detector's second stage (``detector.classifier``) from ``models/classifier.pt`` (plain
    weights only); without that file the detector runs its first stage alone (``classifier`` set to None)."""
    import torch

    classifier = getattr(detector, "classifier", None)
    if classifier is None:
        return
    path = bundle_dir / "models" / "classifier.pt"
    if not path.is_file():
        detector.classifier = None
        return
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        classifier.load_state_dict(_state_dict(state), strict=True)
    except Exception as exc:  # noqa: BLE001 - pickle and shape errors come in many types
        raise BundleError(f"models/classifier.pt does not fit the detector's classifier: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None
    classifier.eval()


def load_bundle(model: ModelInfo | str | os.PathLike, *, device=None, trusted: bool | None = None,
                random_weights: bool = False, overrides: dict[str, Any] | None = None) -> LoadedBundle:
    """Build a bundle's inference pieces offline.

    Parameters
    ----------
    model
        A registry entry or a bundle folder.
    device
        A torch device or its name; default the best available (:func:`inference.device.choose_device`).
    trusted
        Override the registry's trust flag (True lets ``$`` expressions, ``scripts.*`` and TorchScript run).
    random_weights
        Keep the network's random initialisation when the bundle has no weights (tests, benchmarks).
    overrides
        Config items to replace before parsing (e.g. a smaller ``infer_patch_size``), on top of the registry's.

    Raises
    ------
    BundleSafetyError
        The config contains entries outside the allow-list (nothing was executed).
    BundleError
        The config cannot be built, or the weights are missing or do not fit.
    """
    import torch
    from monai.bundle import ConfigParser

    from inference.device import choose_device

    info = model if isinstance(model, ModelInfo) else read_bundle(model)
    bundle_dir = Path(info.path)
    trusted = info.trusted if trusted is None else bool(trusted)
    device = choose_device(device) if device is None or isinstance(device, str) else torch.device(device)
    raw = read_config(bundle_dir / "configs" / info.config_file)
    raw.update(info.overrides)
    raw.update(overrides or {})
    roots, optional, method_roots = roots_for(info.task)
    inject = {"bundle_root": str(bundle_dir), "device": device}
    prepared = prepare_config(raw, roots, trusted=trusted, inject=inject, optional=optional,
                              method_roots=method_roots, source=f"configs/{info.config_file}")
    try:
        image_key = str(literal_value(raw, raw.get("image_key", "image")))
        force_sw = bool(literal_value(raw, raw.get("force_sliding_window", False)))
        crop = literal_value(raw, raw.get("crop_to_body")) if "crop_to_body" in raw else None
    except ValueError:
        image_key, force_sw, crop = "image", False, None
    crop = {str(k): float(v) for k, v in crop.items()} if isinstance(crop, dict) else None

    with no_network(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        added_path = False
        if trusted and str(bundle_dir) not in sys.path:
            sys.path.insert(0, str(bundle_dir))  # a trusted bundle's `scripts` package
            added_path = True
        try:
            scope: Any = False  # untrusted: nothing left to evaluate, so no globals at all
            if trusted:
                import inference.models.resnet_fpn  # noqa: F401 - named by rewritten expressions

                scope = {"monai": "monai", "torch": "torch", "np": "numpy", "numpy": "numpy",
                         "inference": "inference"}
            parser = ConfigParser(prepared.config, globals=scope)
            if trusted and "imports" in prepared.config:
                parser.get_parsed_content("imports")

            def build(key: str) -> Any:
                return parser.get_parsed_content(key, instantiate=True) if key in prepared.config else None

            network = build("network_def")
            if not isinstance(network, torch.nn.Module):
                raise BundleError("network_def did not build a torch.nn.Module")
            preprocessing = build("preprocessing")
            inferer = build("inferer") if info.task != "detection" else None
            postprocessing = build("postprocessing") if info.task != "detection" else None
            detector = build("detector") if info.task == "detection" else None
            nodule_check = build("nodule_classifier") if info.task == "segmentation" else None
            finder = build("nodule_finder") if info.task == "segmentation" else None
            if info.task == "detection":
                if detector is None:
                    raise BundleError("a detection bundle needs a 'detector' item")
                if trusted and "detector_ops" in prepared.config:
                    parser.get_parsed_content("detector_ops")
                for _owner, method, kwargs in prepared.method_calls:
                    getattr(detector, method)(**kwargs)
        except (BundleSafetyError, BundleError):
            raise
        except Exception as exc:  # noqa: BLE001 - MONAI raises many types while instantiating
            root: BaseException = exc
            while root.__cause__ is not None and root.__cause__ is not root:
                root = root.__cause__
            detail = f"{type(exc).__name__}: {str(exc).strip()[:400]}"
            if root is not exc:
                detail += f" (cause: {type(root).__name__}: {str(root).strip()[:400]})"
            raise BundleError(f"cannot build the bundle: {detail}") from exc
        finally:
            if added_path:
                sys.path.remove(str(bundle_dir))

    network, source = _load_weights(network, bundle_dir, trusted, random_weights, device)
    if detector is not None:
        detector.network = network
        _load_classifier(detector, bundle_dir)
        detector.eval()
    if nodule_check is not None:
        holder = SimpleNamespace(classifier=nodule_check)
        _load_classifier(holder, bundle_dir)
        nodule_check = holder.classifier
    if finder is not None:
        finder.network = network
        finder.eval()
    network.eval()
    if inferer is None and info.task != "detection":
        from monai.inferers import SimpleInferer

        inferer = SimpleInferer()
    network_key = _network_key(bundle_dir, source, raw, image_key)
    loaded = LoadedBundle(info=info, network=network, device=device, preprocessing=preprocessing, inferer=inferer,
                          postprocessing=postprocessing, detector=detector, image_key=image_key,
                          force_sliding_window=force_sw, dropped=list(prepared.dropped), weights=source,
                          network_key=network_key, crop_to_body=crop, nodule_classifier=nodule_check,
                          nodule_finder=finder, findings_key=_findings_key(bundle_dir, network_key, raw, info))
    return loaded.to(device)
