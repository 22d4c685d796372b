"""The segmentation's nodule label, checked by the nodule detector's second stage and redrawn on the study's voxels.

The built-in segmentation network labels about 28 blobs a scan "nodule" on the evaluation phantoms, most of them
vessels, on its 1.25 x 1.25 x 2.5 mm grid: the label told a reader little (nodule Dice 0.36). The nodule
detector's classifier (:mod:`inference.models.nodule_classifier`) already judges such blobs on the study's own
voxels, calibrated. For a segmentation bundle that carries it (config ``nodule_classifier``, weights
``models/classifier.pt``, its card's ``hounsfield.operating_point``), :func:`confirm_nodules`

1. scores every connected component of the nodule label as the detector scores a candidate;
2. gives the components under the operating point back to the lung around them (the commonest other label on
   their border), so the label shows what the detector would show;
3. redraws each kept nodule with :func:`inference.nodule_measurements.segment_nodule` at the study's resolution
   (the same mask the reader's measurements come from), keeping the network's mask where that finds nothing.

Arrays are ``(z, y, x)`` with the index -> LPS affine of :mod:`viewer.core.volume`.
"""
from __future__ import annotations

import numpy as np


def _components(mask: np.ndarray) -> tuple[np.ndarray, list[tuple[slice, slice, slice]]]:
    """Labelled components (26-connected) and each one's bounding slices."""
    import SimpleITK as sitk

    labels = sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)), True)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(labels)
    boxes = []
    for value in range(1, stats.GetNumberOfLabels() + 1):
        x, y, z, dx, dy, dz = stats.GetBoundingBox(value)
        boxes.append((slice(z, z + dz), slice(y, y + dy), slice(x, x + dx)))
    return sitk.GetArrayFromImage(labels), boxes


def _surrounding_label(labels: np.ndarray, box: tuple[slice, ...], inside: np.ndarray, exclude: int) -> int:
    """The commonest label other than ``exclude`` in the one-voxel shell around ``inside`` (a mask on ``box``)."""
    grown = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
    crop = labels[grown]
    core = np.zeros(crop.shape, bool)
    offset = tuple(s.start - g.start for s, g in zip(box, grown))
    core[tuple(slice(o, o + n) for o, n in zip(offset, inside.shape))] = inside
    shell = np.zeros_like(core)
    for axis in range(3):
        for step in (-1, 1):
            shell |= np.roll(core, step, axis=axis)
    around = crop[shell & ~core]
    around = around[around != exclude]
    return int(np.bincount(around).argmax()) if around.size else 0


def confirm_nodules(labels: np.ndarray, nodule: int, array: np.ndarray, affine: np.ndarray, classifier,
                    threshold: float) -> tuple[np.ndarray, dict]:
    """``labels`` with its ``nodule`` components checked and redrawn (a new array; see the module docstring),
    and a summary ``{"components", "kept", "redrawn"}``."""
    import torch

    from inference.models.nodule_classifier import candidate_inputs
    from inference.nodule_measurements import lung_extent, segment_nodule

    out = np.array(labels, copy=True)
    mask = out == nodule
    summary = {"components": 0, "kept": 0, "redrawn": 0}
    if not mask.any():
        return out, summary
    components, boxes = _components(mask)
    summary["components"] = len(boxes)
    to_lps = np.asarray(affine, float)
    inputs = []
    for box in boxes:
        lo = np.array([s.start for s in box], float)
        hi = np.array([s.stop - 1 for s in box], float)
        corners = np.array([[x, y, z] for z in (lo[0], hi[0]) for y in (lo[1], hi[1]) for x in (lo[2], hi[2])])
        lps = corners @ to_lps[:3, :3].T + to_lps[:3, 3]
        extent = float((lps.max(axis=0) - lps.min(axis=0)).max() + np.linalg.norm(to_lps[:3, :3], axis=0).max())
        inputs.append(candidate_inputs(array, affine, lps.mean(axis=0), extent))
    classifier.eval()
    with torch.no_grad():
        patches = torch.from_numpy(np.stack([p for p, _ in inputs]))
        scalars = torch.from_numpy(np.stack([s for _, s in inputs]))
        scores = classifier.probability(patches, scalars).numpy()
    extent = None
    for index, (box, score) in enumerate(zip(boxes, scores), start=1):
        inside = components[box] == index
        if score < threshold:
            out[box][inside] = _surrounding_label(out, box, inside, nodule)
            continue
        summary["kept"] += 1
        extent = extent or lung_extent(array, affine)
        voxel_box = [s.start for s in box] + [s.stop for s in box]
        redrawn = segment_nodule(array, affine, voxel_box, extent)
        if redrawn is None or not redrawn.mask.any():
            continue
        summary["redrawn"] += 1
        z, y, x = redrawn.offset
        dz, dy, dx = redrawn.mask.shape
        region = out[z:z + dz, y:y + dy, x:x + dx]
        labelled = region != 0  # the nodule as the network drew it, and the lungs: not the air outside
        out[box][inside] = _surrounding_label(out, box, inside, nodule)
        region[redrawn.mask & labelled] = nodule
    return out, summary
