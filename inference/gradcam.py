"""Grad-CAM (``monai.visualize.GradCAM``) for one finding or one label: what drove the model's score there.

* a **finding** of a detection bundle: the score is the largest classification logit of the anchors centred in
  the finding's box (the anchors that produced it), so the map shows what made the detector fire there;
* a **label** (or a box) of a segmentation bundle: the score is the mean logit of that label's network channel
  over its region (the model's own mask of the label, or the box), so the map shows what made the model call
  those voxels so. A detector that reads a segmentation label (:mod:`inference.models.seg_detector`) is explained
  the same way, over the voxels of the finding's box that its network calls the label (see below).

Only a crop around the target (plus a margin of context) is preprocessed and run, which keeps one map to a
forward and a backward pass of a small patch. The map is computed at the bundle's target layer (metadata
``hounsfield.gradcam_layer``), resampled onto the study's grid and returned as a
:class:`inference.types.SaliencyMap` scaled to [0, 1] (1 = most activation; zero outside the crop).

Two things keep the map free of artefacts that are not the model's:

* **no checkerboard** - a strided layer's map alternates from cell to cell; it is smoothed on the layer's own
  grid with a [1, 2, 1] binomial kernel (zero response at that grid's Nyquist frequency) before it is upsampled
  trilinearly (:func:`smooth_upsampler`);
* **no hard crop edge** - the map fades to zero over the outer :data:`TAPER_MM` of the crop (a raised cosine,
  :func:`edge_taper`) wherever the crop ends inside the volume, so it blends into the surroundings.

MONAI's default post-processing maps (min, max) to (1, 0) - it *flips* the map; ours scales by the maximum instead.

**The built-in nodule detector's findings** are explained by occlusion of its classifier's patch
(:mod:`inference.occlusion`; :func:`explain` hands them over): the map below failed the randomisation check with the
retrained network (Spearman 0.450). It stays for a label-reading detector without a classifier, or when asked for:
**Findings of a label-reading detector** are explained by **HiResCAM** (Draelos &
Carin 2020: the element-wise product of gradient and activation, summed over channels) at the bundle's layer
(``model.1.submodule``: the UNet decoder's half-resolution output, before the first layer's skip features are joined
in), and the score is the mean nodule logit over the voxels of the box the network itself calls nodule (the
finding's own logits region; the whole box if none). Measured with ``hounsfield evaluate --explain``
(:mod:`viewer.core.evaluation_explain`) on the found nodules of the evaluation phantoms: plain Grad-CAM at
``model.2.0`` put the map's peak inside the true nodule for 4 of 8 - its channel weights are averaged over space,
so anything nodule-like in the crop (vessels, the chest wall) lights up as much as the finding - and ranked the
crop's voxels much as the re-initialised network did (Spearman 0.51, mostly the shared crop taper); HiResCAM here
hits 8 of 8 at Spearman 0.25 (0.29 with the skip features, ``model.1``; 0.38 scoring the whole box).
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Generator
from typing import Any

import numpy as np

from inference.geometry import box_corners
from inference.jobs import Progress
from inference.task import Reporter, drive
from inference.types import SaliencyMap, int3

DEFAULT_MARGIN_MM = 30.0
TAPER_MM = 15.0
"""Width of the fade to zero at the crop's faces (half the default margin, so the target itself is untouched)."""
FINDING_METHOD = "hirescam"
"""How a finding of a detector that reads a segmentation label is explained (``gradcam`` for everything else)."""
RETINANET_LAYER = "feature_extractor.body.layer1"
"""Where a RetinaNet detector that names no layer (e.g. the Model Zoo's) is explained: its first ResNet stage."""


def _region(shape, affine, box_lps, mask, margin_mm: float) -> tuple[slice, slice, slice]:
    """``(z, y, x)`` slices of the input grid around the target, ``margin_mm`` wider on every side."""
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)  # x, y, z mm
    if box_lps is not None:
        corners = box_corners(box_lps)
        inverse = np.linalg.inv(affine)
        ijk = corners @ inverse[:3, :3].T + inverse[:3, 3]
        low, high = ijk.min(axis=0), ijk.max(axis=0)
    elif mask is not None and np.any(mask):
        idx = [np.flatnonzero(np.any(mask, axis=axes)) for axes in ((0, 1), (0, 2), (1, 2))]  # x, y, z
        low = np.array([i[0] for i in idx], float)
        high = np.array([i[-1] for i in idx], float)
    else:
        return slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2])
    pad = margin_mm / spacing
    low = np.maximum(np.floor(low - pad), 0).astype(int)
    high = np.minimum(np.ceil(high + pad) + 1, np.array(shape[::-1])).astype(int)
    return slice(low[2], high[2]), slice(low[1], high[1]), slice(low[0], high[0])


def smooth_upsampler(spatial_size):
    """MONAI ``upsampler``: smooth the layer-grid map with a separable [1, 2, 1] / 4 kernel (replicated edges),
    then interpolate (tri)linearly to ``spatial_size``. Removes the layer grid's checkerboard, which a linear
    upsampling alone would only stretch."""
    import torch
    import torch.nn.functional as F

    def up(cam):
        dims = cam.ndim - 2
        kernel = torch.tensor([0.25, 0.5, 0.25], dtype=cam.dtype, device=cam.device)
        for axis in range(dims):
            if cam.shape[2 + axis] < 2:
                continue
            pad = [0, 0] * dims
            pad[2 * (dims - 1 - axis)] = pad[2 * (dims - 1 - axis) + 1] = 1
            padded = F.pad(cam, pad, mode="replicate")
            cam = sum(w * padded.narrow(2 + axis, k, cam.shape[2 + axis]) for k, w in enumerate(kernel))
        mode = ("linear", "bilinear", "trilinear")[dims - 1]
        return F.interpolate(cam, size=tuple(int(s) for s in spatial_size), mode=mode, align_corners=False)

    return up


def _scale_to_max(cam):
    """[0, 1] by the maximum (ReLU maps start at 0); an all-zero map stays zero."""
    top = cam.flatten(1).amax(dim=1).clamp(min=1e-12).view(-1, *[1] * (cam.ndim - 1))
    return cam / top


def edge_taper(crop: tuple[slice, slice, slice], shape: tuple[int, ...], affine: np.ndarray,
               width_mm: float = TAPER_MM) -> np.ndarray:
    """Weights on the crop, 1 inside and falling to 0 (raised cosine over ``width_mm``) towards each face of the
    crop that lies inside the volume (faces on the volume's own border are not an edge of the map)."""
    spacing = np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0)[::-1]  # z, y, x mm
    weights = np.ones(tuple(s.stop - s.start for s in crop), np.float32)
    for axis, part in enumerate(crop):
        n = part.stop - part.start
        index = np.arange(n, dtype=np.float64)
        # distance (mm) of each voxel centre from the first voxel outside the crop, on each side
        low = (index + 1) * spacing[axis] if part.start > 0 else np.full(n, np.inf)
        high = (n - index) * spacing[axis] if part.stop < shape[axis] else np.full(n, np.inf)
        ramp = np.clip(np.minimum(low, high) / max(width_mm, 1e-6), 0, 1)
        profile = (0.5 - 0.5 * np.cos(np.pi * ramp)).astype(np.float32)
        weights *= profile.reshape([-1 if a == axis else 1 for a in range(3)])
    return weights


def _plain(tensor):
    """A MONAI transform's output (typed as a tensor, a MetaTensor in fact) as a plain tensor."""
    from monai.data import MetaTensor

    return tensor.as_tensor() if isinstance(tensor, MetaTensor) else tensor


def _hirescam():
    """HiResCAM (Draelos & Carin 2020): the element-wise product of the layer's gradient and activation, summed
    over channels (Grad-CAM averages the gradient over space first, which lets any voxel whose features resemble
    the target light up, wherever it lies)."""
    import torch.nn.functional as F
    from monai.visualize import GradCAM

    class HiResCAM(GradCAM):
        # GradCAM's own signature (MONAI's GradCAM already departs from CAMBase's by retain_graph)
        def compute_map(self, x, class_idx=None, retain_graph=False, layer_idx=-1, **kwargs):  # type: ignore[override]
            _, acti, grad = self.nn_module(x, class_idx=class_idx, retain_graph=retain_graph, **kwargs)
            return F.relu((grad[layer_idx] * acti[layer_idx]).sum(1, keepdim=True))

    return HiResCAM


class _Cams(dict):
    """Method name -> MONAI CAM class, imported on first use (no torch at import time)."""

    def __missing__(self, name):
        from monai.visualize import GradCAM, GradCAMpp

        classes = {"gradcam": GradCAM, "gradcam++": GradCAMpp, "hirescam": _hirescam()}
        if name not in classes:
            raise ValueError(f"unknown saliency method {name!r} (one of {', '.join(classes)})")
        self.update(classes)
        return classes[name]


CAMS = _Cams()


def _detector_score(network, box_voxel_xyz: np.ndarray):
    """A module whose (B, 1) output is the top classification logit of the anchors centred in the box."""
    import torch

    class FindingScore(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.network = network

        def forward(self, x):
            out = self.network(x)
            size = np.array(x.shape[2:], float)
            best = []
            for logits in out[self.network.cls_key]:
                stride = size / np.array(logits.shape[2:], float)
                low = np.clip(np.floor(box_voxel_xyz[:3] / stride), 0, np.array(logits.shape[2:]) - 1).astype(int)
                high = np.clip(np.ceil(box_voxel_xyz[3:] / stride), low + 1, np.array(logits.shape[2:])).astype(int)
                cells = logits[:, :, low[0]:high[0], low[1]:high[1], low[2]:high[2]]
                best.append(cells.flatten(1).amax(dim=1))
            return torch.stack(best, dim=1).amax(dim=1, keepdim=True)

    return FindingScore()


def _label_score(network, channel: int, region, own: bool = False):
    """A module whose (B, 1) output is the mean logit of ``channel`` over ``region`` (or its own argmax mask);
    with ``own``, over the voxels of ``region`` the network itself calls ``channel`` (all of ``region`` if none)."""
    import torch

    class LabelScore(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.network = network

        def forward(self, x):
            logits = self.network(x)
            mask = region
            if region is None or own:  # the network's own call: an argmax over the crop, 0.4 s for a whole lung
                called = logits.detach().argmax(dim=1, keepdim=True) == channel
                if region is None:
                    mask = called
                elif bool((region & called).any()):
                    mask = region & called
            mask = mask.to(logits.dtype)
            total = (logits[:, channel:channel + 1] * mask).flatten(1).sum(1)
            return (total / mask.flatten(1).sum(1).clamp(min=1))[:, None]

    return LabelScore()


def explain(bundle, array: np.ndarray, affine: np.ndarray, *, box_lps=None, label: int | None = None,
            mask: np.ndarray | None = None, margin_mm: float = DEFAULT_MARGIN_MM, target_name: str | None = None,
            cancel: Any = None, method: str | None = None, own_region: bool | None = None,
            layer: str | None = None) -> Generator[Progress, None, SaliencyMap]:
    """Grad-CAM map of one target (a job: yields :class:`Progress`, returns a :class:`SaliencyMap`).

    A finding of a detector whose second stage is a nodule classifier is explained by occlusion of the classifier's
    patch instead (:mod:`inference.occlusion`: it explains the score the reader sees), unless ``method`` is given.

    Parameters
    ----------
    bundle
        A loaded detection or segmentation bundle (:func:`inference.bundle.load_bundle`) whose metadata names its
        ``gradcam_layer``.
    array, affine
        The study volume ``(z, y, x)`` and its index -> LPS affine (not modified).
    box_lps
        ``[x0, y0, z0, x1, y1, z1]`` LPS mm: the finding to explain (detection bundles need it).
    label
        Segmentation bundles: the label value to explain (its channel); with ``box_lps`` only voxels in the box count,
        with ``mask`` (a bool map on the input grid) only those voxels, otherwise the model's own mask of the label.
    margin_mm
        Context kept around the target.
    target_name
        What the map explains, for display (``SaliencyMap.target``), e.g. "finding 2" or "nodule".
    method
        ``gradcam``, ``gradcam++`` or ``hirescam``; default :data:`FINDING_METHOD` for a finding of a label-reading
        detector, ``gradcam`` otherwise.
    own_region
        Score only the voxels of the box (or mask) the network itself calls the label; default: for a finding of a
        label-reading detector.
    layer
        The layer to explain at, instead of the bundle's ``gradcam_layer``.
    """
    from inference.occlusion import explain_finding, explained_by_occlusion

    if box_lps is not None and method is None and explained_by_occlusion(bundle):
        return (yield from explain_finding(bundle, array, affine, box_lps, target_name=target_name, cancel=cancel))
    layer = layer or bundle.info.gradcam_layer or (RETINANET_LAYER if hasattr(bundle.network, "cls_key") else "")
    if not layer:
        raise ValueError(f"{bundle.info.name} does not name a Grad-CAM layer (metadata hounsfield.gradcam_layer)")
    # a detector reading a segmentation label (inference.models.seg_detector) is explained as that label in the box
    reads_label = bundle.task == "segmentation" or hasattr(bundle.detector, "channel")
    if bundle.task == "detection" and box_lps is None:
        raise ValueError("a detector explains one finding: give its box")
    if bundle.task == "segmentation" and label is None:
        raise ValueError("a segmentation model explains one label: give its value")
    # A finding of a label-reading detector is explained by HiResCAM over the voxels the network itself calls
    # the label inside the finding's box: the measured choice that puts the map's peak on the nodule (see above).
    finding_of_label = bundle.task == "detection" and reads_label
    method = method or (FINDING_METHOD if finding_of_label else "gradcam")
    own_region = finding_of_label if own_region is None else own_region
    array = np.asarray(array)
    affine = np.asarray(affine, dtype=np.float64)

    def work(reporter: Reporter) -> SaliencyMap:
        import torch
        from monai.data import MetaTensor
        from monai.transforms import DivisiblePad

        from inference.geometry import from_monai, lps_affine, ras_affine, resample_to_grid
        from inference.task import _preprocess

        start = time.perf_counter()
        reporter.progress(0, 3, "Preparing the region")
        zs, ys, xs = _region(array.shape, affine, box_lps, mask, margin_mm)
        shift = np.eye(4)
        shift[:3, 3] = [xs.start, ys.start, zs.start]
        crop_affine = affine @ shift
        data = _preprocess(bundle, np.ascontiguousarray(array[zs, ys, xs]), crop_affine)
        image = data[bundle.image_key]
        pre_affine = image.affine.detach().cpu().numpy().astype(np.float64)
        spatial = int3(image.shape[1:])
        x = _plain(DivisiblePad(k=16, method="end")(image))[None].to(bundle.device)
        reporter.check()

        to_voxel = np.linalg.inv(lps_affine(pre_affine))
        if not reads_label:
            corners = box_corners(box_lps)
            ijk = corners @ to_voxel[:3, :3].T + to_voxel[:3, 3]
            scorer = _detector_score(bundle.network, np.concatenate([ijk.min(0), ijk.max(0)]))
        else:
            region = None
            if box_lps is not None or mask is not None:
                if mask is not None:
                    grid = np.ascontiguousarray(np.asarray(mask)[zs, ys, xs], dtype=np.float32)
                else:
                    grid = np.zeros((zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start), np.float32)
                    inner = _region(array.shape, affine, box_lps, None, 0.0)
                    grid[tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(inner, (zs, ys, xs)))] = 1
                placed = MetaTensor(torch.from_numpy(np.ascontiguousarray(grid.transpose(2, 1, 0)))[None],
                                    affine=torch.as_tensor(ras_affine(crop_affine)))
                region = resample_to_grid(placed, pre_affine, spatial, mode="nearest")
                region = _plain(DivisiblePad(k=16, method="end")(region))[None].to(bundle.device) > 0.5
            if bundle.task == "detection" or label is None:  # label is None only for a detector (checked above)
                channel = bundle.detector.channel
            else:
                channel = bundle.info.channel_of(int(label))
            scorer = _label_score(bundle.network, channel, region, own=bool(own_region))
        reporter.progress(1, 3, "Computing Grad-CAM")
        target_module = scorer.get_submodule(f"network.{layer}")
        keep = {id(p) for p in target_module.parameters()}
        saved = [(p, p.requires_grad) for p in scorer.parameters()]
        try:
            # Gradients are needed from the score back to the target layer only: layers before it need no
            # backward pass at all, which makes a whole-chest label map several times faster.
            for param, _ in saved:
                param.requires_grad_(id(param) in keep)
            with torch.enable_grad(), warnings.catch_warnings():
                # "full backward hook fires ... no inputs require gradients": exactly what is wanted here
                warnings.simplefilter("ignore", UserWarning)
                cam = CAMS[method](nn_module=scorer, target_layers=f"network.{layer}", upsampler=smooth_upsampler,
                              postprocessing=_scale_to_max)(x, class_idx=0)
        finally:
            for param, flag in saved:
                param.requires_grad_(flag)
        reporter.check()
        reporter.progress(2, 3, "Placing the map")
        cam = cam[0, :, :spatial[0], :spatial[1], :spatial[2]].detach().cpu().float()
        placed = resample_to_grid(MetaTensor(cam, affine=torch.as_tensor(pre_affine)), ras_affine(crop_affine),
                                  (xs.stop - xs.start, ys.stop - ys.start, zs.stop - zs.start), mode="bilinear")
        inside = np.clip(from_monai(placed[0]), 0, None) * edge_taper((zs, ys, xs), array.shape, affine)
        top = float(inside.max()) if inside.size else 0.0
        values = np.zeros(array.shape, np.float32)
        values[zs, ys, xs] = inside / top if top > 0 else inside
        reporter.progress(3, 3, f"Done in {time.perf_counter() - start:.1f} s")
        return SaliencyMap(values, affine, target=target_name, model_id=bundle.info.id)

    return (yield from drive(work, cancel))
