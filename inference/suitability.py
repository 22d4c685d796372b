"""Is this volume what the model was made for? And are its findings of a size the model can report?

A chest-CT nodule model run on a brain MR "found" two nodules at 0.99, one of them 216 mm long. A bundle therefore
declares its expected input in its metadata (``hounsfield.expected_input``) and :func:`check_input` compares a
volume against it, returning the reasons it does not fit (empty: it fits). The GUI asks before running on an
unsuitable volume; the CLI refuses unless ``--force``. :func:`drop_oversized` removes detections larger than the
model's declared maximum finding size (``hounsfield.max_finding_mm``), with a note.

Declaration (all keys optional)::

    "expected_input": {
        "modality": ["CT"],                       # DICOM Modality values accepted
        "body_part": ["CHEST"],                   # what the model was trained on (BodyPartExamined vocabulary)
        "spacing_mm": {"in_plane": [0.3, 1.5], "between_slices": [0.5, 5.0]},
        "extent_mm": {"superior_inferior": [100, 2000]},
        "lung_air_fraction": [0.05, 1.0]          # share of the body's voxels at -950..-600 HU
    },
    "max_finding_mm": 40                          # longest box side of a detection (or a nodule finder's)

How a body part is known: BodyPartExamined is often missing or wrong, so a chest is recognised by its content -
lung-like air (-950..-600 HU) inside the body - measured on a coarse (about 4 mm) subsample so it stays well
under 0.2 s on a 512 x 512 x 133 CT. The tag counts only where the content cannot tell (no content test for that
body part, or not a CT).

Bundles without a declaration: what can be read from the Model Zoo metadata (the input modality of
``network_data_format``; a body part named in the bundle's name/task/description) is checked; the rest is
unknown and allowed, with a note (:attr:`ExpectedInput.note`). No torch, no Qt.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Lung parenchyma, as the content test counts it (HU). Air outside the body and in the airways is below it.
LUNG_AIR_HU = (-950.0, -600.0)
#: Tissue denser than this is "body" (before the holes - the lungs - are filled in).
BODY_HU = -500.0
#: The content test runs on a grid about this coarse (mm): fast, and still thousands of lung voxels.
CONTENT_GRID_MM = 4.0
#: BodyPartExamined values (upper case, separators removed) that include the chest.
CHEST_PARTS = frozenset({"CHEST", "THORAX", "LUNG", "LUNGS", "CHESTABDOMEN", "CHESTABDOMENPELVIS", "CHESTABDPELVIS",
                         "TORSO", "WHOLEBODY", "BODY", "TRUNK", "THORAXABDOMEN", "NECKCHEST", "NECKCHESTABDOMEN"})
#: BodyPartExamined values that cover every body part.
WHOLE_BODY_PARTS = frozenset({"WHOLEBODY", "BODY", "TORSO", "TRUNK"})
#: Words in a Model Zoo bundle's name/task/description that tell the body part it was trained on.
BODY_PART_WORDS = {
    "CHEST": ("lung", "chest", "thora", "pulmonar", "luna16"),
    "ABDOMEN": ("spleen", "liver", "pancrea", "kidney", "abdom", "renal"),
    "HEAD": ("brain", "head", "skull", "glioma", "intracranial"),
}


@dataclass(frozen=True)
class Unsuitable:
    """One reason a volume does not fit a model: a stable ``code`` and a message for the user."""

    code: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ExpectedInput:
    """What a model expects (empty fields are not checked).

    ``modalities`` and ``body_parts`` in upper case; ``in_plane_mm``, ``between_slices_mm`` and ``extent_si_mm``
    are inclusive ``(low, high)`` ranges; ``lung_air_fraction`` the range of the share of body voxels that look
    like lung. ``declared`` is False when this was inferred from a bundle's other metadata; ``note`` says what was
    inferred or left unchecked.
    """

    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    in_plane_mm: tuple[float, float] | None = None
    between_slices_mm: tuple[float, float] | None = None
    extent_si_mm: tuple[float, float] | None = None
    lung_air_fraction: tuple[float, float] | None = None
    declared: bool = True
    note: str = ""

    @property
    def checks_anything(self) -> bool:
        """False when nothing at all is known about the expected input."""
        return bool(self.modalities or self.body_parts or self.in_plane_mm or self.between_slices_mm
                    or self.extent_si_mm or self.lung_air_fraction)

    def to_json(self) -> dict[str, Any]:
        """The declaration as metadata would write it (plus ``declared``/``note``)."""
        out: dict[str, Any] = {"declared": self.declared}
        if self.modalities:
            out["modality"] = list(self.modalities)
        if self.body_parts:
            out["body_part"] = list(self.body_parts)
        spacing = {k: list(v) for k, v in (("in_plane", self.in_plane_mm),
                                           ("between_slices", self.between_slices_mm)) if v}
        if spacing:
            out["spacing_mm"] = spacing
        if self.extent_si_mm:
            out["extent_mm"] = {"superior_inferior": list(self.extent_si_mm)}
        if self.lung_air_fraction:
            out["lung_air_fraction"] = list(self.lung_air_fraction)
        if self.note:
            out["note"] = self.note
        return out


# ---------------------------------------------------------------------------------------------------------------
# Reading the declaration.

def mapping_at(mapping: dict, key: str) -> dict:
    """``mapping[key]`` when it is a mapping, else an empty one (metadata is untrusted JSON)."""
    value = mapping.get(key)
    return value if isinstance(value, dict) else {}


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return ()
    return tuple(str(v).strip().upper() for v in value if str(v).strip())


def _range(value: Any) -> tuple[float, float] | None:
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) and value[0] <= value[1]):
        return float(value[0]), float(value[1])
    return None


def normalise_body_part(text: str | None) -> str:
    """``"Chest / Abdomen"`` -> ``"CHESTABDOMEN"``: the DICOM code string without separators, upper case."""
    return re.sub(r"[^A-Z]", "", str(text or "").upper())


def infer_body_part(metadata: dict) -> str:
    """The body part a Model Zoo bundle names in its name, task or description ("" when none or several)."""
    text = " ".join(str(metadata.get(k, "")) for k in ("name", "task", "description")).lower()
    found = [part for part, words in BODY_PART_WORDS.items() if any(w in text for w in words)]
    return found[0] if len(found) == 1 else ""


def expected_input_from_metadata(metadata: dict, known: dict | None = None) -> ExpectedInput:
    """The expected input of a bundle: its ``hounsfield.expected_input`` declaration when present, else what
    ``known`` (a :data:`inference.registry.KNOWN_BUNDLES` entry) and the standard Model Zoo fields say.

    Never raises: a malformed declaration leaves the malformed parts unchecked (said in ``note``).
    """
    ours = mapping_at(metadata, "hounsfield")
    declared = ours.get("expected_input")
    table = known or {}
    from_table = not isinstance(declared, dict) and isinstance(table.get("expected_input"), dict)
    if from_table:
        declared = table["expected_input"]
    if isinstance(declared, dict):
        spacing = mapping_at(declared, "spacing_mm")
        extent = mapping_at(declared, "extent_mm")
        expected = ExpectedInput(
            modalities=_names(declared.get("modality")), body_parts=_names(declared.get("body_part")),
            in_plane_mm=_range(spacing.get("in_plane")), between_slices_mm=_range(spacing.get("between_slices")),
            extent_si_mm=_range(extent.get("superior_inferior")),
            lung_air_fraction=_range(declared.get("lung_air_fraction")), declared=not from_table,
            note="not declared by the bundle: taken from Hounsfield's table of known Model Zoo bundles"
            if from_table else "")
        if not expected.checks_anything:
            return ExpectedInput(declared=False, note="its expected-input declaration could not be read: "
                                                      "not checked")
        return expected
    # Model Zoo bundles: the input modality is machine-readable; the body part only in prose.
    try:
        modality = str(metadata["network_data_format"]["inputs"]["image"].get("modality", ""))
    except (KeyError, TypeError, AttributeError):
        modality = ""
    modality = modality or str(ours.get("modality", ""))
    part = infer_body_part(metadata)
    unknown = [what for what, value in (("modality", modality), ("body part", part)) if not value]
    note = ("declares no expected input; inferred from its metadata: "
            + ", ".join(f"{k} {v}" for k, v in (("modality", modality), ("body part", part)) if v)
            if modality or part else "declares no expected input")
    if unknown:
        note += f" ({' and '.join(unknown)} unknown: not checked)"
    return ExpectedInput(
        modalities=_names(modality), body_parts=(part,) if part else (),
        lung_air_fraction=(0.05, 1.0) if part == "CHEST" else None, declared=False, note=note)


def max_finding_from_metadata(metadata: dict, known: dict | None = None) -> float | None:
    """``hounsfield.max_finding_mm`` (or the known bundle's), in mm; None when not declared."""
    ours = mapping_at(metadata, "hounsfield")
    value = ours.get("max_finding_mm", (known or {}).get("max_finding_mm"))
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


# ---------------------------------------------------------------------------------------------------------------
# Checking a volume.

def voxel_spacing(affine: np.ndarray) -> np.ndarray:
    """``(x, y, z)`` voxel size in mm: column, row and slice steps of the affine."""
    return np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0)


def superior_extent_mm(shape: tuple[int, ...], affine: np.ndarray) -> float:
    """How far the volume reaches along the patient's head-feet (S) axis, in mm (voxel centres + one voxel)."""
    affine = np.asarray(affine, float)
    counts = np.array(shape[::-1], float)  # x, y, z
    return float(np.sum(np.abs(affine[2, :3]) * counts))


def lung_air_fraction(array: np.ndarray, affine: np.ndarray, grid_mm: float = CONTENT_GRID_MM) -> float:
    """Share of the body's voxels that look like lung (:data:`LUNG_AIR_HU`), on a ``grid_mm`` subsample.

    The body is everything denser than :data:`BODY_HU` and what it encloses within each plane most nearly
    axial: a voxel is inside when there is body on both sides of it along both in-plane axes (the lungs are
    enclosed by the chest wall; a 3D fill would leave them out, as the trachea opens them to the volume's edge).
    Plain numpy, so no extra dependency.
    """
    affine = np.asarray(affine, float)
    spacing = np.maximum(voxel_spacing(affine), 1e-6)  # x, y, z
    steps = np.maximum(1, np.round(grid_mm / spacing)).astype(int)
    sub = np.asarray(array[::steps[2], ::steps[1], ::steps[0]])
    if sub.size == 0:
        return 0.0
    body = sub > BODY_HU
    # the array axis (z, y, x order) that runs most nearly head-feet; the two others span the axial-ish planes
    across = 2 - int(np.argmax(np.abs(affine[2, :3]) / spacing))
    enclosed = np.ones_like(body)
    for axis in (a for a in range(3) if a != across):
        before = np.logical_or.accumulate(body, axis=axis)
        after = np.flip(np.logical_or.accumulate(np.flip(body, axis), axis=axis), axis)
        enclosed &= before & after
    inside = body | enclosed
    n_inside = int(np.count_nonzero(inside))
    if n_inside == 0:
        return 0.0
    lung = enclosed & (sub >= LUNG_AIR_HU[0]) & (sub <= LUNG_AIR_HU[1])
    return float(np.count_nonzero(lung)) / n_inside


def _outside(value: float, bounds: tuple[float, float]) -> bool:
    return not (bounds[0] <= value <= bounds[1])


def _fmt_range(bounds: tuple[float, float], unit: str = " mm") -> str:
    return f"{bounds[0]:g}-{bounds[1]:g}{unit}"


def check_input(expected: ExpectedInput | None, array: np.ndarray, affine: np.ndarray, modality: str,
                body_part: str | None = None, pixel_spacing_known: bool = True) -> list[Unsuitable]:
    """The reasons ``array`` does not fit ``expected`` (empty list: it fits, or nothing is known).

    Parameters
    ----------
    expected
        From :func:`expected_input_from_metadata` (``ModelInfo.expected_input``); None checks nothing.
    array, affine
        The volume ``(z, y, x)`` (HU for CT) and its index -> LPS affine.
    modality
        The series' DICOM Modality.
    body_part
        The series' BodyPartExamined, if any (a claim: the content decides where it can).
    pixel_spacing_known
        False when the file gives no usable PixelSpacing (the affine's in-plane 1 mm is an assumption).

    Returns
    -------
    list of Unsuitable
        Codes: ``modality``, ``spacing``, ``extent``, ``not_a_chest``, ``body_part``; messages name no model, so
        a caller can say "<model> is not made for this series: <reasons>".
    """
    if expected is None or not expected.checks_anything:
        return []
    reasons: list[Unsuitable] = []
    affine = np.asarray(affine, float)
    modality = str(modality or "").strip().upper()
    if expected.modalities and modality not in expected.modalities:
        reasons.append(Unsuitable("modality", f"made for {'/'.join(expected.modalities)}; this series is "
                                              f"{modality or 'of unknown modality'}"))
    sx, sy, sz = voxel_spacing(affine)
    if expected.in_plane_mm and not pixel_spacing_known:
        reasons.append(Unsuitable("spacing", "the file gives no pixel spacing in millimetres: the model's scale, "
                                             "and every size it reports, would be a guess"))
    elif expected.in_plane_mm and (_outside(sx, expected.in_plane_mm) or _outside(sy, expected.in_plane_mm)):
        reasons.append(Unsuitable("spacing", f"pixel spacing {sx:.2f} x {sy:.2f} mm is outside the expected "
                                             f"{_fmt_range(expected.in_plane_mm)}"))
    if expected.between_slices_mm and array.shape[0] > 1 and _outside(sz, expected.between_slices_mm):
        reasons.append(Unsuitable("spacing", f"slice spacing {sz:.2f} mm is outside the expected "
                                             f"{_fmt_range(expected.between_slices_mm)}"))
    if expected.extent_si_mm:
        extent = superior_extent_mm(array.shape, affine)
        if _outside(extent, expected.extent_si_mm):
            reasons.append(Unsuitable("extent", f"the series covers {extent:.0f} mm head to feet; expected "
                                                f"{_fmt_range(expected.extent_si_mm)}"))
    content_decides = False
    if expected.lung_air_fraction and modality == "CT":  # HU only mean something on CT
        content_decides = True
        fraction = lung_air_fraction(array, affine)
        if _outside(fraction, expected.lung_air_fraction):
            reasons.append(Unsuitable(
                "not_a_chest", f"it does not look like a chest: {100 * fraction:.1f}% of the body is lung-like air "
                f"({LUNG_AIR_HU[0]:g} to {LUNG_AIR_HU[1]:g} HU), at least {100 * expected.lung_air_fraction[0]:g}% "
                "expected"))
    part = normalise_body_part(body_part)
    if expected.body_parts and part and not content_decides:
        wanted = {normalise_body_part(p) for p in expected.body_parts}
        covers = (part in WHOLE_BODY_PARTS or any(w in part for w in wanted)  # e.g. CHESTABDOMEN for ABDOMEN
                  or ("CHEST" in wanted and part in CHEST_PARTS))
        if not covers:
            reasons.append(Unsuitable("body_part", f"the series is labelled {str(body_part).strip()} "
                                                   f"(BodyPartExamined); made for {'/'.join(expected.body_parts)}"))
    return reasons


# ---------------------------------------------------------------------------------------------------------------
# Findings larger than the model can report.

def drop_oversized(detections, max_mm: float | None):
    """Remove detections whose longest box side exceeds ``max_mm``.

    Returns
    -------
    (Detections, str or None)
        The kept detections (a filtered copy, its ``notes`` extended) and a note for the user when any were
        dropped.
    """
    if max_mm is None or len(detections) == 0:
        return detections, None
    longest = detections.sizes_mm.max(axis=1)
    keep = longest <= max_mm
    if keep.all():
        return detections, None
    dropped = int((~keep).sum())
    note = (f"{dropped} detection{'s' if dropped != 1 else ''} larger than the model's maximum finding size "
            f"({max_mm:g} mm) dropped (largest {longest.max():.0f} mm, score {detections.scores[~keep].max():.2f}): "
            "not a finding this model can make")
    kept = type(detections)(detections.boxes_lps[keep], detections.boxes_voxel[keep], detections.scores[keep],
                            detections.labels[keep], detections.affine, tuple(detections.shape),
                            dict(detections.table), detections.model_id,
                            notes=[*getattr(detections, "notes", []), note])
    return kept, note


__all__ = ["Unsuitable", "ExpectedInput", "expected_input_from_metadata", "max_finding_from_metadata",
           "check_input", "lung_air_fraction", "superior_extent_mm", "drop_oversized", "normalise_body_part",
           "infer_body_part"]
