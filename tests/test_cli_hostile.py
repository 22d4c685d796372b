"""The CLI on hostile input (issue 10): reasons on stderr, no traceback, bounded memory - as a real subprocess."""
from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames

from tests.conftest import data_path

REPO = Path(__file__).resolve().parents[1]
CT_NATIVE = ("ts-cornerstone-ct", "CTImage.dcm_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm")
ADDRESS_SPACE = 3 << 30  # the CLI must do all of this within 3 GiB of address space (torch is not imported)


def hounsfield(*args: str) -> subprocess.CompletedProcess:
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    return subprocess.run([sys.executable, "-m", "viewer", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, preexec_fn=cap)


def test_info_names_the_lying_file_and_its_reason_on_stderr_and_loads_the_real_series(tmp_path):
    shutil.copy(data_path(*CT_NATIVE), tmp_path / "honest.dcm")
    ds = pydicom.dcmread(data_path(*CT_NATIVE))
    ds.NumberOfFrames = 2**31 - 1
    ds.SOPInstanceUID = ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(tmp_path / "liar.dcm")

    result = hounsfield("info", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path / 'liar.dcm'}: declares 2147483647 frames but holds 1" in result.stderr
    assert json.loads(result.stdout)["shape"] == [1, 512, 512]
    assert "Traceback" not in result.stderr


def _jpeg_claiming(tmp_path: Path, height: int, width: int) -> Path:
    src = data_path("ts-pylibjpeg-data", "JPEGBaseline", "JPEGBaseline_1s_1f_u_08_08.dcm")
    ds = pydicom.dcmread(src)
    (frame,) = [bytearray(f) for f in generate_frames(ds.PixelData, number_of_frames=1)]
    sof = frame.index(b"\xff\xc0")
    frame[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    ds.PixelData = encapsulate([bytes(frame)])
    out = tmp_path / "sof.dcm"
    ds.save_as(out)
    return out


def test_screenshot_of_an_undecodable_series_is_a_clean_refusal(tmp_path):
    path = _jpeg_claiming(tmp_path, 65500, 65500)
    result = hounsfield("screenshot", str(path), "--out", str(tmp_path / "shot.png"))
    assert result.returncode == 1, result.stderr
    assert "declares 65500 x 65500 pixels" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "shot.png").exists()


@pytest.mark.parametrize("command", ["info", "screenshot"])
def test_a_folder_of_only_refused_files_says_why_on_stderr(tmp_path, command):
    ds = pydicom.dcmread(data_path(*CT_NATIVE))
    ds.Rows = ds.Columns = 65535
    ds.save_as(tmp_path / "big.dcm")
    extra = ["--out", str(tmp_path / "shot.png")] if command == "screenshot" else []
    result = hounsfield(command, str(tmp_path), *extra)
    assert result.returncode == 2, result.stderr
    assert "declares 65535 x 65535 pixels (8.0 GiB a frame) but holds 512.0 KiB of pixel data" in result.stderr
    assert "Traceback" not in result.stderr
