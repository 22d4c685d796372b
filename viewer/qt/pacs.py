"""The PACS part of the main window: the PACS dock (query and retrieve), the nodes dialog and the Send dialog.

:class:`PacsController` owns them so the window only makes one object and names its dock; the PACS menu
(:func:`build_pacs_menu`) calls its methods. The dock starts hidden, tabbed with the series browser: PACS > Query
PACS… (Ctrl+Shift+Q) brings it up.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt

from viewer.qt.pacs_browser import PacsBrowserWidget
from viewer.qt.pacs_retrieve import PacsRetriever


class PacsController(QObject):
    """The PACS dock, the retriever and the dialogs of one main window."""

    def __init__(self, window) -> None:
        from viewer.qt.window_chrome import add_dock

        super().__init__(window)
        self.window = window
        self.browser = PacsBrowserWidget(window.settings, window)
        self.dock = add_dock(window, "PACS", "dock-pacs", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        window.tabifyDockWidget(window.series_dock, self.dock)
        self.dock.hide()
        self.retriever = PacsRetriever(window)
        self.browser.retrieve_requested.connect(self.retriever.retrieve)
        self.browser.nodes_requested.connect(self.edit_nodes)
        self.retriever.started.connect(self.browser.track_retrieve)
        self.retriever.ended.connect(self.browser.set_status)
        self.nodes_dialog = None
        self.send_dialog = None

    def show_query(self) -> None:
        """PACS > Query PACS…: the dock, in front, the cursor in the patient name (the nodes dialog when there is no
        node yet)."""
        self.dock.show()
        self.dock.raise_()
        self.browser.focus_query()
        if self.browser.node() is None:
            self.edit_nodes()

    def edit_nodes(self):
        """PACS > PACS Nodes…: the nodes dialog (the dock's node list follows what it saves)."""
        from viewer.qt.pacs_nodes_dialog import PacsNodesDialog

        dialog = PacsNodesDialog(self.window.settings, self.window)
        dialog.nodes_saved.connect(self.browser.reload_nodes)
        dialog.open()
        self.nodes_dialog = dialog
        return dialog

    def send(self):
        """PACS > Send to PACS…: the send dialog for the shown series."""
        from viewer.qt.pacs_send import PacsSendDialog

        dialog = PacsSendDialog(self.window)
        dialog.open()
        self.send_dialog = dialog
        return dialog

    def cancel(self) -> None:
        """Stop searches and the retrieve (the window closes, or the user cancelled everything)."""
        self.browser.cancel()
        self.retriever.cancel()


def build_pacs_menu(window) -> None:
    """The PACS menu: Query PACS… (Ctrl+Shift+Q, rebindable), Send to PACS…, PACS Nodes…."""
    from viewer.qt.window_chrome import menu_action

    pacs = window.pacs
    menu = window.menuBar().addMenu("&PACS")
    window.action_pacs_query = menu_action(window, menu, "&Query PACS…", pacs.show_query, "Ctrl+Shift+Q")
    window.action_pacs_send = menu_action(window, menu, "&Send to PACS…", pacs.send)
    menu.addSeparator()
    window.action_pacs_nodes = menu_action(window, menu, "PACS &Nodes…", pacs.edit_nodes)
