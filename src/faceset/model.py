"""The plain data passed between stages: people, faces, boxes and per-face outcomes.

Frames: a *relative* box is a fraction of the oriented image (PhotoPrism's ``x, y, w, h``); a
:class:`Box` is in pixels of a named frame, stated wherever one is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Person:
    """A named person (PhotoPrism subject) and how many usable faces the library holds."""

    uid: str
    name: str
    alias: str = ""
    slug: str = ""
    hidden: bool = False
    private: bool = False
    excluded: bool = False
    faces: int = 0
    confirmed: int = 0


@dataclass(frozen=True, slots=True)
class RelBox:
    """A box as fractions of the oriented image: top-left ``x, y`` and size ``w, h``."""

    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True, slots=True)
class Box:
    """A box in pixels, ``left, top, right, bottom``; the frame is named where it is used."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    def as_list(self, ndigits: int = 1) -> list[float]:
        return [round(v, ndigits) for v in (self.left, self.top, self.right, self.bottom)]


ROOT_NAMES = {"/": "originals"}
"""How output files name a library root: PhotoPrism's file_root '/' is the originals folder."""


def root_name(root: str) -> str:
    """Return the name of a library root as a reader of the manifest understands it."""
    return ROOT_NAMES.get(root, root)


@dataclass(frozen=True, slots=True)
class Face:
    """One face box of one person on one file, as the library recorded it."""

    marker_uid: str
    file_uid: str
    photo_uid: str
    subject_uid: str
    subject_name: str
    root: str
    """The library root the file lives under (PhotoPrism ``file_root``: ``/``, ``sidecar``...)."""
    file_name: str
    """Path of the file relative to its root."""
    box: RelBox
    file_hash: str = ""
    file_width: int = 0
    """Width after orientation, as indexed; 0 when unknown."""
    file_height: int = 0
    file_type: str = ""
    detected: bool = True
    """Found by the detector (pixel-square box) rather than drawn by hand."""
    confirmed: bool = False
    """Named by the user rather than matched automatically."""
    score: int = 0
    size: int = 0
    quality: int = 0
    face_dist: float = -1.0
    taken_at: datetime | None = None
    others: tuple[RelBox, ...] = ()
    """Every other face box on the same file (named or not), relative like ``box``."""
    embedding: tuple[float, ...] | None = None
    """The library's own face embedding (PhotoPrism: 512-d FaceNet), when it has one."""
    box_problem: str = ""
    """Why the source itself cannot trust ``box`` (the crop stage reports it as ``bad_box``)."""


class Status(StrEnum):
    WRITTEN = "written"
    KEPT = "kept"
    SKIPPED = "skipped"
    FAILED = "failed"


class Reason(StrEnum):
    """Why a face produced no new image; skips are policy, failures are broken inputs."""

    TOO_SMALL = "too_small"
    STALE_MARKER = "stale_marker"
    FILE_CHANGED = "file_changed"
    BAD_BOX = "bad_box"
    UNSAFE_PATH = "unsafe_path"
    UNKNOWN_ROOT = "unknown_root"
    MISSING_FILE = "missing_file"
    UNREADABLE = "unreadable"
    CORRUPT = "corrupt"
    ERROR = "error"
    TOO_LARGE = "too_large"
    """The photo claims more pixels than faceset decodes (a bomb, or a broken header)."""
    CRASHED = "crashed"
    """The face's worker process died (a decoder crash, the OOM killer) when it ran alone."""
    CROWDED = "crowded"
    TOO_OLD = "too_old"

    @property
    def is_failure(self) -> bool:
        return self in _FAILURES


_FAILURES = frozenset(
    {
        Reason.MISSING_FILE,
        Reason.UNREADABLE,
        Reason.CORRUPT,
        Reason.ERROR,
        Reason.TOO_LARGE,
        Reason.CRASHED,
    }
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one face: an image written or kept, or the reason there is none."""

    face: Face
    status: Status
    image: str = ""
    """Path of the output image relative to the output folder."""
    reason: Reason | None = None
    detail: str = ""
    box: Box | None = None
    """The face box in oriented source pixels, clamped to the image."""
    crop: Box | None = None
    """The window cut from the oriented source before resizing."""
    others: tuple[Box, ...] = ()
    """Other faces on the photo, oriented source pixels, clamped (for masks)."""
    warnings: tuple[str, ...] = ()


@dataclass(slots=True)
class Summary:
    """Counts of one export run."""

    found: int = 0
    written: int = 0
    kept: int = 0
    removed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        if outcome.status is Status.WRITTEN:
            self.written += 1
        elif outcome.status is Status.KEPT:
            self.kept += 1
        elif outcome.reason is not None:
            counts = self.failed if outcome.status is Status.FAILED else self.skipped
            counts[outcome.reason.value] = counts.get(outcome.reason.value, 0) + 1

    @property
    def images(self) -> int:
        return self.written + self.kept
