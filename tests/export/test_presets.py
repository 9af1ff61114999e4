"""Model presets and the faceset.toml written into the output."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from faceset import config
from faceset.errors import ConfigError
from faceset.export.presets import preset
from faceset.export.settings_file import write_settings


@pytest.mark.parametrize(
    ("name", "size"), [("sd15", 512), ("sdxl", 1024), ("flux1", 1024), ("flux2-klein", 1024)]
)
def test_preset_sets_size_and_model(name: str, size: int) -> None:
    settings = preset(name)

    cfg = config.load(None, settings, environ={})

    assert cfg.crop.size == size
    assert cfg.export.for_model == name


def test_preset_is_a_copy() -> None:
    preset("sdxl")["crop"]["size"] = 1

    assert preset("sdxl")["crop"]["size"] == 1024


def test_unknown_preset_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="sd21"):
        preset("sd21")


def test_settings_file_round_trips_through_config_load(tmp_path: Path) -> None:
    cfg = config.load(
        None,
        {"export": {"out": tmp_path / "jane", "trigger": "zqxv", "repeats": 4, "masks": False}},
        environ={},
    )

    path = write_settings(tmp_path, cfg.model_dump(mode="json"))

    assert path == tmp_path / "faceset.toml"
    assert config.load(path, environ={}) == cfg


def test_settings_file_drops_the_database_password(tmp_path: Path) -> None:
    path = write_settings(
        tmp_path,
        {
            "library": {
                "db": "mysql+pymysql://photoprism:s3cr%40t@db:3306/photoprism",
                "db_password": "s3cr@t",
                "db_password_file": "/run/secrets/pw",
                "sidecar": None,
            }
        },
    )

    text = path.read_text()
    assert "s3cr" not in text
    library = tomllib.loads(text)["library"]
    assert library == {
        "db": "mysql+pymysql://photoprism@db:3306/photoprism",
        "db_password_file": "/run/secrets/pw",
    }


def test_settings_file_is_rewritten_only_when_settings_change(tmp_path: Path) -> None:
    path = write_settings(tmp_path, {"export": {"trigger": "ohwx"}})
    stamp = path.stat().st_mtime_ns

    write_settings(tmp_path, {"export": {"trigger": "ohwx"}})

    assert path.stat().st_mtime_ns == stamp
