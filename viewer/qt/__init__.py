"""The Qt (PySide6 + pyqtgraph) face of Hounsfield: main window, views, panels, workers.

Entry points: :func:`viewer.qt.app.run_gui` and :func:`viewer.qt.screenshot.render_screenshot`.
"""
