"""The face detail pass: the face redrawn at the model's native resolution and pasted back.

A base image draws a head-and-shoulders face in a few hundred pixels; the model is sharpest at
its native resolution. So the face's padded square is cut out, enlarged to the native size,
redrawn there with the LoRA and the same prompt at a moderate denoising strength (img2img),
shrunk back and pasted through a feathered round mask: 1 in the middle, falling smoothly to 0
at the circle inscribed in the square. Pixels where the mask is 0 (everything outside that
circle) keep their exact values. This is what ComfyUI's FaceDetailer and A1111's ADetailer do by
hand; the detector here is the local one of ``faceset eval`` (yuface), not Ultralytics.

Pure image operations: the redraw itself is a callable (``Engine.img2img`` or a stand-in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from faceset.model import Box

CROP = 2.0
"""Side of the redrawn square in face sizes (the larger of the face box's width and height): the
face, the hair and some of the neck, so the model sees a head to redraw, not a texture."""
INNER = 0.7
"""The mask is 1 within this fraction of the inscribed circle's radius and falls to 0 at it."""

Redraw = Callable[[Image.Image], Image.Image]
"""Takes the square enlarged to the native size, returns it redrawn at the same size."""


@dataclass(frozen=True, slots=True)
class Square:
    """A square of an image in pixels: left and top edge, and side."""

    left: int
    top: int
    side: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom), as PIL crops."""
        return (self.left, self.top, self.left + self.side, self.top + self.side)

    def as_list(self) -> list[int]:
        return [self.left, self.top, self.side]


def face_square(face: Box, size: tuple[int, int], crop: float = CROP) -> Square:
    """Return the square of ``crop`` face sizes centred on ``face``, inside an image of ``size``
    (width, height) pixels: shifted (never cut) at the image edges, and at most its shorter side.
    """
    width, height = size
    side = min(round(max(face.width, face.height) * crop), width, height)
    side = max(side, 1)
    cx, cy = (face.left + face.right) / 2, (face.top + face.bottom) / 2
    left = min(max(round(cx - side / 2), 0), width - side)
    top = min(max(round(cy - side / 2), 0), height - side)
    return Square(left, top, side)


def feather_mask(side: int, inner: float = INNER) -> np.ndarray:
    """Return the (side, side) float mask, 1 within ``inner`` of the inscribed circle's radius,
    falling smoothly (smoothstep) to exactly 0 at the circle and beyond it."""
    centres = np.arange(side, dtype=np.float64) + 0.5 - side / 2
    radius = np.hypot(centres[None, :], centres[:, None]) / (side / 2)
    t = np.clip((1.0 - radius) / (1.0 - inner), 0.0, 1.0)
    return np.asarray(t * t * (3.0 - 2.0 * t))


def paste(
    image: Image.Image, patch: Image.Image, square: Square, inner: float = INNER
) -> Image.Image:
    """Return ``image`` with ``patch`` (resized to the square if needed) blended into ``square``
    through :func:`feather_mask`; pixels where the mask is 0 keep their exact values."""
    if patch.size != (square.side, square.side):
        patch = patch.resize((square.side, square.side), Image.Resampling.LANCZOS)
    out = np.asarray(image.convert("RGB")).copy()
    left, top, right, bottom = square.box
    region = out[top:bottom, left:right].astype(np.float64)
    new = np.asarray(patch.convert("RGB"), dtype=np.float64)
    mask = feather_mask(square.side, inner)[:, :, None]
    blended = np.rint(region + (new - region) * mask)
    out[top:bottom, left:right] = np.clip(blended, 0, 255).astype(np.uint8)
    return Image.fromarray(out)


def detail(image: Image.Image, square: Square, native: int, redraw: Redraw) -> Image.Image:
    """Return ``image`` with ``square`` redrawn at ``native`` x ``native`` pixels by ``redraw``
    and pasted back feathered."""
    crop = image.convert("RGB").crop(square.box).resize((native, native), Image.Resampling.LANCZOS)
    redrawn = redraw(crop)
    return paste(image, redrawn, square)
