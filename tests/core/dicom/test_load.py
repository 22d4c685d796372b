"""Loading real series into Volumes: geometry, pixel values, transfer syntaxes, warnings, progress, cancel.

Every expectation is computed here independently of the loader: geometry from ImagePositionPatient /
ImageOrientationPatient / PixelSpacing (or the functional groups) read with pydicom, values from pydicom's
``pixel_array`` plus the rescale read here, or from SimpleITK (GDCM, a different decoder).
"""
from __future__ import annotations

import re
import threading
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.conftest import DATA, data_path
from viewer.core.dicom.load import iter_load, load_series
from viewer.core.dicom.model import Series
from viewer.core.dicom.scan import read_header, scan
from viewer.core.dicom.synthetic import phantom_ct, write_series
from viewer.core.jobs import Cancelled, CancelToken

AIR = -1024  # the loader's CT floor and padding fill


# ---------------------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def catalog():
    if not DATA.exists():
        pytest.skip(f"real test data not available: {DATA}")
    return scan(DATA)


def only_series(path) -> Series:
    """The single image series a scan of ``path`` (a file or folder) finds."""
    found = [s for s in scan(path).all_series() if s.kind == "image"]
    assert len(found) == 1, [s.key for s in found]
    return found[0]


def series_of_files(paths) -> Series:
    """All ``paths`` as ONE series, bypassing the catalog's splitting, to exercise the loader's own checks."""
    headers = [read_header(p) for p in sorted(paths)]
    return Series(key=headers[0].series_uid, uid=headers[0].series_uid, modality=headers[0].modality,
                  instances=headers, rows=headers[0].rows, columns=headers[0].columns)


def codes(volume) -> set[str]:
    return {w.code for w in volume.warnings}


def read(path, pixels: bool = False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, stop_before_pixels=not pixels, force=True)


def frame_geometry(ds, frame: int):
    """(IPP, IOP, PixelSpacing) of 0-based ``frame``: per-frame group, else shared group, else top level."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    groups = ([per_frame[frame]] if per_frame else []) + ([shared[0]] if shared else [])

    def find(macro, keyword):
        for group in groups:
            if macro in group and len(group[macro].value) and keyword in group[macro][0]:
                return np.array([float(v) for v in group[macro][0][keyword].value])
        if keyword in ds and ds[keyword].value not in (None, ""):
            return np.array([float(v) for v in ds[keyword].value])
        return None

    position = find("PlanePositionSequence", "ImagePositionPatient")
    orientation = find("PlaneOrientationSequence", "ImageOrientationPatient")
    offsets = ds.get("GridFrameOffsetVector")
    if offsets and position is not None and orientation is not None and not per_frame:
        # RT Dose: frame planes lie at these offsets along the normal from the first (PS3.3 C.8.8.3.2).
        normal = np.cross(orientation[:3], orientation[3:])
        position = position + (float(offsets[frame]) - float(offsets[0])) * normal
    return position, orientation, find("PixelMeasuresSequence", "PixelSpacing")


def frame_rescale(ds, frame: int) -> tuple[float, float]:
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    for group in ([per_frame[frame]] if per_frame else []) + ([shared[0]] if shared else []) + [ds]:
        item = group
        if "PixelValueTransformationSequence" in group:
            item = group.PixelValueTransformationSequence[0]
        if "RescaleSlope" in item or "RescaleIntercept" in item:
            return float(item.get("RescaleSlope", 1) or 1), float(item.get("RescaleIntercept", 0) or 0)
    return 1.0, 0.0


def slice_sources(volume, series):
    """(path, 0-based frame) of each slice, found through the volume's SOP UIDs and frame numbers."""
    by_uid = {inst.sop_instance_uid: inst.path for inst in series.instances}
    return [(by_uid[uid], frame - 1) for uid, frame in zip(volume.slice_sop_uids, volume.slice_frame_numbers)]


def expected_values(ds, frame: int, floor=None) -> np.ndarray:
    """Modality values of a frame computed here: pydicom pixel_array x slope + intercept (+ CT floor)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = ds.pixel_array
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raw = raw[frame]
    slope, intercept = frame_rescale(ds, frame)
    values = raw.astype(np.float64) * slope + intercept
    return np.maximum(values, floor) if floor is not None else values


def sitk():
    return pytest.importorskip("SimpleITK")


# --------------------------------------------------------------------------------- every series, geometry
def test_every_image_series_loads_with_the_affine_of_its_headers(catalog):
    """Affine vs an independent computation from IPP/IOP/PixelSpacing (< 0.01 mm) for all data."""
    problems: list[str] = []
    checked = 0
    for series in catalog.all_series():
        if series.kind != "image":
            continue
        name = f"{Path(series.instances[0].path).relative_to(DATA)} [{series.key[-6:]}]"
        try:
            volume = load_series(series)
        except Exception as error:  # noqa: BLE001 - collect, report all at the end
            problems.append(f"{name}: load failed: {type(error).__name__}: {error}")
            continue
        if "decode_failed" in codes(volume):
            problems.append(f"{name}: {volume.warnings}")
        if volume.array.dtype not in (np.int16, np.float32, np.uint8) or not volume.complete:
            problems.append(f"{name}: dtype {volume.array.dtype}, complete={volume.complete}")
        datasets = {}
        geo = []
        for path, frame in slice_sources(volume, series):
            if path not in datasets:
                datasets[path] = read(path)
            geo.append(frame_geometry(datasets[path], frame))
        if any(g[0] is None or g[1] is None for g in geo):
            if "no_geometry" not in codes(volume):
                problems.append(f"{name}: no position/orientation but no 'no_geometry' warning")
            continue
        checked += 1
        ipp = np.array([g[0] for g in geo])
        iop = geo[0][1]
        row_dir, col_dir = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
        normal = np.cross(row_dir, col_dir)
        spacing = geo[0][2] if geo[0][2] is not None else np.array([1.0, 1.0])
        rows, columns = volume.shape[1:]
        n = len(ipp)
        regular = n > 1 and not codes(volume) & {"uneven_spacing", "missing_slices", "no_geometry"}
        # Slices that must sit exactly on the grid: all of them for a regular stack, else first and last.
        exact = range(n) if regular or n == 1 else (0, n - 1)
        for k in exact:
            for x, y in ((0, 0), (columns - 1, 0), (0, rows - 1), (columns - 1, rows - 1)):
                mine = volume.index_to_lps([x, y, k])
                theirs = ipp[k] + x * spacing[1] * row_dir + y * spacing[0] * col_dir
                if np.linalg.norm(mine - theirs) >= 0.01:
                    problems.append(f"{name}: voxel ({x},{y},{k}) at {mine} but headers say {theirs}")
                    break
        if n > 1 and not np.all(np.diff(ipp @ normal) > 0):
            problems.append(f"{name}: slices do not ascend along row_dir x col_dir")
        if n == 1 and abs(abs(volume.affine[:3, 2] @ normal) - np.linalg.norm(volume.affine[:3, 2])) > 1e-9:
            problems.append(f"{name}: single slice axis not along the normal")
        if volume.slice_positions is None or not np.allclose(volume.slice_positions, ipp, atol=0.01):
            problems.append(f"{name}: slice_positions differ from the headers")
    assert checked >= 40, f"only {checked} series had geometry: is the data complete?"
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------------------- LIDC
@pytest.fixture(scope="module")
def lidc():
    series = only_series(data_path("lidc-idri-0001"))
    return series, load_series(series)


def test_lidc_matches_simpleitk_geometry_and_values(lidc):
    sitk_ = sitk()
    series, volume = lidc
    folder = str(Path(series.instances[0].path).parent)
    reader = sitk_.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
    image = reader.Execute()
    theirs = sitk_.GetArrayFromImage(image)
    assert volume.array.dtype == np.int16 and volume.shape == theirs.shape == (133, 512, 512)
    # sitk (index -> LPS) and ours must agree on where every sampled voxel is...
    z_map = []
    for k in range(image.GetSize()[2]):
        for x, y in ((0, 0), (511, 0), (0, 511), (511, 511), (256, 300)):
            point = np.array(image.TransformIndexToPhysicalPoint((x, y, k)))
            mine = volume.lps_to_index(point)
            assert np.allclose(mine, np.round(mine), atol=1e-3), (x, y, k, mine)
            assert tuple(np.round(mine[:2]).astype(int)) == (x, y)
        z_map.append(int(round(volume.lps_to_index(image.TransformIndexToPhysicalPoint((0, 0, k)))[2])))
    assert sorted(z_map) == list(range(133))
    # ...and on its value, except that our CT floor lifts the -2048 outside the scan circle to -1024.
    assert np.array_equal(volume.array[z_map], np.maximum(theirs, AIR))
    assert (theirs < AIR).any(), "the comparison above would not test the floor"


def test_lidc_air_reads_minus_1000_and_no_padding_junk(lidc):
    _, volume = lidc
    a = volume.array
    z = a.shape[0] // 2
    # In front of the chest (outside the body, inside the scan circle): air.
    patch = a[z, 60:80, 246:266].astype(float)
    assert abs(patch.mean() + 1000) < 30
    assert a.min() == AIR
    for junk in (-2048, -2000, -3024, -3048):
        assert not (a == junk).any(), junk
    assert (a[:, :5, :5] == AIR).all()  # corners, outside the scan circle (stored -1024 = -2048 HU)
    assert volume.default_window == (-600.0, 1600.0)


def test_pixel_padding_value_is_honoured():
    # Files that really contain their PixelPaddingValue: ct-3slice (-2000, signed) and GE (-1500, intercept 0).
    for folder, count in ((data_path("seg-rtstruct", "dcmqi", "segmentations", "ct-3slice"), 3),
                          (data_path("ct-gantry-tilt", "GE_head_tilt_uneven"), 28)):
        series = only_series(folder)
        volume = load_series(series)
        assert volume.shape[0] == count
        for k, (path, frame) in enumerate(slice_sources(volume, series)):
            ds = read(path, pixels=True)
            pad = int(ds.PixelPaddingValue)
            pad = pad - 65536 if ds.PixelRepresentation == 1 and pad > 32767 else pad
            raw = ds.pixel_array
            padded = raw == pad
            assert padded.sum() > 1000
            assert (volume.array[k][padded] == AIR).all()
            assert np.array_equal(volume.array[k][~padded], expected_values(ds, frame, AIR)[~padded])


# --------------------------------------------------------------------------------------- transfer syntax
CORNERSTONE_LOSSLESS = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
                        "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
                        "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90"]
CORNERSTONE_LOSSY = {"1.2.840.10008.1.2.4.50": 20, "1.2.840.10008.1.2.4.51": 6, "1.2.840.10008.1.2.4.53": 6,
                     "1.2.840.10008.1.2.4.55": 6, "1.2.840.10008.1.2.4.81": 2, "1.2.840.10008.1.2.4.91": 2}


def test_cornerstone_ct_every_transfer_syntax():
    folder = data_path("ts-cornerstone-ct")
    reference_path = folder / "CTImage.dcm_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm"
    reference = expected_values(read(reference_path, pixels=True), 0, AIR)
    seen = set()
    for path in sorted(folder.glob("CTImage.dcm*")):
        ts = str(read(path).file_meta.TransferSyntaxUID)
        volume = load_series(only_series(path))
        got = volume.array[0].astype(np.float64)
        if ts in CORNERSTONE_LOSSLESS:
            assert volume.array.dtype == np.int16, ts
            assert np.array_equal(got, reference), f"lossless {ts} differs from the uncompressed reference"
        else:
            assert np.abs(got - reference).mean() < CORNERSTONE_LOSSY[ts], ts
            assert np.corrcoef(got.ravel(), reference.ravel())[0, 1] > 0.99, ts
        seen.add(ts)
    assert seen == set(CORNERSTONE_LOSSLESS) | set(CORNERSTONE_LOSSY)


def test_dcm_qa_ts_nine_encodings_decode_identically():
    folder = data_path("ts-dcm-qa-ts", "In")
    reference = read(folder / "1.dcm", pixels=True).pixel_array
    syntaxes = set()
    for k in range(1, 10):
        path = folder / f"{k}.dcm"
        syntaxes.add(str(read(path).file_meta.TransferSyntaxUID))
        volume = load_series(only_series(path))
        assert np.array_equal(volume.array[0], reference), path.name
    assert len(syntaxes) == 7  # 5 and 6 share JPEG Lossless SV1, 7 and 8 JPEG-LS lossless


def test_pylibjpeg_data_every_file_decodes_like_gdcm():
    sitk_ = sitk()
    folder = data_path("ts-pylibjpeg-data")
    checked = 0
    for path in sorted(folder.rglob("*.dcm")):
        ds = read(path)
        if "PixelData" not in ds and "Rows" not in ds:
            continue
        volume = load_series(only_series(path))
        ours = volume.array[0]
        try:
            theirs = sitk_.GetArrayFromImage(sitk_.ReadImage(str(path)))[0]
        except RuntimeError:  # GDCM cannot read single-frame RT Dose: compare with pydicom instead
            theirs = expected_values(read(path, pixels=True), 0)
        if volume.is_rgb:
            bits = int(ds.BitsStored)
            theirs = (theirs.astype(np.uint64) >> max(0, bits - 8)).astype(np.int64)
            if bits > 8 and path.parent.name == "RLELossless":
                # GDCM swaps the byte segments of 16/32-bit RGB RLE; the same picture is stored 8-bit.
                sibling = path.with_name(re.sub(r"_(16|32)bit", "", path.name))
                theirs = sitk_.GetArrayFromImage(sitk_.ReadImage(str(sibling)))[0].astype(np.int64)
            lossy = "Baseline" in path.parent.name or "Extended" in path.parent.name
            assert np.abs(ours.astype(np.int64) - theirs).max() <= (3 if lossy else 0), path.name
        else:
            theirs = theirs.astype(np.float64)
            if volume.modality == "CT":
                theirs = np.maximum(theirs, AIR)
            lossy_8bit_jpeg = path.parent.name in ("JPEGBaseline", "JPEGExtended") and "lossy" not in path.name
            tol = 1.0 if lossy_8bit_jpeg else 0.0  # libjpeg vs GDCM's IJG may round a DCT value differently
            assert np.allclose(ours, theirs, rtol=1e-6, atol=tol), path.name
        checked += 1
    assert checked >= 40


# ------------------------------------------------------------------------------------------- enhanced MF
ENHANCED = [
    ("enh-multiframe", "dcm_qa_xa30", "5_anat-T1w_acq-tfl"),
    ("enh-multiframe", "pydicom-data", "eCT_Supplemental.dcm"),
    ("enh-multiframe", "dicom2nifti", "philips_enhanced_anatomical"),
    ("enh-multiframe", "dicom2nifti", "siemens_multiframe_anatomical"),
    ("enh-multiframe", "dcm_qa_philips_enh", "1901_WIP_3DpCASL_real.dcm"),
    ("edge-dicom2nifti", "hyperfine", "anatomical", "001"),
]


@pytest.mark.parametrize("parts", ENHANCED, ids=lambda p: p[-1])
def test_enhanced_multiframe_geometry_and_values_from_functional_groups(parts):
    series = only_series(data_path(*parts))
    assert series.n_instances == 1 and series.n_frames > 1
    volume = load_series(series)
    path = series.instances[0].path
    ds = read(path, pixels=True)
    assert "PerFrameFunctionalGroupsSequence" in ds
    n_frames = int(ds.NumberOfFrames)
    assert volume.shape[0] == n_frames and sorted(volume.slice_frame_numbers) == list(range(1, n_frames + 1))
    floor = AIR if volume.modality == "CT" else None
    normal = None
    previous = -np.inf
    for k, frame in enumerate(f - 1 for f in volume.slice_frame_numbers):
        position = ds.PerFrameFunctionalGroupsSequence[frame].PlanePositionSequence[0].ImagePositionPatient
        position = np.array([float(v) for v in position])
        _, iop, spacing = frame_geometry(ds, frame)
        assert np.linalg.norm(volume.index_to_lps([0, 0, k]) - position) < 0.01, (k, frame)
        assert np.allclose(volume.affine[:3, 0], iop[:3] / np.linalg.norm(iop[:3]) * spacing[1], atol=1e-6)
        assert np.allclose(volume.affine[:3, 1], iop[3:] / np.linalg.norm(iop[3:]) * spacing[0], atol=1e-6)
        normal = np.cross(iop[:3], iop[3:])
        assert position @ normal > previous
        previous = position @ normal
        assert np.allclose(volume.array[k], expected_values(ds, frame, floor), rtol=1e-6, atol=1e-3), (k, frame)


def test_enhanced_geometry_read_by_the_loader_when_the_scan_has_none():
    series = only_series(data_path("enh-multiframe", "pydicom-data", "eCT_Supplemental.dcm"))
    expected = load_series(series).affine
    series.instances[0].frames = []  # as if the scanner had not parsed the functional groups
    volume = load_series(series)
    assert np.allclose(volume.affine, expected)


def test_enhanced_repeats_at_one_position_load_one_volume_each():
    series = only_series(data_path("enh-multiframe", "dcm_qa_philips_enh",
                                   "2001_WIP_fcMRI_Field_Mapping_e2_phMag.dcm"))
    first, second = load_series(series), load_series(series, repeat=1)
    assert "duplicate_positions" in codes(first)
    assert first.shape == second.shape == (53, 80, 80)
    assert np.allclose(first.affine, second.affine)
    assert set(first.slice_frame_numbers).isdisjoint(second.slice_frame_numbers)


# ----------------------------------------------------------------------------------------------- MR, CR
def test_sagittal_decubitus_mr_affine_matches_headers_and_simpleitk(mr_sagittal_dir):
    sitk_ = sitk()
    series = only_series(mr_sagittal_dir)
    volume = load_series(series)
    assert volume.shape == (35, 256, 256)
    normal = volume.affine[:3, 2] / np.linalg.norm(volume.affine[:3, 2])
    assert abs(normal[0]) > 0.95  # sagittal: slices step along left-right
    ds = read(series.instances[0].path)
    assert ds.PatientPosition == "HFDR"
    for k, (path, frame) in enumerate(slice_sources(volume, series)):
        ipp, iop, spacing = frame_geometry(read(path), frame)
        far = ipp + 255 * spacing[1] * iop[:3] + 255 * spacing[0] * iop[3:]
        assert np.linalg.norm(volume.index_to_lps([255, 255, k]) - far) < 0.01
    reader = sitk_.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(mr_sagittal_dir / "2_t1_fl2d_sag")))
    image = reader.Execute()
    theirs = sitk_.GetArrayFromImage(image)
    for x, y, k in ((0, 0, 0), (255, 0, 10), (0, 255, 20), (200, 100, 34)):
        point = np.array(image.TransformIndexToPhysicalPoint((x, y, k)))
        index = np.round(volume.lps_to_index(point)).astype(int)
        assert np.allclose(volume.lps_to_index(point), index, atol=1e-3)
        assert volume.array[index[2], index[1], index[0]] == theirs[k, y, x]


def test_monochrome1_is_flagged_not_inverted():
    path = data_path("dicomdir-pydicom", "77654033", "CR1", "6154")
    volume = load_series(only_series(path))
    ds = read(path, pixels=True)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert volume.photometric == "MONOCHROME1" and "monochrome1" in codes(volume)
    assert np.allclose(volume.array[0], expected_values(ds, 0))  # true values, display inverts


def test_float_rescale_per_file_gives_float32():
    series = only_series(data_path("edge-dicom2nifti", "generic", "anatomical", "002_non_isotropic"))
    volume = load_series(series)
    assert volume.array.dtype == np.float32
    for k, (path, frame) in enumerate(slice_sources(volume, series)):
        assert np.allclose(volume.array[k], expected_values(read(path, pixels=True), frame), rtol=1e-6)


def test_colour_series_is_rgb_uint8():
    series = only_series(data_path("edge-dicom2nifti", "generic", "rgb", "001"))
    volume = load_series(series)
    assert volume.is_rgb and volume.array.dtype == np.uint8 and volume.array.shape == (4, 77, 52, 3)
    for k, (path, _) in enumerate(slice_sources(volume, series)):
        assert np.array_equal(volume.array[k], read(path, pixels=True).pixel_array)


def test_ybr_and_palette_become_rgb_like_gdcm():
    sitk_ = sitk()
    for name, tol in (("US-YBR_FULL_422-EVRLE.dcm", 3), ("no-pixel-spacing.dcm", 0)):
        path = data_path("ts-cornerstone-ct", name)
        volume = load_series(only_series(path))
        theirs = sitk_.GetArrayFromImage(sitk_.ReadImage(str(path)))[0].astype(int)
        assert volume.is_rgb and volume.array.dtype == np.uint8
        assert np.abs(volume.array[0].astype(int) - theirs).max() <= tol, name


# ------------------------------------------------------------------------------- edge cases and warnings
def _edge(*parts) -> Series:
    folder = data_path("edge-dicom2nifti", "failing", *parts)
    return series_of_files(sorted(folder.glob("*.dcm")))


def test_dicom2nifti_missing_slice():
    volume = load_series(_edge("sliceincrement", "002"))  # files 1, 2, 3, 5
    assert "missing_slices" in codes(volume)
    assert volume.shape[0] == 4


def test_dicom2nifti_uneven_increment():
    volume = load_series(_edge("sliceincrement", "001"))  # 5, 5, 10 mm with consecutive instance numbers
    assert "uneven_spacing" in codes(volume) and "missing_slices" not in codes(volume)
    assert volume.shape[0] == 4


def test_dicom2nifti_not_a_volume():
    volume = load_series(_edge("notavolume", "001"))  # 4 files at one position
    assert "duplicate_positions" in codes(volume)
    assert volume.shape[0] == 1


def test_dicom2nifti_mixed_orientation():
    series = _edge("sliceorientation", "001")
    volume = load_series(series)
    assert "mixed_orientation" in codes(volume)
    assert volume.shape[0] == 2
    iops = {tuple(read(p).ImageOrientationPatient) for p, _ in slice_sources(volume, series)}
    assert len(iops) == 1


def test_dicom2nifti_gantry_tilt_keeps_true_positions():
    series = _edge("gantrytilting", "001")
    volume = load_series(series)
    assert "gantry_tilt" in codes(volume)
    for k, (path, frame) in enumerate(slice_sources(volume, series)):
        assert np.linalg.norm(volume.index_to_lps([0, 0, k]) - frame_geometry(read(path), frame)[0]) < 0.01


def test_ge_tilted_uneven_ct_warns_with_angle():
    series = only_series(data_path("ct-gantry-tilt", "GE_head_tilt_uneven"))
    volume = load_series(series)
    assert {"gantry_tilt", "uneven_spacing"} <= codes(volume)
    message = next(w.message for w in volume.warnings if w.code == "gantry_tilt")
    tilt = float(read(series.instances[0].path).GantryDetectorTilt)
    assert float(re.search(r"([\d.]+)°", message).group(1)) == pytest.approx(abs(tilt), abs=0.1)
    # The slice axis is sheared by the tilt, not squeezed onto the normal.
    axis = volume.affine[:3, 2]
    normal = np.cross(volume.affine[:3, 0], volume.affine[:3, 1])
    angle = np.degrees(np.arccos(abs(axis @ normal) / np.linalg.norm(axis) / np.linalg.norm(normal)))
    assert angle == pytest.approx(abs(tilt), abs=0.1)


# --------------------------------------------------------------------------- progress, cancel, dtype
def test_progressive_load_shows_slices_before_the_last_is_decoded(lidc):
    series, final = lidc
    for workers in (1, 2):
        job = iter_load(series, workers=workers)
        first = next(job)
        volume = first.payload
        assert volume.slices_loaded == 0 and first.done == 0 and first.total == 133
        assert volume.affine is not None and volume.array.shape == (133, 512, 512)
        partial_seen = False
        for progress in job:
            assert progress.payload is volume and progress.done == volume.slices_loaded
            loaded = volume.slices_loaded
            if 0 < loaded < 133 and not partial_seen:
                partial_seen = True
                # axial CT opens at image 1, the head end: the array's last slice here, so loading starts there
                assert volume.loads_from_top
                start, stop = volume.loaded_range()
                assert (start, stop) == (133 - loaded, 133)
                assert np.array_equal(volume.array[start:], final.array[start:])  # shown slices are final
                assert not volume.array[0].any()  # the far end is not decoded yet
        assert partial_seen and volume.complete
        assert np.array_equal(volume.array, final.array)


def test_cancel_stops_the_load_and_its_threads(lidc):
    series, _ = lidc
    for workers in (1, 2):
        token = CancelToken()
        job = iter_load(series, token, workers=workers)
        volume = next(job).payload
        next(job)
        token.cancel()
        with pytest.raises(Cancelled):
            for _ in job:
                pass
        assert 0 < volume.slices_loaded < 133
    assert not [t for t in threading.enumerate() if t.name.startswith("hf-decode")]
    token = CancelToken()
    job = iter_load(series, token)
    next(job)
    token.cancel()
    with pytest.raises(Cancelled):
        next(job)


def test_int16_promoted_to_float32_when_a_later_slice_needs_it(tmp_path):
    hu = phantom_ct((6, 32, 32))
    paths = write_series(tmp_path / "s", hu, modality="MR")
    ds = pydicom.dcmread(paths[3])
    ds.RescaleSlope = 0.5  # slice 3 needs float
    ds.save_as(paths[3])
    ds = pydicom.dcmread(paths[5])
    raw = ds.pixel_array.copy()
    raw[0, 0] = 65000  # 63976 after the intercept: beyond int16
    ds.PixelData = raw.tobytes()
    ds.save_as(paths[5])
    series = only_series(tmp_path / "s")
    volume = load_series(series)
    assert volume.array.dtype == np.float32
    for k, (path, frame) in enumerate(slice_sources(volume, series)):
        assert np.array_equal(volume.array[k], expected_values(read(path, pixels=True), frame)), k
    assert volume.array[5, 0, 0] == 63976


def test_missing_photometric_read_as_monochrome2(tmp_path):
    hu = phantom_ct((3, 32, 32))
    paths = write_series(tmp_path / "s", hu)
    for path in paths:
        ds = pydicom.dcmread(path)
        del ds.PhotometricInterpretation
        ds.save_as(path)
    volume = load_series(only_series(tmp_path / "s"))
    assert volume.photometric == "MONOCHROME2"
    assert np.array_equal(volume.array, np.maximum(hu, AIR))


def test_signed_padding_written_as_unsigned_is_recognised(tmp_path):
    # LIDC style: PixelPaddingValue 63536 (US) on signed pixels means -2000.
    hu = phantom_ct((2, 32, 32))
    paths = write_series(tmp_path / "s", hu, modality="MR")
    for path in paths:
        ds = pydicom.dcmread(path)
        raw = (hu[0].astype(np.int32)).astype(np.int16)
        raw[:4, :4] = -2000
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = 0
        ds.PixelData = raw.tobytes()
        ds.add_new(0x00280120, "US", 63536)
        ds.save_as(path)
    volume = load_series(only_series(tmp_path / "s"))
    real_min = hu[0][4:, :].min()
    assert (volume.array[:, :4, :4] == min(real_min, hu[0][:, 4:].min())).all()  # MR: padding -> data minimum
    assert volume.array.min() > -2000


def test_every_pydicom_and_pydicom_data_image_series_loads():
    """The pydicom test files and the pydicom-data package: every image series loads or fails cleanly."""
    data_store = pytest.importorskip("data_store")  # the pydicom-data package
    folders = [Path(data_store.__file__).parent / "data", Path(pydicom.__file__).parent / "data" / "test_files"]
    catalog = scan([f for f in folders if f.is_dir()])
    images = [s for s in catalog.all_series() if s.kind == "image"]
    assert len(images) >= 40
    failures = []
    for series in images:
        try:
            volume = load_series(series)
        except Exception as error:  # noqa: BLE001 - collect them all
            failures.append(f"{series.instances[0].path}: {type(error).__name__}: {error}")
            continue
        assert volume.complete and volume.array.shape[0] >= 1
    assert not failures, "\n".join(failures)
