"""LoRA adapters added to and loaded into every model through peft itself.

transformers' own PEFT integration (``PreTrainedModel.add_adapter`` / ``load_adapter``, which
diffusers' ``load_lora_weights`` calls for text encoders) refuses to run unless peft is at least a
version it raises with its own releases: transformers 5.24 demanded peft >= 0.22 while PyPI's
newest peft was 0.21.2, and ``faceset train --train-text-encoder`` failed after a minute of
loading. peft's ``inject_adapter_in_model`` is what diffusers' ``add_adapter`` calls for the UNet
and the transformers; the text encoders take the same path here, so no version pairing of two
other packages decides whether faceset can train on or draw with a text-encoder LoRA.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_peft
from diffusers.utils.peft_utils import _create_lora_config
from peft import LoraConfig, inject_adapter_in_model
from peft.utils import set_peft_model_state_dict

DEFAULT_ADAPTER = "default"


def add_lora(
    module: torch.nn.Module, config: LoraConfig, adapter_name: str = DEFAULT_ADAPTER
) -> None:
    """Add a trainable LoRA adapter to a text encoder (or any torch model) with peft itself.

    This is the injection diffusers' ``ModelMixin.add_adapter`` does for a UNet or transformer.
    Afterwards ``module.peft_config[adapter_name]`` holds ``config``, so peft's
    ``get_peft_model_state_dict`` and ``set_peft_model_state_dict`` work on it.
    """
    inject_adapter_in_model(config, module, adapter_name=adapter_name)


def load_lora_file(pipeline: Any, path: Path, adapter_name: str) -> None:
    """Load the LoRA file at ``path`` onto ``pipeline`` as ``adapter_name``.

    The denoiser's part goes through diffusers' own loader (key conversion, alphas); a text
    encoder's part is converted the same way and then injected with peft directly (see the
    module docstring), so the result equals ``pipeline.load_lora_weights(path)``.
    """
    if getattr(pipeline, "unet", None) is None:  # a transformer family: no text-encoder LoRA
        pipeline.load_lora_weights(str(path), adapter_name=adapter_name)
        return
    # unet_config lets SDXL's loader map kohya's SGM block names (as its load_lora_weights does).
    state_dict, network_alphas, metadata = pipeline.lora_state_dict(
        str(path), unet_config=pipeline.unet.config, return_lora_metadata=True
    )
    encoders = [
        name
        for name in getattr(pipeline, "_lora_loadable_modules", ())
        if name.startswith("text_encoder") and any(k.startswith(f"{name}.") for k in state_dict)
    ]
    if not encoders:
        pipeline.load_lora_weights(str(path), adapter_name=adapter_name)
        return
    encoder_prefixes = tuple(f"{name}." for name in encoders)
    denoiser = {k: v for k, v in state_dict.items() if not k.startswith(encoder_prefixes)}
    pipeline.load_lora_into_unet(
        denoiser,
        network_alphas=network_alphas,
        unet=pipeline.unet,
        adapter_name=adapter_name,
        metadata=metadata,
        _pipeline=pipeline,
    )
    for name in encoders:
        _load_into_text_encoder(
            getattr(pipeline, name), name, state_dict, network_alphas, metadata, adapter_name
        )


def _load_into_text_encoder(
    encoder: torch.nn.Module,
    prefix: str,
    state_dict: Mapping[str, torch.Tensor],
    network_alphas: Mapping[str, torch.Tensor] | None,
    metadata: Mapping[str, Any] | None,
    adapter_name: str,
) -> None:
    """Inject and fill ``encoder``'s adapter from the ``prefix.`` keys of a converted state dict.

    The conversion steps are diffusers' ``_load_lora_into_text_encoder`` (0.42), step for step,
    up to its call of transformers' ``load_adapter``.
    """
    part = {
        k.removeprefix(f"{prefix}."): v for k, v in state_dict.items() if k.startswith(f"{prefix}.")
    }
    part = convert_state_dict_to_peft(convert_state_dict_to_diffusers(part))
    if not hasattr(encoder, "text_model"):
        # transformers 5 flattened CLIPTextModel; files keep the 4.x ``text_model.`` names.
        part = {k.removeprefix("text_model."): v for k, v in part.items()}
    rank = {k: v.shape[1] for k, v in part.items() if k.endswith("lora_B.weight")}
    alphas = None
    if network_alphas is not None:
        alphas = {
            k.removeprefix(f"{prefix}."): v
            for k, v in network_alphas.items()
            if k.split(".")[0] == prefix
        }
    if metadata:  # the adapter config a diffusers-format file carries: its true alpha
        metadata = {
            k.removeprefix(f"{prefix}."): v
            for k, v in metadata.items()
            if k.startswith(f"{prefix}.")
        }
    config = _create_lora_config(part, alphas, metadata or None, rank, is_unet=False)
    inject_adapter_in_model(config, encoder, adapter_name=adapter_name)
    set_peft_model_state_dict(encoder, part, adapter_name=adapter_name)
