"""Regression guard for PySide6 6.12.0 on CPython 3.11: every void method call dropped a reference to None and
every signal emit one to True, ending in "Fatal Python error: none_dealloc" after a few thousand calls.
We pin PySide6-Essentials < 6.12; this test fails (or crashes) if a broken build comes back."""
from __future__ import annotations

import sys

import pyqtgraph as pg
from PySide6.QtCore import QObject, Signal

N = 20_000


class Emitter(QObject):
    pinged = Signal()
    flagged = Signal(bool)


def test_twenty_thousand_void_calls_and_emits_keep_refcounts(qapp):
    item = pg.ImageItem()
    emitter = Emitter()
    received = []
    emitter.flagged.connect(received.append)
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(N):
        item.update()  # a void C++ method returning None
        item.setVisible(True)
    for _ in range(N):
        emitter.pinged.emit()
        emitter.flagged.emit(True)
    assert len(received) == N
    # On an affected build each call leaks a decref: thousands missing. Allow noise from other threads.
    assert sys.getrefcount(None) > none_before - 1000
    # received holds N new references to True; a leaking emit would take them back.
    assert sys.getrefcount(True) > true_before + N - 1000
    del received
