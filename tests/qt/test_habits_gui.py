"""Reading habits in the window (issue 13): bindings presets change what a drag does, custom keys persist, key
conflicts are refused, hanging protocols lay out the real chest CT and MR, the 2x2 layout's free view shows a MIP,
and the layout and last slab persist."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QSettings, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDialog

from tests.qt.conftest import drag, open_and_wait
from viewer.core.bindings import Bindings
from viewer.core.reformat import Plane
from viewer.qt.bindings_dialog import BindingsDialog
from viewer.qt.hanging_dialog import HangingProtocolsDialog
from viewer.qt.settings import Settings


def centre_of(view):
    return QPointF(view.viewport().width() / 2, view.viewport().height() / 2)


def reopened(settings: Settings) -> Settings:
    """A second Settings on the same file, as the next run of the app reads it."""
    settings.sync()
    return Settings(QSettings(settings.q.fileName(), QSettings.Format.IniFormat))


@pytest.fixture
def default_protocols(settings):
    """The settings with the shipped hanging protocols (the GUI tests' fixture turns them off)."""
    settings.set_hanging_protocols(None)
    return settings


def test_preset_switch_changes_what_a_left_drag_does(lidc_window):
    viewer = lidc_window.viewer
    view = viewer.active_view
    state = viewer.state
    c = centre_of(view)
    k, window = state.slice_index("axial"), state.window
    drag(view.viewport(), c, c + QPointF(0, 80))  # default: window/level
    assert state.slice_index("axial") == k and state.window != window
    lidc_window.habits.save_bindings(Bindings.from_preset("pacs"))
    window = state.window
    drag(view.viewport(), c, c + QPointF(0, 80))  # PACS-like: down = next images, the window stays
    assert state.slice_index("axial") != k and state.window == window
    assert state.display_number("axial") > 1
    k = state.slice_index("axial")
    drag(view.viewport(), c, c + QPointF(80, 40), button=Qt.MouseButton.RightButton)  # right: window/level
    assert state.window != window and state.slice_index("axial") == k
    viewer.set_tool("pan")  # a tool the user picked owns the plain left drag
    x_range = view.view_box.viewRange()[0]
    drag(view.viewport(), c, c + QPointF(60, 0))
    assert state.slice_index("axial") == k and view.view_box.viewRange()[0][0] < x_range[0] - 10
    assert reopened(lidc_window.settings).bindings()[0].preset == "pacs"


def test_custom_key_persists_and_drives_the_action(main_window, qtbot, settings):
    bindings = Bindings()
    bindings.keys["invert"] = ("J",)
    bindings.keys["layout_2x2"] = ("Ctrl+Shift+2",)
    main_window.habits.save_bindings(bindings)
    assert main_window.viewer.actions["invert"].shortcuts() == [QKeySequence("J")]
    again, error = reopened(settings).bindings()
    assert error == "" and again.keys_of("invert") == ("J",) and again.keys_of("fit") == ("F",)
    assert again.keys_of("layout_2x2") == ("Ctrl+Shift+2",)
    # the window's own actions follow the table too
    bindings.keys["open_folder"] = ("Ctrl+Shift+K",)
    main_window.habits.save_bindings(bindings)
    assert main_window.action_open_folder.shortcut() == QKeySequence("Ctrl+Shift+K")


def test_custom_key_works_in_a_new_window(lidc_dir, qtbot, settings, themed_app):
    from viewer.qt.main_window import MainWindow

    bindings = Bindings()
    bindings.keys["invert"] = ("J",)
    settings.set_bindings(bindings)
    window = MainWindow(reopened(settings))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    open_and_wait(qtbot, window, [lidc_dir])
    view = window.viewer.active_view
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_J)
    assert window.viewer.state.invert
    qtbot.keyClick(view, Qt.Key.Key_I)  # I no longer inverts
    assert window.viewer.state.invert
    window.cancel_jobs()


def test_conflicting_keys_are_named_and_refused(qapp):
    dialog = BindingsDialog(Bindings())
    assert dialog.check() == ""
    dialog.set_keys("invert", "f")
    message = dialog.conflict_label.text()
    assert "F is bound to Invert and Fit to window" in message
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    assert not ok.isEnabled()
    dialog.accept()
    assert dialog.result() != QDialog.DialogCode.Accepted
    dialog.set_keys("invert", "Hyper+Q")
    assert dialog.conflict_label.text().startswith("Not a key:")
    dialog.set_keys("invert", "I; Ctrl+Alt+I")
    assert dialog.check() == "" and ok.isEnabled()
    assert dialog.bindings().keys_of("invert") == ("I", "Ctrl+Alt+I")
    dialog.use_preset("slicer")
    assert dialog.bindings() == Bindings.from_preset("slicer")
    dialog.set_mouse("shift+right", None)
    dialog.set_mouse("ctrl+middle", dialog.bindings().mouse["left"])
    assert dialog.bindings().mouse["ctrl+middle"].value == "window"


def test_hanging_protocols_chest_ct_and_mr(default_protocols, main_window, qtbot, lidc_dir, mr_sagittal_dir):
    viewer = main_window.viewer
    assert viewer.layout_name == "1x1"
    open_and_wait(qtbot, main_window, [lidc_dir])
    assert viewer.layout_name == "1x3" and len(viewer.visible_views()) == 3
    assert viewer.state.window_name == "lung" and not viewer.state.slab_on
    assert viewer.state.display_number("axial") == 1
    open_and_wait(qtbot, main_window, [mr_sagittal_dir])
    assert viewer.layout_name == "1x1" and viewer.visible_views() == [viewer.views[Plane.SAGITTAL]]
    state = viewer.state
    assert state.slice_index(Plane.SAGITTAL) == state.n_slices(Plane.SAGITTAL) // 2
    # the user's own layout afterwards is theirs: showing the series again does not re-hang it
    viewer.set_layout("1x3")
    main_window.open_series(main_window.current_series.key)
    qtbot.wait(50)
    assert viewer.layout_name == "1x3"


def test_hanging_dialog_refuses_a_bad_table_and_settings_fall_back(main_window, settings):
    from viewer.core.hanging import HangingProtocols

    dialog = HangingProtocolsDialog(HangingProtocols())
    dialog.editor.setPlainText('[{"name": "x", "layout": "5x5"}]')
    dialog.accept()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert "layout is '5x5'" in dialog.error_label.text()
    settings.set_hanging_protocols('{"rules": 3}')
    table, error = reopened(settings).hanging_protocols()
    assert table == HangingProtocols() and "defaults instead" in error
    main_window.habits.save_hanging_protocols('[{"name": "All CT", "modality": ["CT"], "layout": "2x2"}]')
    assert [r.name for r in main_window.session.hanging.rules] == ["All CT"]


def test_two_by_two_shows_four_views_and_a_mip(lidc_window, qtbot):
    viewer = lidc_window.viewer
    viewer.set_layout("2x2")
    qtbot.wait(50)
    free = viewer.free.view
    visible = viewer.visible_views()
    assert len(visible) == 4 and free in visible
    assert free.isVisible() and free.width() > 100 and free.image_item.image is not None
    state, own = viewer.state, viewer.free.state
    assert own is not state and own.slab_on and own.projection.value == "mip"
    assert own.volume is state.volume
    k = state.slice_index("axial")
    assert free.k == k
    single = state.slice_image("axial", k)
    mip = own.slice_image("axial", k)
    assert np.all(mip >= single) and np.any(mip > single)
    assert "MIP 10 mm" in " ".join(viewer.overlay_lines(free)["bottom-left"])
    # linked: a step in the axial view moves the free view; scrolling in the free view moves the others
    number = state.display_number("axial")
    viewer.set_active_view(viewer.views[Plane.AXIAL])
    viewer.step(3)
    assert state.display_number("axial") == number + 3 and free.k == state.slice_index("axial") != k
    viewer.set_active_view(free)
    viewer.step(2)
    assert state.display_number("axial") == number + 5 and free.k == state.slice_index("axial")
    state.apply_preset("bone")
    assert own.window == state.window
    # a double click maximises it; again back to 2x2
    viewer.toggle_maximized(free)
    assert viewer.layout_name == "1x1" and viewer.visible_views() == [free]
    viewer.toggle_maximized(free)
    assert viewer.layout_name == "2x2" and len(viewer.visible_views()) == 4


def test_layout_and_slab_persist(lidc_window, qtbot, settings):
    viewer = lidc_window.viewer
    lidc_window.viewer.actions["layout_2x2"].trigger()
    assert viewer.layout_name == "2x2"
    viewer.state.toggle_slab()
    viewer.state.cycle_projection()  # MinIP
    viewer.state.step_slab(+1)  # 15 mm
    again = reopened(settings)
    assert again.layout == "2x2"
    assert again.slab == ("minip", 15.0)
    assert lidc_window.session.slab_defaults == ("minip", 15.0)
