"""The batch worker: the models loaded once, then run on every series handed to it.

:class:`ModelWorker` is a plain class: the driver makes it a Ray actor (``ray.remote(ModelWorker)``, one per
worker, so each loads its models once), and the plain loop (``--address none`` in the benchmark, the tests'
single-process reference) uses it as it is - the same code either way.

A series runs every model in turn on the same volume, so models that share a network (the built-in
segmentation and nodule detector) run it once (:func:`inference.task.infer`'s network cache); each model's
outputs are written by :func:`viewer.core.run_model.write_outputs` exactly as ``hounsfield infer`` writes them,
into a private temporary folder, and returned as bytes: the driver's sink puts them where they belong, so a
worker on another machine needs neither the source files nor the sink.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from viewer.services.batch.sinks import safe_name


def model_hash(path: str | os.PathLike) -> str:
    """SHA-256 (16 hex digits) over a bundle's configs and weights: names and bytes of every file below
    ``configs/`` and ``models/``. A changed weight file is another model for the manifest."""
    digest = hashlib.sha256()
    root = Path(path)
    for part in ("configs", "models"):
        folder = root / part
        for file in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if file.is_file():
                digest.update(str(file.relative_to(root)).encode() + b"\0")
                with open(file, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
    return digest.hexdigest()[:16]


def describe_models(model_ids: Sequence[str], extra_dirs: Sequence[str | os.PathLike] = ()) -> list[dict]:
    """What the manifest and ``batch.json`` record of each model: id, name, version, task, content hash.

    Raises
    ------
    inference.registry.ModelNotFound
        For an unknown id.
    """
    from inference.registry import find_model

    described = []
    for model_id in model_ids:
        info = find_model(model_id, extra_dirs)
        described.append({"id": info.id, "name": info.name, "version": info.version or "0", "task": info.task,
                          "hash": model_hash(info.path)})
    return described


class ModelWorker:
    """Loads ``model_ids`` once and runs them on each :class:`~viewer.services.batch.sources.LoadedSeries`.

    Parameters
    ----------
    model_ids
        Registry ids or bundle folders, run in this order.
    device
        ``cpu``, ``cuda``, ``mps`` or None for the best available (under Ray, the GPU it was given).
    threads
        torch CPU threads for this worker (its share of the node's cores).
    force
        Run models even on series they were not made for (otherwise such a model is left out for that series).
    extra_model_dirs
        Folders of user bundles besides the default ones.
    """

    def __init__(self, model_ids: Sequence[str], device: str | None = None, threads: int | None = None,
                 force: bool = False, extra_model_dirs: Sequence[str | os.PathLike] = ()) -> None:
        from inference.bundle import load_bundle
        from inference.device import configure_threads
        from inference.registry import find_model

        started = time.perf_counter()
        self.threads = configure_threads(threads)
        self.force = force
        self.bundles = [load_bundle(find_model(m, extra_model_dirs), device=device) for m in model_ids]
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.load_seconds = time.perf_counter() - started

    def describe(self) -> dict:
        """Who and where this worker is (answers once its models are loaded: the driver waits on it)."""
        return {"worker": self.name, "device": str(self.bundles[0].device) if self.bundles else "",
                "threads": self.threads, "model_load_s": round(self.load_seconds, 3)}

    def process(self, loaded) -> dict[str, Any]:
        """Run every model on one series; never raises for a model's failure.

        Returns
        -------
        dict
            ``state`` (``done``, ``skipped`` when no model was made for the series, ``failed``), ``files``
            (``{"<model id>/<name>": bytes}``), ``models`` (per model: id, task, outputs, timings, messages and
            ``n_findings`` / ``labels_present``), ``timings`` (``infer``, ``export``, ``worker``), ``device``,
            ``worker``, ``messages``, ``error``.
        """
        from viewer.core.run_model import UnsuitableInput, infer_to_dir

        started = time.perf_counter()
        work = Path(tempfile.mkdtemp(prefix="hounsfield-batch-"))
        reply: dict[str, Any] = {"state": "done", "files": {}, "models": [], "messages": [], "error": "",
                                 "worker": self.name, "device": ""}
        infer = export = 0.0
        try:
            for bundle in self.bundles:
                info = bundle.info
                try:
                    report = infer_to_dir(loaded.volume, bundle, work / safe_name(info.id), sources=loaded.sources,
                                          body_part=loaded.body_part, force=self.force, threads=self.threads)
                except UnsuitableInput as refused:
                    reply["messages"].append(f"{info.id} not run: {refused}")
                    continue
                timings = report["timings"]
                export += timings.get("export", 0.0)
                infer += sum(v for k, v in timings.items() if k not in ("load", "model", "export", "total"))
                reply["device"] = report["device"]
                reply["messages"] += [f"{info.id}: {m}" for m in report["messages"]]
                reply["models"].append({k: report[k] for k in ("model", "task", "timings", "device", "messages")}
                                       | {k: report[k] for k in ("n_findings", "labels_present") if k in report})
            for path in sorted(work.rglob("*")):
                if path.is_file():
                    reply["files"][str(path.relative_to(work))] = path.read_bytes()
            if not reply["models"]:
                reply["state"], reply["error"] = "skipped", "; ".join(reply["messages"]) or "no model ran"
        except Exception as error:  # noqa: BLE001 - a model's failure fails this series, never the worker
            reply.update(state="failed", files={}, error=f"{type(error).__name__}: {error}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        reply["timings"] = {"infer": round(infer, 3), "export": round(export, 3),
                            "worker": round(time.perf_counter() - started, 3)}
        return reply
