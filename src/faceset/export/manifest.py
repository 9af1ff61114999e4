"""The output folder's memory: ``manifest.jsonl`` says where every image came from.

A run streams new records into a journal as images finish; at the end the journal becomes the
manifest. A run killed halfway leaves its journal, which the next run reads, so no finished image
is redone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import IO, Any

from faceset.crop import CropSettings
from faceset.model import Box, Face, Outcome

MANIFEST = "manifest.jsonl"
JOURNAL = ".manifest.jsonl.partial"
IMAGES = "faces"
HOLDOUT = "holdout"
"""Folder and split name of faces kept out of training to measure likeness."""
TRAIN = "train"


def image_name(face: Face, split: str = TRAIN) -> str:
    """Return the output path of a face's image, relative to the output folder; stable."""
    folder = HOLDOUT if split == HOLDOUT else IMAGES
    return f"{folder}/{face.photo_uid}-{face.marker_uid}.jpg"


def work_key(face: Face, settings: CropSettings, split: str = TRAIN) -> str:
    """Return a digest of everything that decides a face's image: its pixels and its place."""
    parts = [split, face.marker_uid, face.root, face.file_name, face.file_hash, *_values(face.box)]
    parts += _values(settings)
    # repr, not JSON: the parts are str, float, int and bool, whose repr is stable and a third
    # of the cost, which a re-check of 100,000 faces feels (bench/plan.py).
    return hashlib.sha1(repr(parts).encode(), usedforsecurity=False).hexdigest()[:16]


def _values(flat: Any) -> list[Any]:
    # dataclasses.astuple deep-copies every value: a third of a 100,000-face re-run (bench/plan.py).
    # These dataclasses hold plain values only, so the shallow tuple is the same key.
    return [getattr(flat, f.name) for f in fields(flat)]


def record(outcome: Outcome, key: str, size: int, split: str = TRAIN) -> dict[str, Any]:
    """Return the manifest record of a written or kept image ``size`` px square."""
    face = outcome.face
    return {
        "image": outcome.image,
        "split": split,
        "marker_uid": face.marker_uid,
        "file_uid": face.file_uid,
        "photo_uid": face.photo_uid,
        "subject": face.subject_name,
        "subject_uid": face.subject_uid,
        "source": {"root": face.root, "path": face.file_name},
        "taken_at": face.taken_at.isoformat() if face.taken_at else None,
        "confirmed": face.confirmed,
        "box": outcome.box.as_list() if outcome.box else None,
        "crop": outcome.crop.as_list(0) if outcome.crop else None,
        "size": size,
        "others": [o.as_list() for o in outcome.others],
        "warnings": list(outcome.warnings),
        "key": key,
    }


def box_of(values: Any) -> Box | None:
    return Box(*values) if isinstance(values, list) and len(values) == 4 else None


def read_records(out: Path) -> dict[str, dict[str, Any]]:
    """Return the last record per marker from the manifest and any unfinished run's journal."""
    records: dict[str, dict[str, Any]] = {}
    for name in (MANIFEST, JOURNAL):
        with contextlib.suppress(FileNotFoundError), (out / name).open(encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the last line of a journal cut short by a kill
                if isinstance(rec, dict) and "marker_uid" in rec:
                    records[rec["marker_uid"]] = rec
    return records


class Journal:
    """Appends records as images finish, then becomes the manifest in one atomic rename."""

    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = (out / JOURNAL).open("a", encoding="utf-8")

    def add(self, rec: dict[str, Any]) -> None:
        """Append ``rec`` and push it to the file now, so a kill cannot lose it."""
        self._file.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._file.flush()

    def finish(self, records: Iterator[dict[str, Any]]) -> None:
        """Write ``records`` as the new manifest and drop the journal."""
        self._file.close()
        tmp = self.out / f".{MANIFEST}.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        os.replace(tmp, self.out / MANIFEST)
        (self.out / JOURNAL).unlink(missing_ok=True)

    def close(self) -> None:
        self._file.close()
