"""The model families faceset trains and draws, each described here without importing torch.

SD 1.5 and SDXL train in ``train/loop.py``; the flow-matching transformers (FLUX.2 klein,
Z-Image, Qwen-Image, FLUX.1) share ``train/flow.py``, and each has one module here implementing
:class:`faceset.train.families.base.FlowFamily`: loading, prompt and image encoding, the model
call, LoRA targets and drawing settings. Adding a family is one :data:`CATALOG` entry and one
module. ../shared/reference/dit-families.md is the source of every number below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from faceset.train.families.base import FlowFamily


@dataclass(frozen=True, slots=True)
class FamilyInfo:
    """What is known about a family without loading anything."""

    name: str
    """``--for`` value."""
    label: str
    pipelines: tuple[str, ...]
    """diffusers pipeline class names of ``model_index.json`` that mean this family."""
    architecture: str
    """``modelspec.architecture`` of the LoRA file, before its ``/lora`` or ``/lokr``."""
    licence: str
    hub_id: str
    """The usual base model, for messages and the export's trainer configs."""
    resolution: int
    rank: int
    alpha: float
    lr: float
    steps: int
    draw_steps: int
    guidance: float
    """Each family's own guidance: real CFG (klein, Z-Image, Qwen-Image's true_cfg_scale) or
    FLUX.1's embedded guidance; never one shared number (reference section 6.1)."""
    module: str | None = None
    """The module implementing :class:`FlowFamily`; None: an SD family of ``train/loop.py``."""
    lokr: bool = False
    """diffusers' load_lora_weights reads LoKr files of this family (reference section 4.5)."""
    commercial: bool = True


CATALOG: tuple[FamilyInfo, ...] = (
    FamilyInfo(
        "sd15", "SD 1.5", ("StableDiffusionPipeline",), "stable-diffusion-v1",
        "CreativeML OpenRAIL-M", "stable-diffusion-v1-5/stable-diffusion-v1-5",
        512, 16, 16.0, 1e-4, 1500, 30, 7.0,
    ),
    FamilyInfo(
        "sdxl", "SDXL", ("StableDiffusionXLPipeline",), "stable-diffusion-xl-v1-base",
        "CreativeML OpenRAIL++-M", "stabilityai/stable-diffusion-xl-base-1.0",
        1024, 16, 16.0, 1e-4, 1500, 30, 6.0,
    ),
    FamilyInfo(
        "flux2-klein", "FLUX.2 [klein]", ("Flux2KleinPipeline",), "flux-2-klein",
        "Apache-2.0 (4B); FLUX Non-Commercial (9B)", "black-forest-labs/FLUX.2-klein-base-4B",
        1024, 32, 32.0, 1e-4, 2000, 28, 4.0, "faceset.train.families.flux2_klein", lokr=True,
    ),
    FamilyInfo(
        "zimage", "Z-Image", ("ZImagePipeline",), "z-image", "Apache-2.0",
        "Tongyi-MAI/Z-Image", 1024, 32, 32.0, 1e-4, 2000, 30, 4.0,
        "faceset.train.families.zimage", lokr=True,
    ),
    FamilyInfo(
        "zimage-turbo", "Z-Image Turbo", ("ZImagePipeline",), "z-image-turbo", "Apache-2.0",
        "Tongyi-MAI/Z-Image-Turbo", 1024, 32, 32.0, 1e-4, 2000, 8, 0.0,
        "faceset.train.families.zimage", lokr=True,
    ),
    FamilyInfo(
        "qwen-image", "Qwen-Image", ("QwenImagePipeline",), "qwen-image", "Apache-2.0",
        "Qwen/Qwen-Image", 1024, 32, 32.0, 1e-4, 2000, 40, 4.0,
        "faceset.train.families.qwen_image",
    ),
    FamilyInfo(
        "flux1", "FLUX.1 [dev]", ("FluxPipeline",), "flux-1-dev",
        "FLUX.1 [dev] Non-Commercial", "black-forest-labs/FLUX.1-dev",
        1024, 16, 16.0, 1e-4, 1500, 28, 3.5, "faceset.train.families.flux1", commercial=False,
    ),
)  # fmt: skip
BY_NAME = {info.name: info for info in CATALOG}
SD_FAMILIES = ("sd15", "sdxl")
FLOW_FAMILIES = tuple(info.name for info in CATALOG if info.module)


def info(name: str) -> FamilyInfo:
    return BY_NAME[name]


def flow_family(name: str) -> FlowFamily:
    """Return the implementation of flow-matching family ``name`` (imports torch)."""
    entry = BY_NAME[name]
    if entry.module is None:
        raise KeyError(f"{name} is not a flow-matching family")
    module = importlib.import_module(entry.module)
    return module.family(entry)  # type: ignore[no-any-return]


def of_pipeline(class_name: str) -> str | None:
    """Return the family whose pipeline class is ``class_name`` (from model_index.json)."""
    for entry in CATALOG:
        if class_name in entry.pipelines:
            return entry.name  # zimage-turbo shares ZImagePipeline: the base is meant
    return None
