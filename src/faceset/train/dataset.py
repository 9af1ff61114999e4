"""The dataset folder a LoRA is trained on: images, captions, masks, repeats, trigger and class.

Two layouts are read, both as kohya sd-scripts reads them (../shared/reference/trainers.md
section 2):

- ``<dataset>/img/<repeats>_<trigger> <class>/`` holding images and same-stem ``.txt`` captions,
  optionally ``<dataset>/masks/`` with same-stem PNG masks (directly or under a subfolder named
  like the image folder);
- ``<dataset>/dataset.toml`` in kohya's format: ``[[datasets]] resolution``, and
  ``[[datasets.subsets]]`` with ``image_dir``, ``num_repeats``, ``class_tokens``, ``is_reg`` and
  ``conditioning_data_dir`` (masks). With a TOML file the folder names do not set repeats or
  class, exactly as in kohya.

This module only reads names and text; images are decoded when latents are cached.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from faceset.train.errors import DatasetError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
"""What kohya reads (``library/train_util.py``); faceset export writes .jpg and .png."""
CONCEPT_DIR = re.compile(r"^(\d+)_(.+)$")
"""``<repeats>_<class tokens>``: kohya splits on the first ``_``, the first token an int."""


@dataclass(frozen=True, slots=True)
class Example:
    """One training image with its caption, and its mask when the dataset has one."""

    image: Path
    caption: str
    mask: Path | None = None


@dataclass(frozen=True, slots=True)
class Concept:
    """One image folder: its examples, how often each is seen per epoch, and its class tokens."""

    name: str
    """The folder's name, e.g. ``10_ohwx man``; the key of ``ss_tag_frequency``."""
    folder: Path
    repeats: int
    class_tokens: str
    """``<trigger> <class>`` for the person, the class (``man``) for regularisation images."""
    examples: tuple[Example, ...]
    is_reg: bool = False


@dataclass(frozen=True, slots=True)
class Dataset:
    """A whole dataset: the person's concepts and any regularisation concepts."""

    root: Path
    concepts: tuple[Concept, ...]
    resolution: int | None = None
    """From dataset.toml, when it states one."""

    @property
    def train(self) -> tuple[Concept, ...]:
        return tuple(c for c in self.concepts if not c.is_reg)

    @property
    def reg(self) -> tuple[Concept, ...]:
        return tuple(c for c in self.concepts if c.is_reg)

    @property
    def class_tokens(self) -> str:
        """The first person concept's ``<trigger> <class>``, e.g. ``ohwx man``."""
        return self.train[0].class_tokens

    @property
    def trigger(self) -> str:
        """The trigger word: the first of the class tokens (``ohwx``)."""
        return self.class_tokens.split()[0]

    @property
    def has_masks(self) -> bool:
        return any(e.mask is not None for c in self.train for e in c.examples)

    @property
    def num_train_images(self) -> int:
        """Images per epoch counting repeats, as kohya's ``ss_num_train_images``."""
        return sum(c.repeats * len(c.examples) for c in self.train)

    def tag_frequency(self) -> dict[str, dict[str, int]]:
        """Return ``{folder: {tag: count}}`` over comma-separated caption tags (``ss_tag_frequency``)."""
        out: dict[str, dict[str, int]] = {}
        for c in self.train:
            tags = Counter(t.strip() for e in c.examples for t in e.caption.split(",") if t.strip())
            out[c.name] = dict(tags)
        return out

    def dirs(self) -> dict[str, dict[str, int]]:
        """Return ``{folder: {"n_repeats": n, "img_count": k}}`` (``ss_dataset_dirs``)."""
        return {c.name: {"n_repeats": c.repeats, "img_count": len(c.examples)} for c in self.train}


def read_dataset(
    folder: Path, reg: Path | None = None, *, masks: bool = True, caption_extension: str = ".txt"
) -> Dataset:
    """Return the dataset in ``folder``, with the regularisation images of ``reg`` if given.

    ``masks=False`` drops the masks (``--no-masked-loss``).

    Raises DatasetError naming the folder to pass when ``folder`` is the ``img/`` folder, a
    concept folder, or not a dataset at all.
    """
    folder = folder.resolve()
    if not folder.is_dir():
        raise DatasetError(f"dataset folder {folder} does not exist")
    if (folder / "dataset.toml").is_file():
        dataset = _from_toml(folder)
    elif (folder / "img").is_dir():
        concepts = _concepts_in(folder / "img", folder, caption_extension, is_reg=False)
        if not concepts:
            raise DatasetError(
                f"{folder / 'img'} holds no <repeats>_<trigger> <class> folder with images"
                " (e.g. img/10_ohwx man/)"
            )
        dataset = Dataset(folder, concepts)
    else:
        raise DatasetError(_wrong_folder(folder))
    if reg is not None:
        dataset = Dataset(
            dataset.root,
            dataset.concepts + _reg_concepts(reg.resolve(), dataset, caption_extension),
            dataset.resolution,
        )
    if not masks:
        return Dataset(
            dataset.root,
            tuple(
                replace(c, examples=tuple(replace(e, mask=None) for e in c.examples))
                for c in dataset.concepts
            ),
            dataset.resolution,
        )
    _check_masks(dataset)
    return dataset


def _wrong_folder(folder: Path) -> str:
    """Return the message for a folder that is not a dataset, naming the one to pass."""
    if any(CONCEPT_DIR.match(d.name) for d in _subdirs(folder)):
        return f"{folder} is the img/ folder; pass the dataset folder above it: {folder.parent}"
    if CONCEPT_DIR.match(folder.name) and _images(folder):
        root = folder.parent.parent if folder.parent.name == "img" else folder.parent
        return f"{folder} is one image folder; pass the dataset folder: {root}"
    for child in _subdirs(folder):
        if (child / "img").is_dir() or (child / "dataset.toml").is_file():
            return f"{folder} is not a dataset folder, but {child} is: pass that one"
    return (
        f"{folder} is not a faceset or kohya dataset (no img/<repeats>_<trigger> <class>/ and no"
        " dataset.toml); pass the folder faceset export wrote"
    )


def _subdirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir())


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _concepts_in(img: Path, root: Path, caption_ext: str, *, is_reg: bool) -> tuple[Concept, ...]:
    """Return the concepts of the ``<repeats>_<tokens>`` folders in ``img``; others are skipped."""
    concepts = []
    for d in _subdirs(img):
        m = CONCEPT_DIR.match(d.name)
        if not m:
            log.warning("skipping %s: not a <repeats>_<trigger> <class> folder", d)
            continue
        mask_dirs = () if is_reg else (root / "masks" / d.name, root / "masks")
        concept = _concept(d, int(m.group(1)), m.group(2).strip(), caption_ext, mask_dirs, is_reg)
        if concept.examples:
            concepts.append(concept)
    return tuple(concepts)


def _concept(
    folder: Path,
    repeats: int,
    class_tokens: str,
    caption_ext: str,
    mask_dirs: tuple[Path, ...],
    is_reg: bool,
) -> Concept:
    if repeats < 1:
        raise DatasetError(f"{folder}: repeats must be at least 1")
    if not class_tokens:
        raise DatasetError(f"{folder}: no class tokens (name it like 10_ohwx man)")
    examples = []
    missing_captions = 0
    for image in _images(folder):
        caption_file = image.with_suffix(caption_ext)
        if caption_file.is_file():
            lines = caption_file.read_text(encoding="utf-8").splitlines()
            caption = lines[0].strip() if lines else ""
            if not caption:
                # kohya fails an assertion on an empty caption; say which file instead.
                raise DatasetError(
                    f"caption {caption_file} is empty; write one line, trigger first"
                )
        else:
            missing_captions += 1
            caption = class_tokens
        mask = next((m for d in mask_dirs if (m := d / f"{image.stem}.png").is_file()), None)
        examples.append(Example(image, caption, mask))
    if missing_captions:
        log.warning(
            "%s: %d of %d images have no %s caption; using %r as kohya does",
            folder.name,
            missing_captions,
            len(examples),
            caption_ext,
            class_tokens,
        )
    return Concept(folder.name, folder, repeats, class_tokens, tuple(examples), is_reg)


def _from_toml(root: Path) -> Dataset:
    path = root / "dataset.toml"
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise DatasetError(f"{path} is not valid TOML: {e}") from None
    general: dict[str, Any] = data.get("general", {})
    concepts: list[Concept] = []
    resolution: int | None = None
    for ds in data.get("datasets", []):
        res = ds.get("resolution", general.get("resolution"))
        if res is not None and resolution is None:
            resolution = int(res[0] if isinstance(res, list) else res)
        for sub in ds.get("subsets", []):
            concepts.append(_toml_subset(root, path, {**general, **ds, **sub}))
    if not any(not c.is_reg for c in concepts):
        raise DatasetError(f"{path} lists no [[datasets.subsets]] of training images")
    return Dataset(root, tuple(concepts), resolution)


def _toml_subset(root: Path, path: Path, sub: dict[str, Any]) -> Concept:
    if "image_dir" not in sub:
        raise DatasetError(f"{path}: a [[datasets.subsets]] has no image_dir")
    # kohya's docs use absolute paths; a relative one is read against dataset.toml's folder.
    folder = (root / str(sub["image_dir"])).resolve()
    moved = root / "img" / folder.name
    if not folder.is_dir() and moved.is_dir():
        # faceset export writes absolute paths (kohya's docs do); a dataset folder that was
        # moved or copied since still holds the images under img/.
        log.warning("%s: image_dir %s is gone; reading %s", path.name, folder, moved)
        folder = moved
    if not folder.is_dir():
        raise DatasetError(f"{path}: image_dir {folder} does not exist")
    m = CONCEPT_DIR.match(folder.name)
    class_tokens = str(sub.get("class_tokens") or (m.group(2) if m else "")).strip()
    is_reg = bool(sub.get("is_reg", False))
    mask_dirs: tuple[Path, ...] = ()
    if not is_reg:
        cond = sub.get("conditioning_data_dir")
        mask_dirs = (
            ((root / str(cond)).resolve(),)
            if cond
            else (root / "masks" / folder.name, root / "masks")
        )
    concept = _concept(
        folder,
        int(sub.get("num_repeats", 1)),
        class_tokens,
        str(sub.get("caption_extension", ".caption")),
        mask_dirs,
        is_reg,
    )
    if not concept.examples:
        raise DatasetError(f"{path}: image_dir {folder} holds no images")
    return concept


def _reg_concepts(reg: Path, dataset: Dataset, caption_ext: str) -> tuple[Concept, ...]:
    """Return the regularisation concepts of ``reg``: kohya ``<n>_<class>`` folders or images."""
    if not reg.is_dir():
        raise DatasetError(f"regularisation folder {reg} does not exist")
    nested = _concepts_in(reg, reg, caption_ext, is_reg=True)
    if nested:
        return nested
    class_word = " ".join(dataset.class_tokens.split()[1:]) or dataset.class_tokens
    flat = _concept(reg, 1, class_word, caption_ext, (), is_reg=True)
    if not flat.examples:
        raise DatasetError(f"regularisation folder {reg} holds no images")
    return (flat,)


def _check_masks(dataset: Dataset) -> None:
    """Refuse a half-masked dataset: images without a mask would be trained as all-face."""
    examples = [e for c in dataset.train for e in c.examples]
    masked = [e for e in examples if e.mask is not None]
    if masked and len(masked) < len(examples):
        first = next(e for e in examples if e.mask is None)
        raise DatasetError(
            f"{len(masked)} of {len(examples)} images have a mask, but {first.image.name} has none;"
            " add its mask or pass --no-masked-loss"
        )
