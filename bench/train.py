"""Training steps of a full-size transformer family within a memory budget, against plain bf16.

Run ``python -m bench.train --family flux2-klein --size 4b --vram 12`` on a CUDA GPU. It builds
the published architecture with random weights from its config (nothing is downloaded: speed
and memory do not depend on the values), holds it as faceset's memory plan says for the budget
(``train/memory.py``, applied by ``flow.hold_and_adapt``, the code training runs), trains a LoRA
for ``--steps`` steps at ``--resolution`` on random latents and text embeddings of the real
shapes, and prints steps/s and peak allocated memory beside the baseline in the same call: the
same steps with the transformer in plain bf16 and gradient checkpointing, which is what
diffusers' ``train_dreambooth_lora_<family>.py --gradient_checkpointing`` does. The text encoder
is not built: faceset frees it before training, and its caching peak is the plan's estimate.

``--tiny`` runs the same code on the test suite's tiny configs (CPU, seconds): a smoke test of the
bench, not a measurement.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from dataclasses import dataclass
from typing import Any

import torch

from faceset.train import families, flow, memory

TARGETS = memory.TARGET_GIB


@dataclass(frozen=True)
class Spec:
    """A full-size architecture: how to build it and the shapes of one step's inputs."""

    family: str
    key: str
    """``memory.SIZES``/``TARGET_GIB`` key."""
    build: dict[str, Any]
    """Transformer config (the class defaults fill the rest)."""
    tiny: dict[str, Any]


SPECS = {
    ("flux2-klein", "4b"): Spec("flux2-klein", "flux2-klein-4b", dict(
        num_layers=5, num_single_layers=20, num_attention_heads=24, joint_attention_dim=7680,
        guidance_embeds=False,
    ), dict(
        in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=48, axes_dims_rope=[4, 4, 4, 4],
        guidance_embeds=False,
    )),
    ("flux2-klein", "9b"): Spec("flux2-klein", "flux2-klein-9b", dict(
        num_layers=8, num_single_layers=24, num_attention_heads=32, joint_attention_dim=12288,
        guidance_embeds=False,
    ), {}),
    ("zimage", ""): Spec("zimage", "zimage", {}, dict(
        dim=32, n_layers=2, n_refiner_layers=1, n_heads=2, n_kv_heads=2, cap_feat_dim=16,
        axes_dims=[8, 4, 4], axes_lens=[256, 32, 32],
    )),
    ("qwen-image", ""): Spec("qwen-image", "qwen-image", {}, dict(
        in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16,
        num_attention_heads=3, joint_attention_dim=16, axes_dims_rope=(8, 4, 4),
    )),
    ("flux1", ""): Spec("flux1", "flux1", dict(guidance_embeds=True), dict(
        in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8], guidance_embeds=True,
    )),
}  # fmt: skip


def build(spec: Spec, tiny: bool, device: torch.device) -> Any:
    """Return the transformer with random bf16 weights on ``device`` (fast: made on the device)."""
    from accelerate import init_empty_weights

    family = families.flow_family(spec.family)
    model_class = _transformer_class(spec.family)
    with init_empty_weights():
        transformer = model_class(**(spec.tiny if tiny else spec.build))
    transformer.to_empty(device=device)
    generator = torch.Generator(device).manual_seed(0)
    with torch.no_grad():
        for parameter in transformer.parameters():
            parameter.normal_(0.0, 0.02, generator=generator)
        for buffer_name, buffer in transformer.named_buffers():
            if buffer.is_floating_point() and "pad_token" not in buffer_name:
                buffer.zero_()
    del family
    return transformer.to(torch.bfloat16 if device.type == "cuda" else torch.float32)


def _transformer_class(family: str) -> Any:
    import diffusers

    return {
        "flux2-klein": diffusers.Flux2Transformer2DModel,
        "zimage": diffusers.ZImageTransformer2DModel,
        "qwen-image": diffusers.QwenImageTransformer2DModel,
        "flux1": diffusers.FluxTransformer2DModel,
    }[family]


def pipeline_for(family: str, transformer: Any, vae_scale: int) -> Any:
    """The family's pipeline around the transformer alone: its packing helpers, no VAE."""
    impl = families.flow_family(family)
    pipe = impl.pipeline_class.__new__(impl.pipeline_class)
    pipe.transformer = transformer
    pipe.vae_scale_factor = vae_scale
    return pipe


def inputs(family: str, transformer: Any, resolution: int, vae_scale: int, device: torch.device,
           dtype: torch.dtype) -> tuple[torch.Tensor, dict[str, Any]]:  # fmt: skip
    """Random x0 and text conditioning of the real shapes for one 1-image step."""
    config = transformer.config
    side = resolution // vae_scale
    if family == "flux2-klein":
        x0 = torch.randn(1, config.in_channels, side // 2, side // 2)
        embeds = torch.randn(1, 512, config.joint_attention_dim)
        text_ids = torch.zeros(1, 512, 4, dtype=torch.long)
        text_ids[..., 3] = torch.arange(512)
        return x0, {"prompt_embeds": embeds, "text_ids": text_ids}
    if family == "zimage":
        x0 = torch.randn(1, config.in_channels, side, side)
        return x0, {"prompt_embeds": [torch.randn(128, config.cap_feat_dim)]}
    if family == "qwen-image":
        x0 = torch.randn(1, config.out_channels, side, side)
        embeds = torch.randn(1, 128, config.joint_attention_dim)
        return x0, {
            "prompt_embeds": embeds,
            "prompt_embeds_mask": torch.ones(1, 128, dtype=torch.long),
        }
    x0 = torch.randn(1, config.in_channels // 4, side, side)
    return x0, {
        "prompt_embeds": torch.randn(1, 512, config.joint_attention_dim),
        "pooled_prompt_embeds": torch.randn(1, config.pooled_projection_dim),
    }


def run(spec: Spec, held: memory.MemoryPlan, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:  # fmt: skip
    """Train ``args.steps`` steps held as ``held``; return steps/s and the peak."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    family = families.flow_family(spec.family)
    build_device = torch.device("cpu") if held.offload == "block" else device
    transformer = build(spec, args.tiny, device if device.type == "cuda" else build_device)
    if build_device != device:
        transformer.to(build_device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    flow.hold_and_adapt(transformer, family, held, device, dtype, network="lora",
                        rank=args.rank, alpha=float(args.rank))  # fmt: skip
    vae_scale = 2 if args.tiny and spec.family == "zimage" else (4 if args.tiny and spec.family == "qwen-image" else (1 if args.tiny else 8))  # fmt: skip
    pipe = pipeline_for(spec.family, transformer, vae_scale)
    params = [p for p in transformer.parameters() if p.requires_grad]
    if held.optimizer == "adamw8bit":
        import bitsandbytes as bnb

        optimizer: Any = bnb.optim.AdamW8bit(params, lr=1e-4)
    else:
        optimizer = torch.optim.AdamW(params, lr=1e-4)
    x0, conditioning = inputs(spec.family, transformer, args.resolution, vae_scale, device, dtype)
    x0 = x0.to(device)
    timings = []
    for step in range(args.steps + args.warmup):
        start = time.perf_counter()
        noise = torch.randn_like(x0)
        sigma = torch.rand(1, device=device)
        noisy = (1 - sigma) * x0 + sigma * noise
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            prediction = family.predict(pipe, transformer, noisy.to(dtype), sigma, [conditioning])
        loss = torch.nn.functional.mse_loss(prediction.float(), (noise - x0).float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= args.warmup:
            timings.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / memory.GIB if device.type == "cuda" else None
    result = {
        "plan": held.describe(),
        "steps_per_s": round(len(timings) / sum(timings), 3),
        "peak_allocated_gib": None if peak is None else round(peak, 2),
        "predicted_training_gib": held.training_gib,
        "loss": round(loss.item(), 4),
    }
    del transformer, optimizer, pipe, params
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="flux2-klein", choices=sorted({k[0] for k in SPECS}))
    parser.add_argument("--size", default="4b", help="klein: 4b or 9b")
    parser.add_argument("--vram", default="12", help="8, 12, 16, 24, 48 or auto")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="tiny configs on the CPU: smoke test")
    args = parser.parse_args()
    spec = SPECS[(args.family, args.size if args.family == "flux2-klein" else "")]
    cuda = torch.cuda.is_available() and not args.tiny
    if not cuda and not args.tiny:
        raise SystemExit("bench.train measures a CUDA GPU; pass --tiny for a CPU smoke run")
    device = torch.device("cuda" if cuda else "cpu")
    if args.tiny:
        args.resolution = 64
    size = memory.SIZES[spec.key]
    free = torch.cuda.mem_get_info(device)[0] / memory.GIB if cuda else None
    import importlib.util

    bnb = importlib.util.find_spec("bitsandbytes") is not None
    held = memory.plan(size, memory.budget(args.vram, free), resolution=args.resolution,  # type: ignore[arg-type]
                       rank=args.rank, cuda=cuda, bitsandbytes=bnb)  # fmt: skip
    report: dict[str, Any] = {
        "family": spec.key, "vram": args.vram, "target_gib": TARGETS[spec.key],
        "resolution": args.resolution, "steps": args.steps, "rank": args.rank,
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "torch": torch.__version__,
    }  # fmt: skip
    report["faceset"] = run(spec, held, args, device)
    if not args.no_baseline:
        plain = memory.plan(size, None, resolution=args.resolution, rank=args.rank, cuda=cuda,
                            bitsandbytes=False,
                            overrides=memory.Overrides(gradient_checkpointing=cuda))  # fmt: skip
        try:
            report["baseline_bf16"] = run(spec, plain, args, device)
            report["time_ratio"] = round(
                report["baseline_bf16"]["steps_per_s"] / report["faceset"]["steps_per_s"], 2
            )
        except torch.OutOfMemoryError:
            report["baseline_bf16"] = "out of memory"
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
