"""FLUX.2 [klein] base 4B and 9B (one family: the size is read from the model's config).

Latents are 2x2-patchified to 128 channels and normalised by the VAE's BatchNorm statistics;
text is the Qwen3 hidden states of layers (9, 18, 27) at 512 tokens, padding included (no
mask), as ``Flux2KleinPipeline`` does (reference sections 1.1, 1.2, 2; not the example script's
``[10, 20, 30]``, diffusers issue 13445).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers import Flux2KleinPipeline

from faceset.train.families import FamilyInfo
from faceset.train.families.base import Conditioning, FlowFamily

TEXT_LAYERS = (9, 18, 27)


class Klein(FlowFamily):
    pipeline_class = Flux2KleinPipeline
    # The example script's targets (reference section 2): image-stream attention, the single
    # blocks' fused QKV+MLP input and their output; these are the modules ComfyUI maps.
    lora_targets = ("to_k", "to_q", "to_v", "to_out.0", "to_qkv_mlp_proj", "attn.to_out")

    def encode_prompt(self, pipe: Any, prompt: str, device: torch.device) -> Conditioning:
        embeds, text_ids = pipe.encode_prompt(
            prompt, device=device, text_encoder_out_layers=TEXT_LAYERS
        )
        return {"prompt_embeds": embeds.cpu(), "text_ids": text_ids.cpu()}

    def to_latent(self, pipe: Any, sample: torch.Tensor) -> torch.Tensor:
        latents = pipe._patchify_latents(sample)
        bn = pipe.vae.bn
        mean = bn.running_mean.view(1, -1, 1, 1).to(latents)
        std = torch.sqrt(bn.running_var.view(1, -1, 1, 1) + pipe.vae.config.batch_norm_eps).to(
            latents
        )
        return (latents - mean) / std  # type: ignore[no-any-return]

    def predict(
        self,
        pipe: Any,
        transformer: Any,
        noisy: torch.Tensor,
        sigmas: torch.Tensor,
        conditioning: Sequence[Conditioning],
    ) -> torch.Tensor:
        dtype = noisy.dtype
        embeds = self.batch(conditioning, "prompt_embeds", noisy.device, dtype)
        text_ids = self.batch(conditioning, "text_ids", noisy.device, torch.long)
        image_ids = pipe._prepare_latent_ids(noisy).to(noisy.device)
        out = transformer(
            hidden_states=pipe._pack_latents(noisy),
            timestep=sigmas.to(dtype),  # the pipeline passes t / 1000 = sigma
            guidance=None,  # klein has no guidance embedding
            encoder_hidden_states=embeds,
            txt_ids=text_ids,
            img_ids=image_ids,
            return_dict=False,
        )[0]
        return pipe._unpack_latents_with_ids(out, image_ids)  # type: ignore[no-any-return]

    def draw_inputs(
        self, pipe: Any, prompt: str, negative: str, guidance: float, device: torch.device
    ) -> dict[str, Any]:
        # Real CFG against the negative (empty by default) when guidance > 1.
        positive = self.encode_prompt(pipe, prompt, device)["prompt_embeds"]
        negative_embeds = self.encode_prompt(pipe, negative, device)["prompt_embeds"]
        return {
            "prompt_embeds": positive,
            "negative_prompt_embeds": negative_embeds,
            "guidance_scale": guidance,
        }


def family(info: FamilyInfo) -> FlowFamily:
    return Klein(info)
