"""FLUX.1 [dev]: CLIP-L pooled + T5-XXL text, 2x2-packed latents, embedded guidance.

dev is guidance-distilled: the transformer takes the guidance as an input. Training feeds
guidance 1, as diffusers' README trains it (``--guidance_scale=1``), so the LoRA learns the
person, not a guidance; drawing uses 3.5 (reference sections 2 and 6.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers import FluxPipeline

from faceset.train.families import FamilyInfo
from faceset.train.families.base import Conditioning, FlowFamily, shift_and_scale

TRAINING_GUIDANCE = 1.0


class Flux1(FlowFamily):
    pipeline_class = FluxPipeline
    lora_targets = (
        "attn.to_k", "attn.to_q", "attn.to_v", "attn.to_out.0",
        "attn.add_k_proj", "attn.add_q_proj", "attn.add_v_proj", "attn.to_add_out",
        "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2",
    )  # fmt: skip
    text_encoders = ("text_encoder", "text_encoder_2")

    def encode_prompt(self, pipe: Any, prompt: str, device: torch.device) -> Conditioning:
        embeds, pooled, _ = pipe.encode_prompt(prompt, prompt_2=None, device=device)
        return {"prompt_embeds": embeds.cpu(), "pooled_prompt_embeds": pooled.cpu()}

    def to_latent(self, pipe: Any, sample: torch.Tensor) -> torch.Tensor:
        return shift_and_scale(pipe, sample)

    def predict(
        self,
        pipe: Any,
        transformer: Any,
        noisy: torch.Tensor,
        sigmas: torch.Tensor,
        conditioning: Sequence[Conditioning],
    ) -> torch.Tensor:
        batch, channels, height, width = noisy.shape
        dtype, device = noisy.dtype, noisy.device
        embeds = self.batch(conditioning, "prompt_embeds", device, dtype)
        pooled = self.batch(conditioning, "pooled_prompt_embeds", device, dtype)
        image_ids = pipe._prepare_latent_image_ids(batch, height // 2, width // 2, device, dtype)
        guidance = None
        # (under DDP the model is wrapped; its config is on the module inside)
        if getattr(transformer, "module", transformer).config.guidance_embeds:
            guidance = torch.full((batch,), TRAINING_GUIDANCE, device=device, dtype=dtype)
        out = transformer(
            hidden_states=pipe._pack_latents(noisy, batch, channels, height, width),
            timestep=sigmas.to(dtype),
            guidance=guidance,
            pooled_projections=pooled,
            encoder_hidden_states=embeds,
            txt_ids=torch.zeros(embeds.shape[1], 3, device=device, dtype=dtype),
            img_ids=image_ids,
            return_dict=False,
        )[0]
        scale = pipe.vae_scale_factor
        return pipe._unpack_latents(out, height * scale, width * scale, scale)  # type: ignore[no-any-return]

    def draw_inputs(
        self, pipe: Any, prompt: str, negative: str, guidance: float, device: torch.device
    ) -> dict[str, Any]:
        # Embedded guidance, no CFG pass: the negative prompt is not used by FLUX.1 [dev].
        return {**self.encode_prompt(pipe, prompt, device), "guidance_scale": guidance}


def family(info: FamilyInfo) -> FlowFamily:
    return Flux1(info)
