"""Accepted findings -> DICOM SR measurement report (TID 1500, highdicom ``Comprehensive3DSR``).

One TID 1410 "Planar ROI measurements" group per accepted finding: the finding's centre as a 3D point
(SCOORD3D POINT in the series' frame of reference), finding type Nodule (SNOMED CT 27925004) for nodules (the
label's code otherwise), and one measurement, Diameter (SNOMED CT 81827009) in mm = the box's largest extent.
A finding measured by the built-in nodule detector (:mod:`inference.nodule_measurements`) adds, as TID 300
measurements: Volume (SCT 118565006) in mm3 (UCUM ``mm3``), Long axis (SCT 103339001) and Short axis
(SCT 103340004) in mm, and Diameter with derivation Mean (DCM 121401 = SCT 373098007) for the mean diameter; its
finding site is the lung zone (SCT 281392002 / 281393007 / 281394001 Upper / Middle / Lower zone of lung, or
Lung 39607008 without a zone) with laterality Right / Left (SCT 24028007 / 7771000); and two qualitative
evaluations: the nodule type and the suggested Lung-RADS v2022 category. DICOM has no standard codes for lung
nodule consistency or Lung-RADS categories in the code dictionary pydicom ships, so those two use the
standard concept where one exists (Calcified SCT 237897009, Ground glass opacity DCM 112120, Assessment Category
DCM 111005 as the concept name of the Lung-RADS value) and private ``99HOUNSFIELD`` codes for the rest, named so
a reader of the SR knows what they mean.
A model's finding also carries its detector score (private code ``99HOUNSFIELD SCORE``, no unit), so the app can
read the report back as the model's detections (:mod:`viewer.services.batch.study_results`).
A point is the simplest region TID 1410 accepts that says exactly what we know - where the centre is - without
inventing a contour. The observer is the device (Hounsfield), the algorithm is the detector.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from viewer.core.dicom.damage import refusing_damage
from viewer.core.dicom.limits import dcmread
from viewer.core.export.seg import MANUFACTURER, _complete, _software_version, save_atomically, segment_codes


def _procedure(modality: str):
    """LOINC "<modality> unspecified body region" (CID 100) for the report's procedure."""
    from pydicom.sr.codedict import codes

    return {"MR": codes.LN.MRIUnspecifiedBodyRegion, "PT": codes.LN.PETUnspecifiedBodyRegion,
            "NM": codes.LN.NMUnspecifiedBodyRegion}.get(modality, codes.LN.CTUnspecifiedBodyRegion)


#: Private coding scheme for what has no standard code (see the module docstring).
PRIVATE_SCHEME = "99HOUNSFIELD"
#: The detector's score of a model-made finding (0-1, no unit): DICOM has no standard concept for it, and without
#: it a report read back (the app showing a study's stored results) could not order or threshold its findings.
SCORE_CODE = ("SCORE", PRIVATE_SCHEME, "Detection score")


def _code(value: str, scheme: str, meaning: str):
    from highdicom.sr import CodedConcept

    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _type_code(nodule_type: str):
    from pydicom.sr.codedict import codes

    return {"calcified": codes.SCT.Calcified, "ground-glass": codes.DCM.GroundGlassOpacity}.get(
        nodule_type) or _code(f"NODTYPE-{nodule_type}", PRIVATE_SCHEME, f"{nodule_type.capitalize()} nodule")


def _finding_site(location: dict | None):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not location:
        return None
    zone = {"upper": codes.SCT.UpperZoneOfLung, "middle": codes.SCT.MiddleZoneOfLung,
            "lower": codes.SCT.LowerZoneOfLung}.get(location.get("zone", ""), codes.SCT.Lung)
    side = {"right": codes.SCT.Right, "left": codes.SCT.Left}.get(location.get("side", ""))
    return hd.sr.FindingSite(anatomic_location=zone, laterality=side)


def nodule_measurements(m: dict, algorithm=None) -> tuple[list, list, list]:
    """The TID 300 measurements, TID 1410 qualitative evaluations and finding sites of one measured nodule
    (a dict of :func:`inference.nodule_measurements.measure_nodule`)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    measurements = [
        hd.sr.Measurement(name=codes.SCT.Volume, value=float(m["volume_mm3"]), unit=codes.UCUM.CubicMillimeter,
                          algorithm_id=algorithm),
        hd.sr.Measurement(name=codes.SCT.LongAxis, value=float(m["long_axis_mm"]), unit=codes.UCUM.Millimeter,
                          algorithm_id=algorithm),
        hd.sr.Measurement(name=codes.SCT.ShortAxis, value=float(m["short_axis_mm"]), unit=codes.UCUM.Millimeter,
                          algorithm_id=algorithm),
        hd.sr.Measurement(name=codes.SCT.Diameter, value=float(m["mean_diameter_mm"]), unit=codes.UCUM.Millimeter,
                          derivation=codes.SCT.Mean, algorithm_id=algorithm),
    ]
    evaluations = [
        hd.sr.QualitativeEvaluation(name=_code("NODTYPE", PRIVATE_SCHEME, "Nodule type"),
                                    value=_type_code(str(m["type"]))),
        hd.sr.QualitativeEvaluation(name=codes.DCM.AssessmentCategory,
                                    value=_code(f"LR-{m['lung_rads']}", PRIVATE_SCHEME,
                                                f"Lung-RADS v2022 {m['lung_rads']} (baseline, suggested)")),
    ]
    site = _finding_site(m.get("location"))
    return measurements, evaluations, [site] if site is not None else []


def finding_groups(review, frame_of_reference: str, algorithm_version: str = "0") -> list:
    """One TID 1410 planar ROI group per accepted finding of ``review`` (a
    :class:`~viewer.core.editing.review.FindingsReview`; empty without accepted findings)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    if review is None:
        return []
    algorithm = hd.sr.AlgorithmIdentification(name=(review.model_id or "manual")[:64],
                                              version=str(algorithm_version)[:64] or "0")
    groups = []
    for n, finding in enumerate(review.with_status("accepted"), start=1):
        _, finding_type = segment_codes(finding.label, n)
        point = hd.sr.ImageRegion3D(graphic_type=hd.sr.GraphicTypeValues3D.POINT,
                                    graphic_data=np.asarray([finding.center_lps], dtype=float),
                                    frame_of_reference_uid=frame_of_reference)
        diameter = hd.sr.Measurement(name=codes.SCT.Diameter, value=round(finding.diameter_mm, 3),
                                     unit=codes.UCUM.Millimeter)
        measured = getattr(finding, "measurements", None)
        extra, evaluations, sites = nodule_measurements(measured, algorithm) if measured else ([], None, None)
        if finding.source == "model" and finding.score is not None:
            extra = [*extra, hd.sr.Measurement(name=_code(*SCORE_CODE), value=round(float(finding.score), 6),
                                               unit=codes.UCUM.NoUnits, algorithm_id=algorithm)]
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{finding.label} {n}"),
            referenced_region=point, finding_type=finding_type, measurements=[diameter, *extra],
            algorithm_id=algorithm if finding.source == "model" else None,
            qualitative_evaluations=evaluations or None, finding_sites=sites or None))
    return groups


def report_dataset(groups: list, evidence: Sequence[Dataset], *, series_number: int, series_description: str,
                   series_instance_uid: str | None = None) -> Dataset:
    """The Comprehensive 3D SR (TID 1500, observer: the Hounsfield device) of these measurement groups over the
    source headers ``evidence`` (already :func:`~viewer.core.export.seg._complete`-d)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

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
            evidence=evidence, content=report, series_instance_uid=series_instance_uid or generate_uid(),
            series_number=int(series_number), sop_instance_uid=generate_uid(), instance_number=1,
            manufacturer=MANUFACTURER, series_description=series_description[:64],
            software_versions=_software_version())
    return sr


def build_measurement_report(review, sources: Sequence[Dataset], *, algorithm_version: str = "0",
                             series_number: int = 902, series_description: str = "AI findings") -> Dataset:
    """The SR dataset (not written) for the accepted findings of a
    :class:`~viewer.core.editing.review.FindingsReview` over the series whose headers are ``sources``.

    Raises ``ValueError`` without accepted findings: TID 1500 needs at least one measurement group.
    """
    if not sources:
        raise ValueError("the SR needs the source series' headers")
    evidence = [_complete(ds) for ds in sources]
    if not review.with_status("accepted"):
        raise ValueError("no accepted findings: a TID 1500 report needs at least one measurement")
    groups = finding_groups(review, str(evidence[0].FrameOfReferenceUID), algorithm_version)
    return report_dataset(groups, evidence, series_number=series_number, series_description=series_description)


def write_measurement_report(path: str | os.PathLike, review, sources: Sequence[Dataset], **kwargs) -> Path:
    """Build (:func:`build_measurement_report`) and write atomically; returns the path."""
    return save_atomically(build_measurement_report(review, sources, **kwargs), path)


def read_measurements(path: str | os.PathLike) -> list[dict]:
    """The nodule measurements of an SR written here (or any TID 1500 with planar ROI point groups):
    ``[{"tracking_id", "finding_type", "center_lps", "diameter_mm"}]``, plus, where present, ``volume_mm3``,
    ``long_axis_mm``, ``short_axis_mm``, ``mean_diameter_mm``, ``type`` and ``lung_rads`` (code meanings) and
    ``finding_site`` (``"<laterality> <site>"``) and ``score`` (a model's finding)."""
    import highdicom as hd
    from pydicom import uid

    documents: dict[str, Any] = {uid.EnhancedSRStorage: hd.sr.EnhancedSR, uid.ComprehensiveSRStorage:
                                 hd.sr.ComprehensiveSR, uid.Comprehensive3DSRStorage: hd.sr.Comprehensive3DSR}
    # as hd.sr.srread does, but from a data set read within the caps, and a damaged one refused in words
    with refusing_damage("the SR"):
        ds = dcmread(path, force=False)
        document = documents.get(str(ds.get("SOPClassUID", "")))
    if document is None:
        raise ValueError("the file is not an Enhanced, Comprehensive or Comprehensive 3D SR")
    with refusing_damage("the SR"):
        # a TID 1500 document's content is a MeasurementReport (highdicom types it as a plain ContentSequence)
        report = document.from_dataset(ds, copy=False).content
        return [_read_group(group) for group in report.get_planar_roi_measurement_groups() if _is_nodule(group)]


def _is_nodule(group) -> bool:
    """A finding point with a diameter (a manual measurement is read by viewer.core.export.sr_measurements)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    region = group.roi
    return region is None or (getattr(region, "graphic_type", None) == hd.sr.GraphicTypeValues3D.POINT
                              and bool(list(group.get_measurements(name=codes.SCT.Diameter))))


def _read_group(group) -> dict:
    from pydicom.sr.codedict import codes

    region = group.roi
    diameters = list(group.get_measurements(name=codes.SCT.Diameter))
    diameter = [m for m in diameters if m.derivation is None]
    return {**_read_nodule(group, diameters),
        "tracking_id": group.tracking_identifier,
        "finding_type": group.finding_type.meaning if group.finding_type else None,
        "center_lps": np.asarray(region.value, dtype=float).reshape(-1, 3)[0].tolist() if region else None,
        "diameter_mm": float(diameter[0].value) if diameter else None,
    }


def _read_nodule(group, diameters) -> dict:
    from pydicom.sr.codedict import codes

    out: dict = {}
    for key, name in (("volume_mm3", codes.SCT.Volume), ("long_axis_mm", codes.SCT.LongAxis),
                      ("short_axis_mm", codes.SCT.ShortAxis)):
        found = list(group.get_measurements(name=name))
        if found:
            out[key] = float(found[0].value)
    score = list(group.get_measurements(name=_code(*SCORE_CODE)))
    if score:
        out["score"] = float(score[0].value)
    mean = [m for m in diameters if m.derivation is not None and m.derivation.value == codes.SCT.Mean.value]
    if mean:
        out["mean_diameter_mm"] = float(mean[0].value)
    for evaluation in group.get_qualitative_evaluations():
        if evaluation.name.value == "NODTYPE":
            out["type"] = evaluation.value.meaning
        elif evaluation.name.value == codes.DCM.AssessmentCategory.value:
            out["lung_rads"] = evaluation.value.meaning
    if group.finding_sites:
        site = group.finding_sites[0]
        laterality = site.laterality.meaning if site.laterality is not None else ""
        out["finding_site"] = f"{laterality} {site.value.meaning}".strip()
    return out
