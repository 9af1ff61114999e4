"""Qwen-Image (and Qwen-Image-2512: the same architecture).

Latents are 5-D (B, C, 1, H, W) from the Wan-style VAE, normalised per channel by its
``latents_mean``/``latents_std``, 2x2-packed for the transformer; text is Qwen2.5-VL's last
hidden state after the system template, with its mask (reference sections 1.2 and 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers import QwenImagePipeline

from faceset.train.families import FamilyInfo
from faceset.train.families.base import Conditioning, FlowFamily


class QwenImage(FlowFamily):
    pipeline_class = QwenImagePipeline
    lora_targets = ("to_k", "to_q", "to_v", "to_out.0")

    def encode_prompt(self, pipe: Any, prompt: str, device: torch.device) -> Conditioning:
        embeds, mask = pipe.encode_prompt(prompt, device=device)
        if mask is None:  # the pipeline drops an all-ones mask
            mask = torch.ones(embeds.shape[:2], dtype=torch.long)
        return {"prompt_embeds": embeds.cpu(), "prompt_embeds_mask": mask.cpu()}

    def vae_input(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.unsqueeze(2)  # a one-frame video

    def to_latent(self, pipe: Any, sample: torch.Tensor) -> torch.Tensor:
        config = pipe.vae.config
        channels = len(config.latents_mean)
        mean = torch.tensor(config.latents_mean).view(1, channels, 1, 1, 1).to(sample)
        std = torch.tensor(config.latents_std).view(1, channels, 1, 1, 1).to(sample)
        return ((sample - mean) / std).squeeze(2)

    def predict(
        self,
        pipe: Any,
        transformer: Any,
        noisy: torch.Tensor,
        sigmas: torch.Tensor,
        conditioning: Sequence[Conditioning],
    ) -> torch.Tensor:
        batch, channels, height, width = noisy.shape
        longest = max(c["prompt_embeds"].shape[1] for c in conditioning)
        embeds = torch.cat([_pad(c["prompt_embeds"], longest) for c in conditioning])
        mask = torch.cat([_pad(c["prompt_embeds_mask"], longest) for c in conditioning])
        packed = pipe._pack_latents(noisy, batch, channels, height, width)
        out = transformer(
            hidden_states=packed,
            encoder_hidden_states=embeds.to(noisy.device, noisy.dtype),
            encoder_hidden_states_mask=mask.to(noisy.device),
            timestep=sigmas.to(noisy.dtype),
            img_shapes=[(1, height // 2, width // 2)] * batch,
            return_dict=False,
        )[0]
        scale = pipe.vae_scale_factor
        unpacked = pipe._unpack_latents(out, height * scale, width * scale, scale)
        return unpacked.squeeze(2)  # type: ignore[no-any-return]

    def draw_inputs(
        self, pipe: Any, prompt: str, negative: str, guidance: float, device: torch.device
    ) -> dict[str, Any]:
        # true_cfg_scale works only with a negative prompt: " " when none is wanted.
        positive = self.encode_prompt(pipe, prompt, device)
        negatives = self.encode_prompt(pipe, negative or " ", device)
        return {
            **positive,
            "negative_prompt_embeds": negatives["prompt_embeds"],
            "negative_prompt_embeds_mask": negatives["prompt_embeds_mask"],
            "true_cfg_scale": guidance,
        }


def _pad(tensor: torch.Tensor, length: int) -> torch.Tensor:
    """Pad (1, L, ...) with zeros to (1, length, ...): captions of a batch differ in length."""
    missing = length - tensor.shape[1]
    if missing == 0:
        return tensor
    shape = (tensor.shape[0], missing, *tensor.shape[2:])
    return torch.cat([tensor, tensor.new_zeros(shape)], dim=1)


def family(info: FamilyInfo) -> FlowFamily:
    return QwenImage(info)
