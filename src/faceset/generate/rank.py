"""Likeness of each headshot to the person's real photos, and which ones to keep.

The person's photos are the export's: training crops (``faces/``) and held-out ones
(``holdout/``), found as ``faceset eval`` finds them (evaluate/photos.py). Each output is looked
at with the same encoder as ``faceset eval`` (yuface boxes, dlib's 128-d embedding):

- likeness: mean cosine of its face to every real photo, held out and trained on;
- SimTarget (mean cosine to the held-out photos) and SimRef (highest to a training photo), as
  eval reports them;
- rejected with a reason: ``no_face``; ``several_faces`` (a second face at least half the size
  of the first); ``other_person``: its unit embedding lies farther from the person's centre than
  select's identity threshold, computed the way ``faceset select`` computes it from the person's
  own photos (select/identity.py: median + 3 sigma of their spread, never under 0.4).

``--best N`` keeps the N most alike, spread over the preset's variations: the best of each
variation first, then the second best of each, and so on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from faceset.evaluate import encoder
from faceset.evaluate.metrics import cosines, unit
from faceset.evaluate.photos import ExportFolderError, read_export
from faceset.model import Box
from faceset.select import identity

log = logging.getLogger(__name__)

SECOND_FACE = 0.5
"""A second face at least this fraction of the largest face's side makes it a picture of two."""
TOLERANCE = 0.005
"""A step that lowers likeness by more than this is dropped: the same photo enlarged from 320 to
1024 or 2048 px moved its likeness by 0.0015 (encoder jitter); a strict 0 would drop steps on noise."""

REASONS = {
    "no_face": "no face found",
    "several_faces": "two or more faces",
    "other_person": "a different person: farther from the person's real photos than the"
    " identity threshold",
    "not_best": "less like the person than the ones kept (--best)",
}
"""Why an output is not among the kept headshots."""


@dataclass(frozen=True, slots=True)
class Reference:
    """The person's real photos, embedded."""

    folder: Path
    train: np.ndarray
    """(n, 128) embeddings of the training photos with a face found."""
    holdout: np.ndarray
    """(m, 128) embeddings of the held-out photos; m may be 0."""
    centre: np.ndarray
    """Unit centre of all of them (select/identity.py)."""
    threshold: float
    """Largest distance of a unit embedding to ``centre`` that is still the person."""

    @property
    def photos(self) -> np.ndarray:
        return np.concatenate([self.train, self.holdout]) if len(self.holdout) else self.train


def reference(export: Path) -> Reference:
    """Return the embedded real photos of the export folder ``export``.

    Raises ExportFolderError when it holds no photo with a face.
    """
    photos = read_export(export, require_holdout=False)
    embedded: dict[str, list[np.ndarray]] = {"train": [], "holdout": []}
    for split, paths in (("train", photos.train), ("holdout", photos.holdout)):
        for path in paths:
            try:
                with Image.open(path) as image:
                    face = encoder.largest_face(image)
            except OSError as e:
                raise ExportFolderError(f"cannot read {path}: {e}") from None
            if face is not None:
                embedded[split].append(face.embedding)
    if not embedded["train"]:
        raise ExportFolderError(f"no face found in any training photo of {photos.folder}")
    train = np.stack(embedded["train"])
    holdout = np.stack(embedded["holdout"]) if embedded["holdout"] else np.zeros((0, 128))
    vectors = [*embedded["train"], *embedded["holdout"]]
    every: dict[str, Sequence[float]] = {str(i): v.tolist() for i, v in enumerate(vectors)}
    check = identity.check(every, confirmed=set(every))
    if check is None or check.centre is None:  # fewer than 3 faces: no spread to measure
        centre = unit(np.median(np.stack(vectors), axis=0)[None, :])[0]
        threshold = identity.MIN_THRESHOLD
    else:
        centre, threshold = check.centre, check.threshold
    log.info(
        "real photos of the person: %d training, %d held out; identity threshold %.3f",
        len(train), len(holdout), threshold,
    )  # fmt: skip
    return Reference(photos.folder, train, holdout, centre, threshold)


@dataclass(frozen=True, slots=True)
class Look:
    """What the encoder sees in one output."""

    faces: int
    """Faces found (counting only those at least SECOND_FACE the largest's side)."""
    box: Box | None
    """The largest face, in the image's pixels."""
    likeness: float | None = None
    """Mean cosine to every real photo; None without a face or real photos."""
    sim_target: float | None = None
    sim_ref: float | None = None
    distance: float | None = None
    """Distance of the unit embedding to the person's centre (select's measure)."""
    reject: str | None = None
    """A key of REASONS, or None: a headshot of the person."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "faces": self.faces,
            "box": None if self.box is None else self.box.as_list(),
            "likeness": _r(self.likeness),
            "sim_target": _r(self.sim_target),
            "sim_ref": _r(self.sim_ref),
            "distance": _r(self.distance),
            "reject": self.reject,
        }


def look(image: Image.Image, ref: Reference | None) -> Look:
    """Return the faces of ``image`` and, with ``ref``, its likeness to the person."""
    boxes = encoder.face_boxes(image)
    if not boxes:
        return Look(0, None, reject="no_face")
    largest = boxes[0][0]
    side = max(largest.width, largest.height)
    faces = sum(1 for b, _ in boxes if max(b.width, b.height) >= SECOND_FACE * side)
    if faces > 1:
        return Look(faces, largest, reject="several_faces")
    if ref is None:
        return Look(1, largest)
    face = encoder.largest_face(image, boxes)
    if face is None:  # the embedder's detector did not confirm the face
        return Look(0, largest, reject="no_face")
    to_photos = cosines(face.embedding[None, :], ref.photos)[0]
    to_train = cosines(face.embedding[None, :], ref.train)[0]
    sim_target = (
        float(cosines(face.embedding[None, :], ref.holdout)[0].mean()) if len(ref.holdout) else None
    )
    distance = float(np.linalg.norm(unit(face.embedding[None, :])[0] - ref.centre))
    return Look(
        1,
        largest,
        likeness=float(to_photos.mean()),
        sim_target=sim_target,
        sim_ref=float(to_train.max()),
        distance=distance,
        reject="other_person" if distance > ref.threshold else None,
    )


def keeps(before: Look, after: Look) -> bool:
    """Return whether a step that turned ``before`` into ``after`` is kept: it loses no face,
    adds none, and lowers likeness by at most TOLERANCE."""
    lost = after.reject in ("no_face", "several_faces") and before.reject not in (
        "no_face", "several_faces",
    )  # fmt: skip
    if lost:
        return False
    if before.likeness is None or after.likeness is None:
        return True
    return after.likeness >= before.likeness - TOLERANCE


def best(likeness: Sequence[float], variations: Sequence[int], count: int | None) -> list[int]:
    """Return the indices of the ``count`` most alike outputs (all with None), most alike first.

    ``variations[i]`` is output i's variation of the preset; the pick takes the best of every
    variation first, then the second best of each, so that six kept headshots are not six of one
    suit.
    """
    order = sorted(range(len(likeness)), key=lambda i: (-likeness[i], i))
    if count is None or count >= len(order):
        return order
    by_variation: dict[int, list[int]] = {}
    for i in order:
        by_variation.setdefault(variations[i], []).append(i)
    picked: list[int] = []
    round_ = 0
    while len(picked) < count:
        layer = [group[round_] for group in by_variation.values() if round_ < len(group)]
        layer.sort(key=lambda i: (-likeness[i], i))
        picked += layer[: count - len(picked)]
        round_ += 1
    return sorted(picked, key=lambda i: (-likeness[i], i))


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
