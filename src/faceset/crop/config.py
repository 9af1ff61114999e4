"""Settings of how faces are framed and written."""

from __future__ import annotations

from pydantic import Field

from faceset.crop.job import CropSettings
from faceset.settings import Section


class CropConfig(Section):
    size: int = Field(512, ge=64, le=4096)
    """Output side in pixels."""
    face_ratio: float = Field(0.4, gt=0.05, le=1.0)
    """Face box side as a fraction of the output side; 0.35-0.45 is head and shoulders."""
    tight: bool = False
    """The face box alone (same as face_ratio = 1)."""
    pad: bool = False
    """Keep the framing at photo edges by padding instead of tightening."""
    upscale: bool = False
    """Enlarge faces too small for the size instead of skipping them."""
    allow_changed: bool = False
    """Crop files whose content changed since PhotoPrism indexed them."""
    allow_damaged: bool = False
    """Crop JPEGs whose data libjpeg reports corrupt (with a warning in the manifest) instead
    of skipping them as corrupt."""
    avoid_others: bool = True
    """Shift or tighten the window so no other person's face centre falls inside it."""
    quality: int = Field(95, ge=50, le=100)
    """JPEG quality of the written images."""

    def settings(self) -> CropSettings:
        return CropSettings(
            size=self.size,
            face_ratio=1.0 if self.tight else self.face_ratio,
            pad=self.pad,
            upscale=self.upscale,
            allow_changed=self.allow_changed,
            allow_damaged=self.allow_damaged,
            avoid_others=self.avoid_others,
            quality=self.quality,
        )
