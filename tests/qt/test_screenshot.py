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


def test_render_2x2_has_four_images(themed_app, lidc_dir, tmp_path):
    four = tmp_path / "four.png"
    render_screenshot(str(lidc_dir), str(four), window="lung", layout="2x2")
    a = image_array(four)
    assert a.shape[0] > 2 * VIEW_SIZE - 10 and a.shape[1] > 2 * VIEW_SIZE - 10
    half = a.shape[0] // 2
    for rows in (slice(0, half), slice(half, None)):
        for cols in (slice(0, half), slice(half, None)):
            assert a[rows, cols].std() > 30, "each quarter shows an image (the free view: the axial MIP)"


def test_render_rejects_bad_arguments(themed_app, lidc_dir, tmp_path):
    out = str(tmp_path / "x.png")
    with pytest.raises(ValueError, match="window"):
        render_screenshot(str(lidc_dir), out, window="lungs")
    with pytest.raises(ValueError, match="slice"):
        render_screenshot(str(lidc_dir), out, image_number=500)
    with pytest.raises(ValueError, match="slice"):
        render_screenshot(str(lidc_dir), out, image_number=0)  # numbers start at 1, as on screen
    with pytest.raises(ValueError, match="layout"):
        render_screenshot(str(lidc_dir), out, layout="3x3")
    with pytest.raises(ValueError, match="series"):
        render_screenshot(str(lidc_dir), out, series="1.2.3.4")
    with pytest.raises(ValueError, match="no DICOM image"):
        render_screenshot(str(tmp_path), out)


def test_render_a_slab_and_the_cli_flags(themed_app, lidc_dir, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    single, mip, minip = (tmp_path / f"{name}.png" for name in ("single", "mip", "minip"))
    render_screenshot(str(lidc_dir), str(single), window="lung", image_number=80)
    render_screenshot(str(lidc_dir), str(mip), window="lung", image_number=80, slab_mm=10)
    render_screenshot(str(lidc_dir), str(minip), window="lung", image_number=80, projection="minip")
    a, b, c = (image_array(p) for p in (single, mip, minip))
    middle = (slice(VIEW_SIZE // 4, 3 * VIEW_SIZE // 4),) * 2
    assert b[middle].mean() > a[middle].mean() > c[middle].mean(), "MIP brighter, MinIP darker than the slice"
    with pytest.raises(ValueError, match="projection"):
        render_screenshot(str(lidc_dir), str(tmp_path / "x.png"), projection="max")
    with pytest.raises(ValueError, match="slab"):
        render_screenshot(str(lidc_dir), str(tmp_path / "x.png"), slab_mm=0)

    repo = Path(__file__).resolve().parents[2]

    def hounsfield(*args):
        return subprocess.run([sys.executable, "-m", "viewer", "screenshot", str(lidc_dir), *args], cwd=repo,
                              capture_output=True, text=True, timeout=300)

    out = tmp_path / "cli-avg.png"
    done = hounsfield("--out", str(out), "--slice", "80", "--window", "lung", "--slab", "10", "--projection", "avg")
    assert done.returncode == 0, done.stderr
    d = image_array(out)
    assert d.shape == a.shape and not np.array_equal(d, a) and not np.array_equal(d, b)
    out = tmp_path / "cli-mip.png"
    done = hounsfield("--out", str(out), "--slice", "80", "--window", "lung", "--slab", "10")
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(image_array(out), b)  # the CLI renders what the function renders
    bad = hounsfield("--out", str(tmp_path / "y.png"), "--slab", "-3")
    assert bad.returncode == 2 and "outside" in bad.stderr and "Traceback" not in bad.stderr
    bad = hounsfield("--out", str(tmp_path / "y.png"), "--projection", "max")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
