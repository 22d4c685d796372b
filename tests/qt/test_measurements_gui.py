"""The findings panel says what was measured ("20.0 mm solid, 3751 mm³, L middle, Lung-RADS 4B") and the box
label on the image carries the mean diameter - at 1024 px wide too (issue 11, measure them)."""
from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QApplication

from inference.nodule_measurements import lung_extent, measure_nodule
from tests.qt.conftest import open_and_wait, two_detections
from viewer.qt.overlays import BoxesItem


def _measured(volume):
    """Two detections on LIDC-IDRI-0001: #1 over the readers' nodule (measured for real), #2 not measured."""
    from inference.geometry import box_corners, voxel_box
    from inference.types import Detections
    from tests.inference.helpers import data_path
    from viewer.core.lidc import find_lidc_xml, read_lidc_nodules

    (nodule,) = [n for n in read_lidc_nodules(find_lidc_xml(data_path("lidc-idri-0001"))[0], volume.affine,
                                                getattr(volume, "slice_positions", None)) if n.n_readers >= 3]
    c, half = np.asarray(nodule.center_lps), 0.6 * nodule.diameter_mm
    box = voxel_box(box_corners(np.r_[c - half, c + half]), volume.affine, volume.shape)
    m = measure_nodule(volume.array, volume.affine, box, lung_extent(volume.array, volume.affine))
    other = two_detections(volume)
    detections = Detections(np.r_[[np.r_[c - half, c + half]], other.boxes_lps[1:]], np.r_[[box],
                            other.boxes_voxel[1:]], [0.9, 0.8], [1, 1], volume.affine, volume.shape, other.table,
                            "hounsfield-chest-ct-nodule-detection", measurements=[m, None])
    return detections, m, box


def test_panel_and_box_label_show_the_measurements(main_window, qtbot, lidc_dir):
    window = main_window
    window.resize(1024, 700)
    open_and_wait(qtbot, window, [lidc_dir])
    volume = window.viewer.volume
    detections, m, box = _measured(volume)
    window.findings_panel.set_min_score(0.5)
    window.inference.apply_result(detections, "Nodule detector")
    qtbot.wait(20)
    tree = window.findings_panel.tree
    assert tree.topLevelItemCount() == 2
    first, second = tree.topLevelItem(0).text(3), tree.topLevelItem(1).text(3)
    expected = f"{m['mean_diameter_mm']:.1f} mm {m['type']}"
    assert first.splitlines()[0].startswith(expected), first
    assert f"{m['volume_mm3']} mm³" in first and f"Lung-RADS {m['lung_rads']}" in first
    assert m["location"]["side"][0].upper() in first.splitlines()[0]
    assert "Lung-RADS" not in second  # nothing measured, nothing said
    assert "no lobe model" in tree.topLevelItem(0).toolTip(3)
    # the box label on the image: "#1  0.90  20.0 mm", placed without colliding with the view's texts
    centre = [(box[2] + box[5]) // 2, (box[1] + box[4]) // 2, (box[0] + box[3]) // 2]
    window.viewer.go_to(tuple(int(v) for v in centre))
    for _ in range(3):
        QApplication.processEvents()
    qtbot.wait(50)
    labels = []
    for view in window.viewer.visible_views():
        view.viewport().grab()
        for item in view.view_box.childGroup.childItems():
            if isinstance(item, BoxesItem) and item.isVisible():
                labels += list(item.texts)
    assert any(t.startswith("#1") and t.endswith(f"{m['mean_diameter_mm']:.1f} mm") for t in labels), labels


def test_moving_one_box_keeps_the_other_findings_measurements(main_window, qtbot, lidc_dir, monkeypatch):
    from viewer.qt.main_window import MainWindow

    monkeypatch.setattr(MainWindow, "ask_unsaved", lambda self, action: "discard")
    window = main_window
    open_and_wait(qtbot, window, [lidc_dir])
    detections, m, _ = _measured(window.viewer.volume)
    window.findings_panel.set_min_score(0.5)
    window.inference.apply_result(detections, "Nodule detector")
    window.inference.result_applied.emit("detection")
    qtbot.wait(20)
    review = window.annotation.editor.review
    assert review[0].measurements == m
    review.move(1, [4.0, 0.0, 0.0])  # the unmeasured one moves; #1 keeps its figures
    qtbot.wait(20)
    panel = window.findings_panel
    assert f"Lung-RADS {m['lung_rads']}" in panel.item_for(0).text(3)
    review.move(0, [2.0, 0.0, 0.0])  # #1 moved: its figures described the old box, so they go
    qtbot.wait(20)
    assert "Lung-RADS" not in panel.item_for(0).text(3)
