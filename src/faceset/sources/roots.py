"""Resolve a library's root-relative file names to paths, refusing any that escape the root."""

from __future__ import annotations

from pathlib import Path, PurePosixPath


class UnsafePath(ValueError):
    """A file name that would resolve outside its root."""


def resolve_in_root(root: Path, file_name: str) -> Path:
    """Return ``root / file_name``; raise UnsafePath for absolute names, '..' or symlinks out."""
    rel = PurePosixPath(file_name)
    if not file_name or rel.is_absolute() or ".." in rel.parts:
        raise UnsafePath(f"file name {file_name!r} is not a plain path inside its root")
    path = root.joinpath(*rel.parts)
    real = path.resolve()
    if not real.is_relative_to(root.resolve()):
        raise UnsafePath(f"{file_name!r} leads outside {root} (through a symlink)")
    return path
