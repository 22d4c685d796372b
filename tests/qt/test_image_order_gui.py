"""View ▸ Image Order: head first (PACS, the default) or as acquired, remembered, on a real CT whose instance
numbers run from the feet to the head (ten LIDC slices renumbered with pydicom)."""
from __future__ import annotations

import pydicom
import pytest
from PySide6.QtCore import Qt

from tests.conftest import data_path
from tests.qt.conftest import open_and_wait


@pytest.fixture
def feet_first_ct(tmp_path):
    """Ten consecutive LIDC slices whose InstanceNumber 1 is the most inferior one."""
    files = sorted(data_path("lidc-idri-0001").rglob("*.dcm"))
    headers = sorted(((pydicom.dcmread(f, stop_before_pixels=True), f) for f in files),
                     key=lambda pair: float(pair[0].ImagePositionPatient[2]))[:10]  # inferior first
    folder = tmp_path / "feet-first"
    folder.mkdir()
    for number, (_, path) in enumerate(headers, start=1):
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = number
        ds.save_as(folder / f"{number:03d}.dcm")
    return folder


def z_of_shown(window) -> float:
    state = window.viewer.state
    return float(window.viewer.volume.index_to_lps((0, 0, state.slice_index("axial")))[2])


def test_image_order_setting_is_applied_and_remembered(main_window, qtbot, settings, feet_first_ct):
    open_and_wait(qtbot, main_window, [feet_first_ct])
    viewer = main_window.viewer
    volume = viewer.volume
    zs = [float(volume.index_to_lps((0, 0, k))[2]) for k in range(volume.shape[0])]
    assert main_window.image_order_actions["head_first"].isChecked()
    assert z_of_shown(main_window) == max(zs)  # opens at image 1, the top
    view = viewer.active_view
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert z_of_shown(main_window) < max(zs)

    main_window.image_order_actions["as_acquired"].trigger()
    assert settings.image_order == "as_acquired" and main_window.image_order_actions["as_acquired"].isChecked()
    qtbot.keyClick(view, Qt.Key.Key_Home)
    assert z_of_shown(main_window) == min(zs)  # image 1 is InstanceNumber 1: the feet end
    assert viewer.overlay_lines(view)["bottom-left"][0] == "Im 1/10"
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert z_of_shown(main_window) > min(zs)  # Down follows the acquisition, towards the head here

    # a series opened later uses the setting; a new window restores it
    open_and_wait(qtbot, main_window, [feet_first_ct])
    assert z_of_shown(main_window) == min(zs)
    from viewer.qt.main_window import MainWindow

    again = MainWindow(settings)
    qtbot.addWidget(again)
    assert again.viewer.image_order.value == "as_acquired"
    main_window.set_image_order("head_first")
    assert settings.image_order == "head_first"
