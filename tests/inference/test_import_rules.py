"""The architecture rules for inference/: no Qt, no viewer, and listing models loads no torch."""
from __future__ import annotations

import ast
import json
from pathlib import Path

from tests.inference.helpers import run_in_subprocess

PACKAGE = Path(__file__).resolve().parents[2] / "inference"


def test_importing_inference_and_registry_loads_no_torch_monai_or_qt():
    out = run_in_subprocess(
        "import sys, json\n"
        "import inference, inference.registry, inference.types, inference.resources, inference.safety\n"
        "import inference.task, inference.device, inference.geometry, inference.models\n"
        "from inference.registry import list_models\n"
        "list_models()\n"
        "print(json.dumps({m: m in sys.modules for m in ('torch', 'monai', 'PySide6', 'pyqtgraph', 'viewer')}))\n")
    loaded = json.loads(out.strip().splitlines()[-1])
    assert loaded == {"torch": False, "monai": False, "PySide6": False, "pyqtgraph": False, "viewer": False}


def test_listing_the_zoo_bundles_loads_no_torch():
    from tests.inference.helpers import ZOO

    out = run_in_subprocess(
        "import sys\n"
        "from inference.registry import list_models\n"
        f"models = list_models([{str(ZOO)!r}])\n"
        "print(len(models), 'torch' in sys.modules, 'monai' in sys.modules)\n")
    count, torch_loaded, monai_loaded = out.split()
    assert torch_loaded == "False" and monai_loaded == "False"
    assert int(count) >= (2 if ZOO.is_dir() else 0)


def test_no_module_of_inference_imports_viewer_or_qt():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in ("viewer", "PySide6", "pyqtgraph", "torchvision"):
                    offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert not offenders, offenders


def test_torch_load_is_only_ever_called_with_weights_only_true():
    calls = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                flags = {k.arg: getattr(k.value, "value", None) for k in node.keywords}
                calls.append((str(path.name), flags.get("weights_only")))
    assert calls, "expected at least one torch.load (the weights loader)"
    assert all(flag is True for _, flag in calls), calls
