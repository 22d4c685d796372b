"""Headless ``render_screenshot`` through the viewer widgets."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QImage

from viewer.qt.screenshot import VIEW_SIZE, render_screenshot


def image_array(path) -> np.ndarray:
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    ptr = image.constBits()
    return np.frombuffer(ptr, np.uint8).reshape(image.height(), image.bytesPerLine())[:, : image.width() * 3].reshape(
        image.height(), image.width(), 3).copy()


def test_render_1x1_and_1x3_with_windows(themed_app, lidc_dir, tmp_path):
    one = tmp_path / "one.png"
    render_screenshot(str(lidc_dir), str(one), window="lung", image_number=80)
    a = image_array(one)
    assert a.shape == (VIEW_SIZE, VIEW_SIZE, 3)
    centre = a[VIEW_SIZE // 4 : 3 * VIEW_SIZE // 4, VIEW_SIZE // 4 : 3 * VIEW_SIZE // 4]
    assert centre.std() > 30  # an image, not a blank
    wide = tmp_path / "wide.png"
    render_screenshot(str(lidc_dir), str(wide), window="400,40", layout="1x3")
    b = image_array(wide)
    assert b.shape[1] > 3 * VIEW_SIZE - 10 and b.shape[0] == VIEW_SIZE
    other = tmp_path / "bone.png"
    render_screenshot(str(lidc_dir), str(other), window="bone", image_number=80)
    assert not np.array_equal(a, image_array(other))  # the window is applied


def test_render_rejects_bad_arguments(themed_app, lidc_dir, tmp_path):
    out = str(tmp_path / "x.png")
    with pytest.raises(ValueError, match="window"):
        render_screenshot(str(lidc_dir), out, window="lungs")
    with pytest.raises(ValueError, match="slice"):
        render_screenshot(str(lidc_dir), out, image_number=500)
    with pytest.raises(ValueError, match="slice"):
        render_screenshot(str(lidc_dir), out, image_number=0)  # numbers start at 1, as on screen
    with pytest.raises(ValueError, match="layout"):
        render_screenshot(str(lidc_dir), out, layout="2x2")
    with pytest.raises(ValueError, match="series"):
        render_screenshot(str(lidc_dir), out, series="1.2.3.4")
    with pytest.raises(ValueError, match="no DICOM image"):
        render_screenshot(str(tmp_path), out)
