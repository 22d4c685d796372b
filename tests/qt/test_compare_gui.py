"""Prior and current side by side on real CT: LIDC-IDRI-0001 against a copy of itself written as an older study
with half the slices and the patient 10 mm further along the table (and shifted in-plane)."""
import numpy as np
import pydicom
import pytest
from PySide6.QtCore import Qt

from tests.qt.conftest import open_and_wait
from viewer.core.dicom.synthetic import write_series
from viewer.core.display import Plane
from viewer.core.session import Session

SHIFT = np.array([6.0, -4.0, 10.0])  # where the anatomy moved in the prior's LPS (mm)


@pytest.fixture(scope="module")
def lidc_prior_dir(tmp_path_factory, lidc_dir_module):
    session = Session()
    session.open(lidc_dir_module)
    series = session.default_image_series()
    volume = session.load(series.key)
    header = pydicom.dcmread(series.instances[0].path, stop_before_pixels=True)
    dz = float(np.linalg.norm(volume.affine[:3, 2]))
    dy, dx = float(np.linalg.norm(volume.affine[:3, 1])), float(np.linalg.norm(volume.affine[:3, 0]))
    origin = volume.affine[:3, 3] + SHIFT
    out = tmp_path_factory.mktemp("prior") / "dicom"
    write_series(out, volume.array[::2].astype(np.float32), spacing=(2 * dz, dy, dx), origin=tuple(origin),
                 patient_id=str(header.PatientID), patient_name=str(header.PatientName), study_date="19990101",
                 description="Prior chest CT", uid_seed="hounsfield-test/lidc-prior", window=(-600.0, 1500.0))
    return out


@pytest.fixture(scope="module")
def lidc_dir_module():
    from tests.conftest import data_path

    path = data_path("lidc-idri-0001")
    if not path.is_dir():
        pytest.skip("../shared/data/lidc-idri-0001 is absent")
    return path


def _prior_key(window):
    current = window.session.current.key
    return next(s.key for s in window.session.image_series() if s.key != current)


def _compare(qtbot, window, key, register=False):
    window.compare.auto_register = register
    with qtbot.waitSignal(window.compare.compare_changed, timeout=30_000):
        window.compare.compare_with(key)
    qtbot.wait(20)


def test_compare_shows_the_prior_beside_and_scrolls_with_it(main_window, qtbot, lidc_dir_module, lidc_prior_dir):
    window = open_and_wait(qtbot, main_window, [lidc_dir_module, lidc_prior_dir])
    assert window.session.current.volume.shape[0] == 133  # the larger series opens
    key = _prior_key(window)
    assert window.browser.compare_text(key) == "Compare with Current"
    assert window.browser.compare_text(window.session.current.key) is None
    _compare(qtbot, window, key)
    prior = window.compare.prior_viewer
    assert prior.isVisible() and prior.state.volume.shape[0] == 67
    assert window.compare.panel.transform_label.text() == "Table position"
    current = window.session.current.display
    current.set_slice(Plane.AXIAL, 80)
    # table position: the prior shows the slice at the same z (its slices are 2.5 mm apart)
    assert abs(prior.state.position_lps[2] - current.position_lps[2]) <= 1.25 + 1e-6
    # the slice keys move the main viewer; the prior follows (no ambiguous shortcut between the two viewers)
    window.viewer.active_view.setFocus()
    k = current.slice_index(Plane.AXIAL)
    qtbot.keyClick(window.viewer.active_view, Qt.Key.Key_PageDown)
    assert current.slice_index(Plane.AXIAL) != k
    assert abs(prior.state.position_lps[2] - current.position_lps[2]) <= 1.25 + 1e-6
    # window follows both ways
    current.apply_preset("mediastinum")
    assert prior.state.window == current.window
    prior.state.apply_preset("lung")
    assert current.window_name == "lung"
    # zoom and pan follow: the same field of view in mm
    view, prior_view = window.viewer.views[Plane.AXIAL], prior.views[Plane.AXIAL]
    view.zoom_by(2.0)
    qtbot.wait(20)
    assert prior_view.view_box.viewPixelSize()[0] == pytest.approx(view.view_box.viewPixelSize()[0], rel=1e-3)
    view.centre_on(current.position)
    qtbot.wait(20)
    centre = prior_view.view_box.viewRect().center()
    index = prior_view.geometry_.index_from_scene(prior_view.k, centre.x(), centre.y())
    np.testing.assert_allclose(prior.state.volume.index_to_lps(index)[:2], current.position_lps[:2], atol=1.0)
    # the prior shows three planes when the main viewer does
    window.viewer.set_layout("1x3")
    assert len(prior.visible_views()) == 3
    window.viewer.set_layout("1x1")
    assert len(prior.visible_views()) == 1
    # 2x2: the prior takes the free view (bottom right), linked the same way; its corner text is its own
    window.viewer.set_layout("2x2")
    free = window.viewer.free.view
    assert not window.compare.panel.isVisible() and free.isVisible()
    assert free.state is prior.state
    from viewer.qt.view_info import corner_texts

    assert "1999-01-01" in corner_texts(window.viewer, free)["top-left"]
    current.step(Plane.AXIAL, 4)
    assert abs(free.state.position_lps[2] - current.position_lps[2]) <= 1.25 + 1e-6
    window.viewer.set_layout("1x1")
    assert window.compare.panel.isVisible() and free.state is not prior.state


def test_registration_finds_the_shift_and_the_views_follow_it(main_window, qtbot, lidc_dir_module, lidc_prior_dir):
    window = open_and_wait(qtbot, main_window, [lidc_dir_module, lidc_prior_dir])
    key = _prior_key(window)
    with qtbot.waitSignal(window.compare.registered, timeout=60_000) as blocker:
        _compare(qtbot, window, key, register=True)
    result = blocker.args[0]
    np.testing.assert_allclose(result.translation_mm, SHIFT, atol=1.0)
    assert result.rotation_deg < 0.5
    current, prior = window.session.current.display, window.compare.prior_viewer.state
    current.set_slice(Plane.AXIAL, 70)
    np.testing.assert_allclose(prior.position_lps, current.position_lps + SHIFT, atol=1.5)
    assert window.compare.panel.transform_label.toolTip().startswith("Registered (rigid")
    assert window.compare.panel.transform_label.text().endswith("°")
    # Reset: table position again; Register brings the cached result back at once
    window.compare.reset_registration()
    assert window.compare.panel.transform_label.text() == "Table position"
    with qtbot.waitSignal(window.compare.registered, timeout=1000):
        window.compare.register()
    # Swap: the prior becomes the main series, the registration is inverted, not recomputed
    current_key = window.session.current.key
    with qtbot.waitSignal(window.compare.compare_changed, timeout=30_000,
                          check_params_cb=lambda k: k == current_key):
        window.compare.swap()
    assert window.session.current.key == key
    assert window.compare.registration is not None
    main, other = window.session.current.display, window.compare.prior_viewer.state
    np.testing.assert_allclose(other.position_lps, main.position_lps - SHIFT, atol=1.5)
    window.compare.close()
    assert not window.compare.panel.isVisible() and len(window.session.shown) == 1


def test_cancelling_registration_keeps_table_position(main_window, qtbot, lidc_dir_module, lidc_prior_dir):
    window = open_and_wait(qtbot, main_window, [lidc_dir_module, lidc_prior_dir])
    _compare(qtbot, window, _prior_key(window))
    window.compare.register(force=True)
    window.cancel_by_user()
    qtbot.waitUntil(lambda: window.compare._register_job is None or not window.compare._register_job.running,
                    timeout=20_000)
    assert window.compare.registration is None
    assert window.compare.panel.transform_label.text() == "Table position"
