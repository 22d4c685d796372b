"""The AI panel: pick a model, run it (progress, Cancel, elapsed time), and tune how its result is drawn.

The panel only shows state and asks for things through its signals; :class:`~viewer.qt.inference_lane.InferenceLane`
runs the job and owns the results. The overlay controls act directly on the layers they are given
(:mod:`viewer.qt.overlays`), so every change is one colour-table update.
"""
from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.core.jobs import Progress
from viewer.qt.overlays import COLOUR_MAPS, colormap_rgb

DEVICES = (("auto", "Auto (GPU if available)"), ("cpu", "CPU"), ("cuda", "NVIDIA GPU (CUDA)"),
           ("mps", "Apple GPU (MPS)"))
VALUE_ROLE = Qt.ItemDataRole.UserRole + 1
TASK_NAMES = {"segmentation": "Segmentation", "detection": "Detection", "saliency": "Saliency"}


def _slider(value: float, tip: str) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, 100)
    slider.setValue(int(round(value * 100)))
    slider.setToolTip(tip)
    slider.setMinimumWidth(70)
    return slider


def format_elapsed(seconds: float) -> str:
    """``"4.2 s"`` under a minute, ``"1:04"`` above."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


class ColourBarWidget(QWidget):
    """A horizontal colour bar of a heat map: the colour map, its value range and the threshold (a tick)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(34)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.colour_map = "inferno"
        self.span = (0.0, 1.0)
        self.threshold = 0.0
        self._image: QImage | None = None

    def set_state(self, colour_map: str, span: tuple[float, float], threshold: float) -> None:
        """What to draw."""
        if colour_map != self.colour_map or self._image is None:
            rgb = colormap_rgb(colour_map)
            rgba = np.ascontiguousarray(np.concatenate([rgb, np.full((256, 1), 255, np.uint8)], axis=1)[None])
            self._image = QImage(rgba.data, 256, 1, 256 * 4, QImage.Format.Format_RGBA8888).copy()
        self.colour_map, self.span, self.threshold = colour_map, tuple(span), float(threshold)
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(200, 34)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._image is None:
            self.set_state(self.colour_map, self.span, self.threshold)
        painter = QPainter(self)
        w = self.width()
        bar = QRectF(4, 2, w - 8, 12)
        painter.drawImage(bar, self._image)
        if self.threshold > 0:  # what is drawn starts at the threshold: grey out the hidden part
            hidden = QRectF(bar.left(), bar.top(), bar.width() * self.threshold, bar.height())
            painter.fillRect(hidden, QColor(30, 31, 34, 190))
            x = bar.left() + bar.width() * self.threshold
            painter.setPen(QPen(QColor(240, 240, 240), 2))
            painter.drawLine(int(x), int(bar.top()) - 1, int(x), int(bar.bottom()) + 2)
        painter.setPen(self.palette().windowText().color())
        font = QFont(self.font())
        font.setPixelSize(11)
        painter.setFont(font)
        lo, hi = self.span
        painter.drawText(QRectF(4, 16, w / 2, 16), Qt.AlignmentFlag.AlignLeft, f"{lo:.3g}")
        painter.drawText(QRectF(w / 2 - 4, 16, w / 2, 16), Qt.AlignmentFlag.AlignRight, f"{hi:.3g}")
        if self.threshold > 0:
            value = lo + self.threshold * (hi - lo)
            painter.drawText(QRectF(0, 16, w, 16), Qt.AlignmentFlag.AlignHCenter, f"shown from {value:.3g}")
        painter.end()


class LabelListWidget(QTreeWidget):
    """The labels of a segmentation: visibility (check box), colour (click the swatch), fill opacity, volume."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("label-list")
        self.setColumnCount(4)
        self.setHeaderLabels(["Label", "Colour", "Opacity", "Volume"])
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setSelectionMode(QTreeWidget.SelectionMode.NoSelection)
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.layer = None
        self._updating = False
        self.itemChanged.connect(self._on_item_changed)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(300, 110)

    def set_layer(self, layer) -> None:
        """Show the labels of a :class:`~viewer.qt.overlays.SegmentationLayer` (None: empty)."""
        self._updating = True
        try:
            self.clear()
            self.layer = layer
            if layer is None:
                return
            for value in layer.values:
                ml = layer.volumes_ml.get(value, 0.0)
                item = QTreeWidgetItem([layer.label_name(value), "", "", f"{ml:.1f} mL" if ml else "none"])
                item.setData(0, VALUE_ROLE, value)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(0, Qt.CheckState.Checked if layer.label_visible[value] else Qt.CheckState.Unchecked)
                item.setToolTip(0, f"Label value {value}")
                self.addTopLevelItem(item)
                swatch = QToolButton(self)
                swatch.setObjectName(f"label-colour-{value}")
                swatch.setToolTip("Change the colour")
                swatch.setFixedSize(32, 16)
                self._paint_swatch(swatch, layer.label_colours[value])
                swatch.clicked.connect(lambda _=False, v=value, b=swatch: self._choose_colour(v, b))
                self.setItemWidget(item, 1, swatch)
                slider = _slider(layer.label_opacity[value], "Fill opacity of this label")
                slider.setObjectName(f"label-opacity-{value}")
                slider.setMaximumWidth(90)
                slider.valueChanged.connect(lambda v, value=value: self.layer and self.layer.set_label_opacity(
                    value, v / 100))
                self.setItemWidget(item, 2, slider)
        finally:
            self._updating = False

    def item_for(self, value: int) -> QTreeWidgetItem | None:
        """The row of a label value."""
        for i in range(self.topLevelItemCount()):
            item = self.topLevelItem(i)
            if item.data(0, VALUE_ROLE) == value:
                return item
        return None

    @staticmethod
    def _paint_swatch(button: QToolButton, rgb) -> None:
        r, g, b = (int(c) for c in rgb)
        button.setStyleSheet(f"QToolButton {{ background: rgb({r},{g},{b}); border: 1px solid #666; }}")

    def _choose_colour(self, value: int, button: QToolButton) -> None:
        if self.layer is None:
            return
        colour = QColorDialog.getColor(QColor(*self.layer.label_colours[value]), self, "Label colour")
        if colour.isValid():
            self.set_colour(value, (colour.red(), colour.green(), colour.blue()))

    def set_colour(self, value: int, rgb) -> None:
        """Change a label's colour (as the colour dialog does)."""
        if self.layer is None:
            return
        self.layer.set_label_colour(value, rgb)
        item = self.item_for(value)
        if item is not None:
            self._paint_swatch(self.itemWidget(item, 1), rgb)

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if self._updating or self.layer is None or column != 0:
            return
        self.layer.set_label_visible(item.data(0, VALUE_ROLE), item.checkState(0) == Qt.CheckState.Checked)


class InferencePanelWidget(QWidget):
    """Model picker, Run / Cancel, progress and elapsed time, and the controls of the shown series' AI overlays.

    Signals
    -------
    run_requested(), cancel_requested()
        The buttons.
    refresh_requested(), folder_requested()
        Re-read the models folders; choose the extra models folder (Settings).
    model_changed(str), device_changed(str)
        The chosen model id / device kind.
    clear_requested()
        Remove the AI overlays of the shown series.
    """

    run_requested = Signal()
    cancel_requested = Signal()
    refresh_requested = Signal()
    folder_requested = Signal()
    model_changed = Signal(str)
    device_changed = Signal(str)
    clear_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("ai-panel")
        self.models: list = []
        self.segmentation = None
        self.saliency = None
        self.detection = None
        self._build()
        self.show_layers(None, None, None)
        self.set_running(False)

    # ------------------------------------------------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.model_combo = QComboBox(self)
        self.model_combo.setObjectName("model-picker")
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(12)
        self.model_combo.currentIndexChanged.connect(self._on_model_index)
        self.refresh_button = QToolButton(self)
        self.refresh_button.setText("⟳")
        self.refresh_button.setToolTip("Refresh the model list (re-reads the models folders)")
        self.refresh_button.clicked.connect(self.refresh_requested)
        self.folder_button = QToolButton(self)
        self.folder_button.setText("Folder…")
        self.folder_button.setToolTip("Choose an extra folder of model bundles")
        self.folder_button.clicked.connect(self.folder_requested)
        picker = QHBoxLayout()
        picker.addWidget(self.model_combo, 1)
        picker.addWidget(self.refresh_button)
        picker.addWidget(self.folder_button)

        self.info_label = QLabel(self)
        self.info_label.setObjectName("model-info")
        self.info_label.setWordWrap(True)
        self.info_label.setTextFormat(Qt.TextFormat.RichText)
        self.notice_label = QLabel(self)
        self.notice_label.setObjectName("model-notice")
        self.notice_label.setWordWrap(True)
        self.notice_label.setStyleSheet("color: #e6c84a;")

        self.device_combo = QComboBox(self)
        for kind, text in DEVICES:
            self.device_combo.addItem(text, kind)
        self.device_combo.currentIndexChanged.connect(
            lambda _i: self.device_changed.emit(self.device_combo.currentData()))

        self.run_button = QPushButton("Run", self)
        self.run_button.setObjectName("run-model")
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("cancel-model")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.elapsed_label = QLabel("", self)
        self.elapsed_label.setObjectName("elapsed")
        self.elapsed_label.setMinimumWidth(60)
        self.elapsed_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.elapsed_label)
        self.progress = QProgressBar(self)
        self.progress.setTextVisible(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("Idle")

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Device", self.device_combo)

        self.seg_group = self._build_segmentation_group()
        self.sal_group = self._build_saliency_group()
        self.det_group = self._build_detection_group()
        self.clear_button = QPushButton("Remove AI overlays", self)
        self.clear_button.setToolTip("Remove the model results shown on this series")
        self.clear_button.clicked.connect(self.clear_requested)
        self.empty_label = QLabel("No model results on this series yet.", self)
        self.empty_label.setStyleSheet("color: #888;")

        content = QWidget(self)
        layout = QVBoxLayout(content)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(picker)
        layout.addWidget(self.info_label)
        layout.addWidget(self.notice_label)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addSpacing(4)
        layout.addWidget(self.empty_label)
        layout.addWidget(self.seg_group)
        layout.addWidget(self.sal_group)
        layout.addWidget(self.det_group)
        layout.addWidget(self.clear_button)
        layout.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    def _build_segmentation_group(self) -> QGroupBox:
        group = QGroupBox("Segmentation", self)
        group.setObjectName("segmentation-controls")
        self.seg_show = QCheckBox("Show", group)
        self.seg_show.setChecked(True)
        self.seg_show.toggled.connect(lambda on: self.segmentation and self.segmentation.set_visible(on))
        self.seg_mode = QComboBox(group)
        self.seg_mode.addItems(["Filled", "Outline"])
        self.seg_mode.setToolTip("Fill the regions or draw their outlines")
        self.seg_mode.currentIndexChanged.connect(
            lambda i: self.segmentation and self.segmentation.set_outlined(i == 1))
        self.seg_opacity = _slider(1.0, "Opacity of the whole segmentation (each label has its own too)")
        self.seg_opacity.valueChanged.connect(lambda v: self.segmentation and self.segmentation.set_opacity(v / 100))
        self.seg_model = QLabel(group)
        self.seg_model.setStyleSheet("color: #999;")
        self.label_list = LabelListWidget(group)
        row = QHBoxLayout()
        row.addWidget(self.seg_show)
        row.addWidget(self.seg_mode)
        row.addWidget(QLabel("Opacity", group))
        row.addWidget(self.seg_opacity, 1)
        layout = QVBoxLayout(group)
        layout.setContentsMargins(6, 4, 6, 6)
        layout.addWidget(self.seg_model)
        layout.addLayout(row)
        layout.addWidget(self.label_list)
        return group

    def _build_saliency_group(self) -> QGroupBox:
        group = QGroupBox("Saliency", self)
        group.setObjectName("saliency-controls")
        self.sal_show = QCheckBox("Show", group)
        self.sal_show.setChecked(True)
        self.sal_show.toggled.connect(lambda on: self.saliency and self.saliency.set_visible(on))
        self.sal_map = QComboBox(group)
        self.sal_map.addItems(list(COLOUR_MAPS))
        self.sal_map.currentTextChanged.connect(self._on_colour_map)
        self.sal_opacity = _slider(0.6, "Opacity of the heat map")
        self.sal_opacity.valueChanged.connect(lambda v: self.saliency and self.saliency.set_opacity(v / 100))
        self.sal_threshold = _slider(0.2, "Hide values below this share of the map's range")
        self.sal_threshold.valueChanged.connect(self._on_threshold)
        self.colour_bar = ColourBarWidget(group)
        self.sal_model = QLabel(group)
        self.sal_model.setStyleSheet("color: #999;")
        row = QHBoxLayout()
        row.addWidget(self.sal_show)
        row.addWidget(self.sal_map, 1)
        form = QFormLayout()
        form.addRow("Opacity", self.sal_opacity)
        form.addRow("Threshold", self.sal_threshold)
        layout = QVBoxLayout(group)
        layout.setContentsMargins(6, 4, 6, 6)
        layout.addWidget(self.sal_model)
        layout.addLayout(row)
        layout.addLayout(form)
        layout.addWidget(self.colour_bar)
        return group

    def _build_detection_group(self) -> QGroupBox:
        group = QGroupBox("Detections", self)
        group.setObjectName("detection-controls")
        self.det_show = QCheckBox("Show boxes", group)
        self.det_show.setChecked(True)
        self.det_show.toggled.connect(lambda on: self.detection and self.detection.set_visible(on))
        self.det_summary = QLabel(group)
        self.det_summary.setWordWrap(True)
        layout = QVBoxLayout(group)
        layout.setContentsMargins(6, 4, 6, 6)
        layout.addWidget(self.det_summary)
        layout.addWidget(self.det_show)
        return group

    # ------------------------------------------------------------------------------------------------------------
    # models
    # ------------------------------------------------------------------------------------------------------------
    def set_models(self, models: list, selected_id: str = "", problems: list | None = None) -> None:
        """Fill the picker (keeps ``selected_id`` selected when it is still there)."""
        self.models = list(models)
        self.model_combo.blockSignals(True)
        try:
            self.model_combo.clear()
            for info in self.models:
                self.model_combo.addItem(info.name, info.id)
                index = self.model_combo.count() - 1
                self.model_combo.setItemData(index, f"{info.id} — {info.path}", Qt.ItemDataRole.ToolTipRole)
            ids = [m.id for m in self.models]
            self.model_combo.setCurrentIndex(ids.index(selected_id) if selected_id in ids else (0 if ids else -1))
        finally:
            self.model_combo.blockSignals(False)
        tip = "Models come from the built-in bundles, the models folder (AI > Models Folder…), HOUNSFIELD_MODELS " \
              "and the user data folder."
        if problems:
            tip += "\n\nNot listed:\n" + "\n".join(f"• {reason}" for _path, reason in problems)
        self.model_combo.setToolTip(tip)
        self._show_model_info()
        self.model_changed.emit(self.current_model().id if self.current_model() else "")

    def current_model(self):
        """The chosen :class:`~inference.registry.ModelInfo`, or None."""
        i = self.model_combo.currentIndex()
        return self.models[i] if 0 <= i < len(self.models) else None

    def select_model(self, model_id: str) -> bool:
        """Choose a model by id; False when it is not listed."""
        i = self.model_combo.findData(model_id)
        if i >= 0:
            self.model_combo.setCurrentIndex(i)
        return i >= 0

    def set_device(self, kind: str) -> None:
        """Show the device kind (``auto``, ``cpu``, ...)."""
        i = self.device_combo.findData(kind)
        self.device_combo.setCurrentIndex(max(0, i))

    @property
    def device(self) -> str:
        """The chosen device kind."""
        return self.device_combo.currentData() or "auto"

    def _on_model_index(self, _index: int) -> None:
        self._show_model_info()
        info = self.current_model()
        self.model_changed.emit(info.id if info else "")

    def _show_model_info(self) -> None:
        info = self.current_model()
        if info is None:
            self.info_label.setText("<i>No models found.</i> Add a MONAI bundle folder with AI &gt; Models Folder…")
            self.notice_label.setText("")
            return
        labels = ", ".join(info.labels[v] for v in sorted(info.labels))
        parts = [TASK_NAMES.get(info.task, info.task)]
        if info.modality:
            parts.append(info.modality)
        parts.append("built-in" if info.builtin else ("user, trusted" if info.trusted else "user"))
        text = f"<b>{html.escape(' · '.join(parts))}</b>"
        if labels:
            text += f"<br>Labels: {html.escape(labels)}"
        if info.spacing:
            text += "<br>Works at " + " x ".join(f"{s:g}" for s in info.spacing) + " mm"
        expected = info.expected_input
        made_for = " ".join(p for p in ("/".join(expected.modalities), "/".join(expected.body_parts).lower()) if p)
        if made_for:  # what the pre-run check holds a series to (inference.suitability)
            text += f"<br>Made for: {html.escape(made_for)}"
        if info.max_finding_mm:  # a segmentation's largest finding is that of the nodule label it checks
            what = "findings" if info.task == "detection" else "nodules"
            text += f" · {what} up to {info.max_finding_mm:g} mm"
        if not info.has_weights:
            text += "<br><span style='color:#e0524d'>No weights in this bundle (models/model.pt)</span>"
        self.info_label.setText(text)
        self.info_label.setToolTip("\n".join(t for t in (info.description, f"Licence: {info.licence}" if info.licence
                                                         else "", info.path) if t))
        self.notice_label.setText(info.notice)

    # ------------------------------------------------------------------------------------------------------------
    # running
    # ------------------------------------------------------------------------------------------------------------
    def set_run_enabled(self, enabled: bool, reason: str = "") -> None:
        """Enable Run (when idle); ``reason`` says why not."""
        self.run_button.setEnabled(enabled)
        self.run_button.setToolTip("Run the chosen model on the shown series" if enabled else reason)

    def set_running(self, running: bool) -> None:
        """Busy (Cancel live, Run off) or idle."""
        self.cancel_button.setEnabled(running)
        self.model_combo.setEnabled(not running)
        self.device_combo.setEnabled(not running)
        if running:
            self.run_button.setEnabled(False)
            self.progress.setRange(0, 0)
            self.progress.setFormat("Starting")
            self.elapsed_label.setText(format_elapsed(0))

    def set_cancelling(self) -> None:
        """Cancel was pressed; the job stops at its next check."""
        self.cancel_button.setEnabled(False)
        self.progress.setFormat("Cancelling")

    def set_progress(self, progress: Progress) -> None:
        """Show one step of the job."""
        if progress.total:
            self.progress.setRange(0, progress.total)
            self.progress.setValue(min(progress.done, progress.total))
            self.progress.setFormat(progress.message or "%p%")
        elif progress.message:
            self.progress.setRange(0, 0)
            self.progress.setFormat(progress.message)

    def set_elapsed(self, seconds: float) -> None:
        """Elapsed time of the running (or last) job."""
        self.elapsed_label.setText(format_elapsed(seconds))

    def set_finished(self, text: str) -> None:
        """The job ended: ``text`` says how."""
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if text.startswith("Done") else 0)
        self.progress.setFormat(text)

    # ------------------------------------------------------------------------------------------------------------
    # overlays
    # ------------------------------------------------------------------------------------------------------------
    def show_layers(self, segmentation, saliency, detection, n_shown: int | None = None) -> None:
        """Bind the controls to the shown series' layers (None: that kind of result is absent)."""
        self.segmentation, self.saliency, self.detection = segmentation, saliency, detection
        self.seg_group.setVisible(segmentation is not None)
        self.sal_group.setVisible(saliency is not None)
        self.det_group.setVisible(detection is not None)
        any_result = any(x is not None for x in (segmentation, saliency, detection))
        self.clear_button.setVisible(any_result)
        self.empty_label.setVisible(not any_result)
        if segmentation is not None:
            self._sync(self.seg_show, segmentation.visible)
            self._sync(self.seg_mode, 1 if segmentation.outlined else 0)
            self._sync(self.seg_opacity, int(round(segmentation.opacity * 100)))
            self.seg_model.setText(segmentation.name)
            self.label_list.set_layer(segmentation)
        else:
            self.label_list.set_layer(None)
        if saliency is not None:
            self._sync(self.sal_show, saliency.visible)
            self._sync(self.sal_map, saliency.colour_map)
            self._sync(self.sal_opacity, int(round(saliency.opacity * 100)))
            self._sync(self.sal_threshold, int(round(saliency.threshold * 100)))
            self.sal_model.setText(saliency.name)
            self.colour_bar.set_state(saliency.colour_map, saliency.span, saliency.threshold)
        if detection is not None:
            self._sync(self.det_show, detection.visible)
            self.update_detection_summary(n_shown)

    def update_detection_summary(self, n_shown: int | None = None) -> None:
        """``5 findings, 2 shown (score ≥ 0.50) — list in Findings``."""
        layer = self.detection
        if layer is None:
            return
        total = len(layer.detections)
        shown = len(layer.shown_indices()) if n_shown is None else n_shown
        self.det_summary.setText(f"{layer.name}: {total} finding{'s' if total != 1 else ''}, {shown} shown "
                                 f"(score ≥ {layer.min_score:.2f}). The list is in the Findings panel.")

    @staticmethod
    def _sync(widget, value) -> None:
        widget.blockSignals(True)
        try:
            if isinstance(widget, QCheckBox):
                widget.setChecked(bool(value))
            elif isinstance(widget, QComboBox):
                if isinstance(value, str):
                    widget.setCurrentText(value)
                else:
                    widget.setCurrentIndex(int(value))
            else:
                widget.setValue(int(value))
        finally:
            widget.blockSignals(False)

    def _on_colour_map(self, name: str) -> None:
        if self.saliency is not None:
            self.saliency.set_colour_map(name)
            self.colour_bar.set_state(name, self.saliency.span, self.saliency.threshold)

    def _on_threshold(self, value: int) -> None:
        if self.saliency is not None:
            self.saliency.set_threshold(value / 100)
            self.colour_bar.set_state(self.saliency.colour_map, self.saliency.span, self.saliency.threshold)
