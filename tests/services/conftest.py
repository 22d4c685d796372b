"""Fixtures for the PACS tests: a real Orthanc on loopback ports, with LIDC-IDRI-0001 stored in it."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import data_path
from tests.services.orthanc import OrthancServer, free_port, missing_reason


@pytest.fixture(scope="session")
def our_storage_port() -> int:
    """The port our storage SCP listens on during a C-MOVE (Orthanc knows it as AE ``HOUNSFIELD``)."""
    return free_port()


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory, our_storage_port: int) -> Iterator[OrthancServer]:
    """One Orthanc for the session holding LIDC-IDRI-0001 (133 CT slices); tests must not delete from it."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    lidc: Path = data_path("lidc-idri-0001")
    server = OrthancServer(tmp_path_factory.mktemp("orthanc"),
                           modalities={"HOUNSFIELD": ("127.0.0.1", our_storage_port)})
    with server:
        server.upload_folder(lidc)
        yield server


@pytest.fixture
def fresh_orthanc(tmp_path: Path, our_storage_port: int) -> Iterator[OrthancServer]:
    """An empty Orthanc of its own, for tests that store into the PACS."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with OrthancServer(tmp_path / "orthanc", modalities={"HOUNSFIELD": ("127.0.0.1", our_storage_port)}) as server:
        yield server


@pytest.fixture(params=[True, False], ids=["lane", "pynetdicom"])
def lane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both receive paths of a DIMSE retrieve: the lean lane, and pynetdicom's own (its fallback)."""
    from viewer.services.pacs import dimse_lane

    monkeypatch.setattr(dimse_lane, "ENABLED", request.param)
    return bool(request.param)
