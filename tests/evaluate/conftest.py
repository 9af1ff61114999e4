"""Real photos the project may use, all public domain and all read from inside PyPI wheels: the
astronaut Eileen Collins (NASA) and the cameraman from scikit-image, and Rear Admiral Grace
Hopper's official U.S. Navy portrait (1984) from matplotlib's sample data.

One real photo per person exists, so "the same person" is the astronaut's portrait taken
differently (framing, mirror, light, colour, angle, sharpness): a weaker test than other photos
of her would be, and the strongest these sources allow.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

Edit = Callable[[Image.Image], Image.Image]


def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())  # type: ignore[no-untyped-call]


def grace_hopper() -> Image.Image:
    # Found on disk, not imported: matplotlib is only the carrier of the photo here.
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("matplotlib (the test extra) carries the second real face; it is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    with Image.open(folder / "mpl-data" / "sample_data" / "grace_hopper.jpg") as image:
        return image.convert("RGB")


def cameraman() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.camera()).convert("RGB")  # type: ignore[no-untyped-call]


def frame(box: tuple[int, int, int, int], size: int = 256) -> Edit:
    return lambda image: image.crop(box).resize((size, size), Image.Resampling.LANCZOS)


TRAIN_EDITS: list[Edit] = [
    frame((100, 0, 400, 300)),
    frame((120, 10, 380, 270)),
    lambda i: ImageEnhance.Brightness(frame((80, 0, 420, 340))(i)).enhance(0.75),
    lambda i: frame((110, 20, 370, 280))(i.rotate(6, resample=Image.Resampling.BICUBIC)),
]
HOLDOUT_EDITS: list[Edit] = [
    lambda i: ImageOps.mirror(frame((90, 0, 410, 320))(i)),
    lambda i: ImageOps.grayscale(frame((100, 10, 390, 300))(i)).convert("RGB"),
    lambda i: ImageEnhance.Color(frame((95, 5, 405, 315))(i)).enhance(0.4),
    lambda i: frame((100, 0, 400, 300))(i.rotate(-8, resample=Image.Resampling.BICUBIC)),
]
NEW_EDIT: Edit = lambda i: ImageOps.mirror(  # noqa: E731 - a look no real photo here has
    frame((70, 0, 430, 360), 320)(i).filter(ImageFilter.GaussianBlur(1.2))
)


@pytest.fixture(scope="session")
def photos() -> dict[str, list[Image.Image]]:
    """Training and held-out photos of the astronaut, a new look at her, and two strangers."""
    portrait = astronaut()
    return {
        "train": [edit(portrait) for edit in TRAIN_EDITS],
        "holdout": [edit(portrait) for edit in HOLDOUT_EDITS],
        "new": [NEW_EDIT(portrait)],
        "strangers": [grace_hopper(), cameraman()],
    }
