"""Measurements that last (issue 13): saved as a DICOM SR, autosaved, and back on the same voxels when the study is
opened again in a fresh window; their labels follow pan and zoom."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QApplication

from tests.core.test_sr_measurements import every_kind
from tests.qt.conftest import open_and_wait
from viewer.core.measure import Measurement
from viewer.core.reformat import Plane

TOLERANCE_MM = 0.01


@pytest.fixture(scope="module")
def lidc_copy(tmp_path_factory):
    """A writable copy of LIDC-IDRI-0001 (the SR is saved beside the images; symlinks would not be read)."""
    from tests.inference.helpers import data_path

    folder = tmp_path_factory.mktemp("study") / "lidc"
    shutil.copytree(data_path("lidc-idri-0001"), folder)
    return folder


def _new_window(qtbot, settings):
    from viewer.qt.main_window import MainWindow

    window = MainWindow(settings)
    window.resize(1400, 900)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def _close(window) -> None:
    from viewer.qt.workers import job_pool

    window.cancel_jobs()
    window.close()
    job_pool().waitForDone(5000)


def _add(window, measurements) -> None:
    for m in measurements:
        window.viewer.add_measurement(m)


def _lps(volume, m: Measurement) -> np.ndarray:
    return volume.index_to_lps(np.asarray(m.points, float))


def test_saved_sr_reopens_on_the_same_points_in_a_fresh_session(qtbot, settings, lidc_copy, tmp_path, monkeypatch):
    first = _new_window(qtbot, settings)
    open_and_wait(qtbot, first, [lidc_copy])
    volume = first.viewer.volume
    originals = every_kind(volume)  # each kind in axial, coronal and sagittal views
    _add(first, originals)
    sr_path = lidc_copy / "measurements.sr.dcm"
    assert first.measurement_files.default_path() == str(sr_path)
    first.measurement_files.ask_save_path = lambda: str(sr_path)
    first.action_save_measurements.trigger()
    assert sr_path.is_file() and all(m.uid for m in originals)
    _close(first)

    monkeypatch.setenv("HOUNSFIELD_HOME", str(tmp_path / "fresh-home"))  # a new session: no autosave to help
    second = _new_window(qtbot, settings)
    with qtbot.waitSignal(second.measurement_files.restored, timeout=60_000):
        open_and_wait(qtbot, second, [lidc_copy])
    try:
        catalog = second.catalog
        kinds = {s.kind for s in catalog.all_series()}
        assert kinds == {"image", "sr"} and second.current_series.kind == "image"  # the SR is not shown as images
        loaded = second.viewer.measurements
        assert len(loaded) == len(originals) and second.measurement_files.problems == []
        worst = 0.0
        for a in originals:
            (b,) = [m for m in loaded if m.uid == a.uid]
            assert (b.kind, b.plane, b.slice_index) == (a.kind, a.plane, a.slice_index)
            worst = max(worst, float(np.abs(_lps(volume, a) - _lps(second.viewer.volume, b)).max()))
            assert b.summary("HU") == a.summary("HU")
        assert worst < TOLERANCE_MM
        assert len(second.measurements_panel.rows()) == len(originals)
        second.viewer.set_layout("1x3")
        QApplication.processEvents()
        for plane in Plane:
            view = second.viewer.views[plane]
            assert len(view.measures.graphics) == 5, plane  # drawn in their own view
        # saving again updates the same measurements (same tracking UIDs), it does not add copies
        second.measurement_files.ask_save_path = lambda: str(sr_path)
        assert second.measurement_files.default_path() == str(sr_path)
        second.action_save_measurements.trigger()
        from viewer.core.export.sr_measurements import read_report

        assert sorted(g.tracking_uid for g in read_report(sr_path).groups) == sorted(m.uid for m in originals)
        # the SR in the series browser: choosing it puts its measurements on the shown images
        second.measurements_panel.clear_requested.emit()
        (sr_series,) = [s for s in catalog.all_series() if s.kind == "sr"]
        second.browser.series_activated.emit(sr_series.key)
        qtbot.waitUntil(lambda: len(second.viewer.measurements) == len(originals), timeout=5000)
        assert "Restored 15 measurements (measurements.sr.dcm)" in second.statusBar().currentMessage()
        assert second.current_series.kind == "image"
    finally:
        _close(second)
        sr_path.unlink(missing_ok=True)


def test_autosave_survives_a_crash_and_keeps_deletions(qtbot, settings, lidc_copy):
    from viewer.core.editing.measurement_autosave import measurements_path

    first = _new_window(qtbot, settings)
    open_and_wait(qtbot, first, [lidc_copy])
    volume = first.viewer.volume
    kept = every_kind(volume)[5:8]  # coronal ones
    _add(first, kept)
    path = measurements_path(volume.series_uid, first.session.autosave_root)
    qtbot.waitUntil(lambda: path.is_file() and len(path.read_text()) > 100, timeout=5000)
    first.cancel_jobs()  # "crash": the window is not closed properly, nothing else is written
    second = _new_window(qtbot, settings)
    open_and_wait(qtbot, second, [lidc_copy])
    try:
        restored = second.viewer.measurements
        assert [(m.kind, m.plane, m.slice_index) for m in restored] == [(m.kind, m.plane, m.slice_index)
                                                                        for m in kept]
        for a, b in zip(kept, restored):
            assert np.abs(_lps(volume, a) - _lps(volume, b)).max() < 1e-9 and b.summary() == a.summary()
        assert "Restored 3 measurements (autosave)" in second.statusBar().currentMessage()
        second.measurements_panel.clear_requested.emit()  # Delete all: the autosave must say so
        second.measurement_files.autosave_now()
    finally:
        _close(second)
        first.close()
    third = _new_window(qtbot, settings)
    open_and_wait(qtbot, third, [lidc_copy])
    try:
        assert third.viewer.measurements == []
    finally:
        _close(third)


def test_load_measurements_reports_what_it_cannot_draw(lidc_window, qtbot):
    from tests.inference.helpers import data_path

    window = lidc_window
    dcmqi = data_path("seg-rtstruct", "dcmqi", "sr-example", "sr.dcm")
    window.measurement_files.ask_open_path = lambda: str(dcmqi)
    assert window.measurement_files.load_dialog() is not None
    qtbot.waitUntil(lambda: "No new measurements" in window.statusBar().currentMessage(), timeout=30_000)
    assert "referenced images are absent" in window.statusBar().currentMessage()
    assert window.viewer.measurements == []


def test_an_sr_is_read_on_a_worker_not_the_gui_thread(lidc_window, qtbot, tmp_path):
    """An SR is parsed on a worker (a 34 MB SR of 3,000 measurement groups took 59 s on the GUI thread): load()
    returns at once, nothing is added before the event loop runs, and then every measurement arrives."""
    from viewer.core.export.seg import read_sources
    from viewer.core.export.sr_measurements import write_measurements_report

    window = lidc_window
    volume = window.viewer.volume
    by_uid = {i.sop_instance_uid: i.path for i in window.current_series.instances}
    measurements = every_kind(volume)
    sources = read_sources([by_uid[uid] for uid in volume.slice_sop_uids])
    path = write_measurements_report(tmp_path / "m.sr.dcm", measurements, volume, sources)
    window.viewer.measurements.clear()
    with qtbot.waitSignal(window.measurement_files.restored, timeout=30_000) as restored:
        job = window.measurement_files.load(path)
        assert job is not None and window.viewer.measurements == []  # not read here
    assert restored.args == [len(measurements)] and len(window.viewer.measurements) == len(measurements)


def _label_anchor_on_screen(graphic) -> QPointF:
    """Where the label's anchor corner is drawn, in the view's scene (device) coordinates."""
    label = graphic.label
    rect = label.sceneBoundingRect()
    return rect.topLeft() if tuple(label.anchor) == (0, 0) else rect.topRight()


def test_labels_follow_pan_and_zoom(lidc_window, qtbot):
    window = lidc_window
    view = window.viewer.views[window.viewer.state.native_plane]
    geometry = view.geometry_
    k = view.k
    p0, p1 = geometry.index_from_display(k, 200, 220), geometry.index_from_display(k, 260, 300)
    window.viewer.add_measurement(Measurement("length", view.plane.value, k, [tuple(p0), tuple(p1)]))
    QApplication.processEvents()
    (graphic,) = view.measures.graphics.values()
    box = view.view_box

    def offset():
        end = graphic.label.pos()  # the end point the label is attached to, in scene mm
        return _label_anchor_on_screen(graphic) - box.mapViewToScene(end)

    def end_on_screen():
        return box.mapViewToScene(graphic.label.pos())

    def size():
        r = graphic.label.sceneBoundingRect()
        return r.width(), r.height()

    before_end, before_size = end_on_screen(), size()
    assert abs(offset().x()) < 2 and abs(offset().y()) < 2
    for change in (lambda: box.translateBy(x=30.0, y=-20.0), lambda: box.scaleBy((0.5, 0.5)),
                   lambda: box.scaleBy((3.0, 3.0)), lambda: box.translateBy(x=-55.0, y=12.0)):
        change()
        for _ in range(3):
            QApplication.processEvents()
        qtbot.wait(10)
        view.viewport().grab()
        assert abs(offset().x()) < 2 and abs(offset().y()) < 2  # still at its end point on screen
        assert size() == pytest.approx(before_size, abs=1)  # text stays the same size on screen
    assert (end_on_screen() - before_end).manhattanLength() > 20  # the view really moved
    # brought to the right edge of the view, the label moves to the shape's left end so it stays readable
    right_end = max(p[0] for p in graphic.scene_points())
    box.setXRange(right_end - 120.0, right_end + 4.0, padding=0)
    for _ in range(3):
        QApplication.processEvents()
    assert tuple(graphic.label.anchor) == (1, 0)
    assert graphic.label.pos().x() == pytest.approx(min(p[0] for p in graphic.scene_points()))
    assert abs(offset().x()) < 2 and abs(offset().y()) < 2
