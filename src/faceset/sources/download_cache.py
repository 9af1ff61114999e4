"""Local copies of files downloaded from a library server, reused between runs.

Each server gets its own folder (``<cache>/<source>/<host_port>``). A cached file whose SHA-1
still matches is used again; anything else is downloaded to a temporary name, verified and moved
into place, so a killed run never leaves half a file under a real name.

A verified file gets a stamp beside it (``.<name>.verified``: its SHA-1, size, modification time
and inode). While those still match, the file is not read again to re-hash it, so a re-run with
nothing new reads no photo, as git trusts its index for unchanged files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from faceset.sources.api_client import DownloadFailed
from faceset.sources.roots import resolve_in_root

log = logging.getLogger(__name__)


def default_base() -> Path:
    """Return ``$XDG_CACHE_HOME/faceset``, or ``~/.cache/faceset``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "faceset"


def server_folder(base: Path | None, source: str, url: str) -> Path:
    """Return the cache folder of one server: ``<base>/<source>/<host_port>``."""
    parts = urllib.parse.urlsplit(url)
    host = f"{parts.hostname or 'server'}_{parts.port or parts.scheme}"
    if parts.path.strip("/"):
        host += "_" + parts.path.strip("/")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", host)
    return (base or default_base()) / source / safe


def sha1_of(path: Path) -> str:
    """Return the hex SHA-1 of a file's bytes."""
    digest = hashlib.sha1(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class DownloadCache:
    """Files under ``folder``, each fetched once and checked by hash when one is known."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def fetch(
        self, name: str, sha1: str, download: Callable[[Path], None], *, what: str = ""
    ) -> Path | None:
        """Return the local path of ``name``, downloading it with ``download(tmp)`` if needed.

        ``sha1`` (hex, or '' when the server gives none) must match the file's bytes. Returns
        None when the file cannot be had; the reason is logged as a warning, and no stale copy is
        left under ``name``, so the crop stage reports the face's file as missing.
        """
        path = resolve_in_root(self.folder, name)
        sha1 = sha1.lower()
        if path.is_file() and (not sha1 or _verified(path, sha1)):
            return path
        path.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            download(tmp)
            if sha1 and (actual := sha1_of(tmp)) != sha1:
                raise DownloadFailed(f"sha1 {actual[:12]} is not the library's {sha1[:12]}")
            os.replace(tmp, path)
            if sha1:
                _stamp(path, sha1)
        except DownloadFailed as e:
            log.warning("cannot download %s: %s", what or name, e)
            return None
        finally:
            tmp.unlink(missing_ok=True)
        return path


def _stamp_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def _fingerprint(path: Path, sha1: str) -> str:
    st = path.stat()
    return f"{sha1} {st.st_size} {st.st_mtime_ns} {st.st_ino}\n"


def _stamp(path: Path, sha1: str) -> None:
    """Record that ``path`` was verified to have ``sha1``, as it is now."""
    try:
        _stamp_of(path).write_text(_fingerprint(path, sha1))
    except OSError as e:  # a cache that cannot hold stamps still works, hashing every time
        log.debug("cannot stamp %s: %s", path, e)


def _verified(path: Path, sha1: str) -> bool:
    """Return whether ``path`` holds ``sha1``: by its stamp when it is unchanged since verified,
    else by hashing it (and stamping it when it matches)."""
    try:
        if _stamp_of(path).read_text() == _fingerprint(path, sha1):
            return True
    except (OSError, UnicodeDecodeError):
        pass
    if sha1_of(path) != sha1:
        return False
    _stamp(path, sha1)
    return True
