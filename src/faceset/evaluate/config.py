"""Settings of ``faceset eval``: the ``[eval]`` section of faceset.toml.

The prompt set and seeds are fixed so that checkpoints, and runs, compare like for like
(../shared/reference/quality.md section 3, step 3). The picking rules are project choices, not
field standards; eval.json and eval.html state them with the result.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from faceset.generate.config import Sampler
from faceset.generate.prompts import check_template
from faceset.settings import Section

PROMPTS = (
    "professional headshot photo of {subject}, studio lighting, plain grey background",
    "photo of {subject} wearing a dark suit, office background",
    "photo of {subject} outdoors in a park, natural light",
    "close-up portrait photo of {subject} smiling",
    "photo of {subject} in a red sweater on a city street",
    "black and white portrait photo of {subject}",
)
"""Headshots plus edits of clothing, background, expression and colour; no age words."""


class EvalConfig(Section):
    """``[eval]``: how ``faceset eval`` draws and judges each checkpoint."""

    prompts: tuple[str, ...] = PROMPTS
    """Prompts drawn for every checkpoint; {subject} is the trigger and class."""
    seeds: tuple[int, ...] = (1, 2, 3, 4)
    """Every prompt is drawn once with each seed."""
    steps: int = Field(30, ge=1, le=1000)
    """Denoising steps per image."""
    guidance: float | None = Field(None, ge=0, le=30)
    """Guidance; None: the family's own (7 SD 1.5, 6 SDXL, 4 klein and Qwen-Image, 3.5 FLUX.1)."""
    vram: Literal["auto", "8", "12", "16", "24", "48"] | None = None
    """GPU memory (GiB, or auto) to draw a transformer family within; None: the budget the
    LoRA was trained with (training_config.json), else none."""
    sampler: Sampler = "dpmpp_2m_karras"
    """dpmpp_2m_karras, euler_a, euler, ddim, or model (the base model's own scheduler)."""
    negative: str | None = None
    """Negative prompt; None: the headshot presets' one."""
    lora_weight: float = Field(1.0, ge=-4, le=4)
    """Strength of the LoRA while evaluating."""
    resolution: int | None = Field(None, ge=64, le=4096)
    """Side of the square outputs in pixels; None: the LoRA's training resolution."""
    base_model_row: bool = True
    """Also draw the prompts with the base model alone: the score of a stranger, for scale."""
    min_faces: float = Field(0.5, ge=0, le=1)
    """Share of a checkpoint's outputs that must show a face for it to be picked."""
    max_copying: float = Field(0.5, ge=0)
    """How far a checkpoint's Paste may go from a real new photo's (0) towards a verbatim copy
    of a training photo's (1) and still be picked."""

    @field_validator("prompts")
    @classmethod
    def _prompts_name_the_person(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one prompt is needed")
        return tuple(check_template(p) for p in value)

    @field_validator("seeds")
    @classmethod
    def _some_seeds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("give at least one seed, each once")
        return value

    @field_validator("resolution")
    @classmethod
    def _multiple_of_8(cls, value: int | None) -> int | None:
        if value is not None and value % 8:
            raise ValueError("must be a multiple of 8")
        return value
