"""Open a photo and read one window of it at the scale a crop needs, in sRGB.

The window is given in stored pixels (see :mod:`faceset.crop.geometry`): the photo is never
rotated whole; only the small result is turned upright, by :func:`upright`.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import pillow_heif
from PIL import Image, ImageCms

from faceset.model import Box

pillow_heif.register_heif_opener()
# Panoramas and scans exceed Pillow's decompression-bomb guard; these are the user's own photos.
Image.MAX_IMAGE_PIXELS = 1_000_000_000

EXIF_ORIENTATION = 0x0112
_HEIF_FORMATS = frozenset({"HEIF", "AVIF"})
# Pillow's own table (ImageOps.exif_transpose): the operation that turns a stored image upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@dataclass(slots=True)
class Photo:
    """An opened, not yet decoded photo: its stored size and the orientation to apply."""

    image: Image.Image
    width: int
    """Stored width in pixels."""
    height: int
    orientation: int
    icc: bytes | None


def open_photo(data: bytes) -> Photo:
    """Return the photo in ``data`` with its stored size and EXIF orientation (1 when none)."""
    image = Image.open(io.BytesIO(data))
    orientation = 1
    # libheif already applies the container's irot/imir while decoding; the EXIF tag that iPhones
    # also write would rotate a second time.
    if image.format == "TIFF":
        # Pillow's TIFF loader applies the orientation itself and then drops the tag.
        image.load()
        value = getattr(image, "tag_v2", {}).get(EXIF_ORIENTATION, 1)
        orientation = value if isinstance(value, int) and 1 <= value <= 8 else 1
    elif image.format not in _HEIF_FORMATS:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
        orientation = value if isinstance(value, int) and 1 <= value <= 8 else 1
    icc = image.info.get("icc_profile") or None
    return Photo(image, image.width, image.height, orientation, icc)


def read_window(photo: Photo, window: Box, size: int) -> Image.Image:
    """Return ``window`` (stored pixels, square) of the photo resized to ``size`` px, RGB, sRGB.

    JPEGs decode at the largest DCT scale (1/2, 1/4, 1/8) that still leaves the window at least
    twice the output size, so the final resampling always has detail to spare.
    """
    image = photo.image
    scale = 1
    if image.format == "JPEG":
        scale = _dct_scale(window.width, size)
        if scale > 1:
            image.draft("RGB", (math.ceil(photo.width / scale), math.ceil(photo.height / scale)))
        # draft() may pick a different scale than asked: measure what it did.
        sx, sy = photo.width / image.width, photo.height / image.height
    else:
        sx = sy = 1.0
    box = (window.left / sx, window.top / sy, window.right / sx, window.bottom / sy)
    inside = box[0] >= 0 and box[1] >= 0 and box[2] <= image.width and box[3] <= image.height
    if inside and image.mode in ("RGB", "L"):
        region = image.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    else:
        # Outside the photo (padding) Pillow's crop fills black; odd modes convert first.
        cut = image.crop((round(box[0]), round(box[1]), round(box[2]), round(box[3])))
        region = _to_rgb(_to_srgb(cut, photo.icc)).resize((size, size), Image.Resampling.LANCZOS)
        return region
    return _to_rgb(_to_srgb(region, photo.icc))


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """Return a stored-frame image turned to its oriented frame."""
    op = _UPRIGHT.get(orientation)
    return image.transpose(op) if op is not None else image


def _dct_scale(window_px: float, size: int) -> int:
    for scale in (8, 4, 2):
        if window_px / scale >= 2 * size:
            return scale
    return 1


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """Return ``image`` converted from its embedded ICC profile to sRGB (unchanged when none)."""
    if not icc:
        return image
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(profile).lower().replace(" ", ""):
            return image
        mode = "L" if image.mode == "L" else "RGB"
        converted = ImageCms.profileToProfile(image, profile, _SRGB, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        # A broken or mismatched profile: the pixels are still better than no image.
        return image
    return converted if converted is not None else image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Return ``image`` as 8-bit RGB: 16-bit values scaled, not clipped; alpha over white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = 1.0 if image.mode == "F" and values.max(initial=0) <= 1.0 else 65535.0
        gray = np.clip(np.rint(values * (255.0 / peak)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "P", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
