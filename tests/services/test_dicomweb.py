"""The DICOMweb client against a real Orthanc (QIDO-RS, WADO-RS, STOW-RS), and against servers that misbehave."""
from __future__ import annotations

import datetime as dt
import logging
import socket
from pathlib import Path

import pydicom
import pytest

from inference.jobs import Cancelled, CancelToken, Progress, run_job
from tests.conftest import data_path
from tests.services.orthanc import PASSWORD, USER, OrthancServer, free_port, missing_reason
from viewer.services.pacs.cache import RetrieveCache
from viewer.services.pacs.client import open_client
from viewer.services.pacs.dicomweb import DicomwebClient
from viewer.services.pacs.model import PacsError, QueryFilter, RetrieveProgressPayload
from viewer.services.pacs.nodes import AuthKind, PacsNode

LIDC_STUDY = "1.3.6.1.4.1.14519.5.2.1.6279.6001.298806137288633453246975630178"
LIDC_SERIES = "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192"


def web_node(server: OrthancServer, **changes) -> PacsNode:
    return PacsNode(name="test-pacs", url=server.dicomweb_url, **changes)


def sources_by_sop(paths) -> dict[str, Path]:
    """SOP Instance UID -> file."""
    found = {}
    for path in paths:
        found[pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID] = path
    return found


def test_echo_answers_and_reports_a_closed_port(orthanc: OrthancServer) -> None:
    assert isinstance(open_client(web_node(orthanc)), DicomwebClient)
    result = open_client(web_node(orthanc)).echo()
    assert result.ok and result.seconds < 5 and result.message == ""
    closed = PacsNode(name="nobody", url=f"http://127.0.0.1:{free_port()}/dicom-web", timeout_s=2)
    result = open_client(closed).echo()
    assert not result.ok
    assert "cannot reach nobody" in result.message and "connection refused" in result.message


def test_a_server_that_never_answers_times_out(tmp_path: Path) -> None:
    with socket.socket() as listener:  # accepts connections (the kernel's backlog) and never says a word
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        node = PacsNode(name="mute", url=f"http://127.0.0.1:{listener.getsockname()[1]}/dicom-web", timeout_s=0.5)
        with pytest.raises(PacsError, match=r"mute .* did not answer within 0.5 s"):
            run_job(open_client(node).query_studies(QueryFilter(patient_name="DOE*")))
        assert "did not answer" in open_client(node).echo().message


def test_query_studies_and_series(orthanc: OrthancServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)  # the log file's level: what it would hold must carry no patient ID
    client = open_client(web_node(orthanc))
    hits = run_job(client.query_studies(QueryFilter(patient_id="LIDC-IDRI-0001", modality="CT",
                                                    date_from=dt.date(1999, 12, 31), date_to=dt.date(2000, 1, 2))))
    assert [hit.study_uid for hit in hits] == [LIDC_STUDY]
    assert hits[0].study_date == "20000101" and hits[0].modalities == ("CT",)
    assert hits[0].n_series == 1 and hits[0].n_instances == 133 and hits[0].patient_id == "LIDC-IDRI-0001"
    assert "LIDC-IDRI-0001" not in caplog.text
    assert run_job(client.query_studies(QueryFilter(modality="MR"))) == []
    assert run_job(client.query_studies(QueryFilter(date_from=dt.date(2001, 1, 1)))) == []
    assert run_job(client.query_studies(QueryFilter(offset=1))) == []  # the only study is on page one
    series = run_job(client.query_series(LIDC_STUDY))
    assert [(s.series_uid, s.modality, s.n_instances) for s in series] == [(LIDC_SERIES, "CT", 133)]
    with pytest.raises(PacsError, match="study UID: not a valid DICOM UID"):
        run_job(client.query_series("1.2.3/../../x"))


def test_the_log_file_gets_no_query_string(orthanc: OrthancServer, tmp_path: Path) -> None:
    from viewer.core import logs

    for name in ("dicomweb_client", "urllib3"):  # as if nothing had quieted them yet: both log URLs at DEBUG
        logging.getLogger(name).setLevel(logging.NOTSET)
    path = logs.setup_file_logging(tmp_path, level=logging.DEBUG)
    try:
        run_job(open_client(web_node(orthanc)).query_studies(QueryFilter(patient_name="Zebra*", patient_id="Z-123")))
    finally:
        logs.stop_file_logging()
    text = path.read_text() if path.exists() else ""
    assert "Zebra" not in text and "Z-123" not in text


def test_retrieve_streams_byte_identical_files_into_the_cache(orthanc: OrthancServer, lidc_dir: Path,
                                                              tmp_path: Path) -> None:
    cache = RetrieveCache(tmp_path / "cache")
    seen: list[RetrieveProgressPayload] = []

    def on_progress(progress: Progress) -> None:
        if isinstance(progress.payload, RetrieveProgressPayload):
            assert progress.payload.path.is_file()  # announced once it is on disk, in staging, not yet in the cache
            assert cache.series_path(LIDC_STUDY, LIDC_SERIES) is None
            seen.append(progress.payload)

    result = run_job(open_client(web_node(orthanc)).retrieve(LIDC_STUDY, LIDC_SERIES, cache), on_progress)
    assert result.n_instances == 133 and len(seen) == 133
    assert [p.received for p in seen] == list(range(1, 134)) and {p.expected for p in seen} == {133}
    folder = result.series_dirs[LIDC_SERIES]
    assert folder == cache.series_path(LIDC_STUDY, LIDC_SERIES)
    sources = sources_by_sop(lidc_dir.rglob("*.dcm"))
    assert sorted(p.stem for p in folder.iterdir()) == sorted(sources)
    for path in folder.iterdir():  # transfer-syntax=*: what the PACS holds, byte for byte
        assert path.read_bytes() == sources[path.stem].read_bytes()
    assert result.n_bytes == sum(p.stat().st_size for p in folder.iterdir())
    assert not any((tmp_path / "cache" / ".staging").iterdir())


def test_a_cancelled_retrieve_leaves_nothing_in_the_cache(orthanc: OrthancServer, tmp_path: Path) -> None:
    cache = RetrieveCache(tmp_path / "cache")
    cancel = CancelToken()
    received = []

    def on_progress(progress: Progress) -> None:
        if progress.payload is not None:
            received.append(progress.payload)
        if len(received) == 10:
            cancel.cancel()

    with pytest.raises(Cancelled):
        run_job(open_client(web_node(orthanc)).retrieve(LIDC_STUDY, None, cache, cancel), on_progress)
    assert len(received) == 10
    assert cache.entries() == [] and not any((tmp_path / "cache" / ".staging").iterdir())


def test_send_then_query_page_and_retrieve_a_study(fresh_orthanc: OrthancServer, tmp_path: Path) -> None:
    dcmqi = data_path("seg-rtstruct", "dcmqi", "segmentations")
    rt_utils = data_path("seg-rtstruct", "rt-utils", "mock_data")
    files = sorted((dcmqi / "ct-3slice").glob("*.dcm")) + [dcmqi / "liver.dcm"]
    not_dicom = tmp_path / "notes.txt"
    not_dicom.write_text("not an image")
    paths = [files[0], not_dicom, *files[1:], tmp_path / "missing.dcm", rt_utils / "ct_1.dcm", rt_utils / "ct_2.dcm"]
    client = open_client(web_node(fresh_orthanc))

    results = run_job(client.send(paths))
    assert [r.path for r in results] == paths
    assert [r.ok for r in results] == [True, False, True, True, True, False, True, True]
    assert "not a DICOM file" in results[1].message and "cannot read" in results[5].message
    assert len(fresh_orthanc.rest("GET", "/instances")) == 6

    janct = run_job(client.query_studies(QueryFilter(patient_name="JAN*")))
    assert len(janct) == 1 and set(janct[0].modalities) == {"CT", "SEG"} and janct[0].n_instances == 4
    pages = [run_job(client.query_studies(QueryFilter(limit=1, offset=k))) for k in (0, 1, 2)]
    assert [len(page) for page in pages] == [1, 1, 0] and pages[0][0].study_uid != pages[1][0].study_uid
    in_2020 = run_job(client.query_studies(QueryFilter(date_from=dt.date(2020, 1, 1), date_to=dt.date(2020, 12, 31))))
    assert [hit.patient_name for hit in in_2020] == ["PHANTOM_EXAMPLE"]

    series = run_job(client.query_series(janct[0].study_uid))
    assert sorted((s.modality, s.n_instances) for s in series) == [("CT", 3), ("SEG", 1)]
    result = run_job(client.retrieve(janct[0].study_uid, None, RetrieveCache(tmp_path / "cache")))
    assert result.n_instances == 4 and set(result.series_dirs) == {s.series_uid for s in series}
    sources = sources_by_sop(files)
    for folder in result.series_dirs.values():
        for path in folder.iterdir():
            assert path.read_bytes() == sources[path.stem].read_bytes()


def test_wildcards_reach_orthanc_unescaped(fresh_orthanc: OrthancServer) -> None:
    # dicomweb-client alone sends "Doe%2A"; Orthanc 1.10 matches that text literally and finds nothing. It does not
    # decode "%5E" either, and "^" cannot go raw (RFC 3986; urllib3 encodes it): a name with "^" finds nothing there.
    fresh_orthanc.upload([data_path("seg-rtstruct", "highdicom", "seg_image_ct_binary.dcm")])  # Doe^Archibald
    client = open_client(web_node(fresh_orthanc))
    for name, found in (("Doe*", 1), ("Doe*Arch*", 1), ("D?e?Archibald", 1), ("Doe*X*", 0)):
        hits = run_job(client.query_studies(QueryFilter(patient_name=name)))
        assert [hit.patient_name for hit in hits] == ["Doe^Archibald"] * found, name


def test_basic_authentication(tmp_path: Path, lidc_dir: Path) -> None:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with OrthancServer(tmp_path / "orthanc", auth=True) as server:
        good = web_node(server, auth=AuthKind.BASIC, username=USER, secret=PASSWORD)
        assert open_client(good).echo().ok
        assert run_job(open_client(good).query_studies(QueryFilter())) == []
        wrong = web_node(server, auth=AuthKind.BASIC, username=USER, secret="not-the-password")
        with pytest.raises(PacsError, match=r"refused our credentials \(HTTP 401\)") as raised:
            run_job(open_client(wrong).query_studies(QueryFilter(patient_name="SECRET^NAME")))
        assert "not-the-password" not in str(raised.value) and "SECRET" not in str(raised.value)
        assert "needs a login (HTTP 401)" in open_client(web_node(server)).echo().message
