"""Slice and window keys that work whatever panel has focus, except while the user types into an input.

The viewer's navigation actions (arrows, Page Up/Down, Home/End, the preset number keys) use
``Qt.WindowShortcut``: a key pressed in the series browser, the findings list or the tag browser reaches the
views. Inputs that own those keys themselves - text fields, spin boxes, combo boxes, sliders - keep them:
:class:`TextInputKeyGuard` accepts the ``ShortcutOverride`` event Qt sends before it looks up shortcuts,
which hands the key to the focused input instead of the shortcut. A list whose arrow keys walk items that
themselves move the image (the findings list: each row jumps to its finding) sets :data:`KEEPS_ARROWS` and keeps
Up/Down; its other keys still reach the views.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import (
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDockWidget,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

#: Widgets whose own key handling wins over the window-wide navigation keys.
KEY_OWNING_INPUTS = (QLineEdit, QAbstractSpinBox, QTextEdit, QPlainTextEdit, QComboBox, QAbstractSlider)

#: Dynamic property of a widget that keeps Up/Down for itself although it is not an input.
KEEPS_ARROWS = "keepsArrowKeys"
ARROW_KEYS = (Qt.Key.Key_Up, Qt.Key.Key_Down)

#: Modifiers that make a key a command (Ctrl+O, Alt+F): those stay shortcuts even inside an input.
COMMAND_MODIFIERS = (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
                     | Qt.KeyboardModifier.MetaModifier)


def owns_its_keys(widget: QWidget | None, key: int | None = None) -> bool:
    """True for an input (or a child of one, like a spin box's line edit) that handles plain keys itself, and for
    a widget marked :data:`KEEPS_ARROWS` when ``key`` is Up or Down."""
    while widget is not None:
        if isinstance(widget, KEY_OWNING_INPUTS):
            return True
        if key in ARROW_KEYS and widget.property(KEEPS_ARROWS):
            return True
        if widget.isWindow():
            return False
        widget = widget.parentWidget()
    return False


class TextInputKeyGuard(QObject):
    """Event filter for a window and its dock widgets: plain keys pressed in an input go to that input."""

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.ShortcutOverride and not (event.modifiers() & COMMAND_MODIFIERS) \
                and owns_its_keys(QApplication.focusWidget(), event.key()):
            event.accept()  # an accepted override: Qt delivers the key to the focus widget, not to a shortcut
            return True
        return False


def install_text_input_guard(window: QWidget) -> TextInputKeyGuard:
    """Let inputs anywhere in ``window`` keep their plain keys although the navigation shortcuts are window-wide.

    The guard watches ``window`` and its dock widgets: ``ShortcutOverride`` events travel up the parents of the
    focus widget to its window, and a floating dock is a window of its own. Returns the guard (owned by
    ``window``).
    """
    guard = TextInputKeyGuard(window)
    window.installEventFilter(guard)
    for dock in window.findChildren(QDockWidget):
        dock.installEventFilter(guard)
    return guard
