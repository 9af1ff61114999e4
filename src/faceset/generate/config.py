"""Settings of ``faceset headshots``: the ``[headshots]`` section of faceset.toml.

Flags override these for one run. ``None`` means "decided from the LoRA and its base model"
(the size it was trained at, the family's usual guidance).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from faceset.generate.prompts import check_template, parse_aspect
from faceset.settings import Section

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
"""A template's name starts its image files' names: letters, digits, - and _."""

Sampler = Literal["dpmpp_2m_karras", "euler_a", "euler", "ddim", "model"]
"""Samplers by their A1111/ComfyUI names; ``model`` keeps the base model's own scheduler."""


class TemplateConfig(Section):
    """A user preset: ``[headshots.templates.NAME]`` in faceset.toml."""

    prompt: str
    """Prompt with {subject} (the trigger and class, e.g. "ohwx man"), or {trigger} and
    {class}; {variation} takes each of ``variations`` in turn."""
    negative: str | None = None
    """Negative prompt; None: the built-in one (blur, deformities, text, watermarks)."""
    variations: tuple[str, ...] = ()
    """Attire, backgrounds or lighting, one per image in turn, for {variation}."""
    aspect: str = "1:1"
    """Width:height of the images, e.g. 1:1 (profile photos) or 4:5 (portraits)."""

    @field_validator("prompt")
    @classmethod
    def _names_the_person(cls, value: str) -> str:
        return check_template(value)

    @field_validator("aspect")
    @classmethod
    def _aspect(cls, value: str) -> str:
        parse_aspect(value)
        return value


class HeadshotsConfig(Section):
    """``[headshots]``: what ``faceset headshots`` draws, and how."""

    preset: str = "linkedin"
    """Built-in preset (linkedin, studio, outdoor, office, casual, editorial) or a template
    of ``templates``."""
    count: int = Field(16, ge=1, le=1000)
    """Images per run."""
    seed: int = Field(0, ge=0)
    """Image i is drawn with seed + i, so any one can be drawn again alone."""
    steps: int = Field(30, ge=1, le=1000)
    """Denoising steps per image."""
    guidance: float | None = Field(None, ge=0, le=30)
    """Guidance; None: the family's own (7 SD 1.5, 6 SDXL, 4 klein and Qwen-Image, 3.5 FLUX.1)."""
    lora_weight: float = Field(1.0, ge=-4, le=4)
    """Strength of the LoRA: 1 as trained, lower to loosen the likeness for style."""
    vram: Literal["auto", "8", "12", "16", "24", "48"] | None = None
    """GPU memory (GiB, or auto) to draw a transformer family within; None: the budget the
    LoRA was trained with (training_config.json), else none."""
    sampler: Sampler = "dpmpp_2m_karras"
    """dpmpp_2m_karras (DPM++ 2M Karras), euler_a, euler, ddim, or model (the base model's own)."""
    width: int | None = Field(None, ge=64, le=4096)
    """Image width in pixels, a multiple of 8; None: the preset's aspect at the LoRA's training
    resolution (as many pixels as its square, sides a multiple of 8, or 16 for the
    transformers)."""
    height: int | None = Field(None, ge=64, le=4096)
    """Image height in pixels, a multiple of 8; None: as for width."""
    negative: str | None = None
    """Negative prompt for every preset; None: each preset's own."""
    detail: bool = True
    """Redraw each face at the model's native resolution and paste it back (the face detail
    pass); needs the local face model (faceset[identity])."""
    detail_strength: float = Field(0.4, gt=0, le=1)
    """Denoising strength of the detail pass: 0 keeps the face, 1 draws a new one."""
    upscale: float | None = Field(None, ge=1, le=8)
    """Enlarge the kept headshots this many times, and to at least ``upscale_side`` px on the
    long side, redrawn in tiles by the base model; None: no upscale."""
    upscale_strength: float = Field(0.25, gt=0, le=1)
    """Denoising strength of each upscale tile: low, to add detail, not change the picture."""
    upscale_side: int = Field(2048, ge=0, le=16384)
    """The least long side of an upscaled headshot, in pixels."""
    best: int | None = Field(None, ge=1, le=1000)
    """Keep the N most like the person's real photos, spread over the preset's variations;
    None: every one that shows the person."""
    templates: dict[str, TemplateConfig] = Field(default_factory=dict)
    """Your own presets, by name: ``[headshots.templates.beach]`` with prompt, negative and
    variations."""

    @field_validator("templates")
    @classmethod
    def _file_safe_names(cls, value: dict[str, TemplateConfig]) -> dict[str, TemplateConfig]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"template name {name!r}: use letters, digits, - and _")
        return value

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, value: int | None) -> int | None:
        # The VAE works on 8x8 pixel cells (SD 1.5 and SDXL).
        if value is not None and value % 8:
            raise ValueError("must be a multiple of 8")
        return value
