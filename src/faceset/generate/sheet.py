"""Contact sheets of generated images: a grid of tiles, each labelled, as one PNG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

TILE = 256
LABEL = 18


def contact_sheet(
    images: Sequence[Image.Image], labels: Sequence[str], columns: int = 4
) -> Image.Image:
    """Return the images as one RGB sheet, ``columns`` wide, each ``TILE`` px wide with its label."""
    if not images:
        raise ValueError("a contact sheet needs at least one image")
    columns = max(1, min(columns, len(images)))
    rows = math.ceil(len(images) / columns)
    first = images[0]
    tile_h = round(TILE * first.height / first.width)
    sheet = Image.new("RGB", (columns * TILE, rows * (tile_h + LABEL)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        x, y = (i % columns) * TILE, (i // columns) * (tile_h + LABEL)
        sheet.paste(image.convert("RGB").resize((TILE, tile_h), Image.Resampling.LANCZOS), (x, y))
        draw.text((x + 4, y + tile_h + 2), label, fill=(40, 40, 40), font=font)
    return sheet


def save_png(image: Image.Image, path: Path) -> Path:
    """Write ``image`` as a PNG holding pixels only (no EXIF, no text chunks); atomically."""
    # A fresh image from the pixels carries none of the source's info (EXIF, ICC, parameters).
    clean = Image.frombytes("RGB", image.size, image.convert("RGB").tobytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    clean.save(tmp, "PNG")
    tmp.replace(path)
    return path
