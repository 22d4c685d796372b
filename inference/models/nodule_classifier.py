"""Second stage of the built-in nodule detector: a small 3D CNN that scores each candidate on a native-resolution
patch, and the calibration that turns its output into a probability.

The first stage (:class:`inference.models.seg_detector.SegmentationDetector` at a low threshold) is tuned for
recall: every blob the segmentation network half believes in is a candidate, with many vessels and scars among
them. This stage looks at each candidate again, on the original image rather than the network's 1.25 x 1.25 x 2.5
mm grid, and says how likely it is to be a nodule:

* the patch is 32^3 voxels of isotropic spacing resampled (trilinear) from the study's own voxels around the
  candidate's centre, its spacing growing with the candidate (1 mm up to 24 mm boxes, 2 mm at 48 mm) so a 3 mm
  nodule and a 40 mm mass both fill it; two channels: the lung window and a bone window (calcification);
* two numbers go beside the image: the candidate's size (log mm) and the patch spacing. The first stage's
  probability is left out on purpose: the classifier then does not depend on which first-stage weights found its
  training candidates, and it judges the image rather than echoing the network it is meant to check;
* the output logit is mapped to a probability by Platt scaling (``sigmoid(a * logit + b)``) fitted on held-out
  phantoms (:data:`inference.training.data.CALIBRATION_SEEDS`), stored with the weights as buffers.

All geometry is in LPS mm; arrays are ``(z, y, x)`` with the index -> LPS affine of :mod:`viewer.core.volume`.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

PATCH = 32
MIN_SPACING_MM, MAX_SPACING_MM = 1.0, 2.0
LUNG_WINDOW = (-1000.0, 400.0)
BONE_WINDOW = (-200.0, 1200.0)
N_SCALARS = 2


def patch_spacing(extent_mm: float) -> float:
    """Isotropic spacing (mm) of a candidate's patch: its box fills about three quarters of the patch."""
    return float(np.clip(extent_mm / (0.75 * PATCH), MIN_SPACING_MM, MAX_SPACING_MM))


#: Largest index error (voxels, over a patch) for which an affine counts as axis-aligned and the separable sampler
#: is used: at a steep 1000 HU a voxel that is 1e-3 HU at most, below the float32 rounding of the patch.
AXIS_ALIGNED_TOLERANCE = 1e-6


def sample_patch(array: np.ndarray, affine: np.ndarray, centre_lps, spacing_mm: float,
                 size: int = PATCH) -> np.ndarray:
    """``(size, size, size)`` float32 HU around ``centre_lps``, axes (S, P, L) i.e. (z, y, x) in patient space,
    trilinear from ``array`` (outside the volume: -1024 HU, air).

    When the volume's axes run along the patient's (any order and direction: axial, coronal or sagittal
    acquisitions, the common case) each patch axis samples a single array axis and the interpolation is separable:
    a block of the array, then one 1-D linear interpolation per axis (:func:`_separable_patch`, about 1 ms a patch
    against 26 ms for the 8 gathers of :func:`sample_patch_generic`; the same values to float rounding). Oblique
    volumes take the generic path.
    """
    to_index = np.linalg.inv(affine[:3, :3])  # LPS mm -> (x, y, z) voxel index
    offsets = (np.arange(size) - (size - 1) / 2) * spacing_mm
    lps_axis = _aligned_axes(to_index, float(np.abs(offsets).max(initial=0.0)))
    if lps_axis is None:
        return sample_patch_generic(array, affine, centre_lps, spacing_mm, size)
    centre_index = to_index @ (np.asarray(centre_lps, float) - affine[:3, 3])
    return _separable_patch(array, centre_index, to_index, lps_axis, offsets)


def sample_patch_generic(array: np.ndarray, affine: np.ndarray, centre_lps, spacing_mm: float,
                         size: int = PATCH) -> np.ndarray:
    """:func:`sample_patch` for any affine: every patch point mapped to the volume and interpolated
    (:func:`trilinear`)."""
    offsets = (np.arange(size) - (size - 1) / 2) * spacing_mm
    zz, yy, xx = np.meshgrid(offsets, offsets, offsets, indexing="ij")
    lps = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], axis=1) + np.asarray(centre_lps, float)
    index = (lps - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T  # (x, y, z) voxel index
    return trilinear(array, index[:, ::-1]).reshape(size, size, size)


def trilinear(array: np.ndarray, zyx: np.ndarray, outside: float = -1024.0) -> np.ndarray:
    """Values of ``array`` at fractional ``(n, 3)`` ``zyx`` indices, linear in each axis; ``outside`` beyond it."""
    shape = np.array(array.shape)
    base = np.floor(zyx).astype(np.int64)
    frac = (zyx - base).astype(np.float32)
    out = np.zeros(len(zyx), np.float32)
    for corner in range(8):
        bits = np.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
        idx = base + bits
        weight = np.prod(np.where(bits, frac, 1 - frac), axis=1)
        inside = np.all((idx >= 0) & (idx < shape), axis=1)
        values = np.full(len(zyx), outside, np.float32)
        values[inside] = array[idx[inside, 0], idx[inside, 1], idx[inside, 2]]
        out += weight * values
    return out


def _aligned_axes(to_index: np.ndarray, reach_mm: float) -> list[int] | None:
    """For an axis-aligned ``to_index`` (LPS mm -> (x, y, z) index): the LPS axis each index axis follows; None
    when some index axis moves by more than :data:`AXIS_ALIGNED_TOLERANCE` voxels along another LPS axis within
    ``reach_mm`` of the centre (an oblique volume)."""
    magnitude = np.abs(to_index)
    lps_axis = [int(k) for k in magnitude.argmax(axis=1)]
    if sorted(lps_axis) != [0, 1, 2]:
        return None
    others = magnitude.copy()
    others[[0, 1, 2], lps_axis] = 0
    return lps_axis if others.sum(axis=1).max() * reach_mm <= AXIS_ALIGNED_TOLERANCE else None


def _separable_patch(array: np.ndarray, centre_index: np.ndarray, to_index: np.ndarray, lps_axis: list[int],
                     offsets: np.ndarray, outside: float = -1024.0) -> np.ndarray:
    """The patch of :func:`sample_patch` for an axis-aligned volume: ``lps_axis[c]`` is the LPS axis that index axis
    ``c`` (x, y, z) follows. The block of voxels the patch touches (``outside`` where it leaves the volume, so a
    corner beyond the edge weighs in as air exactly as in :func:`trilinear`) is contracted with one ``(size, n)``
    matrix of linear-interpolation weights per array axis."""
    size = len(offsets)
    rows = np.arange(size)
    weights, spans = [], []
    for axis in range(3):  # array axis (z, y, x) = index axis 2 - axis
        c = 2 - axis
        position = centre_index[c] + to_index[c, lps_axis[c]] * offsets
        base = np.floor(position).astype(np.int64)
        frac = position - base
        lo, hi = int(base.min()), int(base.max()) + 2  # every corner: base and base + 1
        w = np.zeros((size, hi - lo))
        w[rows, base - lo] = 1 - frac
        w[rows, base + 1 - lo] = frac
        weights.append(w)
        spans.append((lo, hi))
    block = np.full([hi - lo for lo, hi in spans], outside, np.float64)
    source = tuple(slice(max(lo, 0), min(hi, n)) for (lo, hi), n in zip(spans, array.shape))
    if all(s.stop > s.start for s in source):
        block[tuple(slice(s.start - lo, s.stop - lo) for s, (lo, _) in zip(source, spans))] = array[source]
    out = block @ weights[2].T  # (z, y, size): the last axis first (the longest in an axial CT)
    out = np.matmul(weights[1], out)  # (z, size, size)
    out = np.tensordot(weights[0], out, axes=(1, 0))  # (size, size, size), in array-axis order
    # patch axes are (S, P, L) = LPS axes (2, 1, 0): array axis a holds patch axis 2 - lps_axis[2 - a]
    patch_axis = [2 - lps_axis[2 - a] for a in range(3)]
    return np.ascontiguousarray(out.transpose(np.argsort(patch_axis)), dtype=np.float32)


def patch_channels(hu: np.ndarray) -> np.ndarray:
    """``(2, ...)`` float32: the HU patch scaled 0..1 through the lung and the bone window."""
    return np.stack([np.clip((hu - lo) / (hi - lo), 0, 1) for lo, hi in (LUNG_WINDOW, BONE_WINDOW)]).astype(np.float32)


def candidate_scalars(extent_mm: float, spacing_mm: float) -> np.ndarray:
    """The numbers the classifier reads beside the patch (see the module docstring)."""
    return np.array([np.log(max(extent_mm, 1.0)) - 2.3, spacing_mm - 1.5], np.float32)


def candidate_inputs(array: np.ndarray, affine: np.ndarray, centre_lps, extent_mm: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``(patch (2, 32, 32, 32), scalars (2,))`` for one candidate."""
    spacing = patch_spacing(extent_mm)
    patch = patch_channels(sample_patch(array, affine, centre_lps, spacing))
    return patch, candidate_scalars(extent_mm, spacing)


def _conv(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(c_out),
            nn.ReLU(inplace=True)]


class CandidateNet(nn.Module):
    """One network of the classifier: a strided convolution (32^3 -> 16^3; full-resolution convolutions cost three
    times as much on a CPU for no measured gain), two blocks of two convolutions (16 and 32 channels, each followed
    by max pooling, -> 4^3), global average and max pooling, the candidate's scalars, two linear layers; a logit."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(*_conv(2, 16, stride=2), *_conv(16, 16), nn.MaxPool3d(2),
                                      *_conv(16, 32), *_conv(32, 32), nn.MaxPool3d(2))
        self.head = nn.Sequential(nn.Linear(2 * 32 + N_SCALARS, 64), nn.ReLU(inplace=True), nn.Dropout(0.2),
                                  nn.Linear(64, 1))

    def forward(self, patches: torch.Tensor, scalars: torch.Tensor) -> torch.Tensor:
        features = self.features(patches)
        pooled = torch.cat([features.mean(dim=(2, 3, 4)), features.amax(dim=(2, 3, 4))], dim=1)
        return self.head(torch.cat([pooled, scalars], dim=1))[:, 0]


#: Networks in the shipped classifier, trained apart (seeds 0, 1, 2) and averaged. One network's ranking of the one
#: real scan's nodule moved from 0.15 to 1.75 false positives per calibration scan between training runs that
#: differed only in their random draws; the mean of three moves less.
MEMBERS = 3


class NoduleClassifier(nn.Module):
    """Nodule-or-not for a candidate patch: the mean logit of ``members`` :class:`CandidateNet` trained apart.
    ``forward`` gives that logit; :meth:`probability` the calibrated probability (Platt ``a``, ``b`` buffers, saved
    in the state dict)."""

    platt: torch.Tensor  # a registered buffer: (a, b)

    def __init__(self, members: int = MEMBERS) -> None:
        super().__init__()
        self.members = nn.ModuleList(CandidateNet() for _ in range(members))
        self.register_buffer("platt", torch.tensor([1.0, 0.0]))

    def forward(self, patches: torch.Tensor, scalars: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(patches, scalars) for member in self.members]).mean(dim=0)

    def probability(self, patches: torch.Tensor, scalars: torch.Tensor) -> torch.Tensor:
        """Calibrated probability that each candidate is a nodule."""
        return torch.sigmoid(self.platt[0] * self.forward(patches, scalars) + self.platt[1])


def probabilities(classifier: NoduleClassifier, array: np.ndarray, affine: np.ndarray, centres_lps, extents_mm,
                  batch: int = 64) -> np.ndarray:
    """Calibrated probability (float64) that each candidate (LPS centre, largest extent in mm) is a nodule."""
    inputs = [candidate_inputs(array, affine, c, e) for c, e in zip(centres_lps, extents_mm)]
    if not inputs:
        return np.zeros(0)
    device = next(classifier.parameters()).device
    patches = torch.from_numpy(np.stack([p for p, _ in inputs])).to(device)
    scalars = torch.from_numpy(np.stack([s for _, s in inputs])).to(device)
    classifier.eval()
    with torch.no_grad():
        return torch.cat([classifier.probability(patches[i:i + batch], scalars[i:i + batch]).cpu()
                          for i in range(0, len(patches), batch)]).numpy().astype(np.float64)


def rescore(classifier: NoduleClassifier, detections, array: np.ndarray, affine: np.ndarray, *,
            batch: int = 64, floor: float = 0.02):
    """The detections re-scored by ``classifier`` on ``array`` (the study's own voxels), highest first.

    Candidates whose probability is below ``floor`` are dropped: they would never be shown, and a reader
    lowering the threshold wants the plausible ones, not hundreds of vessels.
    """
    from dataclasses import replace

    if not len(detections):
        return detections
    scores = probabilities(classifier, array, affine, detections.centers_lps, detections.sizes_mm.max(axis=1), batch)
    keep = np.flatnonzero(scores >= floor)
    order = keep[np.argsort(-scores[keep], kind="stable")]
    measurements = detections.measurements
    return replace(detections, boxes_lps=detections.boxes_lps[order], boxes_voxel=detections.boxes_voxel[order],
                   scores=scores[order], labels=detections.labels[order],
                   measurements=None if measurements is None else [measurements[i] for i in order])
