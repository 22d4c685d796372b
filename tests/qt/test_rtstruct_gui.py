"""Opening a study that holds RT Structure Sets next to their CT: after the CT loads, the contours are drawn
read-only in the ROI colours on the axial view, where the ContourData puts them, the ROIs are listed in the status
bar, and View > Show RT Structures hides and shows them."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest

from tests.conftest import data_path
from tests.qt.conftest import open_and_wait
from viewer.qt.rtstruct_layer import RTStructLayer


@pytest.fixture
def rt_utils_window(main_window, qtbot):
    folder = data_path("seg-rtstruct", "rt-utils", "mock_data")
    open_and_wait(qtbot, main_window, [folder])
    qtbot.waitUntil(lambda: main_window.rtstruct.layer is not None, timeout=10_000)  # read on a worker
    main_window.viewer.set_layout("1x1")
    qtbot.wait(20)
    return main_window, folder


def test_rtstruct_contours_shown_read_only_on_the_axial_view(rt_utils_window, qtbot):
    window, folder = rt_utils_window
    viewer = window.viewer
    layers = [layer for layer in viewer.layers if isinstance(layer, RTStructLayer)]
    assert len(layers) == 1
    layer = layers[0]
    assert window.rtstruct.layer is layer and window.rtstruct.action.isEnabled()
    assert "ROI-1" in window.statusBar().currentMessage() and "#a2885f" in window.statusBar().currentMessage()

    view = viewer.active_view
    assert view.geometry_.plane.value == "axial"
    viewer.state.set_slice("axial", 0)
    qtbot.wait(20)
    item = layer._items[view][0]
    # rt.dcm's square (-51, -51) .. (51, 51) mm at z = 60 (ct_1) is drawn in its colour (162, 136, 95)
    rt_square = read_rtstruct_square(folder / "rt.dcm")
    ds = pydicom.dcmread(str(folder / "ct_1.dcm"), stop_before_pixels=True)
    origin = np.array([float(v) for v in ds.ImagePositionPatient])
    spacing = float(ds.PixelSpacing[0])
    geometry = view.geometry_
    drawn = [points for points, colour, kind in item.lines if colour.getRgb()[:3] == (162, 136, 95)]
    assert len(drawn) == 2
    # independently: LPS -> pixel from the header, pixel -> scene mm (pixel centres at +0.5) on the axial view
    col = (rt_square[:, 0] - origin[0]) / spacing
    row = (rt_square[:, 1] - origin[1]) / spacing
    if geometry.col_flip:
        col = geometry.image_shape[1] - 1 - col
    if geometry.row_flip:
        row = geometry.image_shape[0] - 1 - row
    expected = np.stack([(col + 0.5) * spacing, (row + 0.5) * spacing], axis=-1)
    assert any(points.shape == expected.shape and np.allclose(points, expected, atol=1e-3) for points in drawn)
    assert item.isVisible() and item.boundingRect().contains(*expected[0])

    # the other structure sets of the study reference the same CT: their ROIs on slice 1 (z = 65) are drawn too
    viewer.state.set_slice("axial", 1)
    qtbot.wait(20)
    colours = {colour.getRgb()[:3] for _, colour, _ in item.lines}
    assert (255, 0, 255) in colours and (162, 136, 95) not in colours

    # View > Show RT Structures hides and shows the layer
    window.rtstruct.action.setChecked(False)
    assert not item.isVisible()
    window.rtstruct.action.setChecked(True)
    assert item.isVisible()
    item.update()
    qtbot.wait(20)  # painting must not raise


def read_rtstruct_square(path) -> np.ndarray:
    from viewer.core.rtstruct import read_rtstruct

    return read_rtstruct(path)[0].contours[0]


def test_structures_read_for_a_series_no_longer_shown_are_dropped(rt_utils_window, qtbot):
    """The structure sets are read on a worker; when another series is shown before that ends, nothing of the old
    one is drawn."""
    window, _ = rt_utils_window
    controller = window.rtstruct
    job = controller.series_loaded(window.catalog, window.current_series, window.session.current.volume)
    assert job is not None and controller.layer is None  # the old layer is gone; the new one is being read
    with qtbot.waitSignal(job.done, timeout=10_000):
        controller.clear()  # another series is shown
    qtbot.wait(20)
    assert controller.layer is None and not any(isinstance(layer, RTStructLayer) for layer in window.viewer.layers)
    job = controller.series_loaded(window.catalog, window.current_series, window.session.current.volume)
    qtbot.waitUntil(lambda: controller.layer is not None, timeout=10_000)  # left alone, it is drawn


def test_structures_read_for_a_deleted_controller_are_dropped(rt_utils_window, qtbot):
    """The read finished (its result queued from the worker) just before its controller was deleted with its
    window: nothing may reach the deleted controller, nor be drawn on the views."""
    import shiboken6

    from viewer.qt.rtstruct_layer import RTStructController
    from viewer.qt.workers import job_pool

    window, _ = rt_utils_window
    layers = list(window.viewer.layers)
    controller = RTStructController(window.viewer)
    assert controller.series_loaded(window.catalog, window.current_series, window.session.current.volume)
    job_pool().waitForDone(10_000)  # the result is queued for the GUI thread, not delivered yet
    shiboken6.delete(controller)  # with its action and the job's handle
    qtbot.wait(50)  # delivering it must not touch the deleted controller (pytest-qt fails on an error in a slot)
    assert list(window.viewer.layers) == layers
