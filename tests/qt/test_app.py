"""Entry points and ways of opening: run_gui, the sample study, a DICOMDIR, dropped files, recent studies."""
from __future__ import annotations

from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication

from tests.qt.conftest import open_and_wait


def test_run_gui_opens_the_paths_and_returns_the_exit_code(themed_app, qtbot, lidc_dir):
    from viewer.qt.app import run_gui
    from viewer.qt.main_window import MainWindow

    seen = {}

    def close_when_loaded():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        if windows and windows[0].viewer.volume is not None and not windows[0].busy:
            seen["shape"] = windows[0].viewer.volume.shape
            windows[0].close()
        else:
            QTimer.singleShot(50, close_when_loaded)

    QTimer.singleShot(50, close_when_loaded)
    QTimer.singleShot(60_000, QApplication.quit)  # never hang the suite
    assert run_gui([str(lidc_dir)]) == 0
    assert seen["shape"] == (133, 512, 512)


def test_demo_opens_the_sample_study_and_the_built_in_models_find_its_nodules(main_window, qtbot):
    import json

    import numpy as np

    from inference.metrics import match_radius
    from viewer.core.sample import DEMO_MODELS, demo_study_path

    lane = main_window.inference
    applied = []
    lane.result_applied.connect(applied.append)
    with qtbot.waitSignal(main_window.series_loaded, timeout=120_000):
        main_window.open_demo()
    volume = main_window.viewer.volume
    assert volume is not None and volume.modality == "CT" and volume.shape[0] > 10
    # both built-in models run by themselves, one after the other, on the worker
    qtbot.waitUntil(lambda: len(applied) == len(DEMO_MODELS) and not lane.busy, timeout=180_000)
    assert applied == ["detection", "segmentation"]
    truth = json.loads((demo_study_path().parent / "ground_truth" / "nodules.json").read_text())["nodules"]
    shown = [f for f in main_window.findings_panel.shown()]
    centres = np.array([lane.layer("detection").detections.centers_lps[f.index] for f in shown])
    for nodule in truth:
        distance = np.linalg.norm(centres - np.array(nodule["center_lps"]), axis=1)
        assert distance.min() <= match_radius(nodule["diameter_mm"]), nodule
    # at the default display threshold (about 1 false positive a scan on average; the demo phantom has 3)
    assert len(shown) <= len(truth) + 3
    seg = lane.layer("segmentation")
    assert {seg.label_name(v) for v in seg.present} >= {"lung_left", "lung_right", "airway", "nodule"}

    # --demo shows AI output without a click: when its models finish the views jump to the top finding
    viewer = main_window.viewer
    top = max(shown, key=lambda f: f.score)
    z0, _, _, z1, _, _ = lane.layer("detection").detections.boxes_voxel[top.index]
    assert z0 <= viewer.state.slice_index("axial") <= z1
    assert viewer.state.display_number("axial") != 1  # it opened at image 1 (axial CT) and moved
    # ... but not once the user has scrolled: their slice stays
    viewer.step(7)
    scrolled = viewer.state.slice_index("axial")
    assert not main_window.jump_to_top_finding() and viewer.state.slice_index("axial") == scrolled

    # Explain the top finding: its occlusion map becomes the saliency overlay, hottest near the finding
    main_window.findings_panel.select(shown[0].index)
    with qtbot.waitSignal(lane.result_applied, timeout=60_000) as blocker:
        main_window.findings_panel.explain_button.click()
    assert blocker.args == ["saliency"]
    saliency = lane.layer("saliency").saliency
    assert saliency.target == f"finding #{shown[0].index + 1}"
    hot = np.argwhere(saliency.values >= 0.9 * saliency.values.max())
    z0, y0, x0, z1, y1, x1 = lane.layer("detection").detections.boxes_voxel[shown[0].index]
    centre = np.array([(z0 + z1) / 2, (y0 + y1) / 2, (x0 + x1) / 2])
    spacing = np.array(volume.spacing)
    assert np.linalg.norm((hot.mean(axis=0) - centre) * spacing) < 20.0

    # ... and one label of the segmentation: the map replaces the finding's
    nodule = next(v for v in seg.present if seg.label_name(v) == "nodule")
    qtbot.waitUntil(lambda: not lane.busy, timeout=10_000)  # the lane frees itself just after result_applied
    with qtbot.waitSignal(lane.result_applied, timeout=60_000):
        lane.explain_label(nodule)
    assert lane.layer("saliency").saliency.target == "nodule"
    assert "Grad-CAM of nodule" in main_window.statusBar().currentMessage()


def test_open_a_dicomdir(main_window, qtbot, shared_data):
    dicomdir = shared_data / "dicomdir-pydicom" / "DICOMDIR"
    open_and_wait(qtbot, main_window, [dicomdir])
    assert main_window.viewer.volume is not None
    assert len(main_window.catalog.all_series()) > 1


def test_files_dropped_on_the_window_are_opened_and_remembered(main_window, qtbot, lidc_dir):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(lidc_dir))])
    event = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(main_window.series_loaded, timeout=60_000):
        main_window.dropEvent(event)
    recent = [a for a in main_window.recent_menu.actions() if a.toolTip()]
    assert recent and recent[0].toolTip() == str(lidc_dir)
    # opening from the recent menu works too
    with qtbot.waitSignal(main_window.series_loaded, timeout=60_000):
        recent[0].trigger()


def test_cancel_stops_a_load(main_window, qtbot, lidc_dir):
    open_and_wait(qtbot, main_window, [lidc_dir])
    main_window.session.volumes.clear()
    main_window.open_series(main_window.current_series.key)
    assert main_window.cancel_button.isVisibleTo(main_window)
    main_window.cancel_button.click()
    qtbot.waitUntil(lambda: not main_window.cancel_button.isVisibleTo(main_window), timeout=10_000)
    assert not main_window.busy


def test_the_app_collects_garbage_in_the_gui_thread_only(qapp, qtbot):
    """Qt objects in reference cycles are freed by a timer in the GUI thread, never by a worker that happens to
    trigger Python's collector (that destroyed a QObject in a pool thread and deadlocked a CI run)."""
    import gc
    import threading

    from PySide6.QtCore import QObject

    from viewer.qt.app import garbage_collected_in_the_gui_thread

    freed_in: list[threading.Thread] = []

    class Cycle:
        def __init__(self) -> None:
            self.me = self
            self.qobject = QObject()

        def __del__(self) -> None:
            freed_in.append(threading.current_thread())

    with garbage_collected_in_the_gui_thread():
        assert not gc.isenabled()
        Cycle()

        def allocate() -> None:  # a worker that allocates enough to trigger the automatic collector, if it were on
            kept = [[] for _ in range(5000)]
            assert len(kept) == 5000

        worker = threading.Thread(target=allocate)
        worker.start()
        worker.join()
        assert not freed_in
        # alive: past the first generation's threshold, which the timer looks at - ten times over, because objects
        # the earlier tests left behind (Qt's deferred deletes) are freed while this waits and lower the count
        kept = [[] for _ in range(10 * gc.get_threshold()[0])]
        qtbot.waitUntil(lambda: bool(freed_in), timeout=5000)
        del kept
    assert freed_in == [threading.main_thread()]
    assert gc.isenabled()
