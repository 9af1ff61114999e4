"""Photos for sample libraries: a portrait placed in a camera-size frame, stored in any orientation."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image, ImageFilter

from faceset.crop.decode import EXIF_ORIENTATION, upright

# Quadrant colours of :func:`pattern_photo`'s face, upright.
TOP_LEFT, TOP_RIGHT, BOTTOM_LEFT, BOTTOM_RIGHT = (
    (230, 30, 30),
    (30, 200, 30),
    (30, 30, 230),
    (240, 240, 240),
)
# Orientation that undoes each one: rotations by 90 degrees swap, the rest are their own inverse.
_INVERSE = {6: 8, 8: 6}


@dataclass(frozen=True, slots=True)
class Portrait:
    """A picture of one person and where the face is in it (pixels of the picture)."""

    image: Image.Image
    face: tuple[float, float, float, float]


def astronaut() -> Portrait:
    """Return the public-domain NASA portrait of Eileen Collins that ships with scikit-image."""
    from skimage import data

    pixels = data.astronaut()  # type: ignore[no-untyped-call]
    return Portrait(Image.fromarray(pixels), (168.0, 55.0, 268.0, 155.0))


def cameraman() -> Portrait:
    """Return scikit-image's public-domain 'camera' photo (a man filming)."""
    from skimage import data

    pixels = data.camera()  # type: ignore[no-untyped-call]
    return Portrait(Image.fromarray(pixels).convert("RGB"), (170.0, 85.0, 250.0, 165.0))


def compose(
    portrait: Portrait, size: tuple[int, int], scale: float, at: tuple[int, int]
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """Return an upright photo of ``size`` with the portrait scaled and placed at ``at``, and its face box.

    The rest of the frame is a blurred enlargement of the portrait, so the photo has real texture.
    """
    width, height = size
    background = portrait.image.resize((width, height), Image.Resampling.BILINEAR).filter(
        ImageFilter.GaussianBlur(12)
    )
    scaled = portrait.image.resize(
        (round(portrait.image.width * scale), round(portrait.image.height * scale)),
        Image.Resampling.LANCZOS,
    )
    background.paste(scaled, at)
    left, top, right, bottom = portrait.face
    face = (
        at[0] + left * scale,
        at[1] + top * scale,
        at[0] + right * scale,
        at[1] + bottom * scale,
    )
    return background, face


def stored(upright_image: Image.Image, orientation: int) -> Image.Image:
    """Return the stored pixels whose EXIF ``orientation`` shows as ``upright_image``."""
    return upright(upright_image, _INVERSE.get(orientation, orientation))


def encode(upright_image: Image.Image, fmt: str, orientation: int = 1, quality: int = 92) -> bytes:
    """Return the photo's file bytes in ``fmt`` (JPEG, PNG, WEBP, TIFF, HEIF) with its orientation tag."""
    buffer = io.BytesIO()
    pixels = stored(upright_image, orientation)
    exif = Image.Exif()
    if orientation != 1:
        exif[EXIF_ORIENTATION] = orientation
    if fmt == "HEIF":
        # libheif rotates by the container's own transform; write the upright pixels.
        pillow_heif.from_pillow(upright_image).save(buffer, quality=quality)
    elif fmt == "JPEG":
        pixels.save(buffer, "JPEG", quality=quality, exif=exif.tobytes())
    elif fmt == "TIFF":
        # TIFF keeps Orientation in its own first IFD, not in an embedded EXIF block.
        pixels.save(buffer, "TIFF", tiffinfo={EXIF_ORIENTATION: orientation})
    else:
        pixels.save(buffer, fmt, exif=exif.tobytes())
    return buffer.getvalue()


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def pattern_photo(
    size: tuple[int, int], face: tuple[int, int, int, int], seed: int = 0
) -> Image.Image:
    """Return an upright photo: textured background, face box painted in four colours.

    Top left red, top right green, bottom left blue, bottom right white: any wrong rotation or
    mirror of a crop moves them.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    base = rng.integers(60, 160, size=(height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize((width, height), Image.Resampling.BILINEAR)
    left, top, right, bottom = face
    cx, cy = (left + right) // 2, (top + bottom) // 2
    for colour, box in (
        (TOP_LEFT, (left, top, cx, cy)),
        (TOP_RIGHT, (cx, top, right, cy)),
        (BOTTOM_LEFT, (left, cy, cx, bottom)),
        (BOTTOM_RIGHT, (cx, cy, right, bottom)),
    ):
        image.paste(colour, box)
    return image


def varied_photo(
    size: tuple[int, int], face: tuple[int, int, int, int], seed: int, blur: float = 0.0
) -> Image.Image:
    """Return an upright photo whose face region is a smooth random pattern unique to ``seed``."""
    rng = np.random.default_rng(seed)
    image = pattern_photo(size, face, seed)
    left, top, right, bottom = face
    cells = rng.integers(0, 255, size=(6, 6, 3), dtype=np.uint8)
    patch = Image.fromarray(cells).resize((right - left, bottom - top), Image.Resampling.BICUBIC)
    detail = rng.integers(0, 2, size=(48, 48), dtype=np.uint8) * 90
    texture = Image.fromarray(detail).resize(patch.size, Image.Resampling.NEAREST).convert("RGB")
    patch = Image.blend(patch, texture, 0.35)
    if blur:
        patch = patch.filter(ImageFilter.GaussianBlur(blur))
    image.paste(patch, (left, top))
    return image
