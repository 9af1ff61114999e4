"""Normalise what database drivers return: PyMySQL gives bytes for VARBINARY, SQLite numbers."""

from __future__ import annotations

import math
import os
import re
from datetime import UTC, datetime
from typing import Any


def text(value: Any) -> str:
    """Return a column value as text; bytes decode like file names (undecodable bytes escaped)."""
    if type(value) is str:  # the common case first: this runs for every column of every row
        return value
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return os.fsdecode(bytes(value))
    return str(value)


def integer(value: Any, default: int = 0) -> int:
    if type(value) is int:
        return value
    if value is None or value == b"" or value == "":
        return default
    try:
        return int(float(text(value)))
    except ValueError:
        return default


def real(value: Any, default: float = 0.0) -> float:
    if type(value) is float:
        return value
    if value is None or value == b"" or value == "":
        return default
    try:
        return float(text(value))
    except ValueError:
        return default


def coordinate(value: Any) -> float:
    """Return a face box coordinate; NaN when it is missing or not a number, so the box is
    refused as ``bad_box`` rather than read as 0 (a crop of the wrong region)."""
    return real(value, math.nan)


def flag(value: Any) -> bool:
    """Return a boolean column: ints from both drivers, sometimes 'true'/'false' text."""
    if isinstance(value, bytes | str):
        return text(value).strip().lower() in ("1", "true", "t", "yes")
    return bool(value)


_FRACTION = re.compile(r"(\.\d{6})\d+")


def timestamp(value: Any) -> datetime | None:
    """Return a DATETIME column as naive UTC: datetimes from MariaDB, text from SQLite."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return _naive_utc(value)
    raw = text(value).strip()
    if not raw or raw.startswith("0000"):
        return None
    # go-sqlite3 writes nanoseconds and an offset: '2006-01-02 15:04:05.999999999-07:00'.
    raw = raw.replace("T", " ").replace("Z", "+00:00")
    if "." in raw:
        raw = _FRACTION.sub(r"\1", raw)
    try:
        return _naive_utc(datetime.fromisoformat(raw))
    except ValueError:
        return None


def _naive_utc(value: datetime) -> datetime:
    # PhotoPrism stores UTC; mixing aware and naive values would make sorting raise.
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
