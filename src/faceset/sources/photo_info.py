"""What a source must know of a local photo to place boxes: its sizes, orientation and XMP packet.

Read through the crop stage's own :func:`faceset.crop.decode.open_photo`, so a source converts
boxes to exactly the oriented frame the crop stage will cut from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from faceset.crop.decode import open_photo
from faceset.crop.geometry import oriented_size

_TIFF_XMP = 700  # TIFF tag XMLPacket


@dataclass(frozen=True, slots=True)
class PhotoInfo:
    """A photo's stored size in pixels, its EXIF orientation and its embedded XMP packet."""

    width: int
    """Stored width in pixels (before orientation)."""
    height: int
    orientation: int
    xmp: bytes | None = None

    @property
    def oriented(self) -> tuple[int, int]:
        """Return (width, height) in pixels after the orientation is applied."""
        return oriented_size(self.width, self.height, self.orientation)


def read_photo_info(path: Path) -> PhotoInfo | None:
    """Return the photo's sizes, orientation and XMP; None when it is missing or not an image."""
    try:
        photo = open_photo(path.read_bytes())
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    return PhotoInfo(photo.width, photo.height, photo.orientation, _xmp_packet(photo.image))


def _xmp_packet(image: Image.Image) -> bytes | None:
    """Return the XMP packet Pillow found: JPEG APP1, WebP/HEIF chunks, PNG iTXt, TIFF tag."""
    info = image.info
    for key in ("xmp", "XML:com.adobe.xmp"):
        value = info.get(key)
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, bytes) and value:
            return value
    tags = getattr(image, "tag_v2", None)
    if tags is not None:
        value = tags.get(_TIFF_XMP)
        if isinstance(value, bytes) and value:
            return value
    return None
