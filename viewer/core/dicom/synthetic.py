"""Write small, valid synthetic DICOM series (for demos, tests and benchmarks; no real patient data)."""
from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid


def phantom_ct(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A simple body-like CT phantom in HU, ``(z, y, x)`` int16: air, soft-tissue ellipse, two lungs, spine."""
    z, y, x = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:y, 0:x]
    cy, cx = y / 2, x / 2
    body = ((yy - cy) / (0.38 * y)) ** 2 + ((xx - cx) / (0.45 * x)) ** 2 <= 1
    lung_l = ((yy - cy) / (0.25 * y)) ** 2 + ((xx - cx * 0.6) / (0.15 * x)) ** 2 <= 1
    lung_r = ((yy - cy) / (0.25 * y)) ** 2 + ((xx - cx * 1.4) / (0.15 * x)) ** 2 <= 1
    spine = ((yy - cy * 1.5) ** 2 + (xx - cx) ** 2) <= (0.05 * x) ** 2
    plane = np.full((y, x), -1000, np.int16)
    plane[body] = 40
    plane[lung_l | lung_r] = -850
    plane[spine] = 700
    volume = np.repeat(plane[None], z, axis=0)
    volume += rng.normal(0, 15, size=volume.shape).astype(np.int16)
    return volume


def write_series(
    out_dir: str | Path,
    hu: np.ndarray,
    spacing: tuple[float, float, float] = (2.5, 0.7, 0.7),
    origin: tuple[float, float, float] = (-180.0, -180.0, -300.0),
    orientation: tuple[float, ...] = (1, 0, 0, 0, 1, 0),
    *,
    patient_id: str = "HF-SYNTH-0001",
    patient_name: str = "Synthetic^Phantom",
    study_uid: str | None = None,
    series_uid: str | None = None,
    series_number: int = 1,
    description: str = "Synthetic CT",
    modality: str = "CT",
    window: tuple[float, float] = (40.0, 400.0),
    uid_seed: str | None = None,
    study_date: str | None = None,
    study_description: str = "Synthetic study",
) -> list[Path]:
    """Write ``hu`` (``(z, y, x)``, HU) as one CT series of uncompressed single-frame files.

    Slices are written along ``row_dir x col_dir`` from ``origin`` with ``spacing`` = (slice, row, column) mm.
    Pixels are stored as unsigned 16-bit with RescaleIntercept -1024, as most scanners do. Returns the paths.
    With ``uid_seed`` every UID not given explicitly is derived from it (and ``study_date`` fixes the date), so
    the same call writes byte-identical files; otherwise UIDs are fresh and the date is today.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def new_uid(*role: object) -> UID:
        if uid_seed is None:
            return generate_uid()
        return generate_uid(entropy_srcs=[uid_seed, *(str(r) for r in role)])

    study_uid = study_uid or new_uid("study")
    series_uid = series_uid or new_uid("series", series_number)
    frame_of_reference = new_uid("frame-of-reference")
    row_dir = np.array(orientation[:3], float)
    col_dir = np.array(orientation[3:], float)
    normal = np.cross(row_dir, col_dir)
    today = study_date or datetime.date.today().strftime("%Y%m%d")
    stored = np.clip(hu.astype(np.int32) + 1024, 0, 65535).astype(np.uint16)
    paths = []
    for k in range(hu.shape[0]):
        sop_uid = new_uid("instance", series_number, k)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.PatientID = patient_id
        ds.PatientName = patient_name
        ds.StudyInstanceUID = study_uid
        ds.StudyDate = today
        ds.StudyDescription = study_description
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = series_number
        ds.SeriesDescription = description
        ds.Modality = modality
        ds.FrameOfReferenceUID = frame_of_reference
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [round(float(v), 4) for v in np.asarray(origin) + normal * spacing[0] * k]
        ds.ImageOrientationPatient = [float(v) for v in orientation]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[2])]
        ds.SliceThickness = float(spacing[0])
        ds.Rows, ds.Columns = int(hu.shape[1]), int(hu.shape[2])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter = window[0]
        ds.WindowWidth = window[1]
        ds.PixelData = stored[k].tobytes()
        path = out_dir / f"IM{k + 1:05d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths
