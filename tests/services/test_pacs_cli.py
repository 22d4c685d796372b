"""``hounsfield pacs`` against a real Orthanc: the same clients as the GUI, driven from the command line."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import data_path
from tests.services.orthanc import PASSWORD, USER, OrthancServer, missing_reason
from tests.services.test_dicomweb import LIDC_SERIES, LIDC_STUDY
from viewer.cli import main
from viewer.cli_pacs import SECRET_ENV
from viewer.services.pacs.nodes import AuthKind, PacsNode


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings and the default cache in a folder of the test's own; no secret in the environment."""
    monkeypatch.setenv("HOUNSFIELD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(SECRET_ENV, raising=False)
    return tmp_path / "home"


def test_echo_query_series_and_retrieve(orthanc: OrthancServer, home: Path, capsys: pytest.CaptureFixture) -> None:
    url = ["--url", orthanc.dicomweb_url]
    assert main(["pacs", "echo", *url]) == 0
    assert "PACS (DICOMweb" in capsys.readouterr().out

    assert main(["pacs", "query", *url, "--patient-id", "LIDC-IDRI-0001", "--date", "19991231-", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [(h["study_uid"], h["n_instances"]) for h in hits] == [(LIDC_STUDY, 133)]
    assert main(["pacs", "query", *url, "--date", "-19991231"]) == 0
    assert capsys.readouterr().err.strip() == "0 studies"

    assert main(["pacs", "series", *url, LIDC_STUDY]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^# *\d+ CT +133 instances .*\({LIDC_SERIES}\)$", out, re.MULTILINE), out

    assert main(["pacs", "retrieve", *url, LIDC_STUDY, "--series", LIDC_SERIES, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    folder = Path(answer["series"][LIDC_SERIES])
    assert folder.parent.parent == home / "cache" / "pacs"  # the default cache, as the GUI's
    assert answer["instances"] == 133 and len(list(folder.iterdir())) == 133 and answer["warnings"] == []


def test_configured_nodes_secrets_and_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    from viewer.qt.settings import Settings

    with OrthancServer(tmp_path / "orthanc", auth=True) as server:
        settings = Settings()
        settings.set_pacs_nodes([PacsNode(name="main", url=server.dicomweb_url, auth=AuthKind.BASIC, username=USER,
                                          secret=PASSWORD)])
        settings.sync()
        assert main(["pacs", "nodes", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [n["name"] for n in listed] == ["main"] and "secret" not in listed[0]
        assert main(["pacs", "echo", "--node", "main", "--timeout", "5"]) == 0

        basic = ["pacs", "query", "--url", server.dicomweb_url, "--user", USER]
        assert main(basic) == 1  # tests have no terminal: no prompt
        assert f"password of {USER} needed: set ${SECRET_ENV}" in capsys.readouterr().err
        monkeypatch.setenv(SECRET_ENV, "wrong-password")
        assert main(basic) == 1
        err = capsys.readouterr().err
        assert "refused our credentials (HTTP 401)" in err and "wrong-password" not in err
        monkeypatch.setenv(SECRET_ENV, PASSWORD)
        assert main(basic) == 0

    for argv, message in (
        (["pacs", "echo"], "name the node: --node NAME"),
        (["pacs", "echo", "--node", "main", "--url", "http://x/"], "--node and --url cannot be combined"),
        (["pacs", "echo", "--node", "other"], "no PACS node named 'other' (known: main)"),
        (["pacs", "echo", "--url", "ftp://x"], "invalid node: url: an http(s) URL"),
        (["pacs", "echo", "--url", "http://me:hunter2@127.0.0.1:1/"], "put no user name or password in the URL"),
        (["pacs", "echo", "--aet", "ORTHANC", "--host", "127.0.0.1"], "invalid node: port: 1-65535"),
        (["pacs", "retrieve", "--url", "http://127.0.0.1:1/", "1.2.3", "--cache-gb", "0"], "--cache-gb must be"),
    ):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert message in err and "hunter2" not in err, argv
    with pytest.raises(SystemExit):
        main(["pacs", "query", "--url", "http://127.0.0.1:1/", "--date", "2020-01-01"])
    assert "is not YYYYMMDD" in capsys.readouterr().err


def test_send_a_folder(fresh_orthanc: OrthancServer, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "to-send"
    folder.mkdir()
    for path in sorted(data_path("seg-rtstruct", "dcmqi", "segmentations", "ct-3slice").glob("*.dcm")):
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "README").write_text("not DICOM")
    assert main(["pacs", "send", "--url", fresh_orthanc.dicomweb_url, str(folder)]) == 1  # one file failed
    out, err = capsys.readouterr()
    assert "3 of 4 files stored" in out and "README: not a DICOM file" in err
    assert len(fresh_orthanc.rest("GET", "/instances")) == 3
