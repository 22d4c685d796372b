"""Nodule follow-up of a comparison: each nodule then and now, growth and volume doubling time; new and resolved.

When a prior is compared (:mod:`viewer.qt.compare`) and both series have nodule detection results, their findings
(at or above the findings panel's threshold) are matched through the registration (Hungarian on distance, with a
size-scaled limit: :mod:`viewer.core.followup.matching`). The Follow-up dock lists the pairs; a row jumps both sides
to the nodule. "Save…" writes the same JSON as ``hounsfield compare --json``. Research use only.
"""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.core.editing.autosave import write_atomic
from viewer.core.export.findings import findings_dict
from viewer.core.followup.compare import days_between, follow_up_any_interval, summarize
from viewer.qt.key_routing import KEEPS_ARROWS

ROW_ROLE = Qt.ItemDataRole.UserRole + 1
STATUS_COLOURS = {"new": QColor(240, 160, 60), "resolved": QColor(150, 150, 150), "growing": QColor(235, 90, 80)}


def _size(diameter, volume) -> str:
    parts = [f"{diameter:.1f} mm" if diameter is not None else "", f"{volume:,.0f} mm³" if volume is not None else ""]
    return " · ".join(p for p in parts if p) or "—"


def nodule_row(n: dict) -> list[str]:
    """The columns of one follow-up record: status, then, now, growth, doubling time."""
    status = n["status"]
    label = {"matched": "Growing" if n.get("vdt_note") == "growing" else "Matched", "new": "New",
             "resolved": "Resolved"}[status]
    then = _size(n["diameter_mm"][0], n["volume_mm3"][0]) if status != "new" else "—"
    now = _size(n["diameter_mm"][1], n["volume_mm3"][1]) if status != "resolved" else "—"
    pct = n.get("growth_pct")
    growth = "" if pct is None else "0 %" if abs(pct) < 0.5 else f"{pct:+.0f} %"
    if n.get("vdt_note") == "shrinking" and pct is not None and pct > -1.0:
        vdt = "stable"  # a change below 1 % of volume is measurement noise, not shrinkage
    elif n.get("vdt_days"):
        vdt = f"{n['vdt_days']:.0f} d"
    else:
        vdt = {"no growth": "stable", "shrinking": "shrinking", "no interval": "no interval",
               "no volume": "—"}.get(n.get("vdt_note", ""), "")
    return [label, then, now, growth, vdt]


class FollowUpWidget(QWidget):
    """The Follow-up dock: a header (the two studies, the interval, the alignment), the table and Save….

    Signals
    -------
    jump_requested(int)
        The row of a record to show.
    save_requested()
        Save… was pressed.
    """

    jump_requested = Signal(int)
    save_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("followup-panel")
        self.header = QLabel("Compare a prior (series browser > Compare with Current) to follow nodules up.")
        self.header.setWordWrap(True)
        self.table = QTreeWidget(self)
        self.table.setObjectName("followup-table")
        self.table.setColumnCount(5)
        self.table.setHeaderLabels(["Nodule", "Then", "Now", "Growth", "VDT"])
        self.table.setRootIsDecorated(False)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setProperty(KEEPS_ARROWS, True)  # each row jumps: arrows walk the nodules
        self.table.currentItemChanged.connect(lambda item, _old: item is not None and self._jump(item))
        self.table.itemActivated.connect(lambda item, _col: self._jump(item))
        self.note = QLabel("Research use only: sizes and doubling times are a model's, to be checked by a reader.")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #c9a94a;")
        self.save_button = QPushButton("Save…")
        self.save_button.setToolTip("Write the follow-up as JSON (the schema of `hounsfield compare --json`)")
        self.save_button.clicked.connect(self.save_requested)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.save_button)
        column = QVBoxLayout(self)
        column.addWidget(self.header)
        column.addWidget(self.table, 1)
        column.addWidget(self.note)
        column.addLayout(row)
        self.set_records("Compare a prior (series browser > Compare with Current) to follow nodules up.", None)

    def set_records(self, header: str, nodules: list[dict] | None) -> None:
        """Show ``nodules`` (follow-up records) under ``header``; None: nothing to list yet (the header says why)."""
        self.header.setText(header)
        self.table.blockSignals(True)
        self.table.clear()
        for i, n in enumerate(nodules or []):
            item = QTreeWidgetItem(nodule_row(n))
            item.setData(0, ROW_ROLE, i)
            key = "growing" if n.get("vdt_note") == "growing" else n["status"]
            if key in STATUS_COLOURS:
                item.setForeground(0, QBrush(STATUS_COLOURS[key]))
            self.table.addTopLevelItem(item)
        self.table.blockSignals(False)
        self.save_button.setEnabled(bool(nodules))

    def _jump(self, item: QTreeWidgetItem) -> None:
        row = item.data(0, ROW_ROLE)
        if row is not None:
            self.jump_requested.emit(int(row))


class FollowUpController(QObject):
    """Keeps the Follow-up dock in step with the comparison: recomputed when the prior, the registration or either
    series' results change."""

    def __init__(self, window, compare) -> None:
        super().__init__(window)
        self.window = window
        self.compare = compare
        self.widget = FollowUpWidget()
        self.nodules: list[dict] | None = None
        self.document: dict | None = None
        self._watched: list = []
        self.widget.jump_requested.connect(self.jump)
        self.widget.save_requested.connect(self.save_dialog)
        compare.compare_changed.connect(lambda _key: self.refresh())
        compare.registered.connect(lambda _result: self.refresh())
        window.findings_panel.min_score_changed.connect(lambda _score: self.refresh())

    def _watch(self, states) -> None:
        for state in self._watched:
            state.results_changed.disconnect(self._on_results)
        self._watched = list(states)
        for state in self._watched:
            state.results_changed.connect(self._on_results)

    def _on_results(self, _task: str) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Match the two series' findings again and show the records (or why there are none)."""
        session = self.window.session
        if not self.compare.active or len(session.shown) < 2:
            self._watch([])
            self.nodules = self.document = None
            self.widget.set_records("Compare a prior (series browser > Compare with Current) to follow nodules up.",
                                    None)
            return
        current, prior = session.shown[0], session.shown[1]
        self._watch([current, prior])
        dates = [self._study_date(s.key) for s in (prior, current)]
        days = days_between(*dates)
        interval = f"{days} days apart" if days is not None and days > 0 else "no interval (dates unknown or equal)"
        registration = self.compare.registration
        aligned = "registered" if registration is not None else "aligned by table position"
        header = f"Prior {self._date_text(dates[0])} → current {self._date_text(dates[1])}: {interval}, {aligned}."
        missing = [name for name, state in (("the current", current), ("the prior", prior))
                   if state.result("detection") is None]
        if missing:
            self.nodules = self.document = None
            self.widget.set_records(header + f" Run nodule detection on {' and '.join(missing)} (Swap shows the prior "
                                    "here to run it).", None)
            return
        min_score = self.window.findings_panel.min_score
        found = [findings_dict(s.result("detection"), s.results["detection"].model_name, s.volume.series_uid,
                               min_score)["findings"] for s in (prior, current)]
        self.nodules = follow_up_any_interval(found[0], found[1], registration, days)
        summary = summarize(self.nodules)
        self.document = {
            "prior": self._series_json(prior, dates[0]), "current": self._series_json(current, dates[1]),
            "days": days, "transform": registration.to_json() if registration is not None else None,
            "findings_source": f"viewer (score >= {min_score:g})", "nodules": self.nodules, "summary": summary}
        counts = f"{summary['matched']} matched ({summary['growing']} growing), {summary['new']} new, " \
                 f"{summary['resolved']} resolved."
        self.widget.set_records(f"{header} {counts}", self.nodules)

    def _study_date(self, key: str) -> str:
        _series, study = self.compare.series_and_study(key)
        return getattr(study, "date", "") or ""

    @staticmethod
    def _date_text(date: str) -> str:
        return f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) >= 8 else "(undated)"

    @staticmethod
    def _series_json(state, date: str) -> dict:
        return {"series_uid": state.volume.series_uid, "study_uid": state.volume.study_uid, "study_date": date}

    def jump(self, row: int) -> None:
        """Show record ``row``: the nodule now (or, resolved, where it was) in the main views; the prior follows
        through the link."""
        if self.nodules is None or not 0 <= row < len(self.nodules) or self.compare.link is None:
            return
        then, now = self.nodules[row]["center_lps"]
        target = now if now is not None else self.compare.link.current_point(then)
        viewer = self.window.viewer
        viewer.go_to(viewer.state.volume.lps_to_index(target))

    def save_dialog(self) -> None:
        """Ask where, then write the follow-up JSON."""
        if self.document is None:
            return
        folder = Path(self.window.settings.exports_folder or Path.home())
        path, _ = QFileDialog.getSaveFileName(self.window, "Save Follow-up", str(folder / "followup.json"),
                                              "JSON (*.json)")
        if path:
            self.save(path)

    def save(self, path: str) -> Path:
        """Write the follow-up JSON (atomically); returns the path."""
        target = Path(path)
        write_atomic(target, json.dumps(self.document, indent=2).encode())
        self.window.statusBar().showMessage(f"Follow-up saved to {target}", 6000)
        return target
