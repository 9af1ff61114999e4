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


AREA_TOLERANCE = 0.01
"""How far (a fraction of the photo's side) a normalized area may reach past the photo's edge
and still be read as on it: writers round, and a box drawn to the edge may overshoot a little."""


def outside_unit(rel: RelBox, tolerance: float = AREA_TOLERANCE) -> bool:
    """Return whether a normalized box reaches outside [0, 1] by more than ``tolerance``."""
    low, high = -tolerance, 1 + tolerance
    return not (low <= rel.x and low <= rel.y and rel.x + rel.w <= high and rel.y + rel.h <= high)


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


CLEAR_TOLERANCE_PX = 1.0
"""How far :func:`clear_window` may miss, in oriented pixels: the window holds the face's margin
box to within this on each edge, and another face's centre may lie this far inside its edge.
Rounding the window to whole pixels takes up to half a pixel per edge and side."""


def clear_window(
    face: Box,
    others: list[Box],
    width: int,
    height: int,
    face_ratio: float,
    pad: bool,
    margin: float = 0.1,
) -> Box | None:
    """Return the largest square window, nearest :func:`window`, that holds the face box with
    ``margin`` of its side on each edge and no other face's centre; None when there is none.

    Boxes are oriented pixels; the result is in whole pixels, true to within
    :data:`CLEAR_TOLERANCE_PX`. Centres inside the face box belong to a second marker of the same
    face and are ignored. The search is exact, not a grid, so it is stable: moving the face box by
    a fraction of a pixel moves or resizes the window by about as much, and changes whether one
    exists only where another face's centre is that close to an edge of the margin box.
    """
    preferred = window(face, width, height, face_ratio, pad)
    points = [
        c
        for c in map(centre, others)
        if not (face.left <= c[0] <= face.right and face.top <= c[1] <= face.bottom)
    ]
    if not any(_inside(preferred.left, preferred.top, preferred.width, p) for p in points):
        return preferred
    grow = max(face.width, face.height) * margin
    need = clamp(
        Box(face.left - grow, face.top - grow, face.right + grow, face.bottom + grow), width, height
    )
    smallest = max(need.width, need.height)
    largest = max(float(preferred.width), smallest)
    bounds = (width, height) if not pad else None
    if _place_clear(need, points, smallest, bounds, preferred) is None:
        return None
    # Any square inside a clear window that still holds the margin box is clear too, so the
    # sides that have a clear window form one interval: bisect for its top.
    low, high = smallest, largest
    if _place_clear(need, points, high, bounds, preferred) is not None:
        low = high
    while high - low > 1e-3:
        mid = (low + high) / 2
        if _place_clear(need, points, mid, bounds, preferred) is not None:
            low = mid
        else:
            high = mid
    found = _place_clear(need, points, low, bounds, preferred)
    assert found is not None  # low is always a side with a clear window
    x, y = found
    side = max(1, round(low))
    left, top = round(x), round(y)
    if bounds is not None:
        left = min(max(left, 0), max(width - side, 0))
        top = min(max(top, 0), max(height - side, 0))
    return Box(left, top, left + side, top + side)


_EPSILON = 1e-6


def _inside(x: float, y: float, side: float, point: tuple[float, float]) -> bool:
    """Return whether ``point`` lies strictly inside the square at ``x, y`` (edges are outside)."""
    return x < point[0] < x + side and y < point[1] < y + side


def _place_clear(
    need: Box,
    points: list[tuple[float, float]],
    side: float,
    bounds: tuple[int, int] | None,
    preferred: Box,
) -> tuple[float, float] | None:
    """Return the top-left of a ``side`` square holding ``need`` and no point inside, nearest
    ``preferred``'s centre; None when there is none. ``bounds`` keeps it inside the image.

    A clear square, slid left (up) until it meets a bound or a point's column (row), stays
    clear, so the positions worth trying are those edges: the answer is exact.
    """
    lo_x, hi_x = need.right - side, need.left
    lo_y, hi_y = need.bottom - side, need.top
    if bounds is not None:
        lo_x, hi_x = max(lo_x, 0.0), min(hi_x, bounds[0] - side)
        lo_y, hi_y = max(lo_y, 0.0), min(hi_y, bounds[1] - side)
    # need.right - need.width can differ from need.left in the last bit: not a real gap.
    if lo_x > hi_x + _EPSILON or lo_y > hi_y + _EPSILON:
        return None
    hi_x, hi_y = max(hi_x, lo_x), max(hi_y, lo_y)
    cx, cy = centre(preferred)
    want_x = min(max(cx - side / 2, lo_x), hi_x)
    want_y = min(max(cy - side / 2, lo_y), hi_y)
    xs = {want_x, lo_x, hi_x} | {v for x, _ in points for v in (x, x - side) if lo_x <= v <= hi_x}
    ys = {want_y, lo_y, hi_y} | {v for _, y in points for v in (y, y - side) if lo_y <= v <= hi_y}
    clear = [(x, y) for x in xs for y in ys if not any(_inside(x, y, side, p) for p in points)]
    if not clear:
        return None
    return min(clear, key=lambda c: (abs(c[0] - want_x) + abs(c[1] - want_y), c[0], c[1]))
