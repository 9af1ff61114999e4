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


def largest_face(image: Image.Image) -> FoundFace | None:
    """Return the largest face yuface finds in ``image`` with its embedding; None if none.

    The largest, because a headshot or a training crop is framed on its person: another face
    in it is smaller (crops move other people out of the window).
    """
    import yuface

    _one_detector_thread()
    pixels = np.ascontiguousarray(np.asarray(image.convert("RGB")))
    scores, boxes, _ = yuface.detect(np.ascontiguousarray(pixels[:, :, ::-1]))  # yuface wants BGR
    if len(boxes) == 0:
        return None
    # yuface returns int16 boxes: widen before multiplying, or a large face overflows.
    areas = [int(w) * int(h) for _, _, w, h in boxes]
    best = int(np.argmax(areas))
    x, y, w, h = (float(v) for v in boxes[best])
    box = Box(x, y, x + w, y + h)
    # describe() detects again and keeps the detection at this box (IoU 1): the same face, with
    # the landmarks the embedding is aligned by.
    described = face_model.describe(pixels, box)
    if not described.found or described.embedding is None:
        return None
    return FoundFace(
        np.asarray(described.embedding, dtype=np.float64), box, float(scores[best]) / 100
    )


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
