"""Open a photo and read one window of it at the scale a crop needs, in sRGB.

The window is given in stored pixels (see :mod:`faceset.crop.geometry`): the photo is never
rotated whole; only the small result is turned upright, by :func:`upright`.

Baseline JPEGs, nearly every camera photo, take the fast path: the system's libjpeg-turbo decodes
only the window, at a DCT scale (:mod:`faceset.crop.libjpeg`), and libvips resizes it. Everything
else (progressive JPEG, HEIC, PNG, WebP, TIFF, 16-bit, CMYK, windows padded past the edge) takes
the general path through Pillow. Both convert embedded ICC profiles to sRGB.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pillow_heif
import pyvips  # type: ignore[import-untyped]
from PIL import Image, ImageCms

from faceset.crop import libjpeg
from faceset.model import Box

pillow_heif.register_heif_opener()
# One small image at a time per process: the parallelism comes from one process per core
# (pool.py), and vips threads on top of that would only compete with the other workers. The
# operation cache would keep recent images (and the decoded pixels they wrap) alive.
pyvips.concurrency_set(1)
pyvips.cache_set_max(0)
# Panoramas and scans exceed Pillow's decompression-bomb guard; these are the user's own photos.
Image.MAX_IMAGE_PIXELS = 1_000_000_000

EXIF_ORIENTATION = 0x0112
HEADROOM = 2
"""The decoded window stays at least this many times the output size: libjpeg's DCT scaling is a
plain block shrink, so a real filter does the last factor of two (libvips' thumbnail does too)."""
_HEIF_FORMATS = frozenset({"HEIF", "AVIF"})
# Pillow opens a JPEG that carries more pictures (MPF: depth maps, gain maps) as MPO; its first
# picture is the photo, at the start of the file, where libjpeg reads it.
JPEG_FORMATS = frozenset({"JPEG", "MPO"})
_MASK_SCALE = 256
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
    data: bytes = b""
    """The file's bytes, for decoders that read them directly."""


MAX_PIXELS = 250_000_000
"""Photos above this many pixels are refused before anything decodes them: a 200 MP phone
photo passes; a 2.6 MB PNG claiming 30000 x 30000 px (900 MP, 3.5 GiB to decode) does not."""


class TooLarge(ValueError):
    """The photo's header claims more pixels than faceset decodes."""


def open_photo(data: bytes) -> Photo:
    """Return the photo in ``data`` with its stored size and EXIF orientation (1 when none).

    Raises TooLarge, from the header alone, for a photo above :data:`MAX_PIXELS`.
    """
    image = Image.open(io.BytesIO(data))
    if image.width * image.height > MAX_PIXELS:
        raise TooLarge(
            f"{image.width}x{image.height} px is more than the {MAX_PIXELS // 1_000_000} MP"
            " faceset decodes"
        )
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
    return Photo(image, image.width, image.height, orientation, icc, data)


DAMAGED = "faceset.damaged"
"""Key of ``Image.info`` holding how often libjpeg warned of corrupt data, for a crop made with
``allow_damaged``."""


def read_window(
    photo: Photo, window: Box, size: int, headroom: int = HEADROOM, allow_damaged: bool = False
) -> Image.Image:
    """Return ``window`` (stored pixels, square) of the photo resized to ``size`` px, RGB, sRGB.

    JPEGs decode at the largest DCT scale (1/2, 1/4, 1/8) that still leaves the window at least
    ``headroom`` times the output size, so the final resampling has detail to spare.
    """
    if _takes_fast_path(photo, window):
        try:
            pixels = _read_jpeg_window(photo, window, size, headroom, allow_damaged)
            converted = _to_rgb(_to_srgb(pixels, photo.icc))
            converted.info.update(pixels.info)
            return converted
        except libjpeg.JpegError:
            pass  # a JPEG the system's libjpeg cannot read: Pillow's may, or will say why not
    image = photo.image
    scale = 1
    if image.format == "JPEG":
        scale = dct_scale(window.width, size, headroom)
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


def _takes_fast_path(photo: Photo, window: Box) -> bool:
    image = photo.image
    return (
        bool(photo.data)
        and image.format in JPEG_FORMATS
        and image.mode in ("RGB", "L")
        and getattr(image, "bits", 8) == 8
        # Progressive JPEGs cannot stop early: libjpeg reads every scan before the first row.
        and not image.info.get("progressive")
        and window.left >= 0
        and window.top >= 0
        and window.right <= photo.width
        and window.bottom <= photo.height
        and libjpeg.available()
    )


def _read_jpeg_window(
    photo: Photo, window: Box, size: int, headroom: int, allow_damaged: bool = False
) -> Image.Image:
    """Return ``window`` (stored pixels, inside the photo) of a baseline JPEG at ``size`` px."""
    scale = dct_scale(window.width, size, headroom)
    # libvips resizes a whole image onto the output, so the window must span whole scaled pixels:
    # a side of 1001 px at 1/2 would stretch the crop by a tenth of a percent. Its start may
    # fall between pixels (see _shift).
    while scale > 1 and (window.width % scale or window.height % scale):
        scale //= 2
    # The window in pixels of the image libjpeg decodes at 1/scale (whose size rounds up).
    x = _Span.of(window.left / scale, window.width / scale, math.ceil(photo.width / scale))
    y = _Span.of(window.top / scale, window.height / scale, math.ceil(photo.height / scale))
    gray = photo.image.mode == "L"
    damaged = 0
    try:
        rows, start = libjpeg.read_box(photo.data, (x.lo, y.lo, x.hi, y.hi), scale, gray)
    except libjpeg.DamagedData as e:
        if not allow_damaged:
            raise
        rows, start, damaged = e.rows, e.start, e.warnings
    height, width, bands = rows.shape
    # libvips wraps the decoded rows as they are and crops without a copy.
    image = pyvips.Image.new_from_memory(rows.data, width, height, bands, "uchar")
    if (start, width) != (0, x.hi - x.lo):
        image = image.crop(start, 0, x.hi - x.lo, height)
    image = _shift(image, x.fraction, y.fraction).crop(x.skip, y.skip, x.whole, y.whole)
    # Lanczos-3 in libvips: 4 ms where Pillow's LANCZOS takes 20 (1229 to 512 px). No gap: the
    # window is at most four times the output, and a box shrink first would only cost time.
    resized = image.resize(size / x.length, vscale=size / y.length, kernel="lanczos3", gap=0.0)
    if (resized.width, resized.height) != (size, size):
        resized = resized.crop(0, 0, min(size, resized.width), min(size, resized.height))
        resized = resized.embed(0, 0, size, size, extend="copy")
    mode = "L" if bands == 1 else "RGB"
    result = Image.frombytes(mode, (size, size), resized.write_to_memory())
    if damaged:
        result.info[DAMAGED] = damaged
    return result


@dataclass(frozen=True, slots=True)
class _Span:
    """One axis of a window in scaled pixels, and the whole pixels to decode for it."""

    start: float
    length: float
    lo: int
    """First pixel to decode."""
    hi: int
    """One past the last pixel to decode."""

    @classmethod
    def of(cls, start: float, length: float, limit: int) -> _Span:
        fractional = start != math.floor(start)
        # A window starting between pixels is moved onto them by interpolation (see _shift),
        # whose taps reach two pixels either side.
        margin = 2 if fractional else 0
        lo = max(0, math.floor(start) - margin)
        hi = min(limit, math.ceil(start + length) + margin)
        return cls(start, length, lo, hi)

    @property
    def fraction(self) -> float:
        return self.start - math.floor(self.start)

    @property
    def skip(self) -> int:
        """Pixels of the decoded span before the window's first (after :func:`_shift`)."""
        return math.floor(self.start) - self.lo

    @property
    def whole(self) -> int:
        """Whole pixels of the window, as many as were decoded."""
        return min(math.ceil(self.length), self.hi - self.lo - self.skip)


def _shift(image: Any, fx: float, fy: float) -> Any:
    """Return ``image`` resampled so that pixel (x, y) shows what was at (x + fx, y + fy).

    DCT scaling halves the image from its own corner, so a window at an odd stored pixel starts
    half a scaled pixel off the grid. Rounding it would move the crop by up to half a scaled
    pixel; a cubic (Catmull-Rom) shift keeps it exact, at the scaled resolution, which is still
    at least twice the output's.
    """
    if fx:
        image = image.conv(_shift_mask(fx, horizontal=True), precision="integer")
    if fy:
        image = image.conv(_shift_mask(fy, horizontal=False), precision="integer")
    return image


def _shift_mask(t: float, horizontal: bool) -> Any:
    # Catmull-Rom weights of the pixels at -1, 0, 1, 2 for a sample at t; the mask is centred on
    # its middle entry, the pixel itself.
    weights = [
        (-(t**3) + 2 * t**2 - t) / 2,
        (3 * t**3 - 5 * t**2 + 2) / 2,
        (-3 * t**3 + 4 * t**2 + t) / 2,
        (t**3 - t**2) / 2,
    ]
    taps = [0, *(round(w * _MASK_SCALE) for w in weights)]
    taps[2] += _MASK_SCALE - sum(taps)
    rows = [taps] if horizontal else [[tap] for tap in taps]
    return pyvips.Image.new_from_array(rows, scale=_MASK_SCALE)


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """Return a stored-frame image turned to its oriented frame."""
    op = _UPRIGHT.get(orientation)
    return image.transpose(op) if op is not None else image


def dct_scale(window_px: float, size: int, headroom: int = HEADROOM) -> int:
    """Return the DCT scale (1, 2, 4 or 8) a JPEG window ``window_px`` wide is decoded at."""
    for scale in (8, 4, 2):
        if window_px / scale >= headroom * size:
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
