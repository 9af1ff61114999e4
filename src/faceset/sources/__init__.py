"""Sources: where faces come from. Each returns the shared data model of :mod:`faceset.model`."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

from faceset import redaction
from faceset.errors import ConfigError
from faceset.model import Face, Person
from faceset.sources.config import LibraryConfig


class Source(Protocol):
    """A photo library that knows people and their face boxes."""

    name: str
    roots: dict[str, Path]
    """Directory of each root that the library's file names are relative to."""

    def people(self) -> list[Person]: ...

    def count_faces(
        self, person: Person, *, confirmed_only: bool = False, include_archived: bool = False
    ) -> int: ...

    def faces(
        self, person: Person, *, confirmed_only: bool = False, include_archived: bool = False
    ) -> Iterator[Face]: ...

    def close(self) -> None: ...


# Where each API source's credentials may come from, besides token_file; first found wins.
TOKEN_VARIABLES = {
    "photoprism-api": ("FACESET_PHOTOPRISM_TOKEN", "FACESET_TOKEN"),
    "immich": ("IMMICH_API_KEY", "FACESET_TOKEN"),
}
# The servers' own variables for their address (PhotoPrism's .env, Immich's CLI).
URL_VARIABLES = {"photoprism-api": "PHOTOPRISM_SITE_URL", "immich": "IMMICH_INSTANCE_URL"}
# Database passwords: Immich's .env calls it DB_PASSWORD.
PASSWORD_VARIABLES = ("FACESET_DB_PASSWORD", "DB_PASSWORD")


def open_source(
    library: LibraryConfig, environ: Mapping[str, str] | None = None, *, allow_writes: bool = False
) -> Source:
    """Return the library that the settings point at; raise ConfigError when one is incomplete.

    ``environ`` (default: the process environment) supplies tokens and passwords that were not
    given in files, so they never appear on a command line. ``allow_writes`` opens PhotoPrism's
    API so that :meth:`~faceset.sources.photoprism_api.PhotoPrismAPI.unassign` may write; every
    other source is read-only whatever it says.
    """
    env = os.environ if environ is None else environ
    kind = library.source
    if allow_writes and kind != "photoprism-api":
        raise ConfigError(f"faceset writes nothing to {kind}; only photoprism-api takes feedback")
    if kind == "photoprism":
        if not library.db:
            raise ConfigError(
                "no library given: pass --db (sqlite:///.../index.db or mysql+pymysql://...) or"
                " set PHOTOPRISM_DATABASE_DRIVER"
            )
        from faceset.sources.photoprism_db import PhotoPrismDB

        return PhotoPrismDB(library.db, library.roots(), password_from=library.password_from)
    if kind in ("photoprism-api", "immich"):
        return _open_api(library, env, allow_writes)
    if kind == "xmp":
        if library.originals is None:
            raise ConfigError("no photo folder: pass --originals DIR with the photos to read")
        if not library.originals.is_dir():
            raise ConfigError(f"{library.originals} is not a folder")
        from faceset.sources.xmp import XmpFolder

        return XmpFolder(library.originals, library.xmp_frame)
    if not library.db:
        example = {
            "immich-db": "postgresql://postgres@127.0.0.1:5432/immich",
            "digikam": "sqlite:///home/me/Pictures/digikam4.db",
        }[kind]
        raise ConfigError(f"no {kind} database given: pass --db, e.g. {example}")
    url = _with_password(library, env)
    if kind == "immich-db":
        from faceset.sources.immich_db import ImmichDB

        return ImmichDB(url, library.originals, library.server_path)
    from faceset.sources.digikam import DigiKamDB

    return DigiKamDB(url, library.originals, library.server_path)


def _open_api(library: LibraryConfig, env: Mapping[str, str], allow_writes: bool) -> Source:
    from faceset.sources.download_cache import server_folder

    kind = library.source
    url = library.url or env.get(URL_VARIABLES[kind])
    if not url:
        raise ConfigError(f"no server address for {kind}: pass --url http://host:port")
    token = read_token(library, env)
    folder = server_folder(library.cache, kind, url)
    if kind == "immich":
        from faceset.sources.immich_api import ImmichAPI

        return ImmichAPI(url, token, folder, timeout=library.timeout, ca_file=library.ca_file)
    from faceset.sources.photoprism_api import PhotoPrismAPI

    return PhotoPrismAPI(
        url,
        token,
        folder,
        timeout=library.timeout,
        ca_file=library.ca_file,
        allow_writes=allow_writes,
    )


def read_token(library: LibraryConfig, env: Mapping[str, str]) -> str:
    """Return the API token from ``token_file`` or the environment; raise ConfigError if none."""
    if library.token_file is not None:
        try:
            token = library.token_file.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(
                f"cannot read the token file {library.token_file}: {e.strerror}"
            ) from None
        if not token:
            raise ConfigError(f"the token file {library.token_file} is empty")
        redaction.remember(token)
        return token
    names = TOKEN_VARIABLES[library.source]
    for name in names:
        if env.get(name, "").strip():
            redaction.remember(env[name].strip())
            return env[name].strip()
    raise ConfigError(
        f"no token for {library.source}: put it in a file and pass --token-file FILE, or set"
        f" {names[0]}"
    )


def _with_password(library: LibraryConfig, env: Mapping[str, str]) -> str:
    """Return the database URL with a password from db_password_file or the environment."""
    from faceset.sources.database import parse_url, with_password

    assert library.db is not None
    url = parse_url(library.db, library.source, "a SQLAlchemy URL")
    password = next((env[n] for n in PASSWORD_VARIABLES if env.get(n)), None)
    if library.db_password_file is not None:
        try:
            password = library.db_password_file.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(
                f"cannot read the password file {library.db_password_file}: {e.strerror}"
            ) from None
    # Immich's and digiKam's database passwords: never written, like PhotoPrism's (config.py).
    redaction.remember(password)
    redaction.remember(None if url.password is None else str(url.password))
    return with_password(url, password).render_as_string(hide_password=False)
