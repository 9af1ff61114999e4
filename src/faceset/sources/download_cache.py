"""Local copies of files downloaded from a library server, reused between runs.

Each server gets its own folder (``<cache>/<source>/<host_port>``). A cached file whose SHA-1
still matches is used again; anything else is downloaded to a temporary name, verified and moved
into place, so a killed run never leaves half a file under a real name.
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
        if path.is_file() and (not sha1 or sha1_of(path) == sha1):
            return path
        path.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            download(tmp)
            if sha1 and (actual := sha1_of(tmp)) != sha1:
                raise DownloadFailed(f"sha1 {actual[:12]} is not the library's {sha1[:12]}")
            os.replace(tmp, path)
        except DownloadFailed as e:
            log.warning("cannot download %s: %s", what or name, e)
            return None
        finally:
            tmp.unlink(missing_ok=True)
        return path
