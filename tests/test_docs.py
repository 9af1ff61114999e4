"""Every command is documented where a user looks: --help and the README."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main

from faceset.cli import app

README = (Path(__file__).parent.parent / "README.md").read_text()
COMMANDS = sorted(c.name or c.callback.__name__ for c in app.registered_commands if c.callback)


@pytest.mark.parametrize("name", COMMANDS)
def test_command_has_help_with_an_example(name: str) -> None:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]

    assert command.help
    assert "Example:" in command.help


@pytest.mark.parametrize("name", COMMANDS)
def test_command_is_in_the_readme(name: str) -> None:
    assert f"faceset {name}" in README


def test_every_setting_is_in_the_example_config() -> None:
    from faceset.config import Config

    example = (Path(__file__).parent.parent / "faceset.example.toml").read_text()
    for section, field in Config.model_fields.items():
        assert f"[{section}]" in example
        model = field.annotation
        for name in model.model_fields:  # type: ignore[union-attr]
            assert f"{name} = " in example, f"{section}.{name} missing from faceset.example.toml"
