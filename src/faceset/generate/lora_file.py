"""What a kohya LoRA file says about itself: the person's trigger and class, the base family.

Read from the safetensors header alone (no tensors, no torch): ``modelspec.trigger_phrase``
(``ohwx man``, as faceset train writes it), else the image folder names in ``ss_dataset_dirs``
or ``ss_tag_frequency`` (``10_ohwx man``, as sd-scripts records them);
``ss_base_model_version``/``modelspec.architecture`` for the family; ``modelspec.resolution``
for the size it was trained at (../shared/reference/trainers.md section 6).
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceset.errors import FacesetError
from faceset.train import families
from faceset.train.config import Family as Family

_KOHYA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")
_TRANSFORMER_PREFIXES = ("transformer.", "diffusion_model.")
"""A transformer family's LoRA (faceset train, diffusers, ai-toolkit): module keys under one of
these (../shared/reference/dit-families.md section 4)."""
_FOLDER = re.compile(r"^\d+_(?P<tokens>.+)$")
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit


class LoraError(FacesetError):
    """The LoRA file cannot be read, or does not say what is needed to use it."""


@dataclass(frozen=True, slots=True)
class LoraFile:
    """A kohya LoRA on disk and what its metadata says."""

    path: Path
    name: str
    """``ss_output_name``, else the file name without its extension."""
    subject: str | None
    """The trigger and class it was trained on (``ohwx man``); None when the file does not say."""
    family: Family | None
    resolution: int | None
    """Side of the training images in pixels; None when the file does not say."""
    step: int | None
    """Optimiser steps trained (``ss_steps``)."""
    sha256: str
    """Of the whole file: records name the exact weights an image was drawn with."""


def read_lora(path: Path) -> LoraFile:
    """Return what ``path`` (a kohya ``.safetensors`` LoRA) says about itself.

    Raises LoraError for a missing or unreadable file, or one that is not a kohya LoRA.
    """
    header = _header(path)
    meta: dict[str, str] = header.pop("__metadata__", None) or {}
    keys = list(header)
    kohya = all(k.startswith(_KOHYA_PREFIXES) for k in keys)
    if not keys or not (kohya or all(k.startswith(_TRANSFORMER_PREFIXES) for k in keys)):
        # diffusers loads a file as kohya only if every key has a kohya prefix.
        raise LoraError(
            f"{path} is not a LoRA faceset can draw with (its tensors are neither kohya"
            " lora_unet_/lora_te_ keys nor transformer. keys); pass the NAME.safetensors faceset"
            " train wrote"
        )
    return LoraFile(
        path=path,
        name=meta.get("ss_output_name") or path.stem,
        subject=_subject(meta),
        family=_family(meta, keys),
        resolution=_resolution(meta),
        step=int(meta["ss_steps"]) if meta.get("ss_steps", "").isdigit() else None,
        sha256=file_sha256(path),
    )


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _header(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            size_bytes = f.read(8)
            if len(size_bytes) < 8:
                raise LoraError(f"{path} is not a safetensors file (too short)")
            (size,) = struct.unpack("<Q", size_bytes)
            if size > _MAX_HEADER:
                raise LoraError(f"{path} is not a safetensors file (header of {size} bytes)")
            header = json.loads(f.read(size))
    except FileNotFoundError:
        raise LoraError(f"LoRA file {path} does not exist") from None
    except IsADirectoryError:
        raise LoraError(f"{path} is a folder; pass the LoRA's .safetensors file") from None
    except OSError as e:
        raise LoraError(f"cannot read LoRA file {path}: {e.strerror}") from None
    except ValueError:
        raise LoraError(f"{path} is not a safetensors file (unreadable header)") from None
    if not isinstance(header, dict):
        raise LoraError(f"{path} is not a safetensors file (unreadable header)")
    return header


def _subject(meta: dict[str, str]) -> str | None:
    phrase = meta.get("modelspec.trigger_phrase", "").strip()
    if phrase:
        return phrase
    for key in ("ss_dataset_dirs", "ss_tag_frequency"):
        try:
            folders = json.loads(meta.get(key) or "{}")
        except ValueError:
            continue
        for folder in folders if isinstance(folders, dict) else ():
            m = _FOLDER.match(Path(str(folder)).name)
            if m and m["tokens"].strip():
                return m["tokens"].strip()
    return None


def _family(meta: dict[str, str], keys: list[str]) -> Family | None:
    architecture = meta.get("modelspec.architecture", "").split("/")[0]
    for entry in families.CATALOG:
        if entry.module and architecture == entry.architecture:
            return entry.name  # type: ignore[return-value]
    version = meta.get("ss_base_model_version", "") + " " + meta.get("modelspec.architecture", "")
    if "sdxl" in version or "stable-diffusion-xl" in version:
        return "sdxl"
    if "sd_v1" in version or "stable-diffusion-v1" in version:
        return "sd15"
    if any(k.startswith(("lora_te1_", "lora_te2_", "lora_unet_input_blocks_")) for k in keys):
        return "sdxl"
    return None


def _resolution(meta: dict[str, str]) -> int | None:
    for key in ("modelspec.resolution", "ss_resolution"):
        digits = re.findall(r"\d+", meta.get(key, ""))
        if digits:
            return int(digits[0])
    return None


def base_of(lora: LoraFile, base: str | None, family: Family | None) -> tuple[str, Family]:
    """Return the base model and family to draw ``lora`` with.

    ``base`` and ``family`` as given win; what is missing comes from the LoRA's metadata and the
    ``training_config.json`` faceset train wrote beside it (or two folders up, for a checkpoint's
    file). Raises LoraError when they disagree or cannot be found.
    """
    trained = _training_config(lora.path)
    if family is not None and lora.family is not None and family != lora.family:
        raise LoraError(
            f"{lora.path} was trained on {families.info(lora.family).label}, not"
            f" {families.info(family).label}; pass --for {lora.family} and a base model of that"
            " family"
        )
    family = family or lora.family or trained.get("family")
    base = base or trained.get("base")
    if base is None:
        raise LoraError(
            f"no base model for {lora.path}: pass --base (no training_config.json beside it names"
            " one)"
        )
    if family not in families.BY_NAME:
        raise LoraError(f"{lora.path} does not say which model family it is for: pass --for")
    return str(base), family


def trained_vram(lora: LoraFile) -> str | None:
    """Return the ``--vram`` the LoRA was trained within (drawing follows the same budget)."""
    found = _training_config(lora.path).get("vram")
    return str(found) if found else None


def _training_config(lora: Path) -> dict[str, Any]:
    """Return the ``training_config.json`` of the run that wrote ``lora``; empty if none."""
    for folder in (lora.parent, lora.parent.parent.parent):
        path = folder / "training_config.json"
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(found, dict):
            return found
    return {}
