"""Sample images during training: the same prompts and seeds every time, as one contact sheet."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image

from faceset.train.base_model import Base

FOLDER = "samples"


def default_prompts(class_tokens: str) -> tuple[str, ...]:
    """Return headshot prompts with the trigger and class, e.g. ``ohwx man``."""
    return (
        f"professional headshot of {class_tokens}, studio lighting",
        f"photo of {class_tokens} outdoors, natural light",
        f"close-up portrait of {class_tokens}, smiling",
        f"{class_tokens} in a suit, office background",
    )


def draw(
    base: Base,
    prompts: tuple[str, ...],
    *,
    resolution: int,
    steps: int,
    guidance: float,
    seed: int,
    device: torch.device,
    dtype: torch.dtype,
) -> list[Image.Image]:
    """Return one image per prompt, prompt i drawn with seed ``seed + i`` on the CPU generator.

    The generator lives on the CPU so that a sheet is the same on any device.
    """
    pipe = base.pipeline
    pipe.set_progress_bar_config(disable=True)
    images: list[Image.Image] = []
    # The base weights may be bf16/fp16 while the LoRA is fp32: autocast lets them meet, as
    # the diffusers scripts' log_validation does.
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    with torch.no_grad(), autocast:
        for i, prompt in enumerate(prompts):
            generator = torch.Generator("cpu").manual_seed(seed + i)
            result = pipe(
                prompt,
                height=resolution,
                width=resolution,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=generator,
            )
            images.append(result.images[0])
    return images


def contact_sheet(images: list[Image.Image], columns: int = 4) -> Image.Image:
    """Return the images on one RGB sheet, ``columns`` wide, in prompt order."""
    columns = max(1, min(columns, len(images)))
    rows = math.ceil(len(images) / columns)
    w, h = images[0].size
    sheet = Image.new("RGB", (columns * w, rows * h), "white")
    for i, image in enumerate(images):
        sheet.paste(image.convert("RGB"), ((i % columns) * w, (i // columns) * h))
    return sheet


def sheet_path(out: Path, step: int) -> Path:
    return out / FOLDER / f"step-{step:06d}.png"
