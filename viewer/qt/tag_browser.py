"""A searchable tree of the DICOM attributes of the image on screen (read on a worker, filtered as you type)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import shiboken6
from PySide6.QtCore import QModelIndex, QSize, QSortFilterProxyModel, Qt, QTimer
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QHeaderView, QLabel, QLineEdit, QSizePolicy, QTreeView, QVBoxLayout, QWidget

from viewer.core.jobs import CancelToken, Job, Progress
from viewer.qt.workers import start_job

MAX_VALUE_CHARS = 240
MAX_SEQUENCE_ITEMS = 60
COLUMNS = ["Tag", "Name", "VR", "Value", "search"]


@dataclass
class TagRow:
    """One attribute (``children`` for sequence items and their attributes)."""

    tag: str
    name: str
    vr: str
    value: str
    keyword: str = ""
    children: list[TagRow] = field(default_factory=list)


def _value_text(element) -> str:
    vr = element.VR
    if vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") or element.tag == 0x7FE00010:
        length = len(element.value) if element.value is not None else 0
        return f"<{length} bytes>"
    value = element.value
    try:
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            text = "\\".join(str(v) for v in value)
        else:
            text = str(value)
    except Exception:  # noqa: BLE001 - a value that cannot be shown must not break the browser
        text = "<unreadable>"
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def dataset_rows(ds) -> list[TagRow]:
    """The attributes of a pydicom dataset (and its sequences) as :class:`TagRow` trees."""
    rows = []
    for element in ds:
        tag = f"({element.tag.group:04X},{element.tag.element:04X})"
        name = element.name or ""
        keyword = element.keyword or ""
        if element.VR == "SQ":
            items = list(element.value or [])
            row = TagRow(tag, name, "SQ", f"{len(items)} item{'s' if len(items) != 1 else ''}", keyword)
            for i, item in enumerate(items[:MAX_SEQUENCE_ITEMS]):
                item_row = TagRow("", f"Item {i + 1}", "", "", "")
                item_row.children = dataset_rows(item)
                row.children.append(item_row)
            if len(items) > MAX_SEQUENCE_ITEMS:
                row.children.append(TagRow("", f"… {len(items) - MAX_SEQUENCE_ITEMS} more items", "", ""))
            rows.append(row)
        else:
            rows.append(TagRow(tag, name, element.VR, _value_text(element), keyword))
    return rows


def iter_read_tags(path: str, cancel: CancelToken | None = None) -> Job[list[TagRow]]:
    """Read a file's header (no pixel data) into rows."""
    from viewer.core.dicom import limits

    yield Progress(0, 1, "Reading tags")
    ds = limits.dcmread(path, stop_before_pixels=True)  # a deflated header is inflated only as far as it goes
    rows = []
    if getattr(ds, "file_meta", None) is not None and len(ds.file_meta):
        meta = TagRow("", "File meta information", "", "", "")
        meta.children = dataset_rows(ds.file_meta)
        rows.append(meta)
    rows.extend(dataset_rows(ds))
    yield Progress(1, 1, "Reading tags")
    return rows


class TagBrowserWidget(QWidget):
    """Search box + tag tree. :meth:`show_file` loads a file's tags (debounced, off the GUI thread)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("tag-browser")
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search tag, keyword, name or value  (e.g. 0028,0030  or  Spacing)")
        self.search.setClearButtonEnabled(True)
        self.caption = QLabel("No image", self)
        self.caption.setStyleSheet("color: #9a9a9a;")
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # long names: no widening
        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(COLUMNS)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setRecursiveFilteringEnabled(True)
        self.proxy.setAutoAcceptChildRows(True)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.tree = QTreeView(self)
        self.tree.setModel(self.proxy)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setColumnHidden(4, True)
        self.tree.setEditTriggers(QTreeView.EditTrigger.NoEditTriggers)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.resizeSection(1, 150)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.search)
        layout.addWidget(self.caption)
        layout.addWidget(self.tree)
        self.search.textChanged.connect(self._on_search)
        self._pending: tuple[str, str] | None = None
        self._shown_path: str | None = None
        self._job = None
        self._request: tuple[str, str] = ("", "")
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(150)
        self._debounce.timeout.connect(self._load_pending)

    def sizeHint(self):  # noqa: N802 - Qt override
        return QSize(340, 400)

    # ---- content ------------------------------------------------------------------------------------------------
    @property
    def shown_path(self) -> str | None:
        """The file whose tags are shown."""
        return self._shown_path

    def show_file(self, path: str | None, caption: str = "", immediately: bool = False) -> None:
        """Show the tags of ``path`` (None clears). Repeated calls within 150 ms load only the last file."""
        if path is None:
            self._debounce.stop()
            self._pending = None
            self._shown_path = None
            self.model.removeRows(0, self.model.rowCount())
            self.caption.setText("No image")
            return
        if path == self._shown_path and not immediately:
            self.caption.setText(caption or os.path.basename(path))
            return
        self._pending = (path, caption)
        if immediately:
            self._load_pending()
        else:
            self._debounce.start()

    def _load_pending(self) -> None:
        if self._pending is None:
            return
        path, caption = self._pending
        self._pending = None
        if self._job is not None and self._job.running:
            self._job.cancel()
        job = start_job(lambda token, p=path: iter_read_tags(p, token), "tags", parent=self)
        # Bound methods, not lambdas: the browser is then the connection's receiver, and Qt drops a result that
        # arrives after it was deleted. A lambda ran on into set_rows on a browser being torn down (two fresh-clone
        # CI runs segfaulted there, in a later test's event processing).
        job.finished.connect(self._on_rows)
        job.failed.connect(self._on_failed)
        self._job, self._request = job, (path, caption)

    def _current(self) -> bool:
        """Whether the signal being handled comes from the latest request, to a browser still whole."""
        if self.sender() is not self._job:  # (sender() itself raises on a deleted browser)
            return False  # a newer request superseded this one
        return all(shiboken6.isValid(part) for part in (self.model, self.proxy, self.tree, self.caption))

    def _on_rows(self, rows: list[TagRow]) -> None:
        if not self._current():
            return
        path, caption = self._request
        self.set_rows(rows)
        self._shown_path = path
        self.caption.setText(caption or os.path.basename(path))

    def _on_failed(self, reason: str) -> None:
        if self._current():
            self.caption.setText(f"{os.path.basename(self._request[0])}: {reason}")

    def set_rows(self, rows: list[TagRow]) -> None:
        """Replace the tree's content."""
        self.model.removeRows(0, self.model.rowCount())
        root = self.model.invisibleRootItem()
        for row in rows:
            root.appendRow(self._items(row))
        self._on_search(self.search.text())

    def _items(self, row: TagRow) -> list[QStandardItem]:
        compact = row.tag.strip("()").replace(",", "")
        items = [QStandardItem(row.tag), QStandardItem(row.name), QStandardItem(row.vr), QStandardItem(row.value),
                 QStandardItem(f"{compact} {row.keyword}")]
        items[3].setToolTip(row.value)
        for child in row.children:
            items[0].appendRow(self._items(child))
        return items

    # ---- search ---------------------------------------------------------------------------------------------------
    def _on_search(self, text: str) -> None:
        self.proxy.setFilterFixedString(text.strip())
        if text.strip():
            self.tree.expandAll()

    def visible_rows(self) -> list[tuple[str, str, str]]:
        """``(tag, name, value)`` of the rows that pass the filter (depth first; for tests and copy)."""
        out = []

        def walk(parent):
            for r in range(self.proxy.rowCount(parent)):
                index = self.proxy.index(r, 0, parent)
                out.append((index.data(), self.proxy.index(r, 1, parent).data(), self.proxy.index(r, 3, parent).data()))
                walk(index)

        walk(QModelIndex())
        return out
