"""The settings of one training run, each with its default and what it means.

Defaults are the person-LoRA defaults of ../shared/reference/trainers.md section 9: a first run
needs only the dataset, the base model and its family. ``None`` means "decided at run time" and
the decision is written into the resolved config saved beside the LoRA.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from faceset.train.errors import ConfigError

Family = Literal["sd15", "sdxl", "flux2-klein", "zimage", "zimage-turbo", "qwen-image", "flux1"]
"""The families of ``train.families.CATALOG``; SD 1.5 and SDXL train with noise prediction, the
others are flow-matching transformers."""
Network = Literal["lora", "lokr"]
Vram = Literal["auto", "8", "12", "16", "24", "48"]
Quantize = Literal["none", "fp8", "int8", "nf4"]
Offload = Literal["none", "block"]
Precision = Literal["auto", "no", "fp16", "bf16"]
OptimizerName = Literal["auto", "adamw", "adamw8bit"]
LrScheduler = Literal[
    "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"
]
"""diffusers' ``get_scheduler`` names that need no extra arguments."""

CONFIG_FILE = "training_config.json"
"""The resolved config, written beside the LoRA and into every checkpoint."""


# Settings a resumed run may change: they decide how long to go on and what to show, not what
# the weights are. Everything else must match the checkpoint, or the resumed run would be a
# different run glued onto the first.
RESUMABLE_CHANGES = frozenset(
    {
        "steps",
        "save_every",
        "sample_every",
        "sample_prompts",
        "sample_steps",
        "sample_guidance",
        "sample_negative",
        "sample_seed",
        "precision",
        "gradient_checkpointing",
        "vram",
        "quantize",
        "offload",
        "fsdp",
        # The images per optimiser step may be split another way, not changed: checked
        # against the checkpoint's processes by train/loop.py's checkpoint_to_resume.
        "batch_size",
        "gradient_accumulation",
        "processes",
        "name",
        "out",
    }
)


class TrainConfig(BaseModel):
    """One training run. Paths are stored absolute once resolved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- what to train on ---------------------------------------------------------------
    dataset: Path
    """The dataset folder faceset export wrote (it holds ``img/``), or a kohya folder with
    ``dataset.toml``."""
    base: str
    """Base model: a diffusers folder, a single ``.safetensors`` checkpoint, or a model id."""
    family: Family | None = None
    """What the base model is (``--for``); detected from the model when not given, and checked
    against it."""
    text_encoder: tuple[Path, ...] = ()
    """For a base that is one diffusion-model file (ComfyUI's split files): its text encoder
    file(s) or folder(s), and a folder with the tokenizer; empty: found beside the file, in
    ComfyUI's ``models/text_encoders`` and in the Hugging Face cache. FLUX.1 takes two."""
    vae: Path | None = None
    """For a base that is one diffusion-model file: its VAE file or folder; None: found beside
    the file or in ComfyUI's ``models/vae``."""
    adapter: Path | None = None
    """Z-Image Turbo's training adapter (a LoRA file), merged into the base for training so the
    step distillation survives; not part of the saved LoRA. Required for ``zimage-turbo``."""
    reg: Path | None = None
    """Class images for prior preservation (e.g. 100-200 photos of "a man"); none by default."""
    prior_loss_weight: float = Field(1.0, ge=0)
    """Weight of the regularisation images' loss against the person's (kohya's default 1.0)."""
    masked_loss: bool | None = None
    """Weight the loss by the dataset's masks (face 1, grey floor, other people 0); None: on
    when the dataset has ``masks/``."""

    # --- where the result goes ------------------------------------------------------------
    out: Path | None = None
    """Output folder; None: ``<dataset>/model``, where kohya's GUI puts it."""
    name: str | None = None
    """File name of the LoRA without ``.safetensors``, shown by A1111 as its alias; None: the
    dataset folder's name."""

    # --- the LoRA and its optimiser -------------------------------------------------------
    steps: int | None = Field(None, ge=1)
    """Optimiser steps; None: the family's person recipe (1500 for SD, 2000 for klein, Z-Image
    and Qwen-Image, 1500 for FLUX.1)."""
    network: Network = "lora"
    """``lora``, or ``lokr`` (LyCORIS LoKr: Kronecker factors; klein and Z-Image only, the
    families whose LoKr files diffusers loads)."""
    rank: int | None = Field(None, ge=1)
    """LoRA rank r of every adapted projection (LoKr: of its decomposed factor); None: the
    family's recipe (16 for SD and FLUX.1, 32 for klein, Z-Image and Qwen-Image)."""
    alpha: float | None = Field(None, gt=0)
    """LoRA alpha; the weights are scaled by alpha / rank; None: equal to the family's rank."""
    lr: float | None = Field(None, gt=0)
    """Learning rate of the UNet's or transformer's adapter (AdamW); None: 1e-4."""
    train_text_encoder: bool = False
    """Also train LoRA on the text encoder(s); off by default, as SDXL recipes keep it frozen."""
    text_encoder_lr: float = Field(5e-5, gt=0)
    """Text-encoder learning rate when it is trained (1e-5 to 5e-5 is usual)."""
    batch_size: int = Field(1, ge=1)
    """Images per micro-batch on each device; one optimiser step sees batch_size x devices x
    gradient_accumulation images."""
    gradient_accumulation: int = Field(1, ge=1)
    """Micro-batches whose gradients are summed into one optimiser step: the larger batch of
    several GPUs, on one."""
    processes: int = Field(1, ge=1)
    """Processes (GPUs) the run is launched on: set by the run, not by the user."""
    resolution: int | None = None
    """Side of the square training images in pixels; None: dataset.toml's, else 512 for SD 1.5
    and 1024 for SDXL."""
    lr_scheduler: LrScheduler = "constant"
    """Learning-rate curve over the run; constant is kohya's and diffusers' default."""
    lr_warmup_steps: int = Field(0, ge=0)
    """Steps of linear warm-up before the scheduler's curve."""
    max_grad_norm: float = Field(1.0, gt=0)
    """Gradients are clipped to this norm, as the diffusers scripts do."""
    seed: int = 42
    """Seeds the LoRA initialisation, the data order and every step's noise and timesteps."""

    # --- hardware -------------------------------------------------------------------------
    precision: Precision = "auto"
    """Mixed precision; auto: bf16 on a GPU that has it, else fp16 on a GPU, none on CPU."""
    gradient_checkpointing: bool | None = None
    """Trade compute for memory; None: on when training on a GPU."""
    optimizer: OptimizerName = "auto"
    """auto: 8-bit AdamW when bitsandbytes is installed and a GPU is used, else AdamW."""
    vram: Vram | None = None
    """GPU memory to train the transformer families within, in GiB (auto: what is free now);
    None: no budget. Decides how the frozen weights are held (``train/memory.py``)."""
    quantize: Quantize | None = None
    """How the frozen transformer is held: none (bf16), fp8 (storage; bf16 compute), int8
    (torchao weight-only), nf4 (bitsandbytes, CUDA); None: the memory plan's choice."""
    offload: Offload | None = None
    """block: keep the transformer's blocks on the CPU and bring each to the GPU as it runs;
    None: the memory plan's choice."""
    fsdp: bool = False
    """Shard the frozen transformer, the adapter and its optimiser state across the launched
    processes (PyTorch FSDP2), block by block, for a model that does not fit one GPU; the
    transformer families only. Also on when accelerate is launched with --use_fsdp."""

    # --- checkpoints and samples -----------------------------------------------------------
    save_every: int = Field(250, ge=1)
    """Write a checkpoint (and an intermediate LoRA file to compare) every this many steps."""
    sample_every: int = Field(250, ge=0)
    """Draw the sample prompts every this many steps into a contact sheet; 0: never."""
    sample_prompts: tuple[str, ...] = ()
    """Prompts for the samples; empty: a few headshot prompts with the trigger and class."""
    sample_steps: int = Field(28, ge=1)
    """Inference steps of each sample."""
    sample_guidance: float | None = Field(None, ge=0)
    """Guidance of each sample; None: the family's own (7 for SD 1.5, 6 SDXL, 4 klein, ...)."""
    sample_negative: str = ""
    """Negative prompt of the samples (families with real CFG)."""
    sample_seed: int = 42
    """Sample i uses seed sample_seed + i, so sheets of different steps compare like for like."""

    @field_validator("resolution")
    @classmethod
    def _multiple_of_8(cls, v: int | None) -> int | None:
        # The VAE downsamples by 8 (SD 1.5 and SDXL); kohya's bucket steps are multiples of 64.
        if v is not None and (v < 64 or v % 8):
            raise ValueError("must be a multiple of 8, at least 64")
        return v

    @field_validator("name")
    @classmethod
    def _plain_file_name(cls, v: str | None) -> str | None:
        if v is not None and (not v or "/" in v or "\\" in v or v.startswith(".")):
            raise ValueError("must be a plain file name")
        return v

    @property
    def images_per_step(self) -> int:
        return self.batch_size * self.processes * self.gradient_accumulation

    def to_json(self) -> str:
        """Return the config as indented JSON, paths as strings."""
        return json.dumps(self.model_dump(mode="json"), indent=2) + "\n"


class RunConfig(TrainConfig):
    """A config with every "auto" decided for one dataset and machine; what is saved."""

    family: Family
    out: Path
    name: str
    steps: int
    rank: int
    alpha: float
    lr: float
    resolution: int
    masked_loss: bool
    gradient_checkpointing: bool
    sample_guidance: float


def make(values: Mapping[str, Any]) -> TrainConfig:
    """Return a validated config, or raise ConfigError naming the first bad setting."""
    try:
        return TrainConfig.model_validate(dict(values))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "train"
        raise ConfigError(f"setting {where}: {first['msg']}") from None


def read(path: Path) -> TrainConfig:
    """Return the config saved in ``path`` (a ``training_config.json``)."""
    try:
        return make(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the training config {path}: {e}") from None


def for_resume(saved: TrainConfig, overrides: Mapping[str, Any]) -> TrainConfig:
    """Return ``saved`` with ``overrides`` applied, refusing changes that alter the weights."""
    before = saved.model_dump(mode="json")
    after = make({**saved.model_dump(), **overrides}).model_dump(mode="json")
    for key in overrides:
        if key not in RESUMABLE_CHANGES and after[key] != before[key]:
            raise ConfigError(
                f"cannot resume with {key}={after[key]!r}: the run in {saved.out} used"
                f" {before[key]!r}; drop the flag or train into a new --out"
            )
    return make({**saved.model_dump(), **overrides})
