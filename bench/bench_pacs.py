"""PACS speed against a real Orthanc on loopback holding LIDC-IDRI-0001 (133 CT slices, 70 MB).

Ours (``viewer.services.pacs``) beside dicomweb-client doing the same job in the same run, best of 3:
- query: one QIDO-RS study search;
- retrieve: the series over WADO-RS into a folder (ours: streamed into the retrieve cache, the stored bytes as they
  are; dicomweb-client: ``iter_series`` with ``transfer-syntax=*``, each instance parsed and written with
  ``dcmwrite``), with our time to the first instance on disk;
- send: the 133 files over STOW-RS into an emptied Orthanc (ours: the files' bytes in batches; dicomweb-client:
  ``store_instances`` of the datasets read with ``dcmread``).
When the DIMSE client is present, its C-GET of the same series is timed too (against our WADO-RS).
Loopback has no latency or bandwidth limit: these figures are what the client costs, not what a network does.
"""
from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

from bench.common import best_of, warm_cache

LIDC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lidc-idri-0001"


def _ratio(ours: float, reference: float) -> str:
    return f"{reference / ours:.2f}x faster" if ours < reference else f"{ours / reference:.2f}x slower"


def run(workdir: Path) -> list[str]:
    """Start Orthanc, store LIDC, time each operation (ours and the reference); lines to print."""
    from tests.services.orthanc import OrthancServer, missing_reason

    reason = missing_reason() or (None if LIDC.is_dir() else f"{LIDC} is missing")
    if reason:
        return [f"skipped: {reason}"]
    folder = Path(workdir) / "pacs-orthanc"
    shutil.rmtree(folder, ignore_errors=True)
    files = sorted(p for p in LIDC.rglob("*.dcm"))
    warm_cache([str(p) for p in files])
    try:
        with OrthancServer(folder) as server:
            start = time.perf_counter()
            server.upload(files)
            lines = [f"Orthanc {server.url}: LIDC-IDRI-0001 stored through its REST API in "
                     f"{time.perf_counter() - start:.2f} s ({len(files)} files, "
                     f"{sum(p.stat().st_size for p in files) / 1e6:.0f} MB)"]
            lines += _measure(server, files, Path(workdir))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return lines


def _measure(server, files: list[Path], workdir: Path) -> list[str]:
    import pydicom
    from dicomweb_client.api import DICOMwebClient

    from inference.jobs import run_job
    from viewer.services.pacs.cache import RetrieveCache
    from viewer.services.pacs.client import open_client
    from viewer.services.pacs.dicom_json import STUDY_FIELDS
    from viewer.services.pacs.model import QueryFilter, RetrieveProgressPayload
    from viewer.services.pacs.nodes import PacsNode

    node = PacsNode(name="bench", url=server.dicomweb_url, timeout_s=60)
    ours = open_client(node)
    reference = DICOMwebClient(server.dicomweb_url)
    header = pydicom.dcmread(files[0], stop_before_pixels=True)
    study, series = header.StudyInstanceUID, header.SeriesInstanceUID
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

    n_bytes = sum(p.stat().st_size for p in files)
    first: list[float] = []

    def retrieve_ours():
        root = workdir / "pacs-cache"
        shutil.rmtree(root, ignore_errors=True)
        start = time.perf_counter()
        seen = []

        def on_progress(progress):
            if isinstance(progress.payload, RetrieveProgressPayload) and not seen:
                seen.append(time.perf_counter() - start)

        result = run_job(ours.retrieve(study, series, RetrieveCache(root)), on_progress)
        assert result.n_instances == len(files), "our retrieve lost instances"
        first.append(seen[0])
        return result

    def retrieve_reference():
        out = workdir / "pacs-reference"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        count = 0
        for dataset in reference.iter_series(study, series, media_types=(("application/dicom", "*"),)):
            pydicom.dcmwrite(out / f"{dataset.SOPInstanceUID}.dcm", dataset, enforce_file_format=True)
            count += 1
        assert count == len(files), "dicomweb-client lost instances"

    t_ours, _ = best_of(retrieve_ours)
    t_ref, _ = best_of(retrieve_reference)
    lines.append(f"retrieve series (WADO-RS, {len(files)} instances): ours {t_ours:.2f} s "
                 f"({n_bytes / 1e6 / t_ours:.0f} MB/s, first instance on disk after {min(first) * 1000:.0f} ms), "
                 f"dicomweb-client + dcmwrite {t_ref:.2f} s ({_ratio(t_ours, t_ref)})")

    lines += _measure_dimse(server, study, series, len(files), t_ours, workdir)

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
    shutil.rmtree(workdir / "pacs-cache", ignore_errors=True)
    shutil.rmtree(workdir / "pacs-reference", ignore_errors=True)
    return lines


def _measure_dimse(server, study: str, series: str, n_files: int, t_web: float, workdir: Path) -> list[str]:
    """C-GET of the same series through the DIMSE client, when it is present (it comes with issue 15's DIMSE half)."""
    from inference.jobs import run_job
    from viewer.services.pacs.cache import RetrieveCache
    from viewer.services.pacs.client import open_client
    from viewer.services.pacs.nodes import NodeKind, PacsNode

    try:
        import viewer.services.pacs.dimse  # noqa: F401
    except ImportError:
        return ["DIMSE C-GET: not measured (viewer.services.pacs.dimse is not here yet)"]
    from tests.services.orthanc import PACS_AET

    node = PacsNode(name="bench-dimse", kind=NodeKind.DIMSE, aet=PACS_AET, host="127.0.0.1", port=server.dicom_port,
                    timeout_s=60)

    def c_get():
        root = workdir / "pacs-cache-dimse"
        shutil.rmtree(root, ignore_errors=True)
        result = run_job(open_client(node).retrieve(study, series, RetrieveCache(root)))
        assert result.n_instances == n_files, "the C-GET lost instances"

    t_get, _ = best_of(c_get)
    shutil.rmtree(workdir / "pacs-cache-dimse", ignore_errors=True)
    return [f"retrieve series (DIMSE C-GET): ours {t_get:.2f} s ({_ratio(t_get, t_web)} than our WADO-RS)"]
