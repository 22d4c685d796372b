"""Decode compressed frames in worker processes: the codecs hold the GIL, so threads cannot share the work.

Measured on the 2-core target (bench/bench_codecs.py, LIDC-IDRI-0001 re-encoded): openjpeg, CharLS and
pylibjpeg-rle never release the GIL - a second decoding thread gains nothing for JPEG 2000 and ~20% for
JPEG-LS - while two processes halve the decoding time. The loader (:mod:`viewer.core.dicom.load`) decodes the
first slices itself, so slice 0 is on screen before any process exists, and starts a pool only when the
measured time per slice says the rest is worth it (:func:`worth_processes`).

Frames travel back through one shared-memory block of fixed slots, not pickles: 512 x 512 int16 frames
through the pool's pipe cost ~3 ms each on the loaded 2-core machine (100 in 0.3 s), as much as decoding one.
Slices go out in small batches, one task each. Workers return stored values; the rescale, padding and floor
stay in the loading process, on the one code path every route shares.

A worker that dies (a codec crashing on hostile data, the OS killing it) breaks the pool: the loader then
decodes each frame that was in flight in a process of its own (:func:`decode_isolated`) - only the culprit
fails - and starts a fresh pool for the rest, so a crashing codec costs one slice, never the application.

Start method: ``fork`` when the calling process runs a single thread (the CLI, a batch job) - a child costs
~15 ms; otherwise (the GUI, whose loader runs beside Qt's threads) ``forkserver``, whose server is a clean
single-threaded process started once per session (~0.4 s, paid by the first large compressed load only);
``spawn`` where neither exists (Windows).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
from collections import deque
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from multiprocessing import shared_memory

import numpy as np

from viewer.core.dicom.decode import DecodeError, FrameSource, PixelHeader

log = logging.getLogger(__name__)

#: Estimated cost of starting a pool (seconds) by start method: measured for fork (~15 ms to the first result)
#: and forkserver (its server imports numpy and the decoder modules once); spawn imports them in every worker.
STARTUP_SECONDS = {"fork": 0.05, "forkserver": 0.4, "spawn": 1.0}
#: Below this time per slice (seconds, decoded here: codec plus the rescale that stays here) the hand-off eats
#: the gain. RLE CT slices take ~1 ms (0.4 ms of it the codec) and gain nothing; JPEG-LS ~6 ms and gain ~2x.
MIN_FRAME_SECONDS = 0.004

_forkserver_primed = False


def _main_is_ours() -> bool:
    """True when ``__main__`` is one of our guarded entry points (``python -m viewer``, the ``hounsfield``
    script) or absent (an interactive session)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None:
        return spec.name.split(".")[0] == "viewer"
    path = getattr(main, "__file__", None)
    return path is None or os.path.basename(path).lower() in ("hounsfield", "hounsfield.exe", "hounsfield-script.py")


def start_method() -> str | None:
    """The start method a pool would use now (see the module docstring), or None: no processes here.

    ``forkserver`` and ``spawn`` children re-import the ``__main__`` module; a script without an
    ``if __name__ == "__main__"`` guard would then run again in every worker. So they are used only under
    our own entry points, and never in a frozen build (which would need ``freeze_support``).
    """
    methods = multiprocessing.get_all_start_methods()
    # macOS system frameworks are not fork-safe even in a single-threaded process.
    if "fork" in methods and sys.platform != "darwin" and threading.active_count() == 1:
        return "fork"
    if getattr(sys, "frozen", False) or not _main_is_ours():
        return None
    return "forkserver" if "forkserver" in methods else "spawn"


def default_processes() -> int:
    """Worker processes for a large compressed series: one per core we may use (at most 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def worth_processes(seconds_per_frame: float, frames_left: int, processes: int) -> bool:
    """True when ``processes`` workers would finish ``frames_left`` frames sooner than this thread alone.

    Parameters
    ----------
    seconds_per_frame
        Measured on a slice decoded here (not the first: that one pays for imports and caches).
    frames_left
        Frames still to decode.
    processes
        Workers the pool would run.
    """
    if processes < 2 or seconds_per_frame < MIN_FRAME_SECONDS:
        return False
    method = start_method()
    if method is None:
        return False
    startup = STARTUP_SECONDS[method] if method != "forkserver" or not _forkserver_primed else STARTUP_SECONDS["fork"]
    serial = seconds_per_frame * frames_left
    return startup + serial / processes < serial


# ------------------------------------------------------------------------------------------- worker side
_worker_memory: shared_memory.SharedMemory | None = None
_worker_source: FrameSource | None = None


def _attach(name: str) -> None:
    # Python < 3.13 registers this attachment with the resource tracker too; the tracker is shared with the
    # loading process and keeps a set, so the loader's unlink still clears the one entry (unregistering here
    # would make that unlink's own unregister fail).
    global _worker_memory
    _worker_memory = shared_memory.SharedMemory(name=name)


def _decode_one(path: str, header: PixelHeader | None, index: int, offset: int, slot_bytes: int):
    global _worker_source
    if _worker_source is None or _worker_source.path != path:
        if _worker_source is not None:
            _worker_source.release()
        _worker_source = FrameSource(path, header)
    stored = np.ascontiguousarray(_worker_source.decoded(index))
    if _worker_memory is None or stored.nbytes > slot_bytes:
        return stored.shape, stored.dtype.str, stored
    target = np.ndarray(stored.shape, stored.dtype, buffer=_worker_memory.buf, offset=offset)
    target[...] = stored
    del target  # no export of the buffer may outlive the call, or the block cannot close
    return stored.shape, stored.dtype.str, None


def _decode_batch(frames: list[tuple[str, PixelHeader | None, int]], offsets: list[int], slot_bytes: int) -> list:
    """Worker: decode each frame's stored values into its shared slot (or return them when they do not fit).

    Returns one entry per frame: ``(shape, dtype, array_or_None)``, or the frame's failure as a
    :class:`DecodeError` (a message only: codec exceptions need not survive pickling), so one bad frame does
    not cost the others of its batch.
    """
    out: list = []
    for (path, header, index), offset in zip(frames, offsets):
        try:
            out.append(_decode_one(path, header, index, offset, slot_bytes))
        except BaseException as error:  # noqa: BLE001 - a Rust panic too; Ctrl-C / exit still end the worker
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise
            out.append(DecodeError(str(error) or type(error).__name__))
    return out


# ------------------------------------------------------------------------------------------- loader side
class _Batch:
    """Frames sent to a worker in one task, and the slots their values come back in."""

    __slots__ = ("future", "slots")

    def __init__(self, future: Future, slots: list[int]) -> None:
        self.future, self.slots = future, slots


class Ticket:
    """One submitted frame: its decoder, its batch and its place in it (:meth:`result` redeems it)."""

    __slots__ = ("owner", "batch", "position")

    def __init__(self, owner: ProcessDecoder, batch: _Batch, position: int) -> None:
        self.owner, self.batch, self.position = owner, batch, position

    def result(self) -> np.ndarray:
        """The frame's stored values (see :meth:`ProcessDecoder.result`)."""
        return self.owner.result(self)

    def cancel(self) -> None:
        """Cancel the frame's batch if no worker has started it."""
        self.batch.future.cancel()


class ProcessDecoder:
    """A pool of decoding processes with ``slots`` shared frame buffers of ``slot_bytes`` each.

    Frames go out in batches of :attr:`batch_size` (one task, one wake-up and one pickle per batch: a task per
    frame cost the loader ~2 ms of CPU per slice on the 2-core machine, a third of a JPEG-LS decode).
    :meth:`submit` returns a :class:`Ticket` per frame, :meth:`result` redeems it; always :meth:`close`
    (cancels what has not started, waits for what has, frees the shared memory).
    """

    def __init__(self, processes: int, slot_bytes: int, slots: int, batch_size: int = 4,
                 method: str | None = None) -> None:
        global _forkserver_primed
        # ``method``: a replacement pool keeps its predecessor's (whose own threads now make this process look
        # multi-threaded to start_method).
        method = method or start_method()
        if method is None:
            raise RuntimeError("no safe way to start decoding processes here (see decode_pool.start_method)")
        context = multiprocessing.get_context(method)
        if method == "forkserver" and not _forkserver_primed:
            # The server imports these once; every worker forked from it starts with them loaded.
            context.set_forkserver_preload(["numpy", "viewer.core.dicom.decode_pool"])
        self.method = method
        self.processes = processes
        self.slots = max(1, slots)
        self.batch_size = max(1, int(batch_size))
        self.slot_bytes = max(1, int(slot_bytes))
        self._memory = shared_memory.SharedMemory(create=True, size=self.slot_bytes * max(1, slots))
        self._free = deque(range(max(1, slots)))
        try:
            self._pool = ProcessPoolExecutor(processes, mp_context=context, initializer=_attach,
                                             initargs=(self._memory.name,))
        except BaseException:
            self._memory.close()
            self._memory.unlink()
            raise
        _forkserver_primed = _forkserver_primed or method == "forkserver"

    @property
    def broken(self) -> bool:
        """True once a worker has died (every result then raises BrokenExecutor)."""
        return bool(getattr(self._pool, "_broken", False))

    @property
    def free_slots(self) -> int:
        """How many more frames can be submitted now."""
        return len(self._free)

    def submit(self, frames: list[tuple[str, PixelHeader | None, int]]) -> list[Ticket]:
        """Queue ``(path, header, frame index)`` frames as one task (at most :attr:`free_slots`)."""
        if not frames or len(frames) > len(self._free):
            raise ValueError(f"{len(frames)} frames for {len(self._free)} free slots")
        slots = [self._free.popleft() for _ in frames]
        try:
            future = self._pool.submit(_decode_batch, frames, [k * self.slot_bytes for k in slots], self.slot_bytes)
        except BaseException:
            self._free.extend(slots)
            raise
        batch = _Batch(future, slots)
        return [Ticket(self, batch, k) for k in range(len(frames))]

    def result(self, ticket: Ticket) -> np.ndarray:
        """The stored values of a submitted frame (a new array); raises the frame's failure, or
        :class:`~concurrent.futures.BrokenExecutor` when a worker died."""
        batch = ticket.batch
        entry = batch.future.result()[ticket.position]
        try:
            if isinstance(entry, BaseException):
                raise entry
            shape, dtype, array = entry
            if array is not None:
                return array
            slot = batch.slots[ticket.position]
            view = np.ndarray(shape, np.dtype(dtype), buffer=self._memory.buf, offset=slot * self.slot_bytes)
            out = view.copy()  # the slot is reused; a retry in float32 may still need these values
            del view
            return out
        finally:
            # The batch is finished (its result is in), so no worker writes this slot any more: reuse it now.
            self._free.append(batch.slots[ticket.position])

    def stop(self) -> None:
        """Stop the workers (running frames finish, queued ones are dropped); frames already decoded stay
        readable until :meth:`close`."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """:meth:`stop`, then free the shared memory."""
        try:
            self.stop()
        finally:
            try:
                self._memory.close()
            except BufferError:  # a view is still alive somewhere: leave closing to the garbage collector
                log.debug("shared decode buffer still referenced at close")
            self._memory.unlink()


def decode_isolated(path: str, header: PixelHeader | None, index: int, method: str | None = None) -> np.ndarray:
    """Decode one frame in a process of its own, which may crash without taking the caller along.

    Used for the frames that were in flight when a worker died: one of them crashed it, and only a process
    per frame tells which (the others decode normally).

    Raises
    ------
    DecodeError
        When the decoder crashes that process too (or the frame fails in it).
    """
    method = method or start_method()
    if method is None:
        raise DecodeError("a decoder crashed on this series and no process can isolate the frame")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method)) as pool:
        try:
            entry = pool.submit(_decode_batch, [(path, header, index)], [0], 0).result()[0]
        except BrokenExecutor:
            raise DecodeError("the decoder crashed on this frame") from None
    if isinstance(entry, BaseException):
        raise entry
    return entry[2]


def frame_slot_bytes(header: PixelHeader) -> int:
    """Bytes one frame's stored values need (grey: rows x columns x the widest sample a decoder returns)."""
    return max(1, header.rows * header.columns * max(header.samples, 1) * max(2, header.bits_allocated // 8))


#: Most shared memory one load may use for frames in flight.
MAX_SHARED_BYTES = 256 << 20


def _shared_memory_room() -> int:
    """Bytes this load may place in shared memory: :data:`MAX_SHARED_BYTES`, or half of what /dev/shm has free
    (containers often mount 64 MB there, and a worker writing past a full tmpfs dies of SIGBUS)."""
    try:
        stats = os.statvfs("/dev/shm")
        return min(MAX_SHARED_BYTES, stats.f_bavail * stats.f_frsize // 2)
    except (AttributeError, OSError):  # no /dev/shm (Windows, macOS): the OS sizes it
        return MAX_SHARED_BYTES


def plan_slots(processes: int, slot_bytes: int, batch_size: int = 4) -> tuple[int, int]:
    """``(slots, batch_size)``: two batches in flight per worker (one running, one queued), within
    :func:`_shared_memory_room` (big frames get smaller batches, down to one frame per worker)."""
    fit = max(1, _shared_memory_room() // max(1, slot_bytes))
    batch = max(1, min(batch_size, fit // (2 * max(1, processes))))
    return max(1, min(fit, 2 * processes * batch)), batch


__all__ = ["ProcessDecoder", "Ticket", "decode_isolated", "default_processes", "frame_slot_bytes", "plan_slots",
           "start_method", "worth_processes", "MAX_SHARED_BYTES", "STARTUP_SECONDS", "MIN_FRAME_SECONDS"]
