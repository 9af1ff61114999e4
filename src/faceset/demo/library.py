"""Write PhotoPrism-format libraries: index rows exactly as PhotoPrism stores them, plus files.

For the demo, the tests and the benchmarks; never pointed at a user's library.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources

import sqlalchemy as sa

from faceset.model import RelBox

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def sqlite_schema() -> str:
    """Return PhotoPrism's SQLite DDL (tables photos, files, markers, subjects, faces)."""
    return resources.files("faceset.demo").joinpath("photoprism_sqlite.sql").read_text()


@dataclass(frozen=True, slots=True)
class MarkerSpec:
    """A face box to record on a file; ``box`` is relative to the oriented image."""

    box: RelBox
    subject: str = ""
    """Subject UID, or '' for an unnamed face."""
    confirmed: bool = True
    detected: bool = True
    invalid: bool = False
    score: int = 60
    embedding: tuple[float, ...] | None = None
    """PhotoPrism's FaceNet embedding, stored as ``[[...]]`` JSON in ``embeddings_json``."""


@dataclass
class LibraryWriter:
    """Adds people, photos, files and markers to a PhotoPrism index through ``engine``."""

    engine: sa.Engine
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    _photo_id: int = 0
    _file_id: int = 0

    def uid(self, prefix: str, when: datetime) -> str:
        """Return a PhotoPrism UID: prefix, 6 base36 digits of the time, 9 random base36."""
        stamp, digits = int(when.timestamp()), ""
        while stamp:
            stamp, r = divmod(stamp, 36)
            digits = _BASE36[r] + digits
        return prefix + digits[-6:].rjust(6, "0") + "".join(self.rng.choices(_BASE36, k=9))

    def _insert(self, table: str, row: dict[str, object]) -> None:
        cols = ", ".join(row)
        params = ", ".join(f":{c}" for c in row)
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {table} ({cols}) VALUES ({params})"), row)

    def person(
        self, name: str, alias: str = "", slug: str = "", created: datetime | None = None
    ) -> str:
        """Add a person and return the subject UID."""
        created = created or datetime(2024, 1, 1)
        uid = self.uid("j", created)
        self._insert("subjects", {
            "subj_uid": uid, "subj_type": "person", "subj_src": "manual",
            "subj_slug": slug or "-".join(name.lower().split()), "subj_name": name, "subj_alias": alias,
            "subj_favorite": 0, "subj_hidden": 0, "subj_private": 0, "subj_excluded": 0,
            "file_count": 0, "photo_count": 0, "thumb": "", "thumb_src": "",
            "created_at": created, "updated_at": created, "deleted_at": None,
        })  # fmt: skip
        return uid

    def photo(
        self,
        taken_at: datetime,
        *,
        photo_type: str = "image",
        archived: bool = False,
        name: str = "",
    ) -> tuple[int, str]:
        """Add a photo and return its (id, UID)."""
        self._photo_id += 1
        uid = self.uid("p", taken_at)
        path, _, base = name.rpartition("/")
        self._insert("photos", {
            "id": self._photo_id, "photo_uid": uid, "photo_type": photo_type, "photo_path": path,
            "photo_name": base.rsplit(".", 1)[0], "original_name": base, "photo_private": 0,
            "taken_at": taken_at, "taken_at_local": taken_at, "photo_year": taken_at.year,
            "photo_quality": 3, "photo_faces": 1, "created_at": taken_at, "updated_at": taken_at,
            "deleted_at": taken_at if archived else None,
        })  # fmt: skip
        return self._photo_id, uid

    def file(
        self,
        photo: tuple[int, str],
        name: str,
        data: bytes | None,
        *,
        root: str = "/",
        width: int = 0,
        height: int = 0,
        orientation: int = 1,
        file_type: str = "jpg",
        primary: bool = True,
        missing: bool = False,
        deleted: bool = False,
        file_hash: str | None = None,
        markers: tuple[MarkerSpec, ...] = (),
        when: datetime | None = None,
    ) -> str:
        """Add a file row (``width``/``height`` after orientation) and its markers; return the file UID."""
        when = when or datetime(2024, 6, 1, 10)
        self._file_id += 1
        uid = self.uid("f", when)
        sha1 = file_hash or (
            hashlib.sha1(data, usedforsecurity=False).hexdigest() if data else "0" * 40
        )
        self._insert("files", {
            "id": self._file_id, "photo_id": photo[0], "photo_uid": photo[1], "file_uid": uid,
            "file_name": name, "file_root": root, "original_name": name.rsplit("/", 1)[-1],
            "file_hash": sha1, "file_size": len(data or b""), "file_type": file_type,
            "media_type": "raw" if file_type in ("raw", "heic") else "image",
            "file_mime": "image/jpeg" if file_type == "jpg" else f"image/{file_type}",
            "file_primary": int(primary), "file_sidecar": 0, "file_missing": int(missing),
            "file_video": 0, "file_width": width, "file_height": height,
            "file_orientation": orientation, "file_orientation_src": "meta",
            "file_aspect_ratio": round(width / height, 2) if height else 0, "file_error": "",
            "media_id": None if missing or deleted else f"m{self._file_id}",
            "time_index": None if missing or deleted else f"t{self._file_id}",
            "created_at": when, "updated_at": when, "deleted_at": when if deleted else None,
        })  # fmt: skip
        for spec in markers:
            self.marker(uid, sha1, spec, width, when)
        return uid

    def marker(
        self, file_uid: str, file_hash: str, spec: MarkerSpec, width: int, when: datetime
    ) -> str:
        """Add one marker with PhotoPrism's derived columns (size, q, thumb) filled in."""
        uid = self.uid("m", when)
        b = spec.box
        size = round(b.w * width) if not spec.detected else round(b.w * min(width, 1280))
        area = "".join(f"{max(0, int(v * 1000)):03x}" for v in (b.x, b.y, b.w, b.h))
        self._insert("markers", {
            "marker_uid": uid, "file_uid": file_uid, "marker_type": "face",
            "marker_src": "image" if spec.detected else "manual",
            "marker_name": "", "marker_review": 0, "marker_invalid": int(spec.invalid),
            "subj_uid": "" if spec.invalid else spec.subject,
            "subj_src": "manual" if spec.confirmed and spec.subject else "",
            "face_id": "", "face_dist": 0.3 if spec.subject else -1,
            "embeddings_json": json.dumps([list(spec.embedding)]).encode() if spec.embedding else None,
            "landmarks_json": None, "x": b.x, "y": b.y, "w": b.w, "h": b.h,
            "q": int(math.log(max(spec.score, 1)) * size * b.w / 2), "size": size,
            "score": spec.score, "thumb": f"{file_hash}-{area}",
            "matched_at": when, "created_at": when, "updated_at": when,
        })  # fmt: skip
        return uid


def square_box(face: tuple[float, float, float, float], width: int, height: int) -> RelBox:
    """Return a detector-style box: the pixel square around ``face``, relative to width x height."""
    cx, cy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
    side = max(face[2] - face[0], face[3] - face[1])
    return RelBox((cx - side / 2) / width, (cy - side / 2) / height, side / width, side / height)
