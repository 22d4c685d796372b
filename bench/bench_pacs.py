"""PACS speed against a real Orthanc on loopback holding LIDC-IDRI-0001 (133 CT slices, 70 MB).

Retrieve: the series by each route into the retrieve cache - WADO-RS (DICOMweb), C-GET and C-MOVE (DIMSE) - beside
the physical limit here, a plain HTTP download of the same bytes: the series' WADO-RS ``multipart/related`` body
fetched with urllib and read into memory in 1 MiB pieces, nothing parsed or written (urllib's ``read()`` to the end,
which reads 8 KiB at a time when the server sends no length, as Orthanc does, is 1.5-2x slower and would flatter the
routes). Target: each route <= 1.5x the reference. The same download written to one file beside the cache is
printed too, with each route's ratio to it: a retrieve into a cache cannot skip the disk. Also printed: Orthanc's
own REST download of each instance file, one request each; the same files written into the cache from memory, with
no network (the floor the disk sets under any retrieve); dicomweb-client's ``iter_series`` + ``dcmwrite``; and
for DIMSE two references of its own: the PACS's pace - a C-MOVE to a storage SCP that answers each C-STORE at once
and writes nothing, the floor of any DIMSE retrieve from it, since the PACS sends the next instance only once the
previous one is answered - and dcmtk's ``getscu`` (C++) doing our C-GET into files, when it is installed. Orthanc
runs with TCP_NODELAY=1 in its environment, the DICOM counterpart of the "TcpNoDelay" its HTTP server has by default
(tests/services/orthanc.py). Every figure is the median of 5 rounds,
the reference and the routes interleaved within each round (two shared cores make single runs noisy); the previous
run's files are removed before each timed run, outside the timing, so that the page cache's writeback of earlier
runs does not throttle this one.

Query (QIDO-RS) and send (STOW-RS into an emptied Orthanc) are timed beside dicomweb-client doing the same job.
Loopback has no latency or bandwidth limit: these figures are what the client costs, not what a network does.
"""
from __future__ import annotations

import shutil
import statistics
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench.common import best_of, warm_cache

LIDC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lidc-idri-0001"
ROUNDS = 5
TARGET = 1.5
ANY_SYNTAX = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def _ratio(ours: float, reference: float) -> str:
    return f"{reference / ours:.2f}x faster" if ours < reference else f"{ours / reference:.2f}x slower"


def run(workdir: Path) -> list[str]:
    """Start Orthanc, store LIDC, time each operation beside its reference; lines to print."""
    from tests.services.orthanc import OrthancServer, free_port, missing_reason

    reason = missing_reason() or (None if LIDC.is_dir() else f"{LIDC} is missing")
    if reason:
        return [f"skipped: {reason}"]
    folder = Path(workdir) / "pacs-orthanc"
    shutil.rmtree(folder, ignore_errors=True)
    files = sorted(p for p in LIDC.rglob("*.dcm"))
    warm_cache([str(p) for p in files])
    storage_port = free_port()  # where our storage SCP listens during a C-MOVE (Orthanc knows it as HOUNSFIELD)
    try:
        with OrthancServer(folder, modalities={"HOUNSFIELD": ("127.0.0.1", storage_port)}) as server:
            start = time.perf_counter()
            orthanc_ids = server.upload(files)
            lines = [f"Orthanc {server.url}: LIDC-IDRI-0001 stored through its REST API in "
                     f"{time.perf_counter() - start:.2f} s ({len(files)} files, "
                     f"{sum(p.stat().st_size for p in files) / 1e6:.0f} MB)"]
            lines += _measure(server, files, orthanc_ids, storage_port, Path(workdir))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        for name in ("pacs-cache", "pacs-reference"):
            shutil.rmtree(Path(workdir) / name, ignore_errors=True)
    return lines


def _measure(server, files: list[Path], orthanc_ids: list[str], storage_port: int, workdir: Path) -> list[str]:
    import pydicom
    from dicomweb_client.api import DICOMwebClient

    from inference.jobs import run_job
    from viewer.services.pacs.client import open_client
    from viewer.services.pacs.dicom_json import STUDY_FIELDS
    from viewer.services.pacs.model import QueryFilter
    from viewer.services.pacs.nodes import PacsNode

    node = PacsNode(name="bench", url=server.dicomweb_url, timeout_s=60)
    ours = open_client(node)
    reference = DICOMwebClient(server.dicomweb_url)
    header = pydicom.dcmread(files[0], stop_before_pixels=True)
    study, series = header.StudyInstanceUID, header.SeriesInstanceUID
    n_bytes = sum(p.stat().st_size for p in files)
    lines = []

    echoes = [ours.echo().seconds for _ in range(20)]
    lines.append(f"echo (QIDO-RS, limit 1): median {statistics.median(echoes) * 1000:.1f} ms of 20")

    query = QueryFilter(patient_id=header.PatientID, modality="CT")
    t_ours, hits = best_of(lambda: run_job(ours.query_studies(query)), 5)
    t_ref, found = best_of(lambda: reference.search_for_studies(  # the same fields as ours
        search_filters={"PatientID": header.PatientID, "ModalitiesInStudy": "CT"}, fields=list(STUDY_FIELDS)), 5)
    assert len(hits) == len(found) == 1, "the query found the wrong studies"
    lines.append(f"query studies: ours {t_ours * 1000:.1f} ms, dicomweb-client {t_ref * 1000:.1f} ms "
                 f"({_ratio(t_ours, t_ref)})")

    lines += _measure_retrieve(server, study, series, files, orthanc_ids, storage_port, workdir)

    def empty_pacs():
        for orthanc_id in server.rest("GET", "/studies"):
            server.rest("DELETE", f"/studies/{orthanc_id}")

    def send_ours():
        empty_pacs()
        results = run_job(ours.send(files))
        assert all(r.ok for r in results), "our send failed"

    def send_reference():
        empty_pacs()
        reference.store_instances([pydicom.dcmread(p) for p in files])

    t_ours, _ = best_of(send_ours)
    t_ref, _ = best_of(send_reference)
    assert len(server.rest("GET", "/instances")) == len(files)
    lines.append(f"send (STOW-RS, {len(files)} files): ours {t_ours:.2f} s ({n_bytes / 1e6 / t_ours:.0f} MB/s), "
                 f"dicomweb-client dcmread + store_instances {t_ref:.2f} s ({_ratio(t_ours, t_ref)}); "
                 "each run into an emptied Orthanc")
    return lines


def _measure_retrieve(server, study: str, series: str, files: list[Path], orthanc_ids: list[str],
                      storage_port: int, workdir: Path) -> list[str]:
    """The reference, the REST download and each route, interleaved over :data:`ROUNDS` rounds; medians."""
    import pydicom
    from dicomweb_client.api import DICOMwebClient

    from inference.jobs import run_job
    from viewer.services.pacs.cache import RetrieveCache
    from viewer.services.pacs.client import open_client
    from viewer.services.pacs.model import RetrieveProgressPayload
    from viewer.services.pacs.nodes import NodeKind, PacsNode, RetrieveRoute

    n_files, n_bytes = len(files), sum(p.stat().st_size for p in files)
    series_url = f"{server.dicomweb_url}/studies/{study}/series/{series}"
    cache_root, reference_out = workdir / "pacs-cache", workdir / "pacs-reference"

    def plain_download() -> None:
        request = urllib.request.Request(series_url, headers={"Accept": ANY_SYNTAX})
        pieces = []
        with urllib.request.urlopen(request, timeout=60) as response:
            while piece := response.read(1 << 20):
                pieces.append(piece)
        assert sum(map(len, pieces)) > n_bytes, "the plain download is short"

    def download_to_file() -> None:  # the same body, kept: what any retrieve into a cache must at least do
        reference_out.mkdir()
        request = urllib.request.Request(series_url, headers={"Accept": ANY_SYNTAX})
        with urllib.request.urlopen(request, timeout=60) as response, open(reference_out / "body", "wb") as out:
            while piece := response.read(1 << 20):
                out.write(piece)

    contents = [(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID, p.read_bytes()) for p in files]

    def cache_write() -> None:  # the same files written into the cache from memory: no network, no parsing
        with RetrieveCache(cache_root).staging() as staging:
            for sop_uid, data in contents:
                staging.add_bytes(study, series, sop_uid, data)
            staging.commit()

    def rest_download() -> None:
        got = 0
        for orthanc_id in orthanc_ids:
            with urllib.request.urlopen(f"{server.url}/instances/{orthanc_id}/file", timeout=60) as response:
                got += len(response.read())
        assert got == n_bytes, "the REST download is short"

    first: list[float] = []

    def retrieve_by(node: PacsNode) -> Callable[[], None]:
        client = open_client(node)

        def retrieve() -> None:
            start = time.perf_counter()
            seen: list[float] = []

            def on_progress(progress) -> None:
                if isinstance(progress.payload, RetrieveProgressPayload) and not seen:
                    seen.append(time.perf_counter() - start)

            result = run_job(client.retrieve(study, series, RetrieveCache(cache_root)), on_progress)
            assert result.n_instances == n_files, f"{node.name} lost instances"
            if node.kind is NodeKind.DICOMWEB:
                first.append(seen[0])

        return retrieve

    web = DICOMwebClient(server.dicomweb_url)

    def dicomweb_client_retrieve() -> None:
        reference_out.mkdir()
        count = 0
        for dataset in web.iter_series(study, series, media_types=(("application/dicom", "*"),)):
            pydicom.dcmwrite(reference_out / f"{dataset.SOPInstanceUID}.dcm", dataset, enforce_file_format=True)
            count += 1
        assert count == n_files, "dicomweb-client lost instances"

    routes: dict[str, Callable[[], None]] = {
        "reference": plain_download,
        "to-file": download_to_file,
        "rest": rest_download,
        "cache-write": cache_write,
        "WADO-RS": retrieve_by(PacsNode(name="bench", url=server.dicomweb_url, timeout_s=60)),
    }
    try:
        import viewer.services.pacs.dimse  # noqa: F401
        from tests.services.orthanc import PACS_AET

        dimse = {"kind": NodeKind.DIMSE, "aet": PACS_AET, "host": "127.0.0.1", "port": server.dicom_port,
                 "our_aet": "HOUNSFIELD", "timeout_s": 60}
        routes["C-GET"] = retrieve_by(PacsNode(name="bench C-GET", **dimse))  # type: ignore[arg-type]
        routes["C-MOVE"] = retrieve_by(PacsNode(name="bench C-MOVE", retrieve_route=RetrieveRoute.C_MOVE,
                                                storage_port=storage_port, **dimse))  # type: ignore[arg-type]
        routes["push"] = _orthanc_push(PacsNode(name="bench push", **dimse), study, series,  # type: ignore[arg-type]
                                       storage_port, n_files, cache_root)
        if shutil.which("getscu"):
            routes["getscu"] = _getscu(server.dicom_port, series, n_files, reference_out)
        dimse_missing = ""
    except ImportError:
        dimse_missing = "viewer.services.pacs.dimse is not here"
    routes["dicomweb-client"] = dicomweb_client_retrieve

    times: dict[str, list[float]] = {name: [] for name in routes}
    for fn in routes.values():  # one warm-up each: connections, imports, Orthanc's caches
        _clean(cache_root, reference_out)
        fn()
    for _ in range(ROUNDS):
        for name, fn in routes.items():
            _clean(cache_root, reference_out)
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    _clean(cache_root, reference_out)
    median = {name: statistics.median(values) for name, values in times.items()}
    ref = median["reference"]

    def line(name: str, what: str) -> str:
        seconds = median[name]
        verdict = f"{seconds / ref:.2f}x the reference" + (
            f" ({'within' if seconds / ref <= TARGET else 'over'} the {TARGET:g}x target;"
            f" {seconds / median['to-file']:.2f}x the download to a file)" if name in ("WADO-RS", "C-GET", "C-MOVE")
            else "")
        spread = f"{min(times[name]):.3f}-{max(times[name]):.3f}"
        return f"  {what}: {seconds:.3f} s ({spread}; {n_bytes / 1e6 / seconds:.0f} MB/s), {verdict}"

    lines = [f"retrieve series ({n_files} instances, {n_bytes / 1e6:.0f} MB; median of {ROUNDS}, min-max):",
             line("reference", "reference: plain HTTP download of the WADO-RS body into memory (urllib)"),
             line("to-file", "the same download written to one file in the cache's folder"),
             line("rest", "Orthanc REST download of each instance file, one request each (urllib, in memory)"),
             line("cache-write", f"the {n_files} files written into the cache from memory, no network (the disk)"),
             line("WADO-RS", "ours, WADO-RS into the cache")
             + f"; first instance on disk after {statistics.median(first) * 1000:.0f} ms"]
    if dimse_missing:
        lines.append(f"  ours, C-GET and C-MOVE: not measured ({dimse_missing})")
    else:
        lines += [line("C-GET", "ours, DIMSE C-GET into the cache"),
                  line("C-MOVE", "ours, DIMSE C-MOVE into the cache (our storage SCP)"),
                  line("push", "the PACS's own pace: C-MOVE to a storage SCP that writes nothing (our lane)")]
        if "getscu" in times:
            lines.append(line("getscu", "dcmtk getscu (C++), the same C-GET into files (TCP_NODELAY=1)"))
    lines.append(line("dicomweb-client", "dicomweb-client iter_series (parses each instance) + dcmwrite"))
    return lines


def _orthanc_push(node, study: str, series: str, storage_port: int, n_files: int,
                 cache_root: Path) -> Callable[[], None]:
    """A C-MOVE of the series to a storage SCP that answers every C-STORE at once and writes nothing: how fast
    the PACS sends, one sub-operation at a time - the floor of any DIMSE retrieve from it."""
    from pydicom import Dataset
    from pynetdicom import build_context

    from viewer.services.pacs.dimse import MOVE
    from viewer.services.pacs.dimse_assoc import associate, finish
    from viewer.services.pacs.dimse_lane import Lane
    from viewer.services.pacs.dimse_storage import Receiver, StorageServer

    class Discard:
        def write(self, data: object) -> None:
            pass

        def finish(self) -> int:
            return 0

        def discard(self) -> None:
            pass

    class Counting(Receiver):
        def begin(self, sop_class: str, sop_uid: str, syntax: str) -> Discard:  # type: ignore[override]
            self.received[sop_uid] = series
            return Discard()

        def prepare(self) -> None:
            pass

    from viewer.services.pacs.cache import RetrieveCache

    keys = Dataset()
    keys.QueryRetrieveLevel, keys.StudyInstanceUID, keys.SeriesInstanceUID = "SERIES", study, series

    def push() -> None:
        with RetrieveCache(cache_root).staging() as staging:
            receiver = Counting(staging, study, n_files)
            with StorageServer(node.our_aet, "127.0.0.1", storage_port, ["1.2.840.10008.5.1.4.1.1.2"], receiver,
                               node.timeout_s):
                assoc = associate(node, [build_context(MOVE)])
                final = [status for status, _ in Lane(assoc, None, node.timeout_s).retrieve(keys, MOVE, node.our_aet)]
                finish(assoc, True)
            assert final[-1] is not None and final[-1].Status == 0 and len(receiver.received) == n_files, "push failed"

    return push


def _getscu(port: int, series: str, n_files: int, out: Path) -> Callable[[], None]:
    """dcmtk's getscu (C++) retrieving the series into files; TCP_NODELAY=1 turns its Nagle off (see orthanc.py)."""
    import os
    import subprocess

    def getscu() -> None:
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(["getscu", "-aet", "HOUNSFIELD", "-aec", "ORTHANC", "-S", "-k", "QueryRetrieveLevel=SERIES",
                        "-k", f"SeriesInstanceUID={series}", "-od", str(out), "127.0.0.1", str(port)],
                       check=True, capture_output=True, env={**os.environ, "TCP_NODELAY": "1"}, timeout=120)
        assert len(list(out.iterdir())) == n_files, "getscu lost instances"

    return getscu


def _clean(*folders: Path) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
