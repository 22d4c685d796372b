"""Damaged DICOM objects refused in words: what a parser runs into becomes the reader's ``ValueError``.

highdicom and pydicom meet a damaged SEG, SR or RT Structure Set with whatever their parse runs into
(``AttributeError``, ``KeyError``, ``OSError: No tag to read``, ``RecursionError`` on deep nesting, SQLite's
``IntegrityError``, a bare ``ValueError`` such as "UID is not a transfer syntax."). Readers of untrusted objects
wrap their parse in :func:`refusing_damage`, so the user reads "the SEG is damaged or incomplete (...)" instead of
a traceback (bench/fuzz.py --seg and --reports).
"""
from __future__ import annotations

import contextlib
import sqlite3
import struct
from collections.abc import Iterator

from pydicom.errors import BytesLengthException, InvalidDicomError

# What a parser of a damaged file raises: pydicom's own two errors and struct.error on values cut short;
# RecursionError is a RuntimeError; highdicom indexes a SEG's frames in an in-memory SQLite table, which refuses what
# it cannot store (a NaN orientation: IntegrityError). A missing or unreadable file (FileNotFoundError,
# PermissionError) is not damage: it passes as the OSError it is.
PARSE_ERRORS = (AttributeError, KeyError, IndexError, TypeError, RuntimeError, NotImplementedError, OSError,
                struct.error, InvalidDicomError, BytesLengthException, sqlite3.Error)


class Refusal(ValueError):
    """A reader's own refusal, already in words (a SEG on another pixel grid): :func:`refusing_damage` lets it pass
    as it is, where any other ``ValueError`` of the block is the parser's and gets wrapped."""


@contextlib.contextmanager
def refusing_damage(what: str) -> Iterator[None]:
    """Turn a parse failure inside the block into ``ValueError("<what> is damaged or incomplete (<why>)")``;
    ``why`` is the first line of the parser's message, cut short. A :class:`Refusal` passes unchanged."""
    try:
        yield
    except (FileNotFoundError, PermissionError, IsADirectoryError, Refusal):
        raise
    except ValueError as error:
        raise ValueError(f"{what} is damaged or incomplete ({_first_line(error)})") from None
    except PARSE_ERRORS as error:
        raise ValueError(f"{what} is damaged or incomplete ({damage_reason(error)})") from None


def damage_reason(error: BaseException) -> str:
    """What a parser's exception says of the file, in a line: its type and the first line of its message."""
    if isinstance(error, RecursionError):
        return "its sequences nest too deeply to read"
    name = "struct.error" if isinstance(error, struct.error) else type(error).__name__
    first = _first_line(error)
    return f"{name}: {first}" if first and not isinstance(error, ValueError) else first or name


def _first_line(error: BaseException) -> str:
    lines = str(error).splitlines()
    return lines[0][:160] if lines else ""
