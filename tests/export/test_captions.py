"""Captions: trigger and class first, then what varies and is known without a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faceset import config
from faceset.errors import ConfigError
from faceset.export.captions import (
    AGE_WORDS,
    DEFAULT_TEMPLATE,
    caption,
    class_word_warnings,
    template_fields,
)


def cap(template: str = DEFAULT_TEMPLATE, **record: Any) -> str:
    return caption(record, template, "ohwx", "person")


def test_default_caption_names_the_decade() -> None:
    assert cap(taken_at="1994-07-02T10:00:00Z") == "ohwx person, 1990s photo"


def test_caption_without_anything_known_is_trigger_and_class() -> None:
    assert cap(taken_at=None) == "ohwx person"


def test_labels_give_setting_and_glasses() -> None:
    text = cap(taken_at="2021-01-01T00:00:00", labels=["Outdoor", "glasses", "portrait"])

    assert text == "ohwx person, wearing glasses, outdoors, 2020s photo"


def test_sunglasses_win_over_glasses() -> None:
    assert cap(labels=["glasses", "sunglasses"]) == "ohwx person, wearing sunglasses"


def test_conflicting_setting_labels_say_nothing() -> None:
    assert cap(labels=["indoor", "outdoor"]) == "ohwx person"


def test_placeholder_date_of_year_one_is_unknown() -> None:
    assert cap(taken_at="0001-01-01T00:00:00Z") == "ohwx person"


def test_custom_template_with_year() -> None:
    assert cap("{trigger} {class} in {year}", taken_at="2003-05-05") == "ohwx person in 2003"


def test_empty_placeholder_drops_its_whole_part() -> None:
    assert cap("{trigger} {class}, photo from {year}, {setting}") == "ohwx person"


def test_captions_hold_no_age_words() -> None:
    text = cap(taken_at="1975-01-01", labels=["indoor", "glasses", "child", "baby"])

    assert not set(text.replace(",", " ").split()) & AGE_WORDS


def test_unknown_placeholder_is_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown placeholder \{age\}"):
        template_fields("{trigger} {class}, {age}")


def test_template_must_start_with_the_trigger() -> None:
    with pytest.raises(ConfigError, match="must start with"):
        template_fields("photo of {trigger} {class}")


def test_template_must_be_one_line() -> None:
    with pytest.raises(ConfigError, match="one line"):
        template_fields("{trigger} {class}\n{era}")


def test_template_placeholders_take_no_format() -> None:
    with pytest.raises(ConfigError, match="no format"):
        template_fields("{trigger} {year:>8}")


def test_broken_braces_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid"):
        template_fields("{trigger} {class")


def test_bad_template_in_settings_is_a_config_error_naming_setting_and_placeholder(
    tmp_path: Path,
) -> None:
    toml = tmp_path / "faceset.toml"
    toml.write_text('[export]\ncaption_template = "{trigger}, {weather}"\n')

    with pytest.raises(ConfigError, match=r"export\.caption_template.*\{weather\}"):
        config.load(toml, {}, environ={})
    with pytest.raises(ConfigError, match=r"^--caption-template: .*\{weather\}"):
        config.load(None, {"export": {"caption_template": "{trigger}, {weather}"}}, environ={})


def test_class_word_naming_an_age_warns() -> None:
    assert class_word_warnings("boy")
    assert not class_word_warnings("man")
