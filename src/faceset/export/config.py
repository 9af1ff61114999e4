"""Settings of the output folder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from faceset.crop.pool import default_workers
from faceset.errors import ConfigError
from faceset.export.captions import DEFAULT_TEMPLATE, template_fields
from faceset.export.presets import model_name
from faceset.settings import Section

# A word or a few: it names a folder (``img/15_ohwx person``) and leads every caption, so no
# path separators, commas (caption tag separators) or control characters.
_WORDS = re.compile(r"^[^\W_][\w'.-]*(?: [\w'.-]+)*$")


class ExportConfig(Section):
    out: Path | None = None
    """Output folder."""
    workers: int | None = Field(None, ge=1)
    """Processes cropping in parallel; default one per core."""
    layout: Literal["kohya", "diffusers", "all", "none"] = "all"
    """Trainer folders to write: kohya (also read by the bmaltais GUI, ai-toolkit and OneTrainer),
    diffusers, all, or none (the crops, manifest and report only)."""
    for_model: (
        Literal["sd15", "sdxl", "flux2-klein", "zimage", "zimage-turbo", "qwen-image", "flux1"]
        | None
    ) = None
    """Model the set is for: sd15 (512 px), sdxl, flux2-klein, zimage, zimage-turbo, qwen-image or
    flux1 (1024 px; flux is flux1); sets the crop size too, and for the transformers adds an
    ai-toolkit job and a musubi-tuner dataset config."""
    trigger: str = "ohwx"
    """Rare token that names the person in every caption; best one CLIP token."""
    class_word: str = "person"
    """Class the person belongs to, after the trigger: person, man, woman."""
    repeats: int | None = Field(None, ge=1, le=1000)
    """kohya repeats per epoch; default about 300 image views per epoch."""
    caption_template: str = DEFAULT_TEMPLATE
    """Caption of each image: {trigger} first, then {class}, {era}, {year}, {setting},
    {glasses}; parts whose placeholders are all unknown are left out."""
    masks: bool = True
    """Write loss masks: head and shoulders white, the rest mask_floor, other faces black."""
    mask_floor: float = Field(0.2, ge=0.0, lt=1.0)
    """Loss weight outside the person's head and shoulders, 0-1."""

    def worker_count(self) -> int:
        """Return ``workers``, or one per core this process may use when unset."""
        return self.workers or default_workers()

    @field_validator("for_model", mode="before")
    @classmethod
    def _old_model_names(cls, value: object) -> object:
        return model_name(value) if isinstance(value, str) else value

    @field_validator("trigger", "class_word")
    @classmethod
    def _one_line_of_words(cls, value: str) -> str:
        if not _WORDS.match(value):
            raise ValueError(
                "use letters, digits, - ' . and single spaces, starting with a letter or digit"
            )
        return value

    @field_validator("caption_template")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        try:
            template_fields(value)
        except ConfigError as e:
            raise ValueError(str(e)) from None
        return value
