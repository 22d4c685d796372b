"""PACS > PACS Nodes…: the nodes the app may contact, edited in a list and a form, tested, stored in the settings.

A node is plain data (:class:`~viewer.services.pacs.nodes.PacsNode`, validated there); this dialog only edits a
working copy of the list and writes it with :meth:`~viewer.qt.settings.Settings.set_pacs_nodes` on Save. The password
or token sits in a password field, is never shown in the list (which lists :meth:`PacsNode.describe`) and is never
logged. Test runs the node's C-ECHO or QIDO-RS ping (:func:`~viewer.services.pacs.client.echo_job`) on a worker: it may
wait for the node's whole timeout, never with the window frozen.
"""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from viewer.services.pacs.nodes import AuthKind, NodeError, NodeKind, PacsNode, RetrieveRoute


def _form(widget: QWidget) -> QFormLayout:
    layout = QFormLayout(widget)
    layout.setContentsMargins(0, 0, 0, 0)
    return layout


class NodeFormWidget(QWidget):
    """The fields of one node: its name and kind, then the DICOMweb or the DIMSE fields."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = QLineEdit()
        self.kind = QComboBox()
        self.kind.addItem("DICOMweb (QIDO-RS / WADO-RS / STOW-RS)", NodeKind.DICOMWEB.value)
        self.kind.addItem("DIMSE (C-FIND / C-GET or C-MOVE / C-STORE)", NodeKind.DIMSE.value)
        self.url = QLineEdit()
        self.url.setPlaceholderText("http://pacs.example:8042/dicom-web")
        self.auth = QComboBox()
        for kind, label in ((AuthKind.NONE, "None"), (AuthKind.BASIC, "Basic (user and password)"),
                            (AuthKind.BEARER, "Bearer token")):
            self.auth.addItem(label, kind.value)
        self.username = QLineEdit()
        self.secret = QLineEdit()
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)  # never on screen; kept in the settings file only
        self.aet = QLineEdit()
        self.aet.setPlaceholderText("the PACS's AE title")
        self.host = QLineEdit()
        self.port = QSpinBox()
        self.port.setRange(0, 65535)
        self.our_aet = QLineEdit()
        self.storage_port = QSpinBox()
        self.storage_port.setRange(0, 65535)
        self.storage_port.setSpecialValueText("none (C-GET only)")
        self.route = QComboBox()
        self.route.addItem("C-GET (no port to open here)", RetrieveRoute.C_GET.value)
        self.route.addItem("C-MOVE to our storage port", RetrieveRoute.C_MOVE.value)
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(0.5, 600.0)
        self.timeout.setSuffix(" s")
        web, dimse = QWidget(), QWidget()
        web_form, dimse_form = _form(web), _form(dimse)
        web_form.addRow("Base URL", self.url)
        web_form.addRow("Authentication", self.auth)
        web_form.addRow("User", self.username)
        web_form.addRow("Password / token", self.secret)
        dimse_form.addRow("PACS AE title", self.aet)
        dimse_form.addRow("Host", self.host)
        dimse_form.addRow("Port", self.port)
        dimse_form.addRow("Our AE title", self.our_aet)
        dimse_form.addRow("Our storage port", self.storage_port)
        dimse_form.addRow("Retrieve by", self.route)
        self.pages = QStackedWidget()
        self.pages.addWidget(web)
        self.pages.addWidget(dimse)
        form = _form(self)
        form.addRow("Name", self.name)
        form.addRow("Kind", self.kind)
        form.addRow(self.pages)
        form.addRow("Timeout", self.timeout)
        self.kind.currentIndexChanged.connect(self.pages.setCurrentIndex)
        self.auth.currentIndexChanged.connect(self._auth_changed)
        self.set_node(PacsNode(name=""))

    def _auth_changed(self) -> None:
        auth = AuthKind(self.auth.currentData())
        self.username.setEnabled(auth is AuthKind.BASIC)
        self.secret.setEnabled(auth is not AuthKind.NONE)

    def set_node(self, node: PacsNode) -> None:
        """Show ``node``'s fields."""
        self.name.setText(node.name)
        self.kind.setCurrentIndex(self.kind.findData(node.kind.value))
        self.pages.setCurrentIndex(self.kind.currentIndex())
        self.url.setText(node.url)
        self.auth.setCurrentIndex(self.auth.findData(node.auth.value))
        self.username.setText(node.username)
        self.secret.setText(node.secret)
        self.aet.setText(node.aet)
        self.host.setText(node.host)
        self.port.setValue(node.port)
        self.our_aet.setText(node.our_aet)
        self.storage_port.setValue(node.storage_port)
        self.route.setCurrentIndex(self.route.findData(node.retrieve_route.value))
        self.timeout.setValue(node.timeout_s)
        self._auth_changed()

    def node(self) -> PacsNode:
        """The node the fields describe (not validated: see :meth:`PacsNode.validate`)."""
        kind = NodeKind(self.kind.currentData())
        auth = AuthKind(self.auth.currentData())
        return PacsNode(name=self.name.text().strip(), kind=kind, url=self.url.text().strip(), auth=auth,
                        username=self.username.text().strip() if auth is AuthKind.BASIC else "",
                        secret=self.secret.text() if auth is not AuthKind.NONE else "",
                        aet=self.aet.text().strip(), host=self.host.text().strip(), port=self.port.value(),
                        our_aet=self.our_aet.text().strip(), storage_port=self.storage_port.value(),
                        retrieve_route=RetrieveRoute(self.route.currentData()), timeout_s=self.timeout.value())


class PacsNodesDialog(QDialog):
    """The list of nodes with Add / Remove, the selected node's form, Test, and Save.

    Signals
    -------
    tested(object)
        The :class:`~viewer.services.pacs.model.EchoResult` of a Test.
    nodes_saved(list)
        The nodes written to the settings.
    """

    tested = Signal(object)
    nodes_saved = Signal(list)

    def __init__(self, settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS Nodes")
        self.settings = settings
        self.nodes: list[PacsNode] = list(settings.pacs_nodes())
        self.test_job = None
        self.list = QListWidget()
        self.form = NodeFormWidget()
        add, remove = QPushButton("Add"), QPushButton("Remove")
        self.test_button = QPushButton("Test")
        self.test_button.setToolTip("C-ECHO (DIMSE) or a one-study QIDO-RS search (DICOMweb)")
        self.cache_gb = QDoubleSpinBox()
        self.cache_gb.setRange(0.5, 10_000.0)
        self.cache_gb.setSuffix(" GB")
        self.cache_gb.setValue(settings.pacs_cache_gb)
        self.cache_gb.setToolTip("Retrieved series are kept in the user cache folder up to this size; the least "
                                 "recently used go first")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setObjectName("pacs-node-message")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        left.addLayout(row)
        right = QVBoxLayout()
        right.addWidget(self.form)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.message, 1)
        right.addLayout(test_row)
        right.addStretch(1)
        cache_row = QFormLayout()
        cache_row.addRow("Retrieve cache", self.cache_gb)
        right.addLayout(cache_row)
        body = QHBoxLayout()
        body.addLayout(left, 1)
        body.addLayout(right, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(body, 1)
        layout.addWidget(buttons)
        add.clicked.connect(self.add_node)
        remove.clicked.connect(self.remove_node)
        self.test_button.clicked.connect(self.test)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        self._row = -1
        self.list.currentRowChanged.connect(self._select)
        self._refill(0)
        self.resize(760, 420)

    # ---- the list -----------------------------------------------------------------------------------------------
    def _refill(self, row: int) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for node in self.nodes:
            self.list.addItem(node.describe() if node.name else "(new node)")  # describe(): never the secret
        self.list.blockSignals(False)
        self._row = -1
        self.form.setEnabled(bool(self.nodes))
        self.test_button.setEnabled(bool(self.nodes))
        if self.nodes:
            self.list.setCurrentRow(max(0, min(row, len(self.nodes) - 1)))

    def _select(self, row: int) -> None:
        self._keep_form()
        self._row = row
        if 0 <= row < len(self.nodes):
            self.form.set_node(self.nodes[row])
        self.message.clear()

    def _keep_form(self) -> None:
        """The form's fields into the working list (validated only on Save and Test)."""
        if 0 <= self._row < len(self.nodes):
            self.nodes[self._row] = self.form.node()
            item = self.list.item(self._row)
            if item is not None:
                item.setText(self.nodes[self._row].describe() if self.nodes[self._row].name else "(new node)")

    def add_node(self) -> None:
        """A new DICOMweb node with a free name, selected for editing."""
        self._keep_form()
        names = {node.name for node in self.nodes}
        name = next(f"PACS {n}" for n in range(1, len(names) + 2) if f"PACS {n}" not in names)
        self.nodes.append(PacsNode(name=name))
        self._refill(len(self.nodes) - 1)
        self.form.url.setFocus()

    def remove_node(self) -> None:
        """Drop the selected node (from the working list; the settings change on Save)."""
        row = self.list.currentRow()
        if 0 <= row < len(self.nodes):
            self._row = -1
            del self.nodes[row]
            self._refill(row)

    # ---- test and save ------------------------------------------------------------------------------------------
    def current_node(self) -> PacsNode | None:
        """The node in the form, validated; None (with the reason shown) when it is not valid."""
        if not self.nodes:
            return None
        try:
            return self.form.node().validate()
        except NodeError as error:
            self.message.setText(f"Not valid: {error}")
            return None

    def test(self):
        """C-ECHO / QIDO ping of the node in the form on a worker; returns the job handle (None: invalid node)."""
        from viewer.qt.workers import start_job
        from viewer.services.pacs.client import echo_job

        node = self.current_node()
        if node is None:
            return None
        self.test_button.setEnabled(False)
        self.message.setText(f"Testing {node.describe()}…")
        self.test_job = start_job(lambda token: echo_job(node), "pacs-echo", parent=self)
        self.test_job.finished.connect(self._on_tested)
        self.test_job.failed.connect(lambda reason: self.message.setText(f"Failed: {reason}"))
        self.test_job.done.connect(lambda: self.test_button.setEnabled(True))
        return self.test_job

    def _on_tested(self, result) -> None:
        if result.ok:
            self.message.setText(f"OK: answered in {result.seconds * 1000:.0f} ms")
        else:
            self.message.setText(f"Failed: {result.message}")
        self.tested.emit(result)

    def save(self) -> None:
        """Validate every node (names unique) and write them and the cache size to the settings; the first problem
        is shown instead."""
        self._keep_form()
        seen: set[str] = set()
        for row, node in enumerate(self.nodes):
            try:
                node.validate()
                if node.name in seen:
                    raise NodeError(f"name: another node is called {node.name!r}")
            except NodeError as error:
                self.list.setCurrentRow(row)
                self.message.setText(f"Not saved: {error}")
                return
            seen.add(node.name)
        self.settings.set_pacs_nodes(self.nodes)
        self.settings.pacs_cache_gb = self.cache_gb.value()
        self.settings.sync()
        self.nodes_saved.emit(list(self.nodes))
        self.accept()
