"""Cut one face out of its photo and write it: the per-photo work, safe to run in a worker."""

from __future__ import annotations

import hashlib
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from faceset.crop import geometry, libjpeg
from faceset.crop.decode import (
    DAMAGED,
    JPEG_FORMATS,
    Photo,
    TooLarge,
    dct_scale,
    open_photo,
    read_window,
    upright,
)
from faceset.crop.job import CropJob
from faceset.model import Box, Face, Outcome, Reason, Status

# PhotoPrism's detector boxes are pixel squares; a box this far off square was measured on a
# differently oriented (or different) image. See docs on the pixel-square check.
SQUARE_TOLERANCE = 0.10
# Below this aspect ratio a swapped width/height still looks square: the check cannot tell.
MIN_ASPECT_FOR_SQUARE_CHECK = 1.1


@dataclass(slots=True)
class Framed:
    """A face ready to read: the opened photo and the window chosen for it (oriented pixels)."""

    photo: Photo
    box: Box
    window: Box
    others: tuple[Box, ...]
    warnings: tuple[str, ...]
    allow_damaged: bool = False

    def read(self, size: int) -> Image.Image:
        """Return the window as an upright RGB sRGB image of ``size`` x ``size`` pixels.

        Raises OSError for corrupt data (libjpeg's warnings too, unless ``allow_damaged``:
        then ``info[DAMAGED]`` counts them).
        """
        width, height = geometry.oriented_size(
            self.photo.width, self.photo.height, self.photo.orientation
        )
        stored = geometry.to_stored(self.window, width, height, self.photo.orientation)
        window = read_window(self.photo, stored, size, allow_damaged=self.allow_damaged)
        image = upright(window, self.photo.orientation)
        image.info.update(window.info)
        return image


def crop_face(job: CropJob) -> Outcome:
    """Return the outcome of cropping one face; per-photo problems become reasons, not raises.

    Anything raised for one face (a NUL byte in a file name, a MemoryError on a bomb, a bug) is
    that face's ``error``: the run goes on and writes its manifest and report.
    """
    try:
        return _crop_face(job)
    except Exception as e:  # one face's failure, whatever it is, is not the run's
        return _problem(job.face, Reason.ERROR, f"{type(e).__name__}: {e}")


def crashed(job: CropJob) -> Outcome:
    """The outcome of a face whose worker process died while cropping it alone."""
    return _problem(
        job.face,
        Reason.CRASHED,
        "the worker cropping this face died (a decoder crash or out of memory)",
    )


def _crop_face(job: CropJob) -> Outcome:
    framed = frame_face(job)
    if isinstance(framed, Outcome):
        return framed
    face = job.face
    try:
        image = framed.read(job.settings.size)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        return _undecodable(job, e)
    warnings = framed.warnings
    if image.info.get(DAMAGED):
        warnings += (
            f"libjpeg warned {image.info[DAMAGED]} time(s) of corrupt data; cropped anyway"
            " (--allow-damaged): check the image",
        )
    write_jpeg(image, job.output, job.settings.quality)
    return Outcome(
        face,
        Status.WRITTEN,
        image=job.image,
        box=framed.box,
        crop=framed.window,
        others=framed.others,
        warnings=warnings,
    )


_ARITHMETIC_SOF = frozenset(b"\xc9\xca\xcb\xcd\xce\xcf")
"""Start-of-frame markers of arithmetic-coded JPEGs (ITU T.81 table B.1)."""


def _undecodable(job: CropJob, error: BaseException) -> Outcome:
    """The outcome of a photo that would not decode: ``corrupt``, unless it is a JPEG coding
    that only the fast path reads (arithmetic: Pillow's libjpeg lacks it) and says "broken
    data stream" about, which is not damage."""
    try:
        head = read_regular(job.source)[:65536]
    except OSError:
        head = b""
    if head[:2] == b"\xff\xd8" and _arithmetic(head):
        # Pillow was the reader: libjpeg-turbo is missing, or the fast path does not take this
        # photo (progressive, or a --pad window past the edge).
        detail = "unsupported JPEG coding (arithmetic): " + (
            "only the fast path reads it, and it takes baseline JPEGs with the crop inside the photo"
            if libjpeg.available()
            else "install libjpeg-turbo (libjpeg62-turbo)"
        )
        return _problem(job.face, Reason.UNREADABLE, detail)
    return _problem(job.face, Reason.CORRUPT, f"cannot decode image: {error}")


def _arithmetic(data: bytes) -> bool:
    """Return whether the JPEG's frame header says arithmetic coding."""
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker, length = data[at + 1], int.from_bytes(data[at + 2 : at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return marker in _ARITHMETIC_SOF
        at += 2 + length
    return False


class NotRegularFile(OSError):
    """The path names a FIFO, a device or a socket: reading it could block forever."""


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}  # fmt: skip


def read_regular(path: Path) -> bytes:
    """Return the bytes of the regular file at ``path``; NotRegularFile for anything else.

    Opened non-blocking and checked on the open descriptor: a FIFO in place of a photo would
    otherwise block the read forever, and a check before opening could be raced.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(_KINDS.get(stat.S_IFMT(mode), "not a regular file"))
        return f.read()


def frame_face(job: CropJob) -> Framed | Outcome:
    """Return the face's photo opened and framed, or the outcome that says why it cannot be."""
    face = job.face
    try:
        data = read_regular(job.source)
    except FileNotFoundError:
        return _problem(face, Reason.MISSING_FILE, f"file not found: {job.source}")
    except NotRegularFile as e:
        return _problem(face, Reason.UNREADABLE, f"{job.source} is {e}, not a photo file")
    except OSError as e:
        return _problem(face, Reason.UNREADABLE, f"cannot read {job.source}: {e.strerror or e}")
    if face.file_hash and not job.settings.allow_changed:
        actual = hashlib.sha1(data, usedforsecurity=False).hexdigest()
        if actual != face.file_hash.lower():
            return _problem(
                face,
                Reason.FILE_CHANGED,
                f"file content changed since indexing (sha1 {actual[:12]}, index {face.file_hash[:12]});"
                " re-index in PhotoPrism or pass --allow-changed",
            )
    try:
        return _frame(job, open_photo(data))
    except TooLarge as e:
        return _problem(face, Reason.TOO_LARGE, str(e))
    except UnidentifiedImageError:
        return _problem(face, Reason.UNREADABLE, "not an image format faceset can read")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        return _undecodable(job, e)


def _frame(job: CropJob, photo: Photo) -> Framed | Outcome:
    face, settings = job.face, job.settings
    width, height = geometry.oriented_size(photo.width, photo.height, photo.orientation)
    warnings: list[str] = []
    if face.file_width and (face.file_width, face.file_height) != (width, height):
        sizes = (
            f"decodes as {width}x{height} but was indexed as {face.file_width}x{face.file_height}"
        )
        if not settings.allow_damaged:
            # A header that lies about the size (30000 x 30000 on a 1920 x 1440 photo) decodes
            # as flat grey: not a crop to train on.
            return _problem(face, Reason.CORRUPT, f"{sizes}; re-index it, or pass --allow-damaged")
        warnings.append(sizes)
    rel = face.box
    if not all(map(math.isfinite, (rel.x, rel.y, rel.w, rel.h))):
        return _problem(face, Reason.BAD_BOX, "the box has a missing or non-numeric coordinate")
    if face.box_problem:
        return _problem(face, Reason.BAD_BOX, face.box_problem)
    if not geometry.is_usable(face.box):
        return _problem(face, Reason.BAD_BOX, f"box {face.box} lies outside the photo")
    aspect = max(width, height) / min(width, height)
    if face.detected and aspect >= MIN_ASPECT_FOR_SQUARE_CHECK:
        ratio = geometry.pixel_aspect(face.box, width, height)
        if abs(ratio - 1) > SQUARE_TOLERANCE:
            return _problem(
                face,
                Reason.STALE_MARKER,
                f"detected box is {ratio:.2f}:1 in this {width}x{height} file, not square:"
                " the file was rotated or replaced after the face was found",
            )
    box = geometry.clamp(geometry.rel_to_px(face.box, width, height), width, height)
    others = tuple(
        geometry.clamp(geometry.rel_to_px(o, width, height), width, height)
        for o in face.others
        if geometry.is_usable(o)
    )
    if settings.avoid_others and others:
        found = geometry.clear_window(
            box, list(others), width, height, settings.face_ratio, settings.pad
        )
        if found is None:
            return Outcome(
                face,
                Status.SKIPPED,
                reason=Reason.CROWDED,
                detail=f"another face is too close: no square window holds this face without {len(others)} other(s)",
                box=box,
                others=others,
            )
        window = found
    else:
        window = geometry.window(box, width, height, settings.face_ratio, settings.pad)
    if photo.image.format in JPEG_FORMATS:
        scale = dct_scale(window.width, settings.size)
        if scale > 1:
            # On the grid of the scaled decode: a 2423 px window is read at 1/2 as 1211 whole
            # pixels, not at full size because half a pixel would be left over.
            window = geometry.snap_inside(window, scale, width, height, photo.orientation)
    if window.width < settings.size and not settings.upscale:
        return Outcome(
            face,
            Status.SKIPPED,
            reason=Reason.TOO_SMALL,
            detail=f"crop window {window.width:.0f} px is smaller than {settings.size} px;"
            " pass --upscale to enlarge it",
            box=box,
            crop=window,
            others=others,
        )
    return Framed(photo, box, window, others, tuple(warnings), settings.allow_damaged)


def write_jpeg(image: Image.Image, path: Path, quality: int) -> None:
    """Write ``image`` as a JPEG with no metadata, atomically: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # No exif= or icc_profile= arguments: nothing of the source's metadata is carried over.
        image.save(tmp, "JPEG", quality=quality, subsampling=0, optimize=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _problem(face: Face, reason: Reason, detail: str) -> Outcome:
    status = Status.FAILED if reason.is_failure else Status.SKIPPED
    return Outcome(face, status, reason=reason, detail=detail)
