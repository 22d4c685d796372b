"""The log file: in the user log folder, rotating, and never showing a patient's name or ID."""
from __future__ import annotations

import logging

import pytest

from viewer.core import logs


@pytest.fixture
def log_dir(tmp_path):
    root = logging.getLogger()
    level = root.level
    logs.forget_patients()
    yield tmp_path / "logs"
    logs.stop_file_logging()
    logs.forget_patients()
    root.setLevel(level)


def test_the_log_goes_to_the_user_log_folder_and_setting_it_up_twice_adds_one_handler(log_dir, monkeypatch):
    monkeypatch.setenv("HOUNSFIELD_HOME", str(log_dir.parent / "home"))
    path = logs.setup_file_logging()
    assert path == log_dir.parent / "home" / "logs" / logs.LOG_NAME
    assert logs.setup_file_logging() == path
    assert sum(getattr(h, "hounsfield_log", False) for h in logging.getLogger().handlers) == 1
    logging.getLogger("viewer.test").info("hello")
    assert "viewer.test: hello" in path.read_text()
    assert logs.log_file() == path.resolve() or logs.log_file() == path


def test_the_log_rotates_and_keeps_a_bounded_number_of_old_files(log_dir, monkeypatch):
    monkeypatch.setattr(logs, "MAX_BYTES", 2_000)
    path = logs.setup_file_logging(log_dir)
    for i in range(400):
        logging.getLogger("viewer.test").info("line %04d %s", i, "x" * 40)
    files = sorted(p.name for p in log_dir.iterdir())
    assert files == [logs.LOG_NAME] + [f"{logs.LOG_NAME}.{n}" for n in range(1, logs.BACKUP_COUNT + 1)]
    assert all(p.stat().st_size <= 2_000 for p in log_dir.iterdir())
    assert "line 0399" in path.read_text()  # the newest lines are in the current file


def test_patient_names_and_ids_from_a_scanned_study_never_reach_the_log(log_dir, lidc_dir):
    from viewer.core.dicom.scan import scan

    path = logs.setup_file_logging(log_dir)
    catalog = scan([lidc_dir])
    patient = catalog.patients[0]
    assert patient.patient_id == "LIDC-IDRI-0001"
    log = logging.getLogger("viewer.test")
    # what a careless message could carry: the ID, the folder named after it, a traceback quoting it
    log.warning("opened %s for patient %s", lidc_dir, patient.patient_id)
    try:
        raise ValueError(f"cannot read {patient.patient_id.lower()}")
    except ValueError:
        log.exception("failed")
    text = path.read_text()
    assert "ValueError" in text and "Traceback" in text
    assert "lidc-idri-0001" not in text.lower()
    assert text.count(logs.REDACTED) == 3


def test_person_names_are_redacted_as_a_whole_and_by_part():
    logs.forget_patients()
    try:
        logs.register_patient("DOE^JOHN^A", "PID12345")
        assert logs.redact("DOE^JOHN^A / john doe / pid12345 / A") == "<patient> / <patient> <patient> / <patient> / A"
    finally:
        logs.forget_patients()
