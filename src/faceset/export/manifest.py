"""The output folder's memory: ``manifest.jsonl`` says where every image came from.

A run streams new records into a journal as images finish; at the end the journal becomes the
manifest. A run killed halfway leaves its journal, which the next run reads, so no finished image
is redone.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import IO, Any

import orjson

from faceset.crop import CropSettings
from faceset.model import Box, Face, Outcome, root_name
from faceset.redaction import redact_text
from faceset.sources.roots import UnsafePath

MANIFEST = "manifest.jsonl"
JOURNAL = ".manifest.jsonl.partial"
IMAGES = "faces"
HOLDOUT = "holdout"
"""Folder and split name of faces kept out of training to measure likeness."""
TRAIN = "train"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
"""What a UID may be to name a file: every library's UIDs are (PhotoPrism's, Immich's UUIDs,
digiKam's ids, the XMP source's digests); no separator, no leading dot, no control character."""


def image_name(face: Face, split: str = TRAIN) -> str:
    """Return the output path of a face's image, relative to the output folder; stable.

    Raises UnsafePath for a UID that could not be a plain file name: the index is data, and
    ``../../evil`` must never become a path (the face is skipped as ``unsafe_path``).
    """
    for what, uid in (("photo", face.photo_uid), ("marker", face.marker_uid)):
        if not _SAFE_NAME.fullmatch(uid):
            raise UnsafePath(f"{what} uid {uid!r} is not a plain file name")
    folder = HOLDOUT if split == HOLDOUT else IMAGES
    return f"{folder}/{face.photo_uid}-{face.marker_uid}.jpg"


def work_key(face: Face, settings: CropSettings, split: str = TRAIN) -> str:
    """Return a digest of everything that decides a face's image: its pixels and its place."""
    box = face.box
    parts: list[object] = [split, face.marker_uid, face.root, face.file_name, face.file_hash]
    parts += [box.x, box.y, box.w, box.h]
    # repr, not JSON: the parts are str, float, int and bool, whose repr is stable and a third
    # of the cost, which a re-check of 100,000 faces feels (bench/plan.py).
    text = repr(parts)[:-1] + _settings_repr(settings)
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


@functools.lru_cache(maxsize=16)
def _settings_repr(settings: CropSettings) -> str:
    # The settings are the same for every face of a run: their part of the key is made once.
    # The result continues the face's list, so the key equals that of one flat list of both.
    values = [getattr(settings, f.name) for f in fields(settings)]
    if not settings.allow_damaged:
        values.pop()  # the default leaves the keys of earlier versions as they were (last field)
    return ", " + repr(values)[1:]


def record(outcome: Outcome, key: str, size: int, split: str = TRAIN) -> dict[str, Any]:
    """Return the manifest record of a written or kept image ``size`` px square."""
    return {
        "image": outcome.image,
        **_face_fields(outcome.face, split),
        "box": outcome.box.as_list() if outcome.box else None,
        "crop": outcome.crop.as_list(0) if outcome.crop else None,
        "size": size,
        "others": [o.as_list() for o in outcome.others],
        "warnings": list(outcome.warnings),
        "key": key,
    }


def kept_record(old: dict[str, Any], face: Face, key: str, split: str = TRAIN) -> dict[str, Any]:
    """Return the record of an image kept from an earlier run: ``old`` (same ``key``, so the
    same pixels and place) with what the library says of the face now, such as a new name."""
    old.update(_face_fields(face, split))
    old["key"] = key
    return old


def _face_fields(face: Face, split: str) -> dict[str, Any]:
    return {
        "split": split,
        "marker_uid": face.marker_uid,
        "file_uid": face.file_uid,
        "photo_uid": face.photo_uid,
        "subject": face.subject_name,
        "subject_uid": face.subject_uid,
        "source": {"root": root_name(face.root), "path": face.file_name},
        "taken_at": face.taken_at.isoformat() if face.taken_at else None,
        "confirmed": face.confirmed,
    }


def box_of(values: Any) -> Box | None:
    return Box(*values) if isinstance(values, list) and len(values) == 4 else None


def images_present(out: Path) -> set[str]:
    """Return the names, as records give them, of the images now in the output's image folders."""
    # One listing instead of a stat per face: a re-check of a large library feels the difference.
    found: set[str] = set()
    for folder in (IMAGES, HOLDOUT):
        with (
            contextlib.suppress(FileNotFoundError, NotADirectoryError),
            os.scandir(out / folder) as entries,
        ):
            found.update(f"{folder}/{e.name}" for e in entries if e.is_file())
    return found


def read_records(out: Path) -> dict[str, dict[str, Any]]:
    """Return the last record per marker from the manifest and any unfinished run's journal."""
    records: dict[str, dict[str, Any]] = {}
    for name in (MANIFEST, JOURNAL):
        with contextlib.suppress(FileNotFoundError), (out / name).open("rb") as f:
            for line in f:
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # the last line of a journal cut short by a kill
                if isinstance(rec, dict) and "marker_uid" in rec:
                    records[rec["marker_uid"]] = rec
    return records


def line(rec: dict[str, Any]) -> bytes:
    """Return ``rec`` as one UTF-8 JSON line of the manifest."""
    # orjson: json.dumps of 100,000 records is a tenth of a large library's re-run (bench/plan.py).
    data = orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE)
    text = data.decode("utf-8")
    cleaned = redact_text(text)
    return data if cleaned is text or cleaned == text else cleaned.encode("utf-8")


class Journal:
    """Appends records as images finish, then becomes the manifest in one atomic rename."""

    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = (out / JOURNAL).open("ab")

    def add(self, rec: dict[str, Any]) -> None:
        """Append ``rec`` and push it to the file now, so a kill cannot lose it."""
        self._file.write(line(rec))
        self._file.flush()

    def finish(self, records: Iterator[dict[str, Any]]) -> None:
        """Write ``records`` as the new manifest and drop the journal."""
        self._file.close()
        tmp = self.out / f".{MANIFEST}.tmp"
        with tmp.open("wb") as f:
            for rec in records:
                f.write(line(rec))
        os.replace(tmp, self.out / MANIFEST)
        (self.out / JOURNAL).unlink(missing_ok=True)

    def close(self) -> None:
        self._file.close()
