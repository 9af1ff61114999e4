"""Export a library through any source and compare the crops with the PhotoPrism path's."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from faceset import config, pipeline
from faceset.demo.images import BOTTOM_LEFT, BOTTOM_RIGHT, TOP_LEFT, TOP_RIGHT
from factories import close, quadrant_colours

# Mean absolute difference (0-255) allowed between two crops of the same face: the windows are
# equal, but JPEG decoding at different DCT scales may differ in the last bits.
MAX_MEAN_DIFFERENCE = 2.0
# Immich's integer boxes on a half-size preview may move a box by a pixel or two.
BOX_TOLERANCE_PX = 2.0


def run_export(library: dict[str, Any], out: Path) -> pipeline.ExportResult:
    cfg = config.load(
        None,
        {"library": library, "crop": {"size": 256}, "export": {"out": out, "workers": 1}},
        environ={},
    )
    return pipeline.export(cfg, "Jane Doe")


def records(out: Path) -> list[dict[str, Any]]:
    lines = (out / "manifest.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def by_photo(out: Path, name_of: Callable[[str], str]) -> dict[str, dict[str, Any]]:
    """Return the manifest records keyed by the spec photo each came from."""
    return {name_of(r["source"]["path"]): r for r in records(out)}


def assert_face_upright(out: Path, rec: dict[str, Any]) -> None:
    """Check the face pattern inside the crop has its four colours where they belong."""
    image = Image.open(out / rec["image"]).convert("RGB")
    left, top, right, _ = rec["crop"]
    scale = image.width / (right - left)
    box = [(v - o) * scale for v, o in zip(rec["box"], (left, top, left, top), strict=True)]
    face = image.crop(tuple(round(v) for v in box))
    expected = [TOP_LEFT, TOP_RIGHT, BOTTOM_LEFT, BOTTOM_RIGHT]
    assert all(close(a, b) for a, b in zip(quadrant_colours(face), expected, strict=True))


def assert_same_crops(
    reference: dict[str, dict[str, Any]],
    ref_out: Path,
    other: dict[str, dict[str, Any]],
    other_out: Path,
) -> None:
    assert sorted(other) == sorted(reference)
    for name, ref in reference.items():
        rec = other[name]
        assert np.allclose(rec["box"], ref["box"], atol=BOX_TOLERANCE_PX), name
        assert np.allclose(rec["crop"], ref["crop"], atol=BOX_TOLERANCE_PX), name
        a = np.asarray(Image.open(ref_out / ref["image"]).convert("RGB"), dtype=np.float64)
        b = np.asarray(Image.open(other_out / rec["image"]).convert("RGB"), dtype=np.float64)
        assert a.shape == b.shape
        assert np.abs(a - b).mean() <= MAX_MEAN_DIFFERENCE, name
