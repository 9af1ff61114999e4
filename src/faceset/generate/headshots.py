"""faceset headshots: a preset's prompts drawn with the person's LoRA, each image with its record.

``OUT/`` receives ``<preset>-NNN-seedS.png`` (pixels only: no EXIF, no text chunks),
``<preset>-NNN-seedS.json`` beside each (prompt, negative prompt, seed, sampler and scheduler,
steps, guidance, LoRA weight and hash, base model, device and dtype: :func:`redraw` makes the
same image from it), ``images.jsonl`` (every record, one per line) and ``contact_sheet.png``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from faceset.generate.config import HeadshotsConfig
from faceset.generate.lora_file import (
    Family,
    LoraError,
    LoraFile,
    _training_config,
    base_of,
    read_lora,
    trained_vram,
)
from faceset.generate.prompts import resolve_preset
from faceset.generate.sheet import TILE, contact_sheet, save_png

if TYPE_CHECKING:  # torch and diffusers load only when an image is drawn
    from faceset.generate.engine import Engine

log = logging.getLogger(__name__)

RECORDS = "images.jsonl"
SHEET = "contact_sheet.png"


@dataclass(frozen=True, slots=True)
class Drawn:
    """Progress: image ``done`` of ``total`` is written to ``path``."""

    done: int
    total: int
    path: Path


OnImage = Callable[[Drawn], None]


def ignore_image(_drawn: Drawn) -> None:
    """The default ``on_image``: report nothing."""


@dataclass(frozen=True, slots=True)
class HeadshotsResult:
    out: Path
    lora: LoraFile
    preset: str
    images: list[Path] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    sheet: Path | None = None


def headshots(
    lora: Path,
    settings: HeadshotsConfig,
    *,
    base: str | None = None,
    family: Family | None = None,
    subject: str | None = None,
    out: Path | None = None,
    engine: Engine | None = None,
    on_image: OnImage = ignore_image,
    text_encoder: Sequence[Path] = (),
    vae: Path | None = None,
) -> HeadshotsResult:
    """Draw ``settings.count`` headshots of the person ``lora`` was trained on; return the files.

    ``base``/``family`` default to what the LoRA and its training_config.json say; ``subject``
    (trigger and class, ``ohwx man``) to its metadata; ``out`` to ``headshots/`` beside the LoRA.
    ``engine`` (a :class:`faceset.generate.engine.Engine` already on the right base model) saves
    loading the base again. Raises LoraError, ConfigError or BaseModelError with one line.
    """
    info = read_lora(lora)
    base, family = base_of(info, base, family)
    subject = subject or info.subject
    if not subject:
        raise LoraError(
            f"{lora} does not name its trigger and class (no modelspec.trigger_phrase or image"
            ' folder in its metadata); pass --subject "ohwx man"'
        )
    preset = resolve_preset(settings.preset, settings.templates)
    from faceset.generate.engine import (
        DEFAULT_GUIDANCE,
        DEFAULT_SIZE,
        Engine,
        Request,
        sampler_for_family,
    )

    sampler = sampler_for_family(family, settings.sampler)

    size = info.resolution or DEFAULT_SIZE[family]
    width, height = settings.width or size, settings.height or size
    guidance = DEFAULT_GUIDANCE[family] if settings.guidance is None else settings.guidance
    negative = preset.negative if settings.negative is None else settings.negative
    out = (out or info.path.parent / "headshots").resolve()
    if engine is None:
        trained = _training_config(info.path)
        if base == trained.get("base") and not text_encoder and vae is None:
            # A diffusion-model file's text encoder and VAE, as training was given them.
            text_encoder = [Path(p) for p in trained.get("text_encoder") or ()]
            vae = Path(trained["vae"]) if trained.get("vae") else None
        engine = Engine(
            base,
            family,
            vram=settings.vram or trained_vram(info),
            text_encoder=text_encoder,
            vae=vae,
        )
    engine.use_lora(info)
    previous = _recorded_images(out)
    log.info(
        "drawing %d %s headshots of %r with %s (weight %g), %dx%d, %d steps, %s",
        settings.count, preset.name, subject, info.path.name, settings.lora_weight,
        width, height, settings.steps, sampler,
    )  # fmt: skip
    images: list[Image.Image] = []  # tiles for the contact sheet, not full images
    paths: list[Path] = []
    records: list[dict[str, Any]] = []
    for i in range(settings.count):
        request = Request(
            prompt=preset.prompt_for(i, subject),
            negative_prompt=negative,
            seed=settings.seed + i,
            steps=settings.steps,
            guidance=guidance,
            width=width,
            height=height,
            sampler=sampler,
            lora_weight=settings.lora_weight,
        )
        image = engine.render(request)
        stem = f"{preset.name}-{i + 1:03d}-seed{request.seed}"
        path = save_png(image, out / f"{stem}.png")
        record = {"image": path.name, "preset": preset.name, **engine.record(request)}
        _write_json(out / f"{stem}.json", record)
        paths.append(path)
        records.append(record)
        images.append(_tile(image))
        on_image(Drawn(i + 1, settings.count, path))
    _write_jsonl(out / RECORDS, records)
    labels = [f"#{i + 1} seed {r['seed']}" for i, r in enumerate(records)]
    sheet = save_png(contact_sheet(images, labels), out / SHEET)
    _remove_stale(out, previous, {p.name for p in paths})
    return HeadshotsResult(out, info, preset.name, paths, records, sheet)


def redraw(record: Mapping[str, Any], engine: Engine | None = None) -> Image.Image:
    """Return the image ``record`` (one line of images.jsonl) describes, drawn again.

    The LoRA must be the file it was drawn with (its SHA-256 is checked); on the device and
    dtype of the record the pixels are the same. Raises LoraError if the LoRA changed.
    """
    from faceset.generate.engine import Engine, request_of

    lora: LoraFile | None = None
    if record.get("lora"):
        lora = read_lora(Path(record["lora"]["path"]))
        if lora.sha256 != record["lora"]["sha256"]:
            raise LoraError(
                f"{lora.path} changed since the image was drawn (SHA-256 differs); the same"
                " image needs the same LoRA file"
            )
    scheduler_config = record["scheduler"]["base_config"]
    if engine is None:
        engine = Engine(
            record["base"],
            record["family"],
            device=record["device"],
            dtype=record["dtype"],
            scheduler_config=scheduler_config,
            text_encoder=record.get("text_encoder") or (),
            vae=record.get("vae"),
        )
    engine.use_lora(lora)
    image: Image.Image = engine.render(request_of(record), scheduler_config)
    return image


def _tile(image: Image.Image) -> Image.Image:
    small = image.copy()
    small.thumbnail((TILE, TILE), Image.Resampling.LANCZOS)
    return small


def read_records(out: Path) -> list[dict[str, Any]]:
    """Return the records of ``out/images.jsonl``, in drawing order."""
    with (out / RECORDS).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _recorded_images(out: Path) -> set[str]:
    try:
        return {str(r["image"]) for r in read_records(out)}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _remove_stale(out: Path, previous: set[str], current: set[str]) -> None:
    """Delete images (and their records) an earlier run wrote here that this run did not."""
    for name in previous - current:
        if "/" in name or name.startswith("."):
            continue  # never follow a record out of the folder
        for path in (out / name, (out / name).with_suffix(".json")):
            path.unlink(missing_ok=True)


def _write_json(path: Path, record: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    tmp.write_text(lines, encoding="utf-8")
    os.replace(tmp, path)
