"""LIDC-IDRI XML nodules: the real LIDC-IDRI-0001 reads and a tiny synthetic XML."""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import data_path
from viewer.core.lidc import find_lidc_xml, read_lidc_nodules


def test_lidc_0001_single_large_nodule_marked_by_all_readers():
    from tests.inference.helpers import crop, lps_grid, real_volume

    xmls = find_lidc_xml(data_path("lidc-idri-0001"))
    assert [p.name for p in xmls] == ["069.xml"]
    _, volume = real_volume("lidc-idri-0001")
    nodules = read_lidc_nodules(xmls[0], volume.affine, volume.slice_positions)
    for n in nodules:
        print(n.center_lps.round(1), round(n.diameter_mm, 1), n.n_readers, [m.nodule_id for m in n.marks])
    # The XML: each of the 4 sessions outlines one nodule (slices z -125..-105); the other marks are single
    # points (< 3 mm) or nonNodules.
    assert len(nodules) == 1
    nodule = nodules[0]
    assert nodule.n_readers == 4 and len(nodule.marks) == 4
    assert 20.0 <= nodule.diameter_mm <= 40.0
    assert all(7 <= m.n_slices <= 9 for m in nodule.marks)
    assert -125.0 <= nodule.center_lps[2] <= -105.0

    x, y, z = volume.lps_to_index(nodule.center_lps)
    assert all(0 <= v < s for v, s in zip((z, y, x), volume.shape))
    zs, ys, xs = slice(int(z) - 8, int(z) + 9), slice(int(y) - 20, int(y) + 21), slice(int(x) - 20, int(x) + 21)
    array, affine = crop(volume.array, volume.affine, zs, ys, xs)
    lps = lps_grid(array.shape, affine)
    sphere = np.linalg.norm(lps - nodule.center_lps, axis=-1) <= 3.0
    values = array[sphere]
    assert values.size > 10
    assert values.mean() > -300.0


def _square(col: int, row: int, size: int) -> list[tuple[int, int]]:
    """Ordered boundary pixels of a square, as an LIDC edge map walks a contour."""
    top = [(c, row) for c in range(col, col + size)]
    right = [(col + size, r) for r in range(row, row + size)]
    bottom = [(c, row + size) for c in range(col + size, col, -1)]
    left = [(col, r) for r in range(row + size, row, -1)]
    return top + right + bottom + left + [(col, row)]


def _roi(z: float, points, inclusion: bool = True) -> str:
    edges = "".join(f"<edgeMap><xCoord>{c}</xCoord><yCoord>{r}</yCoord></edgeMap>" for c, r in points)
    return (f"<roi><imageZposition>{z}</imageZposition><imageSOP_UID>1.2.3</imageSOP_UID>"
            f"<inclusion>{'TRUE' if inclusion else 'FALSE'}</inclusion>{edges}</roi>")


def _nodule(nid: str, *rois: str) -> str:
    return f"<unblindedReadNodule><noduleID>{nid}</noduleID>{''.join(rois)}</unblindedReadNodule>"


def _write_xml(path, sessions: list[list[str]]):
    body = "".join(f"<readingSession>{''.join(items)}</readingSession>" for items in sessions)
    path.write_text(f'<?xml version="1.0"?><LidcReadMessage xmlns="http://www.nih.gov">{body}</LidcReadMessage>')


# 0.5 mm pixels, 2 mm slices, 10 slices at z = -30, -28, ..., -12.
AFFINE = np.array([[0.5, 0, 0, -10], [0, 0.5, 0, -20], [0, 0, 2.0, -30], [0, 0, 0, 1]], dtype=float)
POSITIONS = np.array([[-10, -20, -30 + 2 * k] for k in range(10)], dtype=float)


def test_synthetic_grouping_and_small_marks(tmp_path):
    nonnodule = ("<nonNodule><nonNoduleID>x</nonNoduleID><imageZposition>-26</imageZposition>"
                 "<locus><xCoord>15</xCoord><yCoord>35</yCoord></locus></nonNodule>")
    sessions = [
        [_nodule("A0", _roi(-26, _square(10, 30, 10)), _roi(-24, _square(10, 30, 10))),
         _nodule("point", _roi(-20, [(60, 60)])),  # single point: a < 3 mm nodule, dropped
         nonnodule],
        [_nodule("A1", _roi(-26, _square(12, 30, 10))),  # 1 mm from A0: same nodule
         _nodule("tiny", _roi(-20, _square(50, 50, 4)))],  # 2 mm square, 2.8 mm diagonal: under 3 mm
        [_nodule("C", *(_roi(z, _square(100, 100, 40)) for z in (-22, -20, -18))),
         _nodule("off", _roi(100.0, _square(10, 30, 10)))],  # on no slice of the volume
    ]
    xml = tmp_path / "read.xml"
    _write_xml(xml, sessions)
    (tmp_path / "other.xml").write_text("<notLidc/>")
    assert find_lidc_xml(tmp_path) == [xml]

    nodules = read_lidc_nodules(xml, AFFINE, POSITIONS)
    assert [sorted(m.nodule_id for m in n.marks) for n in nodules] == [["C"], ["A0", "A1"]]
    big, a = nodules
    assert big.n_readers == 1 and big.marks[0].n_slices == 3
    assert big.diameter_mm == pytest.approx(np.hypot(20, 20))  # in-plane diagonal beats the 4 mm z span
    assert big.center_lps == pytest.approx([-10 + 120 * 0.5, -20 + 120 * 0.5, -20])

    assert a.n_readers == 2
    a0 = next(m for m in a.marks if m.nodule_id == "A0")
    a1 = next(m for m in a.marks if m.nodule_id == "A1")
    assert a0.center_lps == pytest.approx([-2.5, -2.5, -25.0])  # filled square centre, halfway between slices
    assert a1.center_lps == pytest.approx([-1.5, -2.5, -26.0])
    assert a0.diameter_mm == pytest.approx(np.hypot(5, 5))
    assert a.diameter_mm == pytest.approx(np.hypot(5, 5))
    assert a.center_lps == pytest.approx([-2.0, -2.5, -25.5])


def test_synthetic_far_marks_stay_apart_and_exclusions(tmp_path):
    # Two readers' 5 mm outlines 6 mm apart (> 5 mm floor, > radii): two nodules. An exclusion contour
    # removes the left half of reader 0's square, moving its centre right.
    sessions = [
        [_nodule("L", _roi(-26, _square(10, 30, 10)), _roi(-26, _square(10, 30, 4), inclusion=False))],
        [_nodule("R", _roi(-26, _square(22, 30, 10)))],
    ]
    xml = tmp_path / "read.xml"
    _write_xml(xml, sessions)
    nodules = read_lidc_nodules(xml, AFFINE)  # without slice positions: slice index from the affine
    assert sorted(n.marks[0].nodule_id for n in nodules) == ["L", "R"]
    left = next(n for n in nodules if n.marks[0].nodule_id == "L")
    assert left.center_lps[0] > -2.5  # the excluded pixels pulled the centroid off the square's centre
    assert left.center_lps[2] == pytest.approx(-26.0)


def test_an_outline_without_its_position_is_named(tmp_path):
    xml = tmp_path / "read.xml"
    roi = _roi(-26, _square(10, 30, 10)).replace("<imageZposition>-26</imageZposition>", "")
    _write_xml(xml, [[_nodule("A0", roi)]])
    with pytest.raises(ValueError, match="<roi> without <imageZposition>"):
        read_lidc_nodules(xml, AFFINE, POSITIONS)
