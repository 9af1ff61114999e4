"""Captions: trigger and class first, then what varies between photos and is known without a model.

A caption names what changes from photo to photo so the LoRA does not bake it into the person:
the decade (film, flash, phone cameras), indoors or outdoors, glasses. Identity traits that never
change, and age words, stay out: a caption saying "young" teaches the model that the trigger is
not young (https://felipefontoura.com/lab/clone-aged-fifteen-years).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from faceset.errors import ConfigError

PLACEHOLDERS: dict[str, str] = {
    "trigger": "the trigger token; the template must start with it",
    "class": "the class word, such as person, man or woman",
    "era": "the decade the photo was taken in, such as 1990s",
    "year": "the year the photo was taken in",
    "setting": "indoors or outdoors, where the photo's labels say so",
    "glasses": "wearing glasses or wearing sunglasses, where the photo's labels say so",
}
DEFAULT_TEMPLATE = "{trigger} {class}, {glasses}, {setting}, {era} photo"

# Label names (PhotoPrism labels or ones the select stage adds) that say where a photo was taken.
INDOOR_LABELS = frozenset({"indoor", "indoors", "inside", "interior", "room"})
OUTDOOR_LABELS = frozenset(
    {
        "outdoor", "outdoors", "outside", "exterior", "nature", "landscape", "beach", "mountain",
        "mountains", "forest", "park", "garden", "street", "snow", "sea", "lake", "sky",
    }
)  # fmt: skip
GLASSES_LABELS = frozenset({"glasses", "eyeglasses", "spectacles"})
SUNGLASSES_LABELS = frozenset({"sunglasses"})
# Class words that describe an age: the LoRA would tie the person to it.
AGE_WORDS = frozenset(
    {
        "baby", "toddler", "child", "kid", "boy", "girl", "teen", "teenager", "young", "old",
        "elderly", "senior", "adult", "grandma", "grandpa",
    }
)  # fmt: skip
# Years outside photography's span are placeholders (PhotoPrism's 0001-01-01), not dates.
FIRST_PHOTO_YEAR = 1826
LAST_PLAUSIBLE_YEAR = 2200


def template_fields(template: str) -> tuple[str, ...]:
    """Return the placeholders of a caption template; raise ConfigError if it is not valid."""
    if "\n" in template or "\r" in template:
        raise ConfigError("the caption template must be one line: trainers read the first line")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise ConfigError(f"caption template {template!r} is not valid: {e}") from None
    fields: list[str] = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            raise ConfigError(
                f"unknown placeholder {{{name}}} in the caption template; use {known}"
            )
        if spec or conversion:
            raise ConfigError(f"placeholder {{{name}}} in the caption template takes no format")
        fields.append(name)
    if not template.startswith("{trigger}"):
        raise ConfigError(
            "the caption template must start with {trigger}: trainers keep the first token"
            " fixed (keep_tokens) and the trigger must lead every caption"
        )
    return tuple(fields)


def render(template: str, values: Mapping[str, str]) -> str:
    """Return ``template`` filled in, one line; comma-separated parts whose placeholders are all
    empty are left out, so a photo without labels gets ``ohwx person, 1990s photo``."""
    parts: list[str] = []
    for segment in template.split(","):
        parsed = list(string.Formatter().parse(segment))
        names = [name for _, name, _, _ in parsed if name is not None]
        if names and not any(values[name] for name in names):
            continue
        text = "".join(
            lit + (values[name] if name is not None else "") for lit, name, _, _ in parsed
        )
        text = " ".join(text.split())
        if text:
            parts.append(text)
    return ", ".join(parts)


def caption(record: Mapping[str, Any], template: str, trigger: str, class_word: str) -> str:
    """Return the one-line caption of a manifest record."""
    return render(template, caption_values(record, trigger, class_word))


def caption_values(record: Mapping[str, Any], trigger: str, class_word: str) -> dict[str, str]:
    """Return the value of every placeholder for one record; empty where it is unknown."""
    year = year_taken(record.get("taken_at"))
    labels = record_labels(record)
    setting = ""
    if labels & INDOOR_LABELS and not labels & OUTDOOR_LABELS:
        setting = "indoors"
    elif labels & OUTDOOR_LABELS and not labels & INDOOR_LABELS:
        setting = "outdoors"
    glasses = ""
    if labels & SUNGLASSES_LABELS:
        glasses = "wearing sunglasses"
    elif labels & GLASSES_LABELS:
        glasses = "wearing glasses"
    return {
        "trigger": trigger,
        "class": class_word,
        "year": str(year) if year else "",
        "era": f"{year // 10 * 10}s" if year else "",
        "setting": setting,
        "glasses": glasses,
    }


def year_taken(taken_at: Any) -> int | None:
    """Return the year of an ISO 8601 capture time, or None when absent or a placeholder."""
    if not isinstance(taken_at, str) or not taken_at:
        return None
    try:
        year = datetime.fromisoformat(taken_at).year
    except ValueError:
        return None
    return year if FIRST_PHOTO_YEAR <= year <= LAST_PLAUSIBLE_YEAR else None


def record_labels(record: Mapping[str, Any]) -> frozenset[str]:
    """Return the record's optional ``labels``, lowercased; other types are ignored."""
    labels = record.get("labels")
    if not isinstance(labels, list):
        return frozenset()
    return frozenset(" ".join(v.split()).lower() for v in labels if isinstance(v, str))


def class_word_warnings(class_word: str) -> list[str]:
    """Return warnings about a class word that ties the person to an age."""
    ages = [w for w in class_word.lower().split() if w in AGE_WORDS]
    if ages:
        return [
            f"class word {class_word!r} names an age ({', '.join(ages)}): the LoRA ties the person"
            " to it; person, man or woman keep it out"
        ]
    return []
