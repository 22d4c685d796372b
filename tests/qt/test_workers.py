"""Jobs on worker threads: results, cancel, failures, and a GUI that stays responsive meanwhile."""
from __future__ import annotations

import threading
import time

import numpy as np
from PySide6.QtCore import QElapsedTimer, QTimer

from viewer.core.jobs import Progress
from viewer.qt.workers import start_job


def counting_job(token, n=50, delay=0.002):
    for i in range(n):
        time.sleep(delay)
        yield Progress(i + 1, n, "counting", payload=i if i == 0 else None)
    return "done"


def test_job_runs_off_the_gui_thread_and_reports_on_it(qapp, qtbot):
    main = threading.get_ident()
    threads = []

    def job(token):
        threads.append(threading.get_ident())
        yield Progress(1, 1)
        return 42

    handle = start_job(job, "t")
    seen = []
    handle.progressed.connect(lambda p: seen.append(threading.get_ident()))
    with qtbot.waitSignal(handle.finished, timeout=5000) as blocker:
        pass
    assert blocker.args == [42] and threads and threads[0] != main and seen == [main]
    qtbot.waitUntil(lambda: not handle.running)


def test_a_fast_job_never_loses_its_result(qapp, qtbot):
    for _ in range(20):
        handle = start_job(lambda token: iter(()), "instant")  # finishes at once
        with qtbot.waitSignal(handle.finished, timeout=2000):
            pass


def test_cancel_stops_at_the_next_yield(qapp, qtbot):
    handle = start_job(lambda token: counting_job(token, n=10_000, delay=0.001), "long")
    with qtbot.waitSignal(handle.progressed, timeout=5000):
        pass
    with qtbot.waitSignal(handle.cancelled, timeout=5000):
        handle.cancel()
    assert handle.last_progress.done < 10_000


def test_a_cancelled_job_has_cleaned_up_when_cancelled_arrives(qapp, qtbot):
    cleaned = []

    def holding(token):  # like a retrieve: a staging folder removed when the generator is closed
        try:
            while True:
                time.sleep(0.001)
                yield Progress(0, 0, "working")
        finally:
            time.sleep(0.3)  # a slow clean-up (an association's release): still done before ``cancelled``
            cleaned.append(True)

    handle = start_job(holding, "holding")
    with qtbot.waitSignal(handle.progressed, timeout=5000):
        pass
    at_cancelled = []
    handle.cancelled.connect(lambda: at_cancelled.append(list(cleaned)))
    with qtbot.waitSignal(handle.cancelled, timeout=5000):
        handle.cancel()
    assert at_cancelled == [[True]]


def test_failure_is_reported_not_raised(qapp, qtbot):
    def broken(token):
        yield Progress(0, 1)
        raise RuntimeError("bad file")

    handle = start_job(broken, "broken")
    with qtbot.waitSignal(handle.failed, timeout=5000) as blocker:
        pass
    assert blocker.args == ["RuntimeError: bad file"]


def test_progress_is_throttled_but_the_first_payload_is_immediate(qapp, qtbot):
    handle = start_job(lambda token: counting_job(token, n=200, delay=0.001), "throttled", progress_interval=0.05)
    got = []
    handle.progressed.connect(got.append)
    with qtbot.waitSignal(handle.finished, timeout=10_000):
        pass
    qtbot.wait(20)
    assert got[0].payload == 0 and got[0].done == 1
    assert 2 <= len(got) < 60 and got[-1].done == 200


def event_loop_lateness(qtbot, job_factory, interval_ms=10):
    """Run a job and, meanwhile, a 10 ms QTimer; return how late each tick was (ms) while the job ran."""
    timer = QTimer()
    timer.setInterval(interval_ms)
    clock = QElapsedTimer()
    ticks = []
    timer.timeout.connect(lambda: ticks.append(clock.nsecsElapsed() / 1e6))
    handle = start_job(job_factory, "latency")
    clock.start()
    timer.start()
    qtbot.waitUntil(lambda: not handle.running, timeout=120_000)
    timer.stop()
    gaps = np.diff(ticks)
    return np.maximum(0, gaps - interval_ms), handle


def test_gui_event_loop_stays_responsive_while_a_long_job_runs(qapp, qtbot, lidc_dir):
    """p95 of the event loop's lateness < 50 ms while the worker scans and loads LIDC (decoding threads included)
    and then does GIL-holding pure-Python work, for about two seconds or more."""
    from viewer.core.dicom.load import iter_load
    from viewer.core.dicom.scan import iter_scan

    def long_job(token):
        started = time.perf_counter()
        rounds = 0
        while time.perf_counter() - started < 2.0 or rounds < 2:
            catalog = yield from iter_scan([str(lidc_dir)], cancel=token)
            series = max(catalog.all_series(), key=lambda s: s.n_instances)
            volume = yield from iter_load(series, cancel=token)
            total = 0
            for i in range(200_000):  # pure Python, holds the GIL between switch intervals
                total += i * i
            yield Progress(rounds, 0, "python work", payload=None)
            rounds += 1
        return volume.shape

    lateness, handle = event_loop_lateness(qtbot, long_job)
    assert len(lateness) > 50, "the timer hardly ran: the event loop was blocked"
    p95 = float(np.percentile(lateness, 95))
    print(f"event loop lateness while loading: median {np.median(lateness):.1f} ms, p95 {p95:.1f} ms, "
          f"max {lateness.max():.1f} ms over {len(lateness)} ticks")
    assert p95 < 50.0


def test_scrolling_is_answered_while_the_series_loads(main_window, qtbot, lidc_dir):
    """Progressive display: while the rest decodes, the slices already shown scroll at once."""
    from tests.qt.conftest import open_and_wait

    open_and_wait(qtbot, main_window, [lidc_dir])
    viewer = main_window.viewer
    main_window.session.volumes.clear()  # force a real reload
    main_window.open_series(main_window.current_series.key)
    qtbot.waitUntil(lambda: viewer.state is not None and viewer.volume.slices_loaded >= 2, timeout=30_000)
    times = []
    for k in range(10):
        t = time.perf_counter()
        viewer.state.set_slice("axial", k % 2)
        times.append(time.perf_counter() - t)
    assert np.median(times) < 0.02
    qtbot.waitUntil(lambda: not main_window.busy, timeout=60_000)
    assert viewer.volume.complete and viewer.loading is None


def test_a_job_whose_owner_closed_stops_quietly(qapp, qtbot):
    """The handle's parent (a dialog) is deleted while the job runs: the job stops at its next step, nothing is
    raised in the event loop (it was: "Signal source has been deleted" on every emit, failing a later test)."""
    from PySide6.QtCore import QObject

    steps = []

    def job(token):
        for i in range(200):
            steps.append(i)
            time.sleep(0.005)
            yield Progress(i, 200)

    owner = QObject()
    handle = start_job(job, "owned", parent=owner, progress_interval=0.0)
    qtbot.waitUntil(lambda: len(steps) > 3, timeout=5000)
    owner.deleteLater()
    qtbot.waitUntil(lambda: handle.token.cancelled, timeout=5000)
    qtbot.wait(100)
    assert handle.token.cancelled and len(steps) < 200
