"""digiKam's SQLite database: people tags and tagRegion rectangles in oriented pixels."""

from __future__ import annotations

import sqlite3
from dataclasses import astuple
from pathlib import Path

import pytest

from faceset.errors import SourceError
from faceset.sources.digikam import DigiKamDB, album_root_path, parse_rect
from sources.library_spec import DIGIKAM_JANE, JANE, SpecPhoto, write_digikam


@pytest.fixture
def digikam(tmp_path: Path, spec: list[SpecPhoto]) -> Path:
    db = tmp_path / "digikam4.db"
    write_digikam(db, tmp_path / "Pictures", spec)
    return db


def open_db(db: Path, **kw: object) -> DigiKamDB:
    return DigiKamDB(f"sqlite:///{db}", **kw)  # type: ignore[arg-type]


def test_people_are_the_person_tags(digikam: Path) -> None:
    src = open_db(digikam)
    try:
        people = src.people()
    finally:
        src.close()

    assert [(p.uid, p.name, p.faces) for p in people] == [
        (str(DIGIKAM_JANE), JANE, 4),
        ("13", "Max", 0),
    ]


def test_rects_are_relative_to_the_oriented_image(
    digikam: Path, spec: list[SpecPhoto], tmp_path: Path
) -> None:
    src = open_db(digikam)
    try:
        faces = {f.file_name.rsplit("/", 1)[-1]: f for f in src.faces(src.people()[0])}
    finally:
        src.close()

    for p in spec:
        face = faces[p.basename]
        assert astuple(face.box) == pytest.approx(astuple(p.box)), p.name
        assert face.file_name == str(tmp_path / "Pictures" / p.name).lstrip("/")
        assert face.root == "/"
    assert faces["upright.jpg"].others == (spec[0].other_box,)


def test_a_missing_file_keeps_its_face_for_the_report(
    digikam: Path, spec: list[SpecPhoto], tmp_path: Path
) -> None:
    (tmp_path / "Pictures" / spec[1].name).unlink()
    src = open_db(digikam)
    try:
        rot6 = next(f for f in src.faces(src.people()[0]) if f.file_name.endswith("rot6.jpg"))
    finally:
        src.close()

    # ImageInformation has the stored size; orientation 6 turns it to the upright one.
    assert astuple(rot6.box) == pytest.approx(astuple(spec[1].box))


def test_hidden_and_trashed_images_are_left_out(digikam: Path) -> None:
    with sqlite3.connect(digikam) as conn:
        conn.execute("UPDATE Images SET status = 3 WHERE id = 1")
        conn.execute("UPDATE Images SET status = 2 WHERE id = 2")
    src = open_db(digikam)
    try:
        jane = src.people()[0]
        names = sorted(f.file_name.rsplit("/", 1)[-1] for f in src.faces(jane))
        assert src.count_faces(jane) == 2
    finally:
        src.close()

    assert names == ["rot3.jpg", "trans5.jpg"]


def test_originals_stand_for_the_album_root(digikam: Path, spec: list[SpecPhoto]) -> None:
    elsewhere = Path("/mnt/copy/Pictures")
    src = open_db(digikam, originals=elsewhere)
    try:
        names = sorted(f.file_name for f in src.faces(src.people()[0]))
        assert src.roots["/"] == elsewhere
    finally:
        src.close()

    assert names == sorted(p.name for p in spec)


def test_several_album_roots_need_a_server_path(digikam: Path, tmp_path: Path) -> None:
    with sqlite3.connect(digikam) as conn:
        conn.execute(
            "INSERT INTO AlbumRoots VALUES (2, 'NAS', 0, 1, 'volumeid:?path=/mnt/nas', '/')"
        )

    with pytest.raises(SourceError, match="digiKam has 2 album roots"):
        open_db(digikam, originals=tmp_path)
    src = open_db(digikam, originals=tmp_path / "Pictures", server_path=str(tmp_path / "Pictures"))
    try:
        names = {f.file_name for f in src.faces(src.people()[0])}
    finally:
        src.close()
    assert "2024/upright.jpg" in names


def test_a_disk_known_by_uuid_needs_originals(digikam: Path) -> None:
    with sqlite3.connect(digikam) as conn:
        conn.execute("UPDATE AlbumRoots SET identifier = 'volumeid:?uuid=1234-abcd'")

    with pytest.raises(SourceError, match="only by its disk's UUID; pass --originals"):
        open_db(digikam)


def test_a_database_that_is_not_digikam(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()

    with pytest.raises(SourceError, match="not a digiKam database: no table AlbumRoots"):
        open_db(other)
    with pytest.raises(SourceError, match="no digiKam database at"):
        open_db(tmp_path / "absent.db")


def test_the_database_is_opened_read_only(digikam: Path) -> None:
    src = open_db(digikam)
    try:
        import sqlalchemy as sa

        with src.engine.connect() as conn, pytest.raises(sa.exc.OperationalError, match="readonly"):
            conn.execute(sa.text("DELETE FROM Tags"))
    finally:
        src.close()


@pytest.mark.parametrize(
    ("identifier", "specific", "expected"),
    [
        ("volumeid:?path=%2Fhome%2Fme%2FPictures", "/", "/home/me/Pictures"),
        ("volumeid:?uuid=1234&fileuuid=5678", "/Pictures", None),
        ("networkshareid:?mountpath=/mnt/nas", "/photos", "/mnt/nas/photos"),
    ],
)
def test_album_root_paths(identifier: str, specific: str, expected: str | None) -> None:
    assert album_root_path(identifier, specific) == expected


def test_rect_values() -> None:
    assert parse_rect('<rect x="10" y="20" width="30" height="40"/>') == (10, 20, 30, 40)
    assert parse_rect("<rect x='1'/>") is None
    assert parse_rect("not xml") is None
