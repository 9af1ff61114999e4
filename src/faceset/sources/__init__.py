"""Sources: where faces come from. Each returns the shared data model of :mod:`faceset.model`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from faceset.model import Face, Person


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
