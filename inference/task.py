"""Run a model on a volume: preprocessing -> network (patch by patch) -> postprocessing, as a cancellable job.

:func:`infer` is the pipeline itself: a loaded bundle on one volume, synchronously on the calling thread, with an
optional :class:`Reporter` - what a batch worker calls, loading its bundle once (:func:`inference.bundle.
load_bundle`) for every volume it is handed. The stages are the same for every task; what differs (how the network
is applied, the postprocessing, a second stage, measurements) comes from one table, :data:`TASK_STEPS`.
:func:`run_bundle` runs :func:`infer` as a job, :func:`run_model` loads the model first when it is not loaded.

Jobs follow :mod:`inference.jobs`: a generator that yields :class:`Progress` ``(done, total, message, payload)``
and returns its result; the GUI drains it on a worker thread, the CLI and tests with :func:`run_job`. A cancel
token is a :class:`~inference.jobs.CancelToken` or anything with an ``is_set()`` method (``threading.Event``).

The heavy work runs on a helper thread so the job can yield a :class:`Progress` for every sliding-window patch
(MONAI's sliding window is a plain loop that cannot yield) and react to Cancel at once: the job polls the token
every 50 ms and raises :class:`Cancelled` within that time; the helper thread stops before its next patch and its
result is discarded. Importing this module loads no torch.

Results land on the input grid (:mod:`inference.types`):

- segmentation: the postprocessed prediction (``Invertd`` in the bundle brings it back; otherwise we resample
  it) -> argmax -> ``SegResult``;
- detection: the detector's boxes on the preprocessed image -> LPS mm via that image's affine -> our voxel
  indices -> ``Detections``; boxes longer than the model's ``max_finding_mm`` are dropped with a notice;
- saliency: a float map resampled linearly -> ``SaliencyMap``.
"""
from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np

from inference.jobs import Cancelled, Progress, is_cancelled
from inference.jobs import run_job as run_job  # re-exported: callers import it from here with the bundle runners
from inference.suitability import drop_oversized
from inference.types import Detections, SaliencyMap, SegResult, label_table

T = TypeVar("T")

POLL_SECONDS = 0.05
#: How long a cancelled job waits for the helper thread to finish its patch before returning anyway.
CANCEL_GRACE_SECONDS = 0.5


@dataclass
class InferenceResult:
    """What a run returns.

    ``timings`` in seconds per stage (``model`` when the bundle was loaded by the job, ``preprocess``,
    ``network``, ``postprocess``); ``messages`` are notices for the user (e.g. the CPU fallback);
    ``patches`` the number of network calls' windows; ``device`` where the network finally ran.
    """

    result: SegResult | Detections | SaliencyMap
    timings: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    messages: list[str] = field(default_factory=list)
    patches: int = 0


# ---------------------------------------------------------------------------------------------------------------
# Running work on a helper thread while the job yields its progress.

class _Stopped(Cancelled):
    """Raised inside the work at its next check after cancellation (a :class:`Cancelled` to a direct caller)."""


class Reporter:
    """Handed to the work function: report progress, post notices, and check for cancellation."""

    def __init__(self) -> None:
        self._events: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.messages: list[str] = []

    def progress(self, done: int, total: int, message: str = "") -> None:
        """Queue a progress step for the job to yield."""
        self._events.put(("progress", Progress(int(done), int(total), message)))

    def notice(self, message: str) -> None:
        """A message the user should see (kept in the result's ``messages`` too)."""
        self.messages.append(message)
        self._events.put(("progress", Progress(0, 0, message)))

    def check(self) -> None:
        """Raise inside the work when the job was cancelled."""
        if self.stop.is_set():
            raise _Stopped()


class _Quiet(Reporter):
    """:func:`infer` without a reporter: no progress, never cancelled; notices still reach the result."""

    def progress(self, done: int, total: int, message: str = "") -> None:
        pass

    def notice(self, message: str) -> None:
        self.messages.append(message)


def drive(work: Callable[[Reporter], T], cancel: Any = None, name: str = "hounsfield-inference"
          ) -> Generator[Progress, None, T]:
    """Run ``work(reporter)`` on a helper thread; yield its progress; return its result or raise its error.

    Cancellation is noticed within :data:`POLL_SECONDS`; the job then raises :class:`Cancelled` after at most
    :data:`CANCEL_GRACE_SECONDS` more, whether or not the helper thread has reached its next check.
    """
    if is_cancelled(cancel):  # cancelled before it started: never start the helper thread
        raise Cancelled()
    reporter = Reporter()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work(reporter)
        except _Stopped:
            outcome["stopped"] = True
        except BaseException as exc:  # noqa: BLE001 - handed to the job's thread
            outcome["error"] = exc
        finally:
            reporter._events.put(("end", None))

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    try:
        while True:
            if is_cancelled(cancel):
                reporter.stop.set()
                thread.join(CANCEL_GRACE_SECONDS)
                raise Cancelled()
            try:
                kind, payload = reporter._events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if kind == "progress":
                yield payload
                continue
            thread.join()
            if "error" in outcome:
                raise outcome["error"]
            if outcome.get("stopped"):
                raise Cancelled()
            return outcome["value"]
    finally:
        reporter.stop.set()  # also when the consumer drops the job (GeneratorExit)


# ---------------------------------------------------------------------------------------------------------------
# Patch counting.

def count_windows(image_size, roi_size, overlap) -> int:
    """Number of sliding windows MONAI's ``sliding_window_inference`` visits for one image."""
    from monai.inferers.utils import _get_scan_interval, dense_patch_slices
    from monai.utils import ensure_tuple_rep, fall_back_tuple

    dims = len(image_size)
    roi = fall_back_tuple(roi_size, image_size)
    size = tuple(max(int(image_size[i]), int(roi[i])) for i in range(dims))
    interval = _get_scan_interval(size, roi, dims, ensure_tuple_rep(overlap, dims))
    return len(dense_patch_slices(size, roi, interval))


@dataclass
class _Run:
    """One :func:`infer` call as its steps see it: the volume, where progress goes, the network windows counted."""

    bundle: Any
    array: np.ndarray
    affine: np.ndarray
    reporter: Reporter
    patch_batch: int | None
    done: int = 0
    total: int = 0
    #: The scored nodule findings kept with this run's network output (``{findings_key: (Detections, note)}``);
    #: None when the output is not kept.
    findings: dict | None = None
    #: Seconds of the postprocess spent finding nodule candidates (timed apart as ``candidates``).
    candidates: float = 0.0


def _monitor(network, run: _Run):
    """Wrap ``network`` so every call checks for cancel and reports the windows it processed."""
    import torch

    class Monitored(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x, *args, **kwargs):
            run.reporter.check()
            out = self.inner(x, *args, **kwargs)
            run.done += int(x.shape[0]) if hasattr(x, "shape") else 1
            total = max(run.total, run.done)
            run.reporter.progress(1 + run.done, total + 2, f"Running the model: patch {run.done}/{total}")
            return out

        def __getattr__(self, name):
            try:
                return super().__getattr__(name)
            except AttributeError:
                return getattr(super().__getattr__("inner"), name)

    return Monitored(network).train(bool(getattr(network, "training", False)))


# ---------------------------------------------------------------------------------------------------------------
# The pipeline.

def _preprocess(bundle, array: np.ndarray, affine: np.ndarray) -> dict:
    from monai.transforms import EnsureChannelFirst

    from inference.geometry import to_monai

    image = to_monai(array, affine)
    data = {bundle.image_key: image}
    if bundle.preprocessing is not None:
        data = bundle.preprocessing(data)
    if data[bundle.image_key].ndim == 3:  # the bundle did not add a channel
        data[bundle.image_key] = EnsureChannelFirst()(data[bundle.image_key])
    return data


def _run_inferer(run: _Run, data: dict):
    """The network's output on the preprocessed image, applied by the bundle's own inferer."""
    import torch
    from monai.inferers import SlidingWindowInferer

    from inference.device import run_with_cpu_fallback

    bundle = run.bundle
    image = data[bundle.image_key]
    inferer = bundle.inferer
    if isinstance(inferer, SlidingWindowInferer):
        if run.patch_batch:
            inferer.sw_batch_size = int(run.patch_batch)
        run.total = count_windows(tuple(image.shape[1:]), inferer.roi_size, inferer.overlap)
        inferer.device = torch.device("cpu")  # stitch on the CPU: our results end there anyway
    else:
        run.total = 1

    def step(device):
        run.done = 0
        bundle.to(device)
        monitored = _monitor(bundle.network, run)
        batch = image.unsqueeze(0).to(device)
        return inferer(batch, monitored)

    pred = run_with_cpu_fallback(step, bundle.device, run.reporter.notice)
    return pred[0].detach().cpu() if hasattr(pred, "detach") else pred[0]


# ---------------------------------------------------------------------------------------------------------------
# One network run for the models that share it (issue 11, "Run once").
#
# The built-in segmentation and nodule detection are the same network on the same preprocessed image, applied the
# same way (:mod:`inference.models.one_pass`). The last preprocessed image and network output are kept (one entry:
# the volume on screen), keyed by what determines them - the weights, network and preprocessing config (sha256),
# the volume's bytes, shape and affine, the device type - together with how the network was applied (the "plan":
# one padded pass or sliding windows with given settings). A model whose plan for that image differs runs the
# network itself, so each model gets exactly the output it would get alone.

_NETWORK_CACHE: dict = {}
_NETWORK_CACHE_LOCK = threading.Lock()


def clear_network_cache() -> None:
    """Forget the kept network output (a few hundred MB for a CT)."""
    with _NETWORK_CACHE_LOCK:
        _NETWORK_CACHE.clear()


def _inverts(transform) -> bool:
    from monai.transforms import Invertd

    if transform is None:
        return False
    if isinstance(transform, Invertd):
        return True
    return any(_inverts(t) for t in getattr(transform, "transforms", ()) or ())


def _sliding_plan(inferer) -> tuple:
    roi = inferer.roi_size
    overlap = inferer.overlap
    return ("sliding", tuple(int(r) for r in roi) if isinstance(roi, (list, tuple)) else roi,
            tuple(overlap) if isinstance(overlap, (list, tuple)) else float(overlap), str(inferer.mode),
            repr(inferer.sigma_scale), str(inferer.padding_mode), float(inferer.cval))


def _network_plan(bundle, spatial) -> tuple | None:
    """How ``bundle`` applies its network to a preprocessed image of ``spatial`` voxels, as a comparable tuple;
    None when that is not a rule this module runs itself (the bundle then runs as before, unshared)."""
    return task_steps(bundle.task).plan(bundle, spatial)


def _segmentation_plan(bundle, spatial) -> tuple | None:
    from monai.inferers import SlidingWindowInferer

    from inference.models.one_pass import OnePassInferer

    inferer = bundle.inferer
    if _inverts(bundle.postprocessing):  # Invertd undoes the preprocessing by its transforms' identity
        return None
    if isinstance(inferer, OnePassInferer):
        if inferer.one_pass(spatial):
            return ("one-pass", tuple(inferer.size_divisible))
        return _sliding_plan(inferer)
    return _sliding_plan(inferer) if type(inferer) is SlidingWindowInferer else None


def _detection_plan(bundle, spatial) -> tuple | None:
    from monai.utils import ensure_tuple_rep

    from inference.models.one_pass import fits_one_pass
    from inference.models.seg_detector import SegmentationDetector

    detector = bundle.detector
    if not isinstance(detector, SegmentationDetector):  # e.g. a RetinaNet: its own anchors and heads, unshared
        return None
    roi_size = ensure_tuple_rep(detector.inferer.roi_size, len(spatial))  # MONAI takes one int for every axis alike
    if bundle.force_sliding_window or not fits_one_pass(spatial, roi_size):
        return _sliding_plan(detector.inferer)
    return ("one-pass", tuple(detector.size_divisible))


def _run_plan(run: _Run, image, plan: tuple):
    """The network's ``(C, *spatial)`` output (a plain CPU tensor) on the preprocessed ``image``, applied as
    ``plan`` says."""
    import torch

    from inference.device import run_with_cpu_fallback
    from inference.models.one_pass import pad_pass

    bundle = run.bundle
    spatial = tuple(int(s) for s in image.shape[1:])
    inferer = bundle.inferer if bundle.detector is None else bundle.detector.inferer
    if plan[0] == "one-pass":
        run.total = 1
    else:
        if run.patch_batch:
            inferer.sw_batch_size = int(run.patch_batch)
        run.total = count_windows(spatial, inferer.roi_size, inferer.overlap)
        inferer.device = torch.device("cpu")  # stitch on the CPU: our results end there anyway

    def step(device):
        run.done = 0
        bundle.to(device)
        monitored = _monitor(bundle.network, run)
        batch = image.as_tensor().unsqueeze(0).to(device)
        if plan[0] == "one-pass":
            return pad_pass(monitored, batch, plan[1])
        return inferer(batch, monitored)

    pred = run_with_cpu_fallback(step, bundle.device, run.reporter.notice)
    pred = pred[0].detach().cpu()
    return pred.as_tensor() if hasattr(pred, "as_tensor") else pred


def _volume_key(bundle, array: np.ndarray, affine: np.ndarray) -> tuple | None:
    import hashlib

    if not getattr(bundle, "network_key", ""):
        return None
    # .data: the bytes as a memoryview (numpy's stubs declare ndarray a buffer only from Python 3.12)
    digest = hashlib.blake2b(np.ascontiguousarray(array).view(np.uint8).reshape(-1).data, digest_size=20).hexdigest()
    return (bundle.network_key, digest, array.shape, str(array.dtype), np.asarray(affine).tobytes(),
            str(getattr(bundle.device, "type", bundle.device)))


def _shared_network(run: _Run, timings: dict):
    """``(data, logits)`` for a bundle whose network run can be shared: from the kept entry when the same volume
    went through the same network the same way, else computed (and kept). ``(data, None)`` when the bundle applies
    its network in a way this module does not run itself; ``(None, None)`` when it cannot share at all."""
    bundle = run.bundle
    key = _volume_key(bundle, run.array, run.affine)
    if key is None:
        return None, None
    start = time.perf_counter()
    with _NETWORK_CACHE_LOCK:
        hit = _NETWORK_CACHE.get(key)
    # the kept tensors are never written to (postprocessing and the detector make new ones): no copies
    data = dict(hit[0]) if hit is not None else _prepare(bundle, run.array, run.affine)
    timings["preprocess"] = time.perf_counter() - start
    run.reporter.check()
    plan = _network_plan(bundle, tuple(int(s) for s in data[bundle.image_key].shape[1:]))
    if plan is None:
        return data, None
    start = time.perf_counter()
    if hit is not None and hit[1] == plan:
        logits, run.findings = hit[2], hit[3]
    else:
        logits = _run_plan(run, data[bundle.image_key], plan)
        run.findings = {}
        with _NETWORK_CACHE_LOCK:
            _NETWORK_CACHE.clear()  # one entry: the volume on screen
            _NETWORK_CACHE[key] = (dict(data), plan, logits, run.findings)
    timings["network"] = time.perf_counter() - start
    return data, logits


def _as_prediction(logits, image):
    """The network output as the ``MetaTensor`` the segmentation postprocessing expects (the image's grid)."""
    from monai.data import MetaTensor

    return MetaTensor(logits, affine=image.affine.clone(), meta={k: v for k, v in image.meta.items()
                                                                  if k != "affine"})


def _uncrop(result, box, array_shape, affine):
    """A result computed on the part ``box`` of a volume, placed on the whole volume's grid."""
    import dataclasses

    from inference.crop import crop_slices

    where = crop_slices(box)
    if isinstance(result, SegResult):
        labels = np.zeros(tuple(array_shape), dtype=result.labels.dtype)
        labels[where] = result.labels
        return dataclasses.replace(result, labels=labels, affine=affine)
    if isinstance(result, SaliencyMap):
        values = np.zeros(tuple(array_shape), dtype=result.values.dtype)
        values[where] = result.values
        return dataclasses.replace(result, values=values, affine=affine)
    offset = np.array([box[0], box[1], box[2]] * 2, dtype=np.int64)
    voxels = np.asarray(result.boxes_voxel, dtype=np.int64).reshape(-1, 6) + offset
    return dataclasses.replace(result, boxes_voxel=voxels, affine=affine, shape=tuple(int(s) for s in array_shape))


def _prepare(bundle, array: np.ndarray, affine: np.ndarray) -> dict:
    """The preprocessed data, the image cropped to the patient when the bundle asks for that (``crop_to_body``).

    The crop is taken on the model's own grid, its start on the network's stride (:func:`inference.crop.
    model_grid_box`): inside it the network sees the voxels it would see in the whole image. Results need no
    pasting back: boxes and label maps go through the cropped image's affine onto the study like any other.
    Only an image that needs sliding windows is cropped (``skip_one_pass``, default true): the network's padding
    then stands in for far-away air, which moves borderline findings a little (on the evaluation phantoms 13 -> 11
    findings with every image cropped); an image taken in one pass keeps the exact findings of the whole image.
    """
    import torch
    from monai.transforms import SpatialCrop

    from inference.crop import body_box, model_grid_box

    data = _preprocess(bundle, array, affine)
    settings = getattr(bundle, "crop_to_body", None)
    if not settings:
        return data
    box = body_box(array, affine, threshold_hu=settings.get("threshold_hu", -500.0),
                   margin_mm=settings.get("margin_mm", 10.0))
    if box is None:
        return data
    image = data[bundle.image_key]
    spatial = tuple(int(s) for s in image.shape[1:])
    plan = _network_plan(bundle, spatial)
    if settings.get("skip_one_pass", True) and plan is not None and plan[0] == "one-pass":
        return data  # the whole image goes through in one pass: its findings stay exactly those of the whole image
    crop = model_grid_box(box, affine, image.affine.detach().cpu().numpy(), spatial, int(settings.get("multiple", 16)))
    if crop is not None:  # a copy, not a view: the whole image is freed before the network runs
        cropped = SpatialCrop(roi_start=crop[0], roi_end=crop[1])(image)
        data[bundle.image_key] = cropped.clone(memory_format=torch.contiguous_format)
    return data


def _dense_network(run: _Run, data: dict, logits):
    """Segmentation and saliency: the kept network output when there is one, else the bundle's own run."""
    if logits is not None:
        return _as_prediction(logits, data[run.bundle.image_key])
    return _run_inferer(run, data)


def _postprocess_dense(bundle, data: dict, pred):
    """The bundle's postprocessing of the network output, as a ``(C, x, y, z)`` tensor on the model's grid."""
    data[bundle.pred_key] = pred
    data[bundle.image_key] = data[bundle.image_key].cpu()
    if bundle.postprocessing is not None:
        from inference.models.lungs import BODY_KEY

        processed = bundle.postprocessing(data)
        body = processed.get(BODY_KEY)
        if body is not None and body.get("image_key") == bundle.image_key:  # for the nodule finder on this image
            data[BODY_KEY] = body  # (:func:`_kept_findings`)
        data = processed
    out = data[bundle.pred_key]
    return out.unsqueeze(0) if out.ndim == 3 else out


def _saliency_map(run: _Run, data: dict, pred) -> SaliencyMap:
    """The map resampled linearly onto the input grid (several channels: the strongest non-background one)."""
    from inference.geometry import from_monai, ras_affine, resample_to_grid

    out = _postprocess_dense(run.bundle, data, pred)
    if out.shape[0] > 1:
        out = out[1:].amax(dim=0, keepdim=True)
    out = resample_to_grid(out.float(), ras_affine(run.affine), tuple(run.array.shape[::-1]), mode="bilinear")
    values = from_monai(out[0]).astype(np.float32)
    return SaliencyMap(values, run.affine, model_id=run.bundle.info.id)


def _label_map(run: _Run, data: dict, pred) -> SegResult:
    """The labels on the input grid, every value named, the nodule label checked when the bundle can."""
    import torch

    from inference.geometry import from_monai, ras_affine, resample_labels, resample_to_grid

    bundle, affine = run.bundle, run.affine
    out = _postprocess_dense(bundle, data, pred)
    shape_xyz = tuple(run.array.shape[::-1])
    target = ras_affine(affine)
    if out.shape[0] > 1:  # probabilities / logits: resample linearly (where it matters), then pick the label
        labels = resample_labels(out, target, shape_xyz)
    else:
        out = resample_to_grid(out, target, shape_xyz, mode="nearest")
        rounded = torch.round(out[0].float())
        rounded = rounded.to(torch.int16 if rounded.max() > 255 else torch.uint8)  # before the transpose: 8x less
        labels = from_monai(rounded)
    table = dict(bundle.info.table)
    top = int(labels.max()) if labels.size else 0
    unnamed = [v for v in range(1, top + 1) if v not in table]
    if len(unnamed) > 8:  # a full count; else a pass per unnamed value (usually none)
        unnamed = [int(v) for v in np.flatnonzero(np.bincount(labels.ravel())) if v and v not in table]
    missing = {v: f"label {v}" for v in unnamed if (labels == v).any()}
    if missing:  # a value the model card does not name: keep it, under a generic name
        table.update(label_table(missing))
    return _checked_nodules(run, data, pred, SegResult(labels, affine, table, model_id=bundle.info.id))


def _detect(run: _Run, data: dict, logits):
    """The detector's raw boxes on the preprocessed image (``logits``: the kept network output, or None)."""
    from inference.device import run_with_cpu_fallback

    bundle = run.bundle
    detector = bundle.detector
    if run.findings is not None and bundle.findings_key in run.findings:
        detector.blob_seconds = 0.0
        return None  # found already, on this network output (:func:`_shared_findings`)
    image = data[bundle.image_key]
    spatial = tuple(int(s) for s in image.shape[1:])
    divisible = tuple(int(d) for d in detector.size_divisible)
    padded = tuple(int(math.ceil(s / d) * d) for s, d in zip(spatial, divisible))
    sw = detector.inferer
    use_sw = sw is not None and (bundle.force_sliding_window or int(np.prod(spatial)) >= int(np.prod(sw.roi_size)))
    if logits is not None:
        pass  # counted where the network ran
    elif use_sw:
        if run.patch_batch:
            sw.sw_batch_size = int(run.patch_batch)
        run.total = count_windows(padded, sw.roi_size, sw.overlap)
    else:
        run.total = 1

    def step(device):
        run.done = 0
        bundle.to(device)
        original = detector.network
        detector.network = _monitor(original, run)
        try:
            return detector([image.as_tensor().to(device)], use_inferer=use_sw)[0]
        finally:
            detector.network = original

    if logits is not None:  # the network already ran on this image, the way this detector runs it
        out = detector([image.as_tensor()], use_inferer=use_sw, logits=[logits])[0]
    else:
        out = run_with_cpu_fallback(step, bundle.device, run.reporter.notice)
    return _raw_boxes(detector, out, image)


def _raw_boxes(detector, out: dict, image) -> tuple:
    """``(boxes, labels, scores, image affine (RAS), spatial size)`` of a detector's output on ``image``."""
    import torch

    boxes = out[detector.target_box_key].detach().cpu().to(torch.float64).numpy().reshape(-1, 6)
    labels = out[detector.target_label_key].detach().cpu().numpy().reshape(-1)
    scores = out[detector.pred_score_key].detach().cpu().to(torch.float64).numpy().reshape(-1)
    return boxes, labels, scores, image.affine.detach().cpu().numpy().astype(np.float64), tuple(image.shape[1:])


def _detections(bundle, raw, array_shape, affine) -> Detections:
    from inference.geometry import box_corners, lps_affine, voxel_box

    boxes, labels, scores, pre_affine_ras, spatial = raw
    # As the bundle's ClipBoxToImaged: clip to the (preprocessed) image, drop boxes left empty.
    upper = np.array(spatial * 2, dtype=np.float64)
    boxes = np.clip(boxes, 0, upper) if len(boxes) else boxes
    keep = np.all(boxes[:, 3:] > boxes[:, :3], axis=1) if len(boxes) else np.zeros(0, bool)
    boxes, labels, scores = boxes[keep], labels[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    boxes, labels, scores = boxes[order], labels[order], scores[order]
    to_lps = lps_affine(pre_affine_ras)
    boxes_lps, boxes_voxel = [], []
    for box in boxes:
        corners = box_corners(box) @ to_lps[:3, :3].T + to_lps[:3, 3]
        boxes_lps.append(np.concatenate([corners.min(axis=0), corners.max(axis=0)]))
        boxes_voxel.append(voxel_box(corners, affine, array_shape))
    table = bundle.info.table
    return Detections(np.array(boxes_lps).reshape(-1, 6), np.array(boxes_voxel).reshape(-1, 6), scores,
                      labels.astype(np.int64) + 1, affine, tuple(array_shape), table, bundle.info.id)


def _findings(run: _Run, data: dict, raw) -> Detections:
    """The detector's boxes on the input grid, oversized ones dropped, re-scored by its second stage."""
    return _shared_findings(run, lambda: _scored(run, raw, getattr(run.bundle.detector, "classifier", None)))


def _scored(run: _Run, raw, classifier) -> tuple[Detections, str | None]:
    """A detector's raw boxes (:func:`_raw_boxes`) on the input grid, oversized ones dropped, re-scored on the
    study's own voxels by ``classifier`` (a second stage; None: the first stage's scores); and the note of what was
    dropped."""
    result = _detections(run.bundle, raw, run.array.shape, run.affine)
    # a box larger than any finding the model was made for is not a finding (a "nodule" 216 mm long)
    result, note = drop_oversized(result, getattr(run.bundle.info, "max_finding_mm", None))
    if classifier is not None:
        from inference.models.nodule_classifier import rescore

        result = rescore(classifier, result, run.array, run.affine)
    return result, note


def _shared_findings(run: _Run, make: Callable[[], tuple[Detections, str | None]], notify: bool = True
                     ) -> Detections:
    """The scored findings ``make`` gives, or those a bundle with the same ``findings_key`` made on this network
    output (the built-in segmentation's nodule finder and the built-in detector: "run all" finds them once). Its
    note (oversized boxes dropped) goes to the reporter when ``notify``."""
    key = run.bundle.findings_key
    if run.findings is not None and key and key in run.findings:
        found, note = run.findings[key]
    else:
        found, note = make()
        if run.findings is not None and key:
            run.findings[key] = (found, note)
    if note and notify:
        run.reporter.notice(note)
    # a copy: the caller adds its measurements, and the labels are named by its own model card
    return replace(found, table=dict(run.bundle.info.table), model_id=run.bundle.info.id, measurements=None)


def _checked_nodules(run: _Run, data: dict, logits, result: SegResult) -> SegResult:
    """A segmentation's nodule label checked by its bundle's nodule classifier, when it has one, with the findings
    of its nodule finder drawn in (:mod:`inference.confirm_nodules`)."""
    bundle = run.bundle
    classifier = getattr(bundle, "nodule_classifier", None)
    threshold = getattr(bundle.info, "operating_point", None)
    if classifier is None or threshold is None:
        return result
    nodule = next((v for v, label in result.table.items() if label.name == "nodule"), None)
    if nodule is None:
        return result
    from inference.confirm_nodules import confirm_nodules

    findings = _kept_findings(run, data, logits, classifier, threshold)
    return replace(result, labels=confirm_nodules(result.labels, nodule, run.array, run.affine, classifier, threshold,
                                                  findings, getattr(bundle.info, "max_finding_mm", None)))


def _tensor(value):
    """A ``MetaTensor`` as its plain tensor (the detector's arithmetic needs no metadata); others as they are."""
    return value.as_tensor() if hasattr(value, "as_tensor") else value


def _kept_findings(run: _Run, data: dict, logits, classifier, threshold: float) -> np.ndarray:
    """Voxel boxes of the findings a segmentation bundle's ``nodule_finder`` proposes on the network's ``logits``
    and ``classifier`` scores at ``threshold`` or more: what the detector bundle on the same network would show."""
    finder = getattr(run.bundle, "nodule_finder", None)
    if finder is None:
        return np.zeros((0, 6), np.int64)

    def make() -> tuple[Detections, str | None]:
        from inference.models.lungs import BODY_KEY

        image = data[run.bundle.image_key]
        found = finder([_tensor(image)], logits=[_tensor(logits)], bodies=[data.get(BODY_KEY)])[0]
        return _scored(run, _raw_boxes(finder, found, image), classifier)

    start = time.perf_counter()
    found = _shared_findings(run, make, notify=False)  # a segmentation has no findings to tell about
    run.candidates += time.perf_counter() - start
    return found.boxes_voxel[found.scores >= threshold]


#: Detectors whose findings are lung nodules on CT: their boxes get the reader's measurements.
MEASURED_DETECTORS = ("hounsfield-chest-ct-nodule-detection",)
#: Findings scoring below this are not measured (None): the detector's scores are calibrated probabilities, and
#: candidates under a 5 % chance of being a nodule (most of them) are not worth 50-300 ms each.
MEASURE_MIN_SCORE = 0.05


def _with_measurements(run: _Run, detections: Detections) -> Detections:
    """The nodule measurements (:mod:`inference.nodule_measurements`) of the built-in nodule detector's findings,
    from the original HU array; other detectors' results pass through unchanged."""
    if run.bundle.info.id not in MEASURED_DETECTORS or len(detections) == 0:
        return detections
    from inference.nodule_measurements import measure_detections

    detections.measurements = measure_detections(run.array, run.affine, detections, MEASURE_MIN_SCORE)
    return detections


def _no_plan(bundle, spatial) -> None:
    return None


@dataclass(frozen=True)
class TaskSteps:
    """The steps of :func:`infer` that depend on the bundle's task; the rest (preprocessing, the crop to the body,
    the kept network output, progress, timings) is the same for every task.

    Each step gets the call in progress (its ``bundle``, ``array``, ``affine``, ``reporter``).

    Attributes
    ----------
    plan
        ``(bundle, spatial) -> tuple | None``: how the bundle applies its network to a preprocessed image of
        ``spatial`` voxels, so that models applying the same network the same way share one run; None: the bundle
        runs its network its own way, unshared.
    network
        ``(run, data, logits) -> raw``: the network's output on the preprocessed ``data`` (``logits``: the shared
        output when there is one, else None). Timed as ``network``.
    postprocess
        ``(run, data, raw) -> result``: the result on the input grid (:mod:`inference.types`). Timed as
        ``postprocess``.
    measure
        ``(run, result) -> result`` with measurements added, timed apart as ``measurements``; None: no such stage.
    """

    plan: Callable[[Any, tuple], tuple | None]
    network: Callable[[_Run, dict, Any], Any]
    postprocess: Callable[[_Run, dict, Any], SegResult | Detections | SaliencyMap]
    measure: Callable[[_Run, Any], Any] | None = None


#: The task-specific steps, by task (:data:`inference.registry.TASKS`).
TASK_STEPS: dict[str, TaskSteps] = {
    "segmentation": TaskSteps(_segmentation_plan, _dense_network, _label_map),
    "detection": TaskSteps(_detection_plan, _detect, _findings, measure=_with_measurements),
    "saliency": TaskSteps(_no_plan, _dense_network, _saliency_map),
}


def task_steps(task: str) -> TaskSteps:
    """The steps of ``task`` from :data:`TASK_STEPS`.

    Raises
    ------
    ValueError
        When no steps are known for ``task`` (the message names the tasks that have them).
    """
    try:
        return TASK_STEPS[task]
    except KeyError:
        raise ValueError(f"no inference steps for task '{task}' (known tasks: {', '.join(TASK_STEPS)})") from None


def _default_patch_batch(device) -> int | None:
    # One window per network call on the CPU: the same result (windows are independent in eval mode) with a
    # progress step and a cancel check per window. GPUs keep the bundle's batch for throughput.
    return 1 if getattr(device, "type", "cpu") == "cpu" else None


def infer(bundle, array: np.ndarray, affine: np.ndarray, reporter: Reporter | None = None, *,
          patch_batch: int | None = None, region=None) -> InferenceResult:
    """Run a loaded bundle on one volume, on the calling thread; the entry point for batch runs.

    The stages are the same for every task (preprocess -> network -> postprocess, each timed); what differs by
    task comes from :data:`TASK_STEPS`. One bundle serves any number of volumes, one call at a time (a call moves
    its network between devices and swaps its detector's network while it runs). torch's thread count is left as
    it is (:func:`inference.device.configure_threads`).

    Parameters
    ----------
    bundle
        From :func:`inference.bundle.load_bundle`.
    array, affine
        The volume ``(z, y, x)`` (HU for CT) and its index -> LPS affine. Not modified.
    reporter
        Where progress and notices go and where cancellation is checked (the one :func:`drive` hands its work
        function); None: no progress and no cancellation, notices only in the result's ``messages``.
    patch_batch
        Windows per network call; default 1 on the CPU (per-patch progress and cancel), the bundle's on a GPU.
    region
        Run on this voxel box ``(z0, y0, x0, z1, y1, x1)`` of the volume only, results placed on the whole volume
        (e.g. :func:`inference.crop.lung_box` of our lung mask for the Model Zoo RetinaNet, whose sliding windows
        then cover the lungs instead of the field of view). None: the whole volume.

    Returns
    -------
    InferenceResult
        The result on the volume's grid, with timings ``preprocess``, ``network``, ``postprocess`` (and
        ``candidates``, ``measurements`` where the task has them), the device, notices and the network windows.

    Raises
    ------
    ValueError
        When the volume is not 3D, or no steps are known for the bundle's task.
    Cancelled
        At the first check after ``reporter.stop`` is set.
    """
    steps = task_steps(bundle.task)
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"expected a (z, y, x) grey volume, got shape {array.shape}")
    affine = np.asarray(affine, dtype=np.float64)
    reporter = reporter if reporter is not None else _Quiet()
    if region is not None:
        from inference.crop import crop_affine, crop_slices

        box = tuple(int(v) for v in region)
        outcome = infer(bundle, array[crop_slices(box)], crop_affine(affine, box), reporter, patch_batch=patch_batch)
        outcome.result = _uncrop(outcome.result, box, array.shape, affine)
        return outcome
    import torch

    batch = patch_batch if patch_batch is not None else _default_patch_batch(bundle.device)
    run = _Run(bundle, array, affine, reporter, batch)
    first_message = len(reporter.messages)  # a reporter may serve several calls
    timings: dict[str, float] = {}
    with torch.no_grad():
        reporter.progress(0, 0, "Preparing the image")
        data, logits = _shared_network(run, timings)
        if data is None:  # not shareable: as before, plus the crop to the body when the bundle asks for it
            start = time.perf_counter()
            data = _prepare(bundle, array, affine)
            timings["preprocess"] = time.perf_counter() - start
        reporter.check()
        start = time.perf_counter()
        raw = steps.network(run, data, logits)
        timings["network"] = timings.get("network", 0.0) + time.perf_counter() - start
        blobs = getattr(bundle.detector, "blob_seconds", 0.0)
        if blobs:  # image filtering, not the network: its own line
            timings["network"] -= blobs
            timings["candidates"] = blobs
        reporter.check()
        total = run.total + 2
        reporter.progress(total - 1, total, "Post-processing")
        start = time.perf_counter()
        result = steps.postprocess(run, data, raw)
        timings["postprocess"] = time.perf_counter() - start - run.candidates
        if run.candidates:  # a segmentation's nodule finder: the detector's candidates, on their own line
            timings["candidates"] = timings.get("candidates", 0.0) + run.candidates
        if steps.measure is not None:  # issue 11 "measure them": the reader's figures of each finding
            start = time.perf_counter()
            result = steps.measure(run, result)
            timings["measurements"] = time.perf_counter() - start
        reporter.progress(total, total, "Done")
    return InferenceResult(result, timings, str(bundle.device), reporter.messages[first_message:], run.done)


def run_bundle(bundle, array: np.ndarray, affine: np.ndarray, *, cancel: Any = None, threads: int | None = None,
               patch_batch: int | None = None, region=None) -> Generator[Progress, None, InferenceResult]:
    """Run a loaded bundle on one volume (a job: yields :class:`Progress`, returns :class:`InferenceResult`).

    :func:`infer` on a helper thread (:func:`drive`), with progress per patch and Cancel.

    Parameters
    ----------
    bundle, array, affine, patch_batch, region
        As for :func:`infer`.
    cancel
        A cancel token (see module docstring).
    threads
        torch CPU threads; default leaves the GUI a core.

    Raises
    ------
    Cancelled
        Within 50 ms of the token being set (plus at most 0.5 s grace for the running patch).
    """
    from inference.device import configure_threads

    configure_threads(threads)
    return (yield from drive(lambda reporter: infer(bundle, array, affine, reporter, patch_batch=patch_batch,
                                                    region=region), cancel))


def load_model(model, *, device: str | None = None, cancel: Any = None, trusted: bool | None = None,
               random_weights: bool = False, overrides: dict | None = None, extra_dirs=()
               ) -> Generator[Progress, None, Any]:
    """Load a model (registry id, bundle folder or ``ModelInfo``) as a job; returns the
    :class:`~inference.bundle.LoadedBundle` (see :func:`inference.bundle.load_bundle` for the options)."""
    from inference.bundle import load_bundle
    from inference.registry import ModelInfo, find_model

    info = model if isinstance(model, ModelInfo) else find_model(model, extra_dirs)

    def load(reporter: Reporter):
        reporter.progress(0, 0, f"Loading {info.name}")
        return load_bundle(info, device=device, trusted=trusted, random_weights=random_weights, overrides=overrides)

    return (yield from drive(load, cancel))


def run_model(model, array: np.ndarray, affine: np.ndarray, *, device: str | None = None, cancel: Any = None,
              trusted: bool | None = None, random_weights: bool = False, overrides: dict | None = None,
              threads: int | None = None, patch_batch: int | None = None,
              extra_dirs=(), region=None) -> Generator[Progress, None, InferenceResult]:
    """Run a model on one volume (a job): a :class:`~inference.bundle.LoadedBundle` as it is, or a registry id,
    bundle folder or ``ModelInfo`` loaded first.

    A loaded bundle goes straight to :func:`run_bundle` (the load options are then not used); anything else is
    :func:`load_model` followed by :func:`run_bundle`, the load timed as ``model``.
    """
    from inference.bundle import LoadedBundle

    bundle = model
    seconds = None
    if not isinstance(model, LoadedBundle):
        start = time.perf_counter()
        bundle = yield from load_model(model, device=device, cancel=cancel, trusted=trusted,
                                       random_weights=random_weights, overrides=overrides, extra_dirs=extra_dirs)
        seconds = time.perf_counter() - start
    outcome = yield from run_bundle(bundle, array, affine, cancel=cancel, threads=threads, patch_batch=patch_batch,
                                    region=region)
    if seconds is not None:
        outcome.timings = {"model": seconds, **outcome.timings}
    return outcome
