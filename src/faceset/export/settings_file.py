"""``faceset.toml`` in the output folder: every setting of the run that wrote it.

``faceset export --config <out>/faceset.toml --out elsewhere`` reproduces the set from any folder:
paths (and SQLite URLs) are written absolute and the person is recorded by UID and name. Flags
given with it still win.
Secrets stay out: a password inside a database URL is removed (faceset reads it from
``PHOTOPRISM_DATABASE_PASSWORD``, ``FACESET_DB_PASSWORD`` or a password file instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from pathlib import Path, PurePath
from typing import Any

import tomli_w
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from faceset.export.files import write_bytes
from faceset.redaction import SECRET_KEY, redact_text

SETTINGS_FILE = "faceset.toml"
HEADER = (
    "# Settings of the faceset export that wrote this folder.\n"
    "# faceset export --config faceset.toml --out DIR reproduces it; flags given with it win.\n"
)


def write_settings(out: Path, config: Mapping[str, Any]) -> Path:
    """Write ``config`` (the resolved settings, one table per section) to ``out/faceset.toml``
    without secrets or unset values, atomically; return its path."""
    path = out / SETTINGS_FILE
    write_bytes(path, (HEADER + tomli_w.dumps(_plain(config))).encode("utf-8"))
    return path


def _plain(data: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``data`` as TOML can hold it: None left out (TOML has no null), paths and enums as
    strings, tuples as lists, secrets removed."""
    plain: dict[str, Any] = {}
    for key, value in data.items():
        if value is None or SECRET_KEY.search(str(key)):
            continue
        plain[str(key)] = _absolute_url(value) if key == "db" else _value(value)
    return plain


def _absolute_url(url: Any) -> Any:
    """Return an SQLite URL (or bare path) with its file made absolute; other URLs as they are.

    Relative paths mean the folder the export ran in; the file is read from anywhere else."""
    if not isinstance(url, str):
        return _value(url)
    if "://" not in url:
        return str(Path(url).expanduser().absolute())
    try:
        parsed = make_url(url)
    except ArgumentError:
        return _value(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        absolute = Path(parsed.database).expanduser().absolute()
        return _value(parsed.set(database=str(absolute)).render_as_string(hide_password=True))
    return _value(url)


def _value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _plain(value)
    if isinstance(value, list | tuple | set | frozenset):
        items = [_value(v) for v in value if v is not None]
        return sorted(items) if isinstance(value, set | frozenset) else items
    if isinstance(value, Enum):
        return _value(value.value)
    if isinstance(value, Path):
        return str(value.expanduser().absolute())
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, str):
        return redact_text(value)
    return value
