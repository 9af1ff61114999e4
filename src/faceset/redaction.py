"""No file faceset writes holds a password or token: one redaction for every writer.

Passwords and tokens are remembered where they are read (a database URL, the environment, a
password or token file); :func:`redact` then removes them from any value about to be written
(report.json, manifest, faceset.toml, TRAINING.md, eval and headshot records) and
:class:`RedactingFilter` from log records. Independently of what was remembered, a URL's
``user:password@`` loses its password and keys that name a secret lose their values.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
SECRET_KEY = re.compile(r"(password|passwd|secret|token|api_key|apikey)$", re.IGNORECASE)
"""Keys whose values are secrets; ``*_file`` keys hold paths to them and stay."""
_URL_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][\w+.-]*://)(?P<user>[^:@/\s]*):[^@/\s]*@")
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&](?:password|token|api_key|apikey|access_token)=)[^&#\s]*", re.I
)
_MIN_LENGTH = 4
"""Shorter values are not remembered: masking every "ab" in a report would garble it, and a
secret that short is guessed, not leaked."""

_known: set[str] = set()


def remember(secret: str | None) -> None:
    """Treat ``secret`` (a password or token just read) as something never to write."""
    if secret and len(secret) >= _MIN_LENGTH:
        _known.add(secret)


def forget_all() -> None:
    """Forget every remembered secret (tests, and long-lived processes between runs)."""
    _known.clear()


def redact_text(text: str) -> str:
    """Return ``text`` without URL passwords, secret query parameters or remembered secrets."""
    # The substring checks keep this cheap on the manifest's 100,000 lines (bench/plan.py).
    if "://" in text:
        text = _URL_PASSWORD.sub(r"\g<scheme>\g<user>@", text)
    if "=" in text:
        text = _QUERY_SECRET.sub(rf"\g<key>{MASK}", text)
    for secret in sorted(_known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact(value: Any) -> Any:
    """Return ``value`` (JSON-like: mappings, sequences, strings) with every secret removed:
    secret-named keys are dropped, strings are redacted with :func:`redact_text`."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact(v) for k, v in value.items() if not SECRET_KEY.search(str(k))}
    if isinstance(value, list | tuple):
        return (
            type(value)(redact(v) for v in value)
            if isinstance(value, tuple)
            else [redact(v) for v in value]
        )
    return value


class RedactingFilter(logging.Filter):
    """Rewrites each log record's message without secrets (installed on faceset's handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
