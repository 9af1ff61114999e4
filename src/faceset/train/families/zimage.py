"""Z-Image (base) and Z-Image Turbo.

The transformer takes a list of (C, 1, H, W) latents and a list of variable-length caption
features (Qwen3's second-to-last layer, padding dropped), at timestep ``1 - sigma``, and
predicts ``x0 - noise``: the training prediction is its negation (reference section 2, the
example script's L1749-1762). Latents are the FLUX.1 VAE's, ``(z - shift) * scale``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers import ZImagePipeline

from faceset.train.families import FamilyInfo
from faceset.train.families.base import Conditioning, FlowFamily, shift_and_scale


class ZImage(FlowFamily):
    pipeline_class = ZImagePipeline
    lora_targets = ("to_k", "to_q", "to_v", "to_out.0")

    def encode_prompt(self, pipe: Any, prompt: str, device: torch.device) -> Conditioning:
        embeds, _ = pipe.encode_prompt(prompt, device=device, do_classifier_free_guidance=False)
        return {"prompt_embeds": [e.cpu() for e in embeds]}

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
        captions = [
            e.to(noisy.device, noisy.dtype) for c in conditioning for e in c["prompt_embeds"]
        ]
        out = transformer(
            list(noisy.unsqueeze(2).unbind(0)),
            (1 - sigmas).to(noisy.dtype),  # the pipeline's (1000 - t) / 1000
            captions,
            return_dict=False,
        )[0]
        return -torch.stack(out).squeeze(2)

    def draw_inputs(
        self, pipe: Any, prompt: str, negative: str, guidance: float, device: torch.device
    ) -> dict[str, Any]:
        # Z-Image's CFG is pos + g * (pos - neg): guidance 0 turns it off (Turbo's setting).
        positive, negatives = pipe.encode_prompt(
            prompt,
            device=device,
            do_classifier_free_guidance=guidance > 0,
            negative_prompt=negative,
        )
        found: dict[str, Any] = {"prompt_embeds": positive, "guidance_scale": guidance}
        if guidance > 0:
            found["negative_prompt_embeds"] = negatives
        return found


def family(info: FamilyInfo) -> FlowFamily:
    return ZImage(info)
