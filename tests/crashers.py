"""Work functions for the pool tests; module-level so that worker processes can import them."""

from __future__ import annotations

import ctypes
import os
import signal

from faceset.crop.job import CropJob
from faceset.model import Outcome


def tenfold_but_segfault_on_3(x: int) -> int:
    if x == 3:
        os.kill(os.getpid(), signal.SIGSEGV)  # what a crashing libjpeg does to its process
    return x * 10


CRASH_PREFIX = "crash"


def crop_or_crash(job: CropJob) -> Outcome:
    """Crop as faceset does, except that a photo named crash* kills its worker with a real
    SIGSEGV in native code (a read of address 0), as a decoder bug would."""
    from faceset.crop.render import crop_face

    if job.face.file_name.startswith(CRASH_PREFIX):
        ctypes.string_at(0)
    return crop_face(job)
