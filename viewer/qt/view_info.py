"""What the viewer says about what it shows: each view's four corner texts, the window, and the read-out under
the mouse.

Texts only (nothing is drawn here): the views paint the corner texts with
:class:`~viewer.qt.view_text.ViewTextPainter`; the window text and the read-out go to the status bar.
"""
from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPointF

from viewer.core.reformat import Plane

if TYPE_CHECKING:  # pragma: no cover
    from viewer.qt.canvas import SliceViewWidget
    from viewer.qt.viewer_widget import ViewerWidget

PLANE_NAMES = {Plane.AXIAL: "Axial", Plane.CORONAL: "Coronal", Plane.SAGITTAL: "Sagittal"}
CALIBRATION_NOTES = {"ultrasound_regions": "mm per US region",
                     "imager_pixel_spacing": "mm at detector (ImagerPixelSpacing)",
                     "none": "no pixel spacing: px"}


def _format_date(value: str) -> str:
    try:
        return datetime.datetime.strptime(value, "%Y%m%d").strftime("%Y-%m-%d")
    except (TypeError, ValueError):
        return value or ""


def calibration_note(calibration) -> str:
    """A short corner note when distances are not plain patient millimetres ("" otherwise)."""
    if calibration is None or calibration.source == "pixel_spacing":
        return ""
    return CALIBRATION_NOTES.get(calibration.source, "")


def corner_texts(viewer: ViewerWidget, view: SliceViewWidget) -> dict[str, list[str]]:
    """The four corner texts of ``view``: patient and study top left, plane and series top right, image number,
    slab (``MIP 10 mm (4 im)`` while one is shown), location and spacing bottom left, window, zoom, loading and cine
    bottom right."""
    info = view.own_info if view.own_info is not None else viewer.info
    geometry = view.geometry_
    k = view.k if view.k is not None else 0
    top_left = [info.get("patient_name", ""), info.get("patient_id", ""),
                _format_date(info.get("study_date", "")), info.get("study_description", "")]
    series = info.get("series_description", "") or ""
    number = info.get("series_number")
    se = f"Se {number}" if number not in (None, "") else ""
    oriented = viewer.has_orientation()
    top_right = [PLANE_NAMES[view.plane] if oriented else "", " ".join(t for t in (se, series) if t),
                 info.get("modality", "")]
    n = geometry.n_slices
    state = view.state  # the free view of 2x2 has its own (its slab, or another volume)
    number = state.display_number(view.plane, k) if state is not None else k + 1
    bottom_left = [f"Im {number}/{n}"]
    slab = state.slab_label(view.plane, k) if state is not None else ""
    if slab:  # right under the image number: nobody should take a slab for a single slice
        bottom_left.append(slab)
    if oriented:
        bottom_left += [f"Loc {geometry.slice_position_mm(k):.1f} mm", f"Sp {geometry.slice_spacing:.2f} mm"]
    note = calibration_note(viewer.calibration())
    if note:
        bottom_left.append(note)
    bottom_right = [window_text(state), f"Zoom {view.zoom() * 100:.0f}%"]
    if viewer.loading is not None:
        done, total = viewer.loading
        bottom_right.append(f"Loading {done}/{total}" if total else "Loading")
    if viewer.cine_running:
        source = " (file)" if getattr(viewer.volume, "frame_rate", None) else ""
        bottom_right.append(f"Cine {viewer.cine_fps:g} fps{source}")
    return {"top-left": [t for t in top_left if t], "top-right": [t for t in top_right if t],
            "bottom-left": bottom_left, "bottom-right": bottom_right}


def window_text(state) -> str:
    """``W 1500 L -600 (lung)`` for the overlay and status bar ("" without a state; "RGB" for colour)."""
    if state is None:
        return ""
    if state.volume.is_rgb:
        return "RGB"  # colour is drawn as stored: no window applies, so none is claimed
    w = state.window
    name = state.window_name
    text = f"W {w.width:.0f} L {w.center:.0f}"
    if name and name != "custom":
        text += f" ({name})"
    if state.invert:
        text += " inv"
    return text


def _value_text(value, unit: str) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        return "RGB " + ", ".join(str(v) for v in value)
    return (f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}") + (f" {unit}" if unit else "")


def cursor_readout(state, index, unit: str, oriented: bool, plane=None) -> tuple[dict, str]:
    """What is under the mouse at voxel index ``index`` ``(x, y, z)``: a record (``plane``, ``voxel``, ``lps``,
    ``value``, ``slab_value``) and the status-bar text (patient mm only for volumes with patient geometry).

    ``value`` is always the voxel's own value on the slice (the centre of a slab); while a slab is shown the text
    adds the projected value the slab draws there, named (``-812 HU   MIP 10 mm: 45 HU``), so neither is taken
    for the other."""
    voxel = np.floor(np.asarray(index) + 0.5).astype(int)
    lps = state.volume.index_to_lps(index)
    value = state.value_at(index)
    value_text = _value_text(value, unit)
    slab_value = state.slab_value_at(index, plane) if plane is not None else None
    if slab_value is not None:
        value_text += f"   {state.projection.label} {state.slab_mm:g} mm: {_value_text(slab_value, unit)}"
    record = {"plane": plane, "voxel": tuple(int(v) for v in voxel), "lps": tuple(float(v) for v in lps),
              "value": value, "slab_value": slab_value}
    if oriented:
        text = (f"Voxel ({voxel[0]}, {voxel[1]}, {voxel[2]})    "
                f"LPS ({lps[0]:.1f}, {lps[1]:.1f}, {lps[2]:.1f}) mm    {value_text}")
    else:  # a nominal grid: patient millimetres would be invented
        text = f"Pixel ({voxel[0]}, {voxel[1]}), frame {voxel[2] + 1}    {value_text}"
    return record, text


class CursorReadout:
    """The read-out under the mouse (``viewer.cursor_info``), kept true when the slice moves under a still mouse
    (keys, wheel, cine): the place is remembered in scene mm of the view it was in."""

    def __init__(self, viewer: ViewerWidget) -> None:
        self.viewer = viewer
        #: ``{"plane", "voxel", "lps", "value"}`` of the last read-out (None when the mouse is off the image).
        self.last: dict | None = None
        self._at: tuple = (None, (0.0, 0.0))  # (view, scene mm) of the last read-out

    def forget(self) -> None:
        """No read-out (another volume is shown)."""
        self._at = (None, (0.0, 0.0))

    def show(self, view, index) -> None:
        """Read out voxel index ``index`` ``(x, y, z)`` of ``view`` (None: the mouse left the image)."""
        viewer = self.viewer
        if index is None or viewer.state is None:
            self.last = None
            self._at = (None, (0.0, 0.0))
            viewer.cursor_info.emit("")
            return
        if getattr(view, "geometry_", None) is not None:  # remembered in scene mm: the in-plane place stays put
            self._at = (view, view.geometry_.scene_from_index(index)[1:])
        state = getattr(view, "state", None) or viewer.state  # the free view's own slab is read out there
        self.last, text = cursor_readout(state, index, viewer.value_unit(), viewer.has_orientation(),
                                         getattr(view, "plane", None))
        viewer.cursor_info.emit(text)

    def follow_slice(self) -> None:
        """The slice moved under a still mouse: read out the voxel now under it."""
        view, scene = self._at
        if view is None or self.viewer.state is None or view.geometry_ is None:
            return
        index = view.index_at(QPointF(*scene))
        self.show(view, index if index is not None and view.inside(index) else None)
