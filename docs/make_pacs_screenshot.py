"""Make docs/pacs-screenshot.png: the PACS dock against a real Orthanc (Debian's ``orthanc`` and ``orthanc-dicomweb``,
started on free loopback ports with three studies from ../shared/data), the studies found, LIDC-IDRI-0001's series
retrieved by DICOMweb and open in the views.

Run from the repository root, on a display or under Xvfb (or with QT_QPA_PLATFORM=offscreen)::

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_pacs_screenshot.py [OUT.png]
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LIDC_SERIES = "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192"


def main(out: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="hounsfield-shot-"))
    os.environ["HOUNSFIELD_HOME"] = str(home / "home")
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtWidgets import QApplication

    from tests.conftest import DATA
    from tests.services.orthanc import OrthancServer, missing_reason
    from viewer.qt.app import configure_runtime
    from viewer.qt.main_window import MainWindow
    from viewer.qt.settings import Settings
    from viewer.qt.theme import apply_dark_theme
    from viewer.services.pacs.nodes import PacsNode

    reason = missing_reason()
    if reason:
        raise SystemExit(reason)
    configure_runtime()
    app = QApplication.instance() or QApplication(["hounsfield"])
    apply_dark_theme(app)

    def wait(condition, seconds=120.0):
        end = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > end:
                raise TimeoutError("timed out")
            app.processEvents()
            time.sleep(0.01)

    with OrthancServer(home / "orthanc") as server:
        for name in ("lidc-idri-0001", "mr-decubitus-hfdr", "ts-dcm-qa-ts"):
            server.upload_folder(DATA / name)
        settings = Settings(QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat))
        settings.set_hanging_protocols([])
        settings.set_pacs_nodes([PacsNode(name="Hospital PACS", url=server.dicomweb_url)])
        window = MainWindow(settings)
        window.resize(1600, 950)
        window.show()
        pacs = window.pacs
        pacs.browser.reload_nodes()
        pacs.show_query()
        listed = []
        pacs.browser.studies_listed.connect(listed.append)
        pacs.browser.search()
        wait(lambda: listed and pacs.browser.series.topLevelItemCount())
        browser = pacs.browser
        lidc = next(browser.studies.topLevelItem(i) for i in range(browser.studies.topLevelItemCount())
                    if browser.studies.topLevelItem(i).text(1) == "LIDC-IDRI-0001")
        browser.studies.setCurrentItem(lidc)
        wait(lambda: browser.selected_series_uid() == LIDC_SERIES)
        loaded = []
        window.series_loaded.connect(loaded.append)
        browser.retrieve_series()
        wait(lambda: loaded)
        window.viewer.set_layout("1x1")
        window.viewer.state.apply_preset("lung")
        pacs.dock.raise_()
        app.processEvents()
        window.resizeDocks([pacs.dock], [470], Qt.Orientation.Horizontal)
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        for view in window.viewer.views.values():
            view.draw_still()
        app.processEvents()
        pixmap = window.grab()
        out.parent.mkdir(parents=True, exist_ok=True)
        if not pixmap.save(str(out), "PNG"):
            raise SystemExit(f"could not write {out}")
        print(f"wrote {out} ({pixmap.width()}x{pixmap.height()}); timings {window.pacs.retriever.timings}")
        window.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "pacs-screenshot.png")
