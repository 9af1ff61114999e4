"""A PhotoPrism library of camera-size JPEGs for the benchmarks, built once and reused.

Each photo is 12 MP (4000 x 3000, landscape or portrait), made from scikit-image's public-domain
portraits enlarged into the frame (:func:`faceset.demo.images.compose`), stored with one of the
eight EXIF orientations, one named face per photo at a realistic size and place: the face 300 to
1100 px across, its centre in the upper half, where people are in photos.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from PIL import Image

from faceset.crop import geometry
from faceset.demo.images import astronaut, cameraman, compose, encode, write
from faceset.demo.library import LibraryWriter, MarkerSpec, sqlite_schema, square_box
from faceset.model import Box

PERSON = "Bench Person"
DEFAULT_ROOT = Path("out/bench-library")
# Distinct compositions; each is stored in all eight orientations, so photos = 8 x scenes.
ORIENTATIONS = range(1, 9)


@dataclass(frozen=True, slots=True)
class Scene:
    """One upright photo to compose: which portrait, the frame, the face's size and centre."""

    portrait: str
    size: tuple[int, int]
    face_px: float
    centre: tuple[float, float]
    grain: float


@dataclass(frozen=True, slots=True)
class BenchPhoto:
    """A photo file of the library and the crop a face export takes from it."""

    path: Path
    orientation: int
    size: tuple[int, int]
    """Oriented (width, height) in pixels."""
    window: Box
    """The head-and-shoulders window faceset crops, oriented pixels (face ratio 0.4)."""


@dataclass(frozen=True, slots=True)
class BenchLibrary:
    root: Path
    originals: Path
    index: Path
    photos: list[BenchPhoto]

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.index}"


def scenes(count: int, grain: float, seed: int = 3) -> list[Scene]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        size = (4000, 3000) if i % 3 else (3000, 4000)
        out.append(
            Scene(
                portrait="astronaut" if i % 2 == 0 else "cameraman",
                size=size,
                face_px=rng.uniform(300, 1100),
                centre=(rng.uniform(0.25, 0.75) * size[0], rng.uniform(0.22, 0.5) * size[1]),
                grain=grain,
            )
        )
    return out


def _render(scene: Scene) -> tuple[Image.Image, tuple[float, float, float, float]]:
    portrait = astronaut() if scene.portrait == "astronaut" else cameraman()
    left, top, right, bottom = portrait.face
    scale = scene.face_px / (right - left)
    cx, cy = scene.centre
    at = (round(cx - (left + right) / 2 * scale), round(cy - (top + bottom) / 2 * scale))
    photo, face = compose(portrait, scene.size, scale, at)
    if scene.grain:
        # Sensor noise: real 12 MP JPEGs are 3-5 MB, an enlarged portrait alone about 1 MB.
        noise = np.random.default_rng(int(scene.face_px)).normal(0, scene.grain, photo.size[::-1])
        pixels = np.asarray(photo, dtype=np.float32) + noise[..., None]
        photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return photo, face


def _encode_scene(
    args: tuple[Scene, Path, int],
) -> list[tuple[str, int, tuple[float, float, float, float], bytes | None]]:
    scene, originals, index = args
    photo, face = _render(scene)
    files = []
    for orientation in ORIENTATIONS:
        name = f"2024/{index:03d}/IMG_{index:03d}{orientation}.jpg"
        data = encode(photo, "JPEG", orientation)
        write(originals / name, data)
        files.append((name, orientation, face, None))
    return files


def build(root: Path, photos: int, grain: float = 0.0, workers: int = 2) -> BenchLibrary:
    """Return the library under ``root``, building it unless one with these settings is there.

    ``photos`` rounds up to a multiple of eight: every scene is stored in all eight orientations.
    """
    count = max(1, -(-photos // len(ORIENTATIONS)))
    wanted = scenes(count, grain)
    stamp, listing = root / "scenes.json", root / "photos.json"
    settings = json.dumps([asdict(s) for s in wanted])
    originals, index = root / "originals", root / "storage" / "index.db"
    if not (stamp.is_file() and stamp.read_text() == settings and listing.is_file()):
        if root.exists():
            shutil.rmtree(root)
        index.parent.mkdir(parents=True)
        with sqlite3.connect(index) as conn:
            conn.executescript(sqlite_schema())
        with ProcessPoolExecutor(workers) as pool:
            jobs = [(scene, originals, i) for i, scene in enumerate(wanted)]
            made = list(pool.map(_encode_scene, jobs))
        engine = sa.create_engine(f"sqlite:///{index}")
        lib = LibraryWriter(engine)
        person = lib.person(PERSON)
        taken = datetime(2024, 6, 1)
        rows = []
        for scene, files in zip(wanted, made, strict=True):
            width, height = scene.size
            for name, orientation, face, _ in files:
                taken -= timedelta(hours=7)
                rel = square_box(face, width, height)
                lib.file(
                    lib.photo(taken, name=name), name, (originals / name).read_bytes(),
                    width=width, height=height, orientation=orientation,
                    markers=(MarkerSpec(rel, person),),
                )  # fmt: skip
                box = geometry.clamp(geometry.rel_to_px(rel, width, height), width, height)
                window = geometry.window(box, width, height, 0.4, pad=False)
                rows.append([name, orientation, width, height, window.as_list(0)])
        engine.dispose()
        listing.write_text(json.dumps(rows))
        stamp.write_text(settings)
    photos = [
        BenchPhoto(originals / name, orientation, (width, height), Box(*window))
        for name, orientation, width, height, window in json.loads(listing.read_text())
    ]
    return BenchLibrary(root, originals, index, photos)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--photos", type=int, default=240, help="photos in the library (x8)")
    parser.add_argument(
        "--grain", type=float, default=0.0, help="sensor-noise sigma; 4 gives 3 MB files"
    )
    parser.add_argument("--library", type=Path, default=None, help="where to build it")
