"""faceset headshots: professional portraits of the person, drawn with their LoRA.

Importing this package is cheap: torch and diffusers load only when an image is drawn.

Example::

    from faceset.generate import HeadshotsConfig, headshots

    result = headshots(Path("jane/model/jane.safetensors"), HeadshotsConfig(preset="studio", count=8))
    print(result.best)          # jane/model/headshots/best/01-studio-005-seed4.jpg, ...
    print(result.page)          # jane/model/headshots/headshots.html
"""

from __future__ import annotations

from faceset.generate.config import HeadshotsConfig, Sampler, TemplateConfig
from faceset.generate.headshots import (
    Drawn,
    HeadshotsResult,
    OnImage,
    headshots,
    read_records,
    redraw,
)
from faceset.generate.lora_file import LoraError, LoraFile, read_lora
from faceset.generate.prompts import NEGATIVE, PRESETS, Preset, resolve_preset

__all__ = [
    "NEGATIVE",
    "PRESETS",
    "Drawn",
    "HeadshotsConfig",
    "HeadshotsResult",
    "LoraError",
    "LoraFile",
    "OnImage",
    "Preset",
    "Sampler",
    "TemplateConfig",
    "headshots",
    "read_lora",
    "read_records",
    "redraw",
    "resolve_preset",
]
