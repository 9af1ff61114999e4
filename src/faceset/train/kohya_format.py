"""The kohya LoRA file: key names, the true alpha, ``ss_*``/``modelspec.*`` metadata, sshs hashes.

This is the format A1111, ComfyUI and diffusers all load (../shared/reference/trainers.md
section 6). It is written from peft's own state dict rather than with diffusers'
``convert_state_dict_to_kohya``, which writes ``alpha = rank`` whatever the real alpha and always
names the text encoder ``lora_te1_`` (section 7, pitfalls 1 and 3).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import safetensors.torch
import torch

from faceset.train import families
from faceset.train.config import RunConfig
from faceset.train.dataset import Dataset

UNET = "lora_unet"
TEXT_ENCODER = "lora_te"  # SD 1.x
TEXT_ENCODERS_XL = ("lora_te1", "lora_te2")  # SDXL: CLIP ViT-L, then OpenCLIP bigG

_PEFT_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")
_DIFFUSERS_BLOCK = re.compile(
    r"^(?P<kind>down_blocks|up_blocks)\.(?P<block>\d+)\.attentions\.(?P<layer>\d+)\.(?P<rest>.+)$"
)


def unet_to_kohya(
    peft_state: Mapping[str, torch.Tensor], alpha: float, *, sgm_layers_per_block: int | None
) -> dict[str, torch.Tensor]:
    """Return kohya tensors for a UNet's peft LoRA state dict.

    ``sgm_layers_per_block`` (SDXL) renames diffusers blocks to the SGM names sd-scripts writes
    for SDXL (``input_blocks_4_1_…``); None (SD 1.x) keeps the diffusers names, as kohya trains
    SD 1.x on the diffusers UNet.
    """

    def name(module: str) -> str:
        if sgm_layers_per_block is not None:
            module = to_sgm(module, sgm_layers_per_block)
        return module

    return _to_kohya(peft_state, alpha, UNET, name)


def text_encoder_to_kohya(
    peft_state: Mapping[str, torch.Tensor], alpha: float, prefix: str
) -> dict[str, torch.Tensor]:
    """Return kohya tensors for a CLIP text encoder's peft LoRA state dict.

    transformers 5 flattened ``CLIPTextModel``: its modules are ``encoder.layers.N…``, where 4.x
    had ``text_model.encoder.layers.N…``. ComfyUI maps only the ``text_model_`` form, so that is
    what is written whichever transformers trained it (reference section 6).
    """

    def name(module: str) -> str:
        return module if module.startswith("text_model.") else f"text_model.{module}"

    return _to_kohya(peft_state, alpha, prefix, name)


def _to_kohya(
    peft_state: Mapping[str, torch.Tensor],
    alpha: float,
    prefix: str,
    rename: Callable[[str], str],
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, tensor in peft_state.items():
        m = _PEFT_KEY.match(key)
        if m is None:
            # A key that is not lora_A/lora_B (DoRA magnitudes, biases) has no kohya spelling;
            # diffusers rejects a kohya file with any leftover key (reference section 7.4).
            raise ValueError(f"no kohya name for LoRA tensor {key}")
        stem = f"{prefix}_{rename(m['module']).replace('.', '_')}"
        part = "lora_down" if m["part"] == "A" else "lora_up"
        out[f"{stem}.{part}.weight"] = tensor.detach().to("cpu", torch.float32).contiguous()
        # kohya's scale is alpha / rank, alpha stored per module as a 0-dim tensor; write the
        # true alpha, never rank (reference section 7.1).
        out[f"{stem}.alpha"] = torch.tensor(float(alpha), dtype=torch.float32)
    return out


def to_sgm(module: str, layers_per_block: int) -> str:
    """Return the SGM (original SDXL) name of a diffusers UNet attention module path.

    ``down_blocks.i.attentions.j`` is ``input_blocks.(1 + i*(L+1) + j).1``,
    ``mid_block.attentions.0`` is ``middle_block.1`` and ``up_blocks.i.attentions.j`` is
    ``output_blocks.(i*(L+1) + j).1``, L being ``layers_per_block``: the inverse of diffusers'
    ``_maybe_map_sgm_blocks_to_diffusers``.
    """
    if module.startswith("mid_block.attentions.0."):
        return "middle_block.1." + module.removeprefix("mid_block.attentions.0.")
    m = _DIFFUSERS_BLOCK.match(module)
    if m is None:
        raise ValueError(f"no SGM name for UNet module {module}")
    block, layer = int(m["block"]), int(m["layer"])
    if m["kind"] == "down_blocks":
        return f"input_blocks.{1 + block * (layers_per_block + 1) + layer}.1.{m['rest']}"
    return f"output_blocks.{block * (layers_per_block + 1) + layer}.1.{m['rest']}"


def metadata(
    cfg: RunConfig,
    dataset: Dataset,
    *,
    resolution: int,
    steps: int,
    optimizer: str,
    precision: str,
    started_at: datetime,
    finished_at: datetime,
) -> dict[str, str]:
    """Return the safetensors header metadata kohya, A1111 and ComfyUI read; all values strings.

    ``ss_*`` keys follow ``kohya-ss/sd-scripts:train_network.py``, ``modelspec.*`` keys
    ``library/sai_model_spec.py`` (reference section 6).
    """
    sdxl = cfg.family == "sdxl"
    name = cfg.name
    reg_images = sum(len(c.examples) for c in dataset.reg)
    family = families.info(cfg.family)
    lokr = cfg.network == "lokr"
    return {
        "ss_network_module": "lycoris.kohya" if lokr else "networks.lora",
        "ss_network_dim": str(cfg.rank),
        "ss_network_alpha": _number(cfg.alpha),
        "ss_network_args": json.dumps({"algo": "lokr"} if lokr else {}),
        "ss_base_model_version": _BASE_VERSIONS.get(cfg.family, cfg.family.replace("-", "_")),
        "ss_v2": "False",
        "ss_output_name": name,
        "ss_resolution": f"({resolution}, {resolution})",
        "ss_num_train_images": str(dataset.num_train_images),
        "ss_num_reg_images": str(reg_images),
        "ss_tag_frequency": json.dumps(dataset.tag_frequency(), ensure_ascii=False),
        "ss_dataset_dirs": json.dumps(dataset.dirs(), ensure_ascii=False),
        "ss_training_comment": dataset.trigger,
        "ss_learning_rate": _number(cfg.lr),
        "ss_unet_lr": _number(cfg.lr),
        "ss_text_encoder_lr": _number(cfg.text_encoder_lr) if cfg.train_text_encoder else "0",
        "ss_network_train_unet_only": str(not cfg.train_text_encoder),
        "ss_max_train_steps": str(cfg.steps),
        "ss_steps": str(steps),
        "ss_batch_size_per_device": str(cfg.batch_size),
        "ss_lr_scheduler": cfg.lr_scheduler,
        "ss_lr_warmup_steps": str(cfg.lr_warmup_steps),
        "ss_optimizer": optimizer,
        "ss_mixed_precision": precision,
        "ss_gradient_checkpointing": str(bool(cfg.gradient_checkpointing)),
        "ss_max_grad_norm": _number(cfg.max_grad_norm),
        "ss_masked_loss": str(bool(cfg.masked_loss)),
        "ss_prior_loss_weight": _number(cfg.prior_loss_weight),
        "ss_seed": str(cfg.seed),
        "ss_sd_model_name": _model_name(cfg.base),
        "ss_training_started_at": str(started_at.timestamp()),
        "ss_training_finished_at": str(finished_at.timestamp()),
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.architecture": f"{family.architecture}/{cfg.network}",
        "modelspec.implementation": (
            "https://github.com/Stability-AI/generative-models" if sdxl else "diffusers"
        ),
        "modelspec.title": name,
        "modelspec.resolution": f"{resolution}x{resolution}",
        "modelspec.trigger_phrase": dataset.class_tokens,
        "modelspec.date": finished_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
    }


_BASE_VERSIONS = {"sd15": "sd_v1", "sdxl": "sdxl_base_v1-0"}
"""kohya's ``ss_base_model_version``; the transformers get their family name (``flux2_klein``)."""


def _number(x: float) -> str:
    """Return ``x`` as kohya writes numbers: ``16`` rather than ``16.0``, ``0.0001`` as is."""
    return str(int(x)) if float(x).is_integer() else str(x)


def _model_name(base: str) -> str:
    path = Path(base)
    return path.name if path.exists() else base


def sshs_hashes(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> tuple[str, str]:
    """Return ``(sshs_model_hash, sshs_legacy_hash)`` as sd-scripts computes them.

    ``precalculate_safetensors_hashes``: serialise the tensors with only the ``ss_*`` metadata;
    the model hash is the sha256 of the bytes after the header, the legacy hash the first 8 hex
    digits of the sha256 of bytes [0x100000, 0x110000).
    """
    blob = safetensors.torch.save(
        dict(tensors), {k: v for k, v in meta.items() if k.startswith("ss_")}
    )
    header = 8 + int.from_bytes(blob[:8], "little")
    model_hash = hashlib.sha256(blob[header:]).hexdigest()
    legacy_hash = hashlib.sha256(blob[0x100000:0x110000]).hexdigest()[:8]
    return model_hash, legacy_hash


def save(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> Path:
    """Write a kohya LoRA file with ``meta`` and its sshs hashes; atomically. Return ``path``."""
    model_hash, legacy_hash = sshs_hashes(tensors, meta)
    header = {**meta, "sshs_model_hash": model_hash, "sshs_legacy_hash": legacy_hash}
    tmp = path.with_name(f".{path.name}.tmp")
    safetensors.torch.save_file(dict(tensors), str(tmp), header)
    os.replace(tmp, path)
    return path
