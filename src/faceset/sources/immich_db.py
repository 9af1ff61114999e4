"""Immich's PostgreSQL database, read-only, through SQLAlchemy and psycopg.

Table names changed from plural to singular in Immich 1.137 (``asset_faces`` -> ``asset_face``,
``assets`` -> ``asset``, ``asset_files`` -> ``asset_file``); both are found at runtime, and
columns are chosen by name from what the database has. Immich 3.2 keyed people by "cluster
group" (immich-app/immich#31544): ``asset_face."personId"`` became ``"personGroupId"`` and
``person`` lost ``id`` for the key (``ownerId``, ``personGroupId``). There a person is its person
group, whose id is the person's old id; users who share a cluster group each name it.

Geometry: ``boundingBoxX1..Y2`` are pixels of the oriented preview the detector saw
(``imageWidth`` x ``imageHeight``); as fractions they hold for the oriented original. The
database keeps **unedited** boxes, so they are always paired with the unedited original (Immich's
editor does not touch ``originalPath``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from faceset.errors import SourceError
from faceset.model import Face, Person, RelBox
from faceset.sources import database, regions, values
from faceset.sources.photo_info import read_photo_info

log = logging.getLogger(__name__)

TABLES = {
    "face": ("asset_face", "asset_faces"),
    "asset": ("asset", "assets"),
    "person": ("person",),
    "file": ("asset_file", "asset_files"),
}
REQUIRED = {
    "face": {"id", "assetId", "imageWidth", "imageHeight", "boundingBoxX1", "boundingBoxY1",
             "boundingBoxX2", "boundingBoxY2"},
    "asset": {"id", "originalPath"},
    "person": {"name"},
}  # fmt: skip
# The person key of each layout, newest first: (column of asset_face, column of person).
PERSON_KEYS = (("personGroupId", "personGroupId"), ("personId", "id"))
# Where Immich's container keeps the upload folder: /data since 1.133's image, before that
# /usr/src/app/upload. Paths of older versions are relative to /usr/src/app.
KNOWN_SERVER_PATHS = ("/data", "/usr/src/app/upload")
OLD_APP_DIR = "/usr/src/app"
# Formats the crop stage decodes; for the rest (RAW, video) Immich's preview JPEG is cropped.
DECODABLE = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif", ".bmp", ".gif"}
)
HOST_ROOT = "host"
"""Root of files outside ``server_path`` (external libraries mounted at the same path)."""


def q(name: str) -> str:
    """Return a quoted PostgreSQL identifier: Immich's columns are camelCase."""
    return '"' + name.replace('"', '""') + '"'


def locate(path: str, server_paths: tuple[str, ...]) -> tuple[str, str]:
    """Return (root, file name) of a server-side path: under a server path, root '/'."""
    if not path.startswith("/"):
        path = f"{OLD_APP_DIR}/{path}"
    pure = PurePosixPath(path)
    for prefix in server_paths:
        if pure.is_relative_to(prefix):
            return "/", pure.relative_to(prefix).as_posix()
    return HOST_ROOT, path.lstrip("/")


def aspect_matches(path: Path, width: int, height: int) -> bool | None:
    """Return whether the oriented file has the shape of the box's reference size; None if unread."""
    info = read_photo_info(path)
    if info is None:
        return None
    return regions.same_aspect(info.oriented, (width, height))


class ImmichDB:
    """People and faces from Immich's database; ``originals`` is the host folder of its uploads.

    ``server_path`` is that folder's path as Immich records it (default: /data or
    /usr/src/app/upload, whichever the paths use).
    """

    name = "immich-db"

    def __init__(self, url: str, originals: Path | None, server_path: str | None = None) -> None:
        parsed = database.parse_url(url, "Immich", "postgresql://postgres@127.0.0.1:5432/immich")
        self.engine: Engine = database.connect(parsed, "Immich", ("postgresql",))
        self.roots: dict[str, Path] = {HOST_ROOT: Path("/")}
        if originals is not None:
            self.roots["/"] = originals
        self.server_paths = (server_path.rstrip("/") or "/",) if server_path else KNOWN_SERVER_PATHS
        try:
            self.tables = self._check_tables()
            self.face_key, self.person_key = self._person_key()
        except BaseException:
            self.engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    def _check_tables(self) -> dict[str, database.Table]:
        tables = database.require_tables(
            self.engine, TABLES, REQUIRED, "an Immich",
            "point --db at Immich's PostgreSQL database (DB_DATABASE_NAME, usually 'immich')",
        )  # fmt: skip
        for role, needed in REQUIRED.items():
            lacking = sorted(needed - tables[role].columns)
            if lacking:
                raise SourceError(
                    f"unsupported Immich version: table {tables[role].name} has no"
                    f" {', '.join(lacking)}"
                )
        return tables

    def _person_key(self) -> tuple[str, str]:
        """Return the quoted columns that tie a face to its person: ``f.…`` and ``p.…``."""
        face, person = self.tables["face"], self.tables["person"]
        for face_col, person_col in PERSON_KEYS:
            if face.has(face_col) and person.has(person_col):
                return f"f.{q(face_col)}", f"p.{q(person_col)}"
        raise SourceError(
            f"unsupported Immich version: table {face.name} has neither personId (before 3.2)"
            " nor personGroupId (3.2 and later)"
        )

    def _t(self, role: str) -> str:
        return q(self.tables[role].name)

    def _valid(self, include_archived: bool) -> str:
        """Return the WHERE clause of a usable face (not deleted, hidden, trashed or offline)."""
        face, asset = self.tables["face"], self.tables["asset"]
        clauses = []
        if face.has("deletedAt"):
            clauses.append('f."deletedAt" IS NULL')
        if face.has("isVisible"):
            clauses.append('f."isVisible" IS TRUE')
        if asset.has("deletedAt"):
            clauses.append('a."deletedAt" IS NULL')  # in the trash
        if asset.has("status"):
            clauses.append("a.status::text = 'active'")
        if asset.has("isOffline"):
            clauses.append('a."isOffline" IS NOT TRUE')
        if asset.has("visibility"):
            # 'hidden' is the video half of a live photo; archive and locked are the user's call.
            hidden = ["'hidden'"] + ([] if include_archived else ["'archive'", "'locked'"])
            clauses.append(f"a.visibility::text NOT IN ({', '.join(hidden)})")
        else:
            if asset.has("isVisible"):
                clauses.append('a."isVisible" IS TRUE')
            if asset.has("isArchived") and not include_archived:
                clauses.append('a."isArchived" IS NOT TRUE')
        return " AND ".join(clauses) or "TRUE"

    def _joins(self) -> str:
        return f'FROM {self._t("face")} f JOIN {self._t("asset")} a ON a.id = f."assetId"'

    def people(self) -> list[Person]:
        """Return every named person with their count of usable faces; unnamed clusters are left out."""
        person = self.tables["person"]
        hidden = 'p."isHidden"' if person.has("isHidden") else "FALSE"
        # From 3.2 each user sharing a cluster group has a row for the same person group.
        owner = 'p."ownerId"' if person.has("ownerId") else "NULL"
        people_sql = (
            f"SELECT {self.person_key} AS uid, p.name, {hidden} AS hidden"
            f" FROM {self._t('person')} p ORDER BY {owner}"
        )
        counts_sql = (
            f"SELECT {self.face_key} AS uid, COUNT(*) AS n {self._joins()}"
            f" WHERE {self.face_key} IS NOT NULL AND {self._valid(False)} GROUP BY {self.face_key}"
        )
        with self._read() as conn:
            rows = conn.execute(sa.text(people_sql)).mappings().all()
            counts = {
                str(r["uid"]): values.integer(r["n"])
                for r in conn.execute(sa.text(counts_sql)).mappings()
            }
        people: dict[str, Person] = {}
        for r in rows:
            uid, name = str(r["uid"]), values.text(r["name"]).strip()
            if name and uid not in people:
                people[uid] = Person(
                    uid=uid, name=name, hidden=values.flag(r["hidden"]), faces=counts.get(uid, 0)
                )
        return sorted(people.values(), key=lambda p: (-p.faces, p.name.casefold()))

    def count_faces(
        self, person: Person, *, confirmed_only: bool = False, include_archived: bool = False
    ) -> int:
        """Return how many faces the database lists for :meth:`faces`."""
        _refuse_confirmed_only(confirmed_only)
        sql = (
            f"SELECT COUNT(*) {self._joins()} WHERE {self.face_key} = CAST(:uid AS uuid)"
            f" AND {self._valid(include_archived)}"
        )
        with self._read() as conn:
            return values.integer(conn.execute(sa.text(sql), {"uid": person.uid}).scalar())

    def faces(
        self, person: Person, *, confirmed_only: bool = False, include_archived: bool = False
    ) -> Iterator[Face]:
        """Yield the person's faces, newest first; a box whose file has another shape is skipped."""
        _refuse_confirmed_only(confirmed_only)
        asset = self.tables["asset"]

        def col(name: str, label: str) -> str:
            return f"a.{q(name)} AS {label}" if asset.has(name) else f"NULL AS {label}"

        cols = ", ".join([
            'f.id AS face_id', 'f."assetId" AS asset_id', 'f."imageWidth" AS iw',
            'f."imageHeight" AS ih', 'f."boundingBoxX1" AS x1', 'f."boundingBoxY1" AS y1',
            'f."boundingBoxX2" AS x2', 'f."boundingBoxY2" AS y2', 'a."originalPath" AS path',
            col("originalFileName", "file_name"), col("checksum", "checksum"),
            col("libraryId", "library_id"), col("isExternal", "external"),
            col("encrypted", "encrypted"), col("fileCreatedAt", "taken_at"), col("type", "type"),
            f"{self._preview_path()} AS preview",
        ])  # fmt: skip
        newest = 'a."fileCreatedAt" DESC, ' if asset.has("fileCreatedAt") else ""
        sql = (
            f"SELECT {cols} {self._joins()} WHERE {self.face_key} = CAST(:uid AS uuid)"
            f" AND {self._valid(include_archived)} ORDER BY {newest}f.id"
        )
        others = self._other_faces(person)
        with self._read() as conn:
            result = conn.execution_options(stream_results=True, yield_per=1000).execute(
                sa.text(sql), {"uid": person.uid}
            )
            for row in result.mappings():
                face = self._face(dict(row), person)
                if face is not None:
                    mine = others.get(face.file_uid, [])
                    yield replace(
                        face, others=tuple(b for uid, b in mine if uid != face.marker_uid)
                    )

    def _other_faces(self, person: Person) -> dict[str, list[tuple[str, RelBox]]]:
        """Return every visible face box, named or not, on the assets that show the person."""
        face = self.tables["face"]
        valid = ['o."deletedAt" IS NULL'] if face.has("deletedAt") else []
        valid += ['o."isVisible" IS TRUE'] if face.has("isVisible") else []
        sql = (
            f'SELECT o."assetId", o.id, o."imageWidth", o."imageHeight", o."boundingBoxX1",'
            f' o."boundingBoxY1", o."boundingBoxX2", o."boundingBoxY2" FROM {self._t("face")} o'
            f' WHERE {" AND ".join([*valid, "TRUE"])} AND o."assetId" IN'
            f' (SELECT f."assetId" FROM {self._t("face")} f WHERE {self.face_key} = CAST(:uid AS uuid))'
        )
        found: dict[str, list[tuple[str, RelBox]]] = {}
        with self._read() as conn:
            for asset_id, face_id, w, h, x1, y1, x2, y2 in conn.execute(
                sa.text(sql), {"uid": person.uid}
            ):
                width, height = values.integer(w), values.integer(h)
                if width > 0 and height > 0:
                    box = regions.corner_box(
                        values.real(x1), values.real(y1), values.real(x2), values.real(y2),
                        width, height,
                    )  # fmt: skip
                    found.setdefault(str(asset_id), []).append((str(face_id), box))
        return found

    def _preview_path(self) -> str:
        """Return an expression for the asset's unedited preview JPEG, or NULL."""
        files = self.tables.get("file")
        if files is not None and {"assetId", "type", "path"} <= files.columns:
            unedited = ' AND af."isEdited" IS NOT TRUE' if files.has("isEdited") else ""
            return (
                f'(SELECT af.path FROM {q(files.name)} af WHERE af."assetId" = a.id'
                f" AND af.type::text = 'preview'{unedited} LIMIT 1)"
            )
        for old in ("previewPath", "resizePath"):  # before asset_files (about 1.116)
            if self.tables["asset"].has(old):
                return f"a.{q(old)}"
        return "NULL"

    def _face(self, row: Mapping[str, Any], person: Person) -> Face | None:
        width, height = values.integer(row["iw"]), values.integer(row["ih"])
        marker = str(row["face_id"])
        if width <= 0 or height <= 0:
            log.warning("Immich face %s has no image size; skipped", marker)
            return None
        original = values.text(row["path"])
        name = values.text(row["file_name"]) or PurePosixPath(original).name
        use_original = (
            PurePosixPath(name.lower()).suffix in DECODABLE
            and values.text(row["type"]).upper() in ("IMAGE", "")
            and not values.flag(row["encrypted"])
        ) or not row["preview"]
        path = original if use_original else values.text(row["preview"])
        root, file_name = locate(path, self.server_paths)
        checksum = row["checksum"]
        # sha1 of the original's bytes, except for external libraries, whose older versions
        # hashed the path instead of the content.
        from_library = row["library_id"] is not None or values.flag(row["external"])
        file_hash = (
            bytes(checksum).hex()
            if use_original and isinstance(checksum, bytes | memoryview) and not from_library
            else ""
        )
        folder = self.roots.get(root)
        if folder is not None:
            local = folder.joinpath(*PurePosixPath(file_name).parts)
            if aspect_matches(local, width, height) is False:
                log.warning(
                    "%s: Immich measured face %s on a %dx%d image of another shape; skipped",
                    local, marker, width, height,
                )  # fmt: skip
                return None
        asset_id = str(row["asset_id"])
        return Face(
            marker_uid=marker,
            file_uid=asset_id,
            photo_uid=asset_id,
            subject_uid=person.uid,
            subject_name=person.name,
            root=root,
            file_name=file_name,
            box=regions.corner_box(
                values.coordinate(row["x1"]),
                values.coordinate(row["y1"]),
                values.coordinate(row["x2"]),
                values.coordinate(row["y2"]),
                width,
                height,
            ),
            file_hash=file_hash,
            file_type=PurePosixPath(file_name).suffix.lstrip(".").lower(),
            # Immich's detector boxes are not pixel squares.
            detected=False,
            taken_at=values.timestamp(row["taken_at"]),
        )

    def _read(self) -> sa.Connection:
        try:
            return self.engine.connect()
        except DBAPIError as e:
            raise SourceError(f"lost the database connection: {e.orig}") from None


def _refuse_confirmed_only(confirmed_only: bool) -> None:
    if confirmed_only:
        raise SourceError(
            "Immich does not record which faces you confirmed; leave out --confirmed-only"
        )
