"""The PACS dock: choose a node, search studies (patient name or ID, study dates, modality, accession), page through
them, list a study's series, and ask for a study or one series to be retrieved.

Every request runs on a worker (:func:`~viewer.qt.workers.start_job`) through the node's client
(:func:`~viewer.services.pacs.client.open_client`, made on the worker: importing pynetdicom and validating cost the GUI
thread nothing); a new search or another study stops the one before, and Stop cancels a search at its next step.
Which page comes next is :class:`~viewer.services.pacs.paging.StudyPager`'s business. The retrieve itself belongs to
:class:`~viewer.qt.pacs_retrieve.PacsRetriever`; this dock only asks for it
(:attr:`PacsBrowserWidget.retrieve_requested`) and shows its progress with a Cancel button.
"""
from __future__ import annotations

import datetime as dt

from PySide6.QtCore import QDate, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.services.pacs.model import QueryFilter, SeriesHit, StudyHit
from viewer.services.pacs.nodes import PacsNode
from viewer.services.pacs.paging import DEFAULT_PAGE_SIZE, StudyPager

UID_ROLE = Qt.ItemDataRole.UserRole + 1
MODALITIES = ("", "CT", "MR", "CR", "DX", "US", "PT", "NM", "MG", "XA", "RF", "SEG", "SR")
_NO_DATE = QDate(1900, 1, 1)  # the date edits' minimum, shown as "any"


def reason_text(reason: str) -> str:
    """A job's failure as the user reads it: the client's own message without the exception's class name."""
    for prefix in ("PacsError: ", "NodeError: "):
        if reason.startswith(prefix):
            return reason[len(prefix):]
    return reason


def _date_edit() -> QDateEdit:
    edit = QDateEdit()
    edit.setCalendarPopup(True)
    edit.setDisplayFormat("yyyy-MM-dd")
    edit.setMinimumDate(_NO_DATE)
    edit.setSpecialValueText("any")
    edit.setDate(_NO_DATE)
    return edit


def _date_of(edit: QDateEdit) -> dt.date | None:
    value = edit.date()
    return None if value == _NO_DATE else dt.date(value.year(), value.month(), value.day())


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def _date_text(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def _tree(headers: list[str]) -> QTreeWidget:
    tree = QTreeWidget()
    tree.setHeaderLabels(headers)
    tree.setRootIsDecorated(False)
    tree.setUniformRowHeights(True)
    tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    tree.setAlternatingRowColors(True)
    return tree


class PacsBrowserWidget(QWidget):
    """Query a PACS and choose what to retrieve.

    Signals
    -------
    retrieve_requested(object, str, object)
        ``(node, study UID, series UID or None for the whole study)``.
    nodes_requested()
        The user asked to edit the nodes (the Nodes… button).
    studies_listed(int)
        A page of studies arrived; how many studies are listed now.
    series_listed(int)
        The series of the selected study arrived (how many).
    query_failed(str)
        A search or series listing failed (the reason as shown).
    """

    retrieve_requested = Signal(object, str, object)
    nodes_requested = Signal()
    studies_listed = Signal(int)
    series_listed = Signal(int)
    query_failed = Signal(str)

    def __init__(self, settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pacs-browser")
        self.settings = settings
        self.pager: StudyPager | None = None
        self._nodes: list[PacsNode] = []
        self._node: PacsNode | None = None  # the node of the studies listed
        self.query_job = None
        self.series_job = None
        self.retrieve_job = None
        # Walking the study list with the arrow keys asks for one series list, not one per study passed over.
        self._series_timer = QTimer(self)
        self._series_timer.setSingleShot(True)
        self._series_timer.setInterval(150)
        self._series_timer.timeout.connect(self._list_series)
        self._build()
        self.reload_nodes()

    # ---- widgets ------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.node_box = QComboBox()
        nodes_button = QPushButton("Nodes…")
        nodes_button.clicked.connect(self.nodes_requested)
        self.patient_name = QLineEdit()
        self.patient_name.setPlaceholderText("DOE* (wildcards * and ?)")
        self.patient_id = QLineEdit()
        self.date_from, self.date_to = _date_edit(), _date_edit()
        self.modality = QComboBox()
        self.modality.setEditable(True)
        self.modality.addItems(list(MODALITIES))
        self.accession = QLineEdit()
        self.page_size = QSpinBox()
        self.page_size.setRange(1, 1000)
        self.page_size.setValue(DEFAULT_PAGE_SIZE)
        self.page_size.setToolTip("Studies asked for at a time; More asks for the next ones")
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self._search_or_stop)
        for edit in (self.patient_name, self.patient_id, self.accession):
            edit.returnPressed.connect(self.search)
        node_row = QHBoxLayout()
        node_row.addWidget(self.node_box, 1)
        node_row.addWidget(nodes_button)
        dates = QHBoxLayout()
        dates.addWidget(self.date_from, 1)
        dates.addWidget(QLabel("to"))
        dates.addWidget(self.date_to, 1)
        last_row = QHBoxLayout()
        last_row.addWidget(self.accession, 1)
        last_row.addWidget(QLabel("Page"))
        last_row.addWidget(self.page_size)
        form = QFormLayout()
        form.addRow("Node", node_row)
        form.addRow("Patient name", self.patient_name)
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Study date", dates)
        form.addRow("Modality", self.modality)
        form.addRow("Accession", last_row)
        self.studies = _tree(["Patient", "ID", "Date", "Modalities", "Description", "Series / images"])
        self.studies.currentItemChanged.connect(lambda *_: self._study_selected())
        self.more_button = QPushButton("More")
        self.more_button.setToolTip("The next page of studies")
        self.more_button.clicked.connect(self.more)
        self.more_button.setEnabled(False)
        self.series = _tree(["#", "Modality", "Description", "Images"])
        self.series.itemDoubleClicked.connect(lambda *_: self.retrieve_series())
        self.series.currentItemChanged.connect(lambda *_: self._update_buttons())
        self.retrieve_study_button = QPushButton("Retrieve Study")
        self.retrieve_series_button = QPushButton("Retrieve Series")
        self.retrieve_study_button.clicked.connect(self.retrieve_study)
        self.retrieve_series_button.clicked.connect(self.retrieve_series)
        self.progress = QProgressBar()
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the retrieve: nothing of it stays in the cache")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_retrieve)
        self.status = QLabel("")
        self.status.setObjectName("pacs-status")
        self.status.setWordWrap(True)
        studies_row = QHBoxLayout()
        studies_row.addWidget(self.search_button)
        studies_row.addStretch(1)
        studies_row.addWidget(self.more_button)
        retrieve_row = QHBoxLayout()
        retrieve_row.addWidget(self.retrieve_study_button)
        retrieve_row.addWidget(self.retrieve_series_button)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(studies_row)
        layout.addWidget(self.studies, 3)
        layout.addWidget(self.series, 2)
        layout.addLayout(retrieve_row)
        layout.addLayout(progress_row)
        layout.addWidget(self.status)
        self._update_buttons()

    def focus_query(self) -> None:
        """Put the cursor in the patient name field."""
        self.patient_name.setFocus()
        self.patient_name.selectAll()

    # ---- nodes --------------------------------------------------------------------------------------------------
    def reload_nodes(self, *_args: object) -> None:
        """Fill the node list from the settings, keeping the chosen node when it is still there."""
        chosen = self.node_box.currentText()
        self.node_box.clear()
        self._nodes = list(self.settings.pacs_nodes())
        for node in self._nodes:
            self.node_box.addItem(node.name)
        if chosen and self.node_box.findText(chosen) >= 0:
            self.node_box.setCurrentIndex(self.node_box.findText(chosen))
        if not self._nodes:
            self.status.setText("No PACS node yet: add one with Nodes…")
        elif self.status.text().startswith("No PACS node"):
            self.status.clear()
        self._update_buttons()

    def node(self) -> PacsNode | None:
        """The chosen node (None when none is configured)."""
        index = self.node_box.currentIndex()
        return self._nodes[index] if 0 <= index < len(self._nodes) else None

    # ---- searching ----------------------------------------------------------------------------------------------
    def query_filter(self) -> QueryFilter:
        """The study filter the fields describe (paging is added per page)."""
        return QueryFilter(patient_name=self.patient_name.text().strip(), patient_id=self.patient_id.text().strip(),
                           date_from=_date_of(self.date_from), date_to=_date_of(self.date_to),
                           modality=self.modality.currentText().strip().upper(),
                           accession=self.accession.text().strip())

    def _search_or_stop(self) -> None:
        if self.query_job is not None:
            self.query_job.cancel()
        else:
            self.search()

    def search(self):
        """Start a new search (the first page) with the fields' filter; returns the job handle (None: no node)."""
        node = self.node()
        if node is None:
            self.status.setText("No PACS node yet: add one with Nodes…")
            return None
        self._cancel_queries()
        self.studies.clear()
        self.series.clear()
        self._node = node
        self.pager = StudyPager(self.query_filter(), self.page_size.value())
        return self._next_page()

    def more(self):
        """Ask for the next page of the current search (None when there is none)."""
        if self.pager is None or not self.pager.has_more or self.query_job is not None:
            return None
        return self._next_page()

    def _next_page(self):
        from viewer.qt.workers import start_job
        from viewer.services.pacs.client import open_client

        node, pager = self._node, self.pager
        assert node is not None and pager is not None
        query = pager.next_query()
        job = start_job(lambda token: open_client(node).query_studies(query, token), "pacs-query", parent=self)
        job.finished.connect(lambda page, j=job: self._on_page(j, page))
        job.failed.connect(lambda reason, j=job: self._on_query_failed(j, reason))
        job.cancelled.connect(lambda j=job: j is self.query_job and self.status.setText("Search stopped"))
        job.done.connect(lambda j=job: self._query_done(j))
        self.query_job = job
        self.status.setText(f"Searching {node.name}…")
        self._update_buttons()
        return job

    def _on_page(self, job, page: list[StudyHit]) -> None:
        if job is not self.query_job or self.pager is None:
            return
        for hit in self.pager.add_page(page):
            item = QTreeWidgetItem([hit.patient_name.replace("^", " ").strip() or "(no name)", hit.patient_id,
                                    _date_text(hit.study_date), "/".join(hit.modalities), hit.description,
                                    f"{_count(hit.n_series)} / {_count(hit.n_instances)}"])
            item.setData(0, UID_ROLE, hit.study_uid)
            self.studies.addTopLevelItem(item)
        for column in range(4):  # name, ID, date, modalities: short, read first; the description takes the rest
            self.studies.resizeColumnToContents(column)
        n = len(self.pager.hits)
        more = "; More for the next page" if self.pager.has_more else ""
        self.status.setText(f"{n} stud{'y' if n == 1 else 'ies'}{more}")
        if self.studies.currentItem() is None and self.studies.topLevelItemCount():
            self.studies.setCurrentItem(self.studies.topLevelItem(0))
        self.studies_listed.emit(n)

    def _on_query_failed(self, job, reason: str) -> None:
        if job is not self.query_job and job is not self.series_job:
            return  # a search replaced since
        if job is self.query_job:
            self.query_job = None
        else:
            self.series_job = None
        text = reason_text(reason)
        self.status.setText(f"Failed: {text}")
        self._update_buttons()
        self.query_failed.emit(text)

    def _query_done(self, job) -> None:
        if job is self.query_job:
            self.query_job = None
        self._update_buttons()

    # ---- series ---------------------------------------------------------------------------------------------------
    def selected_study_uid(self) -> str | None:
        """The study selected in the list."""
        item = self.studies.currentItem()
        return item.data(0, UID_ROLE) if item is not None else None

    def selected_series_uid(self) -> str | None:
        """The series selected in the list."""
        item = self.series.currentItem()
        return item.data(0, UID_ROLE) if item is not None else None

    def _study_selected(self) -> None:
        if self.series_job is not None:
            self.series_job.cancel()
            self.series_job = None
        self.series.clear()
        self._update_buttons()
        self._series_timer.start()

    def _list_series(self) -> None:
        from viewer.qt.workers import start_job
        from viewer.services.pacs.client import open_client

        node, study_uid = self._node, self.selected_study_uid()
        if study_uid is None or node is None:
            return
        job = start_job(lambda token: open_client(node).query_series(study_uid, token), "pacs-series", parent=self)
        job.finished.connect(lambda hits, j=job: self._on_series(j, hits))
        job.failed.connect(lambda reason, j=job: self._on_query_failed(j, reason))
        self.series_job = job

    def _on_series(self, job, hits: list[SeriesHit]) -> None:
        if job is not self.series_job:
            return
        self.series_job = None
        for hit in hits:
            item = QTreeWidgetItem(["" if hit.series_number is None else str(hit.series_number), hit.modality,
                                    hit.description, _count(hit.n_instances)])
            item.setData(0, UID_ROLE, hit.series_uid)
            self.series.addTopLevelItem(item)
        for column in range(2):
            self.series.resizeColumnToContents(column)
        if hits:
            self.series.setCurrentItem(self.series.topLevelItem(0))
        self._update_buttons()
        self.series_listed.emit(len(hits))

    # ---- retrieve -----------------------------------------------------------------------------------------------
    def retrieve_study(self) -> None:
        """Ask for the selected study, every series."""
        study = self.selected_study_uid()
        if study and self._node is not None:
            self.retrieve_requested.emit(self._node, study, None)

    def retrieve_series(self) -> None:
        """Ask for the selected series."""
        study, series = self.selected_study_uid(), self.selected_series_uid()
        if study and series and self._node is not None:
            self.retrieve_requested.emit(self._node, study, series)

    def track_retrieve(self, job) -> None:
        """Show a retrieve's progress, with Cancel, until it ends (its outcome is said by :meth:`set_status`)."""
        self.retrieve_job = job
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.show()
        job.progressed.connect(self._on_retrieve_progress)
        job.done.connect(lambda j=job: self._retrieve_done(j))
        self._update_buttons()

    def _on_retrieve_progress(self, progress) -> None:
        if progress.total:
            self.progress.setRange(0, progress.total)
            self.progress.setValue(min(progress.done, progress.total))
        self.progress.setFormat(progress.message or "Retrieving")

    def _retrieve_done(self, job) -> None:
        if job is self.retrieve_job:
            self.retrieve_job = None
            self.progress.hide()
            self.cancel_button.hide()
        self._update_buttons()

    def cancel_retrieve(self) -> None:
        """Cancel the retrieve shown (it leaves nothing in the cache)."""
        if self.retrieve_job is not None:
            self.retrieve_job.cancel()
            self.status.setText("Cancelling the retrieve…")

    def set_status(self, text: str) -> None:
        """Say something under the lists (a retrieve's outcome)."""
        self.status.setText(text)

    # ---- state --------------------------------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        searching = self.query_job is not None
        self.search_button.setText("Stop" if searching else "Search")
        self.search_button.setEnabled(searching or self.node() is not None)
        self.more_button.setEnabled(not searching and self.pager is not None and self.pager.has_more)
        idle = self.retrieve_job is None
        self.retrieve_study_button.setEnabled(idle and self.selected_study_uid() is not None)
        self.retrieve_series_button.setEnabled(idle and self.selected_series_uid() is not None)

    def _cancel_queries(self) -> None:
        for job in (self.query_job, self.series_job):
            if job is not None:
                job.cancel()
        self.query_job = self.series_job = None

    def cancel(self) -> None:
        """Stop searches and the retrieve shown."""
        self._cancel_queries()
        self.cancel_retrieve()
        self._update_buttons()
