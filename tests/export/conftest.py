"""An output folder as the crop stage leaves it: JPEGs under faces/ and their manifest records."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from factories import pattern_photo


class FaceFolder:
    """An output folder with images under ``faces/``; builds manifest records for them.

    Every record shares one source frame: a 1024 px crop window resized to the image size, the
    face box 40 % of it (head and shoulders), another person's face up and to the right.
    """

    CROP = (0.0, 0.0, 1024.0, 1024.0)
    FACE = (412.0, 312.0, 612.0, 512.0)
    OTHER = (850.0, 100.0, 1010.0, 260.0)

    def __init__(self, out: Path) -> None:
        self.out = out

    def write(self, name: str, size: int = 512, seed: int = 0) -> str:
        """Write ``faces/<name>.jpg`` and return its path relative to the output folder."""
        path = self.out / "faces" / f"{name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        scale = size / self.CROP[2]
        left, top, right, bottom = (round(v * scale) for v in self.FACE)
        # As the crop stage writes: a new file renamed over the old one (a new inode).
        tmp = path.with_name(f".{path.name}.tmp")
        pattern_photo((size, size), (left, top, right, bottom), seed=seed).save(
            tmp, "JPEG", quality=95
        )
        os.replace(tmp, path)
        return f"faces/{name}.jpg"

    def record(self, image: str, **extra: Any) -> dict[str, Any]:
        """Return a manifest record as export/manifest.py writes it, plus ``extra`` keys."""
        uid = Path(image).stem
        rec: dict[str, Any] = {
            "image": image,
            "marker_uid": f"m-{uid}",
            "file_uid": f"f-{uid}",
            "photo_uid": f"p-{uid}",
            "subject": "Jane Doe",
            "subject_uid": "js1",
            "source": {"root": "/", "path": f"{uid}.jpg"},
            "taken_at": "2019-06-01T12:00:00+00:00",
            "confirmed": True,
            "box": list(self.FACE),
            "crop": list(self.CROP),
            "others": [],
            "warnings": [],
            "key": uid,
        }
        rec.update(extra)
        return rec

    def make(self, count: int = 3, size: int = 512, **extra: Any) -> list[dict[str, Any]]:
        """Write ``count`` images and return their records, sorted by image."""
        return [
            self.record(self.write(f"pt{i:04d}-mk{i:04d}", size, seed=i), **extra)
            for i in range(count)
        ]

    def snapshot(self) -> dict[str, bytes]:
        """Return every file under the output folder except ``faces/`` by relative path."""
        return {
            p.relative_to(self.out).as_posix(): p.read_bytes()
            for p in sorted(self.out.rglob("*"))
            if p.is_file() and p.relative_to(self.out).parts[0] != "faces"
        }


@pytest.fixture
def faces(tmp_path: Path) -> FaceFolder:
    return FaceFolder(tmp_path / "jane")
