"""The findings review of the shown annotation, bound to the Findings panel and the detection overlay.

One part of :class:`~viewer.qt.annotation.AnnotationController`. The review (accept, reject, add, move, resize: each
an undo step) is core (:class:`~viewer.core.editing.review.FindingsReview`), and so is turning it into detection
rows (:meth:`~viewer.core.editing.review.FindingsReview.to_detections`); this part only decides where they are shown.
"""
from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QObject

log = logging.getLogger(__name__)

REVIEWED_FINDINGS = "Reviewed findings"  # the detection overlay of findings added without a detector


class ReviewController(QObject):
    """The Findings panel's Accept / Reject / Add… / Edit… on the shown series' review, a detector's result taken
    into review, and the review's boxes and decisions drawn by the detection overlay, for ``annotation`` (an
    :class:`~viewer.qt.annotation.AnnotationController`)."""

    def __init__(self, annotation) -> None:
        super().__init__(annotation)
        self.annotation = annotation
        self.lane = annotation.lane
        self.findings_panel = panel = annotation.findings_panel
        self.lane.result_applied.connect(self._on_result_applied)
        panel.review_requested.connect(self.review_finding)
        panel.add_requested.connect(self.add_finding_dialog)
        panel.edit_requested.connect(self.edit_finding_dialog)
        panel.show_rejected_changed.connect(lambda _show: self.draw_state())

    def _on_result_applied(self, task: str) -> None:
        editor = self.annotation.editor
        if task == "detection" and editor is not None:
            layer = self.lane.layer("detection")
            if layer is not None:
                editor.accept_detections(layer.detections)
        self.annotation._refresh()

    def _reviewable(self, finding_id: int):
        """The shown editor when ``finding_id`` is one of its findings (else says so and returns None)."""
        editor = self.annotation.editor
        if editor is None or finding_id not in {f.id for f in editor.review.findings}:
            self.annotation.status_message.emit("No reviewable finding selected")
            return None
        return editor

    def review_finding(self, finding_id: int, action: str) -> None:
        """Accept or reject a finding of the shown series (one undo step)."""
        editor = self._reviewable(finding_id)
        if editor is not None:
            getattr(editor.review, action)(finding_id)

    def add_finding_dialog(self) -> None:
        """Add… in the Findings panel: a finding by hand, centred on the crosshair ("Add finding" step)."""
        editor = self.annotation.editor
        if editor is None or self.annotation.volume is None:
            return
        from viewer.qt.findings_panel import DEFAULT_FINDING_SIZE_MM

        centre = self.annotation.viewer.state.position_lps  # the crosshair
        answer = self.findings_panel.ask_box("Add finding", centre, (DEFAULT_FINDING_SIZE_MM,) * 3)
        if answer is not None:
            finding = editor.review.add(answer[0], answer[1])
            self.findings_panel.select(finding.id)

    def edit_finding_dialog(self, finding_id: int) -> None:
        """Edit… in the Findings panel: move ("Move finding") and/or resize ("Resize finding") one finding."""
        editor = self._reviewable(finding_id)
        if editor is None:
            return
        old = editor.review[finding_id]
        answer = self.findings_panel.ask_box(f"Edit finding #{finding_id + 1}", old.center_lps, old.size_mm)
        if answer is None:
            return
        centre, size = np.asarray(answer[0], float), np.asarray(answer[1], float)
        if not np.allclose(centre, old.center_lps, atol=1e-3):
            editor.review.move(finding_id, centre - old.center_lps)
        if not np.allclose(size, old.size_mm, atol=1e-3):
            editor.review.resize(finding_id, size)

    # ---- drawing --------------------------------------------------------------------------------------------
    def show_boxes(self, review) -> None:
        """Draw the review's boxes (moved, resized, added) with the detection overlay (which lists them too)."""
        if review is None or self.annotation.volume is None:
            return
        layer = self.lane.layer("detection")
        if not len(review) and (layer is None or layer.name != REVIEWED_FINDINGS):
            return  # nothing reviewed yet: a detector's boxes stay as they are
        base = layer.detections if layer is not None else None
        detections = review.to_detections(base)
        if detections is None or detections is base:
            return  # ids are no longer rows (a finding added by hand was deleted), or nothing moved
        if layer is None:
            if len(review) and getattr(self.lane, "series_key", None) == self.annotation.series_key:
                try:
                    self.lane.apply_result(detections, REVIEWED_FINDINGS)
                except ValueError as exc:  # not on the shown grid: list only
                    log.warning("findings not drawn: %s", exc)
            return
        self.lane.replace_detections(layer, detections)

    def refresh(self) -> None:
        """The shown annotation changed: its boxes, statuses (who added what) and review state drawn again."""
        editor = self.annotation.editor
        review = editor.review if editor is not None else None
        self.show_boxes(review)
        statuses = {f.id: f.status for f in review.findings} if review is not None else {}
        manual = {f.id for f in review.findings if f.source == "manual"} if review is not None else set()
        self.findings_panel.set_review_available(editor is not None)
        self.findings_panel.set_statuses(statuses, manual)
        self.draw_state()

    def draw_state(self) -> None:
        """Rejected findings drawn grey and dashed in the views, or hidden ("Show rejected" in the panel)."""
        layer = self.lane.layer("detection")
        if layer is not None and hasattr(layer, "set_review"):
            layer.set_review(self.findings_panel.statuses, self.findings_panel.show_rejected)
