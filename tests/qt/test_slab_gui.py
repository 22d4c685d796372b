"""The thick slab in the reading window, driven by keys and the toolbar on the real LIDC-IDRI-0001 chest CT."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from viewer.core.reformat import Plane
from viewer.core.slab import Projection


def reference_mip(state, plane, k):
    """The MIP over the slab's slices as drawn one by one (independent of the state's reduction)."""
    geometry = state.geometry(plane)
    start, stop = state.slab_range(plane, k)
    return np.max(np.stack([geometry.take(state.volume.array, j) for j in range(start, stop)]), axis=0)


def test_slab_keys_toolbar_corner_text_and_mpr(lidc_window, qtbot):
    window = lidc_window
    viewer = window.viewer
    state = viewer.state
    view = viewer.active_view
    view.setFocus()
    state.go_to_number("axial", 60)
    single = view.image_item.image.copy()
    assert len(viewer.overlay_lines(view)["bottom-left"]) == 3  # Im, Loc, Sp: no slab line
    controls = window.slab_controls
    assert controls.projection_box.currentText() == "Slice" and controls.thickness_box.value() == 10.0

    qtbot.keyClick(view, Qt.Key.Key_M)  # slab on: 10 mm MIP
    assert state.projection == Projection.MIP and state.slab_mm == 10.0
    assert not np.array_equal(single, view.image_item.image), "the view draws the slab"
    np.testing.assert_array_equal(view.image_item.image,
                                  viewer.display_image(reference_mip(state, Plane.AXIAL, view.k)))
    lines = viewer.overlay_lines(view)["bottom-left"]
    assert lines[0] == "Im 60/133" and lines[1] == "MIP 10 mm (4 im)", lines
    assert controls.projection_box.currentText() == "MIP", "the toolbar follows the keys"

    # scrolling keeps the slab, centred on each new slice
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert state.display_number("axial") == 61
    np.testing.assert_array_equal(view.image_item.image,
                                  viewer.display_image(reference_mip(state, Plane.AXIAL, view.k)))

    # the toolbar drives the state: MinIP, 20 mm
    controls.projection_box.setCurrentIndex(controls.projection_box.findData("minip"))
    controls.thickness_box.setValue(20.0)
    assert state.projection == Projection.MINIP and state.slab_mm == 20.0
    assert viewer.overlay_lines(view)["bottom-left"][1] == "MinIP 20 mm (8 im)"
    qtbot.keyClick(view, Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)  # next projection
    assert state.projection == Projection.AVG and controls.projection_box.currentText() == "Avg"
    qtbot.keyClick(view, Qt.Key.Key_Comma)  # thinner
    assert state.slab_mm == 15.0 and controls.thickness_box.value() == 15.0
    qtbot.keyClick(view, Qt.Key.Key_Period)
    assert state.slab_mm == 20.0

    # 1x3: every plane shows its slab along its own normal, and says so
    state.set_slab("mip", 10.0)
    viewer.set_layout("1x3")
    qtbot.wait(20)
    for plane, count in ((Plane.AXIAL, 4), (Plane.CORONAL, 14), (Plane.SAGITTAL, 14)):
        v = viewer.views[plane]
        np.testing.assert_array_equal(v.image_item.image, viewer.display_image(reference_mip(state, plane, v.k)))
        assert viewer.overlay_lines(v)["bottom-left"][1] == f"MIP 10 mm ({count} im)"

    # the read-out under the mouse gives the slice's value and names the slab's
    viewer.readout.show(view, np.array([256.0, 256.0, float(view.k)]))
    record = viewer.last_cursor
    assert record["value"] == float(viewer.volume.array[view.k, 256, 256])
    assert record["slab_value"] == float(viewer.volume.array[state.slab_range("axial")[0]:
                                                             state.slab_range("axial")[1], 256, 256].max())
    assert "MIP 10 mm:" in window.cursor_label.text()

    # off again: the single slice, no slab line
    qtbot.keyClick(viewer.active_view, Qt.Key.Key_M)
    viewer.set_layout("1x1")
    qtbot.wait(20)
    assert not state.slab_on and controls.projection_box.currentText() == "Slice"
    np.testing.assert_array_equal(view.image_item.image, viewer.display_image(viewer.volume.array[view.k]))
    assert not any("MIP" in line for line in viewer.overlay_lines(view)["bottom-left"])


def test_overlays_stay_those_of_the_centre_slice(lidc_window, qtbot):
    from viewer.qt.layers import VolumeImageLayer

    viewer = lidc_window.viewer
    view = viewer.active_view
    rgba = np.zeros(viewer.volume.shape + (4,), np.uint8)
    rgba[..., 0] = np.arange(viewer.volume.shape[0], dtype=np.uint8)[:, None, None]  # red = slice number
    rgba[..., 3] = 255
    layer = VolumeImageLayer("slice numbers", rgba)
    viewer.add_layer(layer)
    viewer.state.set_slab("mip", 30.0)
    viewer.state.go_to_number("axial", 50)
    qtbot.wait(20)
    assert viewer.state.slab_range("axial") == (view.k - 5, view.k + 7)
    mask = layer._items[view][0].image
    assert (mask[..., 0] == view.k).all(), "the mask shown is the centre slice's, not a projection of masks"
    viewer.remove_layer(layer)
