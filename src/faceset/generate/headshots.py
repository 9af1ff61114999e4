"""faceset headshots: a preset's prompts drawn with the person's LoRA, finished and ranked.

The steps, image by image:

1. draw at the preset's aspect (1:1 or 4:5) with the pixels of the model's native square;
2. the face detail pass (detail.py): the face redrawn at the native resolution and pasted back;
3. look (rank.py): faces found, likeness to the person's real photos, and a verdict
   (``no_face``, ``several_faces``, ``other_person``); a step that lowered likeness is dropped;
4. keep the best (``--best N``, spread over the preset's variations); upscale them (upscale.py)
   unless that lowers likeness;
5. write ``OUT/best/NN-<preset>-NNN-seedS.jpg`` (and ``.png``, ``.json``), best first, and
   ``OUT/headshots.html``.

``OUT/`` receives every image as finished, ``<preset>-NNN-seedS.png`` (pixels only: no EXIF, no
text chunks), ``<preset>-NNN-seedS.json`` beside each (prompt, negative prompt, seed, sampler
and scheduler, steps, guidance, LoRA weight and hash, base model, device and dtype, the detail
and upscale settings, the likeness after each step and the verdict: :func:`redraw` makes the
same image from it), ``images.jsonl`` (every record, one per line) and ``contact_sheet.png``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from faceset.evaluate.photos import ExportFolderError
from faceset.generate import detail, page, rank, upscale
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
from faceset.generate.prompts import Preset, resolve_preset
from faceset.generate.sheet import TILE, contact_sheet, save_png

if TYPE_CHECKING:  # torch and diffusers load only when an image is drawn
    from faceset.generate.engine import Engine, Request

log = logging.getLogger(__name__)

RECORDS = "images.jsonl"
SHEET = "contact_sheet.png"
BEST = "best"


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
    """Every image drawn, in drawing order, as finished (``OUT/<preset>-NNN-seedS.png``)."""
    records: list[dict[str, Any]] = field(default_factory=list)
    sheet: Path | None = None
    best: list[Path] = field(default_factory=list)
    """The kept headshots, most like the person first (``OUT/best/NN-....jpg``; a PNG beside)."""
    page: Path | None = None
    """headshots.html."""
    rejected: dict[str, str] = field(default_factory=dict)
    """Image file name -> why it is not kept (a key of rank.REASONS)."""


@dataclass(slots=True, eq=False)
class _Shot:
    """One image on its way through the steps."""

    index: int
    request: Request
    stem: str
    image: Image.Image
    before: Image.Image | None = None
    """The image before the detail pass, when the pass was kept."""
    look: rank.Look | None = None
    record: dict[str, Any] = field(default_factory=dict)


def image_size(native: int, aspect: tuple[int, int], multiple: int) -> tuple[int, int]:
    """Return (width, height) of ``aspect`` with about as many pixels as a ``native`` square,
    each side a multiple of ``multiple`` (8 for SD's VAE, 16 for the transformers' patches)."""
    ratio = math.sqrt(aspect[0] / aspect[1])
    width = max(multiple, round(native * ratio / multiple) * multiple)
    height = max(multiple, round(native / ratio / multiple) * multiple)
    return width, height


def headshots(
    lora: Path,
    settings: HeadshotsConfig,
    *,
    base: str | None = None,
    family: Family | None = None,
    subject: str | None = None,
    out: Path | None = None,
    photos: Path | None = None,
    engine: Engine | None = None,
    on_image: OnImage = ignore_image,
    text_encoder: Sequence[Path] = (),
    vae: Path | None = None,
) -> HeadshotsResult:
    """Draw ``settings.count`` headshots of the person ``lora`` was trained on; return the files.

    Each is drawn at the preset's aspect, its face redrawn at the native resolution (the
    detail pass), scored against the person's real photos (the export ``photos``; default: the
    dataset of the LoRA's training_config.json), and the best kept, upscaled and written to
    ``OUT/best/`` with ``OUT/headshots.html``.

    ``base``/``family`` default to what the LoRA and its training_config.json say; ``subject``
    (trigger and class, ``ohwx man``) to its metadata; ``out`` to ``headshots/`` beside the LoRA.
    ``engine`` (a :class:`faceset.generate.engine.Engine` already on the right base model) saves
    loading the base again. Raises LoraError, ConfigError, BaseModelError, FaceModelMissing or
    ExportFolderError with one line.
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
    seeing, ref = _eyes(info, settings, photos)
    from faceset.generate.engine import (
        DEFAULT_GUIDANCE,
        DEFAULT_SIZE,
        Engine,
        Request,
        sampler_for_family,
    )

    sampler = sampler_for_family(family, settings.sampler)
    native = info.resolution or DEFAULT_SIZE[family]
    multiple = 8 if family in ("sd15", "sdxl") else 16
    width, height = image_size(native, preset.aspect, multiple)
    width, height = settings.width or width, settings.height or height
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
    shots: list[_Shot] = []
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
        stem = f"{preset.name}-{i + 1:03d}-seed{request.seed}"
        started = time.perf_counter()
        shot = _Shot(i, request, stem, engine.render(request))
        timing = {"base": time.perf_counter() - started}
        looks: dict[str, Any] = {}
        if seeing:
            shot.look = rank.look(shot.image, ref)
            looks["base"] = shot.look.as_dict()
        started = time.perf_counter()
        detail_spec = _detail_pass(engine, shot, settings, native, seeing, ref, looks)
        timing["detail"] = time.perf_counter() - started
        shot.record = {
            "image": f"{stem}.png",
            "preset": preset.name,
            "variation": preset.variation_of(i),
            **engine.record(request),
            "detail": detail_spec,
            "upscale": {"applied": False, "reason": "not asked for (--upscale)"},
            "likeness": looks,
            "seconds": timing,
        }
        path = save_png(shot.image, out / f"{stem}.png")
        _write_json(out / f"{stem}.json", shot.record)
        shots.append(shot)
        on_image(Drawn(i + 1, settings.count, path))

    kept = _choose(shots, preset, settings, seeing)
    if settings.upscale is not None:
        for shot in kept:
            _upscale_pass(engine, shot, settings, native, multiple, seeing, ref)
            save_png(shot.image, out / f"{shot.stem}.png")
            _write_json(out / f"{shot.stem}.json", shot.record)
        if seeing and ref is not None:  # an upscale dropped may reorder them
            kept.sort(key=lambda s: (-(s.look.likeness or 0) if s.look else 0, s.index))
    records = [shot.record for shot in shots]
    for position, shot in enumerate(kept):
        shot.record["verdict"] = {"kept": True, "rank": position + 1, "reason": None}
    paths = [out / f"{shot.stem}.png" for shot in shots]
    _write_jsonl(out / RECORDS, records)
    labels = [f"#{i + 1} seed {r['seed']}" for i, r in enumerate(records)]
    sheet = save_png(contact_sheet([_tile(s.image) for s in shots], labels), out / SHEET)
    _remove_stale(out, previous, {p.name for p in paths})
    best = _write_best(out / BEST, kept)
    rejected = {
        f"{s.stem}.png": str(s.record["verdict"]["reason"])
        for s in shots
        if not s.record["verdict"]["kept"]
    }
    summary = _summary(settings, ref, seeing, len(shots), len(kept))
    page_path = page.write(out, page.page(subject, preset.name, summary, [_card(s) for s in kept], [
        _card(s) for s in shots if not s.record["verdict"]["kept"]
    ]))  # fmt: skip
    for shot in shots:  # the verdicts, now final, in every record
        _write_json(out / f"{shot.stem}.json", shot.record)
    _write_jsonl(out / RECORDS, records)
    return HeadshotsResult(out, info, preset.name, paths, records, sheet, best, page_path, rejected)


def _eyes(
    info: LoraFile, settings: HeadshotsConfig, photos: Path | None
) -> tuple[bool, rank.Reference | None]:
    """Return whether the local face model can look at the images, and the person's embedded
    real photos (None when none are found and ``photos`` was not given)."""
    from faceset.evaluate.encoder import FaceModelMissing
    from faceset.select import face_model

    if not face_model.available():
        if settings.best is not None or photos is not None:
            raise FaceModelMissing(
                "ranking headshots by likeness needs the local face model: pip install"
                " 'faceset[identity]'"
            )
        log.warning(
            "the local face model is not installed (pip install 'faceset[identity]'): no face"
            " detail pass and no likeness ranking; every image is kept"
        )
        return False, None
    folder = photos or _export_of(info)
    if folder is None:
        if settings.best is not None:
            raise ExportFolderError(
                f"--best ranks by likeness to the person's real photos, and none were found for"
                f" {info.path.name}: pass --photos EXPORT (the folder faceset export wrote)"
            )
        log.warning(
            "no real photos of the person found beside %s (pass --photos EXPORT): faces are"
            " checked, likeness is not ranked", info.path,
        )  # fmt: skip
        return True, None
    return True, rank.reference(folder)


def _export_of(info: LoraFile) -> Path | None:
    """Return the export the LoRA was trained on: its training_config.json's dataset, else the
    folder above the LoRA's (``EXPORT/model/NAME.safetensors``); None if neither has faces/."""
    dataset = _training_config(info.path).get("dataset")
    for folder in (Path(dataset) if dataset else None, info.path.parent.parent):
        if folder is not None and (folder / "faces").is_dir():
            return folder
    return None


def _detail_pass(
    engine: Engine,
    shot: _Shot,
    settings: HeadshotsConfig,
    native: int,
    seeing: bool,
    ref: rank.Reference | None,
    looks: dict[str, Any],
) -> dict[str, Any]:
    """Redraw the face of ``shot`` and keep it unless likeness drops; return the record."""
    if not settings.detail:
        return {"applied": False, "reason": "turned off (--no-detail)"}
    if not seeing:
        return {"applied": False, "reason": "the local face model is not installed"}
    assert shot.look is not None
    if shot.look.box is None or shot.look.reject == "several_faces":
        return {"applied": False, "reason": rank.REASONS[shot.look.reject or "no_face"]}
    square = detail.face_square(shot.look.box, shot.image.size)
    spec = {
        "square": square.as_list(),
        "size": native,
        "strength": settings.detail_strength,
        "steps": shot.request.steps,
        "crop": detail.CROP,
        "inner": detail.INNER,
    }
    detailed = apply_detail(engine, shot.request, shot.image, spec)
    after = rank.look(detailed, ref)
    looks["detail"] = after.as_dict()
    if not rank.keeps(shot.look, after):
        return {"applied": False, "reason": _worse(shot.look, after), "tried": spec}
    shot.before, shot.image, shot.look = shot.image, detailed, after
    return {"applied": True, **spec}


def _upscale_pass(
    engine: Engine,
    shot: _Shot,
    settings: HeadshotsConfig,
    native: int,
    multiple: int,
    seeing: bool,
    ref: rank.Reference | None,
) -> None:
    """Upscale a kept headshot, unless that lowers its likeness; record what was done."""
    assert settings.upscale is not None
    size = upscale.target_size(shot.image.size, settings.upscale, settings.upscale_side)
    spec = {
        "factor": settings.upscale,
        "size": list(size),
        "tile": native,
        "overlap": max(multiple, native // 4 // multiple * multiple),
        "strength": settings.upscale_strength,
        "steps": shot.request.steps,
    }
    started = time.perf_counter()
    bigger = apply_upscale(engine, shot.request, shot.image, spec)
    shot.record["seconds"]["upscale"] = time.perf_counter() - started
    if seeing and shot.look is not None:
        after = rank.look(bigger, ref)
        shot.record["likeness"]["upscale"] = after.as_dict()
        if not rank.keeps(shot.look, after):
            shot.record["upscale"] = {
                "applied": False, "reason": _worse(shot.look, after), "tried": spec,
            }  # fmt: skip
            return
        shot.look = after
    shot.image = bigger
    shot.record["upscale"] = {"applied": True, **spec}


def apply_detail(
    engine: Engine,
    request: Request,
    image: Image.Image,
    spec: Mapping[str, Any],
    scheduler_config: Mapping[str, Any] | None = None,
) -> Image.Image:
    """Return ``image`` with the face square of ``spec`` (a record's ``detail``) redrawn."""
    size = int(spec["size"])
    face = replace(request, width=size, height=size, steps=int(spec["steps"]))
    return detail.detail(
        image,
        detail.Square(*spec["square"]),
        size,
        lambda crop: engine.img2img(face, crop, float(spec["strength"]), scheduler_config),
    )


def apply_upscale(
    engine: Engine,
    request: Request,
    image: Image.Image,
    spec: Mapping[str, Any],
    scheduler_config: Mapping[str, Any] | None = None,
) -> Image.Image:
    """Return ``image`` upscaled as ``spec`` (a record's ``upscale``) says: tile i is redrawn
    with seed + 1 + i."""

    def redraw_tile(tile: Image.Image, i: int) -> Image.Image:
        tiled = replace(
            request, width=tile.width, height=tile.height, seed=request.seed + 1 + i,
            steps=int(spec["steps"]),
        )  # fmt: skip
        return engine.img2img(tiled, tile, float(spec["strength"]), scheduler_config)

    width, height = spec["size"]
    return upscale.upscale(
        image, (int(width), int(height)), int(spec["tile"]), int(spec["overlap"]), redraw_tile
    )


def _worse(before: rank.Look, after: rank.Look) -> str:
    if after.reject in ("no_face", "several_faces") and before.reject != after.reject:
        return f"dropped: {rank.REASONS[after.reject]} after it"
    return f"dropped: likeness fell from {before.likeness:.3f} to {after.likeness:.3f}"


def _choose(
    shots: list[_Shot], preset: Preset, settings: HeadshotsConfig, seeing: bool
) -> list[_Shot]:
    """Record each shot's verdict; return the kept ones, most like the person first."""
    accepted = [s for s in shots if s.look is None or s.look.reject is None]
    likeness = [
        (s.look.likeness if s.look and s.look.likeness is not None else 0.0) for s in accepted
    ]
    picked = rank.best(likeness, [preset.variation_of(s.index) for s in accepted], settings.best)
    if not seeing or all(s.look is None or s.look.likeness is None for s in accepted):
        picked = sorted(picked)  # nothing to rank by: drawing order
    kept = [accepted[i] for i in picked]
    chosen = {s.index for s in kept}
    for shot in shots:
        reason = shot.look.reject if shot.look is not None else None
        if reason is None and shot.index not in chosen:
            reason = "not_best"
        shot.record["verdict"] = {"kept": reason is None, "rank": None, "reason": reason}
    return kept


def _write_best(folder: Path, kept: list[_Shot]) -> list[Path]:
    """Write the kept headshots as ``NN-<stem>.jpg`` (sRGB, quality 95), ``.png`` and ``.json``
    into ``folder``, replacing what an earlier run put there; return the JPEGs."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.is_file() and old.name[:2].isdigit():
            old.unlink()
    paths = []
    for position, shot in enumerate(kept):
        name = f"{position + 1:02d}-{shot.stem}"
        paths.append(save_jpeg(shot.image, folder / f"{name}.jpg"))
        save_png(shot.image, folder / f"{name}.png")
        _write_json(folder / f"{name}.json", shot.record | {"image": f"../{shot.stem}.png"})
    return paths


def save_jpeg(image: Image.Image, path: Path) -> Path:
    """Write ``image`` as a baseline sRGB JPEG, quality 95, 4:4:4, without EXIF or any profile."""
    clean = Image.frombytes("RGB", image.size, image.convert("RGB").tobytes())
    tmp = path.with_name(f".{path.name}.tmp")
    clean.save(tmp, "JPEG", quality=95, subsampling=0)
    tmp.replace(path)
    return path


def _card(shot: _Shot) -> page.Card:
    done = [name for name in ("detail", "upscale") if shot.record[name]["applied"]]
    if shot.record["upscale"]["applied"]:
        done[-1] = "upscale to {}x{}".format(*shot.record["upscale"]["size"])
    return page.Card(
        name=shot.stem,
        image=shot.image,
        before=shot.before,
        prompt=shot.request.prompt,
        seed=shot.request.seed,
        likeness=None if shot.look is None else shot.look.likeness,
        steps=", ".join(done) or "as drawn",
        reason=shot.record["verdict"]["reason"],
        rank=shot.record["verdict"]["rank"],
    )


def _summary(
    settings: HeadshotsConfig, ref: rank.Reference | None, seeing: bool, drawn: int, kept: int
) -> str:
    if not seeing:
        return f"{kept} of {drawn} kept, unranked: the local face model is not installed."
    if ref is None:
        return f"{kept} of {drawn} show one face; no real photos of the person to rank them by."
    return (
        f"{kept} of {drawn} kept{f' (--best {settings.best})' if settings.best else ''}, most"
        f" like the person first. Likeness: mean cosine of the face to the person's"
        f" {len(ref.train)} training and {len(ref.holdout)} held-out photos ({ref.folder}), with"
        f" the encoder of faceset eval. Other person: farther than {ref.threshold:.3f} from"
        " their centre."
    )


def redraw(record: Mapping[str, Any], engine: Engine | None = None) -> Image.Image:
    """Return the image ``record`` (one line of images.jsonl) describes, drawn again: the base
    image, and the detail pass and upscale when the record says they were kept.

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
    request = request_of(record)
    image: Image.Image = engine.render(request, scheduler_config)
    if (record.get("detail") or {}).get("applied"):
        image = apply_detail(engine, request, image, record["detail"], scheduler_config)
    if (record.get("upscale") or {}).get("applied"):
        image = apply_upscale(engine, request, image, record["upscale"], scheduler_config)
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
