"""Measure each candidate face on the pixels its training crop would have."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image

from faceset.crop import CropJob
from faceset.crop.render import Framed, frame_face
from faceset.model import Box, Face, Outcome, Reason, Status
from faceset.select import face_model

# Sharpness and hashes are measured on the face resized to this side: normalised for size.
FACE_SIDE = 128
THUMB_SIDE = 160
# Luma values this close to 0 or 255 count as clipped.
CLIP_MARGIN = 6


@dataclass(frozen=True, slots=True)
class FaceStats:
    """Measurements of one face, in the crop the training set would get."""

    face_px: float
    """Face box side in oriented source pixels."""
    window_px: float
    """Side of the crop window in oriented source pixels."""
    sharpness: float
    """Variance of the Laplacian of the face at 128 px."""
    brightness: float
    """Mean luma of the face, 0-255."""
    clipped: float
    """Fraction of face pixels near black or white."""
    outside: float
    """Fraction of the library's box that lies outside the photo."""
    crowding: float
    """Distance from the face to the nearest other face, in face sides (inf when alone)."""
    phash: int
    thumb: bytes
    """A JPEG of the crop for the report."""
    found: bool | None = None
    """Whether the local detector confirmed a face there (None: not run)."""
    embedding: tuple[float, ...] | None = None
    """The local model's embedding (only where the library had none)."""
    yaw: float | None = None


@dataclass(frozen=True, slots=True)
class AnalysisJob:
    crop: CropJob
    local_model: bool


@dataclass(frozen=True, slots=True)
class Analysis:
    """One candidate face: its measurements, or the problem that prevented them."""

    face: Face
    stats: FaceStats | None = None
    problem: Outcome | None = None


def analyze_face(job: AnalysisJob) -> Analysis:
    """Return the measurements of one face (runs in a worker process)."""
    face = job.crop.face
    framed = frame_face(job.crop)
    if isinstance(framed, Outcome):
        return Analysis(face, problem=framed)
    try:
        image = framed.read(job.crop.settings.size)
    except (OSError, SyntaxError, ValueError) as e:
        return Analysis(
            face, problem=Outcome(face, Status.FAILED, reason=Reason.CORRUPT, detail=str(e))
        )
    return Analysis(face, stats=_measure(face, framed, image, job.local_model))


def _measure(face: Face, framed: Framed, image: Image.Image, local_model: bool) -> FaceStats:
    scale = image.width / framed.window.width
    w = framed.window
    in_crop = Box(
        (framed.box.left - w.left) * scale,
        (framed.box.top - w.top) * scale,
        (framed.box.right - w.left) * scale,
        (framed.box.bottom - w.top) * scale,
    )
    region = image.crop(
        (round(in_crop.left), round(in_crop.top), round(in_crop.right), round(in_crop.bottom))
    )
    gray = np.asarray(
        region.convert("L").resize((FACE_SIDE, FACE_SIDE), Image.Resampling.LANCZOS),
        dtype=np.float64,
    )
    thumb = io.BytesIO()
    image.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS).save(thumb, "JPEG", quality=85)
    raw = face.box
    inside = max(0.0, min(1.0, raw.x + raw.w) - max(0.0, raw.x)) * max(
        0.0, min(1.0, raw.y + raw.h) - max(0.0, raw.y)
    )
    described = face_model.describe(np.asarray(image), in_crop) if local_model else None
    return FaceStats(
        face_px=max(framed.box.width, framed.box.height),
        window_px=framed.window.width,
        sharpness=_laplacian_variance(gray),
        brightness=float(gray.mean()),
        clipped=float(((gray < CLIP_MARGIN) | (gray > 255 - CLIP_MARGIN)).mean()),
        outside=1.0 - inside / (raw.w * raw.h) if raw.w * raw.h > 0 else 1.0,
        crowding=_crowding(framed.box, framed.others),
        phash=int(str(imagehash.phash(region)), 16),
        thumb=thumb.getvalue(),
        found=described.found if described else None,
        embedding=described.embedding if described and face.embedding is None else None,
        yaw=described.yaw if described else None,
    )


def _laplacian_variance(gray: np.ndarray) -> float:
    lap = (
        -4 * gray[1:-1, 1:-1] + gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:]
    )
    return float(lap.var())


def _crowding(face: Box, others: tuple[Box, ...]) -> float:
    side = max(face.width, face.height, 1.0)
    cx, cy = (face.left + face.right) / 2, (face.top + face.bottom) / 2
    distances = [
        math.hypot((o.left + o.right) / 2 - cx, (o.top + o.bottom) / 2 - cy) / side for o in others
    ]
    return min(distances, default=math.inf)
