"""The tag browser's background reads: only the latest request is shown, and a browser deleted while its tags are
read is left alone (a result handed to a deleted browser segfaulted in two fresh-clone CI runs)."""
from __future__ import annotations

import threading

import pydicom
import shiboken6
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from viewer.qt.tag_browser import TagBrowserWidget
from viewer.qt.workers import job_pool


def _dicom(path, name):
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SeriesDescription = name
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def _descriptions(browser):
    return [value for _, name, value in browser.visible_rows() if name == "Series Description"]


def test_only_the_latest_request_is_shown(qtbot, tmp_path):
    browser = TagBrowserWidget()
    qtbot.addWidget(browser)
    first, second = _dicom(tmp_path / "a.dcm", "first"), _dicom(tmp_path / "b.dcm", "second")
    browser.show_file(first, immediately=True)
    browser.show_file(second, immediately=True)  # supersedes the first read, whether or not it is done
    qtbot.waitUntil(lambda: browser.shown_path == second, timeout=10000)
    job_pool().waitForDone(10000)
    qtbot.wait(50)  # any result of the first read still queued is delivered now, and must be ignored
    assert browser.shown_path == second and _descriptions(browser) == ["second"]
    assert browser.caption.text() == "b.dcm"


def test_a_result_queued_for_a_deleted_browser_is_dropped(qtbot, tmp_path):
    """The read finished (its result queued from the worker) just before the browser was deleted."""
    browser = TagBrowserWidget()
    browser.show_file(_dicom(tmp_path / "a.dcm", "first"), immediately=True)
    job = browser._job
    job_pool().waitForDone(10000)
    emitter = threading.Thread(target=lambda: job.finished.emit([]))  # queued: emitted off the GUI thread
    emitter.start()
    emitter.join()
    shiboken6.delete(browser)  # the browser, its model and the job's handle go now, the queued result stays
    qtbot.wait(50)  # delivering it must not touch the deleted browser (pytest-qt fails on an error in a slot)


def test_a_superseded_failure_does_not_replace_the_caption(qtbot, tmp_path):
    browser = TagBrowserWidget()
    qtbot.addWidget(browser)
    browser.show_file(str(tmp_path / "missing.dcm"), immediately=True)
    first = browser._job
    good = _dicom(tmp_path / "a.dcm", "first")
    browser.show_file(good, immediately=True)
    qtbot.waitUntil(lambda: browser.shown_path == good, timeout=10000)
    job_pool().waitForDone(10000)
    first.failed.emit("late failure of the first read")
    qtbot.wait(50)
    assert browser.caption.text() == "a.dcm"
