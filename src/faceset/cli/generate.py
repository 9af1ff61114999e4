"""Commands after training: headshots, eval, and run (export, train, eval, headshots in one).

torch and diffusers load only when a command draws; ``faceset --help`` works without them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from faceset import config
from faceset.cli import Quiet, Verbose, command, err_console, out_console, setup_logging
from faceset.cli.library import (
    Cache,
    CaFile,
    Db,
    EnvFile,
    Originals,
    PasswordFile,
    ServerPath,
    Sidecar,
    SourceKind,
    Storage,
    TokenFile,
    Url,
    _library,
    _load,
    _remote,
    run_export,
)
from faceset.cli.train import Family, Vram, _local, _quiet_libraries
from faceset.cli.train import _progress as train_progress
from faceset.errors import ConfigError

RUN_KEEP = 6
"""Headshots faceset run keeps unless told (``--keep``, ``[headshots] best``)."""


class SamplerName(StrEnum):
    dpmpp_2m_karras = "dpmpp_2m_karras"
    euler_a = "euler_a"
    euler = "euler"
    ddim = "ddim"
    model = "model"


def _opt(help: str, *names: str) -> Any:
    return typer.Option(*names, help=help, show_default=False)


ConfigFile = Annotated[
    Path | None, _opt("Settings file (default ./faceset.toml if present).", "--config")
]
Base = Annotated[
    str | None,
    _opt(
        "Base model: a diffusers folder, a .safetensors checkpoint or a model id (default: the"
        " one the LoRA was trained on).",
        "--base",
    ),
]
ForFamily = Annotated[Family | None, _opt("What the base model is (default: the LoRA's).", "--for")]
VramOption = Annotated[
    Vram | None,
    _opt(
        "GPU GiB (8, 12, 16, 24, 48, auto) to draw a transformer family within (default: the"
        " LoRA's training budget).",
        "--vram",
    ),
]
Subject = Annotated[
    str | None,
    _opt('Trigger and class, e.g. "ohwx man" (default: from the LoRA\'s metadata).', "--subject"),
]


def _settings(config_file: Path | None, name: str, flags: Mapping[str, Any]) -> config.Config:
    """Return the settings: ``--config`` (else ./faceset.toml), with the set flags of section
    ``name`` on top."""
    return config.load(
        config_file, {name: {k: v for k, v in flags.items() if v is not None}}, environ={}
    )


def _require_torch_stack(verbose: bool, command: str) -> None:
    from faceset.train import require_extra

    require_extra(f"faceset {command}")
    _quiet_libraries(verbose)


def _print(text: str) -> None:
    out_console.print(text, highlight=False, markup=False, soft_wrap=True)


@contextmanager
def _bar(enabled: bool, label: str) -> Iterator[Callable[[str, int, int], None]]:
    """Yield ``advance(phase, done, total)`` driving a bar on stderr (one task per phase)."""
    if not enabled or not err_console.is_terminal:
        yield lambda _phase, _done, _total: None
        return
    columns = (
        TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=err_console) as bar:
        tasks: dict[str, Any] = {}

        def advance(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(f"{label} {phase}".strip(), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield advance


@command
def headshots(
    lora: Annotated[
        Path, typer.Option("--lora", help="The LoRA: NAME.safetensors faceset train wrote.")
    ],
    base: Base = None,
    family: ForFamily = None,
    preset: Annotated[
        str | None,
        _opt(
            "linkedin, studio, outdoor, office, casual, editorial, or a [headshots.templates]"
            " name (default: linkedin).",
            "--preset",
        ),
    ] = None,
    count: Annotated[int | None, _opt("How many images (default: 16).", "-n", "--count")] = None,
    seed: Annotated[
        int | None, _opt("Seed of the first image; image i uses seed + i (default: 0).", "--seed")
    ] = None,
    out: Annotated[
        Path | None, _opt("Output folder (default: headshots/ beside the LoRA).", "--out", "-o")
    ] = None,
    steps: Annotated[int | None, _opt("Denoising steps (default: 30).", "--steps")] = None,
    guidance: Annotated[
        float | None, _opt("Guidance scale (default: the family's own).", "--guidance")
    ] = None,
    lora_weight: Annotated[
        float | None, _opt("LoRA strength (default: 1.0).", "--lora-weight")
    ] = None,
    vram: VramOption = None,
    sampler: Annotated[
        SamplerName | None, _opt("Sampler (default: dpmpp_2m_karras).", "--sampler")
    ] = None,
    width: Annotated[
        int | None, _opt("Width in px (default: the training resolution).", "--width")
    ] = None,
    height: Annotated[
        int | None, _opt("Height in px (default: the training resolution).", "--height")
    ] = None,
    negative: Annotated[
        str | None, _opt("Negative prompt (default: the preset's).", "--negative")
    ] = None,
    detail: Annotated[
        bool | None,
        _opt(
            "Redraw each face at the model's native resolution (default: on; needs"
            " faceset[identity]).",
            "--detail/--no-detail",
        ),
    ] = None,
    upscale: Annotated[
        float | None,
        _opt(
            "Enlarge the kept headshots this many times, to at least 2048 px, with the base"
            " model (default: no upscale).",
            "--upscale",
        ),
    ] = None,
    best: Annotated[
        int | None,
        _opt(
            "Keep the N most like the person's real photos (default: all that show them).",
            "--best",
        ),
    ] = None,
    photos: Annotated[
        Path | None,
        _opt(
            "The export folder with the person's real photos (faces/, holdout/) to rank by"
            " (default: the LoRA's training dataset).",
            "--photos",
        ),
    ] = None,
    subject: Subject = None,
    text_encoder: Annotated[
        list[Path] | None,
        _opt(
            "For a --base that is one diffusion-model file: its text encoder file or folder, or a"
            " folder with its tokenizer; repeat for more (default: as trained, or found beside it).",
            "--text-encoder",
        ),
    ] = None,
    vae: Annotated[
        Path | None,
        _opt(
            "For a --base that is one diffusion-model file: its VAE (default: as trained).", "--vae"
        ),
    ] = None,
    config_file: ConfigFile = None,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Draw professional headshots of the person with their LoRA, face-detailed and ranked by
    likeness to their real photos; each image with its record, and headshots.html.

    Example: faceset headshots --lora jane/model/jane.safetensors --preset linkedin -n 24 --best 6 --upscale 2
    """
    setup_logging(verbose, quiet)
    flags = {
        "preset": preset, "count": count, "seed": seed, "steps": steps, "guidance": guidance,
        "lora_weight": lora_weight, "sampler": sampler.value if sampler else None,
        "width": width, "height": height, "negative": negative,
        "vram": vram.value if vram else None, "detail": detail, "upscale": upscale, "best": best,
    }  # fmt: skip
    settings = _settings(config_file, "headshots", flags).headshots
    # Before torch loads (20-40 s): a wrong path is answered at once, and no --out is made.
    if not lora.expanduser().is_file():
        raise ConfigError(f"LoRA file {lora} does not exist")
    base = _local(base)
    _require_torch_stack(verbose, "headshots")
    from faceset.generate import headshots as draw

    with _bar(not quiet, "drawing") as advance:
        result = draw(
            lora,
            settings,
            base=_local(base),
            family=family.value if family else None,
            subject=subject,
            out=out,
            photos=photos,
            text_encoder=[p.expanduser().resolve() for p in text_encoder or ()],
            vae=vae.expanduser().resolve() if vae else None,
            on_image=lambda d: advance("", d.done, d.total),
        )
    if not quiet:
        _print(
            f"{len(result.images)} {result.preset} headshots drawn: {result.out}\n"
            f"{_kept(result)}\ncontact sheet: {result.sheet}\n"
            f"records: {result.out / 'images.jsonl'}"
        )


def _kept(result: Any) -> str:
    """Return where the kept headshots and the page are, and how many were set aside."""
    folder = result.best[0].parent if result.best else result.out / "best"
    reasons: dict[str, int] = {}
    for reason in result.rejected.values():
        reasons[reason] = reasons.get(reason, 0) + 1
    aside = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
    return (
        f"{len(result.best)} kept, most like the person first: {folder}"
        + (f" (not kept: {aside})" if aside else "")
        + f"\npage: {result.page}"
    )


@command
def eval(  # named for the command; shadows the builtin only in this module
    export: Annotated[
        Path,
        typer.Argument(
            metavar="EXPORT",
            help="The export folder (faces/ trained on, holdout/ never trained on).",
            show_default=False,
        ),
    ],
    model: Annotated[
        Path | None,
        typer.Argument(
            metavar="MODEL",
            help="faceset train's output folder, or one LoRA file (default: EXPORT/model).",
            show_default=False,
        ),
    ] = None,
    base: Base = None,
    family: ForFamily = None,
    subject: Subject = None,
    out: Annotated[
        Path | None,
        _opt("Folder for eval.json, eval.html and images (default: MODEL/eval).", "--out", "-o"),
    ] = None,
    steps: Annotated[int | None, _opt("Denoising steps (default: 30).", "--steps")] = None,
    seed: Annotated[
        list[int] | None, _opt("A seed; repeat for more (default: 1 2 3 4).", "--seed")
    ] = None,
    prompt: Annotated[
        list[str] | None,
        _opt("A prompt with {subject}; repeat for more (default: six headshots).", "--prompt"),
    ] = None,
    vram: VramOption = None,
    config_file: ConfigFile = None,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Score every LoRA checkpoint against held-out photos of the person; pick the best.

    Example: faceset eval jane jane/model
    """
    setup_logging(verbose, quiet)
    flags = {
        "steps": steps,
        "seeds": tuple(seed) if seed else None,
        "prompts": tuple(prompt) if prompt else None,
        "vram": vram.value if vram else None,
    }
    settings = _settings(config_file, "eval", flags).eval
    from faceset.evaluate import require

    require()  # before torch loads: a missing extra is one line, at once
    _require_torch_stack(verbose, "eval")
    from faceset.evaluate import evaluate

    with _bar(not quiet, "eval") as advance:
        result = evaluate(
            export,
            model or export / "model",
            settings,
            base=_local(base),
            family=family.value if family else None,
            subject=subject,
            out=out,
            on_progress=lambda p: advance(p.phase, p.done, p.total),
        )
    if not quiet:
        _report(result.report)
        _print(f"eval.json: {result.json}\neval.html: {result.html}")


def _report(doc: Mapping[str, Any]) -> None:
    """Print the table of checkpoints and the pick."""

    def n(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    table = Table("Checkpoint", "Faces", "SimTarget", "SimRef", "Paste", "Diversity", "")
    best = (doc["best"] or {}).get("label")
    for row in doc["checkpoints"]:
        note = (
            "best" if row["label"] == best else ("base, for scale" if row["lora"] is None else "")
        )
        table.add_row(
            row["label"], f"{row['faces_found']}/{row['outputs']}", n(row["sim_target"]),
            n(row["sim_ref"]), n(row["paste"]), n(row["diversity"]), note,
        )  # fmt: skip
    out_console.print(table)
    _print(f"real-vs-real baseline: {n(doc['baseline']['real_vs_real'])}\n{doc['reason']}")


@command
def run(
    person: Annotated[
        str, typer.Option("--person", "-p", help="Name, alias, slug or UID of the person.")
    ],
    base: Annotated[
        str,
        typer.Option(
            "--base", help="Base model: a diffusers folder, a .safetensors file or a model id."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Folder for the dataset, model/, eval/ and headshots/."),
    ],
    family: Annotated[
        Family | None,
        typer.Option(
            "--for",
            help="What the base model is (default: read from the model's files).",
            show_default=False,
        ),
    ] = None,
    best: Annotated[int, typer.Option("--best", help="Faces to train on.")] = 30,
    trigger: Annotated[
        str | None, _opt("Rare token naming the person (default: ohwx).", "--trigger")
    ] = None,
    class_word: Annotated[
        str | None, _opt("Class word: person, man, woman (default: person).", "--class")
    ] = None,
    steps: Annotated[
        int | None, _opt("Training steps (default: the family's, 1500-2000).", "--steps")
    ] = None,
    vram: Annotated[
        Vram | None,
        _opt("GPU GiB (8, 12, 16, 24, 48, auto) to train and draw within.", "--vram"),
    ] = None,
    save_every: Annotated[
        int | None, _opt("Checkpoint every N steps, each evaluated (default: 250).", "--save-every")
    ] = None,
    resolution: Annotated[
        int | None,
        _opt("Training side in px (default: 512 sd15 / 1024 sdxl).", "--resolution"),
    ] = None,
    preset: Annotated[str | None, _opt("Headshot preset (default: linkedin).", "--preset")] = None,
    count: Annotated[int | None, _opt("Headshots to draw (default: 16).", "-n", "--count")] = None,
    keep: Annotated[
        int | None,
        _opt("Headshots to keep, the most like the person (default: 6).", "--keep"),
    ] = None,
    upscale: Annotated[
        float | None,
        _opt("Enlarge the kept headshots, to at least 2048 px (default: no).", "--upscale"),
    ] = None,
    no_eval: Annotated[
        bool,
        typer.Option(
            "--no-eval", help="Skip the likeness evaluation (it needs faceset[identity])."
        ),
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the training run in OUT/model.")
    ] = False,
    db: Db = None,
    originals: Originals = None,
    storage: Storage = None,
    sidecar: Sidecar = None,
    db_password_file: PasswordFile = None,
    source: SourceKind = None,
    url: Url = None,
    token_file: TokenFile = None,
    ca_file: CaFile = None,
    cache: Cache = None,
    server_path: ServerPath = None,
    env_file: EnvFile = None,
    config_file: ConfigFile = None,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """From the library to headshots in one go: export --best, train, eval, headshots.

    The headshots use the checkpoint eval picks (the final LoRA with --no-eval).

    Example: faceset run --person "Jane Doe" --base stable-diffusion-v1-5/stable-diffusion-v1-5 --for sd15 --db sqlite:///storage/index.db --originals originals --out jane
    """
    setup_logging(verbose, quiet)
    chosen = _settings(
        config_file,
        "headshots",
        {"preset": preset, "count": count, "best": keep, "upscale": upscale},
    )
    shots, evaluation = chosen.headshots, chosen.eval
    if shots.best is None and not no_eval:
        shots = shots.model_copy(update={"best": min(RUN_KEEP, shots.count)})
    if not no_eval:
        from faceset.evaluate import FaceModelMissing, require

        # Hours of training would end in this error: say it first.
        try:
            require()
        except FaceModelMissing as e:
            raise FaceModelMissing(f"{e}, or pass --no-eval") from None
    _require_torch_stack(verbose, "run")
    from faceset.train import config as train_config
    from faceset.train import train
    from faceset.train.detect import family_for

    # Before the export: a base model of an unknown or other family is one line, at once.
    family_name: Any = family_for(_local(base) or base, family.value if family else None)
    out = out.resolve()
    cfg = _load(
        config_file,
        env_file,
        {
            "library": _library(
                db, originals, storage, sidecar, db_password_file,
                _remote(source, url, token_file, ca_file, cache, server_path),
            ),
            "select": {"best": best},
            "export": {
                "out": out, "for_model": family_name, "trigger": trigger, "class_word": class_word,
            },
        },
    )  # fmt: skip
    exported = run_export(cfg, person, quiet=quiet)
    if exported.summary.images == 0:
        raise ConfigError(
            f"no face of {exported.person.name} could be exported; see {exported.report}"
        )

    flags = {
        "steps": steps, "save_every": save_every, "resolution": resolution,
        "vram": vram.value if vram else None,
    }  # fmt: skip
    train_cfg = train_config.make(
        {"dataset": out, "base": _local(base) or base, "family": family_name, "out": out / "model"}
        | {k: v for k, v in flags.items() if v is not None}
    )
    with train_progress(enabled=not quiet) as on_step:
        trained = train(train_cfg, resume=resume, on_step=on_step)
    if not quiet:
        _print(f"LoRA: {trained.lora}")

    from faceset.generate.engine import Engine

    engine = Engine(train_cfg.base, family_name, vram=train_cfg.vram)
    lora = trained.lora
    if not no_eval:
        from faceset.evaluate import evaluate

        with _bar(not quiet, "eval") as advance:
            result = evaluate(
                out, out / "model", evaluation, out=out / "eval", renderer=engine,
                on_progress=lambda p: advance(p.phase, p.done, p.total),
            )  # fmt: skip
        if not quiet:
            _report(result.report)
            _print(f"eval.html: {result.html}")
        if result.best is not None and result.best.lora is not None:
            lora = result.best.lora.path
    from faceset.generate import headshots as draw

    with _bar(not quiet, "drawing") as advance:
        shot = draw(
            lora, shots, base=train_cfg.base, family=family_name, out=out / "headshots",
            engine=engine, on_image=lambda d: advance("", d.done, d.total),
        )  # fmt: skip
    if not quiet:
        _print(
            f"{len(shot.images)} headshots with {lora.name}: {shot.out}\n{_kept(shot)}\n"
            f"contact sheet: {shot.sheet}"
        )
