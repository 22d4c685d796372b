"""Patient / study / series tree with thumbnails, modality, image count and warning badges."""
from __future__ import annotations

import os
import time
from collections import defaultdict

import numpy as np
from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QApplication, QHeaderView, QMenu, QTreeWidget, QTreeWidgetItem

from viewer.qt.canvas import SERIES_MIME

KEY_ROLE = Qt.ItemDataRole.UserRole + 1
COL_SERIES, COL_WARN = range(2)
WARN_COLOUR = QColor(255, 190, 60)


def _format_date(value: str) -> str:
    value = value or ""
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def sop_class_name(uid: str) -> str:
    """``CT Image Storage`` -> ``CT Image``: the SOP class as a reader knows it (the UID when unknown)."""
    from pydicom.uid import UID

    name = UID(uid).name if uid else ""
    return name[:-len(" Storage")] if name.endswith(" Storage") else (name or "unknown SOP class")


def first_file_name(series) -> str:
    """The name of the series' first file as a file manager lists them (alphabetically); "" for none."""
    return min((os.path.basename(i.path) for i in series.instances), default="")


def series_lines(series) -> list[str]:
    """The lines of a series entry: description, modality and number, image count."""
    description = series.description or "(no description)"
    kind = "" if series.kind == "image" else f"{series.kind.upper()}: "
    count = series.n_frames if series.kind == "image" else series.n_instances
    unit = "image" if series.kind == "image" else "object"
    line2 = series.modality or "?"
    if series.series_number is not None:
        line2 += f"  ·  Se {series.series_number}"
    return [f"{kind}{description}", line2, f"{count} {unit}{'s' if count != 1 else ''}"]


def distinguishing_lines(study_series: list) -> dict[str, str]:
    """For series of one study whose entries would read the same: a line that tells each apart (SOP class when it
    differs, else the first file name, else the end of the SeriesInstanceUID), by series key."""
    groups: dict[tuple, list] = defaultdict(list)
    for series in study_series:
        groups[tuple(series_lines(series))].append(series)
    extra: dict[str, str] = {}
    for group in (g for g in groups.values() if len(g) > 1):
        for series in group:
            parts = []
            if len({s.sop_class_uid for s in group}) > 1:
                parts.append(sop_class_name(series.sop_class_uid))
            if len({first_file_name(s) for s in group}) > 1 or not parts:
                parts.append(first_file_name(series) or "no files")
            extra[series.key] = "  ·  ".join(parts)
        if len({extra[s.key] for s in group}) < len(group):  # same class and file name in different folders
            for series in group:
                extra[series.key] += f"  ·  …{series.uid[-8:]}"
    return extra


def numpy_to_qimage(image: np.ndarray) -> QImage:
    """A deep-copied QImage of a uint8 grey ``(h, w)`` or RGB ``(h, w, 3)`` array."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    if image.ndim == 2:
        qimage = QImage(image.data, w, h, image.strides[0], QImage.Format.Format_Grayscale8)
    else:
        qimage = QImage(image.data, w, h, image.strides[0], QImage.Format.Format_RGB888)
    return qimage.copy()


class SeriesBrowserWidget(QTreeWidget):
    """The catalog as a tree. A click (or Enter) opens a series; series can be dragged onto a view. Entries that
    would read the same (description, modality, number, image count) get a line that tells them apart.

    Signals
    -------
    series_activated(str)
        The key of the series to open.
    compare_requested(str)
        The key of a series to show beside the current one (right-click > Compare with Current).
    """

    series_activated = Signal(str)
    compare_requested = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("series-browser")
        self.setColumnCount(2)
        self.setHeaderLabels(["Series", ""])
        self.setHeaderHidden(True)
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(COL_SERIES, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(COL_WARN, QHeaderView.ResizeMode.ResizeToContents)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setIconSize(QSize(48, 48))
        self.setUniformRowHeights(False)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setAlternatingRowColors(False)
        self.setIndentation(14)
        self.itemActivated.connect(self._on_activated)
        self.itemClicked.connect(self._on_clicked)
        self._items: dict[str, QTreeWidgetItem] = {}
        self._current: str | None = None
        self._last_request: tuple[str, float] = ("", 0.0)  # (key, time): a double click asks only once
        self.catalog = None
        self._placeholder = QPixmap(48, 48)
        self._placeholder.fill(QColor(24, 24, 26))

    # ---- content ------------------------------------------------------------------------------------------------
    def set_catalog(self, catalog) -> None:
        """Show a catalog (replacing what was there)."""
        self.clear()
        self._items.clear()
        self._current = None
        self.catalog = catalog
        if catalog is None:
            return
        bold = QFont(self.font())
        bold.setBold(True)
        for patient in catalog.patients:
            name = patient.patient_name or "(no name)"
            p_item = QTreeWidgetItem([f"{name}  ·  {patient.patient_id}" if patient.patient_id else name])
            p_item.setFont(COL_SERIES, bold)
            p_item.setFirstColumnSpanned(True)
            self.addTopLevelItem(p_item)
            for study in patient.studies:
                text = "  ".join(t for t in (_format_date(study.date), study.description) if t) or "Study"
                s_item = QTreeWidgetItem([text])
                s_item.setToolTip(COL_SERIES, f"StudyInstanceUID {study.uid}")
                p_item.addChild(s_item)
                s_item.setFirstColumnSpanned(True)
                extra = distinguishing_lines(study.series)
                for series in study.series:
                    s_item.addChild(self._series_item(series, extra.get(series.key, "")))
                s_item.setExpanded(True)
            p_item.setExpanded(True)
        if catalog.unreadable:
            n = len(catalog.unreadable)
            item = QTreeWidgetItem([f"{n} non-DICOM or unreadable file{'s' if n != 1 else ''} skipped"])
            lines = [f"{u.path}: {u.reason}" for u in catalog.unreadable[:25]]
            if n > 25:
                lines.append(f"… and {n - 25} more")
            item.setToolTip(COL_SERIES, "\n".join(lines))
            item.setForeground(COL_SERIES, QBrush(QColor(200, 170, 90)))
            item.setFirstColumnSpanned(True)
            self.addTopLevelItem(item)

    def _series_item(self, series, extra: str = "") -> QTreeWidgetItem:
        description = series.description or "(no description)"
        count = series.n_frames if series.kind == "image" else series.n_instances
        lines = series_lines(series) + ([extra] if extra else [])
        item = QTreeWidgetItem(["\n".join(lines), ""])
        item.setData(COL_SERIES, KEY_ROLE, series.key)
        item.setData(COL_SERIES, Qt.ItemDataRole.UserRole + 2, (series.modality, count))
        number = series.series_number if series.series_number is not None else ""
        tip = [f"{description}", f"{series.modality} series {number}", f"SeriesInstanceUID {series.uid}",
               sop_class_name(series.sop_class_uid), f"First file {first_file_name(series)}",
               f"{series.n_instances} files, {series.n_frames} frames, {series.columns}x{series.rows}"]
        if series.references:
            tip.append("References series " + ", ".join(series.references))
        if series.kind == "image":
            item.setIcon(COL_SERIES, QIcon(self._placeholder))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsDragEnabled)
            tip.append("Click or drag onto the viewer to open")
        else:
            item.setForeground(COL_SERIES, QBrush(QColor(150, 150, 150)))
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsDragEnabled)
        item.setToolTip(COL_SERIES, "\n".join(tip))
        self._items[series.key] = item
        self.set_warnings(series.key, series.warnings)
        return item

    def modality_and_count(self, key: str) -> tuple[str, int] | None:
        """``(modality, number of images)`` shown for a series."""
        item = self._items.get(key)
        return None if item is None else tuple(item.data(COL_SERIES, Qt.ItemDataRole.UserRole + 2))

    def set_warnings(self, key: str, warnings) -> None:
        """Show a warning badge (with the messages as tooltip) on a series; loading may add to the scan's."""
        item = self._items.get(key)
        if item is None:
            return
        messages = []
        for w in warnings:
            if w.message not in messages:
                messages.append(w.message)
        if not messages:
            item.setText(COL_WARN, "")
            item.setToolTip(COL_WARN, "")
            return
        item.setText(COL_WARN, f"⚠ {len(messages)}" if len(messages) > 1 else "⚠")
        item.setForeground(COL_WARN, QBrush(WARN_COLOUR))
        item.setTextAlignment(COL_WARN, Qt.AlignmentFlag.AlignCenter)
        font = item.font(COL_WARN)
        font.setPointSizeF(font.pointSizeF() * 1.3)
        item.setFont(COL_WARN, font)
        item.setToolTip(COL_WARN, "\n".join(f"• {m}" for m in messages))

    def warnings_text(self, key: str) -> str:
        """The badge tooltip of a series ("" when it has no warnings)."""
        item = self._items.get(key)
        return item.toolTip(COL_WARN) if item is not None else ""

    def item_for(self, key: str) -> QTreeWidgetItem | None:
        """The tree item of a series key."""
        return self._items.get(key)

    def set_thumbnail(self, key: str, image: np.ndarray | None) -> None:
        """Put a thumbnail (uint8 grey/RGB array) on a series."""
        item = self._items.get(key)
        if item is None or image is None:
            return
        pixmap = QPixmap.fromImage(numpy_to_qimage(image))
        canvas = QPixmap(48, 48)
        canvas.fill(QColor(0, 0, 0))
        scaled = pixmap.scaled(48, 48, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        painter = QPainter(canvas)
        painter.drawPixmap((48 - scaled.width()) // 2, (48 - scaled.height()) // 2, scaled)
        painter.end()
        icon = QIcon(canvas)
        icon.addPixmap(canvas, QIcon.Mode.Selected)  # no highlight tint over the image
        item.setIcon(COL_SERIES, icon)

    def set_current(self, key: str | None) -> None:
        """Mark the series shown in the viewer (bold, selected)."""
        if self._current in self._items:
            item = self._items[self._current]
            font = item.font(COL_SERIES)
            font.setBold(False)
            item.setFont(COL_SERIES, font)
        self._current = key
        item = self._items.get(key) if key else None
        if item is not None:
            font = item.font(COL_SERIES)
            font.setBold(True)
            item.setFont(COL_SERIES, font)
            self.setCurrentItem(item)

    # ---- interaction --------------------------------------------------------------------------------------------
    def _on_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        if item.data(COL_SERIES, KEY_ROLE) != self._current:  # a click on the shown series (to drag it) is no reload
            self._request(item)

    def _on_activated(self, item: QTreeWidgetItem, _column: int) -> None:
        self._request(item)  # Enter; also a double click (its first click already asked: see _request)

    def _request(self, item: QTreeWidgetItem) -> None:
        key = item.data(COL_SERIES, KEY_ROLE)
        if not key:
            return
        last_key, last_time = self._last_request
        now = time.monotonic()
        if key == last_key and now - last_time < QApplication.doubleClickInterval() / 1000:
            return  # the second half of a double click (or a style that activates on single click)
        self._last_request = (str(key), now)
        self.series_activated.emit(str(key))

    def compare_text(self, key: str) -> str | None:
        """The menu text offering to compare series ``key`` with the shown one; None when it cannot be (it is the
        shown one, nothing is shown, or it is no image series)."""
        if self.catalog is None or not self._current or key == self._current:
            return None
        series = self.catalog.find_series(key)
        if series is None or series.kind != "image":
            return None
        same = self._patient_of(key) == self._patient_of(self._current)
        return "Compare with Current" + ("" if same else " (another patient!)")

    def _patient_of(self, key: str):
        for patient in self.catalog.patients:
            if any(s.key == key for study in patient.studies for s in study.series):
                return patient
        return None

    def contextMenuEvent(self, event):  # noqa: N802 - Qt override
        item = self.itemAt(event.pos())
        key = item.data(COL_SERIES, KEY_ROLE) if item is not None else None
        if not key:
            return
        menu = QMenu(self)
        menu.addAction("Open", lambda: self.series_activated.emit(str(key)))
        text = self.compare_text(str(key))
        compare = menu.addAction(text or "Compare with Current", lambda: self.compare_requested.emit(str(key)))
        compare.setEnabled(text is not None)
        menu.exec(event.globalPos())

    def mimeTypes(self):  # noqa: N802 - Qt override
        return [SERIES_MIME]

    def mimeData(self, items):  # noqa: N802 - Qt override
        keys = [item.data(COL_SERIES, KEY_ROLE) for item in items if item.data(COL_SERIES, KEY_ROLE)]
        if not keys:
            return None
        mime = QMimeData()
        mime.setData(SERIES_MIME, str(keys[0]).encode("utf-8"))
        mime.setText(str(keys[0]))
        return mime
