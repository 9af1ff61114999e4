"""Box maths between frames, checked against Pillow's own orientation handling."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from faceset.crop import geometry
from faceset.crop.decode import EXIF_ORIENTATION
from faceset.demo.images import stored
from faceset.model import Box


@pytest.mark.parametrize("orientation", range(1, 9))
def test_to_stored_maps_a_box_onto_the_same_pixels_pillow_shows(orientation: int) -> None:
    rng = np.random.default_rng(orientation)
    upright = Image.fromarray(rng.integers(0, 255, size=(60, 80, 3), dtype=np.uint8))
    raw = stored(upright, orientation)
    raw.getexif()[EXIF_ORIENTATION] = orientation
    assert np.array_equal(np.asarray(ImageOps.exif_transpose(raw)), np.asarray(upright))
    box = Box(13, 7, 41, 29)

    mapped = geometry.to_stored(box, upright.width, upright.height, orientation)

    region = raw.crop((int(mapped.left), int(mapped.top), int(mapped.right), int(mapped.bottom)))
    turned = region.transpose(_UPRIGHT[orientation]) if orientation != 1 else region
    expected = upright.crop((13, 7, 41, 29))
    assert np.array_equal(np.asarray(turned), np.asarray(expected))


_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def test_window_is_centred_square_and_inside_the_photo() -> None:
    w = geometry.window(Box(900, 500, 1100, 700), 2000, 1500, 0.4, pad=False)

    assert (w.left, w.top, w.right, w.bottom) == (750, 350, 1250, 850)


def test_window_larger_than_the_photo_shrinks_to_it_unless_padding() -> None:
    face = Box(300, 200, 500, 400)

    shrunk = geometry.window(face, 800, 600, 0.25, pad=False)
    padded = geometry.window(face, 800, 600, 0.25, pad=True)

    assert shrunk.width == 600
    assert (shrunk.left, shrunk.top) == (100, 0)
    assert padded.width == 800
    assert padded.top < 0


def test_clear_window_keeps_the_face_whole_and_every_other_centre_out() -> None:
    rng = np.random.default_rng(3)
    found = 0
    for _ in range(200):
        cx, cy, side = rng.uniform(300, 1700), rng.uniform(300, 1200), rng.uniform(60, 250)
        face = Box(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        others = [
            Box(x - 50, y - 50, x + 50, y + 50)
            for x, y in rng.uniform([0, 0], [2000, 1500], size=(int(rng.integers(1, 4)), 2))
        ]

        w = geometry.clear_window(face, others, 2000, 1500, 0.4, pad=False)

        if w is None:
            continue
        found += 1
        assert w.width == w.height
        assert w.left <= face.left
        assert w.right >= face.right
        assert w.top <= face.top
        assert w.bottom >= face.bottom
        assert 0 <= w.left
        assert w.right <= 2000
        assert 0 <= w.top
        assert w.bottom <= 1500
        for o in others:
            x, y = geometry.centre(o)
            inside_face = face.left <= x <= face.right and face.top <= y <= face.bottom
            assert inside_face or not (w.left <= x < w.right and w.top <= y < w.bottom)
    assert found > 150  # most random scenes have a clear window: the check is not vacuous


def test_is_usable_rejects_empty_and_outside_boxes() -> None:
    from faceset.model import RelBox

    assert geometry.is_usable(RelBox(0.9, 0.9, 0.3, 0.3))
    assert not geometry.is_usable(RelBox(1.0, 0.2, 0.1, 0.1))
    assert not geometry.is_usable(RelBox(0.2, 0.2, 0.0, 0.1))
    assert not geometry.is_usable(RelBox(float("nan"), 0.2, 0.1, 0.1))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_to_oriented_undoes_to_stored(orientation: int) -> None:
    box = Box(13, 7, 41, 29)
    width, height = 80, 60

    stored_box = geometry.to_stored(box, width, height, orientation)

    assert geometry.to_oriented(stored_box, width, height, orientation) == box


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("step", [2, 4, 8])
def test_snapped_window_lies_on_the_scaled_grid_inside_the_window(
    orientation: int, step: int
) -> None:
    width, height = 4000, 3000
    window = Box(741, 289, 741 + 2423, 289 + 2423)

    snapped = geometry.snap_inside(window, step, width, height, orientation)

    stored_box = geometry.to_stored(snapped, width, height, orientation)
    edges = (stored_box.left, stored_box.top, stored_box.right, stored_box.bottom)
    assert all(edge % step == 0 for edge in edges), edges
    assert snapped.width == snapped.height
    assert window.width - 2 * step < snapped.width <= window.width
    assert window.left <= snapped.left
    assert snapped.right <= window.right
    assert window.top <= snapped.top
    assert snapped.bottom <= window.bottom
    # Trimmed about evenly: the face stays where the framing put it.
    assert abs(geometry.centre(snapped)[0] - geometry.centre(window)[0]) <= step


def test_a_window_too_small_for_the_grid_is_left_as_it_is() -> None:
    window = Box(1, 1, 6, 6)

    assert geometry.snap_inside(window, 8, 100, 100, 1) == window
