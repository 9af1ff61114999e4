"""The interface every flow-matching family implements, and what the families share.

All four families train as diffusers' own example scripts do (reference section 2):
``x_t = (1 - sigma) * x0 + sigma * noise``, target ``noise - x0``, sigma drawn from the model's
scheduler table. A family says how to get from pixels to ``x0``, from captions to the
transformer's text inputs, and how to call the transformer; ``train/flow.py`` does the rest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from faceset.train.families import FamilyInfo

Conditioning = dict[str, Any]
"""One caption's text inputs on the CPU: tensors (or lists of them) by the pipeline's names."""


class FlowFamily(ABC):
    """A flow-matching transformer family: FLUX.2 klein, Z-Image, Qwen-Image, FLUX.1."""

    pipeline_class: Any
    """The diffusers pipeline class."""
    lora_targets: tuple[str, ...]
    """Module-name suffixes of the person LoRA's linear layers: attention (and MLP)
    projections; see :meth:`target_modules`."""
    text_encoders: tuple[str, ...] = ("text_encoder",)
    """Pipeline components freed once every caption is encoded."""

    def __init__(self, info: FamilyInfo) -> None:
        self.info = info

    @property
    def name(self) -> str:
        return self.info.name

    def load(
        self,
        path: str | Path,
        dtype: torch.dtype,
        text_encoder: Sequence[str | Path] = (),
        vae: str | Path | None = None,
    ) -> Any:
        """Return the pipeline of ``path``: a diffusers folder, a model id (from the Hugging Face
        cache when there) or a diffusion-model ``.safetensors`` file whose text encoder(s) and
        VAE are ``text_encoder``/``vae`` or found beside it (``train/model_files.py``)."""
        from faceset.train import model_files

        return model_files.load(self.pipeline_class, str(path), self.name, dtype, text_encoder, vae)

    def target_modules(self, transformer: torch.nn.Module) -> list[str]:
        """Return the full names of the linear layers the LoRA adapts: those whose name ends
        with one of :attr:`lora_targets` (a suffix may also name a container elsewhere, such as
        klein's double blocks' ``attn.to_out`` list; only linear layers are taken)."""
        return [
            name
            for name, module in transformer.named_modules()
            if isinstance(module, torch.nn.Linear)
            and any(name == s or name.endswith(f".{s}") for s in self.lora_targets)
        ]

    # --- training -------------------------------------------------------------------------

    @abstractmethod
    def encode_prompt(self, pipe: Any, prompt: str, device: torch.device) -> Conditioning:
        """Return one prompt's text inputs (batch of one), moved to the CPU."""

    @abstractmethod
    def to_latent(self, pipe: Any, sample: torch.Tensor) -> torch.Tensor:
        """Return ``x0`` (B, C, h, w) the transformer learns from a VAE latent sample."""

    def vae_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """Return what the VAE encodes for (B, 3, H, W) pixels in [-1, 1]."""
        return pixels

    @abstractmethod
    def predict(
        self,
        pipe: Any,
        transformer: Any,
        noisy: torch.Tensor,
        sigmas: torch.Tensor,
        conditioning: Sequence[Conditioning],
    ) -> torch.Tensor:
        """Return the velocity the transformer predicts for ``noisy`` (B, C, h, w), the
        training target being ``noise - x0``. ``sigmas`` (B,) in [0, 1]."""

    def batch(
        self,
        conditioning: Sequence[Conditioning],
        key: str,
        device: torch.device,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """Return the captions' ``key`` tensors stacked into one batch on ``device``."""
        return torch.cat([c[key] for c in conditioning]).to(device, dtype)

    # --- drawing --------------------------------------------------------------------------

    @abstractmethod
    def draw_inputs(
        self, pipe: Any, prompt: str, negative: str, guidance: float, device: torch.device
    ) -> dict[str, Any]:
        """Return the pipeline-call keywords for ``prompt`` at ``guidance``: text embeddings
        (so drawing needs no text encoder once they are made) and the family's own guidance
        argument."""


def to_device(inputs: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """Return pipeline keywords with every tensor (also inside lists) moved to ``device``."""
    return {k: _moved(v, device) for k, v in inputs.items()}


def _moved(value: Any, device: torch.device | str) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, list | tuple):
        return [_moved(v, device) for v in value]
    return value


def shift_and_scale(pipe: Any, sample: torch.Tensor) -> torch.Tensor:
    """Normalise an ``AutoencoderKL`` latent as FLUX.1 and Z-Image take it: (z - shift) * scale."""
    config = pipe.vae.config
    shifted: torch.Tensor = (sample - config.shift_factor) * config.scaling_factor
    return shifted
