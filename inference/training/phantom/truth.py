"""What a generated phantom is: the ``Phantom`` and ``Nodule`` records, the label table, the generator's version,
and ``save_ground_truth``, which writes the truth next to a study (``labels.nii.gz``, ``labels.json``,
``nodules.json``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PHANTOM_VERSION = 1
"""Seeds every random stream (``(PHANTOM_VERSION, seed)``): a new version redraws every phantom, the demo too."""
GENERATOR_REVISION = 2
"""Revision of the lesion model on top of the v1 anatomy: 2 added sizes to 40 mm, ground-glass, calcified and
perifissural nodules, mimics and the protocol stream. The anatomy and the demo study are those of v1 (the same
random streams), so only the lesions, the protocol and the training grids of non-demo seeds changed."""

LABELS = {0: "background", 1: "lung_left", 2: "lung_right", 3: "airway", 4: "nodule"}
LABEL_DESCRIPTIONS = {
    0: "everything else",
    1: "patient's left lung (larger LPS x); includes its vessels and airway walls, excludes airway lumen and nodules",
    2: "patient's right lung (smaller LPS x); same rules as the left lung",
    3: "airway lumen: trachea, main bronchi and the bronchial tree",
    4: "lung nodule (solid and part-solid, whole lesion including ground glass; pleural side clipped at the pleura)",
}


@dataclass(frozen=True)
class Nodule:
    """One generated nodule, in patient coordinates.

    Parameters
    ----------
    center_lps
        Centroid of its labelled voxels (LPS mm); the voxel nearest to it carries label 4.
    diameter_mm
        Diameter of the generating sphere (before lobulation and pleural clipping).
    type
        ``"solid"``, ``"part-solid"`` (ground glass with a solid core), ``"ground-glass"`` or ``"calcified"``.
    juxtapleural
        Attached to the pleura (lung boundary).
    touches_vessel
        Placed against a pulmonary vessel.
    volume_mm3
        Volume of its label-4 voxels.
    perifissural
        Lentiform (flattened to half its diameter across a fissure sheet).
    solid_core_mm
        Diameter of the generating sphere of a part-solid nodule's solid core (0 for other types).
    """

    center_lps: tuple[float, float, float]
    diameter_mm: float
    type: str
    juxtapleural: bool
    touches_vessel: bool
    volume_mm3: float
    perifissural: bool = False
    solid_core_mm: float = 0.0

    def to_json(self) -> dict:
        """The ``nodules.json`` entry."""
        return {"center_lps": [round(float(v), 3) for v in self.center_lps],
                "diameter_mm": round(float(self.diameter_mm), 2), "type": self.type,
                "juxtapleural": bool(self.juxtapleural), "touches_vessel": bool(self.touches_vessel),
                "perifissural": bool(self.perifissural), "solid_core_mm": round(float(self.solid_core_mm), 2),
                "volume_mm3": round(float(self.volume_mm3), 1)}


@dataclass(eq=False)
class Phantom:
    """A generated chest CT with its ground truth.

    Parameters
    ----------
    hu
        ``(z, y, x)`` int16 Hounsfield units.
    labels
        ``(z, y, x)`` uint8 label map on the same grid (see ``LABELS``).
    spacing
        ``(z, y, x)`` voxel size in mm.
    origin_lps
        LPS mm of voxel (0, 0, 0); rows run along +y (P), columns along +x (L), slices along +z (S).
    nodules
        The nodules, in LPS.
    seed
        The seed it was generated from.
    info
        The sampled acquisition and anatomy parameters worth knowing (contrast, noise, breathing, ...).
    """

    hu: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    origin_lps: tuple[float, float, float]
    nodules: list[Nodule]
    seed: int
    info: dict = field(default_factory=dict)

    @property
    def affine(self) -> np.ndarray:
        """4x4 mapping ``(x=column, y=row, z=slice, 1)`` to LPS mm (the convention of ``viewer.core.volume``)."""
        sz, sy, sx = self.spacing
        affine = np.diag([sx, sy, sz, 1.0])
        affine[:3, 3] = self.origin_lps
        return affine

    def nodules_json(self) -> dict:
        """The content of ``nodules.json``."""
        return {"nodules": [n.to_json() for n in self.nodules], "seed": self.seed,
                "generator": f"hounsfield phantom v{PHANTOM_VERSION}.{GENERATOR_REVISION}", "coordinates": "LPS mm"}


def save_ground_truth(phantom: Phantom, out_dir: str | Path) -> Path:
    """Write ``labels.nii.gz`` (RAS affine, same grid), ``labels.json`` and ``nodules.json`` into ``out_dir``.

    Written with nibabel; where it is not installed, with SimpleITK (which converts its LPS geometry to the
    same NIfTI RAS affine).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "labels.nii.gz"
    try:
        import nibabel as nib

        have_nibabel = True
    except ImportError:
        have_nibabel = False
    if have_nibabel:
        ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ phantom.affine
        image = nib.Nifti1Image(np.ascontiguousarray(phantom.labels.transpose(2, 1, 0)), ras)
        image.set_qform(ras, code=1)
        image.set_sform(ras, code=1)
        image.header.set_xyzt_units("mm")
        nib.save(image, path)
    else:
        import SimpleITK as sitk

        itk_image = sitk.GetImageFromArray(phantom.labels)  # (z, y, x) array -> ITK (x, y, z) image
        itk_image.SetSpacing(tuple(float(v) for v in phantom.spacing[::-1]))
        itk_image.SetOrigin(tuple(float(v) for v in phantom.origin_lps))
        sitk.WriteImage(itk_image, str(path), True)
    (out_dir / "labels.json").write_text(json.dumps({
        "file": "labels.nii.gz",
        "grid": "same as the DICOM series: NIfTI axes i=column, j=row, k=slice; affine in RAS mm "
                "(LPS with x and y negated)",
        "labels": [{"value": v, "name": LABELS[v], "description": LABEL_DESCRIPTIONS[v]} for v in LABELS],
    }, indent=2))
    (out_dir / "nodules.json").write_text(json.dumps(phantom.nodules_json(), indent=2))
    return out_dir
