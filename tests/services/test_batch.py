"""``hounsfield batch`` on a local Ray runtime with 2 workers over six small phantom studies.

One runtime for the module (it takes seconds to start). What is proven: the runtime listens on loopback only;
two workers give exactly the outputs of a single-process ``hounsfield infer`` (same findings, SEG voxels
identical); a series that cannot be loaded, one whose worker dies (retried, then failed with the reason) and one
the models are not made for do not stop the others, and leave nothing in the sink; ``--watch`` picks up a study
that arrives; ``evaluate`` fans out to the same runtime with the same figures. The manifest and the sink's
write-then-rename have their own quick tests without Ray. The resume after a killed driver is in
tests/test_cli_batch.py (it needs a driver process to kill).
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SMALL_GRID
from viewer.services.batch.manifest import DONE, FAILED, QUEUED, SKIPPED, Manifest
from viewer.services.batch.sinks import STAGING, FolderSink
from viewer.services.batch.sources import SeriesItem
from viewer.services.batch.worker import ModelWorker

SEG = "hounsfield-chest-ct-segmentation"
DET = "hounsfield-chest-ct-nodule-detection"


# ---- without Ray --------------------------------------------------------------------------------------------------

def _item(key: str) -> SeriesItem:
    return SeriesItem(key, key, "1.2.3", "/data")


def test_manifest_resumes_what_is_unfinished(tmp_path):
    models = [{"id": SEG, "hash": "abc"}]
    with Manifest(tmp_path / "m.sqlite") as manifest:
        run = manifest.start_run("job", models)
        assert manifest.enqueue([_item("a"), _item("b"), _item("c")], "job", models) == ["a", "b", "c"]
        manifest.mark_running("a", "job", run)
        manifest.mark_done("a", "job", timings={"load": 0.1, "total": 1.0}, outputs={"x": "/y"})
        manifest.mark_running("b", "job", run)
        manifest.mark_failed("b", "job", "ValueError: broken")
        manifest.mark_running("c", "job", run)  # ... and the driver is killed
    with Manifest(tmp_path / "m.sqlite") as manifest:
        manifest.start_run("job", models)
        # the killed run's hand-off does not count against the retry bound
        assert manifest.attempts("c", "job") == 0 and manifest.counts("job")[QUEUED] == 1
        assert manifest.enqueue([_item("a"), _item("b"), _item("c")], "job", models) == ["b", "c"]
        assert manifest.enqueue([_item("a")], "other-job", models) == ["a"]  # other models: another row
        rows = {r.series_key: r for r in manifest.rows("job")}
        assert rows["a"].state == DONE and rows["a"].outputs == {"x": "/y"} and rows["a"].total_s == 1.0
        assert rows["b"].state == QUEUED and rows["b"].error == ""
        manifest.mark_done("c", "job", state=SKIPPED, error="not a chest")
        assert manifest.enqueue([_item("c")], "job", models) == []  # skipped stays skipped ...
        assert manifest.unfinished([_item("a"), _item("c")], "job", retry_skipped=True) == ["c"]
        assert manifest.enqueue([_item("c")], "job", models, retry_skipped=True) == ["c"]  # ... unless --force


def test_sink_writes_a_series_whole_and_cleans_a_killed_runs_leftovers(tmp_path):
    sink = FolderSink(tmp_path / "out")
    sink.open()
    item = SeriesItem("1.2.9", "1.2.9", "1.2.3", "/data")
    written = sink.write(item, {"m/seg.dcm": b"seg", "m/findings.json": b"{}"}, {"models": []})
    folder = sink.series_dir(item)
    assert folder == tmp_path / "out" / "1.2.3" / "1.2.9" and Path(written["m/seg.dcm"]).read_bytes() == b"seg"
    assert json.loads((folder / "batch.json").read_text())["outputs"] == ["m/findings.json", "m/seg.dcm"]
    sink.write(item, {"n/seg.dcm": b"new"}, {"models": []})  # a re-run replaces the folder as a whole
    assert not (folder / "m").exists() and (folder / "n" / "seg.dcm").read_bytes() == b"new"
    with pytest.raises(ValueError, match="outside"):
        sink.write(item, {"../../evil": b"x"}, {})
    assert (folder / "n" / "seg.dcm").exists()  # the refused write changed nothing
    (tmp_path / "out" / STAGING / "series-half").mkdir()
    sink.open()
    assert list((tmp_path / "out" / STAGING).iterdir()) == []


def test_the_live_line_in_a_log_changes_only_with_the_counts():
    from viewer.services.batch.progress import LiveLine, Tally

    tally, lines = Tally(), []
    live = LiveLine(lines.append, terminal=False)
    tally.move(None, QUEUED)
    tally.move(None, QUEUED)
    live.update(tally)
    live.update(tally)  # nothing changed: nothing written
    tally.move(QUEUED, "running")
    tally.move("running", DONE)
    live.update(tally)
    assert len(lines) == 2 and lines[1].startswith("queued 1 | running 0 | done 1 | failed 0 | skipped 0 | ")
    assert lines[1].endswith(" series/min\n") and tally.per_minute() > 0


# ---- on a local Ray runtime ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_runtime():
    """A local Ray runtime with 2 CPUs for the module, shut down at its end."""
    pytest.importorskip("ray")
    import ray

    from viewer.services.batch.executors import start_local_ray

    start_local_ray(num_cpus=2)
    yield ray
    ray.shutdown()


def _run(sources, out: Path, models=(SEG, DET), worker_class: type = ModelWorker, **options) -> dict:
    """``hounsfield batch`` in this process, with 2 workers unless told otherwise."""
    from viewer.services.batch.run import BatchOptions, run_batch

    options.setdefault("workers", 2)
    return run_batch(BatchOptions(models=list(models), sources=[str(s) for s in sources], sink=str(out), **options),
                     worker_class=worker_class)


def _volume(study: Path):
    from viewer.core.evaluation import load_largest_series

    return load_largest_series(study / "dicom")


def test_the_local_runtime_listens_on_loopback_only(ray_runtime):
    import psutil

    ours = {p.pid for p in psutil.Process().children(recursive=True)} | {os.getpid()}
    listening = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in ours]
    assert listening, "the Ray processes should be listening somewhere"
    outward = [(c.laddr.ip, c.laddr.port) for c in listening
               if c.laddr.ip not in ("127.0.0.1", "::1", "::ffff:127.0.0.1")]
    assert outward == []


@pytest.fixture(scope="module")
def single_process(small_studies, tmp_path_factory):
    """What ``hounsfield infer`` writes for each study and model, one process, one torch thread (as each batch
    worker): ``{series_uid: {model: outputs}}``."""
    from viewer.core.dicom.scan import scan
    from viewer.core.run_model import infer_to_dir, pick_series

    out = tmp_path_factory.mktemp("single-process")
    reference = {}
    for study in small_studies:
        series = pick_series(scan([study / "dicom"]))
        reference[series.uid] = {model: infer_to_dir(series, model, out / study.name / model, device="cpu",
                                                     threads=1)["outputs"] for model in (SEG, DET)}
    return reference


def test_two_workers_write_what_a_single_process_writes(ray_runtime, small_studies, single_process, tmp_path):
    from viewer.core.export.seg import read_seg_labels

    summary = _run(small_studies, tmp_path / "out")
    assert summary["manifest"][DONE] == 6 and summary["run"]["workers"] == 2, summary
    with Manifest(summary["manifest_path"]) as manifest:
        rows = manifest.rows(summary["job"])
    assert len({r.worker for r in rows}) == 2  # both workers took series
    assert all(r.device == "cpu" and r.total_s > 0 and r.infer_s > 0 for r in rows)
    assert {m["id"]: len(m["hash"]) for m in rows[0].models} == {SEG: 16, DET: 16}
    for study in small_studies:
        volume = _volume(study)
        folder = tmp_path / "out" / volume.study_uid / volume.series_uid
        record = json.loads((folder / "batch.json").read_text())
        assert [m["id"] for m in record["models"]] == [SEG, DET] and record["created"]
        assert (folder / DET / "findings.sr.dcm").is_file()
        expected = single_process[volume.series_uid]
        got = json.loads((folder / DET / "findings.json").read_text())
        assert got == json.loads(Path(expected[DET]["detection"]).read_text())
        assert got["findings"], "the detector should find something, or the comparison means little"
        ours, _ = read_seg_labels(folder / SEG / "seg.dcm", volume.slice_sop_uids, volume.shape)
        theirs, _ = read_seg_labels(expected[SEG]["segmentation"], volume.slice_sop_uids, volume.shape)
        assert ours.any() and np.array_equal(ours, theirs)
    assert list((tmp_path / "out" / STAGING).iterdir()) == []
    again = _run(small_studies, tmp_path / "out")  # the same command again: nothing left to do
    assert again["run"]["finished"] == 0 and again["manifest"][DONE] == 6


class CrashingWorker(ModelWorker):
    """Dies (as a segfault or the OOM killer would end it) on the study of seed 9."""

    def process(self, loaded):
        if "(seed 9)" in loaded.volume.description:
            os._exit(3)
        return super().process(loaded)


def _broken_copy(study: Path, target: Path) -> Path:
    """The study with one slice's pixel data cut short: it loads with a blank slice, which no model may see."""
    shutil.copytree(study, target)
    victim = sorted((target / "dicom").iterdir())[5]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - 20000])
    return target


def test_failing_series_do_not_stop_the_others(ray_runtime, small_studies, tmp_path):
    from viewer.core.sample import write_sample_study

    broken = _broken_copy(small_studies[0], tmp_path / "broken")
    not_chest = write_sample_study(tmp_path / "seed-1", seed=1, **SMALL_GRID).parent  # too little lung for the models
    crashing = small_studies[5]  # seed 9
    good = small_studies[1:3]
    summary = _run([*good, broken, crashing, not_chest], tmp_path / "out", models=[SEG], retries=1,
                   worker_class=CrashingWorker)
    with Manifest(summary["manifest_path"]) as manifest:
        rows = {r.origin: r for r in manifest.rows(summary["job"])}
    assert [rows[str(g)].state for g in good] == [DONE, DONE]
    assert rows[str(broken)].state == FAILED and "could not be decoded" in rows[str(broken)].error
    crashed = rows[str(crashing)]
    assert crashed.state == FAILED and "worker died" in crashed.error and crashed.attempts == 2
    assert rows[str(not_chest)].state == SKIPPED and "not made for this series" in rows[str(not_chest)].error
    assert summary["run"]["counts"] == {QUEUED: 0, "running": 0, DONE: 2, FAILED: 2, SKIPPED: 1}
    written = sorted(p.parent.name for p in (tmp_path / "out").rglob("batch.json"))
    assert written == sorted(rows[str(g)].series_key for g in good)


def test_watch_runs_a_study_that_arrives(ray_runtime, small_studies, tmp_path):
    from viewer.services.batch.run import BatchOptions, run_batch

    inbox = tmp_path / "inbox"
    shutil.copytree(small_studies[3], inbox / "first")
    stop = threading.Event()
    options = BatchOptions(models=[SEG], sources=[str(inbox)], sink=str(tmp_path / "out"), workers=1, watch=True,
                           interval=0.3)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(run_batch(options, stop=stop)))
    thread.start()
    manifest_path = tmp_path / "out" / "batch-manifest.sqlite"

    def done_count() -> int:
        if not manifest_path.exists():
            return 0
        with Manifest(manifest_path) as manifest:
            return manifest.counts()[DONE]

    try:
        _wait_for(lambda: done_count() == 1, 60)
        shutil.copytree(small_studies[4], inbox / "second")  # a new study arrives while the batch watches
        _wait_for(lambda: done_count() == 2, 60)
    finally:
        stop.set()
        thread.join(60)
    assert result["run"]["counts"][DONE] == 2


def _wait_for(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_evaluate_fans_out_with_the_same_figures(ray_runtime, small_studies):
    import functools

    from viewer.core.evaluation import evaluate
    from viewer.services.batch.fanout import ray_map

    data = [str(s) for s in small_studies[:2]]
    serial = evaluate([SEG], data, threads=1, log=lambda _line: None)
    fanned = evaluate([SEG], data, threads=1, log=lambda _line: None, map_cases=functools.partial(ray_map))
    strip = [{k: v for k, v in case.items() if k != "seconds"} for case in serial[SEG]["cases"]]
    assert strip == [{k: v for k, v in case.items() if k != "seconds"} for case in fanned[SEG]["cases"]]
    assert fanned[SEG]["summary"]["dice"] == serial[SEG]["summary"]["dice"]


def test_a_pacs_query_in_and_the_pacs_out(ray_runtime, small_studies, fresh_orthanc, tmp_path, monkeypatch):
    """``pacs:NODE?date=...`` finds the studies' image series on a real Orthanc (DICOMweb), the driver retrieves
    them, and ``--out pacs:NODE`` stores each SEG there, referencing its series; a re-run finds nothing new (the
    SEGs it stored are not images)."""
    from inference.jobs import run_job
    from viewer.services.batch.run import BatchOptions, run_batch
    from viewer.services.pacs.client import open_client
    from viewer.services.pacs.nodes import PacsNode

    monkeypatch.setenv("HOUNSFIELD_HOME", str(tmp_path / "home"))  # the retrieve cache
    for study in small_studies[:2]:
        fresh_orthanc.upload_folder(study / "dicom")
    node = PacsNode(name="orthanc", url=fresh_orthanc.dicomweb_url)
    options = BatchOptions(models=[SEG], sources=["pacs:orthanc?date=20240101&modality=CT"], sink="pacs:orthanc",
                           manifest=str(tmp_path / "manifest.sqlite"), workers=2, pacs_nodes=[node])
    summary = run_batch(options)
    assert summary["manifest"][DONE] == 2 and summary["sink"] == "pacs:orthanc", summary
    client = open_client(node)
    for study in small_studies[:2]:
        volume = _volume(study)
        series = run_job(client.query_series(volume.study_uid))
        assert sorted(s.modality for s in series) == ["CT", "SEG"]
    with Manifest(tmp_path / "manifest.sqlite") as manifest:
        row = manifest.rows()[0]
    assert row.origin == "pacs:orthanc" and list(row.outputs) == [f"{SEG}/seg.dcm"]
    assert row.outputs[f"{SEG}/seg.dcm"].startswith("pacs:orthanc/1.")
    again = run_batch(options)
    assert again["run"]["finished"] == 0 and again["manifest"][DONE] == 2
