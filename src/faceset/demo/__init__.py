"""The built-in sample library: a small PhotoPrism library built from public-domain photos.

It holds what real libraries hold: EXIF-rotated and mirrored photos, a HEIC original whose face
lives on its sidecar JPEG, a PNG, a face too small to use, a corrupt file, an archived photo and a
rejected marker; and shots that differ in light, colour and facing, a burst and a blurred one, so
that choosing the best has something to show.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from faceset.demo.images import Portrait, astronaut, cameraman, compose, encode, write
from faceset.demo.library import LibraryWriter, MarkerSpec, sqlite_schema, square_box

OnPhoto = Callable[[int, int], None]


def _ignore(_done: int, _total: int) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Look:
    """How one shot differs from the portrait: light, colour, facing, focus."""

    brightness: float = 1.0
    colour: float = 1.0
    contrast: float = 1.0
    mirror: bool = False
    tilt: float = 0.0
    """Degrees, counter-clockwise, about the face's centre."""
    blur: float = 0.0

    def apply(self, portrait: Portrait) -> Portrait:
        """Return the portrait as this shot shows it; the face box moves with a mirror."""
        image, (left, top, right, bottom) = portrait.image, portrait.face
        image = ImageEnhance.Brightness(image).enhance(self.brightness)
        image = ImageEnhance.Color(image).enhance(self.colour)
        image = ImageEnhance.Contrast(image).enhance(self.contrast)
        if self.mirror:
            image = ImageOps.mirror(image)
            left, right = image.width - right, image.width - left
        if self.tilt:
            image = _tilted(image, self.tilt, ((left + right) / 2, (top + bottom) / 2))
        if self.blur:
            image = image.filter(ImageFilter.GaussianBlur(self.blur))
        return Portrait(image, (left, top, right, bottom))


def _tilted(image: Image.Image, degrees: float, centre: tuple[float, float]) -> Image.Image:
    """Return ``image`` turned about ``centre``; the corners the turn uncovers are filled with
    the picture's own reflection, not a flat colour, so no edge shows in a crop."""
    pad = max(image.size) // 2
    padded = Image.fromarray(np.pad(np.asarray(image), ((pad, pad), (pad, pad), (0, 0)), "reflect"))
    turned = padded.rotate(
        degrees, Image.Resampling.BICUBIC, center=(centre[0] + pad, centre[1] + pad)
    )
    return turned.crop((pad, pad, pad + image.width, pad + image.height))


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


def build_library(root: Path, on_photo: OnPhoto = _ignore) -> DemoLibrary:
    """Build the sample library under ``root`` (replacing an earlier one) and return where it is.

    ``on_photo(done, total)`` is called after each photo, for progress."""
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
    # (file name, orientation, format, taken, scale, x, look): a few years of one person's
    # photos, each lit, coloured and facing its own way so that selection has a choice to make.
    # The portrait's top is the photo's top: a crop window never reaches above it, so no seam.
    shots = [
        ("2024/06/IMG_2041.jpg", 1, "JPEG", datetime(2024, 6, 14, 9, 30), 3.0, 420, Look()),
        ("2024/06/IMG_2042.jpg", 1, "JPEG", datetime(2024, 6, 14, 9, 30, 2), 3.0, 420, Look()),
        ("2024/05/IMG_1877.jpg", 6, "JPEG", datetime(2024, 5, 2, 17, 5), 2.6, 300,
         Look(brightness=0.85, colour=1.3, mirror=True)),
        ("2024/03/IMG_1502.jpg", 3, "JPEG", datetime(2024, 3, 21, 12, 0), 2.4, 900,
         Look(brightness=1.1, colour=0.6, tilt=-7)),
        ("2023/12/IMG_0990.jpg", 8, "JPEG", datetime(2023, 12, 24, 19, 45), 2.8, 150,
         Look(brightness=0.8, contrast=1.2, tilt=14)),
        ("2023/09/selfie.jpg", 2, "JPEG", datetime(2023, 9, 9, 8, 15), 2.2, 600,
         Look(mirror=True, tilt=-14)),
        ("2023/07/scan.png", 1, "PNG", datetime(2023, 7, 1, 14, 0), 2.3, 500,
         Look(colour=0.0, contrast=1.1, tilt=7)),
        ("2023/04/IMG_0402.jpg", 1, "JPEG", datetime(2023, 4, 8, 16, 20), 2.5, 700,
         Look(blur=5.0, tilt=-3)),
        ("2022/08/IMG_0815.jpg", 6, "JPEG", datetime(2022, 8, 15, 10, 0), 2.7, 250,
         Look(brightness=1.1, mirror=True, tilt=10)),
    ]  # fmt: skip
    total = len(shots) + 6
    for done, (name, orientation, fmt, taken, scale, x, look) in enumerate(shots, 1):
        photo, face = compose(look.apply(portrait), (2400, 1800), scale, (x, 0))
        data = encode(photo, fmt, orientation)
        write(originals / name, data)
        box = square_box(face, photo.width, photo.height)
        lib.file(
            lib.photo(taken, name=name), name, data, width=photo.width, height=photo.height,
            orientation=orientation, file_type="png" if fmt == "PNG" else "jpg",
            markers=(MarkerSpec(box, eileen, confirmed=orientation != 8),),
        )  # fmt: skip
        on_photo(done, total)

    # An iPhone HEIC: PhotoPrism detects faces on the JPEG it generated into the sidecar folder.
    photo, face = compose(portrait, (1800, 2400), 2.5, (200, 0))
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
    on_photo(total - 5, total)
    photo, face = compose(portrait, (1200, 900), 0.5, (500, 0))
    data = encode(photo, "JPEG")
    write(originals / "2022/05/tiny.jpg", data)
    lib.file(lib.photo(datetime(2022, 5, 5), name="2022/05/tiny.jpg"), "2022/05/tiny.jpg", data,
             width=1200, height=900, markers=(MarkerSpec(square_box(face, 1200, 900), eileen),))  # fmt: skip
    on_photo(total - 4, total)
    photo, face = compose(portrait, (2400, 1800), 2.6, (700, 0))
    data = encode(photo, "JPEG")
    data = data[: len(data) // 3]  # cut short, as an interrupted copy leaves it
    write(originals / "2024/02/IMG_1200.jpg", data)
    lib.file(lib.photo(datetime(2024, 2, 2), name="2024/02/IMG_1200.jpg"), "2024/02/IMG_1200.jpg", data,
             width=2400, height=1800, markers=(MarkerSpec(square_box(face, 2400, 1800), eileen),))  # fmt: skip
    write(originals / "2021/01/archived.jpg", data)
    lib.file(lib.photo(datetime(2021, 1, 1), archived=True, name="2021/01/archived.jpg"), "2021/01/archived.jpg",
             data, width=2400, height=1800, markers=(MarkerSpec(square_box(face, 2400, 1800), eileen),))  # fmt: skip

    on_photo(total - 2, total)
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
    on_photo(total, total)
    engine.dispose()
    return DemoLibrary(root, originals, storage, index, "Eileen Collins")
