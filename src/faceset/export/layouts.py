"""Trainer folders over the cropped faces: what kohya, diffusers, OneTrainer and ai-toolkit read.

``write_layouts`` turns the manifest records of the images under ``faces/`` into::

    img/<repeats>_<trigger> <class>/   images + one-line .txt captions (kohya, bmaltais, ai-toolkit)
    dataset.toml, dataset-masked.toml  sd-scripts --dataset_config, without and with loss masks
    aitoolkit.yaml                     ai-toolkit job over img/ and masks/ (transformer families)
    musubi_dataset.toml                musubi-tuner --dataset_config (klein, Z-Image, Qwen-Image)
    sample_prompts.txt                 sd-scripts --sample_prompts
    model/ log/                        empty, as the bmaltais GUI expects them; never cleaned
    masks/<stem>.png                   kohya conditioning_data_dir, ai-toolkit mask_path
    onetrainer/                        images, captions and <stem>-masklabel.png
    diffusers/train/                   images + metadata.jsonl (imagefolder)
    diffusers/instance/                images alone (DreamBooth --instance_data_dir)
    TRAINING.md                        where to point each trainer

Images are hard links to ``faces/`` (copies where links fail). OneTrainer's masks get a folder of
their own: kohya and ai-toolkit read every ``.png`` beside the images as a training image
(sd-scripts ``glob_images``), while OneTrainer skips ``-masklabel`` files.

A run writes only what changed and deletes what it wrote before and no longer writes; the list
lives in ``.faceset-layouts.json``. Trainers' caches beside the images (kohya
``<stem>_0512x0512_sd.npz``, ``<stem>_te_outputs.npz``, ``metadata_cache.json``, ai-toolkit
``_latent_cache/``, musubi-tuner ``musubi_cache/``) are kept for unchanged images and deleted for
changed or removed ones: they are keyed by file name, not content, so a stale one would train on
the old image or caption.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import PIL
from PIL import Image, UnidentifiedImageError

from faceset.crop.pool import map_bounded
from faceset.export import aitoolkit, diffusers, kohya, musubi
from faceset.export.captions import caption, class_word_warnings, template_fields
from faceset.export.claim import sweep_temporaries
from faceset.export.config import ExportConfig
from faceset.export.files import link, remove, write_bytes
from faceset.export.guide import GUIDE, ONETRAINER_DIR, training_guide
from faceset.export.manifest import IMAGES
from faceset.export.masks import MASK_VERSION, BoxPx, render_mask, to_image
from faceset.export.presets import RESOLUTION, TRANSFORMERS
from faceset.export.tokens import check_trigger
from faceset.redaction import redact_text

log = logging.getLogger(__name__)

STATE = ".faceset-layouts.json"
DIGEST = ".faceset-layouts.digest"
"""Digest of the inputs of the last complete run: equal means there is nothing to write."""
LAYOUT_VERSION = 2
"""Bump when what the layouts contain changes, so a re-run rewrites them."""
MASK_LABEL = "-masklabel.png"
# Folders a user's trainer writes into: created, never cleaned.
KEPT_DIRS = (kohya.MODEL_DIR, kohya.LOG_DIR)


@dataclass(frozen=True, slots=True)
class LayoutResult:
    """What :func:`write_layouts` wrote: the folders to give each trainer, the files whose content
    changed (paths relative to the output folder), the ones removed, and warnings."""

    images: int
    repeats: int
    size: int | None
    """Side of the images in pixels (the most common one); None without images."""
    train_data_dir: Path | None = None
    """kohya ``--train_data_dir``: ``img/``, the parent of the concept folder."""
    concept_dir: Path | None = None
    """``img/<repeats>_<trigger> <class>``: ai-toolkit ``folder_path``."""
    dataset_toml: Path | None = None
    masked_dataset_toml: Path | None = None
    sample_prompts: Path | None = None
    masks_dir: Path | None = None
    onetrainer_dir: Path | None = None
    diffusers_train_dir: Path | None = None
    diffusers_instance_dir: Path | None = None
    aitoolkit_job: Path | None = None
    """``aitoolkit.yaml``: ``python run.py`` it in ai-toolkit (transformer families only)."""
    musubi_dataset: Path | None = None
    """musubi-tuner ``--dataset_config`` (the transformer families it trains)."""
    guide: Path | None = None
    written: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Image:
    stem: str
    """File stem in every layout: the ``faces/`` stem with ``_`` made ``-``."""
    source: Path
    suffix: str
    size: tuple[int, int]
    record: Mapping[str, Any]


@dataclass(slots=True)
class _State:
    """What the last run left: its files, its concept folder, and the size and modification
    time of each linked image, which tells an image changed in place from one left alone."""

    files: set[str]
    concept: str | None
    stamps: dict[str, tuple[int, int]]
    keys: dict[str, str]
    """Digest of what each rendered file (mask) was drawn from."""

    def moved(self, old: str, new: str) -> _State:
        """Return the state with the folder ``old`` renamed to ``new``."""

        def move(rel: str) -> str:
            return new + rel.removeprefix(old) if rel.startswith(old + "/") else rel

        return _State(
            {move(f) for f in self.files},
            new,
            {move(f): v for f, v in self.stamps.items()},
            {move(f): v for f, v in self.keys.items()},
        )


@dataclass(frozen=True, slots=True)
class _Mask:
    """A mask drawn from these inputs, whose digest is ``key``: drawn again only when they change."""

    key: str
    size: tuple[int, int]
    face: BoxPx | None
    others: tuple[BoxPx, ...]
    floor: float


Content = Path | bytes | _Mask
"""A planned file: a link to an image, bytes to write, or a mask to draw."""


def write_layouts(
    out: Path, records: Sequence[Mapping[str, Any]], settings: ExportConfig, person_name: str
) -> LayoutResult:
    """Write the trainer layouts ``settings.layout`` names for the images of ``records``
    (manifest records; ``image`` relative to ``out``) and return what was written."""
    template_fields(settings.caption_template)
    warnings: list[str] = []
    images = _read_images(out, records, warnings)
    warnings += check_trigger(settings.trigger) + class_word_warnings(settings.class_word)
    size = _common_size(images, warnings)
    if size is not None:
        warnings += _size_warnings(size, settings.for_model)
    repeats = settings.repeats or kohya.default_repeats(len(images))
    with_kohya = settings.layout in ("kohya", "all") and bool(images)
    with_diffusers = settings.layout in ("diffusers", "all") and bool(images)
    concept = (
        f"{kohya.TRAIN_DIR}/{kohya.concept_dir(repeats, settings.trigger, settings.class_word)}"
    )
    if not images:
        warnings.append("no images: no trainer layout written")
    digest = _run_digest(images, settings, person_name, repeats)
    if images and _read_digest(out) == digest and _untouched(out, _read_state(out).files, concept):
        # Same images, same keys, same settings as the run that wrote these folders: a re-run of
        # 100,000 faces must not touch 600,000 files to find nothing to do.
        log.info("layouts (%s): %d images, unchanged", settings.layout, len(images))
        return _result(
            out,
            settings,
            images,
            repeats,
            size,
            concept,
            with_kohya,
            with_diffusers,
            (),
            (),
            warnings,
        )
    (out / DIGEST).unlink(missing_ok=True)

    plan: dict[str, Content] = {}
    captions = {
        im.stem: caption(
            im.record, settings.caption_template, settings.trigger, settings.class_word
        )
        for im in images
    }
    if with_kohya:
        assert size is not None
        _plan_kohya(plan, out, images, captions, settings, concept, repeats, size, warnings)
    if with_kohya and settings.for_model in TRANSFORMERS:
        assert size is not None
        _plan_transformers(plan, out, settings, concept, repeats, size)
    if with_diffusers:
        _plan_diffusers(plan, images, captions)
    if images:
        plan[GUIDE] = redact_text(
            training_guide(
                out.resolve(),
                person_name,
                len(images),
                size,
                settings,
                concept,
                with_kohya,
                with_diffusers,
            )
        ).encode("utf-8")

    state = _read_state(out)
    # The trainer folders are written like faces/ (export/files.py): a run killed while writing
    # them left temporaries there, which the lock's sweep of faces/ does not reach.
    sweep_temporaries(out, {rel.rpartition("/")[0] for rel in state.files | plan.keys()} - {""})
    renamed = False
    if with_kohya and state.concept and state.concept != concept:
        # Renaming keeps the trainers' caches of the images that stay (repeats follow the count).
        old, new = out / state.concept, out / concept
        if old.is_dir() and not new.exists():
            os.rename(old, new)
            state, renamed = state.moved(state.concept, concept), True
    # List every file this run may leave before writing any, so a killed run is cleaned next time.
    _write_state(out, _State(state.files | plan.keys(), state.concept, state.stamps, state.keys))

    keys = {rel: c.key for rel, c in plan.items() if isinstance(c, _Mask)}
    written = _draw_masks(out, plan, state.keys, settings.worker_count())
    stamps: dict[str, tuple[int, int]] = {}
    for rel, content in plan.items():
        if isinstance(content, _Mask):
            continue
        changed = _sync(out / rel, content)
        if isinstance(content, Path):
            stamps[rel] = _stamp(out / rel)
            # A link shares its inode with faces/: an image rewritten in place changed here too.
            changed = changed or state.stamps.get(rel, stamps[rel]) != stamps[rel]
        if changed:
            written.append(rel)
    if with_kohya:
        for name in KEPT_DIRS:
            (out / name).mkdir(exist_ok=True)
    removed = [rel for rel in sorted(state.files - plan.keys()) if remove(out / rel)]

    stems = {im.stem for im in images}
    dirty = {
        PurePosixPath(rel).stem for rel in (*written, *removed) if rel.startswith(concept + "/")
    }
    if with_kohya:
        removed += _clean_caches(out, concept, stems - dirty, renamed or bool(dirty))
    # musubi-tuner's caches of the concept folder's images: all of them stale once it is no
    # longer written for.
    removed += _clean_cache_dir(
        out, musubi.CACHE_DIR, stems - dirty if musubi.DATASET_TOML in plan else set()
    )
    if state.concept and not renamed and (state.concept != concept or not with_kohya):
        # The old concept folder's own files went with the stale list; its caches go too.
        removed += _clean_caches(out, state.concept, set(), True)
    _remove_empty_dirs(out, {PurePosixPath(rel).parent for rel in removed} | _dirs(state.concept))
    warnings += _foreign_files(out, plan, concept if with_kohya else None, stems)
    _write_state(out, _State(set(plan), concept if with_kohya else None, stamps, keys))

    for w in warnings:
        log.warning("%s", w)
    log.info(
        "layouts (%s): %d images, %d files written, %d removed",
        settings.layout, len(images), len(written), len(removed),
    )  # fmt: skip
    (out / DIGEST).write_text(digest + "\n", encoding="utf-8")
    return _result(
        out, settings, images, repeats, size, concept, with_kohya, with_diffusers,
        tuple(sorted(written)), tuple(removed), warnings,
    )  # fmt: skip


def _result(
    out: Path,
    settings: ExportConfig,
    images: Sequence[_Image],
    repeats: int,
    size: int | None,
    concept: str,
    with_kohya: bool,
    with_diffusers: bool,
    written: tuple[str, ...],
    removed: tuple[str, ...],
    warnings: list[str],
) -> LayoutResult:
    masked = with_kohya and settings.masks
    dit = settings.for_model in TRANSFORMERS
    in_musubi = settings.for_model in musubi.SCRIPTS
    return LayoutResult(
        images=len(images),
        repeats=repeats,
        size=size,
        train_data_dir=out / kohya.TRAIN_DIR if with_kohya else None,
        concept_dir=out / concept if with_kohya else None,
        dataset_toml=out / kohya.DATASET_TOML if with_kohya else None,
        masked_dataset_toml=out / kohya.MASKED_DATASET_TOML if masked else None,
        sample_prompts=out / kohya.SAMPLE_PROMPTS if with_kohya else None,
        masks_dir=out / kohya.MASKS_DIR if masked else None,
        onetrainer_dir=out / ONETRAINER_DIR if with_kohya else None,
        aitoolkit_job=out / aitoolkit.JOB if with_kohya and dit else None,
        musubi_dataset=out / musubi.DATASET_TOML if with_kohya and in_musubi else None,
        diffusers_train_dir=out / diffusers.TRAIN_DIR if with_diffusers else None,
        diffusers_instance_dir=out / diffusers.INSTANCE_DIR if with_diffusers else None,
        guide=out / GUIDE if images else None,
        written=written,
        removed=removed,
        warnings=tuple(warnings),
    )


def _run_digest(
    images: Sequence[_Image], settings: ExportConfig, person_name: str, repeats: int
) -> str:
    """Return a digest of every input of the layouts: the records, each image file's inode,
    size and modification time (a crop rewritten in place changes them), the settings, the
    person and the repeats."""
    stamps: dict[str, tuple[int, int, int]] = {}
    for parent in {im.source.parent for im in images}:
        with os.scandir(parent) as entries:
            for e in entries:
                st = e.stat()
                stamps[os.path.join(parent, e.name)] = (st.st_ino, st.st_size, st.st_mtime_ns)
    h = hashlib.sha1(usedforsecurity=False)
    head = [LAYOUT_VERSION, person_name, repeats, settings.model_dump(mode="json")]
    h.update(json.dumps(head, default=str).encode())
    for im in images:
        entry = [im.stem, im.record, stamps.get(str(im.source))]
        h.update(json.dumps(entry, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _untouched(out: Path, files: set[str], concept: str) -> bool:
    """Return whether every file of the last run is still there and nothing but trainers'
    caches was added beside them, listing each folder once."""
    by_dir: dict[str, set[str]] = {}
    for rel in files:
        parent, _, name = rel.rpartition("/")
        by_dir.setdefault(parent, set()).add(name)
    for parent, names in by_dir.items():
        try:
            with os.scandir(out / parent) as entries:
                present = {e.name for e in entries if not e.name.startswith(".")}
        except OSError:
            return False
        extra = present - names
        if parent == concept:
            extra = {
                n for n in extra
                if n != kohya.METADATA_CACHE and n not in kohya.CACHE_DIRS and kohya.cache_owner(n) is None
            }  # fmt: skip
        # Sub-folders of a listed folder (img/ holds the concept folder) are not strays.
        extra = {n for n in extra if f"{parent}/{n}".lstrip("/") not in by_dir}
        # The output folder itself also holds faces/, the manifest and the reports.
        if not names <= present or (extra and parent):
            return False
    return bool(files)


def _read_digest(out: Path) -> str | None:
    try:
        return (out / DIGEST).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _plan_kohya(
    plan: dict[str, Content],
    out: Path,
    images: Sequence[_Image],
    captions: Mapping[str, str],
    settings: ExportConfig,
    concept: str,
    repeats: int,
    size: int,
    warnings: list[str],
) -> None:
    no_face = 0
    for im in images:
        text = (captions[im.stem] + "\n").encode("utf-8")
        for folder in (concept, ONETRAINER_DIR):
            plan[f"{folder}/{im.stem}{im.suffix}"] = im.source
            plan[f"{folder}/{im.stem}{kohya.CAPTION_EXTENSION}"] = text
        if settings.masks:
            face, others = _face_boxes(im)
            no_face += face is None
            mask = _mask(im.size, face, others, settings.mask_floor)
            plan[f"{kohya.MASKS_DIR}/{im.stem}.png"] = mask
            plan[f"{ONETRAINER_DIR}/{im.stem}{MASK_LABEL}"] = mask
    if no_face:
        warnings.append(f"{no_face} images have no face box in the manifest: their masks are white")
    image_dir = (out / concept).resolve()
    class_tokens = f"{settings.trigger} {settings.class_word}"
    plan[kohya.DATASET_TOML] = kohya.dataset_toml(image_dir, repeats, class_tokens, size).encode()
    if settings.masks:
        masks = (out / kohya.MASKS_DIR).resolve()
        plan[kohya.MASKED_DATASET_TOML] = kohya.masked_dataset_toml(
            image_dir, masks, repeats, size
        ).encode()
    plan[kohya.SAMPLE_PROMPTS] = kohya.sample_prompts(
        settings.trigger, settings.class_word, size, settings.for_model
    ).encode("utf-8")


def _plan_transformers(
    plan: dict[str, Content],
    out: Path,
    settings: ExportConfig,
    concept: str,
    repeats: int,
    size: int,
) -> None:
    """Plan ai-toolkit's job and musubi-tuner's dataset config over the concept folder."""
    family = settings.for_model
    assert family is not None
    root = out.resolve()
    masks = root / kohya.MASKS_DIR if settings.masks else None
    plan[aitoolkit.JOB] = aitoolkit.job_yaml(
        root, root.name, family, root / concept, masks, settings.trigger, settings.class_word, size
    ).encode("utf-8")
    if family in musubi.SCRIPTS:
        plan[musubi.DATASET_TOML] = musubi.dataset_toml(
            root / concept, root / musubi.CACHE_DIR, repeats, RESOLUTION[family]
        ).encode("utf-8")


def _plan_diffusers(
    plan: dict[str, Content], images: Sequence[_Image], captions: Mapping[str, str]
) -> None:
    for im in images:
        plan[f"{diffusers.TRAIN_DIR}/{im.stem}{im.suffix}"] = im.source
        plan[f"{diffusers.INSTANCE_DIR}/{im.stem}{im.suffix}"] = im.source
    entries = [(f"{im.stem}{im.suffix}", captions[im.stem]) for im in images]
    plan[f"{diffusers.TRAIN_DIR}/{diffusers.METADATA}"] = diffusers.metadata_jsonl(entries).encode(
        "utf-8"
    )


def _sync(path: Path, content: Path | bytes) -> bool:
    return link(content, path) if isinstance(content, Path) else write_bytes(path, content)


def _mask(
    size: tuple[int, int], face: BoxPx | None, others: Sequence[BoxPx], floor: float
) -> _Mask:
    """Return one mask to draw, keyed by everything that decides its pixels."""
    inputs = [MASK_VERSION, PIL.__version__, size, face, list(others), floor]
    key = hashlib.sha1(json.dumps(inputs).encode(), usedforsecurity=False).hexdigest()[:16]
    return _Mask(key, size, face, tuple(others), floor)


def _draw_masks(
    out: Path, plan: Mapping[str, Content], drawn: Mapping[str, str], workers: int
) -> list[str]:
    """Draw and write the masks of ``plan`` whose key differs from the one ``drawn`` records
    (or whose file is gone); return the files written.

    Drawing and PNG-encoding a mask costs more than the rest of the layouts together, so masks
    are drawn on every core, and once per key: kohya's mask and OneTrainer's label are one.
    """
    todo: dict[str, list[str]] = {}
    masks: dict[str, _Mask] = {}
    for rel, content in plan.items():
        if isinstance(content, _Mask) and not (
            drawn.get(rel) == content.key and (out / rel).is_file()
        ):
            todo.setdefault(content.key, []).append(rel)
            masks[content.key] = content
    written: list[str] = []
    for key, png in map_bounded(_draw_mask, list(masks.values()), workers):
        for rel in todo[key]:
            if write_bytes(out / rel, png):
                written.append(rel)
    return written


def _draw_mask(mask: _Mask) -> tuple[str, bytes]:
    buffer = io.BytesIO()
    # zlib's fastest level: a third of the default's time, for a quarter more bytes on a mask
    # this smooth.
    render_mask(mask.size, mask.face, mask.others, mask.floor).save(buffer, "PNG", compress_level=1)
    return mask.key, buffer.getvalue()


def _read_images(
    out: Path, records: Sequence[Mapping[str, Any]], warnings: list[str]
) -> list[_Image]:
    """Return the images of ``records`` that exist and decode, sorted, with unique stems."""
    found: dict[str, Mapping[str, Any]] = {}
    for rec in records:
        image = rec.get("image")
        path = PurePosixPath(image) if isinstance(image, str) else None
        if path is None or path.is_absolute() or ".." in path.parts or path.parts[:1] != (IMAGES,):
            warnings.append(
                f"manifest record with image {image!r} is not under {IMAGES}/: left out"
            )
            continue
        found.setdefault(str(path), rec)
    images: list[_Image] = []
    used: set[str] = set()
    for name in sorted(found):
        source = out / name
        side = found[name].get("size")
        try:
            if isinstance(side, int) and side > 0:
                # The manifest says how big the crop is: a re-run opens no image at all.
                size = (side, side)
            else:
                with Image.open(source) as im:
                    size = im.size
        except FileNotFoundError:
            warnings.append(f"{name} is in the manifest but not on disk: left out")
            continue
        except (OSError, UnidentifiedImageError) as e:
            warnings.append(f"{name} cannot be read ({e}): left out")
            continue
        # kohya reads a stem with 5+ '_'-separated parts as a face-crop box (train_util.py
        # load_image_with_face_info), and the trainers' cache names start with '<stem>_'.
        base = PurePosixPath(name).stem.replace("_", "-")
        stem, n = base, 1
        while stem in used:
            n += 1
            stem = f"{base}-{n}"
        used.add(stem)
        images.append(_Image(stem, source, PurePosixPath(name).suffix.lower(), size, found[name]))
    return images


def _common_size(images: Sequence[_Image], warnings: list[str]) -> int | None:
    if not images:
        return None
    sides = Counter(max(im.size) for im in images)
    size = sides.most_common(1)[0][0]
    odd = [im.stem for im in images if im.size != (size, size)]
    if odd:
        warnings.append(
            f"{len(odd)} of {len(images)} images are not {size}x{size} px"
            f" ({', '.join(odd[:3])}{'...' if len(odd) > 3 else ''}):"
            " trainers bucket them separately"
        )
    return size


def _size_warnings(size: int, for_model: str | None) -> list[str]:
    warnings = []
    if for_model and size < RESOLUTION[for_model]:
        warnings.append(
            f"images are {size} px but {for_model} trains at {RESOLUTION[for_model]} px:"
            f" export with --size {RESOLUTION[for_model]}"
        )
    if size % 64:
        warnings.append(
            f"images are {size} px, not a multiple of 64: kohya crops them to {size // 64 * 64} px"
        )
    return warnings


def _face_boxes(im: _Image) -> tuple[BoxPx | None, list[BoxPx]]:
    """Return the face box and other faces of an image's record, in the image's pixels."""
    crop, box = _box(im.record.get("crop")), _box(im.record.get("box"))
    if crop is None or box is None or crop[2] <= crop[0] or crop[3] <= crop[1]:
        return None, []
    others = im.record.get("others") or []
    mapped = [
        to_image(b, crop, im.size)
        for b in (_box(o.get("box") if isinstance(o, Mapping) else o) for o in others)
        if b is not None
    ]
    return to_image(box, crop, im.size), mapped


def _box(value: Any) -> BoxPx | None:
    if isinstance(value, list | tuple) and len(value) == 4:
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            return (float(value[0]), float(value[1]), float(value[2]), float(value[3]))
    return None


def _clean_caches(out: Path, concept: str, keep: set[str], folder_changed: bool) -> list[str]:
    """Delete trainer caches in a concept folder except those of the ``keep`` stems; return
    their paths. ``metadata_cache.json`` goes whenever the folder changed at all."""
    folder = out / concept
    if not folder.is_dir():
        return []
    removed: list[str] = []
    candidates = [p for p in folder.iterdir() if p.is_file()]
    for name in kohya.CACHE_DIRS:
        if (folder / name).is_dir():
            candidates += [p for p in (folder / name).iterdir() if p.is_file()]
    for path in sorted(candidates):
        owner = kohya.cache_owner(path.name)
        stale = path.name == kohya.METADATA_CACHE and folder_changed
        stale = stale or (owner is not None and owner not in keep)
        if stale and remove(path):
            removed.append(path.relative_to(out).as_posix())
    for name in kohya.CACHE_DIRS:
        _rmdir_if_empty(folder / name)
    return removed


def _clean_cache_dir(out: Path, folder: str, keep: set[str]) -> list[str]:
    """Delete the trainer caches in ``out/folder`` except those of the ``keep`` stems; return
    their paths, and remove the folder once empty."""
    path = out / folder
    if not path.is_dir():
        return []
    removed = [
        p.relative_to(out).as_posix()
        for p in sorted(path.iterdir())
        if p.is_file() and kohya.cache_owner(p.name) not in keep and remove(p)
    ]
    _rmdir_if_empty(path)
    return removed


def _dirs(rel: str | None) -> set[PurePosixPath]:
    return {PurePosixPath(rel)} if rel else set()


def _remove_empty_dirs(out: Path, dirs: set[PurePosixPath]) -> None:
    """Remove the given folders and their parents, up to ``out``, where they are empty."""
    for rel in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        while rel.parts and rel.parts[0] not in KEPT_DIRS:
            if not _rmdir_if_empty(out / rel):
                break
            rel = rel.parent


def _rmdir_if_empty(path: Path) -> bool:
    try:
        path.rmdir()
    except OSError:  # not empty, or not there
        return not path.exists()
    return True


def _foreign_files(
    out: Path, plan: Mapping[str, Content], concept: str | None, stems: set[str]
) -> list[str]:
    """Return warnings about files in the layout folders that faceset did not write: trainers
    read every image in a folder, so a stray one trains too."""
    warnings: list[str] = []
    folders = {PurePosixPath(rel).parent.as_posix() for rel in plan} - {"."}
    for folder in sorted(folders):
        strays = []
        for path in sorted((out / folder).iterdir()):
            rel = f"{folder}/{path.name}"
            if rel in plan or path.name.startswith("."):
                continue
            if folder == concept and (
                path.name == kohya.METADATA_CACHE
                or path.name in kohya.CACHE_DIRS
                or kohya.cache_owner(path.name) in stems
            ):
                continue
            strays.append(path.name)
        if strays:
            warnings.append(
                f"{folder} holds {len(strays)} files faceset did not write"
                f" ({', '.join(strays[:3])}{'...' if len(strays) > 3 else ''}): trainers read them too"
            )
    if concept and (out / kohya.TRAIN_DIR).is_dir():
        name = PurePosixPath(concept).name
        others = sorted(
            p.name
            for p in (out / kohya.TRAIN_DIR).iterdir()
            if p.is_dir() and p.name != name and kohya.is_concept_dir(p.name)
        )
        if others:
            warnings.append(
                f"{kohya.TRAIN_DIR}/ also holds {', '.join(others)}: kohya trains every folder there"
            )
    return warnings


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _read_state(out: Path) -> _State:
    try:
        data = json.loads((out / STATE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict):
        return _State(set(), None, {}, {})

    def safe(rel: Any) -> bool:
        path = PurePosixPath(rel) if isinstance(rel, str) else None
        return path is not None and not path.is_absolute() and ".." not in path.parts

    files = {f for f in data.get("files") or [] if safe(f)}
    concept = data.get("concept")
    stamps, keys = data.get("stamps"), data.get("keys")
    return _State(
        files,
        concept if safe(concept) else None,
        {
            f: (int(v[0]), int(v[1]))
            for f, v in (stamps.items() if isinstance(stamps, dict) else ())
            if isinstance(v, list) and len(v) == 2
        },
        {f: v for f, v in (keys.items() if isinstance(keys, dict) else ()) if isinstance(v, str)},
    )


def _write_state(out: Path, state: _State) -> None:
    data = {
        "written_by": "faceset export",
        "concept": state.concept,
        "files": sorted(state.files),
        "stamps": {f: list(v) for f, v in sorted(state.stamps.items())},
        "keys": dict(sorted(state.keys.items())),
    }
    write_bytes(out / STATE, (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode())
