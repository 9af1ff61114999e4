"""Resolve a library's root-relative file names to paths, refusing any that escape the root."""

from __future__ import annotations

import os
from pathlib import Path


class UnsafePath(ValueError):
    """A file name that would resolve outside its root."""


class RootResolver:
    """Resolves many file names under their roots, resolving each folder's symlinks only once.

    ``Path.resolve`` per file costs an lstat per path component: most of planning a 100,000-face
    library (bench/plan.py). Photos share a few hundred folders, so folders are resolved once
    and each file costs one lstat. Use one resolver per run: links changed later are not seen.
    """

    def __init__(self) -> None:
        self._real: dict[str, str] = {}

    def resolve(self, root: Path, file_name: str) -> Path:
        """Return ``root / file_name``; raise UnsafePath for absolute names, '..' or symlinks out."""
        parts = file_name.split("/")
        if "" in parts or "." in parts:  # 'a//b', './a', 'a/': PhotoPrism writes none of these
            parts = [p for p in parts if p and p != "."]
        if not parts or file_name.startswith("/") or ".." in parts:
            raise UnsafePath(f"file name {file_name!r} is not a plain path inside its root")
        top = os.fspath(root)
        path = f"{top.rstrip('/')}/{'/'.join(parts)}"
        inside = self._folder(top)
        if not _within(self._folder(path.rpartition("/")[0] or "/"), inside) or (
            os.path.islink(path) and not _within(os.path.realpath(path), inside)
        ):
            raise UnsafePath(f"{file_name!r} leads outside {root} (through a symlink)")
        return Path(path)

    def _folder(self, folder: str) -> str:
        real = self._real.get(folder)
        if real is None:
            real = self._real[folder] = os.path.realpath(folder)
        return real


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def resolve_in_root(root: Path, file_name: str) -> Path:
    """Return ``root / file_name``; raise UnsafePath for absolute names, '..' or symlinks out."""
    return RootResolver().resolve(root, file_name)
