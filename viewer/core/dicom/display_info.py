"""Per-slice display facts the loader copies from the headers onto a Volume: windows, calibration, cine rate.

Kept apart from ``load.py`` so the loader only makes one call; everything here is header data already scanned.
"""
from __future__ import annotations

from viewer.core.calibration import choose_calibration
from viewer.core.dicom.model import InstanceHeader


def attach_display_info(volume, slice_headers: list[InstanceHeader], has_orientation: bool) -> None:
    """Fill ``slice_windows``, ``instance_numbers``, ``calibration`` and ``frame_rate`` of ``volume``.

    Parameters
    ----------
    volume
        The :class:`~viewer.core.volume.Volume` being loaded.
    slice_headers
        The header of each slice's file, in the volume's slice order (a multi-frame file repeats).
    has_orientation
        True when the stack was placed from ImagePositionPatient/ImageOrientationPatient.
    """
    volume.slice_windows = [h.window for h in slice_headers]
    multi_frame = any(h.number_of_frames > 1 for h in slice_headers)
    volume.instance_numbers = [None if multi_frame else h.instance_number for h in slice_headers]
    if not slice_headers:
        return
    lead = slice_headers[0]
    spacing = lead.frames[0].pixel_spacing if lead.frames else None
    volume.calibration = choose_calibration(spacing, lead.imager_pixel_spacing, lead.ultrasound_regions,
                                            has_orientation)
    volume.frame_rate = lead.frame_rate
