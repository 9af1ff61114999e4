"""Immich's PostgreSQL database, with tables as Immich creates them, old and new names."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from faceset import config, pipeline
from faceset.demo.images import BOTTOM_LEFT, BOTTOM_RIGHT, TOP_LEFT, TOP_RIGHT, write
from faceset.errors import ConfigError, SourceError
from faceset.model import Person
from faceset.sources import open_source
from faceset.sources.config import LibraryConfig
from faceset.sources.immich_db import ImmichDB, locate
from factories import close, quadrant_colours
from sources.library_spec import (
    IMMICH_JANE,
    JANE,
    ImmichDatabase,
    SpecPhoto,
    face_id,
    write_immich_db,
)


def export(db: ImmichDatabase, tmp_path: Path, **select: Any) -> pipeline.ExportResult:
    cfg = config.load(
        None,
        {
            "library": {"source": "immich-db", "db": db.url, "originals": db.upload},
            "select": select,
            "crop": {"size": 256},
            "export": {"out": tmp_path / "out", "workers": 1},
        },
        environ={},
    )
    return pipeline.export(cfg, JANE)


def manifest(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def upright_face(tmp_path: Path, rec: dict[str, Any]) -> bool:
    image = Image.open(tmp_path / "out" / rec["image"]).convert("RGB")
    left, top, right, _ = rec["crop"]
    scale = image.width / (right - left)
    box = [(v - o) * scale for v, o in zip(rec["box"], (left, top, left, top), strict=True)]
    face = image.crop(tuple(round(v) for v in box))
    expected = [TOP_LEFT, TOP_RIGHT, BOTTOM_LEFT, BOTTOM_RIGHT]
    return all(close(a, b) for a, b in zip(quadrant_colours(face), expected, strict=True))


def test_faces_are_cropped_from_the_oriented_originals(
    immich_db: ImmichDatabase, spec: list[SpecPhoto], tmp_path: Path
) -> None:
    write_immich_db(immich_db, spec)

    result = export(immich_db, tmp_path)

    records = manifest(tmp_path)
    assert result.summary.written == 4
    assert all(upright_face(tmp_path, rec) for rec in records)
    upright = next(r for r in records if r["source"]["path"].endswith("upright.jpg"))
    assert upright["source"] == {"root": "/", "path": "library/admin/2024/upright.jpg"}
    assert len(upright["others"]) == 1


def test_people_are_the_named_ones(immich_db: ImmichDatabase, spec: list[SpecPhoto]) -> None:
    write_immich_db(immich_db, spec)
    src = ImmichDB(immich_db.url, immich_db.upload)
    try:
        people = src.people()
    finally:
        src.close()

    assert [(p.uid, p.name, p.faces) for p in people] == [(IMMICH_JANE, JANE, 4)]


def test_only_usable_faces_are_read(immich_db: ImmichDatabase, spec: list[SpecPhoto]) -> None:
    write_immich_db(immich_db, spec[:1])
    p = spec[0]
    when = datetime(2024, 5, 1)
    extra = {
        "trashed": {"deletedAt": when},
        "offline": {"isOffline": True},
        "archived": {"archived": True},
        "live-video": {"hidden": True},
    }
    for n, (name, columns) in enumerate(extra.items(), 10):
        aid = immich_db.asset(n, SpecPhoto(f"x/{name}.jpg", 1, p.size, p.face, data=p.data),
                              **columns)  # fmt: skip
        immich_db.face(face_id(n), aid, p, p.face, IMMICH_JANE)
    src = ImmichDB(immich_db.url, immich_db.upload)
    try:
        jane = src.people()[0]
        default = sorted(f.file_name for f in src.faces(jane))
        archived = sorted(f.file_name for f in src.faces(jane, include_archived=True))
        counted = src.count_faces(jane)
    finally:
        src.close()

    assert default == ["library/admin/2024/upright.jpg"]
    assert archived == ["library/admin/2024/upright.jpg", "library/admin/x/archived.jpg"]
    assert counted == 1


def test_deleted_and_invisible_faces_are_left_out(
    current_immich_db: ImmichDatabase, spec: list[SpecPhoto]
) -> None:
    # Faces gained deletedAt and isVisible after the rename to singular table names.
    write_immich_db(current_immich_db, spec[:2])
    with current_immich_db.engine.begin() as conn:
        conn.execute(sa.text('UPDATE asset_face SET "deletedAt" = now() WHERE id = :id'),
                     {"id": face_id(1)})  # fmt: skip
        conn.execute(sa.text('UPDATE asset_face SET "isVisible" = false WHERE id = :id'),
                     {"id": face_id(2)})  # fmt: skip
    src = ImmichDB(current_immich_db.url, current_immich_db.upload)
    try:
        assert list(src.faces(src.people()[0])) == []
    finally:
        src.close()


def test_a_raw_asset_is_cropped_from_its_unedited_preview(
    immich_db: ImmichDatabase, spec: list[SpecPhoto], tmp_path: Path
) -> None:
    immich_db.owner()
    immich_db.person(IMMICH_JANE, JANE)
    p = spec[1]
    raw = SpecPhoto("2024/IMG_1.CR2", 1, p.size, p.face, data=b"not a picture faceset decodes")
    aid = immich_db.asset(1, raw)
    immich_db.face(face_id(1), aid, p, p.face, IMMICH_JANE)
    preview = f"thumbs/{aid}-preview.jpeg"
    write(immich_db.upload / preview, p.data)
    immich_db.insert(immich_db.table("file"),
                     {"assetId": aid, "type": "preview", "path": f"/data/{preview}"})  # fmt: skip

    result = export(immich_db, tmp_path)

    [rec] = manifest(tmp_path)
    assert result.summary.written == 1
    assert rec["source"] == {"root": "/", "path": preview}
    assert upright_face(tmp_path, rec)


def test_an_external_library_file_is_read_where_it_is(
    immich_db: ImmichDatabase, spec: list[SpecPhoto], tmp_path: Path
) -> None:
    immich_db.owner()
    immich_db.person(IMMICH_JANE, JANE)
    p = spec[0]
    outside = tmp_path / "nas" / "photos" / "jane.jpg"
    write(outside, p.data)
    aid = immich_db.asset(1, p, originalPath=str(outside), libraryId=IMMICH_JANE)
    immich_db.face(face_id(1), aid, p, p.face, IMMICH_JANE)
    src = ImmichDB(immich_db.url, immich_db.upload)
    try:
        [face] = src.faces(src.people()[0])
    finally:
        src.close()

    assert (face.root, face.file_name) == ("host", str(outside).lstrip("/"))
    # External libraries of older Immich versions hashed the path, not the bytes.
    assert face.file_hash == ""


def test_the_session_is_read_only(immich_db: ImmichDatabase, spec: list[SpecPhoto]) -> None:
    write_immich_db(immich_db, spec[:1])
    src = ImmichDB(immich_db.url, immich_db.upload)
    try:
        with src.engine.connect() as conn:
            assert conn.execute(sa.text("SHOW default_transaction_read_only")).scalar() == "on"
            with pytest.raises(sa.exc.DBAPIError, match="read-only transaction"):
                conn.execute(sa.text("DELETE FROM person"))
    finally:
        src.close()


def test_server_paths_map_to_the_originals() -> None:
    assert locate("/data/library/a.jpg", ("/data", "/usr/src/app/upload")) == (
        "/", "library/a.jpg")  # fmt: skip
    assert locate("upload/library/a.jpg", ("/usr/src/app/upload",)) == ("/", "library/a.jpg")
    assert locate("/mnt/nas/a.jpg", ("/data",)) == ("host", "mnt/nas/a.jpg")


def test_a_database_that_is_not_immich(postgres_url: str) -> None:
    with pytest.raises(SourceError, match="not an Immich database: no table asset_face, asset"):
        ImmichDB(postgres_url, None)


def test_a_missing_database_is_one_clear_error(postgres_url: str) -> None:
    url = sa.engine.make_url(postgres_url).set(database="faceset_absent")
    with pytest.raises(SourceError, match="has no database 'faceset_absent'"):
        ImmichDB(url.render_as_string(hide_password=False), None)


def test_an_unreachable_server_is_one_clear_error() -> None:
    with pytest.raises(SourceError, match=r"^cannot reach the database server at 127\.0\.0\.1:9"):
        ImmichDB("postgresql://postgres@127.0.0.1:9/immich", None)


def test_the_password_comes_from_immichs_env(postgres_url: str) -> None:
    library = LibraryConfig(source="immich-db", db=postgres_url)
    from faceset.sources import _with_password

    url = sa.engine.make_url(_with_password(library, {"DB_PASSWORD": "s3cret"}))

    assert url.password == "s3cret"
    with pytest.raises(ConfigError, match="no immich-db database given"):
        open_source(LibraryConfig(source="immich-db"), {})


def test_a_database_upgraded_to_cluster_groups_reads_the_same_people_and_faces(
    postgres_url: str, spec: list[SpecPhoto], tmp_path: Path
) -> None:
    # An Immich 3.1 library with faces, then 3.2's migration run over it, rows and all.
    from sources.conftest import _immich_database
    from sources.library_spec import cluster_group_migration

    db = _immich_database(postgres_url, "singular", tmp_path)
    try:
        write_immich_db(db, spec)
        before = ImmichDB(db.url, db.upload)
        try:
            people_before = before.people()
            faces_before = sorted(f.marker_uid for f in before.faces(people_before[0]))
        finally:
            before.close()
        with db.engine.begin() as conn:
            for statement in cluster_group_migration():
                conn.execute(sa.text(statement))
        after = ImmichDB(db.url, db.upload)
        try:
            people_after = after.people()
            faces_after = sorted(f.marker_uid for f in after.faces(people_after[0]))
        finally:
            after.close()
    finally:
        db.engine.dispose()

    assert people_after == people_before == [Person(IMMICH_JANE, JANE, faces=4)]
    assert faces_after == faces_before
    assert len(faces_after) == 4


def test_a_shared_cluster_group_is_one_person(
    current_immich_db: ImmichDatabase, spec: list[SpecPhoto]
) -> None:
    # From 3.2 two users can share a cluster group: each names the same person group.
    write_immich_db(current_immich_db, spec)
    partner = "7e3a2d65-0000-4c56-9c1e-1a2b3c4d5e6f"
    current_immich_db.owner(partner, "partner@example.com")
    current_immich_db.person(IMMICH_JANE, "Jane", owner=partner)
    src = ImmichDB(current_immich_db.url, current_immich_db.upload)
    try:
        people = src.people()
        faces = list(src.faces(people[0]))
    finally:
        src.close()

    assert [(p.uid, p.faces) for p in people] == [(IMMICH_JANE, 4)]
    assert people[0].name in (JANE, "Jane")
    assert len(faces) == 4
