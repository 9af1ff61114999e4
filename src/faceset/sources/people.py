"""Find a person by what a user types: UID, name, alias or slug, in any case or accent."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable

from faceset.errors import PersonNotFound
from faceset.model import Person


def fold(text: str) -> str:
    """Return ``text`` case- and accent-folded with runs of whitespace made single spaces."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.split())


def slugify(text: str) -> str:
    """Return an approximation of PhotoPrism's slug (gosimple/slug): folded ASCII joined by '-'."""
    ascii_only = fold(text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_only).strip("-")


def resolve_person(people: Iterable[Person], query: str) -> Person:
    """Return the one person whose UID, name, alias or slug matches ``query``.

    Raises PersonNotFound naming the candidates when nobody or more than one person matches.
    """
    candidates = list(people)
    wanted = fold(query)
    if not wanted:
        raise PersonNotFound("--person is empty; faceset people lists the names to use")
    wanted_slug = slugify(query)
    levels = (
        lambda p: p.uid.lower() == wanted,
        lambda p: wanted in (fold(p.name), fold(p.alias)),
        lambda p: bool(wanted_slug) and wanted_slug in (p.slug, slugify(p.name)),
    )
    for matches_level in levels:
        found = [p for p in candidates if matches_level(p)]
        if len(found) == 1:
            return found[0]
        if found:
            listed = ", ".join(f"{p.name} ({p.uid})" for p in found)
            raise PersonNotFound(f"{query!r} matches {len(found)} people: {listed}; pass a UID")
    raise PersonNotFound(_not_found_message(query, candidates))


def _not_found_message(query: str, people: list[Person]) -> str:
    by_key: dict[str, str] = {}
    for p in people:
        for label in (p.name, p.alias):
            if label:
                by_key.setdefault(fold(label), p.name)
    close = difflib.get_close_matches(fold(query), list(by_key), n=3, cutoff=0.5)
    names = list(dict.fromkeys(by_key[k] for k in close))
    hint = f"; closest: {', '.join(names)}" if names else ""
    return f"no person named {query!r} in the library{hint} (faceset people lists everyone)"
