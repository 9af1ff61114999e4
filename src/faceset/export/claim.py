"""The output folder of a run: made (or one line saying why not) and held by one run at a time.

Two exports writing into one folder interleave their images and manifests (one at 512 px, the
other at 384); an exclusive ``flock`` on ``<out>/.faceset.lock`` makes the second one stop at
once, saying which run holds the folder. The lock goes with the process, however it ends.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from faceset.errors import ConfigError

LOCK = ".faceset.lock"


@contextmanager
def claim_output(out: Path) -> Iterator[None]:
    """Create ``out`` if needed and hold it exclusively for the block.

    Raises ConfigError, in one line naming the folder, when it is a file, cannot be created or
    written, or another faceset run holds it.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; pass a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise ConfigError(f"cannot write to --out {out}: {e.strerror}") from None
    try:
        _lock(fd, out)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {datetime.now():%Y-%m-%d %H:%M:%S}".encode(), 0)
        sweep_temporaries(out)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


_TEMPORARY = re.compile(r"^\..+\.\d+\.(tmp|part)$")
"""``.<name>.<pid>.tmp``: a file being written atomically (export/files.py, crop/render.py)."""
SWEPT = ("", "faces", "holdout", "masks")


def sweep_temporaries(out: Path, folders: Iterable[str] = SWEPT) -> int:
    """Remove the temporary files that writes killed mid-way left in ``folders`` (relative to
    ``out``, "" for itself); return how many.

    Called with the folder's lock held: no other run is writing, so every one is stale.
    """
    removed = 0
    for sub in folders:
        with contextlib.suppress(OSError), os.scandir(out / sub) as entries:
            for entry in entries:
                if _TEMPORARY.match(entry.name) and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
    return removed


def _lock(fd: int, out: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no flock; one run at a time is then the user's to keep
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
        raise ConfigError(
            f"another faceset run ({holder}) is writing to {out}; wait for it to finish or pass"
            " another --out"
        ) from None
