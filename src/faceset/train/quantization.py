"""Holding the frozen transformer (and the text encoder while it caches) in less memory.

What the memory plan (``train/memory.py``) chose, applied with the libraries the reference found
working (../shared/reference/dit-families.md section 5): torchao int8 weight-only (CPU and GPU;
peft puts its LoRA on the quantised linears), diffusers' layerwise casting for fp8 storage with
bf16 compute, bitsandbytes NF4 (CUDA only), diffusers' group offloading by blocks (GPU only).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from pathlib import Path
from typing import Any

import torch

from faceset.errors import ConfigError
from faceset.train.memory import MemoryPlan

log = logging.getLogger(__name__)


def check_available(plan: MemoryPlan, cuda: bool) -> None:
    """Raise ConfigError, in one line, for a choice this machine cannot run."""
    if plan.quantize == "nf4":
        if not cuda:
            raise ConfigError(
                "--quantize nf4 needs a CUDA GPU (bitsandbytes); on this machine use int8 or fp8"
            )
        _require("bitsandbytes", "--quantize nf4")
    if plan.offload == "block" and not cuda:
        raise ConfigError("--offload block needs a GPU to offload to; leave it out on the CPU")
    if plan.optimizer == "adamw8bit":
        _require("bitsandbytes", "optimizer adamw8bit")
    if plan.quantize == "int8" or plan.text_encoder == "int8":
        _require("torchao", "int8 weights")


def _require(module: str, what: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{what} needs {module}: pip install {module}")


def int8_weights(model: torch.nn.Module) -> None:
    """Store ``model``'s linear weights as int8 (torchao weight-only), in place."""
    # torchao reports its optional CUDA kernels missing on import; nothing to act on here.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from torchao.quantization import Int8WeightOnlyConfig, quantize_
    quantize_(model, Int8WeightOnlyConfig())
    log.info("%s: int8 weights", type(model).__name__)


def fp8_storage(transformer: Any, compute: torch.dtype) -> None:
    """Keep the transformer's weights in float8 and cast each layer to ``compute`` as it runs;
    the LoRA layers stay as they are (after ``add_adapter``, as the reference does)."""
    transformer.enable_layerwise_casting(
        storage_dtype=torch.float8_e4m3fn,
        compute_dtype=compute,
        skip_modules_pattern=(*_skip_patterns(transformer), "lora_"),
    )


def fp8_storage_for_sharding(transformer: Any, compute: torch.dtype) -> None:
    """``fp8_storage`` for a transformer FSDP will shard: the same linear layers in float8, each
    cast to ``compute`` inside its forward without touching the parameter.

    FSDP2 gathers a block's weights into its parameters' own storage and frees that storage
    after the block ran. diffusers' layerwise casting swaps each parameter's ``.data`` for a
    cast copy and back, so after the first step every layer holds its whole weight again and
    sharding saves nothing; a cast that reads the parameter and leaves it alone keeps the
    gathered weights transient. The layers are those ``fp8_storage`` casts (diffusers'
    traversal and skip patterns), which in these transformers are all ``nn.Linear``; the hook
    keeps diffusers' name for layerwise casting, so the model still reports ``compute`` as its
    dtype (the pipelines cast their inputs to it)."""
    from diffusers.hooks import HookRegistry, ModelHook

    class CastInForward(ModelHook):  # type: ignore[misc]
        storage_dtype, compute_dtype = torch.float8_e4m3fn, compute

        def initialize_hook(self, module: torch.nn.Module) -> torch.nn.Module:
            return module.to(self.storage_dtype)

        def new_forward(self, module: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
            bias = None if module.bias is None else module.bias.to(compute)
            return torch.nn.functional.linear(x, module.weight.to(compute), bias)

    for layer in _cast_layers(transformer, (*_skip_patterns(transformer), "lora_")):
        HookRegistry.check_if_exists_or_initialize(layer).register_hook(
            CastInForward(), "layerwise_casting"
        )


def _skip_patterns(transformer: Any) -> tuple[str, ...]:
    return tuple(
        getattr(transformer, "_skip_layerwise_casting_patterns", None) or ("pos_embed", "norm")
    )


def _cast_layers(module: torch.nn.Module, skip: tuple[str, ...], prefix: str = "") -> list[Any]:
    """The linear layers diffusers' layerwise casting would cast (its traversal: a module whose
    name matches a skip pattern is left out with everything under it)."""
    if prefix and any(re.search(pattern, prefix) for pattern in skip):
        return []
    if isinstance(module, torch.nn.Linear):
        return [module]
    return [
        layer
        for name, child in module.named_children()
        for layer in _cast_layers(child, skip, f"{prefix}.{name}" if prefix else name)
    ]


def block_offload(transformer: Any, device: torch.device) -> None:
    """Keep the blocks in CPU memory and bring each to ``device`` as it runs, on a CUDA stream."""
    transformer.enable_group_offload(
        onload_device=device,
        offload_device=torch.device("cpu"),
        offload_type="block_level",
        num_blocks_per_group=1,
        use_stream=True,
    )


def nf4_transformer(base: str, transformer: Any) -> Any:
    """Return the transformer of ``base`` loaded again in NF4 (bitsandbytes, CUDA)."""
    from diffusers import BitsAndBytesConfig

    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )
    folder = Path(base).expanduser()
    if not (folder / "transformer").is_dir() and not (not folder.exists() and "/" in base):
        raise ConfigError(
            f"--quantize nf4 loads the transformer from a diffusers folder or model id; {base} is"
            " neither: use --quantize int8 or fp8"
        )
    quantized = type(transformer).from_pretrained(
        str(folder) if folder.exists() else base,
        subfolder="transformer",
        quantization_config=config,
        torch_dtype=torch.bfloat16,
        local_files_only=folder.exists(),
    )
    del transformer
    return quantized
