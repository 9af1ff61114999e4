"""Upscaling with the base model itself: enlarge, then redraw in overlapping tiles at low strength.

Lanczos enlarges the image to the target size; each native-size tile is redrawn by img2img at a
low denoising strength (new detail, same picture), and the tiles are blended where they overlap
with linear ramps, so no seam shows. This is the "tiled img2img" / Ultimate SD Upscale recipe
with no extra weights: nothing to download, and no non-commercial upscaler model.

Pure image operations: the redraw of one tile is a callable (``Engine.img2img`` or a stand-in).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image

MIN_SIDE = 2048
"""The long side an upscaled headshot reaches at least, in pixels."""

RedrawTile = Callable[[Image.Image, int], Image.Image]
"""Takes tile ``i`` (in reading order) and its index, returns it redrawn at the same size."""


def target_size(size: tuple[int, int], factor: float, min_side: int = MIN_SIDE) -> tuple[int, int]:
    """Return (width, height) of ``size`` enlarged ``factor`` times, or more so that the long side
    is at least ``min_side`` pixels."""
    width, height = size
    scale = max(factor, min_side / max(width, height))
    return (round(width * scale), round(height * scale))


def starts(length: int, tile: int, overlap: int) -> list[int]:
    """Return the first pixels of tiles of ``tile`` pixels covering ``length`` pixels, evenly
    spread, neighbours overlapping by at least ``overlap``; the last ends at ``length``."""
    if tile >= length:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def tiles(size: tuple[int, int], tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Return the (left, top, right, bottom) tiles of an image of ``size``, row by row."""
    width, height = size
    tw, th = min(tile, width), min(tile, height)
    return [
        (x, y, x + tw, y + th)
        for y in starts(height, th, overlap)
        for x in starts(width, tw, overlap)
    ]


def _ramp(start: int, end: int, length: int, overlap: int) -> np.ndarray:
    """Weights along one side of a tile: rising over ``overlap`` pixels from an inner edge, flat
    1 at the image's own edges (no neighbour to blend with there)."""
    position = np.arange(end - start, dtype=np.float64) + 0.5
    weight = np.ones(end - start)
    if start > 0:
        weight = np.minimum(weight, position / overlap)
    if end < length:
        weight = np.minimum(weight, (end - start - position) / overlap)
    return weight


def upscale(
    image: Image.Image,
    size: tuple[int, int],
    tile: int,
    overlap: int,
    redraw: RedrawTile,
) -> Image.Image:
    """Return ``image`` enlarged to ``size`` (width, height) and redrawn tile by tile by
    ``redraw``, tiles of ``tile`` pixels (at most the image's sides) blended over ``overlap``."""
    big = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    width, height = size
    total = np.zeros((height, width, 3))
    weights = np.zeros((height, width, 1))
    for i, (left, top, right, bottom) in enumerate(tiles(size, tile, overlap)):
        redrawn = redraw(big.crop((left, top, right, bottom)), i)
        weight = np.outer(_ramp(top, bottom, height, overlap), _ramp(left, right, width, overlap))[
            :, :, None
        ]
        total[top:bottom, left:right] += np.asarray(redrawn.convert("RGB"), np.float64) * weight
        weights[top:bottom, left:right] += weight
    pixels = np.clip(np.rint(total / weights), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)
