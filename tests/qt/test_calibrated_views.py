"""What a view claims about size and orientation follows the file: an ultrasound with regions, a CR with only
ImagerPixelSpacing, a CT with full geometry (built with pydicom from pydicom's test files, opened in the window)."""
from __future__ import annotations

from tests.core.test_calibration import projection, us_cine  # noqa: F401 - fixtures reused
from tests.qt.conftest import open_and_wait, widget_pos_of_voxel
from viewer.core.measure import Measurement


def test_ultrasound_view_has_no_plane_letters_or_mm_bar_and_plays_at_the_file_rate(
        main_window, qtbot, us_cine):  # noqa: F811 - the imported fixture, requested by name
    open_and_wait(qtbot, main_window, [us_cine.parent])
    viewer = main_window.viewer
    view = viewer.active_view
    lines = viewer.overlay_lines(view)
    assert "Axial" not in lines["top-right"] and lines["top-right"][-1] == "US"
    assert lines["bottom-left"][0] == "Im 2/3"  # a non-axial, non-CT stack opens at its middle image
    assert viewer.state.display_number("axial", 0) == 1  # no geometry: frames in file order, cine forwards
    assert lines["bottom-right"][0] == "RGB"  # no grey window is claimed for colour
    assert "mm per US region" in lines["bottom-left"] and not any(t.startswith("Loc") for t in lines["bottom-left"])
    assert view._labels == {}
    assert view.scale_bar_options(view.viewport().width()) == []
    assert all(box.kind not in ("letter", "scale") for box in view.overlay_texts())
    assert viewer.cine_fps == 30.0
    viewer.toggle_cine()
    assert "Cine 30 fps (file)" in viewer.overlay_lines(view)["bottom-right"]
    viewer.stop_cine()
    m = Measurement("length", "axial", 1, [(100.0, 200.0, 1.0), (100.0 + 50 / 0.51, 200.0, 1.0)])
    viewer.add_measurement(m)
    assert viewer.find_measurement(m.id).summary() == "50.0 mm"
    row = main_window.measurements_panel.tree.topLevelItem(0)
    assert row.text(2).startswith("50.0 mm") and row.text(3) == "Im 2"  # no plane name without geometry
    assert "mm per ultrasound region" in main_window.statusBar().currentMessage()
    assert "1.00x1.00" not in main_window.statusBar().currentMessage()  # the nominal grid is not a size
    pos = widget_pos_of_voxel(view, (200.0, 100.0, 1.0))
    view.scene().sigMouseMoved.emit(view.mapToScene(pos.toPoint()))
    text = main_window.cursor_label.text()
    assert "frame 2" in text and "Pixel (" in text and "LPS" not in text and " mm" not in text


def test_projection_with_imager_spacing_says_detector_mm(main_window, qtbot, tmp_path):
    open_and_wait(qtbot, main_window, [projection(tmp_path, "cr", imager_spacing=[0.2, 0.2]).parent])
    viewer = main_window.viewer
    lines = viewer.overlay_lines(viewer.active_view)
    assert "mm at detector (ImagerPixelSpacing)" in lines["bottom-left"]
    assert viewer.active_view.scale_bar_options(viewer.active_view.viewport().width()) == []


def test_ct_with_geometry_keeps_plane_letters_and_scale_bar(main_window, qtbot, tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file

    path = tmp_path / "ct" / "ct.dcm"
    path.parent.mkdir()
    pydicom.dcmread(get_testdata_file("CT_small.dcm")).save_as(path)
    open_and_wait(qtbot, main_window, [path.parent])
    viewer = main_window.viewer
    view = viewer.active_view
    assert viewer.overlay_lines(view)["top-right"][0] == "Axial"
    assert set(view._labels) == {"left", "right", "top", "bottom"}
    assert view.scale_bar_options(view.viewport().width())
