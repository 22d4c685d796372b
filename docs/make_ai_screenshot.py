"""Make docs/ai-screenshot.png: the AI panel, a segmentation overlay, a detection box and the findings list on
LIDC-IDRI-0001 (needs ../shared/data).

Run from the repository root, on a display or under Xvfb::

    xvfb-run -a .venv/bin/python docs/make_ai_screenshot.py [OUT.png]

What is shown is honest about where it comes from (no trained model ships yet):

- the segmentation is a real run of the AI lane on a bundle whose network is a threshold stand-in
  (``tests.qt.standins.BandsMarker``: "lung" = -950..-500 HU, "bone" >= 300 HU), written to a temporary models
  folder and trusted there, exactly as a user bundle would be;
- the box is reader 1's "Nodule 001" from the LIDC XML (069.xml), turned into a detection result (score 1.0) and
  given to the lane as a model result would be.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LIDC = Path(os.environ.get("HOUNSFIELD_SHARED", REPO.parent / "shared")) / "data" / "lidc-idri-0001"


def reader_nodule(volume) -> tuple[np.ndarray, np.ndarray]:
    """``(boxes_lps (1, 6), boxes_voxel (1, 6))`` around reader 1's first nodule contour in 069.xml."""
    xml = next(LIDC.rglob("069.xml"))
    root = ET.parse(xml).getroot()
    ns = {"n": root.tag.split("}")[0].strip("{")} if root.tag.startswith("{") else {}
    tag = (lambda t: f"n:{t}") if ns else (lambda t: t)
    session = root.find(tag("readingSession"), ns)
    nodule = session.find(tag("unblindedReadNodule"), ns)
    xs, ys, zs = [], [], []
    for roi in nodule.findall(tag("roi"), ns):
        z = float(roi.find(tag("imageZposition"), ns).text)
        for edge in roi.findall(tag("edgeMap"), ns):
            xs.append(int(edge.find(tag("xCoord"), ns).text))
            ys.append(int(edge.find(tag("yCoord"), ns).text))
            zs.append(z)
    origin = volume.affine[:3, 3]
    k = [int(round(volume.lps_to_index([origin[0], origin[1], z])[2])) for z in (min(zs), max(zs))]
    box_voxel = np.array([[min(k), min(ys), min(xs), max(k) + 1, max(ys) + 1, max(xs) + 1]])
    z0, y0, x0, z1, y1, x1 = box_voxel[0]
    corners = volume.index_to_lps(np.array([[x0 - 0.5, y0 - 0.5, z0 - 0.5], [x1 - 0.5, y1 - 0.5, z1 - 0.5]]))
    return np.concatenate([corners.min(axis=0), corners.max(axis=0)])[None], box_voxel


def main(out: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="hounsfield-shot-"))
    os.environ["HOUNSFIELD_HOME"] = str(home / "home")
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtWidgets import QApplication

    from inference.registry import set_trusted
    from inference.types import Detections, label_table
    from tests.inference.helpers import write_bundle
    from tests.qt.standins import BandsMarker
    from viewer.qt.app import configure_runtime
    from viewer.qt.main_window import MainWindow
    from viewer.qt.settings import Settings
    from viewer.qt.theme import apply_dark_theme

    configure_runtime()
    app = QApplication.instance() or QApplication(["hounsfield"])
    apply_dark_theme(app)
    bands = [[-950, -500], [300, 5000]]
    bundle = write_bundle(home / "models" / "lung_bone_threshold", {
        "network_def": {"_target_": "tests.qt.standins.BandsMarker", "bands": bands},
        "inferer": {"_target_": "SimpleInferer"}}, {
        "name": "Lung + bone (threshold stand-in)", "version": "0.1",
        "description": "Not a trained model: labels HU bands, to show the overlays.",
        "hounsfield": {"task": "segmentation", "modality": "CT", "labels": {
            "1": {"name": "lung", "color": [60, 180, 255]}, "2": {"name": "bone", "color": [245, 130, 48]}}}},
        state_dict=BandsMarker(bands).state_dict())
    set_trusted(bundle)

    window = MainWindow(Settings(QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)))
    window.resize(1680, 980)
    window.show()

    def wait(condition, seconds=120.0):
        end = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > end:
                raise TimeoutError("timed out")
            app.processEvents()
            time.sleep(0.01)

    loaded = []
    window.series_loaded.connect(loaded.append)
    window.open_paths([str(LIDC)], remember=False)
    wait(lambda: loaded and not window.busy)
    lane = window.inference
    lane.set_models_folder(str(home / "models"))
    window.ai_panel.select_model("lung_bone_threshold")
    lane.start()
    wait(lambda: not lane.busy)
    segmentation = lane.layer("segmentation")
    assert segmentation is not None, window.statusBar().currentMessage()
    status = window.statusBar().currentMessage()

    volume = window.viewer.volume
    boxes_lps, boxes_voxel = reader_nodule(volume)
    lane.apply_result(Detections(boxes_lps, boxes_voxel, [1.0], [1], volume.affine, volume.shape,
                                 label_table({1: "nodule"}, {1: (255, 60, 60)}), "lidc-reader-1"),
                      "LIDC reader 1 (069.xml)")
    window.findings_panel.set_min_score(0.5)
    viewer = window.viewer
    viewer.set_layout("1x3")
    viewer.state.apply_preset("lung")
    app.processEvents()
    window.resizeDocks([window.series_dock, window.ai_dock], [250, 400], Qt.Orientation.Horizontal)
    app.processEvents()
    for view in viewer.views.values():
        view.fit()
        view.zoom_by(1.5)
    lane.go_to_finding(0)
    window.findings_dock.raise_()
    window.statusBar().showMessage(status)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    for view in viewer.views.values():
        view.draw_still()
    app.processEvents()
    pixmap = window.grab()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not pixmap.save(str(out), "PNG"):
        raise SystemExit(f"could not write {out}")
    print(f"wrote {out} ({pixmap.width()}x{pixmap.height()})")
    window.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "ai-screenshot.png")
