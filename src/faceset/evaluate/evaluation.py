"""faceset eval, phase by phase (quality.md section 3):

1. embed the training and held-out photos of the export; the real-vs-real baseline;
2. list the LoRA checkpoints of the training run (and the base model alone, for scale);
3. draw the fixed prompts x seeds with each; find and embed the face in every output;
4. SimTarget, SimRef, Paste, diversity and faces not found per checkpoint and per prompt;
5. pick the checkpoint and say why; write eval.json and eval.html, link it from report.html.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import imagehash
import numpy as np
from PIL import Image

from faceset.evaluate import encoder, metrics
from faceset.evaluate.candidates import Candidate, find_candidates
from faceset.evaluate.config import EvalConfig
from faceset.evaluate.photos import ExportFolderError, RealPhotos, read_export
from faceset.generate.lora_file import Family, LoraError, base_of, trained_vram
from faceset.generate.prompts import NEGATIVE, fill
from faceset.generate.sheet import save_png

log = logging.getLogger(__name__)

BASE_LABEL = "base model"


class Renderer(Protocol):
    """What eval draws with: :class:`faceset.generate.engine.Engine`, or a stand-in in tests."""

    def use_lora(self, lora: Any) -> None: ...

    def render(self, request: Any) -> Image.Image: ...


@dataclass(frozen=True, slots=True)
class Progress:
    """``done`` of ``total`` items of ``phase`` ("photos", or a checkpoint's label)."""

    phase: str
    done: int
    total: int


OnProgress = Callable[[Progress], None]


def ignore_progress(_progress: Progress) -> None:
    """The default ``on_progress``: report nothing."""


@dataclass(frozen=True, slots=True)
class Output:
    """One generated image and its face's scores (None: no face found)."""

    file: Path
    prompt_index: int
    seed: int
    score: metrics.OutputScore | None
    hash: int


@dataclass(slots=True)
class Row:
    """One candidate's outputs and numbers."""

    candidate: Candidate
    outputs: list[Output] = field(default_factory=list)
    summary: metrics.Summary | None = None
    per_prompt: list[metrics.Summary] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EvalResult:
    out: Path
    json: Path
    html: Path
    best: Candidate | None
    reason: str
    report: dict[str, Any]


def evaluate(
    export: Path,
    model: Path,
    settings: EvalConfig,
    *,
    base: str | None = None,
    family: Family | None = None,
    subject: str | None = None,
    out: Path | None = None,
    renderer: Renderer | None = None,
    on_progress: OnProgress = ignore_progress,
) -> EvalResult:
    """Score every checkpoint in ``model`` against the real photos in ``export``; pick one.

    ``model`` is the output folder of faceset train (or one LoRA file); ``base``/``family``
    default to what its training_config.json and metadata say; ``out`` to ``model/eval``.
    Raises FaceModelMissing (naming ``pip install 'faceset[identity]'``), ExportFolderError,
    ModelFolderError, LoraError or BaseModelError with one line.
    """
    encoder.require()
    photos = read_export(export)
    candidates = find_candidates(model.resolve())
    first = next(c.lora for c in candidates if c.lora is not None)
    base, family = base_of(first, base, family)
    subject = subject or next(
        (c.lora.subject for c in candidates if c.lora and c.lora.subject), None
    )
    if not subject:
        raise LoraError(
            f'{first.path} does not name its trigger and class; pass --subject "ohwx man"'
        )
    out = (out or (model if model.is_dir() else model.parent) / "eval").resolve()

    # 1. The real photos.
    train, holdout, missing = _embed_photos(photos, on_progress)
    base_numbers = metrics.baseline(train, holdout)
    log.info(
        "real photos: %d training, %d held out; held-out vs training cosine %.3f",
        len(train), len(holdout), base_numbers.real_vs_real,
    )  # fmt: skip

    # 2. What to compare.
    if settings.base_model_row:
        candidates = [Candidate(BASE_LABEL, None, None), *candidates]
    from faceset.generate.engine import DEFAULT_GUIDANCE, DEFAULT_SIZE, Request, sampler_for_family

    size = settings.resolution or first.resolution or DEFAULT_SIZE[family]
    guidance = DEFAULT_GUIDANCE[family] if settings.guidance is None else settings.guidance
    # The report shows what was used: the transformer families draw with their own scheduler.
    settings = settings.model_copy(update={"sampler": sampler_for_family(family, settings.sampler)})
    negative = NEGATIVE if settings.negative is None else settings.negative
    if renderer is None:
        from faceset.generate.engine import Engine

        renderer = Engine(base, family, vram=settings.vram or trained_vram(first))

    # 3-4. Draw, embed, score.
    rows: list[Row] = []
    per_candidate = len(settings.prompts) * len(settings.seeds)
    for candidate in candidates:
        renderer.use_lora(candidate.lora)
        row = Row(candidate)
        folder = out / _slug(candidate.label)
        for old in folder.glob("p*-seed*.png"):
            old.unlink()  # a previous run's outputs, perhaps of other prompts or seeds
        for p, template in enumerate(settings.prompts):
            prompt = fill(template, subject)
            for seed in settings.seeds:
                request = Request(
                    prompt=prompt,
                    negative_prompt=negative,
                    seed=seed,
                    steps=settings.steps,
                    guidance=guidance,
                    width=size,
                    height=size,
                    sampler=settings.sampler,
                    lora_weight=settings.lora_weight,
                )
                image = renderer.render(request)
                file = save_png(image, folder / f"p{p + 1}-seed{seed}.png")
                face = encoder.largest_face(image)
                score = (
                    None if face is None else metrics.score_output(face.embedding, train, holdout)
                )
                row.outputs.append(Output(file, p, seed, score, _hash(image)))
                on_progress(Progress(candidate.label, len(row.outputs), per_candidate))
        row.summary = metrics.summarise(
            [o.score for o in row.outputs], base_numbers, _hashes_by_prompt(row.outputs)
        )
        row.per_prompt = [
            metrics.summarise(
                [o.score for o in row.outputs if o.prompt_index == p],
                base_numbers,
                [[o.hash for o in row.outputs if o.prompt_index == p]],
            )
            for p in range(len(settings.prompts))
        ]
        rows.append(row)
        s = row.summary
        log.info(
            "%s: faces in %d/%d outputs, SimTarget %s, SimRef %s, Paste %s",
            candidate.label, s.found, s.outputs, _f(s.sim_target), _f(s.sim_ref), _f(s.paste),
        )  # fmt: skip

    # 5. The pick, and the report.
    trained = [r for r in rows if r.candidate.lora is not None]
    choice = metrics.choose(
        [r.candidate.label for r in trained],
        [r.summary for r in trained if r.summary is not None],
        base_numbers,
        min_faces=settings.min_faces,
        max_copying=settings.max_copying,
    )
    best = None if choice.index is None else trained[choice.index].candidate
    log.info("%s", choice.reason)
    from faceset.evaluate import report

    context = report.Context(
        export=photos.folder,
        model=model.resolve(),
        base=base,
        family=family,
        subject=subject,
        settings=settings,
        size=size,
        guidance=guidance,
        negative=negative,
        photos=photos,
        missing=missing,
        baseline=base_numbers,
    )
    document = report.document(context, rows, choice, trained)
    json_path, html_path = report.write(out, context, document, rows)
    report.link_from_select_report(photos.folder, html_path, best)
    return EvalResult(out, json_path, html_path, best, choice.reason, document)


def _embed_photos(
    photos: RealPhotos, on_progress: OnProgress
) -> tuple[np.ndarray, np.ndarray, dict[str, list[str]]]:
    """Return the training and held-out embeddings, and the images with no face found."""
    embedded: dict[str, list[np.ndarray]] = {"train": [], "holdout": []}
    missing: dict[str, list[str]] = {"train": [], "holdout": []}
    todo = [("train", p) for p in photos.train] + [("holdout", p) for p in photos.holdout]
    for i, (split, path) in enumerate(todo):
        try:
            with Image.open(path) as image:
                face = encoder.largest_face(image)
        except OSError as e:
            raise ExportFolderError(f"cannot read {path}: {e}") from None
        if face is None:
            missing[split].append(str(path.relative_to(photos.folder)))
        else:
            embedded[split].append(face.embedding)
        on_progress(Progress("photos", i + 1, len(todo)))
    for split, paths in missing.items():
        if paths:
            log.warning("no face found in %d %s photos: %s", len(paths), split, ", ".join(paths))
    if not embedded["train"]:
        raise ExportFolderError(f"no face found in any training photo of {photos.folder}")
    if len(embedded["holdout"]) < 2:
        raise ExportFolderError(
            f"a face was found in {len(embedded['holdout'])} held-out photos of {photos.folder};"
            " eval needs at least 2 (export with a larger --best or select.holdout)"
        )
    return np.stack(embedded["train"]), np.stack(embedded["holdout"]), missing


def _hash(image: Image.Image) -> int:
    return int(str(imagehash.phash(image)), 16)


def _hashes_by_prompt(outputs: list[Output]) -> list[list[int]]:
    prompts = sorted({o.prompt_index for o in outputs})
    return [[o.hash for o in outputs if o.prompt_index == p] for p in prompts]


def _slug(label: str) -> str:
    return label.replace(" ", "-")


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
