"""Nodule follow-up records in the current study's TID 1500 SR, read back with the SR reader."""
import numpy as np
import pytest

from viewer.core.export.seg import read_sources
from viewer.core.export.sr_followup import followup_status
from viewer.core.export.sr_measurements import build_measurements_report, read_report
from viewer.core.session import Session

RECORDS = [
    {"status": "matched", "prior_index": 0, "current_index": 0, "distance_mm": 1.2,
     "center_lps": [[-57.8, 48.2, -169.3], [-54.2, 46.9, -177.4]], "volume_mm3": [2249.8, 12212.8],
     "diameter_mm": [15.9, 28.0], "growth_pct": 442.8, "vdt_days": 149.6, "vdt_note": "growing"},
    {"status": "matched", "prior_index": 1, "current_index": 1, "distance_mm": 0.8,
     "center_lps": [[61.3, -19.1, -136.1], [68.1, -11.6, -141.2]], "volume_mm3": [6476.0, 6463.0],
     "diameter_mm": [23.6, 23.6], "growth_pct": -0.2, "vdt_days": None, "vdt_note": "shrinking"},
    {"status": "resolved", "prior_index": 2, "current_index": None, "distance_mm": None,
     "center_lps": [[-68.0, 32.1, -118.2], None], "volume_mm3": [401.0, None], "diameter_mm": [9.3, None]},
    {"status": "new", "prior_index": None, "current_index": 2, "distance_mm": None,
     "center_lps": [None, [107.5, -11.4, -221.1]], "volume_mm3": [None, 234.9], "diameter_mm": [None, 8.0]},
]


def test_status_of_a_record():
    assert [followup_status(r) for r in RECORDS if r["status"] != "resolved"] == ["growing", "stable", "new"]


def test_followup_groups_round_trip_through_the_sr(lidc_dir):
    session = Session()
    session.open(lidc_dir)
    series = session.default_image_series()
    volume = session.load(series.key)
    sources = read_sources([i.path for i in series.instances])
    sr = build_measurements_report([], volume, sources, followup=RECORDS, followup_days=365)
    report = read_report(sr)
    groups = {g.tracking_id: g for g in report.groups}
    assert sorted(groups) == ["Follow-up nodule 1", "Follow-up nodule 2", "Follow-up nodule 3"]
    growing, stable, new = (groups[f"Follow-up nodule {i}"] for i in (1, 2, 3))
    assert growing.value("Volume doubling time") == pytest.approx(149.6)
    assert growing.value("Volume at prior study") == pytest.approx(2249.8)
    assert growing.value("Volume change") == pytest.approx(442.8)
    assert growing.value("Volume") == pytest.approx(12212.8)
    np.testing.assert_allclose(growing.graphic_data.reshape(-1, 3)[0], [-54.2, 46.9, -177.4], atol=1e-3)
    assert stable.value("Volume doubling time") is None and stable.value("Volume change") == pytest.approx(-0.2)
    assert new.value("Volume at prior study") is None and new.value("Volume") == pytest.approx(234.9)
    statuses = [item for item in _walk_texts(sr) if item.startswith(("New nodule", "Growing", "Stable"))]
    assert statuses == ["Growing nodule, 365 days after the prior", "Stable nodule, 365 days after the prior",
                        "New nodule, 365 days after the prior"]


def _walk_texts(dataset):
    """The code meanings of every coded value in the SR content tree, in order."""
    for item in dataset.get("ContentSequence", []):
        for code in item.get("ConceptCodeSequence", []):
            yield str(code.CodeMeaning)
        yield from _walk_texts(item)
