"""Settings of the output folder."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from faceset.settings import Section


class ExportConfig(Section):
    out: Path | None = None
    """Output folder."""
    workers: int | None = Field(None, ge=1)
    """Processes cropping in parallel; default one per core."""
