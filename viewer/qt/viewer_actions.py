"""The viewer's keyboard actions and its right-click menu (one table of keys: :mod:`viewer.qt.tools`).

Actions are built once per viewer and kept in ``viewer.actions`` by key, so the main window puts the same
actions in its menus and toolbar; the preset actions (number keys) are rebuilt when the presets change.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu

from viewer.core.bindings import ACTIONS_BY_ID
from viewer.qt.layouts import LAYOUTS
from viewer.qt.tools import TOOLS

if TYPE_CHECKING:  # pragma: no cover
    from viewer.qt.viewer_widget import ViewerWidget

PAGE_STEP = 10
#: Actions whose keys work whatever panel of the window has focus (inputs keep their own keys: see
#: :mod:`viewer.qt.key_routing`); the window preset actions (number keys) too. The others (tools, Space, Delete,
#: letters) stay live only while the viewer has focus, so buttons, lists and type-ahead keep theirs.
#: The thick-slab actions, in menu order (View > Thick Slab and the right-click menu).
SLAB_ACTIONS = ("slab", "slab_projection", "slab_thicker", "slab_thinner")
WINDOW_WIDE_ACTIONS = frozenset({"next_slice", "previous_slice", "page_forward", "page_back", "first_slice",
                                 "last_slice", "window_default"})


def on_state(viewer: ViewerWidget, name: str, *args):
    """A slot that calls ``name(*args)`` on the shown series' display state (nothing without a series)."""
    def slot(*_):
        if viewer.state is not None:
            getattr(viewer.state, name)(*args)
    return slot


def bind_state(viewer: ViewerWidget, state, connect: bool = True) -> None:
    """Connect ``viewer`` to the events of the display ``state`` it shows (or, ``connect=False``, disconnect it:
    a state kept per series outlives its turn on screen). A slab change redraws like a window change: the
    pixels and the texts change, the position does not."""
    for event, slot in ((state.position_changed, viewer._on_position_changed),
                        (state.window_changed, viewer._on_window_changed),
                        (state.slab_changed, viewer._on_window_changed)):
        if connect:
            event.connect(slot)
        else:
            event.disconnect(slot)


def binding_id(key: str, viewer: ViewerWidget) -> str:
    """The id in the binding table (:mod:`viewer.core.bindings`) of action ``key``: itself, or for a window preset
    ``preset_<n>`` by its number key."""
    if key.startswith("preset_"):
        for number, action in enumerate(viewer.preset_actions, start=1):
            if viewer.actions.get(key) is action:
                return f"preset_{number}"
    return key


def set_keys(action: QAction, shortcuts) -> None:
    """Give ``action`` these keys (a key text, a list of them, or none)."""
    if isinstance(shortcuts, (str, QKeySequence)):
        shortcuts = [shortcuts]
    action.setShortcuts([QKeySequence(s) for s in shortcuts or ()])


def apply_key_bindings(viewer: ViewerWidget) -> None:
    """Set every viewer action's keys from ``viewer.bindings`` (after the user changed them)."""
    for key, action in viewer.actions.items():
        bid = binding_id(key, viewer)
        if bid in ACTIONS_BY_ID:
            set_keys(action, viewer.bindings.keys_of(bid))


def add_action(viewer: ViewerWidget, key: str, text: str, shortcuts, slot, checkable: bool = False) -> QAction:
    """A new action of ``viewer`` under ``key``: its keys come from the viewer's binding table when it has the
    action (``shortcuts`` otherwise), and live in the whole window for the navigation actions
    (:data:`WINDOW_WIDE_ACTIONS`, presets), in the viewer otherwise."""
    action = QAction(text, viewer)
    if key.startswith("preset_"):  # ``shortcuts`` is its number: preset 1 is bound as "preset_1"
        shortcuts = viewer.bindings.keys_of(f"preset_{shortcuts}") if shortcuts else ()
    elif key in ACTIONS_BY_ID:
        shortcuts = viewer.bindings.keys_of(key)
    set_keys(action, shortcuts)
    window_wide = key in WINDOW_WIDE_ACTIONS or key.startswith("preset_")
    action.setShortcutContext(Qt.ShortcutContext.WindowShortcut if window_wide
                              else Qt.ShortcutContext.WidgetWithChildrenShortcut)
    action.setCheckable(checkable)
    action.triggered.connect(slot)
    viewer.addAction(action)
    viewer.actions[key] = action
    return action


def build_actions(viewer: ViewerWidget) -> None:
    """Every keyboard action of the viewer: slices, cine, window, view, slab, layout, tools, measurements, Esc."""
    v = viewer

    def a(*args, **kwargs) -> QAction:
        return add_action(v, *args, **kwargs)

    a("next_slice", "Next slice", ["Down", "Right"], lambda: v.step(1))
    a("previous_slice", "Previous slice", ["Up", "Left"], lambda: v.step(-1))
    a("page_forward", f"{PAGE_STEP} slices forward", "PgDown", lambda: v.step(PAGE_STEP))
    a("page_back", f"{PAGE_STEP} slices back", "PgUp", lambda: v.step(-PAGE_STEP))
    a("first_slice", "First slice", "Home", lambda: v.go_to_end(False))
    a("last_slice", "Last slice", "End", lambda: v.go_to_end(True))
    a("cine", "Cine play/pause", "Space", v.toggle_cine)
    a("cine_faster", "Cine faster / larger brush", "]", lambda: v.bracket(+1))
    a("cine_slower", "Cine slower / smaller brush", "[", lambda: v.bracket(-1))
    build_preset_actions(v)
    a("window_default", "DICOM window (series)", "0", on_state(v, "reset_window"))
    a("window_image", "DICOM window (this image)", None, v.image_window)
    a("window_auto", "Auto window (percentiles)", "A", on_state(v, "auto_window"))
    a("invert", "Invert", "I", on_state(v, "toggle_invert"))
    a("fit", "Fit to window", "F", v.fit)
    a("reset", "Reset view", "R", v.reset_view)
    a("zoom_in", "Zoom in", ["+", "="], lambda: v.active_view.zoom_by(1.25))
    a("zoom_out", "Zoom out", "-", lambda: v.active_view.zoom_by(0.8))
    a("crosshair", "Show crosshair", "X", v.toggle_crosshair, checkable=True).setChecked(True)
    a("slab", "Thick slab on/off (10 mm MIP)", "M", on_state(v, "toggle_slab"))
    a("slab_projection", "Slab projection: MIP / MinIP / Avg", "Shift+M", on_state(v, "cycle_projection"))
    a("slab_thicker", "Thicker slab", ".", on_state(v, "step_slab", +1))
    a("slab_thinner", "Thinner slab", ",", on_state(v, "step_slab", -1))
    group = QActionGroup(v)
    for name in LAYOUTS:
        group.addAction(a(f"layout_{name}", f"Layout {name}", None,
                          lambda _=False, n=name: v.set_layout(n), checkable=True))
    tools = QActionGroup(v)
    for tool, label, key, tip in TOOLS:
        act = a(f"tool_{tool.value}", label, key, lambda _=False, t=tool: v.set_tool(t), checkable=True)
        act.setToolTip(f"{label} ({key}): {tip}")
        tools.addAction(act)
    v.actions["tool_window"].setChecked(True)
    a("delete_measurement", "Delete measurement", ["Delete", "Backspace"], v.delete_selected_measurement)
    a("escape", "Cancel", "Esc", v.cancel)


def build_preset_actions(viewer: ViewerWidget) -> None:
    """(Re)build the window preset actions in ``viewer.preset_actions``: number keys 1-9 in preset order."""
    for key in [k for k in viewer.actions if k.startswith("preset_")]:
        action = viewer.actions.pop(key)
        viewer.removeAction(action)
        action.deleteLater()
    viewer.preset_actions = []
    for number, preset in enumerate(viewer.presets, start=1):
        action = add_action(viewer, f"preset_{preset.name}",
                            f"{preset.label}  (W {preset.width:g} L {preset.center:g})",
                            str(number) if number <= 9 else None,  # its number in the binding table
                            on_state(viewer, "apply_preset", number))
        viewer.preset_actions.append(action)


def context_menu(viewer: ViewerWidget) -> QMenu:
    """The right-click menu of a view: presets and window, tools, layout and view actions, delete."""
    menu = QMenu(viewer)
    presets = menu.addMenu("Window presets")
    for action in viewer.preset_actions:
        presets.addAction(action)
    presets.addSeparator()
    for key in ("window_default", "window_image", "window_auto", "invert"):
        presets.addAction(viewer.actions[key])
    tools = menu.addMenu("Tool")
    for tool, *_ in TOOLS:
        tools.addAction(viewer.actions[f"tool_{tool.value}"])
    slab = menu.addMenu("Thick slab")
    for key in SLAB_ACTIONS:
        slab.addAction(viewer.actions[key])
    menu.addSeparator()
    for key in ("layout_1x1", "layout_1x3", "layout_2x2", "crosshair", "fit", "reset", "cine"):
        menu.addAction(viewer.actions[key])
    if viewer.selected_measurement_id is not None:
        menu.addSeparator()
        menu.addAction(viewer.actions["delete_measurement"])
    menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    return menu
