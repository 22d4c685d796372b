"""``hounsfield infer --explain``: one map per finding (occlusion or Grad-CAM), as NIfTI beside ``findings.json``.

Each finding written to ``findings.json`` gets its map (:func:`inference.gradcam.explain`, on the series' own grid,
values in [0, 1]) in ``finding_maps/finding_NNN.nii.gz`` - NNN is the finding's 1-based position in
``findings.json`` - written by :func:`viewer.core.export.nifti.write_nifti` (our LPS affine -> the file's RAS sform,
as every NIfTI we write), and ``findings.json`` names it per finding under ``"saliency_map"`` (relative to the
findings file).
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MAPS_FOLDER = "finding_maps"


def finding_order(detections, min_score: float = 0.0) -> list[int]:
    """Indices of ``detections`` in the order ``findings.json`` lists them (score descending, ``>= min_score``)."""
    order = np.argsort(-np.asarray(detections.scores), kind="stable")
    return [int(i) for i in order if float(detections.scores[i]) >= min_score]


def write_finding_maps(out_dir: str | os.PathLike, bundle, array: np.ndarray, affine: np.ndarray, detections,
                       *, min_score: float = 0.0, progress: Callable[[Any], None] | None = None,
                       cancel: Any = None) -> list[str]:
    """Explain every finding at or above ``min_score`` and write its map; returns the paths relative to
    ``out_dir``, in ``findings.json`` order.

    Parameters
    ----------
    bundle
        The loaded detection bundle that found ``detections`` (:func:`inference.bundle.load_bundle`).
    array, affine
        The series' volume ``(z, y, x)`` and its index -> LPS affine: the maps are written on this grid.
    """
    from inference.gradcam import explain
    from inference.jobs import run_job
    from viewer.core.export.nifti import write_nifti

    folder = Path(out_dir) / MAPS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for n, index in enumerate(finding_order(detections, min_score), start=1):
        saliency = run_job(explain(bundle, array, affine, box_lps=detections.boxes_lps[index],
                                   target_name=f"finding #{n}", cancel=cancel), progress)
        name = f"{MAPS_FOLDER}/finding_{n:03d}.nii.gz"
        write_nifti(Path(out_dir) / name, saliency.values.astype(np.float32), saliency.affine,
                    description=f"{bundle.info.id} finding {n} saliency"[:79])
        names.append(name)
    return names


def name_maps_in_findings(findings_path: str | os.PathLike, names: list[str]) -> Path:
    """Add ``"saliency_map"`` (the relative path of each finding's map) to the findings of ``findings.json``."""
    from viewer.core.export.findings import _write_doc

    path = Path(findings_path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    if len(doc["findings"]) != len(names):
        raise ValueError(f"{len(names)} maps for {len(doc['findings'])} findings in {path}")
    for finding, name in zip(doc["findings"], names):
        finding["saliency_map"] = name
    return _write_doc(path, doc)
