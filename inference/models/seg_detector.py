"""A detector built on a segmentation network: findings are the connected components of one of its labels.

It offers the part of MONAI's ``RetinaNetDetector`` interface that :mod:`inference.task` uses (``network``,
``inferer``, ``size_divisible``, the result keys, ``detector([image], use_inferer=...)``), so a bundle names it as
its ``detector`` and runs through the same code as the Model Zoo's RetinaNet. The built-in nodule detector is the
built-in segmentation network read this way (see its model card for why not a RetinaNet).
"""
from __future__ import annotations

import time

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer
from torch import nn

from inference.models.one_pass import pad_pass

#: A component of the network's lung labels smaller than this share of the largest is not a lung (the two lungs
#: are each a large share; islands it labels in the back are a thousandth).
LUNG_SHARE = 0.05


class SegmentationDetector(nn.Module):
    """Boxes around the connected components of ``channel`` in ``network``'s softmax, scored by their peak
    probability. Boxes are in the input's voxel coordinates, ``x0 y0 z0 x1 y1 z1`` with edges half a voxel outside
    the outermost voxel centres (MONAI's convention).

    Parameters
    ----------
    network
        A segmentation network returning per-label logits ``(B, C, x, y, z)``.
    channel
        The label whose components are findings.
    roi_size, overlap
        Sliding windows for large images (Gaussian blending).
    threshold
        Probability above which a voxel belongs to a candidate.
    faint_threshold
        Also propose the components at this lower probability that never reach ``threshold`` (None: none). They
        are added, not merged: a candidate at ``threshold`` keeps its box, where at the lower threshold it could
        run into faint neighbours (in a region run on LIDC-IDRI-0001 a 24 mm nodule's box grew to 54 mm). The
        network half sees ground glass: at 0.03 beside 0.1 the first stage proposed ground-glass and part-solid
        nodules of 9-15 mm it had missed.
    min_voxels
        Smaller components are dropped.
    classifier
        A second stage (:class:`inference.models.nodule_classifier.NoduleClassifier`) that re-scores the
        components on the study's own voxels (:func:`inference.task.run_bundle` calls it after the boxes are in
        patient space); the components are then candidates and ``threshold`` is set for recall.
    lungs
        Keep only what lies in or against the patient's lungs: ``{"channels": [...] the network's lung labels,
        "spacing_mm": [x, y, z] of its grid, "body_threshold": soft tissue on the input's scale, "reach_mm": r}``.
        The lungs are the network's argmax in ``channels`` inside the patient
        (:func:`inference.models.lungs.lung_components`: not touching the in-plane border, mostly inside the body,
        at least :data:`LUNG_SHARE` of the largest: lungs, not islands of "lung" or "nodule" in the chest wall);
        a component is kept when at least half of it lies within ``reach_mm`` of them. On LIDC-IDRI-0001 the
        network called soft tissue of the back and the air above the table "nodule"; one such component, 49 mm
        long and touching the lungs at three voxels, then scored 0.89 with the classifier.
    blobs
        Also propose the round blobs of :func:`inference.models.blob_candidates.blob_candidates` inside those lungs
        (needs ``lungs``) that no component already covers: small nodules the network misses. A dict of keyword
        arguments of ``blob_candidates`` (``{}``: its defaults). Their score is the network's probability at the
        blob's centre.
    """

    def __init__(self, network: nn.Module, channel: int, roi_size, overlap: float = 0.125, threshold: float = 0.3,
                 min_voxels: int = 2, size_divisible=(16, 16, 16), classifier: nn.Module | None = None,
                 lungs: dict | None = None, blobs: dict | None = None, faint_threshold: float | None = None):
        super().__init__()
        if blobs is not None and not lungs:
            raise ValueError("blob candidates are searched in the lungs: give `lungs` too")
        self.lungs = dict(lungs) if lungs else None
        self.blobs = dict(blobs) if blobs is not None else None
        self.network = network
        self.classifier = classifier
        self.channel = int(channel)
        self.threshold = float(threshold)
        self.faint_threshold = None if faint_threshold is None else float(faint_threshold)
        self.min_voxels = int(min_voxels)
        self.size_divisible = [int(v) for v in size_divisible]
        self.inferer = SlidingWindowInferer(roi_size=list(roi_size), overlap=overlap, mode="gaussian",
                                            sw_batch_size=1)
        self.target_box_key, self.target_label_key, self.pred_score_key = "box", "label", "label_scores"

    def forward(self, images: list[torch.Tensor], use_inferer: bool = False,
                logits: list[torch.Tensor] | None = None, bodies: list[dict | None] | None = None
                ) -> list[dict[str, torch.Tensor]]:
        """Findings per image ``(C, x, y, z)``. ``logits``: the network's ``(C, x, y, z)`` output per image, already
        computed the way this detector would (:mod:`inference.models.one_pass`; shared with the segmentation).
        ``bodies``: per image, the body mask already made on it (``{"threshold", "mask", ...}``, as
        :class:`inference.models.lungs.ChestPostprocessd` leaves it), used when it is for this detector's
        threshold and the image's shape."""
        results = []
        self.blob_seconds = 0.0  # the blob candidates' share of this call (timed apart by inference.task)
        for i, image in enumerate(images):
            if logits is not None:
                logits_i = logits[i][None]
            elif use_inferer:
                output = self.inferer(image[None], self.network)
                if not isinstance(output, torch.Tensor):
                    raise TypeError(f"the inferer gave a {type(output).__name__}, not the network's logits")
                logits_i = output
            else:  # one pass: pad the end of each axis to a multiple of size_divisible, as MONAI's detectors do
                logits_i = pad_pass(self.network, image[None], self.size_divisible)
            probabilities = torch.softmax(logits_i.float(), dim=1)[0]
            probability = probabilities[self.channel].cpu().numpy()
            pixels = image[0].cpu().numpy()
            body = bodies[i] if bodies else None
            lungs = self._patient_lungs(pixels, probabilities, body) if self.lungs else None
            found = self._boxes(probability, None if lungs is None else self._around(lungs))
            if self.blobs is not None and lungs is not None:
                start = time.perf_counter()
                found = self._with_blobs(found, pixels, lungs, probability)
                self.blob_seconds += time.perf_counter() - start
            results.append(found)
        return results

    def _patient_lungs(self, image: np.ndarray, probabilities: torch.Tensor, body: dict | None = None
                       ) -> np.ndarray:
        """The network's lungs (argmax in the lung channels) inside the patient, on its grid; all of them when none
        is (a field of view inside the chest). ``body``: see :meth:`forward`."""
        from inference.geometry import _channel_argmax
        from inference.models.lungs import body_mask, lung_components

        assert self.lungs is not None
        # the same labels as torch's argmax over the channels (first maximum wins), 1.0 s -> 0.1 s on LIDC-0001
        lung = np.isin(_channel_argmax(probabilities.cpu()).numpy(), self.lungs["channels"])
        threshold = float(self.lungs["body_threshold"])
        given = body["mask"] if body and body["threshold"] == threshold and body["mask"].shape == image.shape else None
        inside = lung_components(lung, body_mask(image, threshold) if given is None else given, LUNG_SHARE)
        # a field of view inside the chest (a targeted reconstruction, a crop) has lungs running out of the image,
        # which the border rule drops: then all the network calls lung is the lungs
        return inside if inside.any() else lung

    def _around(self, lungs: np.ndarray) -> np.ndarray:
        """``lungs`` widened by ``reach_mm`` (a box-shaped dilation: within reach along each axis)."""
        from inference.binary_morphology import box_dilate

        assert self.lungs is not None
        spacing = np.asarray(self.lungs["spacing_mm"], float)
        return box_dilate(lungs, [max(1, int(np.ceil(float(self.lungs["reach_mm"]) / s))) for s in spacing])

    def _with_blobs(self, found: dict, image: np.ndarray, lungs: np.ndarray,
                    probability: np.ndarray) -> dict[str, torch.Tensor]:
        from inference.models.blob_candidates import blob_candidates

        assert self.lungs is not None and self.blobs is not None
        boxes, _ = blob_candidates(image, lungs, self.lungs["spacing_mm"], **self.blobs)
        if not len(boxes):
            return found
        centres = (boxes[:, :3] + boxes[:, 3:]) / 2
        have = found[self.target_box_key].numpy().astype(np.float64)
        inside = ((centres[:, None, :] >= have[None, :, :3]) & (centres[:, None, :] <= have[None, :, 3:])).all(-1)
        new = ~inside.any(axis=1)
        boxes, centres = boxes[new], np.rint(centres[new]).astype(int)
        scores = probability[centres[:, 0], centres[:, 1], centres[:, 2]]
        box = torch.cat([found[self.target_box_key], torch.as_tensor(boxes, dtype=torch.float32)])
        score = torch.cat([found[self.pred_score_key], torch.as_tensor(scores, dtype=torch.float32)])
        return {self.target_box_key: box, self.target_label_key: torch.zeros(len(box), dtype=torch.long),
                self.pred_score_key: score}

    def _boxes(self, probability: np.ndarray, near: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """Boxes and peak scores of the candidate components (and of the faint ones, :attr:`faint_threshold`);
        with ``near`` (a mask), only components at least half inside it."""
        boxes, scores = self._components(probability, self.threshold, near)
        if self.faint_threshold is not None and self.faint_threshold < self.threshold:
            faint_boxes, faint_scores = self._components(probability, self.faint_threshold, near)
            faint = faint_scores < self.threshold  # a component reaching the threshold is already a candidate
            boxes, scores = np.concatenate([boxes, faint_boxes[faint]]), np.concatenate([scores, faint_scores[faint]])
        box = torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 6))
        return {self.target_box_key: box, self.target_label_key: torch.zeros(len(box), dtype=torch.long),
                self.pred_score_key: torch.as_tensor(np.asarray(scores, np.float32))}

    def _components(self, probability: np.ndarray, threshold: float, near: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """``(boxes (n, 6), peak probabilities (n,))`` of the components at ``threshold`` (see :meth:`_boxes`)."""
        import SimpleITK as sitk

        mask = (probability >= threshold).astype(np.uint8)
        boxes, scores = np.zeros((0, 6)), np.zeros(0)
        if mask.any():
            components = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(mask), True))
            # one pass over the candidate voxels for every component at once (a low candidate threshold gives
            # hundreds of components; a scan of the whole volume per component took seconds)
            where = np.flatnonzero(components)
            label = components.ravel()[where]
            n = int(label.max()) + 1
            counts = np.bincount(label, minlength=n)
            peaks = np.zeros(n)
            np.maximum.at(peaks, label, probability.ravel()[where])
            coords = np.stack(np.unravel_index(where, components.shape), axis=1)
            lo = np.full((n, 3), np.iinfo(np.int64).max)
            hi = np.full((n, 3), -1)
            for axis in range(3):
                np.minimum.at(lo[:, axis], label, coords[:, axis])
                np.maximum.at(hi[:, axis], label, coords[:, axis])
            large = counts >= max(self.min_voxels, 1)
            if near is not None:
                large &= np.bincount(label, weights=near.ravel()[where], minlength=n) >= 0.5 * counts
            keep = np.flatnonzero(large)
            keep = keep[keep > 0]
            boxes = np.concatenate([lo[keep] - 0.5, hi[keep] + 0.5], axis=1)
            scores = peaks[keep]
        return boxes, scores
