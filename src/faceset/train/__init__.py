"""faceset train: a LoRA of the person from a dataset folder, in kohya and diffusers formats.

Importing this package is cheap: torch and diffusers load only when :func:`train` runs, so the
core install (without the ``train`` extra) keeps working.

Example::

    from faceset.train import TrainConfig, train

    cfg = TrainConfig(dataset="jane", base="stable-diffusion-v1-5/stable-diffusion-v1-5",
                      family="sd15", steps=1500)
    result = train(cfg)
    print(result.lora)          # jane/model/jane.safetensors
"""

from __future__ import annotations

import importlib.util

from faceset.train.config import TrainConfig
from faceset.train.errors import TrainExtraMissing
from faceset.train.report import OnStep, Step, TrainResult, ignore_step

REQUIRED = ("torch", "diffusers", "transformers", "peft", "accelerate", "safetensors")
INSTALL = "pip install 'faceset[train]'"


def require_extra(command: str = "train") -> None:
    """Raise TrainExtraMissing, naming the ``command`` and what to install, unless the training
    stack is there."""
    missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        raise TrainExtraMissing(
            f"faceset {command} needs the training extra ({', '.join(missing)} not installed):"
            f" {INSTALL}"
        )


def train(cfg: TrainConfig, *, resume: bool = False, on_step: OnStep = ignore_step) -> TrainResult:
    """Train the LoRA ``cfg`` describes; see :func:`faceset.train.loop.train`."""
    require_extra()
    from faceset.train import loop

    return loop.train(cfg, resume=resume, on_step=on_step)


__all__ = ["OnStep", "Step", "TrainConfig", "TrainResult", "require_extra", "train"]
