"""Photos for sample libraries: a portrait placed in a camera-size frame, stored in any orientation."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pillow_heif
from PIL import Image, ImageFilter

from faceset.crop.decode import EXIF_ORIENTATION, upright

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
