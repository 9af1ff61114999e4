"""What a training run reports: one record per optimiser step, and the files it wrote."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Step:
    """One optimiser step: ``step`` of ``steps`` done, counting from 1."""

    step: int
    steps: int
    loss: float
    """The step's training loss (masked and prior-weighted as trained), on this process."""
    lr: float
    """The UNet learning rate used for the step."""


OnStep = Callable[[Step], None]


def ignore_step(_step: Step) -> None:
    """The default ``on_step``: report nothing."""


@dataclass(frozen=True, slots=True)
class TrainResult:
    """The files of a finished run, and the losses of the steps this process ran."""

    out: Path
    lora: Path
    """``NAME.safetensors`` in kohya format: what A1111, ComfyUI and diffusers load."""
    diffusers_lora: Path
    """``pytorch_lora_weights.safetensors`` in diffusers' own format, alpha in its metadata."""
    config: Path
    """The resolved ``training_config.json``."""
    steps: int
    resumed_from: int = 0
    """The checkpoint step this run continued from; 0 for a fresh run."""
    losses: list[float] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
