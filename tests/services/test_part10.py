"""The UIDs read by the tag walker are pydicom's on real files of every transfer syntax; pydicom reads the rest."""
from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

from tests.conftest import data_path
from viewer.core.dicom.tags import Fallback, read_tags_in
from viewer.services.pacs.part10 import instance_uids

KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def pydicom_uids(data: bytes) -> tuple[str, ...] | None:
    try:
        header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=list(KEYWORDS))
    except Exception:
        return None
    return tuple(str(header.get(keyword, "") or "").strip("\0 ") for keyword in KEYWORDS)


@pytest.mark.parametrize("folder", ["ts-dcm-qa-ts", "ts-cornerstone-ct", "edge-dicom2nifti", "seg-rtstruct",
                                   "enh-multiframe"])
def test_the_same_uids_as_pydicom(folder: str) -> None:
    files = [p for p in sorted(data_path(folder).rglob("*")) if p.is_file()]
    walked = 0
    for path in files:
        data = path.read_bytes()
        assert instance_uids(data) == pydicom_uids(data), path
        try:
            read_tags_in(data, {})
            walked += 1
        except Exception:
            pass
    assert walked > len(files) // 2  # most took the fast path


def encode(syntax: str, **elements: object) -> bytes:
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = syntax
    dataset.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    dataset.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    for keyword, value in elements.items():
        setattr(dataset, keyword, value)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_implicit_big_endian_sequences_and_broken_input() -> None:
    uids = {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.4", "SOPInstanceUID": "1.2.3.4.5"}
    implicit = encode(ImplicitVRLittleEndian, **uids)
    assert instance_uids(implicit) == ("1.2.3", "1.2.3.4", "1.2.3.4.5")
    read_tags_in(implicit, {})  # the fast path
    big = encode(ExplicitVRBigEndian, **uids)  # pydicom's answer
    with pytest.raises(Fallback):
        read_tags_in(big, {})
    assert instance_uids(big) == ("1.2.3", "1.2.3.4", "1.2.3.4.5")
    ref = Dataset()
    ref.ReferencedSOPInstanceUID = "9.9"
    with_sequence = encode(ImplicitVRLittleEndian, ReferencedImageSequence=Sequence([ref]), **uids)
    assert instance_uids(with_sequence) == ("1.2.3", "1.2.3.4", "1.2.3.4.5")
    assert instance_uids(b"not DICOM at all") is None
    cut = implicit[:140]  # inside the file meta
    assert instance_uids(cut) == pydicom_uids(cut)
    assert instance_uids(bytearray(implicit)) == instance_uids(memoryview(implicit)) == instance_uids(implicit)


def test_lidc_takes_the_fast_path() -> None:
    path: Path = next(iter(sorted(data_path("lidc-idri-0001").rglob("*.dcm"))))
    data = path.read_bytes()
    assert read_tags_in(data, {}).syntax and instance_uids(data) == pydicom_uids(data)
