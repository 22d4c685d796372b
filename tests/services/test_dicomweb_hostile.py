"""The DICOMweb client against a real loopback HTTP server that misbehaves the way broken or hostile PACS do."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydicom
import pytest

from inference.jobs import run_job
from tests.conftest import data_path
from viewer.services.pacs.cache import RetrieveCache
from viewer.services.pacs.dicomweb import DicomwebClient, requote_query
from viewer.services.pacs.model import PacsError, QueryFilter
from viewer.services.pacs.multipart import encode_multipart
from viewer.services.pacs.nodes import AuthKind, PacsNode


class Script:
    """What the server answers: ``series_body`` for WADO-RS, ``qido`` (JSON text) for searches."""

    def __init__(self) -> None:
        self.series_body = b""
        self.content_type = "application/dicom"
        self.qido = "[]"
        self.requests: list[str] = []
        self.authorizations: list[str | None] = []


@pytest.fixture
def hostile() -> Iterator[tuple[Script, str]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            script.requests.append(self.path)
            script.authorizations.append(self.headers.get("Authorization"))
            if "/series/" in self.path:
                body, content_type = script.series_body, script.content_type
            else:
                body, content_type = script.qido.encode(), "application/dicom+json"
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield script, f"http://127.0.0.1:{server.server_address[1]}/dicom-web"
    finally:
        server.shutdown()
        server.server_close()


def ct_files() -> list[Path]:
    return sorted(data_path("seg-rtstruct", "dcmqi", "segmentations", "ct-3slice").glob("*.dcm"))


def uids(path: Path) -> tuple[str, str]:
    header = pydicom.dcmread(path, stop_before_pixels=True)
    return header.StudyInstanceUID, header.SeriesInstanceUID


def test_a_cut_answer_or_foreign_instances_leave_the_cache_empty(hostile, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    script, url = hostile
    files = ct_files()
    study, series = uids(files[0])
    client = DicomwebClient(PacsNode(name="hostile", url=url, timeout_s=5))
    cache = RetrieveCache(tmp_path / "cache")

    body, script.content_type = encode_multipart([path.read_bytes() for path in files])
    script.series_body = body[:-1000]  # the connection ends inside the last instance
    with pytest.raises(PacsError, match="hostile .* sent a broken answer .* ended in the middle of part 3"):
        run_job(client.retrieve(study, series, cache))
    assert cache.entries() == []

    other = data_path("seg-rtstruct", "rt-utils", "mock_data", "ct_1.dcm")  # an instance of another study
    script.series_body, script.content_type = encode_multipart([other.read_bytes(), b"not DICOM at all"])
    with pytest.raises(PacsError, match=r"sent no instance of series .* \(2 unusable parts skipped\)"):
        run_job(client.retrieve(study, series, cache))
    assert cache.entries() == [] and not any((tmp_path / "cache" / ".staging").iterdir())

    script.series_body, script.content_type = encode_multipart([other.read_bytes(), files[0].read_bytes()])
    result = run_job(client.retrieve(study, series, cache))  # the good one is kept, the foreign one skipped
    assert result.n_instances == 1
    assert [p.read_bytes() for p in result.series_dirs[series].iterdir()] == [files[0].read_bytes()]
    assert result.warnings == ("1 parts of the answer skipped (not DICOM, or of another study or series)",)

    script.qido = json.dumps([{"0020000D": {"vr": "UI", "Value": [study]}, "0020000E": {"vr": "UI", "Value": [series]},
                               "00201209": {"vr": "IS", "Value": [3]}}])  # the PACS counts 3, sends 1
    script.series_body, script.content_type = encode_multipart([files[0].read_bytes()])
    result = run_job(client.retrieve(study, series, cache))
    assert result.n_instances == 1
    assert result.warnings == (f"series {series}: 1 of the 3 instances hostile lists arrived",)
    from viewer.cli import main  # the command line prints the warning

    assert main(["pacs", "retrieve", "--url", url, study, "--series", series, "--cache", str(tmp_path / "cli"),
                 "--cache-gb", "1"]) == 0
    assert f"warning: series {series}: 1 of the 3 instances PACS lists arrived" in capsys.readouterr().err
    script.qido = "[]"

    small = DicomwebClient(PacsNode(name="hostile", url=url, timeout_s=5), max_instance_bytes=1000)
    with pytest.raises(PacsError, match="larger than the 1000 bytes allowed"):
        run_job(small.retrieve(study, series, cache))


def test_malformed_search_answers_give_clean_results_or_messages(hostile) -> None:
    script, url = hostile
    client = DicomwebClient(PacsNode(name="hostile", url=url, timeout_s=5, auth=AuthKind.BEARER, secret="t0ken"))
    script.qido = json.dumps([
        {"0020000D": {"vr": "UI", "Value": ["1.2.3"]}, "00100010": {"vr": "PN", "Value": [{"Alphabetic": "A^B"}]},
         "00201208": {"vr": "IS", "Value": ["twelve"]}, "00080061": {"vr": "CS", "Value": [None, "CT", 5]}},
        {"0020000D": {"vr": "UI", "Value": ["../../etc"]}},  # not a UID: dropped
        {"0020000D": "garbage"}, "not a dataset", 7,
    ])
    hits = run_job(client.query_studies(QueryFilter(patient_name="A*", modality="CT")))
    assert [(h.study_uid, h.patient_name, h.n_instances, h.modalities) for h in hits] == [("1.2.3", "A^B", None,
                                                                                          ("CT",))]
    assert "PatientName=A*&" in script.requests[-1]  # the wildcard is sent as is
    run_job(client.query_studies(QueryFilter(patient_name="A^B* C&D=E+F%", study_uid="1.2,1.3")))
    assert "PatientName=A%5EB*%20C%26D%3DE%2BF%25&" in script.requests[-1]  # only what the URL syntax needs
    assert "StudyInstanceUID=1.2,1.3" in script.requests[-1]
    assert script.authorizations == ["Bearer t0ken"] * 2
    script.qido = "{not json"
    with pytest.raises(PacsError, match="hostile .* could not search studies: JSONDecodeError"):
        run_job(client.query_studies(QueryFilter()))


def test_requote_query_keeps_only_the_escapes_a_url_needs() -> None:
    url = "http://h:1/dicom-web/studies?PatientName=DOE%5EJ%2A+X%3F&includefield=00080020&limit=5"
    assert requote_query(url) == ("http://h:1/dicom-web/studies?PatientName=DOE%5EJ*%20X?&includefield=00080020"
                                  "&limit=5")
    assert requote_query("http://h/studies/1.2/series") == "http://h/studies/1.2/series"
