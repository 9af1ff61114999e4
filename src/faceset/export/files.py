"""File writes that a re-run can repeat: atomic, and skipped when the content is already there."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

CHUNK = 1 << 20


def same_bytes(a: Path, b: Path) -> bool:
    """Return whether two files hold the same bytes."""
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            chunk = fa.read(CHUNK)
            if chunk != fb.read(CHUNK):
                return False
            if not chunk:
                return True


def write_bytes(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically unless it already holds it; return whether the
    content changed."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def link(source: Path, target: Path) -> bool:
    """Make ``target`` a hard link to ``source`` (a copy where the file system refuses links);
    return whether ``target``'s content changed.

    A link costs no space and follows the crop in place; a file replaced under ``faces/`` is a
    new inode, which the next run sees and links again.
    """
    same = False
    if target.is_file():
        if os.path.samefile(source, target):
            return False
        same = same_bytes(source, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(target)
    try:
        try:
            os.link(source, tmp)
        except OSError:
            if same:
                return False  # a copy with the right bytes: nothing to gain by copying again
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return not same


def remove(path: Path) -> bool:
    """Delete a file if it exists; return whether it did."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")
