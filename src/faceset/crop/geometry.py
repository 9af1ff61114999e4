"""Pure box maths between frames: relative boxes, oriented pixels and stored pixels.

*Stored* pixels are the image as its bytes lay it out; *oriented* pixels are the image after its
EXIF orientation (1-8) is applied, the frame PhotoPrism measures markers in.
"""

from __future__ import annotations

import math

from faceset.model import Box, RelBox

ORIENTATIONS = range(1, 9)


def oriented_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """Return the (width, height) in pixels after applying ``orientation`` to a stored image."""
    return (height, width) if orientation >= 5 else (width, height)


def stored_point(
    u: float, v: float, width: int, height: int, orientation: int
) -> tuple[float, float]:
    """Map a point of the oriented frame (size ``width`` x ``height``) to the stored frame.

    Points are pixel-edge coordinates, so mapping a box's two corners maps the whole box.
    """
    match orientation:
        case 2:
            return width - u, v
        case 3:
            return width - u, height - v
        case 4:
            return u, height - v
        case 5:
            return v, u
        case 6:
            return v, width - u
        case 7:
            return height - v, width - u
        case 8:
            return height - v, u
        case _:
            return u, v


def to_stored(box: Box, width: int, height: int, orientation: int) -> Box:
    """Return ``box`` (oriented pixels, image ``width`` x ``height``) in stored pixels."""
    x0, y0 = stored_point(box.left, box.top, width, height, orientation)
    x1, y1 = stored_point(box.right, box.bottom, width, height, orientation)
    return Box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def rel_to_px(rel: RelBox, width: int, height: int) -> Box:
    """Return a relative box in pixels of an image ``width`` x ``height``, unclamped."""
    return Box(rel.x * width, rel.y * height, (rel.x + rel.w) * width, (rel.y + rel.h) * height)


def clamp(box: Box, width: int, height: int) -> Box:
    """Return ``box`` cut to the image; PhotoPrism clips x, y, w, h separately, so boxes overrun."""
    return Box(
        max(0.0, box.left),
        max(0.0, box.top),
        min(float(width), box.right),
        min(float(height), box.bottom),
    )


def is_usable(rel: RelBox) -> bool:
    """Return whether a relative box has a size and overlaps the image at all."""
    values = (rel.x, rel.y, rel.w, rel.h)
    if not all(math.isfinite(v) for v in values) or rel.w <= 0 or rel.h <= 0:
        return False
    return rel.x < 1 and rel.y < 1 and rel.x + rel.w > 0 and rel.y + rel.h > 0


def pixel_aspect(rel: RelBox, width: int, height: int) -> float:
    """Return the box's width/height in pixels; detected faces are squares, so 1 when current."""
    return (rel.w * width) / (rel.h * height)


def window(face: Box, width: int, height: int, face_ratio: float, pad: bool) -> Box:
    """Return the square crop window (integer oriented pixels) centred on ``face``.

    The window side is the face side divided by ``face_ratio``. Near an edge the window shifts to
    stay inside the image; a window larger than the image is shrunk to the image (never below the
    face) unless ``pad`` asks to keep the framing and pad outside the photo instead.
    """
    face_side = max(face.width, face.height)
    side = face_side / face_ratio
    if not pad:
        side = max(min(side, width, height), face_side)
    side_px = max(1, round(side))
    cx = (face.left + face.right) / 2
    cy = (face.top + face.bottom) / 2
    left = _place(cx - side_px / 2, side_px, width)
    top = _place(cy - side_px / 2, side_px, height)
    return Box(left, top, left + side_px, top + side_px)


def _place(start: float, side: int, extent: int) -> int:
    """Return the window start shifted inside ``[0, extent]``, or covering it when larger."""
    if side > extent:
        return min(max(round(start), extent - side), 0)
    return min(max(round(start), 0), extent - side)
