"""Presets and templates: the person named by trigger and class, variations, user templates."""

from __future__ import annotations

import re

import pytest

from faceset.errors import ConfigError
from faceset.generate import PRESETS, HeadshotsConfig, resolve_preset
from faceset.generate.prompts import fill


def test_every_preset_names_the_person_and_varies_between_images() -> None:
    for preset in PRESETS.values():
        prompts = [preset.prompt_for(i, "ohwx woman") for i in range(4)]

        assert all(p.count("ohwx woman") == 1 for p in prompts), preset.name
        assert len(set(prompts)) == 4, preset.name
        assert preset.prompt_for(4, "ohwx woman") == prompts[0]  # variations cycle
        assert "blurry" in preset.negative


def test_no_preset_names_an_age() -> None:
    # Age words in prompts age the face (quality.md section 4).
    ages = re.compile(r"\b(young|old|elderly|aged|age|teen|child|\d+ ?(years|yo))\b", re.I)
    for preset in PRESETS.values():
        assert not ages.search(preset.prompt + " ".join(preset.variations)), preset.name


def test_trigger_and_class_fill_apart_and_empty_parts_drop_out() -> None:
    assert fill("{trigger} as a {class}, {variation}, studio", "ohwx man") == (
        "ohwx as a man, studio"
    )


def test_a_user_template_from_the_settings_file_is_a_preset() -> None:
    settings = HeadshotsConfig.model_validate(
        {
            "preset": "beach",
            "templates": {
                "beach": {"prompt": "photo of {subject} on a beach, {variation}",
                          "variations": ["sunset", "noon"]},
            },
        }
    )  # fmt: skip

    preset = resolve_preset(settings.preset, settings.templates)

    assert preset.prompt_for(1, "sks person") == "photo of sks person on a beach, noon"
    assert preset.negative == PRESETS["linkedin"].negative


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("photo of {name}", "unknown placeholder {name}"),
        ("photo of a man", "must contain {subject} or {trigger}"),
        ("photo of {subject", "not a valid template"),
    ],
)
def test_a_bad_template_is_refused_with_the_reason(prompt: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        HeadshotsConfig.model_validate({"templates": {"x": {"prompt": prompt}}})


def test_an_unknown_preset_names_the_ones_there_are() -> None:
    with pytest.raises(ConfigError, match="no preset named 'passport'; presets: linkedin, studio"):
        resolve_preset("passport", {})
