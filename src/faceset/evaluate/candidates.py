"""The LoRAs to compare: every checkpoint of a training run, and its final file.

``faceset train`` writes ``NAME.safetensors`` and, every ``--save-every`` steps,
``checkpoints/step-NNNNNN/NAME-stepNNNNNN.safetensors`` (train/checkpoints.py); a step folder
without ``state.json`` is an interrupted save and is skipped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from faceset.errors import FacesetError
from faceset.generate.lora_file import LoraFile, read_lora
from faceset.train.config import CONFIG_FILE

CHECKPOINTS = "checkpoints"  # train/checkpoints.py FOLDER; that module imports torch
_STEP_DIR = re.compile(r"^step-(\d+)$")


class ModelFolderError(FacesetError):
    """The folder holds no LoRA to evaluate."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One LoRA to draw with, or the base model alone (``lora`` None)."""

    label: str
    step: int | None
    lora: LoraFile | None


def find_candidates(model: Path) -> list[Candidate]:
    """Return the LoRAs of the training output ``model``, by step; or ``model`` itself if a file.

    The final LoRA is left out when a checkpoint of the same step exists: same weights.
    """
    if model.is_file():
        lora = read_lora(model)
        return [Candidate(_label(lora.step, model.stem), lora.step, lora)]
    if not model.is_dir():
        raise ModelFolderError(f"model folder {model} does not exist")
    found: list[Candidate] = []
    folder = model / CHECKPOINTS
    steps = sorted(
        (int(m.group(1)), d)
        for d in (folder.iterdir() if folder.is_dir() else ())
        if (m := _STEP_DIR.match(d.name)) and (d / "state.json").is_file()
    )
    for step, directory in steps:
        files = sorted(p for p in directory.glob("*.safetensors") if p.name != "lora.safetensors")
        if files:
            found.append(Candidate(_label(step, ""), step, read_lora(files[0])))
    final = _final_lora(model)
    if final is not None:
        lora = read_lora(final)
        if lora.step is None or lora.step not in {c.step for c in found}:
            found.append(Candidate(_label(lora.step, "final"), lora.step, lora))
    if not found:
        raise ModelFolderError(
            f"{model} holds no LoRA: pass the --out folder of faceset train (with NAME.safetensors"
            " and checkpoints/) or a .safetensors file"
        )
    return sorted(found, key=lambda c: (c.step is None, c.step or 0))


def _final_lora(model: Path) -> Path | None:
    try:
        name = json.loads((model / CONFIG_FILE).read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError, AttributeError):
        name = None
    if name and (model / f"{name}.safetensors").is_file():
        return model / f"{name}.safetensors"
    # A run not written by faceset train: one kohya file at the top is the LoRA.
    files = [p for p in model.glob("*.safetensors") if p.name != "pytorch_lora_weights.safetensors"]
    return files[0] if len(files) == 1 else None


def _label(step: int | None, fallback: str) -> str:
    return f"step {step}" if step is not None else fallback
