"""Dark theme for the whole application (Fusion + a dark palette) and pyqtgraph defaults."""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

#: Colours of the three planes, as in 3D Slicer (red axial, green coronal, yellow sagittal).
PLANE_COLOURS = {"axial": "#e0524d", "coronal": "#5cb85c", "sagittal": "#e6c84a"}
ACCENT = "#3d8ee0"
MEASURE_COLOUR = "#ffd23f"
MEASURE_SELECTED = "#37e39b"
VIEW_BACKGROUND = "#000000"


def configure_pyqtgraph() -> None:
    """Options every view relies on: row-major images (``array[row, col]``), black background."""
    pg.setConfigOptions(imageAxisOrder="row-major", background=VIEW_BACKGROUND, foreground="#d0d0d0",
                        antialias=False, useOpenGL=False)


def apply_dark_theme(app: QApplication) -> None:
    """Fusion style with a neutral dark palette (what radiology workstations use: no glare next to images)."""
    configure_pyqtgraph()
    app.setStyle("Fusion")
    palette = QPalette()
    base, window, text, dim = QColor(30, 31, 34), QColor(43, 45, 48), QColor(220, 220, 220), QColor(128, 128, 128)
    palette.setColor(QPalette.ColorRole.Window, window)
    palette.setColor(QPalette.ColorRole.WindowText, text)
    palette.setColor(QPalette.ColorRole.Base, base)
    palette.setColor(QPalette.ColorRole.AlternateBase, QColor(37, 38, 41))
    palette.setColor(QPalette.ColorRole.ToolTipBase, QColor(55, 57, 61))
    palette.setColor(QPalette.ColorRole.ToolTipText, text)
    palette.setColor(QPalette.ColorRole.PlaceholderText, dim)
    palette.setColor(QPalette.ColorRole.Text, text)
    palette.setColor(QPalette.ColorRole.Button, window)
    palette.setColor(QPalette.ColorRole.ButtonText, text)
    palette.setColor(QPalette.ColorRole.BrightText, QColor(255, 90, 90))
    palette.setColor(QPalette.ColorRole.Link, QColor(ACCENT))
    palette.setColor(QPalette.ColorRole.Highlight, QColor(ACCENT))
    palette.setColor(QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
    palette.setColor(QPalette.ColorRole.Light, QColor(70, 72, 76))
    palette.setColor(QPalette.ColorRole.Midlight, QColor(58, 60, 64))
    palette.setColor(QPalette.ColorRole.Mid, QColor(40, 41, 44))
    palette.setColor(QPalette.ColorRole.Dark, QColor(22, 23, 25))
    palette.setColor(QPalette.ColorRole.Shadow, QColor(0, 0, 0))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, dim)
    app.setPalette(palette)
    app.setStyleSheet(
        "QToolTip { border: 1px solid #555; padding: 4px; }"
        "QDockWidget::title { padding: 4px; background: #2b2d30; }"
        "QStatusBar QLabel { padding: 0 6px; }"
        "QTreeView, QTableView, QListView { border: none; }"
        "QToolBar { border: none; spacing: 2px; }"
    )
