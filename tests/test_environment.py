"""The installed stack: faceset doctor reports it, and a wrong version is one line, at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def faceset(*args: str, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:  # a folder whose packages' metadata come before the venv's
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "faceset", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=300,
    )


def fake_distribution(folder: Path, name: str, version: str) -> Path:
    """Make ``importlib.metadata`` report ``name`` at ``version`` (the code stays the real one)."""
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return folder


def test_doctor_prints_the_stack_a_bug_report_needs() -> None:
    pytest.importorskip("torch", reason="the train extra is not installed")

    result = faceset("doctor")

    assert result.returncode == 0, result.stderr
    rows = dict(line.split(None, 1) for line in result.stdout.splitlines() if "  " in line)
    for name in ("faceset", "torch", "diffusers", "transformers", "peft", "accelerate"):
        assert rows[name][0].isdigit(), name
    assert "CUDA" in rows["torch"] or "CPU" in rows["torch"]  # and which device torch sees
    assert "libvips" in rows["pyvips"]
    assert "libjpeg-turbo" in rows
    assert result.stdout.splitlines()[-1] == "training stack: ok"


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["train", ".", "--base", "x", "--for", "sd15"], "faceset train"),
        (["headshots", "--lora", "x.safetensors"], "faceset headshots"),
    ],
)
def test_a_version_outside_the_range_is_one_line_naming_the_fix(
    args: list[str], command: str, tmp_path: Path
) -> None:
    pytest.importorskip("torch", reason="the train extra is not installed")
    shadow = fake_distribution(tmp_path / "site", "transformers", "4.0.0")
    lora = tmp_path / "x.safetensors"  # there, so that the stack is what is wrong
    lora.write_bytes(b"")

    result = faceset(*[str(lora) if a == "x.safetensors" else a for a in args], path=shadow)

    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"error: {command}: transformers 4.0.0 is installed, faceset needs transformers>="
    )
    assert lines[0].endswith("pip install 'transformers>=5.23'")


def test_doctor_exits_1_and_names_the_package_when_the_stack_does_not_fit(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch", reason="the train extra is not installed")
    shadow = fake_distribution(tmp_path / "site", "peft", "0.1.0")

    result = faceset("doctor", path=shadow)

    assert result.returncode == 1
    assert "peft           0.1.0" in result.stdout
    assert "peft 0.1.0 is installed, faceset needs peft>=0.21" in result.stderr
