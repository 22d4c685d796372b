"""The findings of a detection model on the shown series: score, size, location, slice; click to jump there.

The score threshold filters what is listed and drawn at display time only: the detections are kept whole, so
lowering the threshold again brings findings back. Once a review exists the list shows its state (the Review
column; findings added by hand score "manual"), and Add…/Edit… ask for a box (:class:`FindingBoxDialog`).
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QStyle,
    QStyleOptionSlider,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.core.layers import Finding, visible_findings
from viewer.qt.key_routing import KEEPS_ARROWS

INDEX_ROLE = Qt.ItemDataRole.UserRole + 1


def measurement_tooltip(m: dict) -> str:
    """The measurements in full for a finding's tooltip (research use: a suggestion, not a diagnosis)."""
    loc = m.get("location") or {}
    lines = [f"Mean diameter {m['mean_diameter_mm']:.1f} mm (long {m['long_axis_mm']:.1f} x short "
             f"{m['short_axis_mm']:.1f} mm, axial), volume {m['volume_mm3']} mm³",
             f"Type {m['type']}" + (f", solid component {m['solid_component_mm']:.1f} mm"
                                     if m.get("solid_component_mm") is not None else ""),
             f"{(loc.get('side') or '?').capitalize()} lung, {loc.get('zone') or '?'} zone (by position; no lobe "
             "model)",
             f"Suggested Lung-RADS v2022 (baseline): {m['lung_rads']} - research use only"]
    return "\n".join(lines)
SLIDER_STEPS = 1000  # the slider moves in steps of 0.001
DEFAULT_FINDING_SIZE_MM = 10.0
REJECTED_TEXT_COLOUR = QColor(140, 140, 140)


class ScoreSliderWidget(QSlider):
    """A horizontal slider that jumps to where it is clicked (a plain QSlider only pages by one step towards the
    click, 0.01 of the score range here) and keeps following the mouse while the button is held."""

    def __init__(self, parent=None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setMinimumWidth(120)

    def value_at(self, x: float) -> int:
        """The value under widget x position ``x``."""
        option = QStyleOptionSlider()
        self.initStyleOption(option)
        style = self.style()
        groove = style.subControlRect(QStyle.ComplexControl.CC_Slider, option,
                                      QStyle.SubControl.SC_SliderGroove, self)
        handle = style.subControlRect(QStyle.ComplexControl.CC_Slider, option,
                                      QStyle.SubControl.SC_SliderHandle, self)
        span = max(1, groove.width() - handle.width())
        offset = int(round(x - groove.x() - handle.width() / 2))
        return QStyle.sliderValueFromPosition(self.minimum(), self.maximum(), min(max(offset, 0), span), span)

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.LeftButton:
            option = QStyleOptionSlider()
            self.initStyleOption(option)
            handle = self.style().subControlRect(QStyle.ComplexControl.CC_Slider, option,
                                                 QStyle.SubControl.SC_SliderHandle, self)
            if not handle.contains(event.position().toPoint()):
                self.setValue(self.value_at(event.position().x()))  # the handle is now under the mouse: a drag
        super().mousePressEvent(event)


class FindingBoxDialog(QDialog):
    """Centre (LPS mm) and size (mm along L, P, S) of a finding's box."""

    def __init__(self, title: str, centre, size, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        form = QFormLayout()
        self.centre = [self._box(-10000.0, 10000.0, v) for v in centre]
        self.size = [self._box(0.5, 1000.0, v) for v in size]
        for name, boxes in (("Centre L, P, S (mm)", self.centre), ("Size L x P x S (mm)", self.size)):
            row = QHBoxLayout()
            for box in boxes:
                row.addWidget(box)
            form.addRow(name, row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
                                   parent=self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def _box(self, low: float, high: float, value: float) -> QDoubleSpinBox:
        box = QDoubleSpinBox(self)
        box.setRange(low, high)
        box.setDecimals(1)
        box.setValue(float(value))
        return box

    def values(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(centre, size)`` as entered."""
        return tuple(b.value() for b in self.centre), tuple(b.value() for b in self.size)


class FindingsWidget(QWidget):
    """The findings list with its score threshold.

    Signals
    -------
    finding_activated(int)
        A finding was clicked or reached with the arrow keys (its row in the detections).
    min_score_changed(float)
        The threshold moved.
    review_requested(int, str)
        Accept or Reject was pressed for the selected finding (``"accept"`` / ``"reject"``).
    add_requested(), edit_requested(int)
        Add… (a finding by hand) / Edit… (move or resize the selected finding) was pressed.
    show_rejected_changed(bool)
        "Show rejected" was toggled: whether rejected findings are drawn in the views.
    """

    finding_activated = Signal(int)
    min_score_changed = Signal(float)
    review_requested = Signal(int, str)
    add_requested = Signal()
    edit_requested = Signal(int)
    explain_requested = Signal(int)
    show_rejected_changed = Signal(bool)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("findings")
        self.findings: list[Finding] = []
        self.model_name = ""
        self.min_score = 0.5
        self.statuses: dict[int, str] = {}
        self.manual: set[int] = set()
        self.review_available = False
        self.show_rejected = True
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(6)
        self.tree.setHeaderLabels(["#", "Score", "Size (mm)", "Location", "Slice", "Review"])
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setWordWrap(True)
        self.tree.setUniformRowHeights(False)
        self.tree.setSortingEnabled(False)
        self.tree.setProperty(KEEPS_ARROWS, True)  # Up/Down walk the findings (each jumps there); PgUp/PgDn page
        header = self.tree.header()
        header.setStretchLastSection(False)
        for column in (0, 1, 2, 4, 5):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.tree.itemClicked.connect(self._on_clicked)  # also a click on the row already selected
        self.tree.currentItemChanged.connect(lambda item, _previous: item is not None and self._on_clicked(item))
        tip = "Hide findings scoring below this (display only: nothing is deleted)"
        self.slider = ScoreSliderWidget(self)
        self.slider.setObjectName("score-threshold")
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setPageStep(SLIDER_STEPS // 10)
        self.slider.setToolTip(tip + ". Click or drag to set it.")
        self.slider.valueChanged.connect(lambda v: self.set_min_score(v / SLIDER_STEPS, from_slider=True))
        self.score_box = QDoubleSpinBox(self)
        self.score_box.setObjectName("score-threshold-value")
        self.score_box.setRange(0.0, 1.0)
        self.score_box.setDecimals(2)
        self.score_box.setSingleStep(0.05)
        self.score_box.setToolTip(tip)
        self.score_box.setKeyboardTracking(False)  # typing "0.35" filters once, not at "0.3" first
        self.score_box.valueChanged.connect(lambda v: self.set_min_score(v, from_box=True))
        self.below_label = QLabel(self)
        self.below_label.setObjectName("findings-below-threshold")
        self.below_label.setToolTip("Findings hidden by the threshold")
        self.show_rejected_box = QCheckBox("Show rejected", self)
        self.show_rejected_box.setObjectName("show-rejected")
        self.show_rejected_box.setToolTip("Draw rejected findings in the views (grey, dashed); the list keeps them")
        self.show_rejected_box.setChecked(True)
        self.show_rejected_box.toggled.connect(self.set_show_rejected)
        self.summary = QLabel(self)
        self.summary.setObjectName("findings-summary")
        self.summary.setWordWrap(True)
        self.copy_button = QPushButton("Copy", self)
        self.copy_button.setToolTip("Copy the listed findings as tab-separated text")
        self.copy_button.clicked.connect(self.copy_to_clipboard)
        threshold_row = QHBoxLayout()
        threshold_row.addWidget(QLabel("Min. score", self))
        threshold_row.addWidget(self.slider, 1)
        threshold_row.addWidget(self.score_box)
        threshold_row.addWidget(self.below_label)
        row = QHBoxLayout()  # the buttons get a row of their own: the slider keeps a usable width in a narrow dock
        self.accept_button = QToolButton(self)
        self.accept_button.setText("Accept")
        self.accept_button.setToolTip("Accept the selected finding (goes into the SR and findings exports)")
        self.reject_button = QToolButton(self)
        self.reject_button.setText("Reject")
        self.reject_button.setToolTip("Reject the selected finding")
        self.accept_button.clicked.connect(lambda: self._request_review("accept"))
        self.reject_button.clicked.connect(lambda: self._request_review("reject"))
        self.add_button = QToolButton(self)
        self.add_button.setText("Add…")
        self.add_button.setToolTip("Add a finding by hand (centre and size; an undo step)")
        self.edit_button = QToolButton(self)
        self.edit_button.setText("Edit…")
        self.edit_button.setToolTip("Move or resize the selected finding (an undo step each)")
        self.add_button.clicked.connect(self.add_requested)
        self.edit_button.clicked.connect(self._request_edit)
        self.explain_button = QToolButton(self)
        self.explain_button.setText("Explain")
        self.explain_button.setToolTip("Show what the selected finding's score rests on (saliency overlay: "
                                       "occlusion for the built-in detector, Grad-CAM for other models)")
        self.explain_button.clicked.connect(self._request_explain)
        row.addWidget(self.accept_button)
        row.addWidget(self.reject_button)
        row.addWidget(self.add_button)
        row.addWidget(self.edit_button)
        row.addWidget(self.explain_button)
        row.addStretch(1)
        row.addWidget(self.show_rejected_box)
        bottom = QHBoxLayout()
        bottom.addWidget(self.summary, 1)
        bottom.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(threshold_row)
        layout.addLayout(row)
        layout.addWidget(self.tree)
        layout.addLayout(bottom)
        self.set_min_score(self.min_score)
        self.set_findings([], "")

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(360, 300)

    # ------------------------------------------------------------------------------------------------------------
    def set_findings(self, findings: list[Finding], model_name: str = "") -> None:
        """All findings of the shown series' detection result (empty list: none)."""
        self.findings = list(findings)
        self.model_name = model_name
        self._fill()

    def set_min_score(self, min_score: float, from_slider: bool = False, from_box: bool = False) -> None:
        """Show findings scoring at least ``min_score`` (0..1); emits ``min_score_changed`` when it changed."""
        min_score = float(min(1.0, max(0.0, min_score)))
        if not from_slider:
            self.slider.blockSignals(True)
            self.slider.setValue(int(round(min_score * SLIDER_STEPS)))
            self.slider.blockSignals(False)
        if not from_box:
            self.score_box.blockSignals(True)
            self.score_box.setDecimals(2 if round(min_score, 2) == min_score else 3)
            self.score_box.setValue(min_score)
            self.score_box.blockSignals(False)
        changed = min_score != self.min_score
        self.min_score = min_score
        if changed:
            self._fill()
            self.min_score_changed.emit(min_score)

    def set_statuses(self, statuses: dict[int, str], manual=()) -> None:
        """The review state per finding index (``pending`` / ``accepted`` / ``rejected``); ``manual``: the
        indices of findings added by hand (their score shows as "manual")."""
        if statuses != self.statuses or set(manual) != self.manual:
            self.statuses, self.manual = dict(statuses), set(manual)
            self._fill()

    def set_show_rejected(self, show: bool) -> None:
        """Draw rejected findings in the views (True) or hide them; emits ``show_rejected_changed``."""
        show = bool(show)
        if self.show_rejected_box.isChecked() != show:
            self.show_rejected_box.setChecked(show)  # comes back here through toggled
            return
        if show != self.show_rejected:
            self.show_rejected = show
            self.show_rejected_changed.emit(show)

    def set_review_available(self, available: bool) -> None:
        """Whether findings can be added (a series with an annotation is shown)."""
        self.review_available = bool(available)
        self._enable_buttons()

    def ask_box(self, title: str, centre, size):
        """Ask for a finding's box (tests replace this): ``(centre_lps, size_mm)``, or None when cancelled."""
        dialog = FindingBoxDialog(title, centre, size, self.window())
        return dialog.values() if dialog.exec() == QDialog.DialogCode.Accepted else None

    def _request_edit(self) -> None:
        item = self.tree.currentItem()
        if item is not None and item.data(0, INDEX_ROLE) is not None:
            self.edit_requested.emit(int(item.data(0, INDEX_ROLE)))

    def selected_index(self) -> int | None:
        """The detection index of the current row (None when no row is current)."""
        item = self.tree.currentItem()
        return None if item is None or item.data(0, INDEX_ROLE) is None else int(item.data(0, INDEX_ROLE))

    def _request_explain(self) -> None:
        index = self.selected_index()
        if index is not None:
            self.explain_requested.emit(index)

    def _request_review(self, action: str) -> None:
        item = self.tree.currentItem()
        if item is not None and item.data(0, INDEX_ROLE) is not None:
            self.review_requested.emit(int(item.data(0, INDEX_ROLE)), action)

    def shown(self) -> list[Finding]:
        """The findings listed now (at or above the threshold)."""
        return visible_findings(self.findings, self.min_score)

    def select(self, index: int | None) -> None:
        """Select the row of detection ``index`` without emitting."""
        self.tree.blockSignals(True)
        try:
            self.tree.clearSelection()
            item = self.item_for(index) if index is not None else None
            if item is not None:
                item.setSelected(True)
                self.tree.setCurrentItem(item)
                self.tree.scrollToItem(item)
        finally:
            self.tree.blockSignals(False)

    def item_for(self, index: int) -> QTreeWidgetItem | None:
        """The row of detection ``index`` (None when it is filtered out)."""
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, INDEX_ROLE) == index:
                return item
        return None

    def rows(self) -> list[tuple[str, ...]]:
        """The rows as shown (for tests and copying)."""
        return [tuple(self.tree.topLevelItem(i).text(c).replace("\n", "  ") for c in range(5))
                for i in range(self.tree.topLevelItemCount())]

    def copy_to_clipboard(self) -> None:
        """The listed findings as tab-separated text."""
        lines = ["#\tScore\tSize (mm)\tLocation\tSlice"] + ["\t".join(r) for r in self.rows()]
        QGuiApplication.clipboard().setText("\n".join(lines))

    # ------------------------------------------------------------------------------------------------------------
    def _fill(self) -> None:
        selected = self.tree.currentItem().data(0, INDEX_ROLE) if self.tree.currentItem() is not None else None
        self.tree.blockSignals(True)
        try:
            self.tree.clear()
            for f in self.shown():
                score = "manual" if f.index in self.manual else f"{f.score:.3f}"
                measured = f.measurement_text  # "12.3 mm solid, 950 mm³, R upper, Lung-RADS 4A" (issue 11)
                item = QTreeWidgetItem([str(f.index + 1), score, f.size_text,
                                        (f"{measured}\n" if measured else "") + f"{f.description}\n{f.lps_text}",
                                        str(f.slice_number), self.statuses.get(f.index, "")])
                item.setData(0, INDEX_ROLE, f.index)
                item.setToolTip(3, f"{f.label}: centre {f.lps_text} mm (patient coordinates)"
                                + (f"\n{measurement_tooltip(f.measurement)}" if measured else ""))
                item.setToolTip(2, "Extent along left-right x anterior-posterior x head-feet, in mm")
                item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if self.statuses.get(f.index) == "rejected":  # set aside, as in the views
                    for column in range(self.tree.columnCount()):
                        item.setForeground(column, QBrush(REJECTED_TEXT_COLOUR))
                self.tree.addTopLevelItem(item)
                if f.index == selected:
                    item.setSelected(True)
                    self.tree.setCurrentItem(item)
        finally:
            self.tree.blockSignals(False)
        total, shown = len(self.findings), self.tree.topLevelItemCount()
        self.below_label.setText(f"{total - shown} below" if self.model_name else "")
        if not self.model_name:
            self.summary.setText("No detection results on this series.")
        else:
            hidden = total - shown
            self.summary.setText(f"{self.model_name}: {shown} of {total} finding{'s' if total != 1 else ''} shown"
                                 + (f" ({hidden} below the threshold)" if hidden else ""))
        self.copy_button.setEnabled(shown > 0)
        self._enable_buttons()

    def _enable_buttons(self) -> None:
        reviewable = self.tree.topLevelItemCount() > 0 and bool(self.statuses)
        self.accept_button.setEnabled(reviewable)
        self.reject_button.setEnabled(reviewable)
        self.edit_button.setEnabled(reviewable)
        self.add_button.setEnabled(self.review_available)
        self.explain_button.setEnabled(self.tree.topLevelItemCount() > 0)

    def _on_clicked(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        index = item.data(0, INDEX_ROLE)
        if index is not None:
            self.finding_activated.emit(int(index))
