"""Every command is documented where a user looks: --help and the README."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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


def _rendered_help(*args: str) -> str:
    """Return ``faceset ARGS --help`` as a user's terminal shows it, wide enough not to wrap."""
    env = {**os.environ, "TERMINAL_WIDTH": "1000", "COLUMNS": "1000", "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "faceset", *args, "--help"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    return done.stdout


@pytest.mark.parametrize("name", ["", *COMMANDS])
def test_help_shows_every_default_and_bracket_it_was_given(name: str) -> None:
    group = typer.main.get_command(app)
    command = group.commands[name] if name else group  # type: ignore[attr-defined]
    shown = _rendered_help(*([name] if name else []))

    lines = [" ".join(line.replace("│", " ").split()) for line in shown.splitlines()]
    text = "\n".join(lines)
    for param in command.params:
        helptext = " ".join((getattr(param, "help", None) or "").replace("\\[", "[").split())
        # Rich reads [default: 30] or [identity] as markup and drops it: all of it must show.
        assert helptext in text, f"{name} {param.name}: {helptext!r} lost in --help"
        if getattr(param, "is_flag", False):
            row = next(line for line in lines if line.startswith(param.opts[0] + " "))
            assert "<bool>" not in row, f"{name} {param.opts[0]} shown as taking a value"
    usage = next(line for line in lines if line.startswith("Usage:"))
    assert "{" not in usage, usage


def test_export_help_groups_its_options_in_panels() -> None:
    shown = _rendered_help("export")

    panels = re.findall(r"╭─ (\w[\w ]*?) ─", shown)
    # Every option in a panel of its own kind: a new one left in "Options" fails here.
    assert panels == ["Selection", "Framing", "Trainer layouts", "Library", "Output"]
    run = re.findall(r"╭─ (\w[\w ]*?) ─", _rendered_help("run"))
    assert "Options" not in run


def test_top_level_help_has_examples() -> None:
    shown = _rendered_help()

    assert "Examples:" in shown
    assert "faceset demo" in shown
    assert "faceset export --db sqlite:///" in shown
