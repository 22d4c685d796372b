"""Series thumbnails: the middle image of each series, windowed and shrunk, made on a worker thread."""
from __future__ import annotations

import numpy as np

from viewer.core.dicom import limits
from viewer.core.dicom.decode import FrameSource
from viewer.core.jobs import CancelToken, Job, Progress
from viewer.core.windowing import Window, apply_window, auto_window

THUMBNAIL_SIZE = 64


def _middle_frame(series):
    instances = [i for i in series.instances if i.has_pixels]
    if not instances:
        return None, 0
    instances.sort(key=lambda i: (i.instance_number is None, i.instance_number or 0, i.path))
    if len(instances) == 1:
        inst = instances[0]
        return inst, max(1, inst.number_of_frames) // 2
    return instances[len(instances) // 2], 0


def thumbnail_array(series, size: int = THUMBNAIL_SIZE) -> np.ndarray | None:
    """A ``(h, w)`` grey or ``(h, w, 3)`` RGB uint8 thumbnail fitting ``size`` x ``size`` with the pixel aspect
    preserved, or None when the series has no image."""
    inst, frame = _middle_frame(series)
    if inst is None:
        return None
    source = FrameSource(inst.path)
    header = source.header
    # Rows x Columns are claims: a 65535 x 65535 header over a small compressed frame must not allocate 16 GiB.
    limits.check_decoded_size(1, header.rows, header.columns, 3 if header.is_colour else 1, 4)
    if header.is_colour:
        out = np.empty((header.rows, header.columns, 3), np.uint8)
        source.read_frame_into(frame, out)
        image = out
    else:
        out = np.empty((header.rows, header.columns), np.float32)
        source.read_frame_into(frame, out)
        if header.window is not None and header.window[1] > 0:
            window = Window(*header.window)
        else:
            window = auto_window(out)
        image = apply_window(out, window)
    source.release()
    row_mm, col_mm = 1.0, 1.0
    geometry = inst.frames[0] if inst.frames else None
    if geometry is not None and geometry.pixel_spacing:
        row_mm, col_mm = geometry.pixel_spacing
    height_mm, width_mm = image.shape[0] * row_mm, image.shape[1] * col_mm
    scale = size / max(height_mm, width_mm)
    h = max(1, int(round(height_mm * scale)))
    w = max(1, int(round(width_mm * scale)))
    rows = np.minimum((np.arange(h) + 0.5) / h * image.shape[0], image.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(w) + 0.5) / w * image.shape[1], image.shape[1] - 1).astype(int)
    return np.ascontiguousarray(image[rows][:, cols])


def iter_thumbnails(series_list, cancel: CancelToken | None = None, size: int = THUMBNAIL_SIZE) -> Job[int]:
    """Yield ``Progress(payload=(series key, array or None))`` for each image series; returns how many were made."""
    cancel = cancel or CancelToken()
    made = 0
    todo = [s for s in series_list if s.kind == "image"]
    for i, series in enumerate(todo):
        cancel.raise_if_cancelled()
        try:
            image = thumbnail_array(series, size)
        except BaseException as error:  # noqa: BLE001 - a bad file (a decoder's Rust panic too) gets no thumbnail
            if not limits.is_decoder_failure(error):
                raise
            image = None
        made += image is not None
        yield Progress(i + 1, len(todo), "Thumbnails", payload=(series.key, image))
    return made
