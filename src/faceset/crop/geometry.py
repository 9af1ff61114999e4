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


def oriented_point(
    x: float, y: float, width: int, height: int, orientation: int
) -> tuple[float, float]:
    """Map a point of the stored frame to the oriented frame (size ``width`` x ``height``): the
    inverse of :func:`stored_point`."""
    # Every orientation undoes itself but the two quarter turns, which undo each other; the
    # stored frame of a quarter-turned image has the oriented width and height swapped.
    stored_width, stored_height = oriented_size(width, height, orientation)
    inverse = {6: 8, 8: 6}.get(orientation, orientation)
    return stored_point(x, y, stored_width, stored_height, inverse)


def to_oriented(box: Box, width: int, height: int, orientation: int) -> Box:
    """Return ``box`` (stored pixels) in oriented pixels of an image ``width`` x ``height``."""
    u0, v0 = oriented_point(box.left, box.top, width, height, orientation)
    u1, v1 = oriented_point(box.right, box.bottom, width, height, orientation)
    return Box(min(u0, u1), min(v0, v1), max(u0, u1), max(v0, v1))


def snap_inside(box: Box, step: int, width: int, height: int, orientation: int) -> Box:
    """Return the largest square inside ``box`` (oriented pixels, image ``width`` x ``height``)
    whose stored edges fall on multiples of ``step``; ``box`` itself when none fits.

    A JPEG decoded at 1/``step`` has one pixel per ``step`` stored pixels from the stored corner:
    a window on that grid is cut from it whole, with no resampling to move it between pixels.
    Staying inside keeps every promise of the window: inside the photo, clear of other faces.
    """
    stored = to_stored(box, width, height, orientation)
    left, top = math.ceil(stored.left / step) * step, math.ceil(stored.top / step) * step
    right, bottom = math.floor(stored.right / step) * step, math.floor(stored.bottom / step) * step
    side = min(right - left, bottom - top)
    if side <= 0:
        return box
    # Centre the square in the room the grid left, on the grid.
    left += (right - left - side) // step // 2 * step
    top += (bottom - top - side) // step // 2 * step
    return to_oriented(Box(left, top, left + side, top + side), width, height, orientation)


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


def centre(box: Box) -> tuple[float, float]:
    return (box.left + box.right) / 2, (box.top + box.bottom) / 2


def clear_window(
    face: Box,
    others: list[Box],
    width: int,
    height: int,
    face_ratio: float,
    pad: bool,
    margin: float = 0.1,
    steps: int = 12,
) -> Box | None:
    """Return the square window nearest to :func:`window` that holds the whole face box, with
    ``margin`` of its side on each edge, and no other face's centre; None when there is none.

    The window first shifts, then shrinks step by step down to the face box plus that margin. Boxes are oriented pixels; centres inside the face box itself belong
    to a second marker of the same face and are ignored.
    """
    preferred = window(face, width, height, face_ratio, pad)
    points = [
        c
        for c in map(centre, others)
        if not (face.left <= c[0] <= face.right and face.top <= c[1] <= face.bottom)
    ]
    if not _holds_any(preferred, points):
        return preferred
    grow = max(face.width, face.height) * margin
    need = clamp(
        Box(face.left - grow, face.top - grow, face.right + grow, face.bottom + grow), width, height
    )
    smallest = max(need.width, need.height)
    largest = preferred.width
    for i in range(steps + 1):
        side = largest * (smallest / largest) ** (i / steps) if largest > smallest else largest
        found = _shift_clear(need, points, math.ceil(side), width, height, preferred, pad)
        if found is not None:
            return found
    return None


def _holds_any(box: Box, points: list[tuple[float, float]]) -> bool:
    return any(box.left <= x < box.right and box.top <= y < box.bottom for x, y in points)


def _shift_clear(
    face: Box,
    points: list[tuple[float, float]],
    side: int,
    width: int,
    height: int,
    preferred: Box,
    pad: bool,
) -> Box | None:
    """Return the position of a ``side`` window holding ``face`` and no point, nearest ``preferred``."""
    lo_x, hi_x = math.ceil(face.right - side), math.floor(face.left)
    lo_y, hi_y = math.ceil(face.bottom - side), math.floor(face.top)
    if not pad:
        lo_x, hi_x = max(lo_x, 0), min(hi_x, width - side)
        lo_y, hi_y = max(lo_y, 0), min(hi_y, height - side)
    if lo_x > hi_x or lo_y > hi_y:
        return None
    want_x = min(max(round(face.left + face.width / 2 - side / 2), lo_x), hi_x)
    want_y = min(max(round(face.top + face.height / 2 - side / 2), lo_y), hi_y)
    xs = {want_x, lo_x, hi_x} | {
        v for x, _ in points for v in (math.floor(x) + 1, math.floor(x) - side + 1)
    }
    ys = {want_y, lo_y, hi_y} | {
        v for _, y in points for v in (math.floor(y) + 1, math.floor(y) - side + 1)
    }
    options = [
        Box(x, y, x + side, y + side)
        for x in xs
        if lo_x <= x <= hi_x
        for y in ys
        if lo_y <= y <= hi_y
    ]
    clear = [b for b in options if not _holds_any(b, points)]
    if not clear:
        return None
    return min(
        clear,
        key=lambda b: (abs(b.left - preferred.left) + abs(b.top - preferred.top), b.left, b.top),
    )
