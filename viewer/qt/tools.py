"""Mouse tools and the keyboard/mouse conventions, in one table shown by Help > Shortcuts and the docs."""
from __future__ import annotations

from enum import Enum


class Tool(str, Enum):
    """What the left mouse button does in a view."""

    WINDOW = "window"
    PAN = "pan"
    ZOOM = "zoom"
    CROSSHAIR = "crosshair"
    LENGTH = "length"
    ELLIPSE = "ellipse"
    RECTANGLE = "rectangle"
    PROBE = "probe"
    BRUSH = "brush"
    ERASER = "eraser"
    FILL = "fill"
    FILL_3D = "fill3d"
    POLYGON = "polygon"


#: Tools that paint into the active segment (``[`` / ``]`` size the brush while one of them is chosen).
PAINT_TOOLS = (Tool.BRUSH, Tool.ERASER)

#: Tools that edit the active segment (the Segments panel comes to the front when one is chosen).
EDIT_TOOLS = (Tool.BRUSH, Tool.ERASER, Tool.FILL, Tool.FILL_3D, Tool.POLYGON)


#: (tool, menu label, shortcut key, tooltip)
TOOLS: tuple[tuple[Tool, str, str, str], ...] = (
    (Tool.WINDOW, "Window/Level", "W", "Left-drag: horizontal = width, vertical = level"),
    (Tool.PAN, "Pan", "P", "Left-drag moves the image"),
    (Tool.ZOOM, "Zoom", "Z", "Left-drag up/down zooms in/out"),
    (Tool.CROSSHAIR, "Crosshair", "C", "Click or drag to move the linked crosshair in all views"),
    (Tool.LENGTH, "Length", "L", "Left-drag draws a distance in mm"),
    (Tool.ELLIPSE, "Ellipse ROI", "E", "Left-drag draws an ellipse: mean, SD, min, max, area"),
    (Tool.RECTANGLE, "Rectangle ROI", "B", "Left-drag draws a box: mean, SD, min, max, area"),
    (Tool.PROBE, "Probe", "V", "Click shows the voxel value (HU for CT)"),
    (Tool.BRUSH, "Brush", "D", "Left-drag paints the active segment (Alt + drag erases); [ ] size"),
    (Tool.ERASER, "Eraser", "Shift+D", "Left-drag erases from the active segment; [ ] size"),
    (Tool.FILL, "Fill 2D", "G", "Click fills the connected region on this slice (HU range when Threshold is on, "
     "else the same-label region; Alt + click removes it)"),
    (Tool.FILL_3D, "Fill 3D", "Shift+G", "Click fills the connected region in 3D (HU range or same label; "
     "Alt + click removes it)"),
    (Tool.POLYGON, "Polygon / Lasso", "O", "Click points and double-click to close, or drag a lasso and release; "
     "Alt erases; Esc cancels"),
)

#: The conventions, as (input, effect) rows grouped by section; OHIF / Horos / Slicer habits.
SHORTCUTS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Mouse (the defaults: View > Key and Mouse Bindings changes them; presets Slicer-like, PACS-like)", (
        ("Left drag", "Active tool (Window/Level by default)"),
        ("Middle drag  or  Shift + left drag", "Pan"),
        ("Right drag  or  Ctrl + left drag", "Zoom (drag up = in), around the point where the drag started"),
        ("Wheel", "Next / previous slice (one notch = one slice)"),
        ("Ctrl + wheel", "Zoom at the cursor (with the Brush or Eraser tool: brush larger / smaller)"),
        ("Alt + left drag (Brush tool)", "Erase from the active segment"),
        ("Alt + click / drag (Fill, Polygon)", "Remove the region from the active segment instead"),
        ("Right click", "View menu: presets, tools, layout, reset"),
        ("Double click", "Maximise this view / back to 1x3 or 2x2"),
        ("Drag a series from the browser", "Open it in the viewer"),
        ("Click a series in the browser", "Open it (by keyboard: Ctrl + Up / Down, then Enter)"),
    )),
    ("Slices", (
        ("Down / Right arrow,  Up / Left arrow", "Next / previous slice"),
        ("Page Down / Page Up", "10 slices forward / back"),
        ("Home / End", "First / last slice"),
        ("These keys and 0 … 9 in a panel", "Work there too, except in text fields, spin boxes, lists of choices "
                                             "and sliders; Up / Down walk the findings list"),
        ("Space", "Cine play / pause"),
        ("]  /  [", "Cine faster / slower (with the Brush or Eraser tool: brush larger / smaller)"),
    )),
    ("Window / level", (
        ("1 … 6", "CT presets: lung, mediastinum, bone, brain, abdomen, liver"),
        ("0", "DICOM window of the series (VOI: median over the central images)"),
        ("A", "Auto window from percentiles (MR, PET, …)"),
        ("I", "Invert grey scale"),
    )),
    ("View", (
        ("F", "Fit image to view"),
        ("R", "Reset view: fit, default window, no inversion"),
        ("+  /  -", "Zoom in / out"),
        ("Ctrl+1  /  Ctrl+3  /  Ctrl+4", "Layout 1x1 / 1x3 (axial, coronal, sagittal) / 2x2 (those and a free "
                                          "view: a 10 mm MIP of the axial plane)"),
        ("Ctrl+Shift+H", "Hide all panels (the image gets the whole window); again to bring them back"),
        ("X", "Show / hide the crosshair"),
    )),
    ("Thick slab", (
        ("M", "Slab on / off: 10 mm MIP the first time, then the last projection and thickness"),
        ("Shift+M", "Next projection: MIP, MinIP, Avg"),
        (".  /  ,", "Thicker / thinner slab (2, 3, 5, 7.5, 10, 15, 20, 30, 50, 100 mm)"),
    )),
    ("Tools", tuple((key, label) for _, label, key, _ in TOOLS) + (
        ("Delete / Backspace", "Delete the selected measurement"),
        ("Esc", "Cancel drawing, clear selection"),
    )),
    ("Edit", (
        ("T", "Threshold on / off: brush and fill only voxels in the Segments panel's HU range"),
        ("Ctrl+Z", "Undo the last annotation step (the Edit menu names it)"),
        ("Ctrl+Shift+Z  or  Ctrl+Y", "Redo"),
    )),
    ("Files", (
        ("Ctrl+O / Ctrl+Shift+O", "Open folder / open files"),
        ("Ctrl+S", "Save a screenshot of the views (PNG)"),
        ("Ctrl+Shift+C", "Copy a screenshot to the clipboard"),
        ("Ctrl+R", "Run the model chosen in the AI panel"),
        ("F1", "This help"),
    )),
)


def shortcuts_html() -> str:
    """The conventions as an HTML table (for the help dialog)."""
    rows = []
    for section, entries in SHORTCUTS:
        rows.append(f"<tr><td colspan='2' style='padding-top:10px'><b>{section}</b></td></tr>")
        for key, effect in entries:
            rows.append(f"<tr><td style='padding-right:24px;color:#9cc9ff'>{key}</td><td>{effect}</td></tr>")
    return "<table cellspacing='2'>" + "".join(rows) + "</table>"
