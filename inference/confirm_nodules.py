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


def _components(mask: np.ndarray) -> tuple[np.ndarray, tuple[slice, ...], list[tuple[slice, slice, slice]]]:
    """Labelled components (26-connected) on the bounding box of ``mask``, that box, and each component's bounding
    slices in the whole array.

    Labelled on the mask's bounding box only: the label image of the whole study (uint32) cost 1.2 s on
    LIDC-IDRI-0001 for a few small nodules. A component lies inside that box and the voxels keep their raster
    order there, so the components and their numbering are those of the whole array."""
    import SimpleITK as sitk

    voxels = np.unravel_index(np.flatnonzero(mask), mask.shape)  # one pass: the mask is sparse
    where = tuple(slice(int(v.min()), int(v.max()) + 1) for v in voxels)
    labels = sitk.ConnectedComponent(sitk.GetImageFromArray(mask[where].astype(np.uint8)), True)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(labels)
    boxes = []
    z0, y0, x0 = (s.start for s in where)
    for value in range(1, stats.GetNumberOfLabels() + 1):
        x, y, z, dx, dy, dz = stats.GetBoundingBox(value)
        boxes.append((slice(z0 + z, z0 + z + dz), slice(y0 + y, y0 + y + dy), slice(x0 + x, x0 + x + dx)))
    return sitk.GetArrayFromImage(labels), where, boxes


def _shell(labels: np.ndarray, box: tuple[slice, ...], inside: np.ndarray, exclude: int) -> np.ndarray:
    """The labels other than ``exclude`` in the one-voxel shell (6-connected) around ``inside``, a mask on ``box``."""
    grown = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
    crop = labels[grown]
    core = np.zeros(crop.shape, bool)
    core[tuple(slice(s.start - g.start, s.stop - g.start) for s, g in zip(box, grown))] = inside
    near = np.pad(core, 1)
    shell = np.zeros_like(core)
    dims: tuple[int, ...] = core.shape
    for axis in range(3):
        for step in (0, 2):  # the neighbour before and after along the axis (the padding: nothing beyond the edge)
            neighbours = tuple(slice(step, step + n) if a == axis else slice(1, 1 + n)
                               for a, n in enumerate(dims))
            shell |= near[neighbours]
    around = crop[shell & ~core]
    return around[around != exclude]


def _surrounding_label(labels: np.ndarray, box: tuple[slice, ...], inside: np.ndarray, exclude: int) -> int:
    """The commonest label other than ``exclude`` in the one-voxel shell around ``inside``."""
    around = _shell(labels, box, inside, exclude)
    return int(np.bincount(around).argmax()) if around.size else 0


#: A nodule component whose shell holds less lung than this share is not a lung nodule: on LIDC-IDRI-0001 the
#: network labelled 131 islands in the soft tissue of the back "nodule" (lung nodules lie in the lung or against it).
MIN_LUNG_SHELL = 0.2
#: The rule needs lungs: a field of view inside the chest (a crop, a targeted reconstruction) may have none left
#: (they run out of the image and the border rule drops them; an airway may remain). A chest CT's lungs fill a tenth
#: of it or more; under this share of labelled voxels every component is scored.
MIN_LABELLED_SHARE = 0.02


def confirm_nodules(labels: np.ndarray, nodule: int, array: np.ndarray, affine: np.ndarray, classifier,
                    threshold: float) -> np.ndarray:
    """``labels`` with its ``nodule`` components checked and redrawn (a new array; see the module docstring)."""
    from inference.geometry import box_corners
    from inference.models.nodule_classifier import probabilities
    from inference.nodule_measurements import lung_extent, segment_nodule

    out = np.array(labels, copy=True)
    mask = out == nodule
    if not mask.any():
        return out
    components, where, boxes = _components(mask)
    insides = [components[tuple(slice(b.start - w.start, b.stop - w.start) for b, w in zip(box, where))] == index
               for index, box in enumerate(boxes, start=1)]
    in_lung = []
    # counted, not masked: three temporary volumes of the study's size cost more than the rest of the check
    has_lung = np.count_nonzero(out) - np.count_nonzero(mask) >= MIN_LABELLED_SHARE * out.size
    for box, inside in zip(boxes, insides):
        around = _shell(out, box, inside, nodule)
        in_lung.append(not has_lung or (around.size > 0 and (around != 0).mean() >= MIN_LUNG_SHELL))
    centres, extents = [], []
    for box in boxes:  # as the detector's candidate: its box (edges half a voxel out) in LPS, centre and extent
        xyz = [s.start - 0.5 for s in box[::-1]] + [s.stop - 0.5 for s in box[::-1]]
        lps = box_corners(np.array(xyz)) @ affine[:3, :3].T + affine[:3, 3]
        centres.append(lps.mean(axis=0))
        extents.append(float((lps.max(axis=0) - lps.min(axis=0)).max()))
    keep = np.flatnonzero(in_lung)
    scores = np.zeros(len(boxes))
    scores[keep] = probabilities(classifier, array, affine, [centres[i] for i in keep], [extents[i] for i in keep])
    lungs = None
    for box, inside, score in zip(boxes, insides, scores):
        if score < threshold:  # back to the lung (or the tissue) around it
            out[box][inside] = _surrounding_label(out, box, inside, nodule)
            continue
        lungs = lungs or lung_extent(array, affine)
        redrawn = segment_nodule(array, affine, [s.start for s in box] + [s.stop for s in box], lungs)
        if redrawn is None or not redrawn.mask.any():
            continue  # kept as the network drew it
        z, y, x = redrawn.offset
        dz, dy, dx = redrawn.mask.shape
        region = out[z:z + dz, y:y + dy, x:x + dx]
        labelled = region != 0  # the nodule as the network drew it, and the lungs: not the air outside
        out[box][inside] = _surrounding_label(out, box, inside, nodule)
        region[redrawn.mask & labelled] = nodule
    return out
