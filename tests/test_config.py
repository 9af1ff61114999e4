"""Settings from PhotoPrism's own variables, a .env file, faceset.toml and flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceset import config
from faceset.errors import ConfigError


def test_mariadb_settings_become_a_url_with_the_password_from_the_environment() -> None:
    env = {
        "PHOTOPRISM_DATABASE_DRIVER": "mysql",
        "PHOTOPRISM_DATABASE_SERVER": "mariadb:3306",
        "PHOTOPRISM_DATABASE_NAME": "photoprism",
        "PHOTOPRISM_DATABASE_USER": "photoprism",
        "PHOTOPRISM_DATABASE_PASSWORD": "p@ss:word",
    }

    cfg = config.load(None, environ=env)

    assert cfg.library.db == "mysql+pymysql://photoprism:p%40ss%3Aword@mariadb:3306/photoprism"


def test_go_mysql_dsn_and_unix_socket_are_understood() -> None:
    dsn = {
        "PHOTOPRISM_DATABASE_DRIVER": "mariadb",
        "PHOTOPRISM_DATABASE_DSN": "pp:secret@tcp(db.lan:3307)/library?charset=utf8mb4",
    }
    socket = {
        "PHOTOPRISM_DATABASE_DRIVER": "mysql",
        "PHOTOPRISM_DATABASE_SERVER": "/run/mysqld/mysqld.sock",
    }

    assert (
        config.load(None, environ=dsn).library.db == "mysql+pymysql://pp:secret@db.lan:3307/library"
    )
    assert config.load(None, environ=socket).library.db == (
        "mysql+pymysql://photoprism@localhost/photoprism?unix_socket=/run/mysqld/mysqld.sock"
    )


def test_sqlite_index_defaults_to_the_storage_folder_and_names_the_storage(tmp_path: Path) -> None:
    env = {
        "PHOTOPRISM_DATABASE_DRIVER": "sqlite",
        "PHOTOPRISM_STORAGE_PATH": str(tmp_path / "storage"),
    }

    cfg = config.load(None, environ=env)

    assert cfg.library.db == f"sqlite:///{tmp_path}/storage/index.db"
    assert cfg.library.roots()["sidecar"] == tmp_path / "storage" / "sidecar"


def test_the_sidecar_of_a_relative_storage_folder_stays_in_it() -> None:
    library = {"originals": Path("lib/originals"), "storage": Path("lib/storage")}

    cfg = config.load(None, {"library": library}, environ={})

    assert cfg.library.roots() == {
        "/": Path("lib/originals"),
        "sidecar": Path("lib/storage/sidecar"),
    }


def test_a_relative_sidecar_path_lives_in_the_originals(tmp_path: Path) -> None:
    cfg = config.load(
        None, {"library": {"originals": tmp_path, "sidecar": ".photoprism"}}, environ={}
    )

    assert cfg.library.roots() == {"/": tmp_path, "sidecar": tmp_path / ".photoprism"}


def test_password_file_fills_a_url_without_password(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    overrides = {
        "library": {
            "db": "mysql+pymysql://photoprism@127.0.0.1/photoprism",
            "db_password_file": secret,
        }
    }

    cfg = config.load(None, overrides, environ={})

    assert cfg.library.db == "mysql+pymysql://photoprism:s3cret@127.0.0.1/photoprism"


def test_flags_beat_the_environment_which_beats_the_file(tmp_path: Path) -> None:
    toml = tmp_path / "faceset.toml"
    toml.write_text(
        '[library]\noriginals = "/from/file"\nstorage = "/from/file/storage"\n[crop]\nsize = 768\n'
    )
    env = {"PHOTOPRISM_ORIGINALS_PATH": "/from/env"}

    cfg = config.load(toml, {"crop": {"size": 1024}}, environ=env)

    assert cfg.library.originals == Path("/from/env")
    assert cfg.library.storage == Path("/from/file/storage")
    assert cfg.crop.size == 1024


def test_env_file_reads_compose_style_lines(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\nexport PHOTOPRISM_ORIGINALS_PATH=\"/photos\"\nPHOTOPRISM_DATABASE_PASSWORD='x y'\nnot a setting\n"
    )

    assert config.read_env_file(env_file) == {
        "PHOTOPRISM_ORIGINALS_PATH": "/photos",
        "PHOTOPRISM_DATABASE_PASSWORD": "x y",
    }


def test_model_preset_sets_the_size_unless_the_user_did() -> None:
    assert config.load(None, {"export": {"for_model": "sdxl"}}, environ={}).crop.size == 1024
    assert (
        config.load(
            None, {"export": {"for_model": "sdxl"}, "crop": {"size": 768}}, environ={}
        ).crop.size
        == 768
    )


def test_invalid_values_name_the_setting_or_the_flag(tmp_path: Path) -> None:
    toml = tmp_path / "faceset.toml"
    toml.write_text("[crop]\nsize = 10\n")

    with pytest.raises(
        ConfigError, match=r"^setting crop\.size: Input should be greater than or equal to 64$"
    ):
        config.load(toml, {}, environ={})
    # Overrides are the flags the user typed: the message names the flag.
    with pytest.raises(ConfigError, match=r"^--size: Input should be greater than or equal to 64$"):
        config.load(None, {"crop": {"size": 10}}, environ={})
    with pytest.raises(ConfigError, match=r"^--class: "):
        config.load(None, {"export": {"class_word": "two  spaces"}}, environ={})
