"""The result of registering a current study to its prior: a transform in patient coordinates, reported in mm/degrees.

Direction (the one thing to get right): ``current_to_prior`` maps a point in the CURRENT study's LPS mm to the same
anatomical point in the PRIOR study's LPS mm. That is what the GUI needs to follow a position from the current
series into the prior one (``prior.lps_to_index(reg.to_prior(p))``), whatever either series' slice spacing is.
It is also the direction SimpleITK finds with the current as fixed image and the prior as moving image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

ANGLES_CONVENTION = "R = Rz @ Ry @ Rx (angles about the LPS x, y, z axes, degrees, applied x first)"


def angles_from_matrix(rotation: np.ndarray) -> tuple[float, float, float]:
    """Angles ``(ax, ay, az)`` in degrees of ``rotation = Rz(az) @ Ry(ay) @ Rx(ax)`` (see ``ANGLES_CONVENTION``)."""
    r = np.asarray(rotation, float)
    ay = -math.asin(max(-1.0, min(1.0, r[2, 0])))
    ax = math.atan2(r[2, 1], r[2, 2])
    az = math.atan2(r[1, 0], r[0, 0])
    return math.degrees(ax), math.degrees(ay), math.degrees(az)


def rotation_angle_deg(rotation: np.ndarray) -> float:
    """The total rotation angle (axis-angle magnitude, degrees) of a 3x3 rotation: one number, no convention."""
    cos = (float(np.trace(np.asarray(rotation, float)[:3, :3])) - 1.0) / 2.0
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


@dataclass(frozen=True)
class Registration:
    """A registration of a current series to its prior (or the identity after a reset).

    Parameters
    ----------
    current_to_prior
        4x4 matrix: current LPS mm -> prior LPS mm (see the module notes for why this direction).
    prior_uid, current_uid
        SeriesInstanceUIDs of the two series.
    kind
        ``"rigid"``, ``"affine"`` or ``"identity"`` (not registered, or reset).
    center_lps
        The centre of rotation (in current LPS): the lung centroid of the current series.
    metric
        Final mean-squares metric value (HU², clamped lung range), None for the identity.
    iterations, seconds
        Optimizer iterations over all levels, wall time.
    revision
        The registration method's revision (part of the cache key).
    cached
        True when the result came from a cache.
    """

    current_to_prior: np.ndarray
    prior_uid: str = ""
    current_uid: str = ""
    kind: str = "rigid"
    center_lps: tuple[float, float, float] = (0.0, 0.0, 0.0)
    metric: float | None = None
    iterations: int = 0
    seconds: float = 0.0
    revision: int = 0
    cached: bool = field(default=False, compare=False)

    @classmethod
    def identity(cls, prior_uid: str = "", current_uid: str = "") -> Registration:
        """The reset transform: positions are taken as they are (same LPS in both studies)."""
        return cls(np.eye(4), prior_uid, current_uid, kind="identity")

    @property
    def translation_mm(self) -> np.ndarray:
        """How far the centre of rotation moves from current to prior LPS (mm, L/P/S)."""
        c = np.asarray(self.center_lps, float)
        return self.to_prior(c) - c

    @property
    def angles_deg(self) -> tuple[float, float, float]:
        """Rotation about x, y, z in degrees (``ANGLES_CONVENTION``)."""
        return angles_from_matrix(self.current_to_prior[:3, :3])

    @property
    def rotation_deg(self) -> float:
        """Total rotation angle in degrees."""
        return rotation_angle_deg(self.current_to_prior[:3, :3])

    def to_prior(self, points_lps) -> np.ndarray:
        """Map current LPS points ``(..., 3)`` to prior LPS."""
        p = np.asarray(points_lps, float)
        return p @ self.current_to_prior[:3, :3].T + self.current_to_prior[:3, 3]

    def to_current(self, points_lps) -> np.ndarray:
        """Map prior LPS points ``(..., 3)`` to current LPS (the inverse transform)."""
        inverse = np.linalg.inv(self.current_to_prior)
        p = np.asarray(points_lps, float)
        return p @ inverse[:3, :3].T + inverse[:3, 3]

    def inverse(self) -> Registration:
        """The same registration seen from the other side: the prior as current and the current as prior (a swap
        of the two sides of a comparison); the centre of rotation moves with it."""
        matrix = np.linalg.inv(self.current_to_prior)
        return replace(self, current_to_prior=matrix, prior_uid=self.current_uid, current_uid=self.prior_uid,
                       center_lps=tuple(float(v) for v in self.to_prior(self.center_lps)))  # type: ignore[arg-type]

    def to_json(self) -> dict:
        """The ``transform`` record of ``hounsfield compare --json``."""
        return {
            "kind": self.kind, "direction": "current_to_prior: current LPS mm -> prior LPS mm",
            "matrix": [[round(float(v), 6) for v in row] for row in self.current_to_prior],
            "translation_mm": [round(float(v), 3) for v in self.translation_mm],
            "rotation_deg": round(self.rotation_deg, 3),
            "angles_deg_xyz": [round(a, 3) for a in self.angles_deg], "angles_convention": ANGLES_CONVENTION,
            "center_lps": [round(float(v), 3) for v in self.center_lps],
            "prior_series_uid": self.prior_uid, "current_series_uid": self.current_uid,
            "metric": None if self.metric is None else round(float(self.metric), 3),
            "iterations": self.iterations, "seconds": round(self.seconds, 3), "revision": self.revision,
            "cached": self.cached,
        }

    @classmethod
    def from_json(cls, data: dict) -> Registration:
        """Inverse of :meth:`to_json` (the cache's on-disk form)."""
        return cls(np.asarray(data["matrix"], float), data.get("prior_series_uid", ""),
                   data.get("current_series_uid", ""), data.get("kind", "rigid"),
                   tuple(float(v) for v in data.get("center_lps", (0, 0, 0))),  # type: ignore[arg-type]
                   data.get("metric"), int(data.get("iterations", 0)), float(data.get("seconds", 0.0)),
                   int(data.get("revision", 0)))
