"""One training loop for every flow-matching transformer family (klein, Z-Image, Qwen-Image,
FLUX.1), phase by phase as diffusers' ``train_dreambooth_lora_<family>.py`` scripts:

1. load the base pipeline (frozen), merging Z-Image Turbo's training adapter when given;
2. cache each image's latent distribution and loss mask, each caption's text inputs, and the
   sample prompts' drawing inputs, then free the text encoders (the largest part of Qwen-Image
   and klein 9B) and park the VAE on the CPU;
3. add the LoRA (or LoKr) adapter to the transformer's projections the family names;
4. optimiser, schedule, accelerate, resume;
5. the loop: x_t = (1 - sigma) x0 + sigma noise, target noise - x0, mask- and prior-weighted
   MSE; checkpoints and sample sheets every N steps;
6. the LoRA file (``train/dit_format.py``) with kohya/modelspec metadata.

The family module (``train/families/``) supplies everything that differs; the step's random
numbers come from (seed, step) alone, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DistributedType
from diffusers.training_utils import cast_training_params, compute_density_for_timestep_sampling
from peft import LoKrConfig, LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

from faceset.train import (
    checkpoints,
    dit_format,
    families,
    kohya_format,
    memory,
    quantization,
    samples,
    sharding,
)
from faceset.train.adapters import add_lora
from faceset.train.cache import load_example
from faceset.train.config import RunConfig
from faceset.train.dataset import Dataset
from faceset.train.errors import BaseModelError, ConfigError
from faceset.train.families.base import Conditioning, FlowFamily, to_device
from faceset.train.loop import (
    batch_indices,
    batch_positions,
    keep_frozen_out_of_ddp,
    log_summary,
    make_optimizer,
    masked_mse,
    optimiser_step,
    sample_generators,
    schedule,
    trainable,
)
from faceset.train.report import OnStep, Step, TrainResult

log = logging.getLogger(__name__)

COMPONENT = "transformer"
"""The checkpoint's name for the one trained model."""


@dataclass(slots=True)
class FlowCache:
    """Per unique image, in dataset order: what every step reads instead of the VAE and text
    encoder."""

    latent_mean: torch.Tensor
    """(N, C, h, w) the VAE latent distribution's mean, before the family's normalisation."""
    latent_std: torch.Tensor
    weights: torch.Tensor | None
    """(N, 1, h', w') loss weight per cell of ``x0`` (after the family's patchifying)."""
    loss_weights: torch.Tensor
    captions: list[str]
    text: dict[str, Conditioning]
    repeats: list[int]
    is_reg: list[bool]
    sample_inputs: list[dict[str, Any]] = field(default_factory=list)

    def epoch_items(self) -> list[int]:
        train = [i for i, r in enumerate(self.repeats) if not self.is_reg[i] for _ in range(r)]
        reg = [i for i, is_reg in enumerate(self.is_reg) if is_reg]
        return train + [reg[k % len(reg)] for k in range(len(train))] if reg else train


def load_pipeline(
    base: str,
    family: FlowFamily,
    dtype: torch.dtype,
    text_encoder: Sequence[str | Path] = (),
    vae: str | Path | None = None,
) -> Any:
    """Return ``family``'s pipeline of ``base`` in ``dtype`` (``text_encoder``/``vae``: the
    files a single diffusion-model file needs); BaseModelError in one line."""
    try:
        return family.load(base, dtype, text_encoder, vae)
    except (torch.OutOfMemoryError, KeyboardInterrupt, BaseModelError):
        raise
    except Exception as e:  # diffusers and the hub raise many types for a model they cannot use
        from faceset.train.base_model import _reason

        raise BaseModelError(f"cannot load base model {base}: {_reason(e)}") from e


class Run:
    """A resolved flow-matching training run."""

    def __init__(
        self,
        cfg: RunConfig,
        dataset: Dataset,
        accelerator: Accelerator,
        dtype: torch.dtype,
        started: float,
        checkpoint: checkpoints.Checkpoint | None,
        requested_checkpointing: bool | None = None,
        requested_optimizer: str = "auto",
    ) -> None:
        self.cfg, self.dataset, self.accelerator = cfg, dataset, accelerator
        self.dtype, self.started, self.checkpoint = dtype, started, checkpoint
        self.family = families.flow_family(cfg.family)
        self.device = accelerator.device
        self.requested_checkpointing = requested_checkpointing
        self.requested_optimizer = requested_optimizer
        self.sharded = sharded(cfg, accelerator)
        self.free_gib: float | None = None

    def train(self, on_step: OnStep) -> TrainResult:
        accelerator = self.accelerator
        self.free_gib = self._free_gib()
        if self.sharded:
            # Each process reads the whole model into host memory before it keeps its share:
            # one at a time, so the machine needs memory for one copy, not one per GPU.
            pipe, cache, held, transformer = sharding.in_turns(accelerator, self._held_model)
        else:
            pipe, cache, held, transformer = self._held_model()
        cfg = self.cfg

        # 4. Optimiser, schedule, accelerate, resume.
        optimizer, optimizer_name = make_optimizer(
            cfg, [{"params": trainable(transformer), "lr": cfg.lr}]
        )
        lr_scheduler = schedule(cfg, optimizer)
        if self.sharded or accelerator.distributed_type == DistributedType.FSDP:
            # FSDP averages the gradients itself; and accelerate's --use_fsdp with one process
            # would wrap the model in FSDP1, which cannot mix frozen bf16/fp8 and fp32 LoRA.
            model = transformer
        else:
            keep_frozen_out_of_ddp(transformer)
            # An offloaded transformer moves block by block: accelerate must not move it whole.
            model, optimizer = accelerator.prepare(
                transformer, optimizer, device_placement=[held.offload == "none", True]
            )
        params = trainable(transformer)
        start = 0
        if self.checkpoint is not None:
            if self.sharded:
                sharding.load_optimizer_state(transformer, optimizer, self.checkpoint.optimizer)
            else:
                optimizer.load_state_dict(self.checkpoint.optimizer)
            lr_scheduler.load_state_dict(self.checkpoint.lr_scheduler)
            self.checkpoint.optimizer.clear()  # loaded: the optimiser holds its own copy
            start = self.checkpoint.step
            log.info("resuming from %s at step %d", self.checkpoint.path, start)
        items = cache.epoch_items()
        log_summary(cfg, self.dataset, accelerator, optimizer_name, len(items))
        log.info("%s: LoRA on %s", self.family.info.label, ", ".join(self.family.lora_targets))
        log.info("memory: %s", held.describe())
        if self.sharded:
            log.info(
                "FSDP: the transformer is sharded across %d processes", accelerator.num_processes
            )
        if not held.fits:
            log.warning(
                "the predicted peak %.1f GiB exceeds --vram %g: expect running out of memory;"
                " lower --resolution or --rank, or pass --quantize nf4 / --offload block",
                held.peak_gib, held.budget_gib or 0,
            )  # fmt: skip

        # 5. The loop.
        result = TrainResult(
            out=cfg.out,
            lora=cfg.out / f"{cfg.name}.safetensors",
            diffusers_lora=cfg.out / f"{cfg.name}.safetensors",  # one file serves both
            config=cfg.out / "training_config.json",
            steps=cfg.steps,
            resumed_from=start,
        )
        sigmas_table = copy.deepcopy(pipe.scheduler).sigmas
        model.train()
        for step in range(start + 1, cfg.steps + 1):

            def micro_loss(micro: int, step: int = step) -> torch.Tensor:
                return self._loss(pipe, model, cache, items, step, micro, sigmas_table)

            result.losses.append(
                optimiser_step(
                    accelerator, [model], micro_loss, cfg, params, optimizer, lr_scheduler
                )
            )
            if accelerator.is_main_process:
                on_step(Step(step, cfg.steps, result.losses[-1], lr_scheduler.get_last_lr()[0]))
            if step % cfg.save_every == 0 or step == cfg.steps:
                saved = self._checkpoint(transformer, optimizer, lr_scheduler, step)
                if saved is not None:
                    result.checkpoints.append(saved)
                accelerator.wait_for_everyone()
            if cfg.sample_every and (step % cfg.sample_every == 0 or step == cfg.steps):
                # A sharded transformer runs on every process at once; only the first saves.
                if accelerator.is_main_process or self.sharded:
                    sheet = self._sample(pipe, cache, step)
                    if sheet is not None:
                        result.samples.append(sheet)
                accelerator.wait_for_everyone()

        # 6. The LoRA file.
        accelerator.wait_for_everyone()
        state = self._lora_state(transformer)
        if accelerator.is_main_process:
            self._write(result.lora, state, cfg.steps)
            log.info("wrote %s", result.lora)
        return result

    # --- phases ---------------------------------------------------------------------------

    def _held_model(self) -> tuple[Any, FlowCache, memory.MemoryPlan, Any]:
        """Load the base, cache what training reads, and return the pipeline, the cache, the
        memory plan and the transformer held as planned with its adapter (sharded with
        --fsdp)."""
        cfg, accelerator, device = self.cfg, self.accelerator, self.device

        # 1. The base model, frozen. The seed fixes the adapter's initialisation.
        torch.manual_seed(cfg.seed)
        pipe = load_pipeline(cfg.base, self.family, self.dtype, cfg.text_encoder, cfg.vae)
        for name in ("transformer", "vae", *self.family.text_encoders):
            getattr(pipe, name).requires_grad_(False)
        if cfg.adapter is not None:
            _merge_training_adapter(pipe, cfg.adapter)
        held = self._plan(pipe)
        self.cfg = cfg = cfg.model_copy(update={
            "quantize": held.quantize, "offload": held.offload,
            "gradient_checkpointing": held.gradient_checkpointing, "optimizer": held.optimizer,
        })  # fmt: skip
        if accelerator.is_main_process:  # the plan's choices are part of the resolved config
            (cfg.out / "training_config.json").write_text(cfg.to_json(), encoding="utf-8")
        if held.text_encoder == "int8":
            for name in self.family.text_encoders:
                quantization.int8_weights(getattr(pipe, name))

        # 2. Caches; then the text encoders go.
        cache = self._cache(pipe, text_device=device if held.text_encoder != "cpu" else None)
        for name in self.family.text_encoders:
            setattr(pipe, name, None)
        pipe.vae.to("cpu")
        if device.type == "cuda":
            torch.cuda.empty_cache()

        # 3. The adapter, on the transformer held as planned; a resumed run's adapter weights
        # go in before sharding, whole.
        if held.quantize == "nf4":
            pipe.transformer = quantization.nf4_transformer(cfg.base, pipe.transformer)
        transformer = pipe.transformer
        hold_and_adapt(
            transformer, self.family, held, device, self.dtype,
            network=cfg.network, rank=cfg.rank, alpha=cfg.alpha, sharded=self.sharded,
        )  # fmt: skip
        if self.checkpoint is not None:
            set_peft_model_state_dict(transformer, self.checkpoint.lora[COMPONENT])
        if self.sharded:
            sharding.shard(transformer)

        return pipe, cache, held, transformer

    def _free_gib(self) -> float | None:
        """The GPU memory free now (None on the CPU); with several processes the least any of
        them has, so that all make the same plan (FSDP and DDP need the same weights)."""
        if self.device.type != "cuda":
            return None
        free = torch.cuda.mem_get_info(self.device)[0] / memory.GIB
        if self.accelerator.num_processes > 1:
            everyone = self.accelerator.gather(torch.tensor([free], device=self.device))
            free = float(everyone.min())
        return free

    def _plan(self, pipe: Any) -> memory.MemoryPlan:
        """Return the memory plan for this model, budget and machine (``train/memory.py``)."""
        cfg, cuda = self.cfg, self.device.type == "cuda"
        found = memory.plan(
            model_size(pipe, self.family),
            memory.budget(cfg.vram, self.free_gib),
            resolution=cfg.resolution,
            rank=cfg.rank,
            cuda=cuda,
            bitsandbytes=importlib.util.find_spec("bitsandbytes") is not None,
            batch_size=cfg.batch_size,
            shards=self.accelerator.num_processes if self.sharded else 1,
            overrides=memory.Overrides(
                quantize=cfg.quantize,
                offload=cfg.offload,
                gradient_checkpointing=self.requested_checkpointing,
                optimizer=None if self.requested_optimizer == "auto" else self.requested_optimizer,  # type: ignore[arg-type]
            ),
        )
        quantization.check_available(found, cuda)
        if self.sharded:
            sharding_refusal(found, self.dtype)
        return found

    def _cache(self, pipe: Any, text_device: torch.device | None) -> FlowCache:
        """``text_device`` None: the text encoders stay on the CPU (the plan's ``cpu``)."""
        cfg, family, device = self.cfg, self.family, self.device
        vae = pipe.vae
        vae.to(device)
        text_device = text_device or torch.device("cpu")
        for name in family.text_encoders:
            getattr(pipe, name).to(text_device)
        examples = [(e, c.repeats, c.is_reg) for c in self.dataset.concepts for e in c.examples]
        means, stds, weights = [], [], []
        for example, _, _ in examples:
            pixels, mask, _, _ = load_example(example, cfg.resolution)
            with torch.no_grad():
                encoded = vae.encode(family.vae_input(pixels[None]).to(device, vae.dtype))
                dist = encoded.latent_dist
                x0 = family.to_latent(pipe, dist.mean)
            means.append(dist.mean.float().cpu())
            stds.append(dist.std.float().cpu())
            if cfg.masked_loss:
                plane = mask if mask is not None else torch.ones(1, cfg.resolution, cfg.resolution)
                # Each cell of x0 weighs the mean of its pixels' mask (reference trainers.md 5).
                weights.append(F.interpolate(plane[None], size=x0.shape[-2:], mode="area"))
        captions = [e.caption for e, _, _ in examples]
        text: dict[str, Conditioning] = {}
        with torch.no_grad():
            for caption in dict.fromkeys(captions):
                text[caption] = family.encode_prompt(pipe, caption, text_device)
            sample_inputs = [
                to_device(family.draw_inputs(
                    pipe, prompt, cfg.sample_negative, cfg.sample_guidance, text_device
                ), "cpu")
                for prompt in (cfg.sample_prompts if cfg.sample_every else ())
            ]  # fmt: skip
        return FlowCache(
            latent_mean=torch.cat(means),
            latent_std=torch.cat(stds),
            weights=torch.cat(weights) if cfg.masked_loss else None,
            loss_weights=torch.tensor([cfg.prior_loss_weight if r else 1.0 for *_, r in examples]),
            captions=captions,
            text=text,
            repeats=[n for _, n, _ in examples],
            is_reg=[r for *_, r in examples],
            sample_inputs=sample_inputs,
        )

    def _loss(
        self,
        pipe: Any,
        model: Any,
        cache: FlowCache,
        items: list[int],
        step: int,
        micro: int,
        sigmas_table: torch.Tensor,
    ) -> torch.Tensor:
        cfg, device, dtype = self.cfg, self.device, self.dtype
        positions = batch_positions(cfg, step, micro, self.accelerator)
        index = batch_indices(items, cfg, positions)
        generators = sample_generators(cfg, step, positions)
        mean, std = cache.latent_mean[index], cache.latent_std[index]
        sample = mean + std * torch.stack(
            [torch.randn(mean.shape[1:], generator=g) for g in generators]
        )
        x0 = self.family.to_latent(pipe, sample).to(device)
        noise = torch.stack([torch.randn(x0.shape[1:], generator=g) for g in generators])
        noise = noise.to(device)
        # Uniform over the scheduler's training sigmas, as the example scripts' default
        # (--weighting_scheme none); Z-Image Turbo's table is shifted, the others' is not.
        u = torch.cat(
            [compute_density_for_timestep_sampling("none", 1, generator=g) for g in generators]
        )
        sigmas = sigmas_table[(u * len(sigmas_table)).long().clamp(max=len(sigmas_table) - 1)]
        sigmas = sigmas.to(device)
        view = sigmas.view(-1, *([1] * (x0.dim() - 1)))
        noisy = (1 - view) * x0 + view * noise
        conditioning = [cache.text[cache.captions[int(i)]] for i in index]
        with self.accelerator.autocast():  # a sharded model is not wrapped by accelerate
            prediction = self.family.predict(pipe, model, noisy.to(dtype), sigmas, conditioning)
        target = noise - x0
        weights = None if cache.weights is None else cache.weights[index].to(device)
        return masked_mse(
            prediction.float(), target.float(), weights, cache.loss_weights[index].to(device)
        )

    def _write(self, path: Path, state: dict[str, torch.Tensor], step: int) -> None:
        cfg = self.cfg
        meta = kohya_format.metadata(
            cfg,
            self.dataset,
            resolution=cfg.resolution,
            steps=step,
            optimizer="torch.optim.AdamW" if cfg.optimizer == "adamw" else cfg.optimizer,
            precision=cfg.precision,
            started_at=datetime.fromtimestamp(self.started).astimezone(),
            finished_at=datetime.now().astimezone(),
        )
        kohya_format.save(path, dit_format.to_file(state, cfg.rank, cfg.alpha), meta)

    def _lora_state(self, transformer: Any) -> dict[str, torch.Tensor]:
        """The adapter's weights, whole (gathered from every process when sharded)."""
        return sharding.whole(get_peft_model_state_dict(transformer))

    def _checkpoint(
        self, transformer: Any, optimizer: Any, lr_scheduler: Any, step: int
    ) -> Path | None:
        """Write checkpoint ``step`` (on the first process; None on the others)."""
        if not (self.sharded or self.accelerator.is_main_process):
            return None  # only gathering a sharded state needs every process
        cfg = self.cfg
        state = self._lora_state(transformer)
        optimizer_state = (
            sharding.optimizer_state(transformer, optimizer)
            if self.sharded
            else optimizer.state_dict()
        )
        if not self.accelerator.is_main_process:
            return None
        folder = checkpoints.save(
            cfg.out,
            step,
            cfg,
            {COMPONENT: state},
            optimizer_state,
            lr_scheduler.state_dict(),
            self.started,
            also=lambda tmp: self._write(
                tmp / f"{cfg.name}-step{step:06d}.safetensors", state, step
            ),
        )
        log.info("checkpoint %s", folder)
        return folder

    def _sample(self, pipe: Any, cache: FlowCache, step: int) -> Path | None:
        """Draw the sample sheet of ``step``; its path on the first process, else None."""
        cfg, device = self.cfg, self.device
        pipe.vae.to(device)
        pipe.transformer.eval()
        pipe.set_progress_bar_config(disable=True)
        images = []
        autocast = torch.autocast(
            device.type, dtype=self.dtype, enabled=self.dtype != torch.float32
        )
        try:
            with torch.no_grad(), autocast, _without_training_adapter(pipe, cfg.adapter):
                for i, inputs in enumerate(cache.sample_inputs):
                    generator = torch.Generator("cpu").manual_seed(cfg.sample_seed + i)
                    result = pipe(
                        **to_device(inputs, device),
                        height=cfg.resolution,
                        width=cfg.resolution,
                        num_inference_steps=cfg.sample_steps,
                        generator=generator,
                    )
                    images.append(result.images[0])
        finally:
            pipe.transformer.train()
            pipe.vae.to("cpu")
        if not self.accelerator.is_main_process:
            return None
        path = samples.sheet_path(cfg.out, step)
        path.parent.mkdir(parents=True, exist_ok=True)
        samples.contact_sheet(images).save(path)
        log.info("samples %s", path)
        return path


def sharded(cfg: RunConfig, accelerator: Accelerator) -> bool:
    """Whether this run shards the transformer: --fsdp or accelerate's --use_fsdp, with more
    than one process (one process has nothing to share with)."""
    wanted = cfg.fsdp or bool(accelerator.distributed_type == DistributedType.FSDP)
    if wanted and accelerator.num_processes == 1:
        log.info("FSDP: one process, nothing to shard; training as on one GPU")
    return wanted and accelerator.num_processes > 1


def sharding_refusal(held: memory.MemoryPlan, dtype: torch.dtype) -> None:
    """Raise ConfigError for what FSDP cannot shard: int8 and NF4 weights (tensor subclasses
    and packed bytes), block offloading (FSDP already brings one block at a time), fp16."""
    if held.quantize in ("int8", "nf4"):
        raise ConfigError(
            f"--fsdp shards bf16 or fp8 weights, not {held.quantize}: pass --quantize fp8 or"
            " none, or drop --fsdp to train quantised on each GPU"
        )
    if held.offload != "none":
        raise ConfigError("--fsdp gathers one block at a time already: drop --offload block")
    if held.optimizer == "adamw8bit":
        # bitsandbytes-foundation/bitsandbytes#1633: its kernels take sharded tensors whole.
        raise ConfigError(
            "--fsdp shards AdamW's state already, and bitsandbytes' 8-bit AdamW fails on"
            " sharded weights: pass --optimizer adamw"
        )
    if dtype == torch.float16:
        raise ConfigError(
            "--fsdp trains in bf16 or fp32, and this GPU computes in fp16: pass --precision no"
        )


def hold_and_adapt(
    transformer: Any,
    family: FlowFamily,
    held: memory.MemoryPlan,
    device: torch.device,
    dtype: torch.dtype,
    *,
    network: str,
    rank: int,
    alpha: float,
    sharded: bool = False,
) -> None:
    """Hold the frozen ``transformer`` as ``held`` says and add the trainable adapter, in place
    (shared with ``bench/train.py``, which times exactly this). ``sharded``: it stays on the
    CPU, for FSDP to move each block's share to the GPU (the whole would not fit)."""
    if held.quantize == "int8":
        quantization.int8_weights(transformer)
    if held.offload == "none" and not sharded:
        transformer.to(device)
    targets = family.target_modules(transformer)
    if network == "lokr":
        add_lora(transformer, LoKrConfig(r=rank, alpha=alpha, target_modules=targets))
    else:
        transformer.add_adapter(LoraConfig(
            r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=targets,
        ))  # fmt: skip
    if dtype != torch.float32:
        # Trainable weights stay float32 under bf16/fp16 base weights (diffusers#6514).
        cast_training_params([transformer], dtype=torch.float32)
    if held.quantize == "fp8":
        fp8 = quantization.fp8_storage_for_sharding if sharded else quantization.fp8_storage
        fp8(transformer, compute=dtype)
    if held.offload == "block":
        quantization.block_offload(transformer, device)
    if held.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()


def model_size(pipe: Any, family: FlowFamily) -> memory.ModelSize:
    """Return the parameter counts and shape the memory plan needs, from the loaded pipeline."""
    transformer = pipe.transformer
    config = transformer.config

    def count(module: Any) -> int:
        return sum(p.numel() for p in module.parameters()) if module is not None else 0

    blocks = sum(
        len(getattr(transformer, name))
        for name in ("transformer_blocks", "single_transformer_blocks", "layers")
        if isinstance(getattr(transformer, name, None), torch.nn.ModuleList)
    )
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", 1)
    head_dim = getattr(config, "attention_head_dim", None)
    hidden = heads * head_dim if head_dim else getattr(config, "dim", 0)
    return memory.ModelSize(
        transformer=count(transformer),
        text_encoder=sum(count(getattr(pipe, name, None)) for name in family.text_encoders),
        vae=count(pipe.vae),
        blocks=max(1, blocks),
        hidden=int(hidden),
        patch=8 * 2,
    )


def _merge_training_adapter(pipe: Any, adapter: Path) -> None:
    """Merge Z-Image Turbo's training adapter into the base weights at 1.0 (ai-toolkit's way,
    reference section 2.1): the person LoRA trains on the "de-turbo" weights, and the saved file
    holds the person alone."""
    try:
        pipe.load_lora_weights(str(adapter), adapter_name="assistant")
    except Exception as e:  # diffusers raises several types for a file it cannot use
        raise BaseModelError(f"cannot load the training adapter {adapter}: {e}") from e
    pipe.fuse_lora(adapter_names=["assistant"], lora_scale=1.0)
    pipe.unload_lora_weights()
    log.info("merged the training adapter %s", adapter)


@contextlib.contextmanager
def _without_training_adapter(pipe: Any, adapter: Path | None) -> Iterator[None]:
    """Draw as the user will: the training adapter, merged into the base, is taken out again
    by loading it beside the person's LoRA at weight -1 (ai-toolkit's ``invert_assistant_lora``,
    reference section 2.1), so samples show Turbo with the LoRA, at Turbo's settings."""
    if adapter is None:
        yield
        return
    pipe.load_lora_weights(str(adapter), adapter_name="assistant")
    pipe.set_adapters(["default", "assistant"], adapter_weights=[1.0, -1.0])
    try:
        yield
    finally:
        pipe.delete_adapters("assistant")
        pipe.transformer.set_adapters(["default"], weights=[1.0])
