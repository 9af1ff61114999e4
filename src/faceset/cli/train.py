"""The train command: a LoRA of the person from an exported dataset.

Only this module imports Rich for training; torch and diffusers load when the command runs, so
``faceset --help`` works without the ``train`` extra.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from faceset.cli import Quiet, Verbose, command, err_console, out_console, setup_logging
from faceset.errors import ConfigError
from faceset.train.report import OnStep, Step


class Family(StrEnum):
    sd15 = "sd15"
    sdxl = "sdxl"
    flux2_klein = "flux2-klein"
    zimage = "zimage"
    zimage_turbo = "zimage-turbo"
    qwen_image = "qwen-image"
    flux1 = "flux1"


class Vram(StrEnum):
    auto = "auto"
    gb8 = "8"
    gb12 = "12"
    gb16 = "16"
    gb24 = "24"
    gb48 = "48"


class Quantize(StrEnum):
    none = "none"
    fp8 = "fp8"
    int8 = "int8"
    nf4 = "nf4"


class Offload(StrEnum):
    none = "none"
    block = "block"


class Network(StrEnum):
    lora = "lora"
    lokr = "lokr"


class Precision(StrEnum):
    auto = "auto"
    no = "no"
    fp16 = "fp16"
    bf16 = "bf16"


class Optimizer(StrEnum):
    auto = "auto"
    adamw = "adamw"
    adamw8bit = "adamw8bit"


def _opt(help: str, *names: str) -> Any:
    return typer.Option(*names, help=help, show_default=False)


@command
def train(
    dataset: Annotated[
        Path,
        typer.Argument(
            metavar="DATASET",
            help="The dataset folder faceset export wrote (it holds img/), or a kohya folder"
            " with dataset.toml.",
            show_default=False,
        ),
    ],
    base: Annotated[
        str | None,
        _opt("Base model: a diffusers folder, a .safetensors checkpoint, or a model id.", "--base"),
    ] = None,
    family: Annotated[
        Family | None,
        _opt("What the base model is (default: read from the model's files).", "--for"),
    ] = None,
    text_encoder: Annotated[
        list[Path] | None,
        _opt(
            "For a --base that is one diffusion-model file: its text encoder file or folder, or a"
            " folder with its tokenizer; repeat for more (default: found beside it).",
            "--text-encoder",
        ),
    ] = None,
    vae: Annotated[
        Path | None,
        _opt(
            "For a --base that is one diffusion-model file: its VAE (default: found beside it).",
            "--vae",
        ),
    ] = None,
    adapter: Annotated[
        Path | None,
        _opt("Z-Image Turbo's training adapter (.safetensors), merged for training.", "--adapter"),
    ] = None,
    network: Annotated[
        Network | None, _opt("lora, or lokr for klein and Z-Image (default: lora).", "--network")
    ] = None,
    out: Annotated[
        Path | None, _opt("Output folder (default: DATASET/model).", "--out", "-o")
    ] = None,
    name: Annotated[
        str | None, _opt("LoRA file name (default: the dataset folder's name).", "--name")
    ] = None,
    steps: Annotated[
        int | None, _opt("Optimiser steps (default: the family's, 1500-2000).", "--steps")
    ] = None,
    rank: Annotated[
        int | None, _opt("LoRA rank (default: 16 SD and FLUX.1, 32 the others).", "--rank")
    ] = None,
    alpha: Annotated[
        float | None,
        _opt("LoRA alpha; weights scale by alpha/rank (default: the rank).", "--alpha"),
    ] = None,
    lr: Annotated[
        float | None, _opt("Learning rate of the UNet/transformer (default: 1e-4).", "--lr")
    ] = None,
    train_text_encoder: Annotated[
        bool | None,
        _opt("Also train the text encoder(s) (default: off).", "--train-text-encoder"),
    ] = None,
    text_encoder_lr: Annotated[
        float | None, _opt("Text-encoder learning rate (default: 5e-5).", "--text-encoder-lr")
    ] = None,
    batch_size: Annotated[
        int | None, _opt("Images per micro-batch per GPU (default: 1).", "--batch-size")
    ] = None,
    gradient_accumulation: Annotated[
        int | None,
        _opt(
            "Micro-batches summed into one step: a step sees batch size x GPUs x this many"
            " images (default: 1).",
            "--gradient-accumulation",
        ),
    ] = None,
    resolution: Annotated[
        int | None,
        _opt(
            "Training side in px (default: dataset.toml's, else 512 sd15 / 1024 the others).",
            "--resolution",
        ),
    ] = None,
    seed: Annotated[int | None, _opt("Seed of the whole run (default: 42).", "--seed")] = None,
    reg: Annotated[
        Path | None, _opt("Folder of class images for prior preservation.", "--reg")
    ] = None,
    prior_loss_weight: Annotated[
        float | None,
        _opt("Weight of the class images' loss (default: 1.0).", "--prior-loss-weight"),
    ] = None,
    masked_loss: Annotated[
        bool | None,
        _opt(
            "Weight the loss by the dataset's masks (default: on when masks/ exists).",
            "--masked-loss/--no-masked-loss",
        ),
    ] = None,
    precision: Annotated[
        Precision | None,
        _opt("Mixed precision (default: auto: bf16/fp16 on a GPU, none on CPU).", "--precision"),
    ] = None,
    gradient_checkpointing: Annotated[
        bool | None,
        _opt(
            "Save memory at some speed (default: on with a GPU).",
            "--gradient-checkpointing/--no-gradient-checkpointing",
        ),
    ] = None,
    optimizer: Annotated[
        Optimizer | None,
        _opt("adamw or adamw8bit (default: 8-bit when bitsandbytes and a GPU).", "--optimizer"),
    ] = None,
    vram: Annotated[
        Vram | None,
        _opt(
            "GPU memory to fit in, GiB, or auto (the GPU's free memory); the transformer"
            " families are quantised and offloaded to fit (default: no budget).",
            "--vram",
        ),
    ] = None,
    quantize: Annotated[
        Quantize | None,
        _opt(
            "Hold the frozen transformer as none, fp8, int8 or nf4 (default: --vram's plan).",
            "--quantize",
        ),
    ] = None,
    offload: Annotated[
        Offload | None,
        _opt(
            "block: offload the transformer's blocks to the CPU (default: --vram's plan).",
            "--offload",
        ),
    ] = None,
    fsdp: Annotated[
        bool | None,
        _opt(
            "Shard the transformer across the GPUs accelerate launched (FSDP), for a model"
            " that does not fit one (default: off).",
            "--fsdp",
        ),
    ] = None,
    save_every: Annotated[
        int | None, _opt("Checkpoint every N steps (default: 250).", "--save-every")
    ] = None,
    sample_every: Annotated[
        int | None, _opt("Sample sheet every N steps, 0 never (default: 250).", "--sample-every")
    ] = None,
    sample_prompt: Annotated[
        list[str] | None,
        _opt(
            "A sample prompt; repeat for more (default: headshots of the trigger).",
            "--sample-prompt",
        ),
    ] = None,
    sample_steps: Annotated[
        int | None, _opt("Inference steps per sample (default: 28).", "--sample-steps")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the run in --out from its latest checkpoint."),
    ] = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Train a LoRA of the person in DATASET; write NAME.safetensors (kohya, for A1111/ComfyUI).

    Example: faceset train jane --base stable-diffusion-v1-5/stable-diffusion-v1-5 --for sd15
    """
    # accelerate launch / torchrun start one process per GPU: only the first one reports.
    quiet = quiet or os.environ.get("RANK", "0") != "0"
    setup_logging(verbose, quiet)
    base = _local(base)
    if not dataset.is_dir():
        raise ConfigError(f"no dataset folder at {dataset}; pass the folder faceset export wrote")
    from faceset.train import require_extra

    require_extra("faceset train")
    _quiet_libraries(verbose)
    from faceset.train import checkpoints, config, loop

    overrides = {
        "base": _local(base),
        "family": family.value if family else None,
        "text_encoder": tuple(p.expanduser().resolve() for p in text_encoder)
        if text_encoder
        else None,
        "vae": vae.expanduser().resolve() if vae else None,
        "adapter": adapter.resolve() if adapter else None,
        "network": network.value if network else None,
        "name": name,
        "steps": steps,
        "rank": rank,
        "alpha": alpha,
        "lr": lr,
        "train_text_encoder": train_text_encoder,
        "text_encoder_lr": text_encoder_lr,
        "batch_size": batch_size,
        "gradient_accumulation": gradient_accumulation,
        "resolution": resolution,
        "seed": seed,
        "reg": reg.resolve() if reg else None,
        "prior_loss_weight": prior_loss_weight,
        "masked_loss": masked_loss,
        "precision": precision.value if precision else None,
        "gradient_checkpointing": gradient_checkpointing,
        "optimizer": optimizer.value if optimizer else None,
        "vram": vram.value if vram else None,
        "quantize": quantize.value if quantize else None,
        "offload": offload.value if offload else None,
        "fsdp": fsdp,
        "save_every": save_every,
        "sample_every": sample_every,
        "sample_prompts": tuple(sample_prompt) if sample_prompt else None,
        "sample_steps": sample_steps,
    }
    given = {k: v for k, v in overrides.items() if v is not None}
    dataset = dataset.resolve()
    out_dir = (out or dataset / "model").resolve()
    if resume:
        cfg = checkpoints.resume_config(out_dir, {"dataset": dataset, "out": out_dir, **given})
    else:
        if base is None:
            raise ConfigError("--base is required (or --resume a run in --out)")
        cfg = config.make({"dataset": dataset, "out": out_dir, **given})
    with _progress(enabled=not quiet) as on_step:
        result = loop.train(cfg, resume=resume, on_step=on_step)
    if not quiet:
        out_console.print(
            f"LoRA: {result.lora}\ndiffusers: {result.diffusers_lora}\nconfig: {result.config}"
            + (f"\nsamples: {result.samples[-1]}" if result.samples else ""),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _quiet_libraries(verbose: bool) -> None:
    """Silence diffusers' and transformers' own progress bars and notices unless ``-v``.

    Their tqdm bars ("Loading pipeline components...") would interleave with ours on stderr.
    """
    if not verbose:
        # diffusers and peft import torchao, which reports its optional CUDA kernels missing
        # and trips torch's pytree deprecation notice: nothing a user can act on.
        for name in ("torchao", "torch.utils._pytree"):
            logging.getLogger(name).setLevel(logging.ERROR)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.disable_progress_bar()
        if not verbose:
            library.set_verbosity_error()


def _local(base: str | None) -> str | None:
    """Return ``base`` as an absolute path when it names a local file or folder; raise
    ConfigError when it looks like a path (not a model id) and nothing is there.

    Checked here, before torch and diffusers load (20-40 s), so a typo is answered at once."""
    if base is None:
        return None
    path = Path(base).expanduser()
    if path.exists():
        return str(path.resolve())
    if base.startswith((".", "/", "~")) or base.count("/") > 1 or path.suffix == ".safetensors":
        raise ConfigError(f"base model {base} does not exist")
    return base


@contextmanager
def _progress(enabled: bool) -> Iterator[OnStep]:
    """Yield an ``on_step`` that advances a bar with the loss and ETA on stderr."""
    if not enabled or not err_console.is_terminal:
        yield lambda _step: None
        return
    columns = (
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console) as bar:
        task = bar.add_task("train", total=None, loss="-")

        def on_step(step: Step) -> None:
            if bar.tasks[task].total is None:
                # A resumed run starts mid-way: timing restarts there, so the ETA is right.
                bar.reset(task, total=step.steps, completed=step.step - 1)
            bar.update(task, completed=step.step, loss=f"{step.loss:.4f}")

        yield on_step
