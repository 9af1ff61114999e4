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

from faceset import environment
from faceset.train.config import TrainConfig
from faceset.train.report import OnStep, Step, TrainResult, ignore_step


def require_extra(command: str = "faceset train") -> None:
    """Raise StackMismatch, in one line naming what to install, unless the training stack is
    installed in versions faceset supports (checked before torch is imported)."""
    environment.require(command)


def train(cfg: TrainConfig, *, resume: bool = False, on_step: OnStep = ignore_step) -> TrainResult:
    """Train the LoRA ``cfg`` describes; see :func:`faceset.train.loop.train`."""
    require_extra()
    from faceset.train import loop

    return loop.train(cfg, resume=resume, on_step=on_step)


__all__ = ["OnStep", "Step", "TrainConfig", "TrainResult", "require_extra", "train"]
