"""What some sources can do beyond the Source protocol; callers check with isinstance."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from faceset.model import Face


@runtime_checkable
class HasEmbeddings(Protocol):
    """A library that stores its own face embeddings (PhotoPrism's database does)."""

    def with_embeddings(self, faces: list[Face]) -> list[Face]: ...
