"""What training computes once, before the first step: latents, loss weights and text embeddings.

The VAE and (when it is not trained) the text encoder see each image and caption exactly once,
as the diffusers DreamBooth scripts do with ``--cache_latents``. The latent *distribution* is
kept (mean and std), and each step samples from it with that step's seed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from faceset.train.base_model import Base
from faceset.train.dataset import Dataset, Example
from faceset.train.errors import DatasetError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Cache:
    """Per unique image (not per repeat), in dataset order: train images first, then reg."""

    latent_mean: torch.Tensor
    """(N, C, h, w) mean of the VAE's latent distribution, before ``scaling_factor``."""
    latent_std: torch.Tensor
    """(N, C, h, w) its standard deviation."""
    weights: torch.Tensor | None
    """(N, 1, h, w) loss weight per latent cell from the masks, in [0, 1]; None: no masked loss."""
    loss_weights: torch.Tensor
    """(N,) 1 for the person's images, ``prior_loss_weight`` for regularisation images."""
    captions: list[str]
    time_ids: torch.Tensor | None
    """(N, 6) SDXL size conditioning: original (h, w), crop top-left (y, x), target (h, w)."""
    repeats: list[int]
    """How often each image is seen per epoch (regularisation images: see ``epoch_items``)."""
    is_reg: list[bool]
    text: dict[str, tuple[torch.Tensor, torch.Tensor | None]]
    """Caption -> (hidden states, pooled embedding or None), when the text encoder is frozen."""

    def epoch_items(self) -> list[int]:
        """Return one epoch's image indices: each person image ``repeats`` times, and as many
        regularisation images, cycled or truncated, as kohya does (reference section 2)."""
        train = [i for i, r in enumerate(self.repeats) if not self.is_reg[i] for _ in range(r)]
        reg = [i for i, is_reg in enumerate(self.is_reg) if is_reg]
        if not reg:
            return train
        return train + [reg[k % len(reg)] for k in range(len(train))]


def build_cache(
    base: Base,
    dataset: Dataset,
    *,
    resolution: int,
    masked_loss: bool,
    prior_loss_weight: float,
    cache_text: bool,
    device: torch.device,
    text_dtype: torch.dtype,
) -> Cache:
    """Return latents, mask weights and (if ``cache_text``) text embeddings of every image."""
    vae = base.pipeline.vae
    examples: list[tuple[Example, int, bool]] = [
        (e, c.repeats, c.is_reg) for c in dataset.concepts for e in c.examples
    ]
    means, stds, weights, time_ids = [], [], [], []
    small = 0
    for example, _, _ in examples:
        pixels, mask, original, crop_top_left = load_example(example, resolution)
        small += min(original) < resolution
        with torch.no_grad():
            dist = vae.encode(pixels[None].to(device, vae.dtype)).latent_dist
        means.append(dist.mean.float().cpu())
        stds.append(dist.std.float().cpu())
        if masked_loss:
            plane = mask if mask is not None else torch.ones(1, resolution, resolution)
            # Masks act at latent resolution: average each latent cell's pixels, so a cell
            # half on the face weighs half (reference section 5).
            weights.append(F.interpolate(plane[None], size=dist.mean.shape[-2:], mode="area"))
        time_ids.append(torch.tensor([*original, *crop_top_left, resolution, resolution]))
    if small:
        # kohya would refuse to upscale (bucket_no_upscale); the images are used, but say so.
        log.warning(
            "%d of %d images are smaller than %d px and were upscaled",
            small,
            len(examples),
            resolution,
        )
    captions = [e.caption for e, _, _ in examples]
    cache = Cache(
        latent_mean=torch.cat(means),
        latent_std=torch.cat(stds),
        weights=torch.cat(weights) if masked_loss else None,
        loss_weights=torch.tensor([prior_loss_weight if r else 1.0 for _, _, r in examples]),
        captions=captions,
        time_ids=torch.stack(time_ids).float() if base.family == "sdxl" else None,
        repeats=[n for _, n, _ in examples],
        is_reg=[r for _, _, r in examples],
        text={},
    )
    if cache_text:
        for caption in dict.fromkeys(captions):
            with torch.no_grad():
                hidden, pooled = encode_text(base, [caption], device, text_dtype)
            cache.text[caption] = (hidden[0].cpu(), None if pooled is None else pooled[0].cpu())
    return cache


def load_example(
    example: Example, resolution: int
) -> tuple[torch.Tensor, torch.Tensor | None, tuple[int, int], tuple[int, int]]:
    """Return the image as (3, R, R) in [-1, 1], its mask as (1, R, R) in [0, 1] or None, the
    original (height, width) and the crop's top-left (y, x) in resized pixels.

    The short side is resized to R and the centre cut square, the mask exactly as the image.
    """
    try:
        with Image.open(example.image) as im:
            image = ImageOps.exif_transpose(im).convert("RGB")
    except OSError as e:
        raise DatasetError(f"cannot read image {example.image}: {e}") from None
    mask_image = None
    if example.mask is not None:
        try:
            with Image.open(example.mask) as im:
                mask_image = im.convert("L")
        except OSError as e:
            raise DatasetError(f"cannot read mask {example.mask}: {e}") from None
        if mask_image.size != image.size:
            raise DatasetError(
                f"mask {example.mask} is {mask_image.width}x{mask_image.height} px but its image"
                f" is {image.width}x{image.height} px"
            )
    width, height = image.size
    scale = resolution / min(width, height)
    size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    box = (left, top, left + resolution, top + resolution)
    image = image.resize(size, Image.Resampling.BICUBIC).crop(box)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)
    mask = None
    if mask_image is not None:
        mask_image = mask_image.resize(size, Image.Resampling.BILINEAR).crop(box)
        mask = torch.from_numpy(np.asarray(mask_image, dtype=np.float32) / 255.0)[None]
    return pixels, mask, (height, width), (top, left)


def tokenize(tokenizer: Any, captions: list[str]) -> torch.Tensor:
    """Return (B, 77) CLIP token ids, padded and truncated as SD was trained."""
    ids: torch.Tensor = tokenizer(
        captions,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    return ids


def encode_text(
    base: Base,
    captions: list[str],
    device: torch.device,
    dtype: torch.dtype,
    encoders: list[Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return the UNet's text conditioning: (B, 77, D) hidden states, and SDXL's pooled (B, P).

    SD 1.5 uses the last hidden state; SDXL concatenates both encoders' penultimate hidden
    states and takes the pooled projection of the second, as ``encode_prompt`` in diffusers'
    ``train_dreambooth_lora_sdxl.py``. ``encoders`` replaces ``base.text_encoders``: a trained
    encoder must be called through its accelerate (DDP) wrapper for its gradients to sync.
    """
    encoders = encoders or base.text_encoders
    if base.family == "sd15":
        out = encoders[0](tokenize(base.tokenizers[0], captions).to(device))
        return out.last_hidden_state.to(dtype), None
    hidden, pooled = [], None
    for encoder, tokenizer in zip(encoders, base.tokenizers, strict=True):
        out = encoder(tokenize(tokenizer, captions).to(device), output_hidden_states=True)
        hidden.append(out.hidden_states[-2])
        pooled = getattr(out, "text_embeds", None)
    return torch.cat(hidden, dim=-1).to(dtype), None if pooled is None else pooled.to(dtype)
