"""Load a catalogued series into a :class:`~viewer.core.volume.Volume`, progressively and cancellably.

Steps: collect every frame's geometry (from the scan's :class:`InstanceHeader` frames; enhanced objects carry
per-frame geometry from their functional groups), plan the stack (:func:`geometry.plan_stack`: sort along the
normal, affine from positions, warnings), choose the voxel type from the first slice's header, preallocate the
whole volume, then decode slice by slice: inline for uncompressed data, and for compressed data slices 0 and 1
inline, then on worker processes when slice 1's decoding time says they pay (:mod:`decode_pool`), else threads.

Progress and order: the job yields right after allocation (``slices_loaded == 0``) and then every few slices.
Slices are filled from the end of the stack the series opens nearer to (:func:`~viewer.core.display.opening_slice`:
axial CT opens at image 1, the head end, which is the array's last slice for a feet-to-head stack), so the image
the user sees first is decoded first; ``volume.slices_loaded == k`` means the first ``k`` slices in that order are
final (``volume.loaded_range()``; workers may finish out of order, the counter only advances over a complete
run). The GUI can show the opening image while the rest is still decoding.

Voxel type: int16 when the rescale is integral and the values fit, float32 otherwise, uint8 ``(z, y, x, 3)``
for colour. The choice is made from the first slice; should a later slice not fit int16 (a different rescale,
an out-of-range value) the array is promoted to float32 once, and ``volume.array`` is replaced by the new array
- consumers must read ``volume.array`` afresh at each progress step rather than keep the old object.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from concurrent.futures import BrokenExecutor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from viewer.core.dicom import geometry, limits
from viewer.core.dicom.decode import CT_AIR_HU, DecodeError, FrameSource, PixelHeader, read_pixel_header
from viewer.core.dicom.display_info import attach_display_info
from viewer.core.dicom.model import FrameGeometry, InstanceHeader, Series
from viewer.core.display import ImageOrder, opening_slice
from viewer.core.issues import SeriesWarning
from viewer.core.jobs import Cancelled, CancelToken, Job, Progress, run_job
from viewer.core.volume import Volume

if TYPE_CHECKING:  # imported for real only when a load decides on processes (see decide)
    from viewer.core.dicom.decode_pool import ProcessDecoder

log = logging.getLogger(__name__)

#: Decoding threads for compressed series when worker processes do not pay (short series, fast codecs, or no
#: safe way to start them: see decode_pool). The codecs hold the GIL (bench/bench_codecs.py), so threads gain
#: little - JPEG-LS ~20%, JPEG 2000 and RLE nothing; long compressed series go to processes instead.
#: Native (uncompressed) series decode inline on one thread: there the per-file header walk holds the GIL and
#: a second thread only adds hand-offs - 0.083 s vs 0.042 s for 300 slices.
DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))


@dataclass
class _Frame:
    instance: int  # index into the loaded instances
    frame: int  # 0-based frame inside that instance
    geometry: FrameGeometry
    size: tuple[int, int]


class _Sources:
    """One FrameSource per file, shared by the frames of a multi-frame file and dropped when they are done."""

    def __init__(self, instances: list[InstanceHeader], remaining: dict[int, int]) -> None:
        self._instances = instances
        self._remaining = dict(remaining)
        self._sources: dict[int, FrameSource] = {}
        self._headers: dict[int, PixelHeader] = {}
        self._lock = threading.Lock()

    def prime(self, instance: int, header: PixelHeader) -> None:
        with self._lock:
            self._headers[instance] = header

    def get(self, instance: int) -> FrameSource:
        with self._lock:
            source = self._sources.get(instance)
            header = self._headers.get(instance)
        if source is not None:
            return source
        source = FrameSource(self._instances[instance].path, header)
        with self._lock:
            return self._sources.setdefault(instance, source)

    def done(self, instance: int) -> None:
        with self._lock:
            self._remaining[instance] -= 1
            if self._remaining[instance] <= 0:
                source = self._sources.pop(instance, None)
                self._headers.pop(instance, None)
            else:
                source = None
        if source is not None:
            source.release()


def _collect_frames(instances: list[InstanceHeader]) -> tuple[list[_Frame], dict[int, PixelHeader]]:
    """Every frame with its geometry; files whose scan lacks per-frame geometry are read here."""
    frames: list[_Frame] = []
    read: dict[int, PixelHeader] = {}
    for index, inst in enumerate(instances):
        count = max(1, inst.number_of_frames)
        geoms = list(inst.frames)
        rows, columns = inst.rows, inst.columns
        if len(geoms) != count or not rows or not columns:
            header = read_pixel_header(inst.path)
            read[index] = header
            count = header.number_of_frames
            rows, columns = header.rows, header.columns
            if len(header.frames) == count:
                geoms = header.frames
            elif len(geoms) == 1 and count > 1:
                # Classic multi-frame (US/XA cine, NM): one header position for all frames says nothing about
                # where each frame is; keep the frames, in file order, without positions (no_geometry).
                geoms = [FrameGeometry(None, geoms[0].orientation, geoms[0].pixel_spacing)] * count
            elif len(geoms) != count:
                geoms = [FrameGeometry(None, None, None)] * count
        for f in range(count):
            frames.append(_Frame(index, f, geoms[f], (rows, columns)))
    return frames, read


def _choose_dtype(header: PixelHeader) -> np.dtype:
    if header.is_colour:
        return np.dtype(np.uint8)
    if header.bits_allocated > 16:
        return np.dtype(np.float32)
    for slope, intercept in header.rescale:
        if not (float(slope).is_integer() and float(intercept).is_integer()):
            return np.dtype(np.float32)
    # Optimistic int16 even when BitsStored allows more: real data nearly always fits, and a slice that does
    # not promotes the volume once (see module docstring).
    return np.dtype(np.int16)


def _why(error: BaseException) -> str:
    """Our own errors' messages (written without patient data); only the type of anyone else's (a parser's
    message may quote a header value)."""
    if isinstance(error, (DecodeError, limits.SizeLimitError)):
        return str(error)
    return type(error).__name__


def _dedupe(warnings: list[SeriesWarning]) -> list[SeriesWarning]:
    seen, out = set(), []
    for w in warnings:
        if (w.code, w.message) not in seen:
            seen.add((w.code, w.message))
            out.append(w)
    return out


def iter_load(series: Series, cancel: CancelToken | None = None, *, workers: int | None = None,
              repeat: int = 0, processes: int | None = None, image_order: str = "head_first") -> Job[Volume]:
    """Load ``series`` into a Volume, yielding :class:`Progress` with the (partly filled) volume as payload.

    Parameters
    ----------
    series
        An image series from the catalog (instances with pixel data).
    cancel
        Checked at every yield; raises :class:`~viewer.core.jobs.Cancelled` when set.
    workers
        Decoding threads. Default: 1 (inline, on the calling thread) for uncompressed series,
        :data:`DEFAULT_WORKERS` for compressed ones.
    repeat
        Where several frames share one position (time points, echoes), which one to load (0 = first).
    processes
        Compressed series only: decoding worker processes. None (default, with ``workers`` None): decided
        from the time slice 1 took here (:func:`~viewer.core.dicom.decode_pool.worth_processes`); 0: never;
        N > 0: always N (after the first two slices, decoded here).
    image_order
        The display's image order setting (:class:`~viewer.core.display.ImageOrder`): it says which end of the
        stack the series opens at, and so which end is decoded first.

    Returns
    -------
    Volume
        As the generator's return value (``run_job`` / ``load_series`` hand it back).
    """
    instances = [inst for inst in series.instances if inst.has_pixels]
    if not instances:
        raise ValueError("series has no instances with pixel data")
    try:
        frames, headers = _collect_frames(instances)
        first_header = headers.get(0) or read_pixel_header(instances[0].path)
    except Exception as error:  # noqa: BLE001 - untrusted files: report, do not crash
        raise DecodeError(f"cannot read the series' pixel headers ({_why(error)})") from error
    headers[0] = first_header

    fallback_step = first_header.spacing_between_slices or first_header.slice_thickness
    tilt = next((inst.gantry_tilt for inst in instances if inst.gantry_tilt is not None), None)
    plan = geometry.plan_stack(
        [f.geometry.position for f in frames],
        [f.geometry.orientation for f in frames],
        pixel_spacings=[f.geometry.pixel_spacing for f in frames],
        sizes=[f.size for f in frames],
        instance_numbers=[instances[f.instance].instance_number if instances[f.instance].number_of_frames <= 1
                          else None for f in frames],
        gantry_tilt=tilt,
        fallback_step=fallback_step,
        repeat=repeat,
    )
    order = [frames[i] for i in plan.order]
    total = len(order)
    lead = order[0]
    try:
        lead_header = headers.get(lead.instance) or read_pixel_header(instances[lead.instance].path)
    except Exception as error:  # noqa: BLE001
        raise DecodeError(f"cannot read the first slice's header ({_why(error)})") from error
    headers[lead.instance] = lead_header
    rows, columns = lead.size
    dtype = _choose_dtype(lead_header)
    shape = (total, rows, columns, 3) if dtype == np.uint8 else (total, rows, columns)
    try:  # declared sizes are claims: refuse before allocating (Rows = Columns = 65535 would be 8 GiB)
        limits.check_decoded_size(total, rows, columns, shape[3] if len(shape) == 4 else 1, dtype.itemsize)
    except limits.SizeLimitError as error:
        raise DecodeError(error.reason) from None
    # np.zeros: the OS hands out zeroed pages lazily, so this costs nothing until a slice is written and
    # unloaded slices read as 0 rather than junk in reformatted views.
    array = np.zeros(shape, dtype)

    lead_inst = instances[lead.instance]
    modality = (lead_header.modality or series.modality or lead_inst.modality or "").upper()
    volume = Volume(
        array=array,
        affine=plan.affine,
        modality=modality,
        series_uid=series.uid,
        study_uid=lead_inst.study_uid,
        slice_sop_uids=[instances[f.instance].sop_instance_uid for f in order],
        slice_frame_numbers=[f.frame + 1 for f in order],
        default_window=lead_header.window,
        warnings=_dedupe(list(series.warnings) + plan.warnings),
        slices_loaded=0,
        description=series.description,
        photometric=lead_header.photometric,
        slice_positions=plan.slice_positions,
        frame_of_reference_uid=lead_header.frame_of_reference_uid,
    )
    attach_display_info(volume, [instances[f.instance] for f in order], plan.slice_positions is not None)
    volume.loads_from_top = total > 1 and opening_slice(volume, ImageOrder(image_order)) > (total - 1) // 2
    # the order slices are decoded in: from the end the views open at
    sequence = list(range(total - 1, -1, -1)) if volume.loads_from_top else list(range(total))
    if lead_header.photometric == "MONOCHROME1":
        volume.warnings.append(SeriesWarning(
            "monochrome1", "MONOCHROME1: low values are white; the display inverts the grey scale."))
    yield Progress(0, total, "Allocated volume", payload=volume)
    if cancel is not None:
        cancel.raise_if_cancelled()

    # CT: padding becomes air and nothing reads below air (see decode's module docstring).
    padding_fill = floor = CT_AIR_HU if modality == "CT" else None
    remaining: dict[int, int] = {}
    for f in order:
        remaining[f.instance] = remaining.get(f.instance, 0) + 1
    sources = _Sources(instances, remaining)
    for index, header in headers.items():
        if index in remaining:
            sources.prime(index, header)  # headers read while planning are not read again

    def decode(z: int, target: np.ndarray) -> bool | BaseException:
        frame = order[z]
        try:
            return sources.get(frame.instance).read_frame_into(frame.frame, target[z], padding_fill=padding_fill,
                                                                 floor=floor)
        except BaseException as error:  # noqa: BLE001 - one bad frame must not lose the series
            if not limits.is_decoder_failure(error):  # Ctrl-C, exit: not the frame's fault
                raise
            return error  # incl. a Rust decoder's PanicException, which is no Exception

    n_workers = max(1, workers or (1 if lead_header.fast else DEFAULT_WORKERS))
    # Compressed: the first two slices are decoded right here (the first on screen at once), the second's time says
    # whether worker processes pay for themselves (decode_pool.worth_processes); threads only if they do not.
    deciding = not lead_header.fast and total > 2 and (processes is None and workers is None or bool(processes))
    if deciding:
        n_workers = 1
    window = 2 * n_workers + 2 if n_workers > 1 else 1  # few in flight: quick cancel, flat memory
    batch = max(1, total // 100)
    pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="hf-decode") if n_workers > 1 else None
    procs: ProcessDecoder | None = None

    def decide(seconds_per_frame: float) -> None:
        nonlocal deciding, procs, pool, window
        # Imported here: multiprocessing and shared memory cost ~30 ms of start-up that native loads never need.
        from viewer.core.dicom.decode_pool import (
            MIN_FRAME_SECONDS,
            ProcessDecoder,
            default_processes,
            frame_slot_bytes,
            plan_slots,
            worth_processes,
        )

        deciding = False
        count = processes or default_processes()
        if processes or worth_processes(seconds_per_frame, total - 2, count):
            try:
                # ~20 ms of work per task: one wake-up and pickle per few fast slices (JPEG-LS), one slice per
                # task for slow ones (JPEG 2000), whose batches would leave a worker idle at the end.
                per_task = max(1, min(4, math.ceil(0.02 / max(seconds_per_frame, 1e-6))))
                slots, batch_size = plan_slots(count, frame_slot_bytes(lead_header), per_task)
                procs = ProcessDecoder(count, frame_slot_bytes(lead_header), slots, batch_size)
                window = slots
                log.debug("decoding on %d %s processes (%.1f ms a slice here)", count, procs.method,
                          seconds_per_frame * 1e3)
                return
            except Exception as error:  # noqa: BLE001 - no processes here (sandbox, no /dev/shm): threads
                log.info("no decoding processes (%s); using threads", error)
        # Threads only for slow slices: the codecs hold the GIL, and for fast ones (RLE) hand-offs cost more.
        if workers is None and DEFAULT_WORKERS > 1 and seconds_per_frame >= MIN_FRAME_SECONDS:
            pool = ThreadPoolExecutor(max_workers=DEFAULT_WORKERS, thread_name_prefix="hf-decode")
            window = 2 * DEFAULT_WORKERS + 2

    retired: list = []  # pools that broke: their finished frames stay readable until the load ends

    def replace_pool(old: ProcessDecoder) -> None:
        """Retire a broken pool (its finished frames stay readable) and start a fresh one, 3 times at most."""
        nonlocal procs
        from viewer.core.dicom.decode_pool import ProcessDecoder

        log.warning("a decoding process died; isolating the frames it held")
        procs = None
        old.stop()
        retired.append(old)
        if len(retired) <= 3:
            try:
                procs = ProcessDecoder(old.processes, old.slot_bytes, old.slots, old.batch_size, old.method)
            except Exception as error:  # noqa: BLE001
                log.info("no new decoding processes (%s); decoding here", error)

    def from_process(z: int, ticket) -> bool | BaseException:
        """The outcome of a slice sent to a worker process."""
        from viewer.core.dicom.decode_pool import decode_isolated

        frame = order[z]
        try:
            stored = ticket.result()
        except BrokenExecutor:
            # A worker died - a codec crashed on a frame of its batch (or the OS killed it). Each frame that was
            # in flight is decoded in a process of its own, so only the culprit fails and this process never
            # runs the crashing decode; then a fresh pool takes the rest (a few times at most).
            if procs is not None and procs.broken:
                replace_pool(procs)
            source = sources.get(frame.instance)
            try:
                stored = decode_isolated(source.path, source.header, frame.frame, ticket.owner.method)
            except BaseException as error:  # noqa: BLE001
                if not limits.is_decoder_failure(error):
                    raise
                return error
        except BaseException as error:  # noqa: BLE001 - the worker's own failure is this slice's failure
            if not limits.is_decoder_failure(error):
                raise
            return error
        sources.get(frame.instance).provide(frame.frame, stored)
        return decode(z, volume.array)

    pending: deque[tuple[int, Any]] = deque()  # (slice, Future) or (slice, decode_pool.Ticket)
    retry: deque[int] = deque()
    finished: set[int] = set()
    failures: dict[int, str] = {}
    next_z = 0

    def take_next() -> int:
        """The next slice to decode: a retry first, else the next in order."""
        nonlocal next_z
        if retry:
            return retry.popleft()
        next_z += 1
        return sequence[next_z - 1]

    def group_size(procs: ProcessDecoder) -> int:
        """Slices per process task: the batch size, shrinking near the end so the workers finish together."""
        left = len(retry) + total - next_z
        return max(1, min(procs.batch_size, left // (2 * procs.processes)))

    def outcome(z: int, item) -> bool | BaseException:
        return item.result() if isinstance(item, Future) else from_process(z, item)

    done = 0
    last_yield = 0
    started = time.perf_counter()
    rescale_replaced: set[int] = set()  # slices whose file's rescale was unusable (decode.usable_rescale)
    bits_cleared: dict[int, int] = {}  # slice -> its BitsStored, where values went beyond it (_correct_unused_bits)

    def settle(z: int, result) -> bool:
        """Record a finished slice; False when it must be redone in float32."""
        if result is False:
            return False
        if isinstance(result, BaseException):
            # blanked at the end, and only if other slices load: writing zeros maps every page of the slice (a
            # fuzzed 32768 x 65535 header made that 4 GB for a file refused anyway; bench/fuzz.py seed 62)
            failures[z] = type(result).__name__ if not str(result) else str(result)
        else:
            source = sources.get(order[z].instance)
            if source.header.rescale_replaced:
                rescale_replaced.add(z)
            if order[z].frame in source.bits_cleared:
                bits_cleared[z] = source.header.bits_stored
        finished.add(z)
        sources.done(order[z].instance)
        return True

    try:
        while done < total:
            while len(pending) < window and (retry or next_z < total):
                if procs is not None:  # the next few slices, as one task for one worker
                    size = group_size(procs)
                    if window - len(pending) < size:
                        break  # wait for room for a whole batch: one slice per result would be a task per slice
                    group: list[int] = []
                    while len(group) < size and (retry or next_z < total):
                        group.append(take_next())
                    jobs: list[tuple[str, PixelHeader | None, int]] = []
                    for gz in group:
                        source = sources.get(order[gz].instance)
                        jobs.append((source.path, source.header, order[gz].frame))
                    try:
                        pending.extend(zip(group, procs.submit(jobs)))
                    except BrokenExecutor:  # a worker died since the last result: these slices go again
                        retry.extendleft(reversed(group))
                        replace_pool(procs)
                    continue
                z = take_next()
                if pool is None:  # one worker: decode right here, no thread hand-off per slice
                    future: Future = Future()
                    tic = time.perf_counter()
                    future.set_result(decode(z, volume.array))
                    if deciding and z == sequence[1]:  # the first slice paid for imports and caches
                        decide(time.perf_counter() - tic)
                else:
                    future = pool.submit(decode, z, volume.array)
                pending.append((z, future))
            z, item = pending.popleft()
            if not settle(z, outcome(z, item)):
                # This slice needs float32: let the slices in flight land in the old array (astype copies
                # them), promote once, then redo every slice that could not be written as int16.
                redo = [z] + [oz for oz, other in pending if not settle(oz, outcome(oz, other))]
                pending.clear()
                log.info("promoting volume to float32 (rescale or range does not fit int16)")
                try:  # float32 doubles the volume: the cap holds for the promoted array too
                    slices, rows, columns = volume.array.shape[:3]
                    limits.check_decoded_size(slices, rows, columns, 1, 4)
                except limits.SizeLimitError as error:
                    raise DecodeError(error.reason) from None
                volume.array = volume.array.astype(np.float32)
                retry.extend(sorted(redo))
                continue
            while done < total and sequence[done] in finished:
                finished.discard(sequence[done])
                done += 1
            volume.slices_loaded = done
            if done == 1 or done - last_yield >= batch or done == total:
                last_yield = done
                yield Progress(done, total, f"Decoding slice {done}/{total}", payload=volume)
                if cancel is not None and cancel.cancelled:
                    raise Cancelled()
    finally:
        for _, item in pending:
            item.cancel()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for decoder in retired + ([procs] if procs is not None else []):
            decoder.close()
    if failures:
        if len(failures) == total:
            raise DecodeError(f"no slice could be decoded: {next(iter(failures.values()))}")
        for z in failures:  # a decoder may have written part of it before failing
            volume.array[z] = 0
        first = min(failures)
        volume.failed_slices = sorted(failures)
        volume.warnings.append(SeriesWarning(
            "decode_failed",
            f"{len(failures)} of {total} slices could not be decoded and are left blank "
            f"(first: slice {first}, {failures[first]}).",
        ))
    if rescale_replaced:
        volume.warnings.append(SeriesWarning(
            "rescale_replaced",
            f"{len(rescale_replaced)} of {total} slices declare an unusable RescaleSlope/Intercept (a slope of 0, a "
            f"value not finite or too large); read as slope 1 (intercept 0 where unusable): values there may not be "
            f"in {'HU' if modality == 'CT' else 'the modality units'}.",
        ))
    if bits_cleared:
        volume.warnings.append(SeriesWarning(
            "bits_cleared",
            f"{len(bits_cleared)} of {total} slices hold values beyond their BitsStored "
            f"({bits_cleared[min(bits_cleared)]} bits); the bits above were "
            "cleared, as the standard says. Old files keep overlays there; otherwise BitsStored is too small for "
            "the data, and the image is wrong.",
        ))
    log.debug("loaded %d slices in %.3f s", total, time.perf_counter() - started)
    return volume



def load_series(series: Series, cancel: CancelToken | None = None, *, workers: int | None = None,
                repeat: int = 0, processes: int | None = None) -> Volume:
    """Load ``series`` synchronously (drains :func:`iter_load`; same parameters)."""
    return run_job(iter_load(series, cancel, workers=workers, repeat=repeat, processes=processes))
