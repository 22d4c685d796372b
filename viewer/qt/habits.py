"""The user's reading habits in the main window: key and mouse bindings, hanging protocols, the last slab.

:class:`ReadingHabits` binds the settings (:class:`~viewer.qt.settings.Settings`) to the window: it gives the
viewer and the window's actions their keys from the binding table (:mod:`viewer.core.bindings`), gives the
session the hanging protocols (:mod:`viewer.core.hanging`: the session applies window, slab and first slice to a
fresh display state; the layout a rule asks for is set here, the first time a series is shown) and the user's
last slab, keeps the slab the user chooses, and adds View > Key and Mouse Bindings… and View > Hanging Protocols….
"""
from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialog

from viewer.core.bindings import ACTIONS_BY_ID, Bindings
from viewer.qt.bindings_dialog import BindingsDialog
from viewer.qt.hanging_dialog import HangingProtocolsDialog
from viewer.qt.viewer_actions import apply_key_bindings, set_keys


def window_actions(window) -> dict[str, QAction]:
    """The window's own actions that have an id in the binding table (menus, annotation), by id."""
    an = window.annotation
    found = {"open_folder": getattr(window, "action_open_folder", None),
             "open_files": getattr(window, "action_open_files", None),
             "save_screenshot": getattr(window, "action_save_screenshot", None),
             "copy_screenshot": getattr(window, "action_copy_screenshot", None),
             "run_model": getattr(window, "action_run_model", None),
             "hide_panels": getattr(window, "action_hide_panels", None),
             "pacs_query": getattr(window, "action_pacs_query", None),
             "undo": getattr(an, "undo_action", None), "redo": getattr(an, "redo_action", None),
             "threshold": getattr(an, "threshold_action", None)}
    return {k: a for k, a in found.items() if a is not None and k in ACTIONS_BY_ID}


class ReadingHabits(QObject):
    """Bindings, hanging protocols and the last slab of one main window (see the module docstring)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.settings = window.settings
        self.viewer = window.viewer
        self._slab_state = None
        self._hung: tuple | None = None  # (series key, times shown) whose layout was applied
        bindings, bindings_error = self.settings.bindings()
        protocols, hanging_error = self.settings.hanging_protocols()
        self.use_bindings(bindings)
        window.session.hanging = protocols
        window.session.slab_defaults = self.settings.slab
        window.session.shown_changed.connect(self._on_shown)
        self.viewer.window_text_changed.connect(lambda _text: self._follow_slab())
        self._add_menu_entries()
        #: Why stored bindings or protocols were not used ("" when they were): shown in the status bar.
        self.error = " ".join(e for e in (bindings_error, hanging_error) if e)
        if self.error:
            window.statusBar().showMessage(self.error, 15000)

    # ---- bindings -----------------------------------------------------------------------------------------------
    def use_bindings(self, bindings: Bindings) -> None:
        """Give the viewer's mouse and every action its keys from ``bindings`` (not saved: see
        :meth:`edit_bindings`)."""
        self.viewer.bindings = bindings
        apply_key_bindings(self.viewer)
        for action_id, action in window_actions(self.window).items():
            set_keys(action, bindings.keys_of(action_id))

    def edit_bindings(self) -> None:
        """View > Key and Mouse Bindings…: the dialog; OK uses and keeps the result."""
        dialog = BindingsDialog(self.viewer.bindings, self.window)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.save_bindings(dialog.bindings())

    def save_bindings(self, bindings: Bindings) -> None:
        """Use and remember ``bindings``."""
        self.use_bindings(bindings)
        self.settings.set_bindings(bindings)
        self.settings.sync()

    # ---- hanging protocols ------------------------------------------------------------------------------------
    def edit_hanging_protocols(self) -> None:
        """View > Hanging Protocols…: the JSON table; OK uses and keeps it (from the next series shown)."""
        protocols, _error = self.settings.hanging_protocols()
        dialog = HangingProtocolsDialog(protocols, self.window)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.save_hanging_protocols(dialog.text())

    def save_hanging_protocols(self, text: str | None) -> None:
        """Use and remember the table in ``text`` (None: the defaults)."""
        self.settings.set_hanging_protocols(text)
        protocols, error = self.settings.hanging_protocols()
        self.window.session.hanging = protocols
        if error:
            self.window.statusBar().showMessage(error, 15000)

    def _on_shown(self) -> None:
        """A series is shown: the first time, the layout its hanging rule asks for (before the viewer shows it)."""
        state = self.window.session.current
        if state is None or state.times_shown != 1 or self._hung == (state.key, id(state.display)):
            return
        self._hung = (state.key, id(state.display))
        rule = state.hanging
        if rule is not None and rule.layout is not None and rule.layout != self.viewer.layout_name:
            self.viewer.set_layout(rule.layout)

    # ---- the last slab --------------------------------------------------------------------------------------------
    def _follow_slab(self) -> None:
        state = self.viewer.state
        if state is self._slab_state:
            return
        if self._slab_state is not None:
            self._slab_state.slab_changed.disconnect(self._on_slab)
        self._slab_state = state
        if state is not None:
            state.slab_changed.connect(self._on_slab)

    def _on_slab(self, projection, thickness_mm) -> None:
        """The user changed the slab: remembered, and new series bring it back with the slab key."""
        previous = self.settings.slab
        self.settings.slab = (projection, thickness_mm)
        self.window.session.slab_defaults = (projection.value if projection.value != "none" else previous[0],
                                             float(thickness_mm))

    # ---- menus --------------------------------------------------------------------------------------------------
    def _add_menu_entries(self) -> None:
        view_menu = next((a.menu() for a in self.window.menuBar().actions() if a.text() == "&View"), None)
        if view_menu is None:
            return
        view_menu.addSeparator()
        self.bindings_action = view_menu.addAction("Key and Mouse &Bindings…", self.edit_bindings)
        self.hanging_action = view_menu.addAction("&Hanging Protocols…", self.edit_hanging_protocols)
