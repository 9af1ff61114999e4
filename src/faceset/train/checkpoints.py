"""Checkpoints: everything a run needs to continue exactly where it stopped.

``<out>/checkpoints/step-000250/`` holds the LoRA weights (peft's state dicts), the optimiser
and learning-rate scheduler states, the resolved config and the step, plus a kohya LoRA file
of that step to compare checkpoints in a UI. The random state needs no saving: every step's
noise, timesteps and data order are drawn from seeds derived from (seed, step), so step 251
draws the same numbers whether or not the run stopped at 250.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from faceset.train import config
from faceset.train.config import CONFIG_FILE, TrainConfig
from faceset.train.errors import ConfigError

FOLDER = "checkpoints"
_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A saved training state."""

    path: Path
    step: int
    config: TrainConfig
    lora: dict[str, dict[str, torch.Tensor]]
    """Component name (``unet``, ``text_encoder``, ``text_encoder_2``) -> peft state dict."""
    optimizer: dict[str, Any]
    lr_scheduler: dict[str, Any]
    started_at: float
    """When the first run of this training started (POSIX seconds), kept across resumes."""


def checkpoint_dir(out: Path, step: int) -> Path:
    return out / FOLDER / f"step-{step:06d}"


def latest(out: Path) -> Path | None:
    """Return the newest complete checkpoint folder under ``out``, or None."""
    folder = out / FOLDER
    if not folder.is_dir():
        return None
    done = [
        (int(m.group(1)), d)
        for d in folder.iterdir()
        if (m := _STEP_DIR.match(d.name)) and (d / "state.json").is_file()
    ]
    return max(done)[1] if done else None


def resume_config(out: Path, overrides: Mapping[str, Any]) -> TrainConfig:
    """Return the config of the run in ``out`` with ``overrides`` applied.

    Raises ConfigError when there is nothing to resume or an override would change the weights.
    """
    found = latest(out)
    if found is None:
        raise ConfigError(f"nothing to resume: {out / FOLDER} holds no checkpoint")
    return config.for_resume(config.read(found / CONFIG_FILE), overrides)


def save(
    out: Path,
    step: int,
    cfg: TrainConfig,
    lora: Mapping[str, Mapping[str, torch.Tensor]],
    optimizer: Mapping[str, Any],
    lr_scheduler: Mapping[str, Any],
    started_at: float,
    also: Callable[[Path], None] | None = None,
) -> Path:
    """Write the checkpoint of ``step`` and return its folder; written whole or not at all.

    ``also(folder)`` may add files (the step's kohya LoRA) before the checkpoint is complete.
    """
    final = checkpoint_dir(out, step)
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors = {
        f"{component}.{key}": t.detach().to("cpu").contiguous()
        for component, state in lora.items()
        for key, t in state.items()
    }
    safetensors.torch.save_file(tensors, str(tmp / "lora.safetensors"))
    torch.save(dict(optimizer), tmp / "optimizer.pt")
    torch.save(dict(lr_scheduler), tmp / "lr_scheduler.pt")
    (tmp / CONFIG_FILE).write_text(cfg.to_json(), encoding="utf-8")
    if also is not None:
        also(tmp)
    # state.json is written last: a folder without it is an interrupted save and is ignored.
    (tmp / "state.json").write_text(json.dumps({"step": step, "started_at": started_at}) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def load(path: Path) -> Checkpoint:
    """Return the checkpoint saved in ``path``."""
    state = json.loads((path / "state.json").read_text())
    lora: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in safetensors.torch.load_file(str(path / "lora.safetensors")).items():
        component, _, name = key.partition(".")
        lora.setdefault(component, {})[name] = tensor
    return Checkpoint(
        path=path,
        step=int(state["step"]),
        config=config.read(path / CONFIG_FILE),
        lora=lora,
        # Optimiser states hold only tensors and numbers: weights_only keeps pickle code out.
        # On the CPU: a checkpoint of a GPU run holds cuda:0 tensors, and every process of a
        # resumed multi-GPU run would otherwise put its copy on the first GPU.
        optimizer=torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True),
        lr_scheduler=torch.load(path / "lr_scheduler.pt", map_location="cpu", weights_only=True),
        started_at=float(state["started_at"]),
    )
