"""The in-memory image volume every view, overlay, model and export works on."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from viewer.core.calibration import Calibration
from viewer.core.issues import SeriesWarning


@dataclass(eq=False)
class Volume:
    """A series as a voxel array with its place in patient space.

    Parameters
    ----------
    array
        ``(z, y, x)`` = (slice, row, column) for grey images (int16 when the rescale allows it, else float32,
        values already rescaled: HU for CT); ``(z, y, x, 3)`` uint8 for colour.
    affine
        4x4 float64 mapping ``(x=column, y=row, z=slice, 1)`` to DICOM patient coordinates (LPS, mm).
        Slices ascend along ``row_dir x col_dir``; slice spacing comes from positions.
    modality, series_uid, study_uid
        From the DICOM headers.
    slice_sop_uids
        SOPInstanceUID of each slice (a multi-frame object repeats its UID).
    slice_frame_numbers
        1-based frame number inside that SOP instance for each slice (1 for single-frame files).
    default_window
        ``(center, width)`` from the first slice's VOI LUT, or None.
    warnings
        What the loader found odd (tilt, gaps, ...).
    slices_loaded
        How many slices are decoded so far, counting in load order; equals ``array.shape[0]`` when complete.
    loads_from_top
        The loader fills the array from its last slice down (a series that opens there, e.g. axial CT head
        first, so image 1 is on screen first); otherwise from slice 0 up. Loaded slices are always one run:
        :meth:`loaded_range`.
    description
        SeriesDescription.
    photometric
        PhotometricInterpretation of the source. ``MONOCHROME1`` values are *not* inverted in ``array`` (they
        stay true modality values); the display inverts its grey ramp.
    slice_positions
        ``(z, 3)`` true ImagePositionPatient (LPS mm) of each slice, or None without geometry. Equal to
        ``index_to_lps((0, 0, k))`` for regular stacks; for uneven ones it says where each slice really is.
    frame_of_reference_uid
        FrameOfReferenceUID (volumes sharing it share patient coordinates).
    slice_windows
        ``(center, width)`` of each slice's own VOI window (None where a slice has none); empty when unknown.
        ``default_window`` is only the first slice's; the series window comes from these
        (:func:`~viewer.core.windowing.series_window`).
    calibration
        What a pixel measures (:class:`~viewer.core.calibration.Calibration`); None means PixelSpacing with
        geometry (volumes built in code).
    frame_rate
        Frames per second the file asks for cine (FrameTime, RecommendedDisplayFrameRate, CineRate), or None.
    instance_numbers
        InstanceNumber of each slice (None where absent); gives the "as acquired" image order.
    failed_slices
        Array indices (along z) of the slices that could not be decoded and are left blank (a truncated file, a
        broken codec stream); the views say so on those slices and models are not run on such a volume.
    """

    array: np.ndarray
    affine: np.ndarray
    modality: str = ""
    series_uid: str = ""
    study_uid: str = ""
    slice_sop_uids: list[str] = field(default_factory=list)
    slice_frame_numbers: list[int] = field(default_factory=list)
    default_window: tuple[float, float] | None = None
    warnings: list[SeriesWarning] = field(default_factory=list)
    slices_loaded: int = 0
    description: str = ""
    photometric: str = "MONOCHROME2"
    slice_positions: np.ndarray | None = None
    frame_of_reference_uid: str = ""
    slice_windows: list = field(default_factory=list)
    calibration: Calibration | None = None
    frame_rate: float | None = None
    instance_numbers: list = field(default_factory=list)
    failed_slices: list[int] = field(default_factory=list)
    loads_from_top: bool = False

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(z, y, x)`` size of the grid (colour channels left out)."""
        z, y, x = self.array.shape[:3]
        return int(z), int(y), int(x)

    @property
    def is_rgb(self) -> bool:
        """True for colour volumes ``(z, y, x, 3)``."""
        return self.array.ndim == 4

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm as ``(z, y, x)``, from the affine's column norms."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)[::-1].copy()

    @property
    def complete(self) -> bool:
        """True once every slice is decoded."""
        return self.slices_loaded >= self.shape[0]

    def loaded_range(self) -> tuple[int, int]:
        """The array slices ``[start, stop)`` decoded so far (one run, from the end the loader started at)."""
        n = self.shape[0]
        k = min(max(self.slices_loaded, 0), n)
        return (n - k, n) if self.loads_from_top else (0, k)

    def is_slice_loaded(self, k: int) -> bool:
        """True when array slice ``k`` is decoded."""
        start, stop = self.loaded_range()
        return start <= int(k) < stop

    def index_to_lps(self, xyz) -> np.ndarray:
        """Map voxel indices ``(..., 3)`` given as ``(x=column, y=row, z=slice)`` to LPS mm."""
        xyz = np.asarray(xyz, dtype=float)
        return xyz @ self.affine[:3, :3].T + self.affine[:3, 3]

    def lps_to_index(self, lps) -> np.ndarray:
        """Map LPS mm points ``(..., 3)`` to continuous voxel indices ``(x, y, z)``."""
        lps = np.asarray(lps, dtype=float)
        inverse = np.linalg.inv(self.affine)
        return lps @ inverse[:3, :3].T + inverse[:3, 3]
