"""What is open, shown and computed: the Qt-free session model the GUI, the CLI and tests share.

::

    Session
     ├─ catalog, paths            the study (or studies) opened, from a source (a folder scan today)
     ├─ volumes                   a bounded cache of loaded volumes (VolumeCache)
     ├─ states[key]               one SeriesState per series touched: display, measurements, editor, results
     └─ shown                     the states on screen, in order (one; two for a prior comparison)

A :class:`SeriesState` outlives the series being shown: measurements, the annotation and model results come back
when the user returns to it (keyed by series key, they survive reopening the study too). Everything here is plain
data and :class:`~viewer.core.events.Event` s; the Qt layer (``viewer/qt``) runs the long jobs on workers and binds
widgets to these events, the CLI and tests drain the same jobs synchronously.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from viewer.core.dicom.catalog import Catalog, Series, default_image_series
from viewer.core.events import Event
from viewer.core.jobs import CancelToken, Job

if TYPE_CHECKING:  # imported where used: the display and the editing packages load on demand
    from viewer.core.display import DisplayState
    from viewer.core.editing.editor import AnnotationEditor

#: The volume cache keeps at most this many volumes ...
VOLUME_CACHE_COUNT = 3
#: ... and about this many bytes of voxels (the newest volume is kept whatever its size).
VOLUME_CACHE_BYTES = 1_500_000_000


def result_task(result) -> str:
    """The task of a model result: ``segmentation`` (SegResult), ``detection`` (Detections), ``saliency``."""
    from inference.types import Detections, SaliencyMap, SegResult

    for kind, task in ((SegResult, "segmentation"), (Detections, "detection"), (SaliencyMap, "saliency")):
        if isinstance(result, kind):
            return task
    raise TypeError(f"not a model result: {type(result).__name__}")


def result_shape(result) -> tuple[int, ...]:
    """The ``(z, y, x)`` grid a model result lies on."""
    task = result_task(result)
    if task == "segmentation":
        return tuple(result.labels.shape)
    if task == "detection":
        return tuple(result.shape)
    return tuple(result.values.shape)


def series_info(patient, study, series) -> dict:
    """What the corner text shows for a series (patient, study and series descriptions)."""
    return {
        "patient_name": str(patient.patient_name or "").replace("^", " ").strip(),
        "patient_id": patient.patient_id or "",
        "study_date": study.date or "",
        "study_description": study.description or "",
        "series_description": series.description or "",
        "series_number": series.series_number,
        "modality": series.modality or "",
    }


@runtime_checkable
class CatalogSource(Protocol):
    """Where a catalog comes from: a job (yielding progress, returning a Catalog) and what it was opened from."""

    paths: list[str]

    def scan(self, cancel: CancelToken | None = None) -> Job[Catalog]:
        """The scan as a cancellable job."""
        ...


@dataclass
class FolderSource:
    """Local folders, files and DICOMDIRs (PACS queries and batch manifests are the next sources)."""

    paths: list[str]

    def scan(self, cancel: CancelToken | None = None) -> Job[Catalog]:
        """Scan the paths (headers only, in parallel): :func:`~viewer.core.dicom.scan.iter_scan`."""
        from viewer.core.dicom.scan import iter_scan

        return iter_scan(self.paths, cancel=cancel)


@dataclass
class ModelResult:
    """One model's result on one series, as plain data.

    Attributes
    ----------
    result
        :class:`~inference.types.SegResult`, :class:`~inference.types.Detections` or
        :class:`~inference.types.SaliencyMap` on the series' grid.
    model_name
        What the user knows the model as (shown in the panels).
    created
        When it was computed (``time.time()``).
    """

    result: Any
    model_name: str = "Model"
    created: float = field(default_factory=time.time)

    @property
    def task(self) -> str:
        """``segmentation``, ``detection`` or ``saliency``."""
        return result_task(self.result)


class VolumeCache:
    """Recently loaded volumes by series key: at most ``max_count``, and about ``max_bytes`` of voxels (the newest
    is always kept), least recently used dropped first."""

    def __init__(self, max_count: int = VOLUME_CACHE_COUNT, max_bytes: int = VOLUME_CACHE_BYTES) -> None:
        self.max_count = int(max_count)
        self.max_bytes = int(max_bytes)
        self._volumes: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str):
        """The cached volume of ``key`` (now the most recent) or None."""
        volume = self._volumes.get(key)
        if volume is not None:
            self._volumes.move_to_end(key)
        return volume

    def put(self, key: str, volume) -> None:
        """Keep ``volume``; drop the least recently used beyond the limits."""
        self._volumes[key] = volume
        self._volumes.move_to_end(key)
        while len(self._volumes) > self.max_count or (
                len(self._volumes) > 1 and self.nbytes > self.max_bytes):
            self._volumes.popitem(last=False)

    @property
    def nbytes(self) -> int:
        """Bytes of voxels held."""
        return sum(v.array.nbytes for v in self._volumes.values())

    def clear(self) -> None:
        """Forget every volume."""
        self._volumes.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._volumes

    def __len__(self) -> int:
        return len(self._volumes)


class SeriesState:
    """Everything about one series the user has worked with: what is shown and what was made on it.

    Attributes
    ----------
    key
        The catalog key of the series (its SeriesInstanceUID, or a split-series key).
    series
        The catalog :class:`~viewer.core.dicom.catalog.Series` (None for a volume without one).
    info
        The corner-text fields (:func:`series_info`).
    volume
        The loaded (or loading) :class:`~viewer.core.volume.Volume`, or None.
    display
        The :class:`~viewer.core.display.DisplayState` while shown (slice, window, zoom), else None.
    measurements
        The user's measurements (:class:`~viewer.core.measure.Measurement`), kept across showing and hiding.
    editor
        The :class:`~viewer.core.editing.editor.AnnotationEditor` (segments, findings review, undo history), made
        on first use by :meth:`ensure_editor`.
    results
        Model results by task (:class:`ModelResult`).
    body_part
        BodyPartExamined (read once, on demand, for the models' input check), None until read.
    """

    def __init__(self, key: str, series: Series | None = None, info: dict | None = None) -> None:
        self.key = key
        self.series = series
        self.info: dict = dict(info or {})
        self.volume = None
        self.display: DisplayState | None = None
        self.measurements: list = []
        self.editor: AnnotationEditor | None = None
        self.results: dict[str, ModelResult] = {}
        self.body_part: str | None = None
        #: The hanging-protocol rule matched when the series was first shown (None: none matched, or not yet).
        self.hanging = None
        #: How many times the series was shown (1 while it is shown for the first time: its layout is applied).
        self.times_shown = 0
        #: ``(task)`` after a result was set or removed.
        self.results_changed = Event()

    @property
    def review(self):
        """The findings review of the annotation (None before the editor exists)."""
        return self.editor.review if self.editor is not None else None

    def result(self, task: str):
        """The result (SegResult / Detections / SaliencyMap) of ``task``, or None."""
        entry = self.results.get(task)
        return entry.result if entry is not None else None

    def set_result(self, result, model_name: str = "Model", created: float | None = None) -> ModelResult:
        """Keep ``result`` (replacing an earlier one of the same task); ``created`` is when it was computed (default
        now; a batch result read back keeps the batch's time).

        Raises
        ------
        ValueError
            When no volume is loaded, or the result is not on the volume's grid.
        """
        if self.volume is None:
            raise ValueError("no volume is loaded for this series")
        shape = result_shape(result)
        if shape != tuple(self.volume.shape):
            raise ValueError(f"the result's grid {shape} is not the shown volume's {tuple(self.volume.shape)}")
        entry = ModelResult(result, model_name) if created is None else ModelResult(result, model_name, created)
        self.results[entry.task] = entry
        self.results_changed.emit(entry.task)
        return entry

    def replace_result(self, task: str, result) -> None:
        """Swap the result of ``task`` for an edited one (e.g. the reviewed findings), keeping its name."""
        entry = self.results[task]
        entry.result = result
        self.results_changed.emit(task)

    def clear_results(self) -> None:
        """Forget every model result of this series."""
        tasks = list(self.results)
        self.results.clear()
        for task in tasks:
            self.results_changed.emit(task)

    def ensure_editor(self, autosave_root=None, study_paths: Sequence[str] = (), segmentation=None, review=None,
                      replace: bool = False):
        """The series' annotation editor, made (with an autosave and its own undo history) when there is none, when
        the volume is another grid than its segmentation's, or when ``replace`` (a restored autosave)."""
        from viewer.core.editing.autosave import Autosave
        from viewer.core.editing.editor import AnnotationEditor
        from viewer.core.editing.history import EditHistory
        from viewer.core.editing.segmentation import Segmentation

        volume = self.volume
        if volume is None:
            raise ValueError("load the series before annotating it")
        editor = self.editor
        if editor is not None and not replace and tuple(editor.segmentation.shape) == tuple(volume.shape):
            editor.volume = volume
            return editor
        if segmentation is None:
            segmentation = Segmentation.for_volume(volume)
        description = (self.series.description or "") if self.series is not None else ""
        autosave = Autosave(segmentation, review, root=autosave_root, description=description,
                            source_paths=list(study_paths))
        self.editor = AnnotationEditor(volume, segmentation, review, EditHistory(), autosave)
        autosave.review = self.editor.review
        return self.editor

    def current_instance(self):
        """``(InstanceHeader, frame number)`` of the image shown in the acquisition plane, or None."""
        display, series = self.display, self.series
        if display is None or series is None:
            return None
        volume = display.volume
        k = display.slice_index(display.native_plane)
        if not volume.slice_sop_uids or k >= len(volume.slice_sop_uids):
            return None
        uid = volume.slice_sop_uids[k]
        frame = volume.slice_frame_numbers[k] if k < len(volume.slice_frame_numbers) else 1
        for inst in series.instances:
            if inst.sop_instance_uid == uid:
                return inst, frame
        return None

    def read_body_part(self) -> str:
        """BodyPartExamined of the series (one header read, then remembered; "" when unknown)."""
        if self.body_part is None:
            from viewer.core.run_model import body_part_of

            self.body_part = body_part_of(self.series) if self.series is not None else ""
        return self.body_part

    def source_paths(self) -> list[str]:
        """Files of the series (a SEG or SR references them)."""
        return [inst.path for inst in self.series.instances] if self.series is not None else []


class Session:
    """The open study and what is shown of it.

    Parameters
    ----------
    volume_cache
        Where loaded volumes are kept (a default :class:`VolumeCache` when None).

    Events
    ------
    catalog_changed(catalog)
        A new catalog was opened (None: closed).
    shown_changed()
        :attr:`shown` changed (a series shown, replaced or hidden).
    load_progressed(key, volume)
        More slices of series ``key`` were decoded into ``volume`` (progressive loading; on the thread that
        reports the load, the GUI thread in the app).
    volume_loaded(key, volume, seconds)
        Series ``key`` finished loading (``seconds`` None when it came from the cache).
    """

    def __init__(self, volume_cache: VolumeCache | None = None) -> None:
        self.catalog: Catalog | None = None
        self.paths: list[str] = []
        self.volumes = volume_cache if volume_cache is not None else VolumeCache()
        self.states: dict[str, SeriesState] = {}
        self.shown: list[SeriesState] = []
        #: Window presets new display states start with (the GUI passes the user's).
        self.presets: tuple | None = None
        #: Which image is 1 in new display states (``head_first`` / ``as_acquired``, the user's setting).
        self.image_order = "head_first"
        #: Where annotations autosave (None: the user data folder).
        self.autosave_root = None
        #: The hanging protocols new display states follow (:mod:`viewer.core.hanging`; None: none, today's opening).
        self.hanging = None
        #: ``(projection, mm)`` the slab key brings back in new display states (the user's last slab), or None.
        self.slab_defaults: tuple[str, float] | None = None
        self.catalog_changed = Event()
        self.shown_changed = Event()
        self.load_progressed = Event()
        self.volume_loaded = Event()

    # ---- the catalog ------------------------------------------------------------------------------------------
    def set_catalog(self, catalog: Catalog | None, paths: Iterable[str] = ()) -> None:
        """Open ``catalog`` (what a scan of ``paths`` found). Volumes of the previous one are forgotten; the
        states of its series are not (measurements and annotations come back if it is opened again)."""
        self.catalog = catalog
        self.paths = [str(p) for p in paths]
        self.volumes.clear()
        if catalog is not None:
            for patient in catalog.patients:
                for study in patient.studies:
                    for series in study.series:
                        state = self.state(series.key)
                        state.series, state.volume = series, None
                        state.info = series_info(patient, study, series)
        self.catalog_changed.emit(catalog)

    def open(self, source: CatalogSource | str | os.PathLike | Iterable[str | os.PathLike]) -> Catalog:
        """Scan ``source`` (a :class:`CatalogSource`, or paths: folders, files, DICOMDIRs) synchronously and open
        the catalog (CLI, tests; the GUI runs the source's scan on a worker and calls :meth:`set_catalog`)."""
        from viewer.core.jobs import run_job

        scan_source: CatalogSource
        if isinstance(source, (str, os.PathLike)):
            scan_source = FolderSource([str(source)])
        elif isinstance(source, CatalogSource):  # what has a scan (and paths), else paths
            scan_source = source
        else:
            scan_source = FolderSource([str(p) for p in source])
        catalog = run_job(scan_source.scan())
        self.set_catalog(catalog, scan_source.paths)
        return catalog

    def image_series(self) -> list[Series]:
        """Every image series of the catalog that has instances."""
        if self.catalog is None:
            return []
        return [s for s in self.catalog.all_series() if s.kind == "image" and s.n_instances]

    def default_image_series(self, prefer_uids: Iterable[str] = ()) -> Series | None:
        """The series to show first: among those whose UID is in ``prefer_uids`` when any (an autosave the user
        chose to restore), else among all image series, the one with the most real content
        (:func:`~viewer.core.dicom.catalog.default_image_series`: the GUI, the CLI and screenshots share it)."""
        images = self.image_series()
        if not images or self.catalog is None:  # (no catalog, no images)
            return None
        prefer = set(prefer_uids)
        preferred = [s for s in images if s.uid in prefer]
        return default_image_series(self.catalog, preferred or images)

    def find_series(self, key: str) -> Series | None:
        """The catalog's series of ``key`` (or UID), None when unknown."""
        return self.catalog.find_series(key) if self.catalog is not None else None

    # ---- series states ----------------------------------------------------------------------------------------
    def state(self, key: str) -> SeriesState:
        """The state of series ``key`` (made on first use)."""
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = SeriesState(key, self.find_series(key))
        return state

    @property
    def current(self) -> SeriesState | None:
        """The first shown series (the one the panels follow), or None."""
        return self.shown[0] if self.shown else None

    def load(self, key: str, **load_options):
        """The volume of series ``key``: from the cache, else loaded synchronously and cached (CLI, tests; the GUI
        loads progressively on a worker and calls :meth:`loaded`)."""
        from viewer.core.dicom.load import load_series

        cached = self.volumes.get(key)
        if cached is not None:
            return cached
        series = self.find_series(key)
        if series is None:
            raise KeyError(f"no series {key!r} in the open catalog")
        volume = load_series(series, **load_options)
        self.loaded(key, volume)
        return volume

    def loading(self, key: str, volume) -> None:
        """More slices of series ``key`` arrived in ``volume``: announce it."""
        self.load_progressed.emit(key, volume)

    def loaded(self, key: str, volume, seconds: float | None = None) -> None:
        """``volume`` of series ``key`` finished loading (in ``seconds``; None: from the cache): cache and announce
        it."""
        self.volumes.put(key, volume)
        self.volume_loaded.emit(key, volume, seconds)

    def show(self, key: str, volume, slot: int = 0):
        """Show ``volume`` (possibly still loading) of series ``key`` in ``slot`` (0: the main views, 1: the
        second study of a comparison). A fresh :class:`~viewer.core.display.DisplayState` is made for it.
        Returns the :class:`SeriesState`."""
        from viewer.core.display import DisplayState

        state = self.state(key)
        state.volume = volume
        state.display = None
        if volume is not None:
            presets = {"presets": self.presets} if self.presets else {}
            state.display = DisplayState(volume, image_order=self.image_order, **presets)
            self._hang(state)
        if slot > len(self.shown):
            raise IndexError(f"slot {slot} would leave a gap: {len(self.shown)} shown")
        if slot == len(self.shown):
            self.shown.append(state)
        else:
            old = self.shown[slot]
            if old is not state:
                old.display = None
            self.shown[slot] = state
        self.shown_changed.emit()
        return state

    def _hang(self, state: SeriesState) -> None:
        """Give a fresh display state the user's slab defaults and the hanging rule of its series (matched the first
        time the series is shown, then kept: the window, slab and starting slice are applied at every show)."""
        from viewer.core.hanging import apply_rule, series_text

        display = state.display
        if display is None:
            return
        state.times_shown += 1
        if self.slab_defaults is not None:
            display.set_slab_defaults(*self.slab_defaults)
        if self.hanging is None:
            return
        if state.times_shown == 1:
            modality = state.info.get("modality") or getattr(state.volume, "modality", "")
            text = series_text(state.info, state.read_body_part())
            state.hanging = self.hanging.match(modality, text, display.native_plane)
        apply_rule(state.hanging, display)

    def hide(self, slot: int | None = None) -> None:
        """Stop showing ``slot`` (everything when None)."""
        hidden = self.shown[:] if slot is None else [self.shown[slot]]
        self.shown = [] if slot is None else self.shown[:slot] + self.shown[slot + 1:]
        for state in hidden:
            state.display = None
        self.shown_changed.emit()

    @property
    def editors(self) -> dict[str, AnnotationEditor]:
        """The annotation editors there are, by series key."""
        return {k: s.editor for k, s in self.states.items() if s.editor is not None}

    @property
    def modified(self) -> bool:
        """True when some series' annotation has changes not exported."""
        return any(e.history.modified for e in self.editors.values())

    def discard_annotations(self) -> list[str]:
        """Forget every annotation (the user chose to discard them): autosaves deleted, editors dropped.
        Returns the keys of the series that had one."""
        editors = self.editors
        for key, editor in editors.items():
            if editor.autosave is not None:
                editor.autosave.discard()
            self.states[key].editor = None
        return list(editors)
