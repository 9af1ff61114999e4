"""digiKam's database (SQLite ``digikam4.db`` or MySQL/MariaDB), read-only.

People are tags with a ``person`` property; a confirmed face is an ``ImageTagProperties`` row
``tagRegion`` under the person's tag, valued ``<rect x= y= width= height=/>`` in integer pixels of
the **full-size image with its orientation applied** (digiKam rotates before clipping). The rect
becomes relative to the size the crop stage decodes, not to ``ImageInformation.width/height``,
which are the stored size before rotation.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeET
import sqlalchemy as sa
from defusedxml import DefusedXmlException
from sqlalchemy.exc import DBAPIError

from faceset.crop.geometry import oriented_size
from faceset.errors import SourceError
from faceset.model import Face, Person
from faceset.sources import database, regions, values
from faceset.sources.photo_info import read_photo_info

log = logging.getLogger(__name__)

TABLES = {
    "roots": ("AlbumRoots",),
    "albums": ("Albums",),
    "images": ("Images",),
    "info": ("ImageInformation",),
    "tags": ("Tags",),
    "tag_props": ("TagProperties",),
    "image_tag_props": ("ImageTagProperties",),
}
REQUIRED = ("roots", "albums", "images", "tags", "tag_props", "image_tag_props")
# Tags digiKam makes for faces without a name; they carry an empty 'person' property.
SPECIAL_PEOPLE = ("unknownPerson", "unconfirmedPerson", "ignoredPerson")
VISIBLE = 1  # Images.status: 1 visible, 2 hidden, 3 trashed, 4 obsolete
HOST_ROOT = "host"


@dataclass(frozen=True, slots=True)
class AlbumRoot:
    id: int
    label: str
    path: str | None
    """Absolute path of the collection on the machine digiKam runs on; None when on a volume
    digiKam knows only by UUID."""


def album_root_path(identifier: str, specific_path: str) -> str | None:
    """Return an album root's folder from digiKam's ``identifier`` and ``specificPath``.

    ``volumeid:?path=/x`` and ``networkshareid:?mountpath=/x`` name a folder; ``volumeid:?uuid=``
    names a disk whose mount point this machine may not have.
    """
    query = urllib.parse.parse_qs(identifier.partition("?")[2])
    bases = query.get("path") or query.get("mountpath")
    if not bases:
        return None
    base = bases[0]
    specific = specific_path.strip("/")
    return str(PurePosixPath(base, specific)) if specific else str(PurePosixPath(base))


def parse_rect(value: str) -> tuple[float, float, float, float] | None:
    """Return (x, y, width, height) of a ``<rect .../>`` value; None when it is not one."""
    try:
        rect = SafeET.fromstring(value)
        x, y, w, h = (float(rect.attrib[k]) for k in ("x", "y", "width", "height"))
    except (ParseError, DefusedXmlException, KeyError, ValueError):
        return None
    return (x, y, w, h) if w > 0 and h > 0 else None


class DigiKamDB:
    """People and faces from a digiKam database.

    ``originals`` is the photo folder on this machine; ``server_path`` the folder it stands for
    in digiKam's paths (default: the only album root). Without ``originals``, digiKam's own
    absolute paths are used, for a database on this same machine.
    """

    name = "digikam"

    def __init__(
        self, url: str, originals: Path | None = None, server_path: str | None = None
    ) -> None:
        parsed = database.parse_url(url, "digiKam", "sqlite:///path/to/digikam4.db")
        self.engine = database.connect(parsed, "digiKam", ("sqlite", "mysql"))
        try:
            self.tables = self._check_tables()
            self.album_roots = self._album_roots()
            self.prefix = self._prefix(originals, server_path)
        except BaseException:
            self.engine.dispose()
            raise
        self.roots: dict[str, Path] = {"/": originals or Path("/"), HOST_ROOT: Path("/")}

    def close(self) -> None:
        self.engine.dispose()

    def _check_tables(self) -> dict[str, database.Table]:
        return database.require_tables(
            self.engine, TABLES, REQUIRED, "a digiKam",
            "point --db at digikam4.db (in the folder of your first collection) or digiKam's"
            " MySQL database",
        )  # fmt: skip

    def _album_roots(self) -> dict[int, AlbumRoot]:
        with self._read() as conn:
            rows = conn.execute(
                sa.text("SELECT id, label, identifier, specificPath FROM AlbumRoots")
            ).mappings()
            return {
                values.integer(r["id"]): AlbumRoot(
                    values.integer(r["id"]),
                    values.text(r["label"]),
                    album_root_path(values.text(r["identifier"]), values.text(r["specificPath"])),
                )
                for r in rows
            }

    def _prefix(self, originals: Path | None, server_path: str | None) -> str | None:
        """Return the digiKam path that ``originals`` stands for; None when no folder is mapped."""
        if originals is None:
            unknown = [r.label or str(r.id) for r in self.album_roots.values() if r.path is None]
            if unknown:
                raise SourceError(
                    f"digiKam knows album root {', '.join(unknown)} only by its disk's UUID;"
                    " pass --originals with the folder that holds its photos"
                )
            return None
        if server_path:
            return server_path.rstrip("/") or "/"
        if len(self.album_roots) != 1:
            paths = ", ".join(r.path or r.label for r in self.album_roots.values())
            raise SourceError(
                f"digiKam has {len(self.album_roots)} album roots ({paths}); set server_path to"
                " the one --originals stands for"
            )
        return next(iter(self.album_roots.values())).path or ""

    def _locate(self, root_id: int, relative_path: str, name: str) -> tuple[str, str]:
        """Return (root, file name) of an image in album ``relative_path`` of an album root."""
        album_root = self.album_roots.get(root_id)
        in_root = PurePosixPath(relative_path.strip("/"), name).as_posix()
        if album_root is None:
            return "/", in_root
        if self.prefix == "" or (self.prefix is not None and album_root.path is None):
            return "/", in_root  # the only album root, on a disk known by UUID
        full = PurePosixPath(album_root.path or "/", in_root)
        if self.prefix is None:
            return "/", full.as_posix().lstrip("/")
        if full.is_relative_to(self.prefix):
            return "/", full.relative_to(self.prefix).as_posix()
        return HOST_ROOT, full.as_posix().lstrip("/")

    def _person_tags(self) -> dict[int, str]:
        """Return the name of every person tag (special 'unknown' tags left out)."""
        sql = "SELECT t.id, t.name, tp.property, tp.value FROM Tags t JOIN TagProperties tp ON tp.tagid = t.id"
        names: dict[int, str] = {}
        special: set[int] = set()
        with self._read() as conn:
            for r in conn.execute(sa.text(sql)).mappings():
                tag, prop = values.integer(r["id"]), values.text(r["property"])
                if prop == "person":
                    names[tag] = values.text(r["value"]).strip() or values.text(r["name"])
                elif prop in SPECIAL_PEOPLE:
                    special.add(tag)
        return {tag: name for tag, name in names.items() if tag not in special and name}

    def people(self) -> list[Person]:
        """Return every person tag with its count of face regions on visible images."""
        sql = (
            "SELECT itp.tagid AS tag, COUNT(*) AS n FROM ImageTagProperties itp"
            " JOIN Images i ON i.id = itp.imageid"
            f" WHERE itp.property = 'tagRegion' AND i.status = {VISIBLE} AND i.album IS NOT NULL"
            " GROUP BY itp.tagid"
        )
        with self._read() as conn:
            counts = {
                values.integer(r["tag"]): values.integer(r["n"])
                for r in conn.execute(sa.text(sql)).mappings()
            }
        people = [
            Person(uid=str(tag), name=name, faces=counts.get(tag, 0), confirmed=counts.get(tag, 0))
            for tag, name in self._person_tags().items()
        ]
        return sorted(people, key=lambda p: (-p.faces, p.name.casefold()))

    def _faces_sql(self, select: str) -> str:
        info = "LEFT JOIN ImageInformation ii ON ii.imageid = i.id" if "info" in self.tables else ""
        return (
            f"SELECT {select} FROM ImageTagProperties itp JOIN Images i ON i.id = itp.imageid"
            f" JOIN Albums al ON al.id = i.album {info}"
            f" WHERE itp.tagid = :tag AND itp.property = 'tagRegion' AND i.status = {VISIBLE}"
        )

    def count_faces(
        self, person: Person, *, confirmed_only: bool = False, include_archived: bool = False
    ) -> int:
        """Return how many faces :meth:`faces` will yield (every tagRegion is confirmed)."""
        with self._read() as conn:
            sql = self._faces_sql("COUNT(*)")
            return values.integer(conn.execute(sa.text(sql), {"tag": _tag(person)}).scalar())

    def faces(
        self, person: Person, *, confirmed_only: bool = False, include_archived: bool = False
    ) -> Iterator[Face]:
        """Yield the person's confirmed face regions, newest photo first."""
        has_info = "info" in self.tables
        cols = "itp.imageid AS image_id, itp.value AS rect, i.name AS name, al.albumRoot AS root_id, al.relativePath AS album"
        if has_info:
            cols += ", ii.orientation AS orientation, ii.width AS width, ii.height AS height, ii.creationDate AS taken_at"
        order = " ORDER BY ii.creationDate DESC, i.id" if has_info else " ORDER BY i.id"
        others = self._other_regions(person)
        with self._read() as conn:
            rows = conn.execute(sa.text(self._faces_sql(cols) + order), {"tag": _tag(person)})
            for row in rows.mappings():
                face = self._face(dict(row), person, others)
                if face is not None:
                    yield face

    def _other_regions(self, person: Person) -> dict[str, set[tuple[float, float, float, float]]]:
        """Return every face rect, named, unconfirmed or unknown, on the person's images."""
        sql = (
            "SELECT o.imageid, o.value FROM ImageTagProperties o WHERE o.property IN"
            " ('tagRegion', 'autodetectedFace', 'autodetectedPerson') AND o.imageid IN"
            " (SELECT m.imageid FROM ImageTagProperties m WHERE m.tagid = :tag"
            " AND m.property = 'tagRegion')"
        )
        found: dict[str, set[tuple[float, float, float, float]]] = {}
        with self._read() as conn:
            for image_id, value in conn.execute(sa.text(sql), {"tag": _tag(person)}):
                text = values.text(value)
                # autodetectedPerson is valued "<tag id>,autodetectedFace,<rect .../>".
                rect = parse_rect(text[text.find("<rect") :]) if "<rect" in text else None
                if rect is not None:
                    found.setdefault(values.text(image_id), set()).add(rect)
        return found

    def _face(
        self,
        row: Mapping[str, Any],
        person: Person,
        others: Mapping[str, set[tuple[float, float, float, float]]],
    ) -> Face | None:
        image_id = values.text(row["image_id"])
        value = values.text(row["rect"])
        rect = parse_rect(value)
        root, file_name = self._locate(
            values.integer(row["root_id"]), values.text(row["album"]), values.text(row["name"])
        )
        if rect is None:
            log.warning("%s: digiKam region %r is not a rectangle; skipped", file_name, value)
            return None
        width, height = self._oriented_size(root, file_name, row)
        if not width or not height:
            log.warning("%s: size unknown (no file, no ImageInformation); skipped", file_name)
            return None
        marker = hashlib.sha1(value.encode(), usedforsecurity=False).hexdigest()[:8]
        return Face(
            marker_uid=f"d{image_id}-{person.uid}-{marker}",
            file_uid=f"d{image_id}",
            photo_uid=f"d{image_id}",
            subject_uid=person.uid,
            subject_name=person.name,
            root=root,
            file_name=file_name,
            box=regions.pixel_rect(*rect, width, height),
            file_type=PurePosixPath(file_name).suffix.lstrip(".").lower(),
            # digiKam's rects are drawn or detected boxes of any shape, not pixel squares.
            detected=False,
            confirmed=True,
            taken_at=values.timestamp(row.get("taken_at")),
            others=tuple(
                regions.pixel_rect(*other, width, height)
                for other in sorted(others.get(image_id, ()))
                if other != rect
            ),
        )

    def _oriented_size(self, root: str, file_name: str, row: Mapping[str, Any]) -> tuple[int, int]:
        """Return the oriented size of the file as decoded, else from ImageInformation."""
        local = self.roots[root].joinpath(*PurePosixPath(file_name).parts)
        info = read_photo_info(local)
        if info is not None:
            return info.oriented
        # ImageInformation holds the size before rotation; a missing file is reported by the
        # crop stage, so any plausible box will do.
        orientation = values.integer(row.get("orientation"), 1)
        return oriented_size(
            values.integer(row.get("width")), values.integer(row.get("height")), orientation
        )

    def _read(self) -> sa.Connection:
        try:
            return self.engine.connect()
        except DBAPIError as e:
            raise SourceError(f"lost the database connection: {e.orig}") from None


def _tag(person: Person) -> int:
    try:
        return int(person.uid)
    except ValueError:
        raise SourceError(f"{person.uid!r} is not a digiKam tag id") from None
