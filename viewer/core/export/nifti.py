"""Write a ``(z, y, x)`` array with our LPS affine as NIfTI-1 (``.nii`` / ``.nii.gz``), exactly.

NIfTI stores a RAS world, indexed ``(i, j, k)`` = (column, row, slice) - the same index order as our affine, so the
file's ``sform`` is simply ``diag(-1, -1, 1, 1) @ affine``. We write the header ourselves (numpy + gzip): any
affine (also a sheared one from a tilted gantry) is stored as it is in the sform, and the qform carries the
nearest rigid rotation for readers that prefer it (orthonormal affines are then exact in both). Readable by
SimpleITK, nibabel, ITK-SNAP, 3D Slicer.
"""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

# NIfTI-1 datatype codes for the dtypes we write.
_DATATYPES = {
    np.dtype(np.uint8): (2, 8), np.dtype(np.int16): (4, 16), np.dtype(np.int32): (8, 32),
    np.dtype(np.float32): (16, 32), np.dtype(np.float64): (64, 64), np.dtype(np.int8): (256, 8),
    np.dtype(np.uint16): (512, 16), np.dtype(np.uint32): (768, 32),
}


def _quaternion(rotation: np.ndarray) -> tuple[np.ndarray, float]:
    """(b, c, d) and qfac of the proper rotation nearest to ``rotation`` (a 3x3 with unit columns)."""
    u, _, vt = np.linalg.svd(rotation)
    r = u @ vt
    qfac = 1.0
    if np.linalg.det(r) < 0:
        qfac = -1.0
        r[:, 2] = -r[:, 2]
    a = 0.5 * np.sqrt(max(0.0, 1.0 + r[0, 0] + r[1, 1] + r[2, 2]))
    if a > 1e-6:
        b = 0.25 * (r[2, 1] - r[1, 2]) / a
        c = 0.25 * (r[0, 2] - r[2, 0]) / a
        d = 0.25 * (r[1, 0] - r[0, 1]) / a
    else:  # 180-degree rotations: use the largest diagonal element
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = np.sqrt(max(0.0, 1.0 + r[i, i] - r[j, j] - r[k, k])) * 2
        q = np.zeros(3)
        q[i] = 0.25 * s
        q[j] = (r[j, i] + r[i, j]) / s
        q[k] = (r[k, i] + r[i, k]) / s
        w = (r[k, j] - r[j, k]) / s
        if w < 0:
            q = -q
        b, c, d = q
    return np.array([b, c, d]), qfac


def nifti_header(shape_zyx: tuple[int, int, int], dtype: np.dtype, affine_lps: np.ndarray,
                 description: str = "Hounsfield") -> bytes:
    """The 348-byte NIfTI-1 header (plus the 4-byte extension flag) for an array on our grid."""
    dtype = np.dtype(dtype)
    if dtype not in _DATATYPES:
        raise ValueError(f"cannot store {dtype} in NIfTI-1 here (use uint8, int16, int32, float32, ...)")
    code, bitpix = _DATATYPES[dtype]
    ras = LPS_TO_RAS @ np.asarray(affine_lps, dtype=np.float64)
    zooms = np.linalg.norm(ras[:3, :3], axis=0)
    if np.any(zooms <= 0):
        raise ValueError("affine has a zero-length axis")
    quat, qfac = _quaternion(ras[:3, :3] / zooms)
    nz, ny, nx = (int(s) for s in shape_zyx)
    header = bytearray(352)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, 3, nx, ny, nz, 1, 1, 1, 1)  # dim
    struct.pack_into("<h", header, 70, code)  # datatype
    struct.pack_into("<h", header, 72, bitpix)
    struct.pack_into("<8f", header, 76, qfac, *zooms, 1.0, 1.0, 1.0, 1.0)  # pixdim
    struct.pack_into("<f", header, 108, 352.0)  # vox_offset
    struct.pack_into("<f", header, 112, 1.0)  # scl_slope
    struct.pack_into("<f", header, 116, 0.0)  # scl_inter
    struct.pack_into("<B", header, 123, 2 | 8)  # xyzt_units: mm, s
    header[148:148 + 80] = description.encode("ascii", "replace")[:79].ljust(80, b"\0")
    struct.pack_into("<h", header, 252, 1)  # qform_code: scanner
    struct.pack_into("<h", header, 254, 1)  # sform_code: scanner
    struct.pack_into("<3f", header, 256, *quat)
    struct.pack_into("<3f", header, 268, *ras[:3, 3])  # qoffset
    for row in range(3):
        struct.pack_into("<4f", header, 280 + 16 * row, *ras[row])  # srow_x, srow_y, srow_z
    header[344:348] = b"n+1\0"
    return bytes(header)


def write_nifti(path: str | os.PathLike, array_zyx: np.ndarray, affine_lps: np.ndarray, description: str = "Hounsfield"
                ) -> Path:
    """Write ``array_zyx`` (our grid) with ``affine_lps`` to ``path`` (``.nii.gz`` compresses); returns the path."""
    path = Path(path)
    array = np.asarray(array_zyx)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    if array.ndim != 3:
        raise ValueError(f"expected a (z, y, x) array, got shape {array.shape}")
    header = nifti_header(array.shape, array.dtype, affine_lps, description)
    # NIfTI data is x fastest: our C-ordered (z, y, x) array already is.
    payload = header + np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    if path.name.endswith(".gz"):
        with gzip.open(tmp, "wb", compresslevel=6) as f:
            f.write(payload)
    else:
        tmp.write_bytes(payload)
    tmp.replace(path)
    return path
