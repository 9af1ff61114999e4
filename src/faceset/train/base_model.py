"""The base model a LoRA is trained on: loaded from a folder, a checkpoint file or a model id.

The family ``--for`` names is checked before the weights are read wherever the files say it
(``model_index.json``, checkpoint keys) and again on the loaded UNet, so a mismatch is one line
rather than a shape error deep inside diffusers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    DDPMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from safetensors import safe_open

from faceset.train import detect
from faceset.train.config import Family
from faceset.train.errors import BaseModelError

log = logging.getLogger(__name__)

PIPELINES: dict[str, type[StableDiffusionPipeline] | type[StableDiffusionXLPipeline]] = {
    "sd15": StableDiffusionPipeline,
    "sdxl": StableDiffusionXLPipeline,
}
_NAMES = {"sd15": "SD 1.5", "sdxl": "SDXL"}
_FAMILY_OF_PIPELINE = {"StableDiffusionPipeline": "sd15", "StableDiffusionXLPipeline": "sdxl"}


@dataclass(slots=True)
class Base:
    """A loaded base pipeline and the parts training uses, all on the CPU in float32."""

    pipeline: StableDiffusionPipeline | StableDiffusionXLPipeline
    family: Family
    noise_scheduler: DDPMScheduler
    """The training scheduler (DDPM) built from the pipeline's scheduler config."""

    @property
    def unet(self) -> UNet2DConditionModel:
        return self.pipeline.unet

    @property
    def text_encoders(self) -> list[Any]:
        """One CLIP text encoder for SD 1.5, two for SDXL (ViT-L, then OpenCLIP bigG)."""
        if self.family == "sdxl":
            return [self.pipeline.text_encoder, self.pipeline.text_encoder_2]
        return [self.pipeline.text_encoder]

    @property
    def tokenizers(self) -> list[Any]:
        if self.family == "sdxl":
            return [self.pipeline.tokenizer, self.pipeline.tokenizer_2]
        return [self.pipeline.tokenizer]


def load_base(base: str, family: Family) -> Base:
    """Return the base model ``base`` (folder, ``.safetensors`` file or model id) of ``family``.

    Raises BaseModelError when it cannot be loaded or is not of ``family``.
    """
    path = Path(base).expanduser()
    pipeline_class = PIPELINES[family]
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if family == "sd15":
        # Training never runs the NSFW checker; loading it would fetch 1.2 GB for nothing.
        kwargs |= {"safety_checker": None, "requires_safety_checker": False}
    load: Callable[[], Any]
    if path.is_dir():
        _check_family(base, _family_of_folder(path), family)
        load = lambda: pipeline_class.from_pretrained(str(path), local_files_only=True, **kwargs)  # noqa: E731
    elif path.is_file():
        if path.suffix.lower() != ".safetensors":
            raise BaseModelError(
                f"base model {base} is not a .safetensors checkpoint; pass a .safetensors file or"
                " a diffusers folder (pickled .ckpt files are not loaded)"
            )
        _check_family(base, _family_of_checkpoint(path), family)
        load = lambda: pipeline_class.from_single_file(str(path), **kwargs)  # noqa: E731
    elif base.startswith((".", "/", "~")) or base.count("/") > 1:
        raise BaseModelError(f"base model {base} does not exist")
    else:
        load = lambda: pipeline_class.from_pretrained(base, **kwargs)  # noqa: E731
    log.info("loading %s base model %s", _NAMES[family], base)
    try:
        pipeline = load()
    except (torch.OutOfMemoryError, KeyboardInterrupt):
        raise
    except Exception as e:  # diffusers and the hub raise many types for a model they cannot use
        raise BaseModelError(f"cannot load base model {base}: {_reason(e)}") from e
    _check_family(base, _family_of_unet(pipeline.unet), family)
    noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    return Base(pipeline, family, noise_scheduler)


def _reason(error: BaseException) -> str:
    """Return the first line of ``error``, and of its root cause where that says more."""

    def first_line(e: BaseException) -> str:
        return (str(e).strip().splitlines() or [type(e).__name__])[0]

    root = error
    while (cause := root.__cause__ or root.__context__) is not None:
        root = cause
    outer = first_line(error)
    # huggingface_hub's "check out the root cause in the stacktrace above": there is no stack
    # trace for a one-line error, so say the root cause instead.
    outer = outer.split(" Please check out the root cause")[0]
    return outer if root is error else f"{outer} ({first_line(root)})"


def _check_family(base: str, found: str | None, wanted: Family) -> None:
    if found is None or found == wanted:
        return
    if found in _NAMES:
        raise BaseModelError(
            f"base model {base} is {_NAMES[found]}, not {_NAMES[wanted]}; pass --for {found}"
        )
    raise BaseModelError(f"base model {base} is {found}; faceset trains SD 1.5 and SDXL LoRAs")


def _family_of_folder(path: Path) -> str:
    index = path / "model_index.json"
    try:
        class_name = str(json.loads(index.read_text(encoding="utf-8")).get("_class_name", ""))
    except FileNotFoundError:
        raise BaseModelError(
            f"base model {path} is not a diffusers folder (no model_index.json)"
        ) from None
    except (OSError, ValueError) as e:
        raise BaseModelError(f"cannot read {index}: {e}") from None
    if class_name in _FAMILY_OF_PIPELINE:
        return _FAMILY_OF_PIPELINE[class_name]
    if "XL" in class_name and "Img2Img" not in class_name:
        return "sdxl"
    return f"a {class_name or 'pipeline of unknown class'}"


def _family_of_checkpoint(path: Path) -> str | None:
    """Return the family of an original-format checkpoint from its key names; None if unsure."""
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
    except Exception as e:  # safetensors raises its own error type for a file it cannot parse
        raise BaseModelError(f"cannot load base model {path}: {_reason(e)}") from e
    return detect.family_of_keys(keys)


def _family_of_unet(unet: UNet2DConditionModel) -> str:
    if unet.config.addition_embed_type == "text_time":
        return "sdxl"
    if unet.config.cross_attention_dim == 1024:
        return "Stable Diffusion 2.x"
    return "sd15"
