"""The training run, phase by phase, in the manner of diffusers' ``train_dreambooth_lora.py``.

1. read the dataset (fails in a second on the wrong folder, before any model loads);
2. resolve the "auto" settings for this machine and write the resolved config;
3. load the base model and freeze it; add LoRA adapters to the UNet's attention projections
   (and the text encoders' if asked);
4. cache latents, mask weights and text embeddings once;
5. optimiser and learning-rate schedule, handed to accelerate (one GPU, many, or the CPU);
6. resume from the latest checkpoint if asked;
7. the loop: sample, noise, predict, masked and prior-weighted loss, step; checkpoints and
   sample sheets every N steps;
8. write the kohya LoRA, the diffusers LoRA and the resolved config.

Run it on several GPUs with ``accelerate launch -m faceset.train ...`` (README, "Training").
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import (
    DistributedDataParallelKwargs,
    DistributedType,
    InitProcessGroupKwargs,
)
from diffusers.optimization import get_scheduler
from diffusers.training_utils import cast_training_params
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from torch.nn.parallel import DistributedDataParallel

from faceset.train import checkpoints, detect, families, kohya_format, samples
from faceset.train.adapters import add_lora
from faceset.train.base_model import PIPELINES, Base, load_base
from faceset.train.cache import Cache, build_cache, encode_text
from faceset.train.config import (
    CONFIG_FILE,
    RESUMABLE_CHANGES,
    RunConfig,
    TrainConfig,
)
from faceset.train.dataset import Dataset, read_dataset
from faceset.train.errors import ConfigError, DatasetError, OutOfMemory
from faceset.train.report import OnStep, Step, TrainResult, ignore_step

log = logging.getLogger(__name__)

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
"""The UNet's attention projections, as the diffusers LoRA scripts and kohya's default."""
TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
DIFFUSERS_FILE = "pytorch_lora_weights.safetensors"
_TEXT_ENCODER_NAMES = ("text_encoder", "text_encoder_2")
DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def train(cfg: TrainConfig, *, resume: bool = False, on_step: OnStep = ignore_step) -> TrainResult:
    """Train the LoRA ``cfg`` describes and return the files written.

    ``resume`` continues from the newest checkpoint in the output folder with its step count,
    weights and optimiser state. ``on_step`` is called after every optimiser step (on the main
    process only).
    """
    # SDXL conditions on the text encoders' penultimate layer: the last layer's adapter gets no
    # gradient, which DDP must be told of or it stops at the second step.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=cfg.train_text_encoder)
    # A sharded run loads the model one process at a time (train/sharding.py): the others wait
    # at a barrier longer than NCCL's default 10 minutes when the model is large or the disk slow.
    group = InitProcessGroupKwargs(timeout=timedelta(hours=2))
    accelerator = Accelerator(
        mixed_precision=precision_for(cfg.precision), kwargs_handlers=[ddp, group]
    )
    # accelerate launch --use_fsdp asks transformers to load real weights on each machine's first
    # process only and leave the others' missing ones (a ComfyUI text encoder has no lm_head) on
    # the meta device; faceset loads and shards the model itself.
    os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] = "false"
    try:
        check_launch(accelerator)
        with memory_errors(cfg, accelerator.device):
            return _train(cfg, resume, on_step, accelerator)
    finally:
        accelerator.end_training()
        # accelerate keeps one process-wide state and refuses a second Accelerator with another
        # mixed precision; forget it (the distributed set-up, PartialState, stays) so that a
        # notebook or test can train again with other settings.
        AcceleratorState._reset_state()


def _train(
    requested: TrainConfig, resume: bool, on_step: OnStep, accelerator: Accelerator
) -> TrainResult:
    started = time.time()
    device = accelerator.device

    # 1. Dataset.
    dataset = read_dataset(
        requested.dataset, requested.reg, masks=requested.masked_loss is not False
    )

    # 2. Resolved settings and the output folder.
    cfg = resolve(requested, dataset, device, accelerator.mixed_precision)
    cfg = cfg.model_copy(update={"processes": accelerator.num_processes})
    if cfg.family in families.SD_FAMILIES and accelerator.distributed_type == DistributedType.FSDP:
        raise ConfigError(
            f"accelerate --use_fsdp shards the transformer families; {cfg.family} fits one GPU:"
            " launch with --multi_gpu instead"
        )
    out = cfg.out
    checkpoint = checkpoint_to_resume(cfg, out) if resume else None
    if checkpoint is None and checkpoints.latest(out) is not None:
        raise ConfigError(
            f"{out} already holds a training run; pass --resume to continue it, or another --out"
        )
    if checkpoint is not None:
        started = checkpoint.started_at
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).write_text(cfg.to_json(), encoding="utf-8")
    weight_dtype = DTYPES[accelerator.mixed_precision]
    if cfg.family in families.FLOW_FAMILIES:
        # The transformers share one flow-matching loop; the rest of this function is SD's.
        from faceset.train import flow

        run = flow.Run(
            cfg, dataset, accelerator, weight_dtype, started, checkpoint,
            requested_checkpointing=requested.gradient_checkpointing,
            requested_optimizer=requested.optimizer,
        )  # fmt: skip
        return run.train(on_step)

    # 3. Base model, frozen, with LoRA adapters. The seed fixes the adapters' initialisation.
    torch.manual_seed(cfg.seed)
    base = load_base(cfg.base, cfg.family)
    unet, vae = base.unet, base.pipeline.vae
    for module in (unet, vae, *base.text_encoders):
        module.requires_grad_(False)
    # The VAE stays float32: SDXL's VAE overflows in fp16 (diffusers keeps it fp32 unless a
    # fixed VAE is given), and it only runs once, to cache latents.
    vae.to(device)
    for module in (unet, *base.text_encoders):
        module.to(device)
        if weight_dtype != torch.float32:
            module.to(dtype=weight_dtype)
    lora_config = {"r": cfg.rank, "lora_alpha": cfg.alpha, "init_lora_weights": "gaussian"}
    unet.add_adapter(LoraConfig(**lora_config, target_modules=UNET_TARGETS))
    trained: dict[str, Any] = {"unet": unet}
    if cfg.train_text_encoder:
        for name, encoder in zip(_TEXT_ENCODER_NAMES, base.text_encoders, strict=False):
            add_lora(encoder, LoraConfig(**lora_config, target_modules=TEXT_ENCODER_TARGETS))
            trained[name] = encoder
    if weight_dtype != torch.float32:
        # Trainable LoRA weights stay float32 under fp16/bf16 base weights, or the fp16
        # GradScaler refuses to unscale them (huggingface/diffusers#6514).
        cast_training_params(list(trained.values()), dtype=torch.float32)
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        for name, module in trained.items():
            if name != "unet":
                # Non-reentrant checkpointing passes gradients to the LoRA weights inside a
                # checkpointed layer even though the frozen embeddings' outputs need none.
                module.gradient_checkpointing_enable(
                    gradient_checkpointing_kwargs={"use_reentrant": False}
                )

    # 4. Cache what does not change between steps.
    cache = build_cache(
        base,
        dataset,
        resolution=cfg.resolution,
        masked_loss=bool(cfg.masked_loss),
        prior_loss_weight=cfg.prior_loss_weight,
        cache_text=not cfg.train_text_encoder,
        device=device,
        text_dtype=weight_dtype,
    )
    vae.to("cpu")  # not needed again until samples are decoded; frees accelerator memory

    # 5. Optimiser, schedule, accelerate.
    groups: list[dict[str, Any]] = [{"params": trainable(unet), "lr": cfg.lr}]
    for name, module in trained.items():
        if name != "unet":
            groups.append({"params": trainable(module), "lr": cfg.text_encoder_lr})
    optimizer, optimizer_name = make_optimizer(cfg, groups)
    lr_scheduler = schedule(cfg, optimizer)
    names = list(trained)
    keep_frozen_out_of_ddp(*trained.values())
    prepared = accelerator.prepare(*trained.values(), optimizer)
    models = dict(zip(names, prepared[: len(names)], strict=True))
    optimizer = prepared[len(names)]
    params = [p for group in groups for p in group["params"]]

    # 6. Resume.
    start = 0
    if checkpoint is not None:
        for name, module in trained.items():
            set_peft_model_state_dict(module, checkpoint.lora[name])
        optimizer.load_state_dict(checkpoint.optimizer)
        lr_scheduler.load_state_dict(checkpoint.lr_scheduler)
        start = checkpoint.step
        log.info("resuming from %s at step %d", checkpoint.path, start)

    items = cache.epoch_items()
    writer = _Writer(cfg, dataset, unet.config.layers_per_block, optimizer_name, started)
    log_summary(cfg, dataset, accelerator, optimizer_name, len(items))

    # 7. The loop.
    result = TrainResult(
        out=out,
        lora=out / f"{cfg.name}.safetensors",
        diffusers_lora=out / DIFFUSERS_FILE,
        config=out / CONFIG_FILE,
        steps=cfg.steps,
        resumed_from=start,
    )
    timesteps = base.noise_scheduler.config.num_train_timesteps
    for model in models.values():
        model.train()
    for step in range(start + 1, cfg.steps + 1):

        def micro_loss(micro: int, step: int = step) -> torch.Tensor:
            positions = batch_positions(cfg, step, micro, accelerator)
            batch = _batch(cache, items, cfg, positions, step, timesteps)
            return _loss(base, models, cache, batch, cfg, device, weight_dtype)

        loss = optimiser_step(
            accelerator, list(models.values()), micro_loss, cfg, params, optimizer, lr_scheduler
        )
        result.losses.append(loss)
        if accelerator.is_main_process:
            on_step(Step(step, cfg.steps, result.losses[-1], lr_scheduler.get_last_lr()[0]))
        if step % cfg.save_every == 0 or step == cfg.steps:
            if accelerator.is_main_process:
                result.checkpoints.append(writer.checkpoint(trained, optimizer, lr_scheduler, step))
            accelerator.wait_for_everyone()
        if cfg.sample_every and (step % cfg.sample_every == 0 or step == cfg.steps):
            if accelerator.is_main_process:
                result.samples.append(_sample(cfg, base, step, device, weight_dtype))
            accelerator.wait_for_everyone()

    # 8. The LoRA files.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        lora = _lora_states(trained)
        writer.kohya(result.lora, lora, cfg.steps)
        writer.diffusers(out, trained, lora)
        log.info("wrote %s and %s", result.lora, result.diffusers_lora)
    return result


def resolve(cfg: TrainConfig, dataset: Dataset, device: torch.device, precision: str) -> RunConfig:
    """Return ``cfg`` with every "auto" decided for this dataset and machine, paths absolute."""
    if cfg.masked_loss and not dataset.has_masks:
        raise DatasetError(f"masked loss needs masks, but {dataset.root} has no masks/ folder")
    on_gpu = device.type == "cuda"
    optimizer = cfg.optimizer
    if optimizer == "auto":
        has_bnb = importlib.util.find_spec("bitsandbytes") is not None
        optimizer = "adamw8bit" if has_bnb and on_gpu else "adamw"
    base = Path(cfg.base).expanduser()
    family = detect.family_for(cfg.base, cfg.family)
    recipe = families.info(family)
    if cfg.network == "lokr" and not recipe.lokr:
        raise ConfigError(
            f"--network lokr: diffusers cannot load a LoKr file of {recipe.label}; train a"
            " LoRA (--network lora), or LoKr on flux2-klein or zimage"
        )
    if (family == "zimage-turbo") != (cfg.adapter is not None):
        raise ConfigError(
            "--adapter is Z-Image Turbo's training adapter: pass it with --for zimage-turbo"
            if cfg.adapter
            else "--for zimage-turbo trains through the training adapter: pass --adapter FILE"
            " (ostris/zimage_turbo_training_adapter), or train Z-Image base with --for zimage"
        )
    if family in families.SD_FAMILIES and (cfg.quantize or "none", cfg.offload or "none") != (
        "none",
        "none",
    ):
        raise ConfigError(
            f"--quantize and --offload apply to the transformer families, not {recipe.label}"
        )
    if cfg.fsdp and family in families.SD_FAMILIES:
        raise ConfigError(
            f"--fsdp shards the transformer families; {recipe.label} fits one GPU: drop --fsdp"
            " and launch the same command for data parallel training"
        )
    if cfg.train_text_encoder and family not in families.SD_FAMILIES:
        raise ConfigError(f"--train-text-encoder: {recipe.label} LoRAs train the transformer only")
    rank = cfg.rank or recipe.rank
    return RunConfig.model_validate(
        cfg.model_dump()
        | {
            "family": family,
            "steps": cfg.steps or recipe.steps,
            "rank": rank,
            "alpha": cfg.alpha or (recipe.alpha if cfg.rank is None else float(rank)),
            "lr": cfg.lr or recipe.lr,
            "sample_guidance": recipe.guidance
            if cfg.sample_guidance is None
            else cfg.sample_guidance,
            "adapter": cfg.adapter.resolve() if cfg.adapter else None,
            "dataset": dataset.root,
            "base": str(base.resolve()) if base.exists() else cfg.base,
            "reg": cfg.reg.resolve() if cfg.reg else None,
            "out": (cfg.out or dataset.root / "model").resolve(),
            "name": cfg.name or dataset.root.name,
            "resolution": cfg.resolution or dataset.resolution or recipe.resolution,
            "masked_loss": dataset.has_masks,
            "precision": precision,
            "gradient_checkpointing": on_gpu
            if cfg.gradient_checkpointing is None
            else cfg.gradient_checkpointing,
            "optimizer": optimizer,
            "sample_prompts": cfg.sample_prompts or samples.default_prompts(dataset.class_tokens),
        }
    )


def precision_for(precision: str) -> str:
    """Return accelerate's mixed precision for ``precision`` on this machine."""
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def checkpoint_to_resume(cfg: RunConfig, out: Path) -> checkpoints.Checkpoint:
    found = checkpoints.latest(out)
    if found is None:
        raise ConfigError(f"nothing to resume: {out / checkpoints.FOLDER} holds no checkpoint")
    checkpoint = checkpoints.load(found)
    saved, now = checkpoint.config.model_dump(mode="json"), cfg.model_dump(mode="json")
    for key in saved:
        if key not in RESUMABLE_CHANGES and saved[key] != now[key]:
            raise ConfigError(
                f"cannot resume {out} with {key}={now[key]!r}: its checkpoints used {saved[key]!r}"
            )
    before = checkpoint.config
    if "processes" not in before.model_fields_set and checkpoint.step:
        # Written before runs recorded their processes, when accelerate stepped the schedule
        # once per process: the schedule tells how many there were, and goes back to one
        # step per optimiser step.
        stepped = int(checkpoint.lr_scheduler.get("last_epoch", checkpoint.step))
        before = before.model_copy(update={"processes": max(1, stepped // checkpoint.step)})
        checkpoint.lr_scheduler.update(last_epoch=checkpoint.step, _step_count=checkpoint.step + 1)
    if before.images_per_step != cfg.images_per_step:
        raise ConfigError(
            f"cannot resume {out} at {cfg.images_per_step} images per step: its checkpoints"
            f" took {before.images_per_step} ({before.batch_size} x {before.processes}"
            f" process(es) x {before.gradient_accumulation}); keep --batch-size x processes x"
            " --gradient-accumulation the same"
        )
    if checkpoint.step > cfg.steps:
        raise ConfigError(
            f"cannot resume {out} for {cfg.steps} steps: it is already at step {checkpoint.step}"
        )
    return checkpoint


def trainable(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def schedule(cfg: RunConfig, optimizer: torch.optim.Optimizer) -> Any:
    """Return the learning-rate schedule, stepped once per optimiser step.

    It is not handed to accelerate, which would step it once per process (as the diffusers
    scripts compensate by scaling its lengths): kept out, its state in a checkpoint is the
    same on one GPU or several, so a run can resume on another number of them."""
    return get_scheduler(
        cfg.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=cfg.lr_warmup_steps,
        num_training_steps=cfg.steps,
    )


def make_optimizer(
    cfg: RunConfig, groups: list[dict[str, Any]]
) -> tuple[torch.optim.Optimizer, str]:
    """Return AdamW, or bitsandbytes' 8-bit AdamW (a quarter of the optimiser memory)."""
    if cfg.optimizer == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise ConfigError(
                "optimizer adamw8bit needs bitsandbytes: pip install bitsandbytes"
            ) from None
        return bnb.optim.AdamW8bit(groups), "bitsandbytes.optim.AdamW8bit"
    return torch.optim.AdamW(groups), "torch.optim.AdamW"


@dataclass(frozen=True, slots=True)
class _Batch:
    """One step's draw: which images, their noise, timesteps and latent samples."""

    index: torch.Tensor
    latents: torch.Tensor
    noise: torch.Tensor
    timesteps: torch.Tensor


def step_generator(seed: int, step: int, rank: int, purpose: str) -> torch.Generator:
    """Return a CPU generator for (seed, step, rank, purpose), independent of any earlier step.

    Drawing each step from its own seed is what makes a resumed run identical to an
    uninterrupted one without saving random states.
    """
    words = [seed & 0xFFFFFFFF, step, rank, *purpose.encode()]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return torch.Generator("cpu").manual_seed(int(state[0]) << 32 | int(state[1]))


def batch_positions(cfg: RunConfig, step: int, micro: int, accelerator: Accelerator) -> range:
    """Return the global positions (in the endless stream of shuffled epochs) of this
    process's share of micro-batch ``micro`` of optimiser step ``step`` (1-based).

    One optimiser step covers ``batch_size`` x processes x ``gradient_accumulation``
    positions; how they are split between processes and micro-batches changes nothing but
    the order of a sum, so 2 GPUs at --batch-size 1 train what one GPU does at
    --batch-size 2, or at --batch-size 1 --gradient-accumulation 2."""
    processes = accelerator.num_processes
    per_step = cfg.batch_size * processes * cfg.gradient_accumulation
    first = (step - 1) * per_step + (micro * processes + accelerator.process_index) * cfg.batch_size
    return range(first, first + cfg.batch_size)


def batch_indices(items: list[int], cfg: RunConfig, positions: range) -> torch.Tensor:
    """Return the cache indices at ``positions``: each epoch is a permutation of ``items``
    drawn from (seed, epoch) alone."""
    per_epoch = len(items)
    chosen = []
    for position in positions:
        epoch, offset = divmod(position, per_epoch)
        order = torch.randperm(per_epoch, generator=step_generator(cfg.seed, epoch, 0, "epoch"))
        chosen.append(items[int(order[offset])])
    return torch.tensor(chosen)


def sample_generators(cfg: RunConfig, step: int, positions: range) -> list[torch.Generator]:
    """Return one generator per sample for its noise and timestep, keyed by its global
    position: the draws do not depend on which process or micro-batch the sample lands in."""
    return [step_generator(cfg.seed, step, position, "noise") for position in positions]


def _batch(
    cache: Cache,
    items: list[int],
    cfg: RunConfig,
    positions: range,
    step: int,
    num_timesteps: int,
) -> _Batch:
    """Return the draw for the samples at ``positions`` of step ``step``."""
    index = batch_indices(items, cfg, positions)
    latents, noise, timesteps = [], [], []
    for i, generator in zip(index, sample_generators(cfg, step, positions), strict=True):
        mean, std = cache.latent_mean[i], cache.latent_std[i]
        latents.append(mean + std * torch.randn(mean.shape, generator=generator))
        noise.append(torch.randn(mean.shape, generator=generator))
        timesteps.append(torch.randint(0, num_timesteps, (1,), generator=generator))
    return _Batch(index, torch.stack(latents), torch.stack(noise), torch.cat(timesteps))


def optimiser_step(
    accelerator: Accelerator,
    models: Sequence[torch.nn.Module],
    micro_loss: Callable[[int], torch.Tensor],
    cfg: RunConfig,
    params: list[torch.nn.Parameter],
    optimizer: Any,
    lr_scheduler: Any,
) -> float:
    """Run one optimiser step over ``cfg.gradient_accumulation`` micro-batches (``micro_loss``
    gives each one's loss) and return the loss averaged over every micro-batch of every
    process, so that the reported curve does not depend on the number of GPUs either."""
    accumulation = cfg.gradient_accumulation
    total = torch.zeros((), device=accelerator.device)
    for micro in range(accumulation):
        last = micro == accumulation - 1
        with contextlib.ExitStack() as no_sync:
            for model in models:  # gradients are averaged across GPUs once, after the last
                if hasattr(model, "set_requires_gradient_sync"):  # FSDP2: no no_sync()
                    model.set_requires_gradient_sync(last)  # type: ignore[operator]
                elif not last:
                    no_sync.enter_context(accelerator.no_sync(model))
            loss = micro_loss(micro)
            accelerator.backward(loss / accumulation)
        total += loss.detach()
    accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
    optimizer.step()
    if not getattr(optimizer, "step_was_skipped", False):  # fp16's scaler skipped an overflow
        lr_scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(accelerator.reduce(total / accumulation, "mean"))


def keep_frozen_out_of_ddp(*models: torch.nn.Module) -> None:
    """Tell DDP to leave every frozen weight and buffer alone: each process loaded the same base
    model from disk, so broadcasting it from the first at start-up (gigabytes) is waste, and
    fails outright for fp8 weights (gloo has no fp8) and torchao's int8 tensors (no broadcast).
    Only the adapters, which train, are synchronised."""
    for model in models:
        frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
        frozen += [name for name, _ in model.named_buffers()]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, frozen)  # type: ignore[no-untyped-call]


def check_launch(accelerator: Accelerator) -> None:
    """Refuse a launch of several processes that accelerate runs as independent copies: they
    would each train the whole run and overwrite each other's files."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and accelerator.num_processes == 1:
        raise ConfigError(
            f"{launched} processes were launched but accelerate found no GPU and runs each"
            " alone: to train on CPUs in several processes, set ACCELERATE_USE_CPU=1"
        )


def _loss(
    base: Base,
    models: Mapping[str, torch.nn.Module],
    cache: Cache,
    batch: _Batch,
    cfg: RunConfig,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Return the batch's loss: noise-prediction MSE, mask-weighted, prior-weighted."""
    scheduler = base.noise_scheduler
    vae_config = base.pipeline.vae.config
    latents = batch.latents.to(device) * vae_config.scaling_factor
    noise = batch.noise.to(device)
    timesteps = batch.timesteps.to(device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    captions = [cache.captions[int(i)] for i in batch.index]
    if cfg.train_text_encoder:
        encoders = [models[name] for name in _TEXT_ENCODER_NAMES if name in models]
        hidden, pooled = encode_text(base, captions, device, dtype, encoders)
    else:
        hidden = torch.stack([cache.text[c][0] for c in captions]).to(device, dtype)
        first_pooled = cache.text[captions[0]][1]
        pooled = (
            None
            if first_pooled is None
            else torch.stack([cache.text[c][1] for c in captions]).to(device, dtype)  # type: ignore[misc]
        )
    added: dict[str, torch.Tensor] | None = None
    if base.family == "sdxl":
        assert cache.time_ids is not None, "SDXL caches time ids"
        assert pooled is not None, "SDXL's second encoder is pooled"
        added = {"text_embeds": pooled, "time_ids": cache.time_ids[batch.index].to(device, dtype)}
    prediction = models["unet"](
        noisy.to(dtype), timesteps, hidden, added_cond_kwargs=added, return_dict=False
    )[0]
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    weights = None if cache.weights is None else cache.weights[batch.index].to(device)
    return masked_mse(
        prediction.float(), target.float(), weights, cache.loss_weights[batch.index].to(device)
    )


def masked_mse(
    prediction: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None,
    loss_weights: torch.Tensor,
) -> torch.Tensor:
    """Return the mean over the batch of each sample's weighted squared error.

    ``weights`` (B, 1, h, w) multiplies every latent cell's error, so a cell of weight 0 adds
    nothing to the loss or its gradient; the mean over cells is not renormalised, as kohya's
    ``apply_masked_loss``. ``loss_weights`` (B,) is 1, or ``prior_loss_weight`` for a
    regularisation image.
    """
    error = F.mse_loss(prediction, target, reduction="none")
    if weights is not None:
        error = error * weights
    per_sample = error.mean(dim=(1, 2, 3))
    return (per_sample * loss_weights).mean()


def _lora_states(trained: Mapping[str, torch.nn.Module]) -> dict[str, dict[str, torch.Tensor]]:
    return {name: get_peft_model_state_dict(module) for name, module in trained.items()}


@dataclass(frozen=True, slots=True)
class _Writer:
    """Writes the LoRA files of a run: kohya (final and per checkpoint) and diffusers."""

    cfg: RunConfig
    dataset: Dataset
    layers_per_block: int
    optimizer_name: str
    started: float

    def kohya(self, path: Path, lora: Mapping[str, Mapping[str, torch.Tensor]], step: int) -> None:
        cfg = self.cfg
        meta = kohya_format.metadata(
            cfg,
            self.dataset,
            resolution=cfg.resolution,
            steps=step,
            optimizer=self.optimizer_name,
            precision=cfg.precision,
            started_at=datetime.fromtimestamp(self.started).astimezone(),
            finished_at=datetime.now().astimezone(),
        )
        sdxl = cfg.family == "sdxl"
        tensors = kohya_format.unet_to_kohya(
            lora["unet"], cfg.alpha, sgm_layers_per_block=self.layers_per_block if sdxl else None
        )
        prefixes = kohya_format.TEXT_ENCODERS_XL if sdxl else (kohya_format.TEXT_ENCODER,)
        for name, prefix in zip(_TEXT_ENCODER_NAMES, prefixes, strict=False):
            if name in lora:
                tensors |= kohya_format.text_encoder_to_kohya(lora[name], cfg.alpha, prefix)
        kohya_format.save(path, tensors, meta)

    def diffusers(
        self,
        out: Path,
        trained: Mapping[str, Any],
        lora: Mapping[str, Mapping[str, torch.Tensor]],
    ) -> None:
        """Write ``pytorch_lora_weights.safetensors`` with each adapter's config as metadata.

        Without ``*_lora_adapter_metadata`` diffusers reloads the file with alpha = rank
        (reference section 7.2).
        """
        layers: dict[str, Any] = {}
        for name in lora:
            layers[f"{name}_lora_layers"] = convert_state_dict_to_diffusers(dict(lora[name]))
            config = trained[name].peft_config["default"]
            layers[f"{name}_lora_adapter_metadata"] = config.to_dict()
        PIPELINES[self.cfg.family].save_lora_weights(out, weight_name=DIFFUSERS_FILE, **layers)

    def checkpoint(
        self,
        trained: Mapping[str, torch.nn.Module],
        optimizer: Any,
        lr_scheduler: Any,
        step: int,
    ) -> Path:
        cfg = self.cfg
        lora = _lora_states(trained)
        folder = checkpoints.save(
            cfg.out,
            step,
            cfg,
            lora,
            optimizer.state_dict(),
            lr_scheduler.state_dict(),
            self.started,
            also=lambda tmp: self.kohya(tmp / f"{cfg.name}-step{step:06d}.safetensors", lora, step),
        )
        log.info("checkpoint %s", folder)
        return folder


def _sample(
    cfg: RunConfig, base: Base, step: int, device: torch.device, dtype: torch.dtype
) -> Path:
    vae = base.pipeline.vae
    vae.to(device)
    unet = base.unet
    unet.eval()
    try:
        images = samples.draw(
            base,
            cfg.sample_prompts,
            resolution=cfg.resolution,
            steps=cfg.sample_steps,
            guidance=cfg.sample_guidance,
            seed=cfg.sample_seed,
            device=device,
            dtype=dtype,
        )
    finally:
        unet.train()
        vae.to("cpu")
    path = samples.sheet_path(cfg.out, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples.contact_sheet(images).save(path)
    log.info("samples %s", path)
    return path


def log_summary(
    cfg: RunConfig,
    dataset: Dataset,
    accelerator: Accelerator,
    optimizer_name: str,
    per_epoch: int,
) -> None:
    reg = sum(len(c.examples) for c in dataset.reg)
    log.info(
        "training %r: %d images (%d per epoch with repeats%s), %d steps of %d images"
        " (%d x %d process(es)%s), rank %d alpha %s, lr %g%s, %d px, masked loss %s, %s, %s,"
        " on %s",
        dataset.class_tokens,
        sum(len(c.examples) for c in dataset.train),
        per_epoch,
        f", {reg} regularisation images" if reg else "",
        cfg.steps,
        cfg.batch_size * accelerator.num_processes * cfg.gradient_accumulation,
        cfg.batch_size,
        accelerator.num_processes,
        f" x {cfg.gradient_accumulation} micro-batches" if cfg.gradient_accumulation > 1 else "",
        cfg.rank,
        f"{cfg.alpha:g}",
        cfg.lr,
        f", text encoder lr {cfg.text_encoder_lr:g}" if cfg.train_text_encoder else "",
        cfg.resolution,
        "on" if cfg.masked_loss else "off",
        optimizer_name,
        "float32"
        if accelerator.mixed_precision == "no"
        else f"{accelerator.mixed_precision} mixed precision",
        accelerator.device,
    )


@contextlib.contextmanager
def memory_errors(cfg: TrainConfig, device: torch.device) -> Iterator[None]:
    """Turn out-of-memory errors into one line naming the flag to lower."""
    try:
        yield
    except torch.OutOfMemoryError as e:
        raise OutOfMemory(_oom_message(cfg, "GPU")) from e
    except RuntimeError as e:
        # The CPU allocator raises a plain RuntimeError.
        if "can't allocate memory" in str(e) or "out of memory" in str(e).lower():
            raise OutOfMemory(_oom_message(cfg, "GPU" if device.type == "cuda" else "")) from e
        raise


def _oom_message(cfg: TrainConfig, what: str) -> str:
    where = f"out of {what + ' ' if what else ''}memory at --batch-size {cfg.batch_size}"
    fix = "lower --batch-size" if cfg.batch_size > 1 else "lower --resolution"
    if not cfg.gradient_checkpointing:
        fix += ", or pass --gradient-checkpointing"
    return f"{where}; {fix}"
