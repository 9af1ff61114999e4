"""Settings of which faces are used and how the best training set is chosen."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import Field

from faceset.settings import Section


class SelectConfig(Section):
    confirmed_only: bool = False
    """Only faces the user named, not ones PhotoPrism matched automatically."""
    include_archived: bool = False
    """Also faces on archived photos."""
    best: int | None = Field(None, ge=1)
    """Choose this many faces for training (quality, identity, variety); None exports every face."""
    since: date | None = None
    """Leave out photos taken before this date."""
    years: float | None = Field(None, gt=0)
    """Leave out photos older than this many years."""
    recency_years: float = Field(3.0, gt=0)
    """Half-life of the preference for recent photos, in years (the person as they look today)."""
    identity_threshold: float | None = Field(None, gt=0, le=2)
    """Largest embedding distance to the person's centre; default: from the person's own spread."""
    blur_ratio: float = Field(0.35, ge=0, le=1)
    """Reject faces whose sharpness is below this fraction of the person's median sharpness."""
    burst_seconds: int = Field(10, ge=0)
    """Faces taken this close together are one burst: only the best is kept."""
    duplicate_distance: int = Field(8, ge=0, le=64)
    """Perceptual-hash bits under which two faces are near-duplicates whatever their dates."""
    per_day: int = Field(3, ge=1)
    """Most faces chosen from one calendar day (one event)."""
    holdout: float = Field(0.15, ge=0, le=0.5)
    """Share of confirmed recent faces (at least 5, other days) kept out of a best-N set to
    measure likeness later; 0 turns it off."""
    face_model: Literal["auto", "on", "off"] = "auto"
    """Local face detector and embedding (faceset[identity]) for faces the library has no
    embedding of: 'auto' uses it when installed."""


def oldest_allowed(cfg: SelectConfig, now: datetime) -> datetime | None:
    """Return the earliest capture time ``--since``/``--years`` allow, or None."""
    limits = []
    if cfg.since:
        limits.append(datetime(cfg.since.year, cfg.since.month, cfg.since.day))
    if cfg.years:
        limits.append(now - timedelta(days=365.25 * cfg.years))
    return max(limits) if limits else None
