"""Libraries and photos for tests: real files with real EXIF orientation, real index rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from PIL import Image

from faceset.demo.images import (
    encode,
    pattern_photo,
    write,
)
from faceset.demo.library import LibraryWriter, MarkerSpec, square_box
from faceset.model import RelBox

# Quadrant colours of the face pattern, upright: any rotation or mirror moves them.


@dataclass
class Database:
    """An empty PhotoPrism index: ``engine`` writes fixture rows, ``url`` is what users pass."""

    kind: str
    url: str
    engine: sa.Engine


def quadrant_colours(image: Image.Image) -> list[tuple[int, ...]]:
    """Return the mean colour at the centre of each quadrant: TL, TR, BL, BR."""
    w, h = image.size
    points = [
        (w // 4, h // 4),
        (3 * w // 4, h // 4),
        (w // 4, 3 * h // 4),
        (3 * w // 4, 3 * h // 4),
    ]
    arr = np.asarray(image.convert("RGB"), dtype=np.float64)
    return [
        tuple(int(v) for v in arr[y - 3 : y + 4, x - 3 : x + 4].reshape(-1, 3).mean(0))
        for x, y in points
    ]


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 30) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


@dataclass
class LibraryFixture:
    """A PhotoPrism library on disk: originals, storage/sidecar and an index to write rows to."""

    writer: LibraryWriter
    originals: Path
    storage: Path
    people: dict[str, str] = field(default_factory=dict)
    clock: int = 0

    @property
    def sidecar(self) -> Path:
        return self.storage / "sidecar"

    def person(self, name: str, alias: str = "", slug: str = "") -> str:
        self.people[name] = self.writer.person(name, alias, slug)
        return self.people[name]

    def photo_file(
        self,
        name: str,
        subject: str,
        *,
        orientation: int = 1,
        fmt: str = "JPEG",
        size: tuple[int, int] = (1600, 1200),
        face: tuple[int, int, int, int] = (600, 400, 1000, 800),
        root: str = "/",
        box: RelBox | None = None,
        data: bytes | None = None,
        index_data: bytes | None = None,
        confirmed: bool = True,
        detected: bool = True,
        archived: bool = False,
        missing: bool = False,
        deleted: bool = False,
        extra: tuple[MarkerSpec, ...] = (),
        taken: datetime | None = None,
        upright: Image.Image | None = None,
        embedding: tuple[float, ...] | None = None,
    ) -> Image.Image:
        """Write an upright pattern photo stored with ``orientation`` and index it; return it upright."""
        self.clock += 1
        upright = upright or pattern_photo(size, face, seed=self.clock)
        if data is None:
            data = encode(upright, fmt, orientation)
        folder = self.sidecar if root == "sidecar" else self.originals
        if not name.startswith(("/", "..")):
            write(folder / name, data)
        marker = MarkerSpec(
            box or square_box(face, *size),
            subject,
            confirmed=confirmed,
            detected=detected,
            embedding=embedding,
        )
        taken = taken or datetime(2024, 1, 1 + self.clock % 27, 12)
        photo = self.writer.photo(taken, archived=archived, name=name)
        self.writer.file(
            photo, name, index_data if index_data is not None else data, root=root,
            width=size[0], height=size[1], orientation=orientation,
            file_type={"JPEG": "jpg", "HEIF": "heic"}.get(fmt, fmt.lower()),
            missing=missing, deleted=deleted, markers=(marker, *extra),
        )  # fmt: skip
        return upright


def make_library(engine: object, root: Path) -> LibraryFixture:
    originals, storage = root / "originals", root / "storage"
    (storage / "sidecar").mkdir(parents=True, exist_ok=True)
    originals.mkdir(parents=True, exist_ok=True)
    return LibraryFixture(LibraryWriter(engine), originals, storage)  # type: ignore[arg-type]
