"""``report.json``: what a run found, wrote, kept, skipped and why."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from faceset import __version__
from faceset.model import Outcome, Person, Summary, root_name
from faceset.redaction import redact, redact_text

REPORT = "report.json"


def problem(outcome: Outcome) -> dict[str, Any]:
    """Return the report entry of a face that produced no image."""
    face = outcome.face
    return {
        "marker_uid": face.marker_uid,
        "photo_uid": face.photo_uid,
        "source": {"root": root_name(face.root), "path": face.file_name},
        "status": outcome.status.value,
        "reason": outcome.reason.value if outcome.reason else None,
        # An error's words may carry a URL with its credentials (a download's, a database's).
        "detail": redact_text(outcome.detail) if outcome.detail else outcome.detail,
    }


def write_report(
    out: Path,
    person: Person,
    summary: Summary,
    problems: list[dict[str, Any]],
    settings: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the run's ``report.json`` atomically and return its path."""
    data = {
        "faceset": __version__,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "person": {"uid": person.uid, "name": person.name},
        "counts": {
            "found": summary.found,
            "images": summary.images,
            "written": summary.written,
            "kept": summary.kept,
            "removed": summary.removed,
            "skipped": summary.skipped,
            "failed": summary.failed,
        },
        **redact(extra or {}),
        "problems": problems,
        "settings": redact(settings),
    }
    path = out / REPORT
    tmp = out / f".{REPORT}.tmp"
    # orjson: the standard encoder indents in pure Python, seconds for 100,000 problems.
    options = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
    tmp.write_bytes(orjson.dumps(data, default=str, option=options))
    os.replace(tmp, path)
    return path
