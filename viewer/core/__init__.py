"""Qt-free domain of the viewer: DICOM, volumes, display state, layers, editing, export.

Nothing under ``viewer.core`` may import PySide6, pyqtgraph or superqt (a test enforces it).
"""
