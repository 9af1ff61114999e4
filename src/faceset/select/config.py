"""Settings of which faces are used."""

from __future__ import annotations

from faceset.settings import Section


class SelectConfig(Section):
    confirmed_only: bool = False
    """Only faces the user named, not ones PhotoPrism matched automatically."""
    include_archived: bool = False
    """Also faces on archived photos."""
