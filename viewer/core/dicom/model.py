"""Plain records produced by the scanner and the catalog (no pixel data)."""
from __future__ import annotations

from dataclasses import dataclass, field

from viewer.core.issues import SeriesWarning


@dataclass
class FrameGeometry:
    """Where one frame lies: ImagePositionPatient, ImageOrientationPatient (row dir, col dir), PixelSpacing.

    ``pixel_spacing`` is (row spacing, column spacing) in mm, as in DICOM.
    """

    position: tuple[float, float, float] | None
    orientation: tuple[float, float, float, float, float, float] | None
    pixel_spacing: tuple[float, float] | None


@dataclass
class InstanceHeader:
    """What the scanner keeps of one DICOM file (header only).

    For enhanced multi-frame objects ``frames`` holds per-frame geometry from the functional groups;
    for classic single-frame images it holds one entry.
    """

    path: str
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    transfer_syntax_uid: str = ""
    patient_id: str = ""
    patient_name: str = ""
    study_uid: str = ""
    study_date: str = ""
    study_description: str = ""
    series_uid: str = ""
    series_number: int | None = None
    series_description: str = ""
    #: the patient coordinate system its positions are in: slices of two cannot be stacked by position
    frame_of_reference_uid: str = ""
    modality: str = ""
    instance_number: int | None = None
    acquisition_number: int | None = None
    rows: int = 0
    columns: int = 0
    samples_per_pixel: int = 1
    photometric: str = ""
    bits_allocated: int = 0
    number_of_frames: int = 1
    has_pixels: bool = False
    frames: list[FrameGeometry] = field(default_factory=list)
    gantry_tilt: float | None = None
    #: (center, width) of this image's first VOI window, or None (per image: a series' windows may differ).
    window: tuple[float, float] | None = None
    #: ImagerPixelSpacing (row, column) mm at the detector (projection radiography), or None.
    imager_pixel_spacing: tuple[float, float] | None = None
    #: Spatially calibrated SequenceOfUltrasoundRegions items (:class:`~viewer.core.calibration.UltrasoundRegion`).
    ultrasound_regions: list = field(default_factory=list)
    #: Frames per second the file asks for (FrameTime / RecommendedDisplayFrameRate / CineRate), or None.
    frame_rate: float | None = None
    referenced_series_uids: list[str] = field(default_factory=list)
    referenced_sop_uids: list[str] = field(default_factory=list)


@dataclass
class UnreadableFile:
    """A file that was skipped, and why (``reason`` has no patient data)."""

    path: str
    reason: str


@dataclass
class Series:
    """One displayable unit: a SeriesInstanceUID, or one part of it when it had to be split.

    ``key`` is unique in the catalog: the SeriesInstanceUID, or ``"<uid>#<n>"`` for the n-th part of a split
    series. ``kind`` is one of ``image | seg | rtstruct | sr | other``. ``references`` lists the series UIDs a
    non-image object points to.
    """

    key: str
    uid: str
    modality: str = ""
    description: str = ""
    series_number: int | None = None
    kind: str = "image"
    sop_class_uid: str = ""
    rows: int = 0
    columns: int = 0
    instances: list[InstanceHeader] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    warnings: list[SeriesWarning] = field(default_factory=list)

    @property
    def n_instances(self) -> int:
        """Number of files (SOP instances) in this series."""
        return len(self.instances)

    @property
    def n_frames(self) -> int:
        """Number of frames over all instances."""
        return sum(max(1, i.number_of_frames) for i in self.instances)


@dataclass
class Study:
    """One StudyInstanceUID and its series."""

    uid: str
    date: str = ""
    description: str = ""
    series: list[Series] = field(default_factory=list)


@dataclass
class Patient:
    """One PatientID (with name) and its studies."""

    patient_id: str
    patient_name: str = ""
    studies: list[Study] = field(default_factory=list)


@dataclass
class Catalog:
    """Everything a scan found: patients -> studies -> series, and the files it skipped."""

    patients: list[Patient] = field(default_factory=list)
    unreadable: list[UnreadableFile] = field(default_factory=list)

    def all_series(self) -> list[Series]:
        """Every series, in patient/study/series order."""
        return [s for p in self.patients for st in p.studies for s in st.series]

    def find_series(self, key_or_uid: str) -> Series | None:
        """The series with this key, or the first part of the series with this SeriesInstanceUID."""
        for series in self.all_series():
            if series.key == key_or_uid:
                return series
        for series in self.all_series():
            if series.uid == key_or_uid:
                return series
        return None
