"""The core install has no torch: other commands work, and train says what to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Run faceset in a fresh interpreter in which the training stack cannot be imported.
NO_TORCH = """
import sys
for name in ("torch", "diffusers", "transformers", "peft", "accelerate", "safetensors"):
    sys.modules[name] = None
from faceset.cli import main
sys.argv = ["faceset", *sys.argv[1:]]
main()
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, check=False
    )


def test_help_does_not_import_torch() -> None:
    code = "import sys, faceset.cli; print(sorted({'torch', 'diffusers'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout == "[]\n"


def test_help_lists_train_without_the_extra() -> None:
    result = run("--help")

    assert result.returncode == 0
    assert "train" in result.stdout


def test_train_without_the_extra_says_what_to_install(tmp_path: Path) -> None:
    result = run("train", str(tmp_path), "--base", "x", "--for", "sd15")

    assert result.returncode == 1
    assert result.stderr == (
        "error: faceset train needs the training extra (torch, diffusers, transformers, peft,"
        " accelerate, safetensors not installed): pip install 'faceset[train]'\n"
    )


def test_headshots_without_the_extra_names_itself(tmp_path: Path) -> None:
    lora = tmp_path / "jane.safetensors"
    lora.write_bytes(b"not read before the check")

    result = run("headshots", "--lora", str(lora), "--out", str(tmp_path / "o"))

    assert result.returncode == 1
    assert result.stderr.startswith("error: faceset headshots needs the training extra (")


def test_a_missing_path_is_answered_before_torch_loads(tmp_path: Path) -> None:
    # torch cannot be imported here: these answers come before any attempt to.
    train = run("train", str(tmp_path), "--base", "/no/such/path", "--for", "sd15")
    lora = run("headshots", "--lora", "/no/such.safetensors", "--out", str(tmp_path / "o"))

    assert (train.returncode, train.stderr) == (
        1,
        "error: base model /no/such/path does not exist\n",
    )
    assert (lora.returncode, lora.stderr) == (
        1, "error: LoRA file /no/such.safetensors does not exist\n")  # fmt: skip
    assert not (tmp_path / "o").exists()
