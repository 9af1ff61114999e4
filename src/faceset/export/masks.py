"""Loss masks from the face boxes: the person's head and shoulders white, the rest a grey floor.

Trainers weight each pixel's loss by the mask: white trains fully, grey partly, black not at all
(kohya ``--masked_loss`` reads the R channel, OneTrainer ``-masklabel.png``, ai-toolkit
``mask_path``). Masks act at latent resolution, 1/8 of the image, so the region is grown well past
the face box and blurred; a tight box would lose hair, ears and jaw. Outside the person a floor
(20 % by default, as replicate/cog-sdxl's ``bias`` of 50/255) keeps some context in training.
Other people's faces are black: the LoRA must not learn them as the person.

Frames: boxes come in oriented source pixels (``left, top, right, bottom``, the manifest's
frame); :func:`to_image` maps them into the pixels of the written image, which is the ``crop``
window resized to the image size.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFilter

MASK_VERSION = 1
"""Bump when the drawing below changes: masks drawn by an older version are drawn again."""
BoxPx = tuple[float, float, float, float]
"""``left, top, right, bottom`` in pixels; the frame is named where one is used."""

# Head: an ellipse around the face box, taller above it for hair, a little below for the chin.
HEAD_SIDE = 0.8  # half-width, in face widths from the face centre
HEAD_ABOVE = 0.6  # face heights above the face box
HEAD_BELOW = 0.2  # face heights below the face box
# Neck and shoulders: a band below the chin, then an ellipse as wide as a pair of shoulders.
NECK_HALF_WIDTH = 0.45
SHOULDERS_HALF_WIDTH = 1.6
SHOULDERS_TOP = 0.45  # face heights below the face box
SHOULDERS_BOTTOM = 2.6
# Another person's face: their face box grown to cover their head.
OTHER_SIDE = 0.7
OTHER_ABOVE = 0.45
OTHER_BELOW = 0.15
# Growth and blur as fractions of the image side: 1/32 of 512 px is 16 px, two latent pixels.
GROW = 1 / 32
BLUR = 1 / 64


def to_image(box: Sequence[float], crop: Sequence[float], size: tuple[int, int]) -> BoxPx:
    """Return ``box`` (oriented source pixels) in the pixels of an image that is ``crop``
    (oriented source pixels) resized to ``size`` (width, height)."""
    left, top, right, bottom = (float(v) for v in crop)
    sx, sy = size[0] / (right - left), size[1] / (bottom - top)
    x0, y0, x1, y1 = (float(v) for v in box)
    return (x0 - left) * sx, (y0 - top) * sy, (x1 - left) * sx, (y1 - top) * sy


def head_and_shoulders(face: BoxPx, grow: float) -> list[list[tuple[float, float]] | BoxPx]:
    """Return the shapes covering a person's head and shoulders from their face box, each
    grown by ``grow`` pixels: ellipse bounding boxes (4-tuples) and polygons (point lists)."""
    x0, y0, x1, y1 = face
    w, h, cx = x1 - x0, y1 - y0, (x0 + x1) / 2
    head = (
        cx - HEAD_SIDE * w - grow,
        y0 - HEAD_ABOVE * h - grow,
        cx + HEAD_SIDE * w + grow,
        y1 + HEAD_BELOW * h + grow,
    )
    neck_top, neck_bottom = y1 - 0.1 * h, y1 + SHOULDERS_TOP * h + 0.5 * h
    nw = NECK_HALF_WIDTH * w + grow
    neck = [
        (cx - nw, neck_top),
        (cx + nw, neck_top),
        (cx + nw, neck_bottom),
        (cx - nw, neck_bottom),
    ]
    top = y1 + SHOULDERS_TOP * h
    shoulders = (
        cx - SHOULDERS_HALF_WIDTH * w - grow,
        top - grow,
        cx + SHOULDERS_HALF_WIDTH * w + grow,
        top + 2 * (SHOULDERS_BOTTOM - SHOULDERS_TOP) * h + grow,
    )
    return [head, neck, shoulders]


def other_head(face: BoxPx, grow: float) -> BoxPx:
    """Return the ellipse bounding box covering another person's head from their face box."""
    x0, y0, x1, y1 = face
    w, h, cx = x1 - x0, y1 - y0, (x0 + x1) / 2
    return (
        cx - OTHER_SIDE * w - grow,
        y0 - OTHER_ABOVE * h - grow,
        cx + OTHER_SIDE * w + grow,
        y1 + OTHER_BELOW * h + grow,
    )


def render_mask(
    size: tuple[int, int],
    face: BoxPx | None,
    others: Sequence[BoxPx] = (),
    floor: float = 0.2,
) -> Image.Image:
    """Return an 8-bit greyscale mask of ``size`` (width, height): 255 on the person's head and
    shoulders, ``floor`` (0-1) elsewhere, 0 on other faces. Boxes are in the image's pixels.
    Without a face box the whole image trains (all 255)."""
    if face is None:
        return Image.new("L", size, 255)
    side = min(size)
    grow, blur = side * GROW, side * BLUR
    mask = Image.new("L", size, round(floor * 255))
    draw = ImageDraw.Draw(mask)
    for shape in head_and_shoulders(face, grow):
        if isinstance(shape, tuple):
            draw.ellipse(shape, fill=255)
        else:
            draw.polygon(shape, fill=255)
    for other in others:
        draw.ellipse(other_head(other, grow / 2), fill=0)
    # The person's own face box always trains, even where another box overlaps it.
    draw.rectangle(face, fill=255)
    return mask.filter(ImageFilter.GaussianBlur(blur))
