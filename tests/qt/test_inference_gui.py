"""The AI lane driven like a user would, offscreen: pick a model, run it, cancel it, see it fail, switch series
under it, and read its overlays and findings - with tiny real bundles written to tmp dirs and stand-in networks
with known answers, on the real LIDC-IDRI-0001 CT and the sagittal MR."""
from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from tests.inference.helpers import (
    save_seeded_weights,
    tiny_detector_config,
    tiny_saliency_config,
    tiny_unet_config,
    tiny_unet_state,
    write_bundle,
)
from tests.qt.conftest import open_and_wait
from viewer.core.layers import boxes_in_slice, label_slice_rgba, outline
from viewer.core.reformat import Plane

RUN_TIMEOUT_MS = 60_000
LOW, HIGH = -950.0, 300.0  # BandMarker: label 1 from LOW, label 2 from HIGH


def _band_config(slow_seconds: float | None = None, roi=None) -> dict:
    if slow_seconds is None:
        network = {"_target_": "tests.qt.standins.BandMarker", "low": LOW, "high": HIGH}
    else:
        network = {"_target_": "tests.qt.standins.SlowBandMarker", "seconds": slow_seconds, "low": LOW, "high": HIGH}
    inferer = {"_target_": "SimpleInferer"} if roi is None else {
        "_target_": "SlidingWindowInferer", "roi_size": list(roi), "sw_batch_size": 1, "overlap": 0}
    return {"network_def": network, "inferer": inferer}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """A models folder: a tiny UNet, detector and saliency net with seeded weights, and stand-ins (a known label
    map, a slow one, one that raises). Built once per module; trust is recorded per test (its own home)."""
    import torch

    from tests.qt.standins import BandMarker, Exploding

    folder = tmp_path_factory.mktemp("ai") / "models"
    write_bundle(folder / "tiny_unet", tiny_unet_config(spacing=(3.0, 3.0, 6.0), roi=(32, 32, 16)),
                 {"name": "Tiny UNet", "version": "0.1",
                  "hounsfield": {"labels": {"1": "tissue", "2": "other"}, "modality": "MR"}},
                 state_dict=tiny_unet_state(seed=5))
    save_seeded_weights(write_bundle(folder / "tiny_det", tiny_detector_config(), {
        "name": "Tiny detector", "hounsfield": {"task": "detection", "labels": {"1": "nodule"}, "modality": "CT"}}))
    save_seeded_weights(write_bundle(folder / "tiny_sal", tiny_saliency_config(), {
        "name": "Tiny saliency", "hounsfield": {"task": "saliency"}}))
    band_meta = {"hounsfield": {"labels": {"1": {"name": "body", "color": [60, 180, 75]},
                                           "2": {"name": "bone", "color": [0, 130, 200]}}}}
    write_bundle(folder / "band", _band_config(), {"name": "Band marker", **band_meta},
                 state_dict=BandMarker().state_dict())
    write_bundle(folder / "slow_band", _band_config(0.25, roi=(128, 128, 36)), {"name": "Slow band", **band_meta},
                 state_dict=BandMarker().state_dict())
    write_bundle(folder / "exploding", {"network_def": {"_target_": "tests.qt.standins.Exploding"},
                                        "inferer": {"_target_": "SimpleInferer"}},
                 {"name": "Exploding"}, state_dict=Exploding().state_dict())
    del torch
    return folder


@pytest.fixture
def models(bundles, monkeypatch):
    """The bundles, the stand-ins trusted (a user decision, kept in this test's home); no built-in models."""
    from inference.registry import set_trusted

    monkeypatch.setenv("HOUNSFIELD_RESOURCES", str(bundles.parent / "no-resources"))
    monkeypatch.delenv("HOUNSFIELD_MODELS", raising=False)
    for name in ("band", "slow_band", "exploding"):
        set_trusted(bundles / name)
    return bundles


@pytest.fixture
def ai(main_window, models):
    """The main window with the models folder set through the Settings entry."""
    main_window.inference.set_models_folder(str(models))
    return main_window


def run_model(qtbot, window, model_id, timeout=RUN_TIMEOUT_MS):
    lane = window.inference
    assert window.ai_panel.select_model(model_id), model_id
    with qtbot.waitSignal(lane.run_done, timeout=timeout):
        assert lane.start() is not None
    return lane


def item_pixel_at_voxel(view, item, xyz):
    """The RGBA pixel of an overlay ImageItem under a voxel centre, found through the item's own transform."""
    _, sx, sy = view.geometry_.scene_from_index(xyz)
    local = item.mapFromView(QPointF(sx, sy))
    return tuple(item.image[int(np.floor(local.y())), int(np.floor(local.x()))])


def expected_bands(array):
    return np.where(array >= HIGH, 2, np.where(array >= LOW, 1, 0)).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------


def test_model_picker_lists_bundles_from_the_settings_folder(main_window, models, settings, qtbot):
    from viewer.core.sample import DEMO_MODELS

    panel, lane = main_window.ai_panel, main_window.inference
    assert {m.id for m in panel.models} >= set(DEMO_MODELS)  # the built-in models, before any folder is set
    assert not panel.run_button.isEnabled() and "Open a series" in panel.run_button.toolTip()
    lane.set_models_folder(str(models))
    ids = {m.id for m in panel.models}
    assert {"tiny_unet", "tiny_det", "tiny_sal", "band", "slow_band", "exploding"} <= ids
    assert panel.select_model("tiny_det")
    info = panel.info_label.text()
    assert "Detection" in info and "CT" in info and "nodule" in info
    assert "not a medical device" in panel.notice_label.text()
    assert not panel.run_button.isEnabled() and "Open a series" in panel.run_button.toolTip()
    # the Settings entry persists
    from viewer.qt.settings import Settings

    assert Settings(type(settings.q)(settings.q.fileName(), settings.q.format())).models_folder == str(models)
    # a bundle dropped into the folder appears on refresh
    write_bundle(models / "late", tiny_unet_config(), {"name": "Late arrival"}, state_dict=tiny_unet_state())
    try:
        panel.refresh_button.click()
        assert "late" in {m.id for m in panel.models} and panel.current_model().id == "tiny_det"
    finally:
        import shutil

        shutil.rmtree(models / "late")


def test_segmentation_overlay_lands_on_the_label_voxels_in_axial_and_reformats(ai, qtbot, lidc_dir):
    window = open_and_wait(qtbot, ai, [lidc_dir])
    viewer, panel = window.viewer, window.ai_panel
    viewer.set_layout("1x1")
    assert panel.run_button.isEnabled()
    lane = run_model(qtbot, window, "band")
    layer = lane.layer("segmentation")
    assert layer is not None and viewer.layers == [layer]
    volume = viewer.volume
    expected = expected_bands(volume.array)
    assert np.array_equal(layer.result.labels, expected)  # the known mask, on our grid
    assert "Band marker" in window.statusBar().currentMessage() and "on cpu" in window.statusBar().currentMessage()
    assert [panel.label_list.topLevelItem(i).text(0) for i in range(2)] == ["body", "bone"]

    rng = np.random.default_rng(0)
    viewer.state.set_position((256.0, 300.0, 70.0))
    viewer.set_layout("1x3")
    qtbot.wait(10)
    for plane in (Plane.AXIAL, Plane.CORONAL, Plane.SAGITTAL):
        view = viewer.views[plane]
        item = layer._items[view][0]
        geometry, k = view.geometry_, view.k
        assert item.isVisible()
        np.testing.assert_array_equal(item.image, label_slice_rgba(geometry.take(expected, k), layer.colours))
        rect = item.mapRectToView(item.boundingRect())
        assert (rect.x(), rect.y(), rect.width(), rect.height()) == pytest.approx((0, 0, *geometry.scene_size))
        # independently of take(): voxel centre -> scene mm -> the overlay's own pixel holds that voxel's label
        for value in (1, 2):
            cut = geometry.take(expected, k)
            rows, cols = np.nonzero(cut == value)
            assert len(rows), (plane, value)
            for i in rng.choice(len(rows), size=min(20, len(rows)), replace=False):
                xyz = geometry.index_from_display(k, rows[i], cols[i])
                x, y, z = (int(round(v)) for v in xyz)
                assert expected[z, y, x] == value
                assert item_pixel_at_voxel(view, item, xyz) == tuple(layer.colours[value])
    # the colour table: the model card's colours, background transparent
    colours = layer.colours
    assert tuple(colours[1][:3]) == (60, 180, 75) and tuple(colours[2][:3]) == (0, 130, 200)
    assert colours[0][3] == 0 and colours[1][3] > 0 and colours[2][3] > 0

    # outlines: the boundary of each region, in every plane
    panel.seg_mode.setCurrentIndex(1)
    for view in viewer.visible_views():
        shown = outline(view.geometry_.take(expected, view.k))
        np.testing.assert_array_equal(layer._items[view][0].image, label_slice_rgba(shown, layer.colours))
    panel.seg_mode.setCurrentIndex(0)
    # per-label visibility, colour and opacity only touch the colour table
    axial = viewer.views[Plane.AXIAL]
    axial_item = layer._items[axial][0]
    axial_labels = axial.geometry_.take(expected, axial.k)
    panel.label_list.item_for(2).setCheckState(0, Qt.CheckState.Unchecked)
    assert axial_item.image[axial_labels == 2][:, 3].max() == 0 and axial_item.image[axial_labels == 1][:, 3].min() > 0
    panel.label_list.set_colour(1, (255, 0, 255))
    assert {tuple(p) for p in axial_item.image[axial_labels == 1][:, :3]} == {(255, 0, 255)}
    panel.label_list.itemWidget(panel.label_list.item_for(1), 2).setValue(100)
    assert set(axial_item.image[axial_labels == 1][:, 3]) == {255}
    panel.seg_opacity.setValue(50)
    assert axial_item.opacity() == pytest.approx(0.5)
    panel.seg_show.setChecked(False)
    assert not any(item.isVisible() for item in layer._items[viewer.views[Plane.AXIAL]])
    panel.seg_show.setChecked(True)
    # slices without labels cost nothing: the item is hidden there
    viewer.state.set_slice("axial", 0)
    labelled = layer.result.labels[0].any()
    assert axial_item.isVisible() == bool(labelled)


def test_real_tiny_unet_runs_on_the_sagittal_mr(ai, qtbot, mr_sagittal_dir):
    window = open_and_wait(qtbot, ai, [mr_sagittal_dir])
    viewer, panel = window.viewer, window.ai_panel
    progress_seen = []
    window.inference.run_started.connect(lambda _id: progress_seen.append(panel.progress.format()))
    lane = run_model(qtbot, window, "tiny_unet")
    layer = lane.layer("segmentation")
    result = layer.result
    assert result.labels.shape == viewer.volume.shape and result.present
    assert panel.progress.format().startswith("Done") and panel.elapsed_label.text().endswith("s")
    assert not panel.cancel_button.isEnabled() and panel.run_button.isEnabled()
    viewer.set_layout("1x3")
    qtbot.wait(10)
    for view in viewer.visible_views():  # the native sagittal and the axial/coronal reformats
        item = layer._items[view][0]
        if item.isVisible():
            np.testing.assert_array_equal(item.image, label_slice_rgba(view.geometry_.take(result.labels, view.k),
                                                                       layer.colours))
    volumes = [panel.label_list.topLevelItem(i).text(3) for i in range(panel.label_list.topLevelItemCount())]
    assert any(v.endswith("mL") for v in volumes)


def test_progress_and_cancel_return_quickly_and_apply_nothing(ai, qtbot, lidc_dir):
    window = open_and_wait(qtbot, ai, [lidc_dir])
    lane, panel = window.inference, window.ai_panel
    assert panel.select_model("slow_band")
    formats = []
    lane.start()
    assert not panel.run_button.isEnabled() and panel.cancel_button.isEnabled()
    assert lane.start() is None  # one lane: a second run does not start
    qtbot.waitUntil(lambda: (formats.append(panel.progress.format()) or
                             panel.progress.format().startswith("Running the model")), timeout=RUN_TIMEOUT_MS)
    assert panel.progress.maximum() > 10 and panel.elapsed_label.text()
    with qtbot.waitSignal(lane.run_cancelled, timeout=3000), qtbot.waitSignal(lane.run_done, timeout=3000):
        started = time.perf_counter()
        panel.cancel_button.click()
    assert time.perf_counter() - started < 1.5
    assert window.viewer.layers == [] and lane.layer("segmentation") is None
    assert panel.progress.format() == "Cancelled" and "cancelled" in window.statusBar().currentMessage()
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_a_failing_model_shows_a_dialog_and_changes_nothing(ai, qtbot, lidc_dir):
    from inference.types import SegResult, label_table
    from viewer.core.measure import Measurement

    window = open_and_wait(qtbot, ai, [lidc_dir])
    viewer, lane = window.viewer, window.inference
    volume = viewer.volume
    before = volume.array.copy()
    mask = np.zeros(volume.shape, np.uint8)
    mask[60:70, 200:260, 220:300] = 1
    existing = lane.apply_result(SegResult(mask, volume.affine, label_table({1: "earlier"})), "Earlier model")
    viewer.add_measurement(Measurement("length", "axial", 64, [(150.0, 250.0, 64.0), (350.0, 250.0, 64.0)]))
    measurements = [(m.id, m.points, dict(m.result)) for m in viewer.measurements]

    with qtbot.waitSignal(lane.run_failed, timeout=RUN_TIMEOUT_MS):
        run_model(qtbot, window, "exploding")
    dialog = lane.error_dialog
    assert dialog is not None and dialog.isVisible() and not dialog.isModal()
    assert "Exploding could not run" in dialog.text()
    assert "exploded on purpose" in dialog.informativeText() and "unchanged" in dialog.informativeText()
    assert "Traceback" not in dialog.informativeText()
    assert "Traceback" in dialog.detailedText() and "standins.py" in dialog.detailedText()
    assert "Exploding failed" in window.statusBar().currentMessage()
    # untouched: the study, the measurements, the overlay
    assert viewer.volume is volume and np.array_equal(volume.array, before)
    assert [(m.id, m.points, dict(m.result)) for m in viewer.measurements] == measurements
    assert viewer.layers == [existing] and lane.layer("segmentation") is existing
    assert window.ai_panel.run_button.isEnabled()
    dialog.close()


def test_a_result_for_a_series_no_longer_shown_is_dropped(ai, qtbot, lidc_dir, mr_sagittal_dir):
    from inference.types import SegResult, label_table

    window = open_and_wait(qtbot, ai, [lidc_dir, mr_sagittal_dir])
    lane, viewer = window.inference, window.viewer
    lidc_key = window.current_series.key
    mr_key = next(s.key for s in window.catalog.all_series() if s.modality == "MR" and s.kind == "image")
    with qtbot.waitSignal(window.series_loaded, timeout=RUN_TIMEOUT_MS):
        window.open_series(mr_key)
    # an overlay on LIDC stays with LIDC
    with qtbot.waitSignal(window.series_loaded, timeout=RUN_TIMEOUT_MS):
        window.open_series(lidc_key)
    lidc_volume = viewer.volume
    mask = np.zeros(lidc_volume.shape, np.uint8)
    mask[60:70, 200:260, 220:300] = 1
    kept = lane.apply_result(SegResult(mask, lidc_volume.affine, label_table({1: "kept"})), "Earlier")
    # start on A (the MR), switch to B (LIDC) while it runs
    with qtbot.waitSignal(window.series_loaded, timeout=RUN_TIMEOUT_MS):
        window.open_series(mr_key)
    assert viewer.layers == [] and viewer.volume.modality == "MR"
    assert window.ai_panel.select_model("slow_band")
    generation = lane.generation
    dropped = []
    lane.result_dropped.connect(dropped.append)
    applied = []
    lane.result_applied.connect(applied.append)
    with qtbot.waitSignal(lane.run_done, timeout=RUN_TIMEOUT_MS):
        lane.start()
        qtbot.waitUntil(lambda: window.ai_panel.progress.format().startswith("Running the model"), timeout=20_000)
        window.open_series(lidc_key)  # cached: shown at once
        assert lane.generation == generation + 1 and viewer.volume is lidc_volume
    assert dropped and "no longer shown" in dropped[0] and applied == []
    assert "no longer shown" in window.statusBar().currentMessage()
    assert viewer.layers == [kept] and lane.layer("segmentation") is kept
    with qtbot.waitSignal(window.series_loaded, timeout=RUN_TIMEOUT_MS):
        window.open_series(mr_key)
    assert viewer.layers == [] and window.session.state(mr_key).results == {}


def test_detection_findings_jump_and_filter_at_display_time(ai, qtbot, lidc_dir):
    window = open_and_wait(qtbot, ai, [lidc_dir])
    viewer, findings_panel = window.viewer, window.findings_panel
    viewer.set_layout("1x3")
    lane = run_model(qtbot, window, "tiny_det")
    layer = lane.layer("detection")
    detections = layer.detections
    n = len(detections)
    assert 0 < n <= 5 and findings_panel.isVisible()
    findings_panel.set_min_score(0.0)
    assert len(findings_panel.rows()) == n
    number, score, size, location, _slice = findings_panel.rows()[0]
    assert number == "1" and float(score) == pytest.approx(detections.scores[0], abs=5e-4)
    assert len(size.split(" x ")) == 3 and "slice" in location and "LPS" in location
    assert location.split(",")[0] in ("right", "left", "midline")

    # click the last finding: every plane goes through its centre, each view is centred on it, its box is drawn
    target = lane.findings()[n - 1]
    tree = findings_panel.tree
    item = findings_panel.item_for(target.index)
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=tree.visualItemRect(item).center())
    qtbot.wait(10)
    upper = np.array(viewer.volume.shape[::-1]) - 1
    assert np.allclose(viewer.state.position, np.clip(target.centre_index, 0, upper), atol=1e-6)
    assert viewer.state.display_number("axial") == target.slice_number  # the number the view shows
    assert findings_panel.rows()[n - 1][4] == str(target.slice_number) and tree.currentItem() is item
    assert layer.selected == target.index
    box = detections.boxes_voxel[target.index]
    for view in viewer.visible_views():
        _, sx, sy = view.geometry_.scene_from_index(viewer.state.position)
        centre = view.view_box.viewRect().center()
        assert (centre.x(), centre.y()) == pytest.approx((sx, sy), abs=0.5)
        boxes_item = layer._items[view][0]
        indices, rects = boxes_in_slice(detections.boxes_voxel[[target.index]], view.geometry_, view.k)
        assert list(indices) == [0], "the finding's box must span the slice through its centre"
        drawn = [tuple(r) for r in boxes_item.rects]
        assert tuple(rects[0]) in drawn and any(boxes_item.selected)
        assert f"#{target.index + 1}" in " ".join(boxes_item.texts)
    z0, y0, x0, z1, y1, x1 = box
    assert z0 <= viewer.state.slice_index("axial") < z1
    if n > 1:  # the arrow keys walk the list, jumping as they go
        tree.setFocus()
        qtbot.keyClick(tree, Qt.Key.Key_Up)
        previous = lane.findings()[n - 2]
        assert layer.selected == previous.index and viewer.state.display_number("axial") == previous.slice_number

    # the threshold filters the list and the boxes, never the result
    findings_panel.set_min_score(float(detections.scores.max()) + 1e-3)
    assert findings_panel.rows() == [] and layer.min_score > detections.scores.max()
    assert all(len(layer._items[v][0].rects) == 0 for v in viewer.visible_views())
    assert layer.detections is detections and len(detections) == n
    assert "0 of" in findings_panel.summary.text()
    middle = float(np.median(detections.scores))
    findings_panel.set_min_score(middle)
    assert len(findings_panel.rows()) == int((detections.scores >= middle).sum())
    findings_panel.slider.setValue(0)  # lowering it again brings every finding back
    assert len(findings_panel.rows()) == n and findings_panel.min_score == 0.0
    assert window.settings.min_score == 0.0
    assert len(layer._items[viewer.views[Plane.AXIAL]][0].rects) >= 1


def test_saliency_overlay_colour_bar_and_engine_notices(ai, qtbot, mr_sagittal_dir, monkeypatch):
    import inference.device as device

    def fallback(step, dev, notify=None):  # as after a GPU out-of-memory: the engine tells the user
        if notify is not None:
            notify("CUDA ran out of memory; running on the CPU instead (slower)")
        return step(dev)

    monkeypatch.setattr(device, "run_with_cpu_fallback", fallback)
    window = open_and_wait(qtbot, ai, [mr_sagittal_dir])
    viewer, panel = window.viewer, window.ai_panel
    lane = run_model(qtbot, window, "tiny_sal")
    assert "running on the CPU instead" in window.statusBar().currentMessage()
    layer = lane.layer("saliency")
    view = viewer.active_view
    item = layer._items[view][0]
    quantised = view.geometry_.take(layer.data, view.k)
    np.testing.assert_array_equal(item.image, label_slice_rgba(quantised, layer.colours))
    assert layer.data.dtype == np.uint8 and panel.sal_group.isVisible() and panel.colour_bar.isVisible()
    start = int(np.ceil(0.2 * 255))
    assert layer.colours[start - 1][3] == 0 and layer.colours[start][3] == 255
    assert tuple(layer.colours[200][:3]) == tuple(panel.colour_bar._image.pixelColor(200, 0).getRgb()[:3])
    assert (item.image[..., 3] > 0).tolist() == (quantised >= start).tolist()
    panel.sal_threshold.setValue(60)
    assert (item.image[..., 3] > 0).tolist() == (quantised >= int(np.ceil(0.6 * 255))).tolist()
    assert panel.colour_bar.threshold == pytest.approx(0.6)
    panel.sal_opacity.setValue(30)
    assert item.opacity() == pytest.approx(0.3)
    panel.sal_map.setCurrentText("viridis")
    assert layer.colour_map == "viridis" and panel.colour_bar.colour_map == "viridis"
    panel.clear_button.click()
    assert viewer.layers == [] and not panel.sal_group.isVisible()
