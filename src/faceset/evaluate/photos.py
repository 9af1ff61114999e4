"""The person's real photos in an export folder: training crops and held-out crops.

``faceset export --best N`` writes the training set to ``faces/`` and recent confirmed faces of
other days, never trained on, to ``holdout/``; ``manifest.jsonl`` records each image's split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from faceset.errors import FacesetError
from faceset.export import manifest

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class ExportFolderError(FacesetError):
    """The folder is not an export with training and held-out faces."""


@dataclass(frozen=True, slots=True)
class RealPhotos:
    folder: Path
    train: list[Path]
    holdout: list[Path]


def read_export(folder: Path, *, require_holdout: bool = True) -> RealPhotos:
    """Return the training and held-out images of the export in ``folder``.

    The manifest's ``split`` decides; without a manifest, the ``faces/`` and ``holdout/``
    folders do. Raises ExportFolderError when there is nothing to compare against (no held-out
    photo, unless ``require_holdout`` is False).
    """
    folder = folder.resolve()
    if not folder.is_dir():
        raise ExportFolderError(f"export folder {folder} does not exist")
    train, holdout = _from_manifest(folder)
    if not train and not holdout:
        train = _images(folder / manifest.IMAGES)
        holdout = _images(folder / manifest.HOLDOUT)
    if not train:
        raise ExportFolderError(
            f"{folder} holds no training faces (faces/): pass the folder faceset export wrote"
        )
    if not holdout and require_holdout:
        raise ExportFolderError(
            f"{folder} holds no held-out faces (holdout/): export with --best N, which keeps"
            " recent confirmed faces of other days out of training to measure likeness"
        )
    return RealPhotos(folder, train, holdout)


def _from_manifest(folder: Path) -> tuple[list[Path], list[Path]]:
    train: list[Path] = []
    holdout: list[Path] = []
    try:
        lines = (folder / manifest.MANIFEST).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return train, holdout
    except OSError as e:
        raise ExportFolderError(f"cannot read {folder / manifest.MANIFEST}: {e.strerror}") from None
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            image = folder / str(record["image"])
        except (ValueError, KeyError, TypeError):
            raise ExportFolderError(f"{folder / manifest.MANIFEST} has a broken line") from None
        if image.parent.parent != folder or not image.is_file():
            continue  # a manifest is not followed out of its folder, nor to a deleted image
        split = record.get("split", manifest.TRAIN)
        (holdout if split == manifest.HOLDOUT else train).append(image)
    return sorted(train), sorted(holdout)


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
