"""Sources: where faces come from. Each returns the shared data model of :mod:`faceset.model`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class HasEmbeddings(Protocol):
    """A library that stores its own face embeddings (PhotoPrism's database does)."""

    def with_embeddings(self, faces: list[Face]) -> list[Face]: ...


def open_source(library: LibraryConfig) -> Source:
    """Return the library that the settings point at; raise ConfigError when none is given."""
    if not library.db:
        raise ConfigError(
            "no library given: pass --db (sqlite:///.../index.db or mysql+pymysql://...) or set"
            " PHOTOPRISM_DATABASE_DRIVER"
        )
    from faceset.sources.photoprism_db import PhotoPrismDB

    return PhotoPrismDB(library.db, library.roots())
