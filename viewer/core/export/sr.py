"""Accepted findings -> DICOM SR measurement report (TID 1500, highdicom ``Comprehensive3DSR``).

One TID 1410 "Planar ROI measurements" group per accepted finding: the finding's centre as a 3D point
(SCOORD3D POINT in the series' frame of reference), finding type Nodule (SNOMED CT 27925004) for nodules (the
label's code otherwise), and one measurement, Diameter (SNOMED CT 81827009) in mm = the box's largest extent.
A point is the simplest region TID 1410 accepts that says exactly what we know - where the centre is - without
inventing a contour. The observer is the device (Hounsfield), the algorithm is the detector.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from pydicom.dataset import Dataset

from viewer.core.export.seg import MANUFACTURER, _complete, _software_version, save_atomically, segment_codes


def _procedure(modality: str):
    """LOINC "<modality> unspecified body region" (CID 100) for the report's procedure."""
    from pydicom.sr.codedict import codes

    return {"MR": codes.LN.MRIUnspecifiedBodyRegion, "PT": codes.LN.PETUnspecifiedBodyRegion,
            "NM": codes.LN.NMUnspecifiedBodyRegion}.get(modality, codes.LN.CTUnspecifiedBodyRegion)


def build_measurement_report(review, sources: Sequence[Dataset], *, algorithm_version: str = "0",
                             series_number: int = 902, series_description: str = "AI findings") -> Dataset:
    """The SR dataset (not written) for the accepted findings of a
    :class:`~viewer.core.editing.review.FindingsReview` over the series whose headers are ``sources``.

    Raises ``ValueError`` without accepted findings: TID 1500 needs at least one measurement group.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    if not sources:
        raise ValueError("the SR needs the source series' headers")
    evidence = [_complete(ds) for ds in sources]
    frame_of_reference = str(evidence[0].FrameOfReferenceUID)
    algorithm = hd.sr.AlgorithmIdentification(name=(review.model_id or "manual")[:64],
                                              version=str(algorithm_version)[:64] or "0")
    if not review.with_status("accepted"):
        raise ValueError("no accepted findings: a TID 1500 report needs at least one measurement")
    groups = []
    for n, finding in enumerate(review.with_status("accepted"), start=1):
        _, finding_type = segment_codes(finding.label, n)
        point = hd.sr.ImageRegion3D(graphic_type=hd.sr.GraphicTypeValues3D.POINT,
                                    graphic_data=np.asarray([finding.center_lps], dtype=float),
                                    frame_of_reference_uid=frame_of_reference)
        diameter = hd.sr.Measurement(name=codes.SCT.Diameter, value=round(finding.diameter_mm, 3),
                                     unit=codes.UCUM.Millimeter)
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{finding.label} {n}"),
            referenced_region=point, finding_type=finding_type, measurements=[diameter],
            algorithm_id=algorithm if finding.source == "model" else None))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name=MANUFACTURER, manufacturer_name=MANUFACTURER))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=_procedure(str(evidence[0].get("Modality", ""))),
        imaging_measurements=groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # as in seg.py: warnings would carry patient values
        sr = hd.sr.Comprehensive3DSR(
            evidence=evidence, content=report, series_instance_uid=generate_uid(), series_number=int(series_number),
            sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER,
            series_description=series_description[:64], software_versions=_software_version())
    return sr


def write_measurement_report(path: str | os.PathLike, review, sources: Sequence[Dataset], **kwargs) -> Path:
    """Build (:func:`build_measurement_report`) and write atomically; returns the path."""
    return save_atomically(build_measurement_report(review, sources, **kwargs), path)


def read_measurements(path: str | os.PathLike) -> list[dict]:
    """The nodule measurements of an SR written here (or any TID 1500 with planar ROI point groups):
    ``[{"tracking_id", "finding_type", "center_lps", "diameter_mm"}]``."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sr = hd.sr.srread(str(path))
    report = sr.content
    out = []
    for group in report.get_planar_roi_measurement_groups():
        region = group.roi
        diameter = [m for m in group.get_measurements(name=codes.SCT.Diameter)]
        out.append({
            "tracking_id": group.tracking_identifier,
            "finding_type": group.finding_type.meaning if group.finding_type else None,
            "center_lps": np.asarray(region.value, dtype=float).reshape(-1, 3)[0].tolist() if region else None,
            "diameter_mm": float(diameter[0].value) if diameter else None,
        })
    return out
