"""What one crop is asked to do: plain data, cheap to import and to send to a worker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from faceset.model import Face


@dataclass(frozen=True, slots=True)
class CropSettings:
    """How faces are framed and written."""

    size: int = 512
    """Output side in pixels."""
    face_ratio: float = 0.4
    """Face box side as a fraction of the output side (1.0 = the face box alone)."""
    pad: bool = False
    """Keep the framing near edges by padding outside the photo instead of shrinking the window."""
    upscale: bool = False
    """Write faces whose window is smaller than ``size`` (enlarged) instead of skipping them."""
    allow_changed: bool = False
    """Crop files whose content no longer matches the indexed hash."""
    avoid_others: bool = True
    """Shift or tighten the window so no other person's face centre is in it."""
    quality: int = 95
    allow_damaged: bool = False
    """Crop JPEGs whose data libjpeg warns is corrupt (the crop may show grey or smeared
    blocks; the manifest says so) instead of refusing them as ``corrupt``."""


@dataclass(frozen=True, slots=True)
class CropJob:
    face: Face
    source: Path
    """Absolute path of the marker's own file."""
    output: Path
    """Absolute path to write the image to."""
    image: str
    """``output`` relative to the output folder, for the outcome."""
    settings: CropSettings
