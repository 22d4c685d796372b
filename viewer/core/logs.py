"""The app's log file: rotating, in the user log folder, and free of patient names and IDs.

:func:`setup_file_logging` adds one :class:`logging.handlers.RotatingFileHandler` (``hounsfield.log``, 1 MB, five
old files kept) to the root logger. Its formatter passes every line - message, arguments and traceback alike -
through :func:`redact`, which replaces each patient name and ID the scanner has seen in this process
(:func:`register_patient`, called when a catalog is built) by ``<patient>``. Code should not log patient data in the
first place; this catches what slips through (a folder named after the patient in a path, a pydicom message quoting
a value).
"""
from __future__ import annotations

import logging
import logging.handlers
import re
import threading
from collections.abc import Iterable
from pathlib import Path

LOG_NAME = "hounsfield.log"
MAX_BYTES = 1_000_000
BACKUP_COUNT = 5
REDACTED = "<patient>"
#: Parts of a PersonName shorter than this are not redacted on their own (an initial would blank every "J").
MIN_PART = 3
FORMAT = "%(asctime)s %(levelname)-7s %(threadName)s %(name)s: %(message)s"

_lock = threading.Lock()
_sensitive: set[str] = set()
_pattern: re.Pattern | None = None


def _variants(value: str) -> set[str]:
    """``DOE^JOHN`` -> itself, ``DOE JOHN``, ``DOE``, ``JOHN`` (components of a DICOM PersonName)."""
    value = str(value or "").strip()
    if not value:
        return set()
    found = {value, value.replace("^", " ").strip()}
    found |= {part.strip() for part in re.split(r"[\^=]", value) if len(part.strip()) >= MIN_PART}
    return {v for v in found if len(v) >= MIN_PART or v == value}


def register_patient(*values: str | None) -> None:
    """Remember patient names / IDs so the log never shows them (see the module doc)."""
    global _pattern
    new = set().union(*(_variants(v) for v in values if v))
    with _lock:
        if new <= _sensitive:
            return
        _sensitive.update(new)
        ordered = sorted(_sensitive, key=len, reverse=True)  # longest first: "DOE^JOHN" before "DOE"
        _pattern = re.compile("|".join(re.escape(v) for v in ordered), re.IGNORECASE)


def register_patients(pairs: Iterable[tuple[str | None, str | None]]) -> None:
    """:func:`register_patient` for each (ID, name)."""
    for patient_id, name in pairs:
        register_patient(patient_id, name)


def redact(text: str) -> str:
    """``text`` with every registered patient name / ID replaced by ``<patient>``."""
    pattern = _pattern
    return pattern.sub(REDACTED, text) if pattern is not None and text else text


def forget_patients() -> None:
    """Clear the registered values (tests)."""
    global _pattern
    with _lock:
        _sensitive.clear()
        _pattern = None


class RedactingFormatter(logging.Formatter):
    """A formatter whose whole output (traceback included) goes through :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _our_handler(logger: logging.Logger) -> logging.handlers.RotatingFileHandler | None:
    for handler in logger.handlers:
        if getattr(handler, "hounsfield_log", False):
            return handler  # type: ignore[return-value]
    return None


def setup_file_logging(folder: Path | None = None, level: int = logging.INFO) -> Path:
    """Log to ``<folder>/hounsfield.log`` (default :func:`viewer.core.paths.user_log_dir`), rotating at
    :data:`MAX_BYTES` with :data:`BACKUP_COUNT` old files; returns the file's path. Calling it again changes nothing
    unless ``folder`` differs (then the handler moves)."""
    if folder is None:
        from viewer.core.paths import user_log_dir

        folder = user_log_dir()
    folder = Path(folder)
    path = folder / LOG_NAME
    root = logging.getLogger()
    existing = _our_handler(root)
    if existing is not None:
        if Path(existing.baseFilename) == path.resolve():
            return path
        root.removeHandler(existing)
        existing.close()
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT,
                                                   encoding="utf-8", delay=True)
    handler.hounsfield_log = True  # type: ignore[attr-defined]
    handler.setFormatter(RedactingFormatter(FORMAT))
    handler.setLevel(level)
    root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    # pynetdicom logs whole request/response identifiers (patient names, IDs) at INFO and DEBUG; dicomweb-client
    # and urllib3 log each request's URL, query string (a patient name or ID searched for) included, at DEBUG
    for name in ("pynetdicom", "dicomweb_client", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return path


def log_file() -> Path | None:
    """The file :func:`setup_file_logging` writes to, or None when it was not called."""
    handler = _our_handler(logging.getLogger())
    return Path(handler.baseFilename) if handler is not None else None


def stop_file_logging() -> None:
    """Remove and close the handler (tests)."""
    root = logging.getLogger()
    handler = _our_handler(root)
    if handler is not None:
        root.removeHandler(handler)
        handler.close()
