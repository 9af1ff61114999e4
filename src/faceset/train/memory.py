"""The memory plan: how a transformer family is held to train within a GPU's memory.

A pure function of the model's parameter counts, the budget and the run's settings: it picks
the least lossy way to hold the frozen transformer (bf16; fp8 storage with bf16 compute; int8
weight-only with torchao; NF4 with bitsandbytes), block offloading as the last resort, whether
the text encoder caches its embeddings on the GPU, in int8 or on the CPU (it is freed before
training either way), gradient checkpointing and the 8-bit optimiser, and predicts the peak.
Every choice can be overridden (``--quantize``, ``--offload``, ``--gradient-checkpointing``,
``--optimizer``). The techniques and where they run are in ../shared/reference/dit-families.md
section 5; the peak model is an estimate checked by ``python -m bench.train`` on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Quantize = Literal["none", "fp8", "int8", "nf4"]
Offload = Literal["none", "block"]
TextEncoderMode = Literal["bf16", "int8", "cpu"]
Vram = Literal["auto", "8", "12", "16", "24", "48"]

GIB = 1024**3
WEIGHT_BYTES: dict[str, float] = {"none": 2.0, "fp8": 1.0, "int8": 1.0, "nf4": 0.56}
"""Bytes per frozen weight: bf16; fp8 or int8 storage; NF4 packs two per byte, plus its
per-64-weight absmax (and bitsandbytes' double quantisation of those)."""
CUDA_OVERHEAD_GIB = 0.9
"""The CUDA context, cuBLAS workspaces and allocator slack, seen in practice on every GPU."""
HEADROOM = 0.92
"""A plan fits when its peak is under this share of the budget: fragmentation needs room."""
ACTIVATION_FACTOR = 34
"""Bytes kept per token and hidden unit by one transformer block's forward for its backward
in bf16 (attention projections, the MLP's 4x hidden, norms, modulation): about 17 values."""
LORA_BYTES = {"adamw": 16, "adamw8bit": 10}
"""Per trainable parameter: fp32 weight and gradient, plus AdamW's two states (8-bit: 2 bytes)."""
TARGETS_PER_BLOCK = 6
"""Adapted projections per block (q, k, v, out, and the MLP or fused projections)."""


@dataclass(frozen=True, slots=True)
class ModelSize:
    """What the plan needs to know about a model: counts, not weights."""

    transformer: int
    """Parameters of the transformer."""
    text_encoder: int
    """Parameters of the text encoder(s)."""
    vae: int
    blocks: int
    """Transformer blocks: the unit of checkpointing and offloading."""
    hidden: int
    """Hidden size of a block."""
    patch: int = 16
    """Pixels per image token along a side: the VAE's 8 times the 2x2 patch."""
    text_tokens: int = 512


# The published architectures (reference section 1.1), for the bench and the tests.
SIZES: dict[str, ModelSize] = {
    "flux2-klein-4b": ModelSize(3_880_000_000, 4_020_000_000, 84_000_000, 25, 3072),
    "flux2-klein-9b": ModelSize(9_080_000_000, 8_190_000_000, 84_000_000, 32, 4096),
    "zimage": ModelSize(6_150_000_000, 4_020_000_000, 84_000_000, 34, 3840),
    "qwen-image": ModelSize(20_430_000_000, 8_290_000_000, 127_000_000, 60, 3072),
    "flux1": ModelSize(11_900_000_000, 4_880_000_000, 84_000_000, 57, 3072, text_tokens=512),
}
TARGET_GIB = {
    "flux2-klein-4b": 8,
    "flux2-klein-9b": 12,
    "zimage": 12,
    "flux1": 12,
    "qwen-image": 24,
}
"""Issue 14's targets: what each family must train within."""


@dataclass(frozen=True, slots=True)
class Overrides:
    """Settings the user fixed; None: the plan decides."""

    quantize: Quantize | None = None
    offload: Offload | None = None
    gradient_checkpointing: bool | None = None
    optimizer: Literal["adamw", "adamw8bit"] | None = None
    text_encoder: TextEncoderMode | None = None


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """How to hold the model, and the peaks that predicts."""

    budget_gib: float | None
    """None: no budget (the CPU, or a GPU whose memory is not asked)."""
    quantize: Quantize
    offload: Offload
    text_encoder: TextEncoderMode
    gradient_checkpointing: bool
    optimizer: Literal["adamw", "adamw8bit"]
    caching_gib: float
    """Predicted peak while latents and embeddings are cached (text encoder and VAE loaded)."""
    training_gib: float
    """Predicted peak while training (the text encoder is gone)."""
    shards: int = 1
    """GPUs the transformer is sharded across (FSDP); 1: each holds it whole."""

    @property
    def peak_gib(self) -> float:
        return max(self.caching_gib, self.training_gib)

    @property
    def fits(self) -> bool:
        return self.budget_gib is None or self.peak_gib <= self.budget_gib * HEADROOM

    def describe(self) -> str:
        held = {"none": "bf16", "fp8": "fp8 storage, bf16 compute", "int8": "int8 weight-only",
                "nf4": "NF4"}[self.quantize]  # fmt: skip
        parts = [
            f"transformer {held}"
            + (f" sharded {self.shards} ways (FSDP)" if self.shards > 1 else ""),
            "block offload" if self.offload == "block" else "no offload",
            f"text encoder {'on the CPU' if self.text_encoder == 'cpu' else self.text_encoder}"
            " then freed",
            f"gradient checkpointing {'on' if self.gradient_checkpointing else 'off'}",
            self.optimizer,
            f"predicted peak {self.peak_gib:.1f} GiB",
        ]
        if self.budget_gib is not None:
            parts[-1] += f" of {self.budget_gib:g}"
        return ", ".join(parts)


def predict(
    size: ModelSize,
    *,
    quantize: Quantize,
    offload: Offload,
    text_encoder: TextEncoderMode,
    gradient_checkpointing: bool,
    optimizer: Literal["adamw", "adamw8bit"],
    resolution: int,
    rank: int,
    batch_size: int = 1,
    shards: int = 1,
) -> tuple[float, float]:
    """Return the predicted (caching, training) peaks in GiB of each GPU; ``shards``: the
    processes FSDP splits the transformer, adapter and optimiser state across."""
    te_bytes = {"bf16": 2.0, "int8": 1.0, "cpu": 0.0}[text_encoder]
    caching = size.text_encoder * te_bytes + size.vae * 2 + 0.5 * GIB
    weights = size.transformer * WEIGHT_BYTES[quantize]
    if offload == "block":
        # Two blocks resident (the one running, the next arriving) and what is outside the
        # blocks (embedders, final layer: a few per cent).
        per_block = weights * 0.95 / size.blocks
        weights = weights * 0.05 + 2 * per_block
    elif shards > 1:
        # Each process keeps its 1/N, and gathers the block running and the next one whole.
        per_block = weights * 0.95 / size.blocks
        weights = weights / shards + 2 * per_block
    tokens = (resolution // size.patch) ** 2 + size.text_tokens
    per_block_activations = batch_size * tokens * size.hidden * ACTIVATION_FACTOR
    if gradient_checkpointing:
        # Each block's input is kept (bf16), and one block's full activations at a time.
        activations = size.blocks * batch_size * tokens * size.hidden * 2 + per_block_activations
    else:
        activations = size.blocks * per_block_activations
    lora = rank * 2 * size.hidden * TARGETS_PER_BLOCK * size.blocks * LORA_BYTES[optimizer] / shards
    training = weights + activations + lora
    return ((caching / GIB) + CUDA_OVERHEAD_GIB, (training / GIB) + CUDA_OVERHEAD_GIB)


def plan(
    size: ModelSize,
    budget_gib: float | None,
    *,
    resolution: int,
    rank: int,
    cuda: bool,
    bitsandbytes: bool,
    batch_size: int = 1,
    shards: int = 1,
    overrides: Overrides = Overrides(),
) -> MemoryPlan:
    """Return the least lossy plan whose predicted peak fits ``budget_gib`` (None: no budget;
    everything in bf16, as on the CPU). Where nothing fits, the leanest plan (``fits`` False).

    NF4 and the 8-bit optimiser need bitsandbytes on a CUDA GPU; block offloading needs a GPU.
    ``shards`` > 1 (FSDP across that many GPUs) holds the weights in bf16 or fp8 only: FSDP
    cannot split int8 or NF4 tensors, and gathers one block at a time in place of offloading.
    """
    # bitsandbytes' 8-bit AdamW fails on FSDP's sharded weights (bitsandbytes#1633).
    eight_bit = cuda and bitsandbytes and shards == 1
    optimizer = overrides.optimizer or ("adamw8bit" if eight_bit else "adamw")
    checkpointing = (
        cuda if overrides.gradient_checkpointing is None else overrides.gradient_checkpointing
    )
    holds: list[tuple[Quantize, Offload]] = [("none", "none"), ("fp8", "none")]
    if shards == 1:
        holds.append(("int8", "none"))
        if cuda and bitsandbytes:
            holds.append(("nf4", "none"))
        if cuda:
            holds.append(("int8", "block"))
            if bitsandbytes:
                holds.append(("nf4", "block"))
    if budget_gib is None:
        holds = holds[:1]
    if overrides.quantize is not None or overrides.offload is not None:
        holds = [
            (overrides.quantize or q, overrides.offload or o)
            for q, o in holds
            if overrides.quantize in (None, q) and overrides.offload in (None, o)
        ] or [(overrides.quantize or "none", overrides.offload or "none")]
    encoders: list[TextEncoderMode] = (
        [overrides.text_encoder] if overrides.text_encoder else ["bf16", "int8", "cpu"]
    )
    if budget_gib is None and overrides.text_encoder is None:
        encoders = ["bf16"]
    best: MemoryPlan | None = None
    for quantize, offload in holds:
        for text_encoder in encoders:
            caching, training = predict(
                size, quantize=quantize, offload=offload, text_encoder=text_encoder,
                gradient_checkpointing=checkpointing, optimizer=optimizer,
                resolution=resolution, rank=rank, batch_size=batch_size, shards=shards,
            )  # fmt: skip
            candidate = MemoryPlan(
                budget_gib, quantize, offload, text_encoder, checkpointing, optimizer,
                round(caching, 2), round(training, 2), shards,
            )  # fmt: skip
            if candidate.fits:
                return candidate
            if best is None or candidate.peak_gib < best.peak_gib:
                best = candidate
    assert best is not None
    return best


def budget(vram: Vram | None, free_gib: float | None) -> float | None:
    """Return the budget in GiB for ``--vram`` (``auto``: the GPU's free memory)."""
    if vram is None:
        return None
    if vram == "auto":
        return free_gib
    return float(vram)
