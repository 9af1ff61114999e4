"""The built-in sample library: a small PhotoPrism library built from public-domain photos.

It holds what real libraries hold: EXIF-rotated and mirrored photos, a HEIC original whose face
lives on its sidecar JPEG, a PNG, a face too small to use, a corrupt file, an archived photo and a
rejected marker.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from faceset.demo.images import astronaut, cameraman, compose, encode, write
from faceset.demo.library import LibraryWriter, MarkerSpec, sqlite_schema, square_box


@dataclass(frozen=True, slots=True)
class DemoLibrary:
    root: Path
    originals: Path
    storage: Path
    index: Path
    person: str
    """The person the demo exports."""

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.index}"


def build_library(root: Path) -> DemoLibrary:
    """Build the sample library under ``root`` (replacing an earlier one) and return where it is."""
    if root.exists():
        shutil.rmtree(root)
    originals, storage = root / "originals", root / "storage"
    sidecar = storage / "sidecar"
    for folder in (originals, sidecar):
        folder.mkdir(parents=True)
    index = storage / "index.db"
    with sqlite3.connect(index) as conn:
        conn.executescript(sqlite_schema())
    engine = sa.create_engine(f"sqlite:///{index}")
    lib = LibraryWriter(engine)
    eileen = lib.person("Eileen Collins", alias="Astronaut", slug="eileen-collins")
    filmer = lib.person("Cameraman", alias="The Filmmaker", slug="cameraman")
    lib.person("Zoë Ångström", slug="zoe-angstrom")

    portrait = astronaut()
    # (file name, orientation, format, taken, scale, position): a year of one person's photos.
    shots = [
        ("2024/06/IMG_2041.jpg", 1, "JPEG", datetime(2024, 6, 14, 9, 30), 3.0, (420, 140)),
        ("2024/05/IMG_1877.jpg", 6, "JPEG", datetime(2024, 5, 2, 17, 5), 2.6, (300, 300)),
        ("2024/03/IMG_1502.jpg", 3, "JPEG", datetime(2024, 3, 21, 12, 0), 2.4, (900, 200)),
        ("2023/12/IMG_0990.jpg", 8, "JPEG", datetime(2023, 12, 24, 19, 45), 2.8, (150, 60)),
        ("2023/09/selfie.jpg", 2, "JPEG", datetime(2023, 9, 9, 8, 15), 2.2, (600, 500)),
        ("2023/07/scan.png", 1, "PNG", datetime(2023, 7, 1, 14, 0), 2.3, (500, 100)),
    ]
    for name, orientation, fmt, taken, scale, at in shots:
        photo, face = compose(portrait, (2400, 1800), scale, at)
        data = encode(photo, fmt, orientation)
        write(originals / name, data)
        box = square_box(face, photo.width, photo.height)
        lib.file(
            lib.photo(taken, name=name), name, data, width=photo.width, height=photo.height,
            orientation=orientation, file_type="png" if fmt == "PNG" else "jpg",
            markers=(MarkerSpec(box, eileen, confirmed=orientation != 8),),
        )  # fmt: skip

    # An iPhone HEIC: PhotoPrism detects faces on the JPEG it generated into the sidecar folder.
    photo, face = compose(portrait, (1800, 2400), 2.5, (200, 500))
    heic_name = "2024/08/IMG_3001.HEIC"
    write(originals / heic_name, encode(photo, "HEIF"))
    jpeg = encode(photo, "JPEG")
    write(sidecar / f"{heic_name}.jpg", jpeg)
    heic = lib.photo(datetime(2024, 8, 3, 11, 0), photo_type="image", name=heic_name)
    lib.file(
        heic,
        heic_name,
        (originals / heic_name).read_bytes(),
        width=1800,
        height=2400,
        file_type="heic",
        primary=False,
    )
    lib.file(
        heic, f"{heic_name}.jpg", jpeg, root="sidecar", width=1800, height=2400,
        markers=(MarkerSpec(square_box(face, 1800, 2400), eileen),),
    )  # fmt: skip

    # Too small for a 512 px crop; a corrupt download; an archived photo; a rejected box.
    photo, face = compose(portrait, (1200, 900), 0.5, (500, 400))
    data = encode(photo, "JPEG")
    write(originals / "2022/05/tiny.jpg", data)
    lib.file(lib.photo(datetime(2022, 5, 5), name="2022/05/tiny.jpg"), "2022/05/tiny.jpg", data,
             width=1200, height=900, markers=(MarkerSpec(square_box(face, 1200, 900), eileen),))  # fmt: skip
    photo, face = compose(portrait, (2400, 1800), 2.6, (700, 300))
    data = encode(photo, "JPEG")
    data = data[: len(data) // 3]  # cut short, as an interrupted copy leaves it
    write(originals / "2024/02/IMG_1200.jpg", data)
    lib.file(lib.photo(datetime(2024, 2, 2), name="2024/02/IMG_1200.jpg"), "2024/02/IMG_1200.jpg", data,
             width=2400, height=1800, markers=(MarkerSpec(square_box(face, 2400, 1800), eileen),))  # fmt: skip
    write(originals / "2021/01/archived.jpg", data)
    lib.file(lib.photo(datetime(2021, 1, 1), archived=True, name="2021/01/archived.jpg"), "2021/01/archived.jpg",
             data, width=2400, height=1800, markers=(MarkerSpec(square_box(face, 2400, 1800), eileen),))  # fmt: skip

    camera = cameraman()
    photo, face = compose(camera, (2400, 1800), 3.2, (400, 0))
    data = encode(photo, "JPEG", 6)
    write(originals / "2022/10/filming.jpg", data)
    lib.file(
        lib.photo(datetime(2022, 10, 10), name="2022/10/filming.jpg"), "2022/10/filming.jpg", data,
        width=2400, height=1800, orientation=6,
        markers=(
            MarkerSpec(square_box(face, 2400, 1800), filmer),
            MarkerSpec(square_box((1800, 200, 1900, 300), 2400, 1800), invalid=True),
        ),
    )  # fmt: skip
    engine.dispose()
    return DemoLibrary(root, originals, storage, index, "Eileen Collins")
