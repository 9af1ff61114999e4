"""PhotoPrism's index (MariaDB/MySQL or SQLite), read-only, through SQLAlchemy.

Columns are chosen by name from what the index actually has, because long-lived installs keep
old column types and lack or add columns (PhotoPrism's AutoMigrate never alters or drops).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from faceset.errors import SourceError
from faceset.model import Face, Person, RelBox
from faceset.sources import database, values

log = logging.getLogger(__name__)

# Columns without which the index cannot be read; everything else is optional.
REQUIRED = {
    "subjects": {"subj_uid", "subj_name"},
    "markers": {
        "marker_uid",
        "file_uid",
        "subj_uid",
        "marker_type",
        "marker_invalid",
        "x",
        "y",
        "w",
        "h",
    },
    "files": {"file_uid", "photo_id", "file_name", "file_root"},
    "photos": {"id", "photo_uid"},
}
SUBJECT_COLUMNS = (
    "subj_uid", "subj_name", "subj_alias", "subj_slug", "subj_type",
    "subj_hidden", "subj_private", "subj_excluded", "deleted_at",
)  # fmt: skip
# In the order _face unpacks them.
FACE_COLUMNS = {
    "m": (
        "marker_uid",
        "x",
        "y",
        "w",
        "h",
        "marker_src",
        "subj_src",
        "score",
        "size",
        "q",
        "face_dist",
    ),
    "f": (
        "file_uid",
        "file_root",
        "file_name",
        "file_hash",
        "file_width",
        "file_height",
        "file_type",
    ),
    "p": ("photo_uid", "taken_at"),
}
_TABLES = {"m": "markers", "f": "files", "p": "photos", "s": "subjects"}
_MYSQL_ACCESS_DENIED, _MYSQL_UNKNOWN_DB, _MYSQL_CANT_CONNECT = 1045, 1049, 2003


def connect(url: str, password_from: str = "") -> Engine:
    """Return a read-only engine for a PhotoPrism index URL; raise SourceError if unusable.

    ``password_from`` names where the password came from, for the message when it is refused."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SourceError(
            f"--db {url!r} is not a database URL; use sqlite:///path/index.db"
            " or mysql+pymysql://user@host:3306/photoprism"
        ) from None
    missing = f"no SQLite index at {parsed.database}; PhotoPrism keeps it at <storage>/index.db"
    return database.connect(
        parsed,
        "PhotoPrism",
        ("sqlite", "mysql"),
        missing=missing,
        message=lambda u, e: _connect_message(u, e, password_from),
    )


def _connect_message(url: URL, error: DBAPIError, password_from: str = "") -> str:
    args: tuple[Any, ...] = tuple(getattr(error.orig, "args", ()))
    code = args[0] if args and isinstance(args[0], int) else None
    where = f"{url.host or 'localhost'}:{url.port or 3306}"
    if code == _MYSQL_ACCESS_DENIED:
        return (
            f"the database at {where} refused user {url.username!r}: check the password"
            f" ({password_from or 'the password in --db'})"
        )
    if code == _MYSQL_UNKNOWN_DB:
        return f"the server at {where} has no database {url.database!r}; check the name in --db"
    if code == _MYSQL_CANT_CONNECT or (code is not None and 2000 <= code < 3000):
        return (
            f"cannot reach the database server at {where}; is it running and is the address right?"
        )
    detail = str(args[1] if len(args) > 1 else error.orig).strip().splitlines()[0]
    if url.get_backend_name() == "sqlite":
        return f"cannot read {url.database} as an SQLite index: {detail}"
    return f"cannot open the database at {where}: {detail}"


class PhotoPrismDB:
    """People and faces from a PhotoPrism index; files resolve under ``roots`` by ``file_root``."""

    name = "photoprism"

    def __init__(self, url: str, roots: Mapping[str, Path], password_from: str = "") -> None:
        self.engine = connect(url, password_from)
        self.roots = dict(roots)
        self.columns = self._read_columns()

    def close(self) -> None:
        self.engine.dispose()

    def _read_columns(self) -> dict[str, set[str]]:
        try:
            inspector = sa.inspect(self.engine)
            tables = set(inspector.get_table_names())
            missing = [t for t in REQUIRED if t not in tables]
            if missing:
                raise SourceError(
                    f"not a PhotoPrism index: no table {', '.join(missing)}; point --db at"
                    " PhotoPrism's database"
                )
            columns = {t: {c["name"].lower() for c in inspector.get_columns(t)} for t in REQUIRED}
        except DBAPIError as e:
            raise SourceError(f"cannot read the index's tables: {e.orig}") from None
        for table, needed in REQUIRED.items():
            lacking = sorted(needed - columns[table])
            if lacking:
                raise SourceError(
                    f"unsupported PhotoPrism index: table {table} has no {', '.join(lacking)}"
                    " (PhotoPrism older than 2021?); upgrade PhotoPrism so it migrates the index"
                )
        return columns

    def _col(self, alias: str, name: str, label: str | None = None) -> str:
        """Return a select expression for a column, NULL when this index lacks it."""
        label = label or name
        if name in self.columns.get(_TABLES[alias], set()):
            return f"{alias}.{name} AS {label}"
        return f"NULL AS {label}"

    def _valid(self, include_archived: bool) -> str:
        """Return the WHERE clause of a usable face marker (see PhotoPrism's own ValidFace)."""
        clauses = ["m.marker_type = 'face'", "COALESCE(m.marker_invalid, 0) = 0"]
        file_cols = self.columns["files"]
        if "deleted_at" in file_cols:
            clauses.append("f.deleted_at IS NULL")
        if "file_missing" in file_cols:
            clauses.append("COALESCE(f.file_missing, 0) = 0")
        if "file_error" in file_cols:
            clauses.append("COALESCE(f.file_error, '') = ''")
        if not include_archived and "deleted_at" in self.columns["photos"]:
            clauses.append("p.deleted_at IS NULL")
        return " AND ".join(clauses)

    def _joins(self) -> str:
        return (
            "FROM markers m JOIN files f ON f.file_uid = m.file_uid"
            " JOIN photos p ON p.id = f.photo_id"
        )

    def people(self) -> list[Person]:
        """Return every person (not deleted) with counts of usable and user-confirmed faces."""
        cols = ", ".join(self._col("s", c) for c in SUBJECT_COLUMNS)
        has_subj_src = "subj_src" in self.columns["markers"]
        confirmed = "m.subj_src = 'manual'" if has_subj_src else "1 = 0"
        counts_sql = (
            f"SELECT m.subj_uid AS uid, COUNT(*) AS n,"
            f" SUM(CASE WHEN {confirmed} THEN 1 ELSE 0 END) AS confirmed"
            f" {self._joins()} WHERE {self._valid(False)} GROUP BY m.subj_uid"
        )
        with self._read() as conn:
            rows = conn.execute(sa.text(f"SELECT {cols} FROM subjects s")).mappings().all()
            counts = {
                values.text(r["uid"]): (values.integer(r["n"]), values.integer(r["confirmed"]))
                for r in conn.execute(sa.text(counts_sql)).mappings()
            }
        people = []
        for r in rows:
            kind = values.text(r["subj_type"])
            if r["deleted_at"] is not None or kind not in ("person", ""):
                continue
            uid = values.text(r["subj_uid"])
            faces, confirmed_n = counts.get(uid, (0, 0))
            people.append(
                Person(
                    uid=uid,
                    name=values.text(r["subj_name"]),
                    alias=values.text(r["subj_alias"]),
                    slug=values.text(r["subj_slug"]),
                    hidden=values.flag(r["subj_hidden"]),
                    private=values.flag(r["subj_private"]),
                    excluded=values.flag(r["subj_excluded"]),
                    faces=faces,
                    confirmed=confirmed_n,
                )
            )
        return sorted(people, key=lambda p: (-p.faces, p.name.casefold()))

    def count_faces(
        self, person: Person, *, confirmed_only: bool = False, include_archived: bool = False
    ) -> int:
        """Return how many faces :meth:`faces` will yield."""
        if not confirmed_only and not include_archived and person.faces:
            # people() counted exactly these with the same filter: a second pass over a large
            # index would cost as much again (bench/plan.py).
            return person.faces
        where = self._face_filter(confirmed_only, include_archived)
        with self._read() as conn:
            sql = f"SELECT COUNT(*) {self._joins()} WHERE {where}"
            return values.integer(conn.execute(sa.text(sql), {"uid": person.uid}).scalar())

    def _face_filter(self, confirmed_only: bool, include_archived: bool) -> str:
        where = f"m.subj_uid = :uid AND {self._valid(include_archived)}"
        if confirmed_only:
            if "subj_src" not in self.columns["markers"]:
                raise SourceError(
                    "this index does not record who confirmed a face (no markers.subj_src)"
                )
            where += " AND m.subj_src = 'manual'"
        return where

    def faces(
        self, person: Person, *, confirmed_only: bool = False, include_archived: bool = False
    ) -> Iterator[Face]:
        """Yield the person's usable faces, newest photo first, streamed from the index."""
        cols = ", ".join(self._col(a, c) for a, names in FACE_COLUMNS.items() for c in names)
        where = self._face_filter(confirmed_only, include_archived)
        newest = "p.taken_at DESC, " if "taken_at" in self.columns["photos"] else ""
        sql = f"SELECT {cols} {self._joins()} WHERE {where} ORDER BY {newest}m.marker_uid"
        others = self._other_faces(person)
        with self._read() as conn:
            result = conn.execution_options(stream_results=True, yield_per=2000).execute(
                sa.text(sql), {"uid": person.uid}
            )
            # Whole partitions of plain tuples: a 100,000-face library reads in a third of the
            # time that one mapping per row takes (bench/plan.py).
            for rows in result.partitions():
                for row in rows:
                    yield _face(row, person, others)

    def _other_faces(self, person: Person) -> dict[str, list[RelBox]]:
        """Return, per marker of the person, every other valid face box on the same file."""
        # Joined per marker, so files holding a single face, most of a library, return nothing.
        sql = (
            "SELECT m.marker_uid, o.x, o.y, o.w, o.h FROM markers m"
            " JOIN markers o ON o.file_uid = m.file_uid AND o.marker_uid <> m.marker_uid"
            " WHERE m.subj_uid = :uid AND m.marker_type = 'face'"
            " AND o.marker_type = 'face' AND COALESCE(o.marker_invalid, 0) = 0"
        )
        found: dict[str, list[RelBox]] = {}
        with self._read() as conn:
            for marker_uid, x, y, w, h in conn.execute(sa.text(sql), {"uid": person.uid}):
                box = RelBox(values.real(x), values.real(y), values.real(w), values.real(h))
                found.setdefault(values.text(marker_uid), []).append(box)
        return found

    def with_embeddings(self, faces: list[Face]) -> list[Face]:
        """Return ``faces`` with PhotoPrism's own FaceNet embedding filled in where it has one."""
        if "embeddings_json" not in self.columns["markers"]:
            return faces
        by_uid: dict[str, tuple[float, ...]] = {}
        uids = [f.marker_uid for f in faces]
        with self._read() as conn:
            # About 10 KB a row: fetched in chunks, and only when selection asks for it.
            for start in range(0, len(uids), 500):
                chunk = uids[start : start + 500]
                stmt = sa.text(
                    "SELECT marker_uid, embeddings_json FROM markers WHERE marker_uid IN :uids"
                ).bindparams(sa.bindparam("uids", expanding=True))
                for uid, raw in conn.execute(stmt, {"uids": chunk}):
                    vector = parse_embedding(raw)
                    if vector is not None:
                        by_uid[values.text(uid)] = vector
        return [replace(f, embedding=by_uid.get(f.marker_uid)) for f in faces]

    def _read(self) -> sa.Connection:
        try:
            return self.engine.connect()
        except DBAPIError as e:
            raise SourceError(f"lost the database connection: {e.orig}") from None


def parse_embedding(raw: Any) -> tuple[float, ...] | None:
    """Return the one embedding in PhotoPrism's ``[[512 floats]]`` JSON; None when absent or odd."""
    text = values.text(raw).strip()
    if not text or text in ("null", "[]"):
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], list):
        data = data[0]
    if (
        not isinstance(data, list)
        or len(data) < 16
        or not all(isinstance(v, int | float) for v in data)
    ):
        return None
    return tuple(float(v) for v in data)


def _face(row: tuple[Any, ...], person: Person, others: Mapping[str, list[RelBox]]) -> Face:
    (marker_uid, x, y, w, h, marker_src, subj_src, score, size, q, face_dist,
     file_uid, file_root, file_name, file_hash, file_width, file_height, file_type,
     photo_uid, taken_at) = row  # fmt: skip
    marker_uid = values.text(marker_uid)
    return Face(
        marker_uid=marker_uid,
        file_uid=values.text(file_uid),
        photo_uid=values.text(photo_uid),
        subject_uid=person.uid,
        subject_name=person.name,
        root=values.text(file_root) or "/",
        file_name=values.text(file_name),
        box=RelBox(*map(values.coordinate, (x, y, w, h))),
        file_hash=values.text(file_hash),
        file_width=values.integer(file_width),
        file_height=values.integer(file_height),
        file_type=values.text(file_type),
        # Only boxes the detector found are pixel squares; 'manual' ones are drawn by hand.
        detected=values.text(marker_src) in ("image", ""),
        confirmed=values.text(subj_src) == "manual",
        score=values.integer(score),
        size=values.integer(size, -1),
        quality=values.integer(q),
        face_dist=values.real(face_dist, -1.0),
        taken_at=values.timestamp(taken_at),
        others=tuple(others.get(marker_uid, ())),
    )
