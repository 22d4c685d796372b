"""Window/level: presets, the DICOM VOI default, automatic windows from percentiles, and the LUT maths.

A window is ``(center, width)`` in stored-value units after rescale (HU for CT). The grey mapping follows the
DICOM linear VOI function (PS3.3 C.11.2.1.2): values up to ``c - 0.5 - (w - 1) / 2`` are black, values above
``c - 0.5 + (w - 1) / 2`` white, linear in between.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_WIDTH = 1.0


@dataclass(frozen=True)
class Window:
    """A VOI window: ``center`` (level) and ``width``, in rescaled units (HU for CT)."""

    center: float
    width: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", float(self.center))
        object.__setattr__(self, "width", max(MIN_WIDTH, float(self.width)))

    @property
    def bounds(self) -> tuple[float, float]:
        """``(lowest, highest)`` value of the linear ramp (below is black, above is white)."""
        half = (self.width - 1.0) / 2.0
        return self.center - 0.5 - half, self.center - 0.5 + half

    def __str__(self) -> str:
        return f"W {self.width:g} L {self.center:g}"


@dataclass(frozen=True)
class Preset:
    """A named window; ``name`` is the stable key (``lung``), ``label`` what the menu shows."""

    name: str
    label: str
    center: float
    width: float

    @property
    def window(self) -> Window:
        """The preset as a :class:`Window`."""
        return Window(self.center, self.width)


#: CT presets in the order of the number keys 1..6 (values as OHIF / Radiopaedia use them).
CT_PRESETS: tuple[Preset, ...] = (
    Preset("lung", "Lung", -600, 1500),
    Preset("mediastinum", "Mediastinum", 50, 350),
    Preset("bone", "Bone", 480, 2500),
    Preset("brain", "Brain", 40, 80),
    Preset("abdomen", "Abdomen", 50, 400),
    Preset("liver", "Liver", 90, 150),
)

#: Used for CT when the files carry no WindowCenter/WindowWidth.
CT_FALLBACK = Window(40, 400)


def find_preset(name: str, presets=CT_PRESETS) -> Preset | None:
    """The preset called ``name`` (case-insensitive, key or label), or None."""
    wanted = name.strip().lower()
    for preset in presets:
        if wanted in (preset.name.lower(), preset.label.lower()):
            return preset
    return None


def parse_window(text: str, presets=CT_PRESETS) -> Window:
    """A window from a preset name (``"lung"``) or ``"W,L"`` (``"1500,-600"``: width first, then level).

    Raises ``ValueError`` with a helpful message for anything else.
    """
    preset = find_preset(text, presets)
    if preset is not None:
        return preset.window
    parts = [p.strip() for p in text.replace(";", ",").split(",")]
    if len(parts) == 2:
        try:
            width, level = float(parts[0]), float(parts[1])
        except ValueError:
            pass
        else:
            if width <= 0:
                raise ValueError(f"window width must be positive, got {width:g}")
            return Window(level, width)
    names = ", ".join(p.name for p in presets)
    raise ValueError(f"unknown window {text!r}: use a preset ({names}) or WIDTH,LEVEL such as 1500,-600")


def auto_window(array: np.ndarray, low: float = 0.5, high: float = 99.5, max_samples: int = 2_000_000) -> Window:
    """A window spanning the ``low``..``high`` percentiles of the values (for MR, PET, US, ...).

    Large arrays are subsampled with a regular stride (deterministic). The lowest stored value is ignored when it
    covers much of the image (air / padding outside the body), so the window follows the tissue.
    """
    flat = np.asarray(array).reshape(-1)
    if flat.size == 0:
        return Window(0, 1)
    step = max(1, flat.size // max_samples)
    sample = flat[::step].astype(np.float64, copy=False)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return Window(0, 1)
    floor = sample.min()
    inside = sample[sample > floor]
    if inside.size >= 0.05 * sample.size:
        sample = inside
    lo, hi = np.percentile(sample, [low, high])
    if hi <= lo:
        hi = lo + 1.0
    return Window((lo + hi) / 2.0 + 0.5, hi - lo + 1.0)


#: Stored windows of the central images "disagree" when their widths differ by more than this factor; the
#: series then opens with a percentile window of the central slab instead of any one image's window.
WINDOW_DISAGREEMENT = 4.0


def central_range(n: int, fraction: float = 0.5) -> tuple[int, int]:
    """``(start, stop)`` of the central ``fraction`` of ``n`` slices (at least one slice)."""
    if n <= 0:
        return 0, 0
    keep = max(1, int(round(n * fraction)))
    start = (n - keep) // 2
    return start, start + keep


def series_window(slice_windows) -> Window | None:
    """The window a series' own VOI windows agree on: the median over the central images, or None.

    A series whose first image is noise (a localiser-like first slice with W 22 L 11) must not impose that
    window on every slice, so only the central half of the stack votes. None when the central images carry no
    window or their widths disagree by more than :data:`WINDOW_DISAGREEMENT` (the caller then uses a percentile
    window of the central slab).

    Parameters
    ----------
    slice_windows
        ``(center, width)`` (or None) of each slice, in slice order.
    """
    windows = list(slice_windows or [])
    start, stop = central_range(len(windows))
    central = np.array([w for w in windows[start:stop] if w is not None and w[1] and w[1] > 0], dtype=float)
    if central.size == 0:
        return None
    widths = central[:, 1]
    if widths.max() > WINDOW_DISAGREEMENT * widths.min():
        return None
    return Window(float(np.median(central[:, 0])), float(np.median(widths)))


def central_slab(volume) -> np.ndarray:
    """The central half of the loaded slices of ``volume`` (all loaded slices while fewer than half are in)."""
    n = volume.shape[0]
    start, stop = central_range(n)
    if 0 < volume.slices_loaded < n:  # progressive load: the other slices are still zeros
        first, last = volume.loaded_range()
        if not (first <= start and stop <= last):
            return volume.array[first:last]
    return volume.array[start:stop]


def initial_window(volume) -> tuple[Window, str]:
    """The window a series opens with, and where it came from (``"VOI"``, ``"default"`` or ``"auto"``).

    The series' DICOM VOI windows first (:func:`series_window`: the median over the central images); when the
    loader knows no per-image windows, the first slice's VOI. Without any stored window CT gets a soft-tissue
    window and other modalities :func:`auto_window` over the central slab; when the stored windows of the central
    images disagree (or they have none), every modality gets that percentile window.
    """
    windows = list(getattr(volume, "slice_windows", None) or [])
    stored = any(w is not None for w in windows)
    if stored:
        window = series_window(windows)
        if window is not None:
            return window, "VOI"
    elif volume.default_window is not None:  # e.g. enhanced multi-frame: windows in the functional groups
        center, width = volume.default_window
        if width and width > 0:
            return Window(center, width), "VOI"
    if str(volume.modality).upper() == "CT" and not stored:
        return CT_FALLBACK, "default"
    return auto_window(central_slab(volume)), "auto"


def _ramp(values: np.ndarray, window: Window, invert: bool) -> np.ndarray:
    lo, hi = window.bounds
    span = max(hi - lo, 1e-6)
    grey = np.clip((values - lo) / span, 0.0, 1.0)
    if invert:
        grey = 1.0 - grey
    return np.rint(grey * 255.0).astype(np.uint8)


def window_lut(window: Window, dtype, invert: bool = False) -> np.ndarray | None:
    """A uint8 table indexed by the raw bits of an integer image: ``lut[image.view(uint)]`` is the windowed image.

    Works for int8/uint8/int16/uint16 (256 or 65,536 entries; signed values are looked up through their
    two's-complement bit pattern, so no shifted copy of the volume is needed). Returns None for other dtypes,
    which :func:`apply_window` handles arithmetically.
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or dtype.itemsize > 2:
        return None
    return _ramp(_bit_values(dtype.str), window, invert)


_BIT_VALUES: dict[str, np.ndarray] = {}


def _bit_values(dtype_str: str) -> np.ndarray:
    """The value of every bit pattern of a small integer type, as float32 (cached: W/L drags rebuild LUTs)."""
    values = _BIT_VALUES.get(dtype_str)
    if values is None:
        dtype = np.dtype(dtype_str)
        unsigned = np.dtype(f"u{dtype.itemsize}")
        values = np.arange(2 ** (8 * dtype.itemsize), dtype=unsigned).view(dtype).astype(np.float32)
        values.setflags(write=False)
        _BIT_VALUES[dtype_str] = values
    return values


def lut_index_view(image: np.ndarray) -> np.ndarray:
    """The unsigned view of an int8/int16 image used to index :func:`window_lut` (no copy)."""
    if image.dtype.kind == "i":
        return image.view(np.dtype(f"u{image.dtype.itemsize}"))
    return image


def apply_window(image: np.ndarray, window: Window, invert: bool = False, lut: np.ndarray | None = None) -> np.ndarray:
    """Windowed uint8 grey image of any numeric image (pass a cached :func:`window_lut` to make it one lookup)."""
    image = np.asarray(image)
    if lut is None:
        lut = window_lut(window, image.dtype, invert)
    if lut is not None:
        return np.take(lut, lut_index_view(image))
    return _ramp(image.astype(np.float32, copy=False), window, invert)


def drag_window(start: Window, dx: float, dy: float, sensitivity: float | None = None) -> Window:
    """Window after a mouse drag of ``(dx, dy)`` screen pixels from ``start`` (OHIF / Horos convention).

    Dragging right widens the window (less contrast), left narrows it; dragging down raises the level (darker),
    up lowers it. ``sensitivity`` is value units per pixel; by default it scales with the starting width
    (0.5 % of the width per pixel, at least 0.25) so narrow brain windows and wide lung windows both feel right.
    """
    if sensitivity is None:
        sensitivity = max(0.25, start.width * 0.005)
    return Window(start.center + dy * sensitivity, max(MIN_WIDTH, start.width + dx * sensitivity))
