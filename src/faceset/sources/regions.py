"""Face boxes as each library stores them, turned into faceset's frame.

faceset's frame (:class:`faceset.model.RelBox`): top-left ``x, y`` and size ``w, h`` as fractions
of the photo **after** its EXIF orientation is applied. Each function here states the frame it
reads; see ../shared/reference/other-libraries.md for where each rule comes from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from faceset.crop.geometry import stored_point
from faceset.model import RelBox

Frame = Literal["stored", "oriented"]
# The orientation whose transform undoes each one: 90-degree turns swap, the rest self-invert.
_INVERSE = {6: 8, 8: 6}
# Two aspect ratios this close (relative) are taken as the same shape.
ASPECT_TOLERANCE = 0.02


def stored_to_oriented(box: RelBox, orientation: int) -> RelBox:
    """Return a box relative to the **stored** image as a box relative to the oriented image.

    Relative coordinates make the frame a unit square, so the crop stage's point mapping (oriented
    to stored) with the inverse orientation maps stored to oriented.
    """
    inverse = _INVERSE.get(orientation, orientation)
    x0, y0 = stored_point(box.x, box.y, 1, 1, inverse)
    x1, y1 = stored_point(box.x + box.w, box.y + box.h, 1, 1, inverse)
    return RelBox(min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0))


def mwg_area(x: float, y: float, w: float, h: float) -> RelBox:
    """Return an MWG ``stArea`` (normalized, **x, y the centre**) as a top-left relative box."""
    return RelBox(x - w / 2, y - h / 2, w, h)


def mp_rectangle(text: str) -> RelBox | None:
    """Return a Microsoft ``MPReg:Rectangle`` ("x, y, w, h", normalized, top-left); None if bad."""
    try:
        values = [float(v) for v in text.replace(";", ",").split(",")]
    except ValueError:
        return None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        return None
    return RelBox(*values)


def pixel_rect(x: float, y: float, w: float, h: float, width: int, height: int) -> RelBox:
    """Return a top-left pixel rectangle of an image ``width`` x ``height`` as a relative box."""
    return RelBox(x / width, y / height, w / width, h / height)


def corner_box(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> RelBox:
    """Return corners ``(x1, y1)-(x2, y2)`` in pixels of a ``width`` x ``height`` image, relative.

    Immich's boxes: measured on its oriented preview of ``imageWidth`` x ``imageHeight``, so as
    fractions they hold for the oriented original at any resolution.
    """
    return RelBox(x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height)


def same_aspect(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Return whether two (width, height) sizes have the same shape."""
    if min(*a, *b) <= 0:
        return False
    return abs((a[0] / a[1]) / (b[0] / b[1]) - 1) <= ASPECT_TOLERANCE


@dataclass(frozen=True, slots=True)
class FrameChoice:
    """Which frame an XMP region list refers to, why, and whether the file itself told."""

    frame: Frame
    reason: str
    certain: bool


def xmp_frame(
    orientation: int,
    stored: tuple[int, int],
    applied: tuple[float, float] | None,
    default: Frame,
) -> FrameChoice:
    """Return the frame an XMP region list of one file refers to.

    ``stored`` is the stored (un-rotated) size in pixels and ``applied`` the regions'
    ``AppliedToDimensions``. The MWG guideline says regions refer to the stored image, but writers
    disagree; for orientations 5-8 the dimensions tell (their shape matches the stored or the
    oriented size). For 2-4, or without usable dimensions, nothing in the file tells: ``default``,
    not certain.
    """
    if orientation == 1:
        return FrameChoice("oriented", "no rotation", True)
    if orientation >= 5 and applied is not None and not same_aspect(stored, stored[::-1]):
        size = f"AppliedToDimensions {applied[0]:g}x{applied[1]:g}"
        if same_aspect(applied, stored):
            return FrameChoice("stored", f"{size} is the stored shape", True)
        if same_aspect(applied, (stored[1], stored[0])):
            return FrameChoice("oriented", f"{size} is the upright shape", True)
    return FrameChoice(default, f"orientation {orientation}: the file cannot tell", False)
