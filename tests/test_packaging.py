"""The desktop integration and the bundle rules, checked without building (``make dist-check`` runs the build)."""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "packaging"))

import bundle_rules  # noqa: E402


def test_the_desktop_entry_opens_dicom_files_and_dicomdirs():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(REPO / "packaging" / "hounsfield.desktop")
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application" and desktop["Exec"] == "hounsfield %F" and desktop["Icon"] == "hounsfield"
    assert set(desktop["MimeType"].strip(";").split(";")) == {"application/dicom", "application/x-dicom-dicomdir"}
    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    types = ET.parse(REPO / "packaging" / "linux" / "hounsfield-mime.xml").getroot().findall("m:mime-type", ns)
    declared = {t.get("type"): t for t in types}
    assert set(declared) == {"application/dicom", "application/x-dicom-dicomdir"}
    magic = declared["application/dicom"].find("m:magic/m:match", ns)
    assert (magic.get("value"), magic.get("offset")) == ("DICM", "128")
    assert declared["application/x-dicom-dicomdir"].find("m:glob", ns).get("pattern") == "DICOMDIR"
    assert (REPO / "resources" / "icons" / "hounsfield.png").stat().st_size > 1000


def test_the_bundle_keeps_what_the_app_runs_and_drops_tests():
    keep = ["torch/bin/torch_shm_manager", "torch/lib/libtorch_cpu.so", "PySide6/Qt/plugins/platforms/libqxcb.so",
            "PySide6/Qt/plugins/platforms/libqoffscreen.so", "PySide6/Qt/plugins/platforms/libqwayland.so",
            "pydicom/data/charset_files/x.dcm", "resources/models/a/configs/inference.json"]
    drop = ["torch/bin/test_api", "torch/bin/protoc", "torch/test/x", "torch/include/ATen/x.h",
            "PySide6/Qt/translations/qt_de.qm", "PySide6/Qt/plugins/platformthemes/libqgtk3.so",
            "pydicom/data/test_files/CT_small.dcm", "numpy/__init__.pyi"]
    assert [p for p in keep if bundle_rules.excluded_file(p)] == []
    assert [p for p in drop if not bundle_rules.excluded_file(p)] == []
    assert bundle_rules.monai_module_wanted("monai.apps.detection.transforms.dictionary")
    assert not bundle_rules.monai_module_wanted("monai.apps.pathology.transforms")


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("sh") is None, reason="Linux install.sh")
def test_install_sh_installs_into_a_prefix_and_uninstalls(tmp_path):
    app = tmp_path / "hounsfield-0.1.0"
    (app / "share").mkdir(parents=True)
    shutil.copy(REPO / "packaging" / "linux" / "install.sh", app / "install.sh")
    for source, name in (("packaging/hounsfield.desktop", "hounsfield.desktop"),
                         ("packaging/linux/hounsfield-mime.xml", "hounsfield-mime.xml"),
                         ("resources/icons/hounsfield.png", "hounsfield.png"),
                         ("resources/icons/hounsfield.svg", "hounsfield.svg")):
        shutil.copy(REPO / source, app / "share" / name)
    exe = app / "hounsfield"
    exe.write_text("#!/bin/sh\necho 'hounsfield 0.1.0'\n")
    exe.chmod(0o755)
    prefix = tmp_path / "prefix"
    env = dict(os.environ, PREFIX=str(prefix), HOME=str(tmp_path / "home"))
    result = subprocess.run(["sh", str(app / "install.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Hounsfield 0.1.0 installed" in result.stdout
    installed = prefix / "lib" / "hounsfield"
    assert (prefix / "bin" / "hounsfield").resolve() == (installed / "hounsfield").resolve()
    desktop = (prefix / "share" / "applications" / "hounsfield.desktop").read_text()
    assert f"Exec={installed}/hounsfield %F" in desktop
    assert (prefix / "share" / "mime" / "packages" / "hounsfield.xml").exists()
    assert (prefix / "share" / "icons" / "hicolor" / "256x256" / "apps" / "hounsfield.png").exists()
    assert not (tmp_path / "home").exists()  # nothing outside the prefix
    result = subprocess.run(["sh", str(installed / "install.sh"), "--uninstall"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not installed.exists() and not (prefix / "bin" / "hounsfield").exists()
    assert not (prefix / "share" / "applications" / "hounsfield.desktop").exists()


def test_ray_stays_out_of_the_frozen_app():
    """Ray (the optional extra ``batch``) is excluded from the bundle, and the app's modules import it only inside
    the batch commands: importing every batch module (as PyInstaller's collect_submodules does) loads no Ray."""
    import ast

    spec = ast.parse((REPO / "packaging" / "hounsfield.spec").read_text())
    excludes = next(kw.value for node in ast.walk(spec) if isinstance(node, ast.Call)
                    and getattr(node.func, "id", "") == "Analysis" for kw in node.keywords if kw.arg == "excludes")
    assert "ray" in ast.literal_eval(excludes)
    modules = sorted(p.stem for p in (REPO / "viewer" / "services" / "batch").glob("*.py") if p.stem != "__init__")
    code = ("import sys, viewer.cli, viewer.cli_batch, viewer.qt.batch_results; "
            + "; ".join(f"import viewer.services.batch.{m}" for m in modules) + "; print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert len(modules) >= 8 and out.stdout.strip() == "False"
