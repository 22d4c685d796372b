"""A real Orthanc PACS for the tests: Debian's ``orthanc`` + ``orthanc-dicomweb``, on free loopback ports.

``OrthancServer`` writes a temporary configuration, starts ``Orthanc``, waits until its REST API answers, uploads
DICOM files through that API and stops the server. Only 127.0.0.1 is contacted. Tests skip with the reason when the
packages are missing (``.ci/run`` installs them).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))
PACS_AET = "ORTHANC"
USER, PASSWORD = "reader", "s3cret-pw"
#: Orthanc's DICOM side is DCMTK, which leaves Nagle's algorithm on unless TCP_NODELAY=1 is in its environment (its
#: HTTP server has "TcpNoDelay": true by default). With Nagle on, the last short segment of each C-STORE / C-FIND
#: message waits for the receiver's delayed ACK: dcmtk's own getscu takes 6 s for LIDC's 133 slices, 0.16 s with
#: both ends at TCP_NODELAY=1. The tests and the bench run the PACS as a tuned site would.
ORTHANC_ENV = {"TCP_NODELAY": "1"}


def missing_reason() -> str | None:
    """Why an Orthanc with DICOMweb cannot be started here, or None when it can."""
    if not Path(ORTHANC).exists():
        return "Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)"
    if dicomweb_plugin() is None:
        return "the Orthanc DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)"
    return None


def dicomweb_plugin() -> Path | None:
    for folder in DICOMWEB_PLUGIN_DIRS:
        for path in sorted(folder.glob("libOrthancDicomWeb.so*")):
            return path
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OrthancServer:
    """One Orthanc process with its own storage folder.

    ``modalities`` maps AE titles Orthanc may C-MOVE to / accept from to ``(host, port)``; ``auth`` turns on HTTP
    basic authentication with :data:`USER` / :data:`PASSWORD`.
    """

    def __init__(self, folder: Path, modalities: dict[str, tuple[str, int]] | None = None, auth: bool = False):
        self.folder = folder
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.auth = auth
        self.modalities = modalities or {}
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def config(self) -> dict:
        storage = self.folder / "db"
        return {
            "Name": "HounsfieldTestPACS",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": PACS_AET,
            "DicomCheckCalledAet": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": self.auth,
            "RegisteredUsers": {USER: PASSWORD} if self.auth else {},
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True,
            "UnknownSopClassAccepted": True,
            "DicomModalities": {aet: [aet, host, port] for aet, (host, port) in self.modalities.items()},
            "Plugins": [str(dicomweb_plugin())],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "StudiesMetadata": "Full",
                         "SeriesMetadata": "Full"},
            "StableAge": 1,
            "ConcurrentJobs": 2,
            "HttpTimeout": 30,
            "LimitFindResults": 0,
            "LimitFindInstances": 0,
            "SaveJobs": False,
        }

    def start(self, timeout_s: float = 30.0, attempts: int = 3) -> OrthancServer:
        """Start the server and wait until its REST API answers.

        A free port can be taken by another process between :func:`free_port` and Orthanc binding it (tests and
        helpers run side by side): when Orthanc exits at start, it is tried again on new ports."""
        for attempt in range(attempts):
            try:
                return self._start_once(timeout_s)
            except _EarlyExit:
                if attempt == attempts - 1:
                    raise
                self.http_port, self.dicom_port = free_port(), free_port()
        raise AssertionError("unreachable")

    def _start_once(self, timeout_s: float) -> OrthancServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "orthanc.json"
        config.write_text(json.dumps(self.config(), indent=1))
        log = open(self.folder / "orthanc.log", "wb")  # noqa: SIM115 - kept open for the process's life
        self.process = subprocess.Popen([ORTHANC, str(config)], stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **ORTHANC_ENV})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                message = (f"Orthanc exited with {self.process.returncode}: "
                           + (self.folder / "orthanc.log").read_text(errors="replace")[-2000:])
                self.process = None
                raise _EarlyExit(message)
            try:
                self.rest("GET", "/system")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout_s} s")

    def stop(self, kill: bool = False) -> None:
        """Stop the server: terminate, then kill after 10 s; ``kill`` kills at once (a throwaway storage folder:
        Orthanc's orderly stop polls its HTTP and DICOM servers for about 3.5 s)."""
        if self.process is None:
            return
        if kill:
            self.process.kill()
            self.process.wait()
            self.process = None
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def rest(self, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/json") -> object:
        """One call to Orthanc's REST API; JSON answers are decoded."""
        request = urllib.request.Request(self.url + path, data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", content_type)
        if self.auth:
            token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=30) as response:
            data = response.read()
        try:
            return json.loads(data) if data else None
        except ValueError:
            return data

    def upload(self, paths: list[Path]) -> list[str]:
        """Store DICOM files (POST /instances); returns Orthanc's instance ids."""
        ids = []
        for path in paths:
            answer = self.rest("POST", "/instances", path.read_bytes(), "application/dicom")
            assert isinstance(answer, dict), answer
            ids.append(answer["ID"])
        return ids

    def upload_folder(self, folder: Path) -> list[str]:
        """Store every DICOM file below ``folder`` (files that Orthanc refuses raise)."""
        return self.upload(sorted(p for p in folder.rglob("*") if p.is_file() and _looks_dicom(p)))

    def __enter__(self) -> OrthancServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(kill=True)  # the tests' servers keep nothing worth an orderly shutdown


class _EarlyExit(RuntimeError):
    """Orthanc stopped while starting (most often: a port was taken meanwhile)."""


def _looks_dicom(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(132)[128:132] == b"DICM"
