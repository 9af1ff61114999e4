"""Headshot presets: prompt templates naming the person by the LoRA's trigger and class.

A preset is attire, lighting, background, lens and framing in words, a negative prompt, and a
few variations taken in turn so that sixteen images are not sixteen takes of one photo. The
person is ``{subject}`` (``ohwx man``), or ``{trigger}`` and ``{class}`` apart. No preset names an
age: age words in prompts age the face (../shared/reference/quality.md section 4).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from faceset.errors import ConfigError

if TYPE_CHECKING:  # config.py imports check_template from here
    from faceset.generate.config import TemplateConfig

PLACEHOLDERS = frozenset({"subject", "trigger", "class", "variation"})

NEGATIVE = (
    "blurry, out of focus, lowres, jpeg artifacts, deformed, disfigured, bad anatomy, extra"
    " fingers, cross-eyed, asymmetric eyes, cartoon, painting, illustration, 3d render, text,"
    " watermark, logo, signature, frame"
)
"""The negative prompt of every built-in preset: defects and non-photographic styles."""


@dataclass(frozen=True, slots=True)
class Preset:
    """A headshot style: a prompt template, its negative prompt and variations taken in turn."""

    name: str
    prompt: str
    negative: str = NEGATIVE
    variations: tuple[str, ...] = ()
    aspect: tuple[int, int] = (1, 1)
    """Width to height: 1:1 for profile photos (LinkedIn crops them round), 4:5 for portraits."""

    def variation_of(self, index: int) -> int:
        """Return which variation image ``index`` (0-based) wears: 0 when there are none."""
        return index % len(self.variations) if self.variations else 0

    def prompt_for(self, index: int, subject: str) -> str:
        """Return the prompt of image ``index`` (0-based) of ``subject`` ("trigger class")."""
        variation = self.variations[index % len(self.variations)] if self.variations else ""
        return fill(self.prompt, subject, variation)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "linkedin",
            "professional corporate headshot photo of {subject}, {variation}, head and shoulders,"
            " looking at the camera, soft even studio lighting, plain light grey background,"
            " 85mm lens, f/2.8, sharp focus, natural skin texture",
            variations=(
                "wearing a navy suit and white shirt",
                "wearing a charcoal blazer over a light blue shirt",
                "wearing a dark knit sweater",
                "wearing a white blouse and dark jacket",
            ),
        ),
        Preset(
            "studio",
            "studio portrait photo of {subject}, {variation}, head and shoulders, Rembrandt"
            " lighting, softbox key light, dark seamless backdrop, 105mm lens, f/4, sharp focus,"
            " natural skin texture",
            variations=(
                "wearing a black turtleneck",
                "wearing a white shirt",
                "wearing a grey suit jacket",
                "wearing a denim shirt",
            ),
            aspect=(4, 5),
        ),
        Preset(
            "outdoor",
            "portrait photo of {subject} outdoors, {variation}, head and shoulders, golden hour"
            " natural light, softly blurred background, 85mm lens, f/1.8, bokeh, sharp focus on"
            " the eyes",
            variations=(
                "in a city park with green trees behind",
                "on a city street with buildings behind",
                "by the sea with the horizon behind",
                "in a garden with flowers behind",
            ),
            aspect=(4, 5),
        ),
        Preset(
            "office",
            "business portrait photo of {subject} in a modern office, {variation}, upper body,"
            " window light, blurred office interior behind, 50mm lens, f/2, sharp focus",
            variations=(
                "wearing a suit, arms crossed",
                "wearing a smart casual shirt, smiling",
                "wearing a blazer, standing by a window",
                "wearing a sweater, seated at a desk",
            ),
            aspect=(4, 5),
        ),
        Preset(
            "casual",
            "candid portrait photo of {subject}, {variation}, head and shoulders, relaxed natural"
            " smile, soft daylight, 35mm lens, f/2, sharp focus",
            variations=(
                "wearing a t-shirt in a cafe",
                "wearing a hoodie outdoors",
                "wearing a linen shirt on a terrace",
                "wearing a jumper at home",
            ),
        ),
        Preset(
            "editorial",
            "black and white editorial portrait photo of {subject}, {variation}, head and"
            " shoulders, dramatic side light, high contrast, film grain, 85mm lens, sharp focus",
            variations=(
                "wearing a dark coat",
                "wearing a white shirt",
                "wearing a black sweater",
                "wearing a suit without a tie",
            ),
            aspect=(4, 5),
        ),
    )
}


def parse_aspect(text: str) -> tuple[int, int]:
    """Return (width, height) of an aspect ratio written ``W:H`` (``4:5``); ValueError if not."""
    width, colon, height = text.partition(":")
    if not (colon and width.isdigit() and height.isdigit() and int(width) and int(height)):
        raise ValueError(f"aspect {text!r}: write width:height, e.g. 1:1 or 4:5")
    w, h = int(width), int(height)
    if not 1 / 3 <= w / h <= 3:
        raise ValueError(f"aspect {text!r}: between 1:3 and 3:1")
    return (w, h)


def check_template(template: str) -> str:
    """Return ``template`` if its placeholders are known and it names the person.

    Raises ValueError (pydantic's validator error) naming the problem.
    """
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as e:  # an unpaired { or }
        raise ValueError(f"template {template!r} is not a valid template: {e}") from None
    unknown = names - PLACEHOLDERS
    if unknown:
        raise ValueError(
            f"unknown placeholder {{{sorted(unknown)[0]}}} in {template!r}; use {{subject}}"
            " (trigger and class), {trigger}, {class} or {variation}"
        )
    if not names & {"subject", "trigger"}:
        # Without the trigger the LoRA's person never appears: the base model draws a stranger.
        raise ValueError(f"template {template!r} must contain {{subject}} or {{trigger}}")
    return template


def fill(template: str, subject: str, variation: str = "") -> str:
    """Return ``template`` with the person and variation filled in; empty parts dropped.

    ``subject`` is the trigger and class as trained (``ohwx man``): its first word is the trigger,
    the rest the class.
    """
    trigger, _, class_word = subject.partition(" ")
    text = template.format_map(
        {"subject": subject, "trigger": trigger, "class": class_word, "variation": variation}
    )
    # An empty {variation} would leave ", ," behind.
    parts = [p.strip() for p in text.split(",")]
    return ", ".join(p for p in parts if p)


def resolve_preset(name: str, templates: Mapping[str, TemplateConfig]) -> Preset:
    """Return the preset called ``name``: a user template first, else a built-in one.

    Raises ConfigError naming the presets there are.
    """
    user = templates.get(name)
    if user is not None:
        negative = NEGATIVE if user.negative is None else user.negative
        return Preset(name, user.prompt, negative, user.variations, parse_aspect(user.aspect))
    if name in PRESETS:
        return PRESETS[name]
    known = ", ".join([*PRESETS, *templates])
    raise ConfigError(f"no preset named {name!r}; presets: {known}")
