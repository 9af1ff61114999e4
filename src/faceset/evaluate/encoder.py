"""The evaluation encoder: the largest face in any image, and its 128-d identity embedding.

It is the local face model of ``faceset[identity]`` (select/face_model.py): the yuface
detector and dlib's ResNet embedding, weights inside the PyPI wheels, nothing downloaded.
Selection used PhotoPrism's own FaceNet embeddings where the library had them, so evaluation
usually scores with an encoder the dataset was not chosen by (quality.md section 3, step 6).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from faceset.errors import FacesetError
from faceset.model import Box
from faceset.select import face_model

INSTALL = "pip install 'faceset[identity]'"
NAME = "dlib face_recognition_resnet_model_v1 (128-d), faces found by yuface"


class FaceModelMissing(FacesetError):
    """The local face model (faceset[identity]) is not installed."""


def require() -> None:
    """Raise FaceModelMissing, naming what to install, unless the face model is there."""
    if not face_model.available():
        raise FaceModelMissing(
            f"faceset eval needs the local face model (yuface, dlib, face_recognition_models): {INSTALL}"
        )


@dataclass(frozen=True, slots=True)
class FoundFace:
    """The largest face in an image."""

    embedding: np.ndarray
    """(128,) float64 identity embedding, as dlib computes it (not normalised)."""
    box: Box
    """Pixels of the image."""
    score: float
    """Detector confidence, 0-1."""


DETECT_SIDE = 640
"""Images are looked at with their long side at most this many pixels. yuface finds no face in
a 1024 px headshot (it warns above 960 px), and dlib aligns every face to 150 px anyway."""


def face_boxes(image: Image.Image) -> list[tuple[Box, float]]:
    """Return every face yuface finds in ``image``: (box in pixels, confidence 0-1), largest first."""
    pixels, scale = _pixels(image)
    return [(_scaled(box, 1 / scale), score) for box, score in _detect(pixels)]


def largest_face(
    image: Image.Image, boxes: list[tuple[Box, float]] | None = None
) -> FoundFace | None:
    """Return the largest face yuface finds in ``image`` with its embedding; None if none.

    The largest, because a headshot or a training crop is framed on its person: another face
    in it is smaller (crops move other people out of the window). ``boxes``: what
    :func:`face_boxes` returned for ``image``, to save detecting again.
    """
    pixels, scale = _pixels(image)
    found = _detect(pixels) if boxes is None else [(_scaled(b, scale), s) for b, s in boxes]
    if not found:
        return None
    box, score = found[0]
    # describe() detects again and keeps the detection at this box (IoU 1): the same face, with
    # the landmarks the embedding is aligned by.
    described = face_model.describe(pixels, box)
    if not described.found or described.embedding is None:
        return None
    return FoundFace(
        np.asarray(described.embedding, dtype=np.float64), _scaled(box, 1 / scale), score
    )


def _pixels(image: Image.Image) -> tuple[np.ndarray, float]:
    """Return RGB pixels of ``image`` with the long side at most DETECT_SIDE, and the scale."""
    rgb = image.convert("RGB")
    scale = min(1.0, DETECT_SIDE / max(rgb.size))
    if scale < 1.0:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    return np.ascontiguousarray(np.asarray(rgb)), scale


def _detect(pixels: np.ndarray) -> list[tuple[Box, float]]:
    import yuface

    _one_detector_thread()
    scores, boxes, _ = yuface.detect(np.ascontiguousarray(pixels[:, :, ::-1]))  # yuface wants BGR
    # yuface returns int16 boxes: widen before multiplying, or a large face overflows.
    found = [
        (Box(float(x), float(y), float(x) + float(w), float(y) + float(h)), float(s) / 100)
        for (x, y, w, h), s in zip(boxes, scores, strict=True)
    ]
    return sorted(found, key=lambda f: -f[0].width * f[0].height)


def _scaled(box: Box, scale: float) -> Box:
    if scale == 1.0:
        return box
    return Box(box.left * scale, box.top * scale, box.right * scale, box.bottom * scale)


@cache
def _one_detector_thread() -> None:
    """Run yuface's detector on one thread (of the calling thread, the one eval draws on).

    yuface ships its own libgomp, whose threads spin against torch's for the same cores: on a
    busy 2-core machine one 256 px detection took 0.1-0.4 s with the default threads and 0.01 s
    on one. One face image is too small a job to split anyway.
    """
    import yuface

    libs = Path(yuface.__file__).resolve().parent.parent / "yuface.libs"
    for lib in libs.glob("libgomp*.so*"):
        try:
            ctypes.CDLL(str(lib)).omp_set_num_threads(1)
        except (OSError, AttributeError):
            continue  # a build without its own OpenMP: nothing to tune
