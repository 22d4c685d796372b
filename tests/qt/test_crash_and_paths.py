"""The desktop app's own habits: user folders where QStandardPaths puts them, an unhandled exception that shows a
dialog naming the log and autosaves the edits first, ``--version``, and ``--smoke-test`` failing loudly."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QStandardPaths, QTimer

from tests.qt.conftest import drag, widget_pos_of_voxel

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="QStandardPaths' Linux places")
def test_core_paths_are_the_ones_qstandardpaths_gives_the_app(themed_app, monkeypatch, tmp_path):
    from viewer.core import paths
    from viewer.qt.app import create_application

    monkeypatch.delenv("HOUNSFIELD_HOME", raising=False)
    for name in ("DATA", "CONFIG", "CACHE", "STATE"):
        monkeypatch.setenv(f"XDG_{name}_HOME", str(tmp_path / name.lower()))
    app = create_application()
    assert (app.applicationName(), app.organizationName()) == ("hounsfield", "")
    loc = QStandardPaths.StandardLocation

    def qt(location):
        return Path(QStandardPaths.writableLocation(location))

    assert qt(loc.AppDataLocation) == paths.user_data_dir()
    assert qt(loc.AppConfigLocation) == paths.user_config_dir()
    assert qt(loc.CacheLocation) == paths.user_cache_dir()
    assert qt(loc.StateLocation) / "logs" == paths.user_log_dir()


def test_settings_move_from_the_old_data_folder_to_the_config_folder(monkeypatch, tmp_path):
    from viewer.qt.settings import default_qsettings

    monkeypatch.delenv("HOUNSFIELD_HOME", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    old = tmp_path / "data" / "hounsfield" / "settings.ini"
    old.parent.mkdir(parents=True)
    old.write_text("[view]\nlayout=2x2\n")
    q = default_qsettings()
    assert Path(q.fileName()) == tmp_path / "config" / "hounsfield" / "settings.ini"
    assert q.value("view/layout") == "2x2"


def test_an_unhandled_exception_autosaves_logs_and_shows_the_log_path(lidc_window, qtbot, monkeypatch, tmp_path):
    from viewer.core.editing.autosave import find_restorable
    from viewer.core.logs import REDACTED, setup_file_logging, stop_file_logging
    from viewer.qt import crash
    from viewer.qt.main_window import MainWindow

    monkeypatch.setattr(MainWindow, "ask_unsaved", lambda self, action: "discard")
    window, viewer = lidc_window, lidc_window.viewer
    view, an = viewer.active_view, lidc_window.annotation
    viewer.state.set_slice("axial", 66)
    viewer.set_tool("brush")
    p0, p1 = widget_pos_of_voxel(view, (200.0, 200.0, 66)), widget_pos_of_voxel(view, (260.0, 230.0, 66))
    drag(view.viewport(), p0, p1, steps=10)
    assert an.modified and find_restorable() == []  # painted, not yet autosaved (it waits for the edits to age)

    shown = []
    monkeypatch.setattr(crash, "show_crash_dialog", lambda text, details: shown.append((text, details)))
    log_path = setup_file_logging(tmp_path / "logs")
    uninstall = crash.install_crash_handler()
    try:
        def broken_slot():
            raise RuntimeError(f"simulated bug while showing {window.catalog.patients[0].patient_id}")

        QTimer.singleShot(0, broken_slot)
        qtbot.waitUntil(lambda: bool(shown), timeout=10_000)
    finally:
        uninstall()
        stop_file_logging()
        logging.getLogger().setLevel(logging.WARNING)
    text, details = shown[0]
    assert str(log_path) in text and "autosaved" in text
    assert "RuntimeError" in text and "LIDC-IDRI-0001" not in text and REDACTED in text
    assert "broken_slot" in details
    assert [info.series_uid for info in find_restorable()] == [viewer.volume.series_uid]  # the edits survive
    logged = log_path.read_text()
    assert "unhandled exception" in logged and "simulated bug" in logged and "LIDC-IDRI-0001" not in logged
    assert window.isVisible()  # the app keeps running


def _env(tmp_path):
    return dict(os.environ, QT_QPA_PLATFORM="offscreen", HOUNSFIELD_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO))


def test_version_flag(tmp_path):
    from viewer import __version__

    result = subprocess.run([sys.executable, "-m", "viewer", "--version"], capture_output=True, text=True,
                            env=_env(tmp_path), timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"hounsfield {__version__}"


def test_smoke_test_fails_loudly_when_the_study_cannot_be_opened(themed_app, tmp_path, capsys):
    from viewer.qt.app import run_gui

    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_gui([str(empty)], smoke_test=True, smoke_timeout=60) == 1
    out, err = capsys.readouterr()
    assert "FAILED: opening failed" in err and '"ok": false' in out


def test_smoke_test_fails_on_its_deadline(themed_app, lidc_dir, capsys):
    from viewer.qt.app import run_gui

    assert run_gui([str(lidc_dir)], smoke_test=True, smoke_timeout=0.001) == 1
    assert "FAILED: timed out after 0.001 s" in capsys.readouterr().err


def test_smoke_test_runs_the_sample_study_and_both_models(tmp_path):
    """The real entry point in a child process, as ``make dist-check`` runs the frozen app (~30 s on one core)."""
    import json

    result = subprocess.run([sys.executable, "-m", "viewer", "--smoke-test"], capture_output=True, text=True,
                            env=_env(tmp_path), timeout=600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("SMOKE-TEST ")]
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(lines[-1].split(" ", 1)[1])
    assert report["ok"] and report["models"] == ["detection", "segmentation"] and report["findings"] > 0
    assert {"lung_left", "lung_right"} <= set(report["labels"]) and report["colours"] >= 16
    assert 0 < report["first_window_s"] <= report["first_image_s"] <= report["done_s"]
    assert (tmp_path / "home" / "logs" / "hounsfield.log").exists()
