"""The Qt-free pieces behind the PACS dock and the Send dialog: paging, the first-image preview of a retrieve, and
sending a series' SEG and SR (against a real Orthanc where a PACS is needed)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from inference.jobs import Progress, run_job
from tests.conftest import data_path
from tests.services.test_dicomweb import LIDC_SERIES, LIDC_STUDY, web_node
from viewer.services.pacs.cache import RetrieveCache
from viewer.services.pacs.client import echo_job, open_client
from viewer.services.pacs.model import QueryFilter, RetrieveResult, SendResult, StudyHit
from viewer.services.pacs.outbox import IMAGE, SEG, SR, SendRequest, send_job, summary
from viewer.services.pacs.paging import StudyPager
from viewer.services.pacs.preview import RetrievePreview, retrieve_with_preview


def hits(*uids: str) -> list[StudyHit]:
    return [StudyHit(study_uid=uid) for uid in uids]


def test_pager_asks_page_after_page_until_a_short_one_and_drops_a_study_seen_twice():
    pager = StudyPager(QueryFilter(patient_name="DOE*", limit=999, offset=7), page_size=2)
    first = pager.next_query()
    assert (first.limit, first.offset, first.patient_name) == (2, 0, "DOE*")
    assert pager.add_page(hits("1.1", "1.2")) == hits("1.1", "1.2") and pager.has_more
    assert pager.next_query().offset == 2
    # a study stored meanwhile shifted the list: 1.2 comes again and is not listed twice
    assert pager.add_page(hits("1.2", "1.3")) == hits("1.3") and pager.has_more
    assert pager.next_query().offset == 4
    assert pager.add_page(hits("1.4")) == hits("1.4") and not pager.has_more
    assert [h.study_uid for h in pager.hits] == ["1.1", "1.2", "1.3", "1.4"]
    assert StudyPager(QueryFilter(), page_size=0).page_size == 1


def test_echo_job_reports_both_ways(orthanc):
    from tests.services.orthanc import free_port
    from viewer.services.pacs.nodes import PacsNode

    assert run_job(echo_job(web_node(orthanc))).ok
    dead = PacsNode(name="dead", kind="dimse", aet="X", host="127.0.0.1", port=free_port(), timeout_s=2)
    result = run_job(echo_job(dead))
    assert not result.ok and "dead" in result.message and result.seconds < 3


@pytest.fixture(scope="module")
def lidc_local():
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan

    series = [s for s in scan([data_path("lidc-idri-0001")]).all_series() if s.kind == "image"][0]
    return series, load_series(series)


def test_retrieve_with_preview_announces_the_first_image_once_before_the_end(orthanc, tmp_path, lidc_local):
    series, volume = lidc_local
    seen: list[Progress] = []
    result = run_job(retrieve_with_preview(open_client(web_node(orthanc)), LIDC_STUDY, LIDC_SERIES,
                                           RetrieveCache(tmp_path / "cache")), seen.append)
    previews = [(i, p.payload) for i, p in enumerate(seen) if isinstance(p.payload, RetrievePreview)]
    assert len(previews) == 1 and result.n_instances == 133
    # then the search for the study's AI results: its steps carry the series that has arrived, kept on a cancel
    searching = [p.payload for p in seen if isinstance(p.payload, RetrieveResult)]
    assert searching and all(set(found.series_dirs) == {LIDC_SERIES} for found in searching)
    assert len(previews) + len(searching) == sum(p.payload is not None for p in seen)
    index, preview = previews[0]
    assert isinstance(preview, RetrievePreview) and preview.series_uid == LIDC_SERIES
    assert index < len(seen) - 100, "the preview came only at the end"
    assert preview.expected == 133 and seen[index].done == 1
    assert preview.volume.shape[0] == 1 and preview.volume.modality == "CT"
    assert preview.info["modality"] == "CT" and preview.seconds < 5
    k = volume.slice_sop_uids.index(preview.volume.slice_sop_uids[0])
    assert np.array_equal(preview.volume.array[0], volume.array[k])  # the same pixels as the local file


def test_closing_the_retrieve_with_preview_leaves_nothing_in_the_cache(orthanc, tmp_path):
    cache = RetrieveCache(tmp_path / "cache")
    job = retrieve_with_preview(open_client(web_node(orthanc)), LIDC_STUDY, LIDC_SERIES, cache)
    while next(job).payload is None:
        pass
    assert any((cache.root / ".staging").iterdir())
    job.close()
    assert cache.entries() == [] and not any((cache.root / ".staging").iterdir())


def annotated(volume):
    """A painted "nodule" segment and one length measurement on the LIDC volume."""
    from tests.core.test_sr_measurements import _on
    from viewer.core.editing import tools
    from viewer.core.editing.segmentation import Segmentation

    segmentation = Segmentation.for_volume(volume)
    number = segmentation.add_segment("nodule", (255, 200, 0))[0].number
    segmentation.apply(tools.brush(segmentation, number, [62, 210, 310], 6.0, 0))
    return segmentation, [_on(volume, "axial", 60, "length", (100.0, 120.0), (140.0, 200.0))]


class _Recorder:
    """A client that stores nothing and says every file was stored (the order of files is checked)."""

    def __init__(self) -> None:
        self.sent: list[Path] = []

    def send(self, paths, cancel=None):
        self.sent = list(paths)
        yield Progress(len(paths), len(paths), "Sent")
        return [SendResult(Path(p), f"1.2.{i}", True) for i, p in enumerate(paths)]


def test_a_seg_that_cannot_be_written_fails_alone(lidc_local):
    from viewer.core.editing.segmentation import Segmentation

    series, volume = lidc_local
    _, measurements = annotated(volume)
    paths = tuple(i.path for i in series.instances)
    request = SendRequest(volume, paths, Segmentation.for_volume(volume), tuple(measurements), images=True)
    client = _Recorder()
    sent = run_job(send_job(client, request))
    assert [s.kind for s in sent] == [SEG, SR] + [IMAGE] * 133
    assert not sent[0].ok and "no segments" in sent[0].message
    assert all(s.ok for s in sent[1:]) and len(client.sent) == 134
    assert summary(sent) == "134 of 135 objects stored; failed: SEG"


def test_seg_and_sr_reach_orthanc_and_read_back(fresh_orthanc, lidc_local, tmp_path):
    series, volume = lidc_local
    segmentation, measurements = annotated(volume)
    request = SendRequest(volume, tuple(i.path for i in series.instances), segmentation.copy(),
                          tuple(measurements))
    sent = run_job(send_job(open_client(web_node(fresh_orthanc)), request, folder=tmp_path))
    assert [(s.kind, s.ok) for s in sent] == [(SEG, True), (SR, True)], sent
    stored = {}
    for instance_id in fresh_orthanc.rest("GET", "/instances"):
        tags = fresh_orthanc.rest("GET", f"/instances/{instance_id}/simplified-tags")
        stored[tags["SOPInstanceUID"]] = tags
    assert set(stored) == {s.sop_instance_uid for s in sent}
    assert {tags["Modality"] for tags in stored.values()} == {"SEG", "SR"}
    seg = pydicom.dcmread(tmp_path / "segmentation.seg.dcm", stop_before_pixels=True)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == LIDC_SERIES
    sr = pydicom.dcmread(tmp_path / "measurements.sr.dcm")
    assert sr.SOPInstanceUID in stored and "Length" in str(sr.ContentSequence)


def test_a_cancelled_c_get_closed_at_a_yield_stops_by_c_cancel_not_by_the_timeout(orthanc, tmp_path):
    """The GUI's worker closes a cancelled job at its yield; the DIMSE retrieve must still end at once, not wait out
    the node's timeout for a response that an aborted association never brings."""
    from inference.jobs import CancelToken
    from viewer.services.pacs.nodes import PacsNode

    node = PacsNode("dimse", kind="dimse", aet="ORTHANC", host="127.0.0.1", port=orthanc.dicom_port, timeout_s=10)
    cache = RetrieveCache(tmp_path / "cache")
    token = CancelToken()
    job = retrieve_with_preview(open_client(node), LIDC_STUDY, LIDC_SERIES, cache, token)
    while next(job).payload is None:
        pass
    token.cancel()
    started = time.monotonic()
    job.close()
    assert time.monotonic() - started < 3
    assert cache.entries() == [] and not any((cache.root / ".staging").iterdir())
