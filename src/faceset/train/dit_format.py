"""The LoRA file of a transformer family, as ComfyUI and diffusers both load it whole.

Keys are ``transformer.<diffusers module>.lora_A.weight`` / ``.lora_B.weight`` with the scale
``alpha / rank`` baked into ``lora_B`` and no ``.alpha`` tensors: the one layout that loads
exactly in diffusers' ``load_lora_weights`` for klein, Z-Image, Qwen-Image and FLUX.1 and that
ComfyUI maps for all four (reference section 4.4, variant D; ComfyUI ignores metadata alpha and
diffusers rejects ``.alpha`` keys for klein). The true rank and alpha stay in the ``ss_*`` /
``modelspec.*`` metadata, for people and UIs. LoKr: ``transformer.<module>.lokr_w1/_w2`` with
``alpha / rank`` baked into ``lokr_w1`` (or ``lokr_w1_a``), as diffusers assumes (section 4.5).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

PREFIX = "transformer."


def to_file(
    peft_state: Mapping[str, torch.Tensor], rank: int, alpha: float
) -> dict[str, torch.Tensor]:
    """Return the file's tensors for a transformer's peft state dict (LoRA or LoKr)."""
    scale = alpha / rank
    out: dict[str, torch.Tensor] = {}
    for key, tensor in peft_state.items():
        value = tensor.detach().to("cpu", torch.float32)
        # One factor per module carries the scale: LoRA's B; LoKr's w1 (or w1_a, decomposed).
        if key.endswith((".lora_B.weight", ".lokr_w1", ".lokr_w1_a")):
            value = value * scale
        out[PREFIX + key] = value.contiguous()
    return out
