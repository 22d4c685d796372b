"""The user's measurements <-> DICOM SR (TID 1500 Measurement Report), beside the accepted findings of
:mod:`viewer.core.export.sr`.

Writing: one TID 1410 "Planar ROI measurements" group per :class:`~viewer.core.measure.Measurement`

=========  ==============================================  ===============================================
kind       region                                          measurements (TID 300)
=========  ==============================================  ===============================================
length     POLYLINE, the two end points                    Length (SCT 410668003), mm
ellipse    ELLIPSE, major then minor axis end points       Mean / SD / Min / Max of the pixel values (name
                                                           Attenuation Coefficient, HU, for CT; derivation
                                                           SCT Mean ...), Area (SCT 42798000) in mm2
rectangle  POLYGON (SCOORD3D) or closed POLYLINE (SCOORD,   as the ellipse
           which has no POLYGON), 5 points, last = first
probe      POINT                                           the pixel value (no derivation)
=========  ==============================================  ===============================================

A measurement drawn on the acquisition plane goes in as SCOORD: pixel coordinates ``(column, row)`` of the image
of its slice (DICOM puts ``(0, 0)`` at the top-left *corner* of the first pixel, so voxel centre ``x`` is column
``x + 0.5``), referencing that image's SOP instance. One drawn in a reformatted view (coronal, sagittal of an
axial series) goes in as SCOORD3D: LPS mm in the series' frame of reference. Each group carries a tracking UID
(:attr:`Measurement.uid`, made on first save and kept), so saving again updates the same measurements, and a
tracking identifier ``"<Kind> <n> (<plane>)"`` that tells the reader which view it was drawn in.

Reading (:func:`read_report`, then :func:`place_on_volume`) walks the content tree with pydicom rather than
highdicom's strict parser, so other tools' reports (dcmqi's volumetric groups, rotated ellipses, graphic types we
do not draw) are listed with their values and the reasons they are not drawn, never a crash.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from viewer.core.dicom.damage import PARSE_ERRORS, damage_reason, refusing_damage
from viewer.core.measure import Measurement, evaluate
from viewer.core.reformat import Plane, native_plane, reformat

#: How far (voxels) the points of a measurement may lie off one slice and still be drawn on it.
SLICE_TOLERANCE = 0.01
_KIND_OF_GRAPHIC = {"POLYLINE": "length", "ELLIPSE": "ellipse", "POLYGON": "rectangle", "POINT": "probe"}
_GRAPHIC_OF_KIND = {v: k for k, v in _KIND_OF_GRAPHIC.items()}
_PLANE_RE = re.compile(r"\((axial|coronal|sagittal)\)\s*$", re.IGNORECASE)


# ---- writing ------------------------------------------------------------------------------------------------
def _value_name(modality: str):
    from pydicom.sr.codedict import codes

    from viewer.core.export.sr import PRIVATE_SCHEME, _code

    if modality == "CT":
        return codes.DCM.AttenuationCoefficient, codes.UCUM.HounsfieldUnit
    return _code("PIXELVALUE", PRIVATE_SCHEME, "Pixel value"), codes.UCUM.NoUnits


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and np.isfinite(value)


def _tm_measurements(m: Measurement, modality: str) -> list:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    r = m.result
    name, unit = _value_name(modality)
    out = []
    if m.kind == "length":
        if r.get("unit", "mm") == "mm" and _finite(r.get("length_mm")):
            out.append(hd.sr.Measurement(name=codes.SCT.Length, value=float(r["length_mm"]),
                                         unit=codes.UCUM.Millimeter))
    elif m.kind in ("ellipse", "rectangle"):
        for key, derivation in (("mean", codes.SCT.Mean), ("sd", codes.SCT.StandardDeviation),
                                ("min", codes.SCT.Minimum), ("max", codes.SCT.Maximum)):
            if _finite(r.get(key)):
                out.append(hd.sr.Measurement(name=name, value=float(r[key]), unit=unit, derivation=derivation))
        if r.get("area_unit", "mm²") == "mm²" and _finite(r.get("area_mm2")):
            out.append(hd.sr.Measurement(name=codes.SCT.Area, value=float(r["area_mm2"]),
                                         unit=codes.UCUM.SquareMillimeter))
    elif m.kind == "probe" and _finite(r.get("value")):
        out.append(hd.sr.Measurement(name=name, value=float(r["value"]), unit=unit))
    return out


def shape_points(m: Measurement, volume) -> np.ndarray:
    """The region's points as voxel indices ``(n, 3)``: the 2 end points (length), the major then the minor axis
    end points (ellipse), the closed outline p0, (p0 row, p1 col), p1, (p1 row, p0 col), p0 (rectangle), the point
    (probe). Corners of ellipse and rectangle are taken in the view the measurement was drawn in."""
    points = np.asarray(m.points, dtype=float)
    if m.kind in ("length", "probe"):
        return points[: 2 if m.kind == "length" else 1]
    geometry = reformat(volume, m.plane)
    (k, r0, c0), (_, r1, c1) = geometry.display_from_index(points[0]), geometry.display_from_index(points[1])
    if m.kind == "rectangle":
        display = [(r0, c0), (r0, c1), (r1, c1), (r1, c0), (r0, c0)]
    else:
        cr, cc = (r0 + r1) / 2, (c0 + c1) / 2
        width, height = abs(c1 - c0) * geometry.pixel_spacing[1], abs(r1 - r0) * geometry.pixel_spacing[0]
        across, down = [(cr, c0), (cr, c1)], [(r0, cc), (r1, cc)]
        display = across + down if width >= height else down + across
    return np.array([geometry.index_from_display(k, r, c) for r, c in display])


def _on_native_slice(m: Measurement, volume, points: np.ndarray) -> bool:
    """True when the measurement lies on one image of the series as stored (SCOORD can reference it)."""
    return (Plane(m.plane) == native_plane(volume.affine) and reformat(volume, m.plane).through_axis == 2
            and 0 <= m.slice_index < len(volume.slice_sop_uids) and bool(volume.slice_sop_uids[m.slice_index])
            and bool(np.all(np.abs(points[:, 2] - m.slice_index) < 1e-6)))


def _region(m: Measurement, volume, sop_classes: dict[str, str], frame_of_reference: str):
    import highdicom as hd

    points = shape_points(m, volume)
    graphic = _GRAPHIC_OF_KIND[m.kind]
    uid = volume.slice_sop_uids[m.slice_index] if 0 <= m.slice_index < len(volume.slice_sop_uids) else ""
    if _on_native_slice(m, volume, points) and uid in sop_classes:
        frames = None
        if volume.slice_sop_uids.count(uid) > 1 and volume.slice_frame_numbers:  # a frame of a multi-frame image
            frames = [int(volume.slice_frame_numbers[m.slice_index])]
        source = hd.sr.SourceImageForRegion(referenced_sop_class_uid=sop_classes[uid],
                                            referenced_sop_instance_uid=uid, referenced_frame_numbers=frames)
        graphic = "POLYLINE" if graphic == "POLYGON" else graphic  # 2D has no POLYGON: a closed polyline is one
        return hd.sr.ImageRegion(graphic_type=graphic, graphic_data=points[:, :2] + 0.5, source_image=source)
    return hd.sr.ImageRegion3D(graphic_type=graphic, graphic_data=volume.index_to_lps(points),
                               frame_of_reference_uid=frame_of_reference)


def measurement_groups(measurements: Sequence[Measurement], volume, sources: Sequence[Dataset],
                       frame_of_reference: str = "") -> list:
    """TID 1410 groups of ``measurements`` on ``volume`` (whose image headers are ``sources``). A measurement
    without :attr:`~Measurement.uid` gets one here (kept, so the next save updates it)."""
    import highdicom as hd
    from pydicom.uid import generate_uid

    frame_of_reference = frame_of_reference or volume.frame_of_reference_uid
    sop_classes = {str(ds.SOPInstanceUID): str(ds.SOPClassUID) for ds in sources if "SOPInstanceUID" in ds}
    groups, numbers = [], dict.fromkeys(_GRAPHIC_OF_KIND, 0)
    for m in measurements:
        numbers[m.kind] += 1
        m.uid = m.uid or generate_uid()
        identifier = f"{m.kind.capitalize()} {numbers[m.kind]} ({m.plane})"
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=m.uid, identifier=identifier),
            referenced_region=_region(m, volume, sop_classes, frame_of_reference),
            measurements=_tm_measurements(m, volume.modality) or None))
    return groups


def build_measurements_report(measurements: Sequence[Measurement], volume, sources: Sequence[Dataset], review=None,
                              *, series_number: int = 903, series_description: str = "Measurements",
                              series_instance_uid: str | None = None, followup: Sequence[dict] | None = None,
                              followup_days: int | None = None) -> Dataset:
    """The SR dataset of the user's ``measurements``, the accepted findings of ``review`` and the nodule
    ``followup`` records of a comparison with a prior (:mod:`viewer.core.export.sr_followup`), each optional.

    Raises
    ------
    ValueError
        Without source headers, without a frame of reference, or with nothing to report.
    """
    from viewer.core.export.seg import _complete
    from viewer.core.export.sr import finding_groups, report_dataset

    if not sources:
        raise ValueError("the SR needs the source series' headers")
    evidence = [_complete(ds) for ds in sources]
    frame_of_reference = volume.frame_of_reference_uid or str(evidence[0].get("FrameOfReferenceUID", ""))
    if not frame_of_reference:
        raise ValueError("the series has no frame of reference: its measurements cannot be placed in an SR")
    groups = measurement_groups(measurements, volume, evidence, frame_of_reference)
    groups += finding_groups(review, frame_of_reference) if review is not None else []
    if followup:
        from viewer.core.export.sr_followup import followup_groups

        groups += followup_groups(followup, frame_of_reference, followup_days)
    if not groups:
        raise ValueError("no measurements: a TID 1500 report needs at least one measurement group")
    return report_dataset(groups, evidence, series_number=series_number, series_description=series_description,
                          series_instance_uid=series_instance_uid)


def write_measurements_report(path: str | os.PathLike, measurements, volume, sources, review=None,
                              **kwargs) -> Path:
    """Build (:func:`build_measurements_report`) and write atomically; returns the path."""
    from viewer.core.export.seg import save_atomically

    return save_atomically(build_measurements_report(measurements, volume, sources, review, **kwargs), path)


# ---- reading ------------------------------------------------------------------------------------------------
@dataclass
class SrValue:
    """One numeric measurement of a group: ``name`` (with the derivation, e.g. ``"Attenuation Coefficient
    (Mean)"``), value and UCUM unit."""

    name: str
    value: float
    unit: str

    def __str__(self) -> str:
        return f"{self.name} {self.value:g} {self.unit}".rstrip()


@dataclass
class SrGroup:
    """One measurement group of a TID 1500 report as found, whether or not it can be drawn."""

    tracking_id: str = ""
    tracking_uid: str = ""
    finding: str = ""
    #: ``"SCOORD"``, ``"SCOORD3D"``, ``"segment"`` (a volumetric group over a SEG), or ``""`` (no region).
    region: str = ""
    graphic_type: str = ""
    graphic_data: np.ndarray | None = None
    #: SOP instance UIDs (and frame numbers, 0 for none) the region or segment references.
    references: list[tuple[str, int]] = field(default_factory=list)
    frame_of_reference_uid: str = ""
    values: list[SrValue] = field(default_factory=list)

    @property
    def label(self) -> str:
        """How to name the group in messages."""
        return repr(self.tracking_id or self.finding or self.tracking_uid or "unnamed group")

    def value(self, name: str) -> float | None:
        """The first value whose name starts with ``name``."""
        return next((v.value for v in self.values if v.name.startswith(name)), None)


@dataclass
class SrReport:
    """What :func:`read_report` found: the groups, the images the report lists as evidence or in its image
    library, its frame(s) of reference, and problems reading it."""

    groups: list[SrGroup] = field(default_factory=list)
    referenced_images: set[str] = field(default_factory=set)
    frames_of_reference: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    path: str = ""
    sop_instance_uid: str = ""


@dataclass
class Placed:
    """:func:`place_on_volume`'s result: the drawable measurements, the groups found but not drawn (findings,
    volumetric groups...), and why each group that was not drawn was left out."""

    measurements: list[Measurement] = field(default_factory=list)
    listed: list[SrGroup] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _concept(item) -> tuple[str, str]:
    seq = item.get("ConceptNameCodeSequence")
    if not seq:
        return "", ""
    return str(seq[0].get("CodeValue", "")), str(seq[0].get("CodeMeaning", ""))


def _num(item) -> SrValue | None:
    measured = item.get("MeasuredValueSequence")
    if not measured:
        return None
    try:
        value = float(measured[0].NumericValue)
    except (AttributeError, TypeError, ValueError):
        return None
    units = measured[0].get("MeasurementUnitsCodeSequence")
    unit = str(units[0].get("CodeValue", "")) if units else ""
    name = _concept(item)[1]
    for child in item.get("ContentSequence", []):
        if _concept(child)[0] == "121401" and child.get("ConceptCodeSequence"):  # Derivation
            name += f" ({child.ConceptCodeSequence[0].get('CodeMeaning', '')})"
    return SrValue(name, value, unit)


def _references(item) -> list[tuple[str, int]]:
    out = []
    for ref in item.get("ReferencedSOPSequence", []):
        frames = ref.get("ReferencedFrameNumber")
        if frames is None or frames == "":
            frame = 0
        else:
            frame = int(frames[0]) if isinstance(frames, (list, tuple, MultiValue)) else int(frames)
        out.append((str(ref.get("ReferencedSOPInstanceUID", "")), frame))
    return out


def _group(container) -> SrGroup:
    group = SrGroup()
    for item in container.get("ContentSequence", []):
        code, _ = _concept(item)
        value_type = item.get("ValueType", "")
        if code == "112039" and value_type == "TEXT":
            group.tracking_id = str(item.get("TextValue", ""))
        elif code == "112040" and value_type == "UIDREF":
            group.tracking_uid = str(item.get("UID", ""))
        elif code == "121071" and item.get("ConceptCodeSequence"):
            group.finding = str(item.ConceptCodeSequence[0].get("CodeMeaning", ""))
        elif value_type in ("SCOORD", "SCOORD3D"):
            group.region = value_type
            group.graphic_type = str(item.get("GraphicType", ""))
            data = np.asarray(item.get("GraphicData") or [], dtype=float)
            group.graphic_data = data.reshape(-1, 2 if value_type == "SCOORD" else 3) \
                if data.size % (2 if value_type == "SCOORD" else 3) == 0 else data
            group.frame_of_reference_uid = str(item.get("ReferencedFrameOfReferenceUID", ""))
            for child in item.get("ContentSequence", []):
                group.references += _references(child)
        elif value_type == "IMAGE" and code == "121191":  # Referenced Segment (TID 1411, e.g. dcmqi)
            group.region = group.region or "segment"
            group.references += _references(item)
        elif value_type == "NUM":
            found = _num(item)
            if found is not None:
                group.values.append(found)
    return group


def _walk(items, report: SrReport) -> None:
    for item in items:
        code, _ = _concept(item)
        if code == "125007" and item.get("ValueType") == "CONTAINER":  # Measurement Group
            report.groups.append(_group(item))
            continue
        if item.get("ValueType") == "IMAGE":  # the image library
            report.referenced_images.update(uid for uid, _ in _references(item))
        if code == "112227" and item.get("ValueType") == "UIDREF":  # Frame of Reference UID
            report.frames_of_reference.add(str(item.get("UID", "")))
        _walk(item.get("ContentSequence", []), report)


def read_report(source: str | os.PathLike | Dataset) -> SrReport:
    """The measurement groups of a TID 1500 SR (a file or a dataset), read leniently.

    Raises
    ------
    ValueError
        When the file is not DICOM or not a structured report (the message says which).
    """
    from viewer.core.dicom.limits import dcmread

    path = ""
    if isinstance(source, Dataset):
        ds = source
    else:
        path = str(source)
        try:
            ds = dcmread(path, force=False)  # a deflated one inflated within a cap
        except Exception as exc:  # noqa: BLE001 - untrusted input: say why, do not crash
            raise ValueError(f"{os.path.basename(path)} is not a readable DICOM file: {damage_reason(exc)}") from exc
    name = os.path.basename(path) or "the dataset"
    with refusing_damage(name):  # pydicom parses elements on access: damage shows anywhere below
        is_report = str(ds.get("Modality", "")) == "SR" and "ContentSequence" in ds
        report = SrReport(path=path, sop_instance_uid=str(ds.get("SOPInstanceUID", "")))
    if not is_report:
        raise ValueError(f"{name} is not a DICOM structured report")
    try:
        for evidence in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
            for study in ds.get(evidence, []):
                for series in study.get("ReferencedSeriesSequence", []):
                    report.referenced_images.update(str(i.get("ReferencedSOPInstanceUID", ""))
                                                    for i in series.get("ReferencedSOPSequence", []))
        _walk(ds.ContentSequence, report)
    except (ValueError, *PARSE_ERRORS) as exc:
        report.problems.append(f"the report is damaged ({damage_reason(exc)}); what came before it was read")
    for group in report.groups:
        if group.frame_of_reference_uid:
            report.frames_of_reference.add(group.frame_of_reference_uid)
    if not report.groups:
        report.problems.append("the report holds no measurement group")
    report.referenced_images.discard("")
    return report


def _plane_hint(group: SrGroup) -> Plane | None:
    found = _PLANE_RE.search(group.tracking_id)
    return Plane(found.group(1).lower()) if found else None


def _ellipse_corners(points: np.ndarray) -> np.ndarray:
    """Opposite box corners from the 4 axis end points (inverse of :func:`shape_points`)."""
    centre = points.mean(axis=0)
    return np.array([points[0] + points[2] - centre, points[1] + points[3] - centre])


def _slice_of(points: np.ndarray, volume, hint: Plane | None) -> tuple[Plane, int] | None:
    """The plane (the hinted one first, then the acquisition plane) in which all points lie on one slice."""
    planes = [hint] if hint is not None else []
    planes += [native_plane(volume.affine)] + list(Plane)
    for plane in dict.fromkeys(planes):
        geometry = reformat(volume, plane)
        k = geometry.display_from_index(points)[..., 0]
        nearest = np.round(k)
        if np.all(np.abs(k - nearest) <= SLICE_TOLERANCE) and np.all(nearest == nearest.flat[0]) \
                and 0 <= nearest.flat[0] < geometry.n_slices:
            return plane, int(nearest.flat[0])
    return None


def _index_points(group: SrGroup, volume, where: dict[tuple[str, int], int]) -> tuple[np.ndarray | None, str]:
    """The group's points as voxel indices, or None and why not."""
    data = np.asarray(group.graphic_data, dtype=float)
    if group.region == "SCOORD":
        if not group.references:
            return None, "its image coordinates reference no image"
        uid, frame = group.references[0]
        k = where.get((uid, frame), where.get((uid, 0)))
        if k is None:
            return None, f"it is drawn on image {uid}, which is not in this series"
        return np.column_stack([data[:, 0] - 0.5, data[:, 1] - 0.5, np.full(len(data), float(k))]), ""
    if volume.frame_of_reference_uid and group.frame_of_reference_uid \
            and group.frame_of_reference_uid != volume.frame_of_reference_uid:
        return None, (f"its 3D coordinates are in frame of reference {group.frame_of_reference_uid}, not this "
                      f"series' ({volume.frame_of_reference_uid})")
    return volume.lps_to_index(data), ""


def place_on_volume(report: SrReport, volume) -> Placed:
    """Rebuild the report's drawable groups as :class:`Measurement` s on ``volume`` (evaluated), and say why each
    other group is only listed."""
    placed = Placed(problems=list(report.problems))
    where: dict[tuple[str, int], int] = {}
    for k, uid in enumerate(volume.slice_sop_uids):
        frame = int(volume.slice_frame_numbers[k]) if k < len(volume.slice_frame_numbers) else 0
        where.setdefault((uid, 0), k)
        where[(uid, frame)] = k
    known = set(volume.slice_sop_uids)
    if report.referenced_images and not report.referenced_images & known:
        placed.problems.append(f"the report references {len(report.referenced_images)} image(s), none of them in "
                               "this series: the referenced images are absent")
    for group in report.groups:
        measurement, why = _measurement(group, volume, where)
        if measurement is None:
            placed.listed.append(group)
            if why:
                placed.problems.append(f"{group.label}: {why}; listed, not drawn")
        else:
            placed.measurements.append(measurement)
    return placed


def _measurement(group: SrGroup, volume, where) -> tuple[Measurement | None, str]:
    if group.region == "segment":
        return None, "measured on a segmentation (volumetric ROI)"
    if not group.region:
        return None, "it has no image region"
    kind = _KIND_OF_GRAPHIC.get(group.graphic_type)
    data = group.graphic_data
    if kind == "length" and data is not None and data.ndim == 2 and len(data) == 5 \
            and np.allclose(data[0], data[-1]):
        kind = "rectangle"  # a closed 2D polyline of 4 corners
    if kind is None:
        return None, f"graphic type {group.graphic_type or 'none'} is not one the viewer draws"
    if kind == "probe" and group.value("Diameter") is not None:
        return None, ""  # a finding (its centre and diameter): the findings review shows these
    wanted = {"length": (2,), "ellipse": (4,), "rectangle": (5, 4), "probe": (1,)}[kind]
    if data is None or data.ndim != 2 or len(data) not in wanted:
        return None, f"a {group.graphic_type} of {0 if data is None else len(data)} point(s) is not drawable here"
    points, why = _index_points(group, volume, where)
    if points is None:
        return None, why
    found = _slice_of(points, volume, _plane_hint(group))
    if found is None:
        return None, "its points do not lie on one slice of any view"
    plane, k = found
    if kind == "ellipse":
        corners = _ellipse_corners(points)
    elif kind == "rectangle":
        corners = points[[0, 2]]
        geometry = reformat(volume, plane)
        d = geometry.display_from_index(points[:4])
        if not (np.allclose(d[0, 1], d[1, 1], atol=SLICE_TOLERANCE) and np.allclose(d[1, 2], d[2, 2],
                atol=SLICE_TOLERANCE)):
            return None, "a polygon that is not an upright rectangle in its view is not drawable here"
    else:
        corners = points
    m = Measurement(kind, plane.value, k, [(float(p[0]), float(p[1]), float(p[2])) for p in corners],
                    uid=group.tracking_uid)
    evaluate(m, volume, reformat(volume, plane))
    return m, ""


def load_measurements(path: str | os.PathLike, volume) -> Placed:
    """:func:`read_report` then :func:`place_on_volume`; an unreadable file gives a result with only its
    problem."""
    try:
        report = read_report(path)
    except ValueError as exc:
        return Placed(problems=[str(exc)])
    return place_on_volume(report, volume)


def load_measurements_job(paths: Sequence[str | os.PathLike], volume):
    """:func:`load_measurements` of each SR in ``paths``, as a job (a :class:`~inference.jobs.Progress` a file) for
    a worker: a large SR takes seconds to parse (a 34 MB one of 3,000 measurement groups took 59 s), which the GUI
    thread must not spend. Returns ``[(path, Placed)]`` in the order given."""
    from inference.jobs import Progress

    read = []
    for k, path in enumerate(paths):
        yield Progress(k, len(paths), "Reading measurements")
        read.append((str(path), load_measurements(path, volume)))
    return read


__all__ = ["Placed", "SrGroup", "SrReport", "SrValue", "build_measurements_report", "load_measurements",
           "load_measurements_job", "measurement_groups", "place_on_volume", "read_report", "shape_points",
           "write_measurements_report"]
