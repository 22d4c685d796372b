"""The PACS in the GUI against a real Orthanc on loopback: nodes configured and tested in the dialog, studies queried
and paged in the dock, a series retrieved by DICOMweb and by C-GET and opened like a local folder (first image first),
a cancel that leaves nothing in the cache, a dead node that says so in time, and a SEG and an SR sent back and read
through Orthanc's REST API."""
from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator

import numpy as np
import pydicom
import pytest

from tests.conftest import data_path
from tests.qt.conftest import open_and_wait
from tests.services.orthanc import OrthancServer, free_port, missing_reason
from viewer.services.pacs.nodes import AuthKind, NodeKind, PacsNode

LIDC_STUDY = "1.3.6.1.4.1.14519.5.2.1.6279.6001.298806137288633453246975630178"
LIDC_SERIES = "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """An Orthanc holding four studies: LIDC-IDRI-0001 (CT, 133 slices), a sagittal MR (patient "HFS"), an MR series
    in seven transfer syntaxes (patient "stc_test") and a CT phantom study of two series (patient "HEAD")."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    folders = [data_path(name) for name in ("lidc-idri-0001", "mr-decubitus-hfdr", "ts-dcm-qa-ts")]
    folders.append(data_path("ct-gantry-tilt", "Philips_S21610"))
    with OrthancServer(tmp_path_factory.mktemp("gui-orthanc")) as server:
        for folder in folders:
            server.upload_folder(folder)
        yield server


def web_node(server: OrthancServer, **changes) -> PacsNode:
    return PacsNode(name="web", url=server.dicomweb_url, **changes)


def dimse_node(server: OrthancServer, **changes) -> PacsNode:
    return PacsNode(name="dimse", kind=NodeKind.DIMSE, aet="ORTHANC", host="127.0.0.1", port=server.dicom_port,
                    **changes)


@pytest.fixture(scope="module")
def lidc_local():
    """LIDC-IDRI-0001 loaded from ../shared, as opening the folder would."""
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan

    series = [s for s in scan([data_path("lidc-idri-0001")]).all_series() if s.kind == "image"]
    return load_series(series[0])


def browser_for(settings, qtbot, nodes: list[PacsNode], choose: str):
    from viewer.qt.pacs_browser import PacsBrowserWidget

    settings.set_pacs_nodes(nodes)
    browser = PacsBrowserWidget(settings)
    qtbot.addWidget(browser)
    browser.node_box.setCurrentIndex(browser.node_box.findText(choose))
    return browser


def search(qtbot, browser, with_series: bool = True, **fields) -> None:
    """Fill the query fields, search, and wait for the studies (and the first study's series)."""
    for name, value in fields.items():
        widget = getattr(browser, name)
        widget.setCurrentText(value) if name == "modality" else widget.setText(value)
    signals = [browser.studies_listed] + ([browser.series_listed] if with_series else [])
    with qtbot.waitSignals(signals, timeout=TIMEOUT_MS):
        browser.search()


def listed(browser) -> list[tuple[str, str]]:
    """(patient, modalities) of the studies listed."""
    rows = [browser.studies.topLevelItem(i) for i in range(browser.studies.topLevelItemCount())]
    return [(row.text(0), row.text(3)) for row in rows]


# ---- nodes ----------------------------------------------------------------------------------------------------------
def test_nodes_are_configured_tested_and_saved_without_showing_or_logging_the_secret(qtbot, settings, pacs, caplog):
    from viewer.qt.pacs_nodes_dialog import PacsNodesDialog

    caplog.set_level(logging.DEBUG)
    dialog = PacsNodesDialog(settings)
    qtbot.addWidget(dialog)
    dialog.add_node()
    form = dialog.form
    form.name.setText("Orthanc web")
    form.url.setText(pacs.dicomweb_url)
    form.auth.setCurrentIndex(form.auth.findData(AuthKind.BEARER.value))
    form.secret.setText("t0ken-never-shown")  # Orthanc without auth ignores it
    with qtbot.waitSignal(dialog.tested, timeout=TIMEOUT_MS) as blocker:
        assert dialog.test() is not None
    assert blocker.args[0].ok and dialog.message.text().startswith("OK: answered in")
    dialog.add_node()
    form.name.setText("Orthanc DIMSE")
    form.kind.setCurrentIndex(form.kind.findData(NodeKind.DIMSE.value))
    assert dialog.form.pages.currentIndex() == 1
    form.aet.setText("ORTHANC")
    form.host.setText("127.0.0.1")
    form.port.setValue(pacs.dicom_port)
    with qtbot.waitSignal(dialog.tested, timeout=TIMEOUT_MS) as blocker:  # C-ECHO
        dialog.test()
    assert blocker.args[0].ok, dialog.message.text()
    dialog.cache_gb.setValue(3.5)
    with qtbot.waitSignal(dialog.nodes_saved, timeout=1000):
        dialog.save()
    assert settings.pacs_cache_gb == 3.5
    saved = {node.name: node for node in settings.pacs_nodes()}
    assert saved["Orthanc web"].secret == "t0ken-never-shown" and saved["Orthanc web"].auth is AuthKind.BEARER
    assert saved["Orthanc DIMSE"].port == pacs.dicom_port and saved["Orthanc DIMSE"].kind is NodeKind.DIMSE
    shown = [dialog.list.item(i).text() for i in range(dialog.list.count())]
    assert len(shown) == 2 and not any("t0ken" in text for text in shown)
    assert "t0ken" not in caplog.text


def test_an_invalid_node_is_refused_with_the_field_named(qtbot, settings):
    from viewer.qt.pacs_nodes_dialog import PacsNodesDialog

    dialog = PacsNodesDialog(settings)
    qtbot.addWidget(dialog)
    dialog.add_node()
    assert dialog.test() is None and "url" in dialog.message.text()
    dialog.save()
    assert dialog.message.text().startswith("Not saved: url") and settings.pacs_nodes() == []


@pytest.mark.parametrize("kind", ["dicomweb", "dimse"])
def test_a_dead_node_says_so_within_its_timeout(qtbot, settings, kind):
    port = free_port()  # nothing listens there
    node = (PacsNode(name="dead", url=f"http://127.0.0.1:{port}/dicom-web", timeout_s=2) if kind == "dicomweb"
            else PacsNode(name="dead", kind=NodeKind.DIMSE, aet="NOBODY", host="127.0.0.1", port=port, timeout_s=2))
    browser = browser_for(settings, qtbot, [node], "dead")
    started = time.monotonic()
    with qtbot.waitSignal(browser.query_failed, timeout=5000) as blocker:
        browser.search()
    seconds = time.monotonic() - started
    message = blocker.args[0]
    assert seconds < 3, f"{seconds:.1f} s"
    assert "dead" in message and ("connection refused" in message or "could not connect" in message.lower()), message
    assert browser.status.text() == f"Failed: {message}" and browser.search_button.text() == "Search"


# ---- query ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["dicomweb", "dimse"])
def test_query_by_name_and_by_modality_and_page_with_more(qtbot, settings, pacs, kind, monkeypatch):
    from viewer.services.pacs import client

    browser = browser_for(settings, qtbot, [web_node(pacs), dimse_node(pacs)], "web" if kind == "dicomweb" else "dimse")
    search(qtbot, browser, patient_name="HFS*")
    assert listed(browser) == [("HFS", "MR")]
    assert browser.series.topLevelItemCount() == 1 and browser.series.topLevelItem(0).text(3) == "35"
    search(qtbot, browser, with_series=False, patient_name="LIDC*", modality="CT")  # no such name
    assert listed(browser) == [] and browser.status.text() == "0 studies"
    search(qtbot, browser, patient_name="", modality="CT")
    assert sorted(listed(browser)) == [("(no name)", "CT"), ("HEAD", "CT")]
    search(qtbot, browser, modality="MR")
    assert sorted(listed(browser)) == [("HFS", "MR"), ("stc_test", "MR")]
    listings: list[int] = []
    browser.series_listed.connect(listings.append)
    opened = []  # clients made on the workers: one per request
    real_open = client.open_client
    monkeypatch.setattr(client, "open_client", lambda node: opened.append(node) or real_open(node))
    browser.studies.setCurrentItem(browser.studies.topLevelItem(1))  # passed over: no series asked for
    browser.studies.setCurrentItem(browser.studies.topLevelItem(0))
    qtbot.waitUntil(lambda: bool(listings), timeout=TIMEOUT_MS)
    qtbot.wait(300)
    assert listings == [1] and len(opened) == 1 and browser.series.topLevelItemCount() == 1
    browser.page_size.setValue(3)
    search(qtbot, browser, modality="")
    assert len(listed(browser)) == 3 and browser.more_button.isEnabled() and "More" in browser.status.text()
    with qtbot.waitSignal(browser.studies_listed, timeout=TIMEOUT_MS) as blocker:
        browser.more_button.click()
    assert blocker.args == [4] and len(set(listed(browser))) == 4
    assert not browser.more_button.isEnabled() and browser.status.text() == "4 studies"


# ---- retrieve -------------------------------------------------------------------------------------------------------
def pick_lidc(qtbot, window, node: PacsNode):
    window.settings.set_pacs_nodes([node])
    window.pacs.browser.reload_nodes()
    window.action_pacs_query.trigger()
    browser = window.pacs.browser
    assert window.pacs.dock.isVisible()
    search(qtbot, browser, patient_id="LIDC-IDRI-0001")
    assert browser.selected_study_uid() == LIDC_STUDY and browser.selected_series_uid() == LIDC_SERIES
    return browser


@pytest.mark.parametrize("kind", ["dicomweb", "c-get"])
def test_a_retrieved_series_shows_its_first_image_early_and_opens_voxel_identical(qtbot, main_window, pacs,
                                                                                 lidc_local, kind):
    window = main_window
    browser = pick_lidc(qtbot, window, web_node(pacs) if kind == "dicomweb" else dimse_node(pacs))
    retriever = window.pacs.retriever
    seen = {}

    def on_preview(preview):
        seen["preview_on_screen"] = window.viewer.volume is preview.volume
        seen["preview_at"] = time.perf_counter()
        seen["loading"] = window.viewer.loading

    retriever.preview_shown.connect(on_preview)
    retriever.retrieved.connect(lambda result: seen.setdefault("retrieved_at", time.perf_counter()))
    with qtbot.waitSignal(window.series_loaded, timeout=60_000):
        browser.retrieve_series_button.click()
    timings = retriever.timings
    print(f"\n{kind}: first image {timings['first_image']:.3f} s, retrieve complete {timings['complete']:.3f} s, "
          f"series loaded {timings['opened']:.3f} s")
    assert seen["preview_on_screen"] and seen["preview_at"] < seen["retrieved_at"]
    assert timings["first_image"] < timings["complete"] < timings["opened"]
    volume = window.viewer.volume
    assert volume.complete and volume.series_uid == LIDC_SERIES
    assert volume.array.dtype == lidc_local.array.dtype and np.array_equal(volume.array, lidc_local.array)
    assert np.array_equal(volume.affine, lidc_local.affine)
    cache = retriever.cache()
    assert window.paths == [str(cache.series_path(LIDC_STUDY, LIDC_SERIES))]
    assert [s.uid for s in window.browser.catalog.all_series()] == [LIDC_SERIES]  # in the series browser
    assert window.current_series.uid == LIDC_SERIES and not browser.progress.isVisible()
    assert browser.status.text().startswith("Retrieved 133 instances")


def test_a_retrieved_study_opens_every_series_in_the_series_browser(qtbot, main_window, pacs):
    window = main_window
    window.settings.set_pacs_nodes([web_node(pacs)])
    window.pacs.browser.reload_nodes()
    browser = window.pacs.browser
    search(qtbot, browser, patient_name="HEAD")  # a phantom study of two CT series (the catalog splits them in 5)
    assert browser.series.topLevelItemCount() == 2
    with qtbot.waitSignal(window.series_loaded, timeout=60_000):
        browser.retrieve_study_button.click()
    entries = window.pacs.retriever.cache().entries()
    assert len(entries) == 2 and sorted(window.paths) == sorted(str(entry.path) for entry in entries)
    assert {s.uid for s in window.catalog.all_series()} == {entry.series_uid for entry in entries}
    assert window.browser.topLevelItemCount() == 1  # one patient, in the series browser like a local study
    assert window.viewer.volume is not None and window.viewer.volume.complete


@pytest.mark.parametrize("kind", ["dicomweb", "c-get"])
def test_cancel_mid_retrieve_leaves_no_partial_series_in_the_cache(qtbot, main_window, pacs, monkeypatch, kind):
    from viewer.services.pacs.cache import Staging

    write = Staging.add_bytes

    def slow_write(self, *args):  # a slow disk or network: the retrieve is still running when Cancel comes
        time.sleep(0.02)
        return write(self, *args)

    monkeypatch.setattr(Staging, "add_bytes", slow_write)
    window = main_window
    browser = pick_lidc(qtbot, window, web_node(pacs) if kind == "dicomweb" else dimse_node(pacs))
    retriever = window.pacs.retriever
    retriever.preview_shown.connect(lambda _preview: browser.cancel_button.click())
    loaded = []
    window.series_loaded.connect(loaded.append)
    with qtbot.waitSignal(retriever.ended, timeout=TIMEOUT_MS) as blocker:
        browser.retrieve_series_button.click()
    assert blocker.args == ["Retrieve cancelled: nothing was kept"]
    cache = retriever.cache()
    assert cache.entries() == [] and not any((cache.root / ".staging").iterdir())
    assert window.viewer.volume is None and not retriever.busy
    # the dock hears of the end through the job's own done signal, queued after the retriever's ended
    qtbot.waitUntil(browser.retrieve_series_button.isEnabled, timeout=2000)
    qtbot.wait(200)
    assert loaded == []


def test_cancel_while_looking_for_the_study_ai_results_keeps_and_opens_the_series(qtbot, main_window, pacs,
                                                                                   monkeypatch):
    """A single series is complete before the study's AI results are looked for: a cancel then stops only that
    search, and the series opens (it is in the cache; saying "nothing was kept" would be false)."""
    from viewer.services.pacs import results_companions

    quiet = results_companions._quiet

    def slow_quiet(job, done):  # a slow PACS query: Cancel comes while the search for AI results runs
        for _ in range(2):
            time.sleep(0.3)
            yield done
        return (yield from quiet(job, done))

    monkeypatch.setattr(results_companions, "_quiet", slow_quiet)
    window = main_window
    browser = pick_lidc(qtbot, window, web_node(pacs))
    retriever = window.pacs.retriever

    def on_started(job):
        job.progressed.connect(lambda progress: browser.cancel_button.click()
                               if progress.message == "Looking for the study's AI results" else None)

    retriever.started.connect(on_started)
    with qtbot.waitSignal(window.series_loaded, timeout=60_000):
        with qtbot.waitSignal(retriever.ended, timeout=60_000) as ended:
            browser.retrieve_series_button.click()
    assert ended.args[0].startswith("Retrieved 133 instances")
    assert ended.args[0].endswith("looking for the study's AI results cancelled")
    assert window.viewer.volume.complete and window.viewer.volume.series_uid == LIDC_SERIES
    assert [entry.series_uid for entry in retriever.cache().entries()] == [LIDC_SERIES]
    qtbot.waitUntil(browser.retrieve_series_button.isEnabled, timeout=2000)


# ---- send -----------------------------------------------------------------------------------------------------------
def test_seg_and_sr_are_sent_by_stow_and_c_store_and_read_back(qtbot, main_window, pacs, lidc_local):
    from tests.core.test_sr_measurements import _on
    from viewer.core.editing import tools

    window = main_window
    window.ask_unsaved = lambda action: "discard"  # the segment drawn here is not kept at the end
    window.settings.set_pacs_nodes([web_node(pacs), dimse_node(pacs)])
    open_and_wait(qtbot, window, [data_path("lidc-idri-0001")])
    an = window.annotation
    an.add_segment("nodule")
    segmentation = an.editor.segmentation
    segmentation.apply(tools.brush(segmentation, segmentation.active, [62, 210, 310], 6.0, 0))
    measurement = _on(window.viewer.volume, "axial", 60, "length", (100.0, 120.0), (140.0, 200.0))
    window.viewer.add_measurement(measurement)
    stored_before = set(pacs.rest("GET", "/instances"))
    for node in ("web", "dimse"):
        dialog = window.pacs.send()
        qtbot.addWidget(dialog)
        dialog.node_box.setCurrentIndex(dialog.node_box.findData(node))
        assert dialog.seg.isChecked() and dialog.sr.isChecked() and not dialog.images.isChecked()
        with qtbot.waitSignal(dialog.sent, timeout=TIMEOUT_MS) as blocker:
            dialog.send_button.click()
        sent = blocker.args[0]
        assert [(s.kind, s.ok) for s in sent] == [("SEG", True), ("SR", True)], sent
        rows = [dialog.results.topLevelItem(i) for i in range(dialog.results.topLevelItemCount())]
        assert [row.text(1) for row in rows] == ["stored", "stored"]
        assert dialog.status.text() == "2 of 2 objects stored"
        for obj in sent:  # read back through Orthanc's REST API
            found = pacs.rest("POST", "/tools/lookup", obj.sop_instance_uid.encode(), "text/plain")
            assert found and found[0]["Type"] == "Instance", obj
            dataset = pydicom.dcmread(io.BytesIO(pacs.rest("GET", f"/instances/{found[0]['ID']}/file")))
            assert dataset.Modality == obj.kind and dataset.StudyInstanceUID == LIDC_STUDY
            if obj.kind == "SEG":
                assert dataset.ReferencedSeriesSequence[0].SeriesInstanceUID == LIDC_SERIES
                assert dataset.SegmentSequence[0].SegmentLabel == "nodule"
            else:  # the measurement's tracking UID, kept on the measurement for a later save
                assert measurement.uid and measurement.uid in str(dataset.ContentSequence)
        dialog.close()
    assert len(set(pacs.rest("GET", "/instances")) - stored_before) == 4
