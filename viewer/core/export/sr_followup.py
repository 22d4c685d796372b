"""Nodule follow-up -> TID 1410 groups of the current study's measurement report (DICOM SR).

One "Planar ROI measurements" group per nodule present in the current study (matched or new): its centre as a 3D
point (SCOORD3D POINT, current frame of reference), finding type Nodule (SNOMED CT 27925004), tracking identifier
``Follow-up nodule n``, and as TID 300 measurements the volume (SCT 118565006, mm3) and mean diameter (SCT 81827009
with derivation Mean) now. A matched nodule adds the prior volume, the volume change (%) and the volume doubling time
(days), and every group a qualitative "Follow-up status" (new / growing / stable / shrinking). DICOM has no
standard codes for a prior volume, a volume change or a doubling time, so those use private ``99HOUNSFIELD`` codes
named for a reader of the SR. Resolved nodules have no place in the current study and are not written (the
comparison's JSON lists them). The records are :func:`viewer.core.followup.matching.follow_up`'s.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from viewer.core.export.sr import PRIVATE_SCHEME, _code

STATUS_MEANINGS = {"new": "New nodule", "growing": "Growing nodule", "stable": "Stable nodule",
                   "shrinking": "Shrinking nodule"}


def followup_status(record: dict) -> str:
    """``new``, ``growing``, ``stable`` or ``shrinking`` for a record present in the current study."""
    if record["status"] == "new":
        return "new"
    pct = record.get("growth_pct")
    if record.get("vdt_note") == "growing":
        return "growing"
    return "shrinking" if pct is not None and pct <= -1.0 else "stable"


def followup_groups(nodules: Sequence[dict], frame_of_reference: str, days: int | None = None) -> list:
    """TID 1410 groups of the follow-up ``nodules`` present in the current study (see the module notes)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    algorithm = hd.sr.AlgorithmIdentification(name="Hounsfield follow-up", version="1")
    groups = []
    present = [n for n in nodules if n["status"] != "resolved" and n["center_lps"][1] is not None]
    for number, record in enumerate(present, start=1):
        volume, diameter = record["volume_mm3"][1], record["diameter_mm"][1]
        measurements = []
        if volume is not None:
            measurements.append(hd.sr.Measurement(name=codes.SCT.Volume, value=float(volume),
                                                  unit=codes.UCUM.CubicMillimeter, algorithm_id=algorithm))
        if diameter is not None:
            measurements.append(hd.sr.Measurement(name=codes.SCT.Diameter, value=float(diameter),
                                                  unit=codes.UCUM.Millimeter, derivation=codes.SCT.Mean,
                                                  algorithm_id=algorithm))
        if record["status"] == "matched":
            for value, code, meaning, unit in (
                    (record["volume_mm3"][0], "PRIORVOL", "Volume at prior study", codes.UCUM.CubicMillimeter),
                    (record.get("growth_pct"), "VOLCHANGE", "Volume change since prior study",
                     _code("%", "UCUM", "percent")),
                    (record.get("vdt_days"), "VDT", "Volume doubling time", _code("d", "UCUM", "day"))):
                if value is not None:
                    measurements.append(hd.sr.Measurement(name=_code(code, PRIVATE_SCHEME, meaning),
                                                          value=float(value), unit=unit, algorithm_id=algorithm))
        status = followup_status(record)
        interval = f", {days} days after the prior" if days else ""
        evaluation = hd.sr.QualitativeEvaluation(
            name=_code("FUSTATUS", PRIVATE_SCHEME, "Follow-up status"),
            value=_code(f"FU-{status}", PRIVATE_SCHEME, STATUS_MEANINGS[status] + interval))
        point = hd.sr.ImageRegion3D(graphic_type=hd.sr.GraphicTypeValues3D.POINT,
                                    graphic_data=np.asarray([record["center_lps"][1]], dtype=float),
                                    frame_of_reference_uid=frame_of_reference)
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"Follow-up nodule {number}"),
            referenced_region=point, finding_type=codes.SCT.Nodule, measurements=measurements or None,
            algorithm_id=algorithm, qualitative_evaluations=[evaluation]))
    return groups
