"""Never lose work: the annotations of the session autosaved from a timer, and an autosave offered back.

One part of :class:`~viewer.qt.annotation.AnnotationController`. Each editor has its
:class:`~viewer.core.editing.autosave.Autosave` (the session's
:meth:`~viewer.core.session.SeriesState.ensure_editor` makes it); when a series with an autosave newer than its last
export is shown, :meth:`AutosaveController.check_restore` offers it (:meth:`~AutosaveController.ask_restore`, which
tests replace).
"""
from __future__ import annotations

import datetime
import logging

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QMessageBox

log = logging.getLogger(__name__)

AUTOSAVE_TICK_MS = 2000


class AutosaveController(QObject):
    """Autosave every annotation of ``annotation``'s session (an
    :class:`~viewer.qt.annotation.AnnotationController`) when due, and offer an autosave back once per series."""

    def __init__(self, annotation) -> None:
        super().__init__(annotation)
        self.annotation = annotation
        self._asked_restore: set[str] = set()
        #: Series UIDs whose autosave the user already chose to restore (the start-up offer): no second question.
        self.restore_approved: set[str] = set()
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_TICK_MS)
        self.autosave_timer.timeout.connect(self.autosave_now)
        self.autosave_timer.start()

    def autosave_now(self, force: bool = False) -> int:
        """Save the annotations that are due (all with unsaved edits when ``force``); returns how many."""
        saved = 0
        for editor in self.annotation.session.editors.values():
            autosave = editor.autosave
            if autosave is None or editor.history.in_step or not autosave.segmentation.series_uid:
                continue
            try:
                if force and autosave.pending:
                    autosave.save()
                    saved += 1
                elif autosave.maybe_save():
                    saved += 1
            except OSError as exc:
                log.warning("autosave failed: %s", exc)
                self.annotation.status_message.emit(f"Autosave failed: {exc}")
        return saved

    def ask_restore(self, info) -> bool:
        """Offer an autosave (tests replace this): True restores it."""
        when = datetime.datetime.fromtimestamp(info.saved_at).strftime("%Y-%m-%d %H:%M")
        answer = QMessageBox.question(
            self.annotation.panel.window(), "Restore annotation",
            f"An annotation of this series ({info.description or 'no description'}) was autosaved at {when} and "
            f"not exported: {info.n_segments} segment(s), {info.n_findings} finding(s), {info.edits} edit(s).\n\n"
            "Restore it?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.Yes)
        return answer == QMessageBox.StandardButton.Yes

    def check_restore(self) -> bool:
        """When the shown series has an autosave newer than its export, offer it (once per series and session);
        returns True when one was restored."""
        from viewer.core.editing.autosave import find_restorable, restore

        an = self.annotation
        editor, volume, key = an.editor, an.volume, an.series_key
        if editor is None or volume is None or not volume.series_uid or key in self._asked_restore:
            return False
        root = editor.autosave.root if editor.autosave is not None else None
        found = [i for i in find_restorable(root) if i.series_uid == volume.series_uid]
        if not found:
            return False
        self._asked_restore.add(key)
        info = found[0]
        approved = info.series_uid in self.restore_approved
        self.restore_approved.discard(info.series_uid)
        if not approved and not self.ask_restore(info):
            editor.autosave.discard()
            an.status_message.emit("Autosaved annotation discarded")
            return False
        try:
            segmentation, review = restore(info.folder)
        except Exception as exc:  # noqa: BLE001 - a damaged autosave must not take the window down
            an.status_message.emit(f"Could not restore the autosave: {exc}")
            return False
        if tuple(segmentation.shape) != tuple(volume.shape):
            an.status_message.emit("The autosave is on another grid than this series; not restored")
            return False
        restored = an._ensure_editor(segmentation=segmentation, review=review, replace=True)  # the undo base
        restored.autosave.note_edit()  # still not exported: stays restorable
        restored.history.mark_unsaved()  # modified until exported, so closing asks
        an._refresh()
        an.status_message.emit(f"Restored the autosaved annotation ({len(segmentation)} segments)")
        return True
