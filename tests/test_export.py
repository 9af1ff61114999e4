"""Export of one person from a real PhotoPrism index, on SQLite and MariaDB."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image, ImageOps

from faceset import config, pipeline
from faceset.demo.images import BOTTOM_LEFT, BOTTOM_RIGHT, TOP_LEFT, TOP_RIGHT
from faceset.demo.library import MarkerSpec
from faceset.errors import PersonNotFound
from faceset.model import RelBox
from factories import (
    Database,
    LibraryFixture,
    close,
    make_library,
    quadrant_colours,
)


def export(
    lib: LibraryFixture, db: Database, out: Path, person: str = "Jane Doe", **crop: Any
) -> pipeline.ExportResult:
    select = {k: crop.pop(k) for k in ("confirmed_only", "include_archived") if k in crop}
    cfg = config.load(
        None,
        {
            "library": {"db": db.url, "originals": lib.originals, "storage": lib.storage},
            "select": select,
            "crop": crop,
            "export": {"out": out, "workers": 1},
        },
        environ={},
    )
    return pipeline.export(cfg, person)


def manifest(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def report(out: Path) -> dict[str, Any]:
    return json.loads((out / "report.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture
def lib(db: Database, tmp_path: Path) -> LibraryFixture:
    library = make_library(db.engine, tmp_path)
    library.person("Jane Doe", alias="JD", slug="jane-doe")
    library.person("Zoë Ångström", slug="zoe-angstrom")
    return library


def test_only_valid_markers_are_exported(lib: LibraryFixture, db: Database, tmp_path: Path) -> None:
    jane = lib.people["Jane Doe"]
    lib.photo_file("2024/ok.jpg", jane)
    lib.photo_file("2024/auto.jpg", jane, confirmed=False)
    lib.photo_file("2024/archived.jpg", jane, archived=True)
    lib.photo_file("2024/missing-flag.jpg", jane, missing=True)
    lib.photo_file("2024/purged.jpg", jane, deleted=True)
    lib.photo_file("2024/other.jpg", lib.people["Zoë Ångström"])
    lib.photo_file(
        "2024/rejected.jpg", jane,
        extra=(MarkerSpec(RelBox(0.05, 0.05, 0.1, 0.1333), jane, invalid=True),),
    )  # fmt: skip

    result = export(lib, db, tmp_path / "out")

    sources = sorted(r["source"]["path"] for r in manifest(tmp_path / "out"))
    assert sources == ["2024/auto.jpg", "2024/ok.jpg", "2024/rejected.jpg"]
    assert result.summary.found == 3


def test_confirmed_only_leaves_out_automatic_matches(
    lib: LibraryFixture, db: Database, tmp_path: Path
) -> None:
    jane = lib.people["Jane Doe"]
    lib.photo_file("a.jpg", jane)
    lib.photo_file("b.jpg", jane, confirmed=False)

    export(lib, db, tmp_path / "out", confirmed_only=True)

    assert [r["source"]["path"] for r in manifest(tmp_path / "out")] == ["a.jpg"]


def test_archived_photos_come_back_on_request(
    lib: LibraryFixture, db: Database, tmp_path: Path
) -> None:
    lib.photo_file("old.jpg", lib.people["Jane Doe"], archived=True)

    assert export(lib, db, tmp_path / "out", include_archived=True).summary.written == 1


@pytest.mark.parametrize("query", ["jane doe", "JANE DOE", "jd", "jane-doe"])
def test_person_matches_name_alias_slug_in_any_case(
    lib: LibraryFixture, db: Database, tmp_path: Path, query: str
) -> None:
    lib.photo_file("a.jpg", lib.people["Jane Doe"])

    assert export(lib, db, tmp_path / "out", person=query).person.name == "Jane Doe"


@pytest.mark.parametrize("query", ["zoe angstrom", "ZOË ÅNGSTRÖM", "Zoe Ångström"])
def test_person_matches_without_accents(
    lib: LibraryFixture, db: Database, tmp_path: Path, query: str
) -> None:
    lib.photo_file("z.jpg", lib.people["Zoë Ångström"])

    assert export(lib, db, tmp_path / "out", person=query).person.name == "Zoë Ångström"


def test_person_matches_uid(lib: LibraryFixture, db: Database, tmp_path: Path) -> None:
    uid = lib.people["Jane Doe"]
    lib.photo_file("a.jpg", uid)

    assert export(lib, db, tmp_path / "out", person=uid.upper()).person.uid == uid


def test_unknown_person_names_the_closest(
    lib: LibraryFixture, db: Database, tmp_path: Path
) -> None:
    with pytest.raises(PersonNotFound, match=r"no person named 'Jane Do' .*closest: Jane Doe"):
        export(lib, db, tmp_path / "out", person="Jane Do")


def test_people_counts_usable_and_confirmed_faces(lib: LibraryFixture, db: Database) -> None:
    jane = lib.people["Jane Doe"]
    lib.photo_file("a.jpg", jane)
    lib.photo_file("b.jpg", jane, confirmed=False)
    lib.photo_file("c.jpg", jane, deleted=True)
    cfg = config.load(None, {"library": {"db": db.url, "originals": lib.originals}}, environ={})

    people = {p.name: p for p in pipeline.list_people(cfg)}

    assert (people["Jane Doe"].faces, people["Jane Doe"].confirmed) == (2, 1)
    assert people["Zoë Ångström"].faces == 0


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_crops_the_face_upright(
    sqlite_db: Database, tmp_path: Path, orientation: int
) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    jane = lib.person("Jane Doe")
    # A portrait 4:3 photo whose face sits off-centre, so a wrong mapping lands elsewhere.
    upright = lib.photo_file(
        "o.jpg", jane, orientation=orientation, size=(1200, 1600), face=(200, 300, 600, 700)
    )

    export(lib, sqlite_db, tmp_path / "out", tight=True, size=256)

    rec = manifest(tmp_path / "out")[0]
    out = Image.open(tmp_path / "out" / rec["image"])
    got = quadrant_colours(out)
    assert all(
        close(g, want)
        for g, want in zip(got, [TOP_LEFT, TOP_RIGHT, BOTTOM_LEFT, BOTTOM_RIGHT], strict=True)
    ), got
    assert rec["box"] == [200.0, 300.0, 600.0, 700.0]
    reference = upright.crop((200, 300, 600, 700)).resize((256, 256), Image.Resampling.LANCZOS)
    diff = np.abs(np.asarray(out, dtype=np.int16) - np.asarray(reference, dtype=np.int16)).mean()
    assert diff < 4, diff


def test_head_and_shoulders_window_is_centred_on_the_face(
    sqlite_db: Database, tmp_path: Path
) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    lib.photo_file("a.jpg", lib.person("Jane Doe"), size=(2000, 1500), face=(900, 500, 1100, 700))

    export(lib, sqlite_db, tmp_path / "out", size=256)

    rec = manifest(tmp_path / "out")[0]
    assert rec["crop"] == [750, 350, 1250, 850]  # 200 px face at 40 % of a 500 px window


def test_window_shifts_inside_the_photo_near_an_edge(sqlite_db: Database, tmp_path: Path) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    lib.photo_file("a.jpg", lib.person("Jane Doe"), size=(2000, 1500), face=(20, 30, 220, 230))

    export(lib, sqlite_db, tmp_path / "out", size=256)

    assert manifest(tmp_path / "out")[0]["crop"] == [0, 0, 500, 500]


def test_box_past_the_edge_is_clamped(sqlite_db: Database, tmp_path: Path) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    lib.photo_file(
        "a.jpg", lib.person("Jane Doe"), size=(1600, 1200), face=(1300, 900, 1600, 1200),
        box=RelBox(0.8125, 0.75, 0.25, 1 / 3), detected=False,
    )  # fmt: skip

    export(lib, sqlite_db, tmp_path / "out", size=256)

    rec = manifest(tmp_path / "out")[0]
    assert rec["box"] == [1300.0, 900.0, 1600.0, 1200.0]
    assert rec["crop"][2] <= 1600
    assert rec["crop"][3] <= 1200


def test_sidecar_jpeg_of_a_heic_is_cropped_from_the_sidecar_folder(
    sqlite_db: Database, tmp_path: Path
) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    lib.photo_file("2024/IMG_1.HEIC.jpg", lib.person("Jane Doe"), root="sidecar")

    result = export(lib, sqlite_db, tmp_path / "out", size=256)

    assert result.summary.written == 1
    assert manifest(tmp_path / "out")[0]["source"] == {
        "root": "sidecar",
        "path": "2024/IMG_1.HEIC.jpg",
    }


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "HEIF"])
def test_other_formats_crop_the_same_face(sqlite_db: Database, tmp_path: Path, fmt: str) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    lib.photo_file(
        f"a.{fmt.lower()}", lib.person("Jane Doe"), fmt=fmt, orientation=1 if fmt == "HEIF" else 6
    )

    export(lib, sqlite_db, tmp_path / "out", tight=True, size=128)

    out = Image.open(tmp_path / "out" / manifest(tmp_path / "out")[0]["image"])
    got = quadrant_colours(out)
    assert all(
        close(g, w)
        for g, w in zip(got, [TOP_LEFT, TOP_RIGHT, BOTTOM_LEFT, BOTTOM_RIGHT], strict=True)
    ), got


def test_output_is_square_rgb_without_metadata(sqlite_db: Database, tmp_path: Path) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    lib.photo_file("a.jpg", lib.person("Jane Doe"), orientation=6)

    export(lib, sqlite_db, tmp_path / "out", size=320)

    out = Image.open(tmp_path / "out" / manifest(tmp_path / "out")[0]["image"])
    assert (out.size, out.mode, out.format) == ((320, 320), "RGB", "JPEG")
    assert not out.getexif()
    assert "icc_profile" not in out.info
    assert "exif" not in out.info


def test_file_names_leaving_their_root_are_refused(sqlite_db: Database, tmp_path: Path) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    jane = lib.person("Jane Doe")
    outside = tmp_path / "secret.jpg"
    lib.photo_file("../secret.jpg", jane, data=b"x")
    outside.write_bytes((lib.originals / "..").resolve().joinpath("x").name.encode())
    lib.photo_file(str(outside), jane, data=b"x")
    (lib.originals / "link").symlink_to(tmp_path)
    lib.photo_file("link/secret.jpg", jane)

    result = export(lib, sqlite_db, tmp_path / "out", size=256)

    assert result.summary.skipped == {"unsafe_path": 3}
    assert result.summary.written == 0


def test_marker_of_a_rotated_file_is_skipped_as_stale(sqlite_db: Database, tmp_path: Path) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    jane = lib.person("Jane Doe")
    # Detected on the upright 1600x1200 image; the user then rotated the file (Orientation 6).
    upright_box = RelBox(600 / 1600, 400 / 1200, 400 / 1600, 400 / 1200)
    lib.photo_file(
        "rotated.jpg",
        jane,
        orientation=6,
        size=(1200, 1600),
        face=(400, 600, 800, 1000),
        box=upright_box,
    )

    result = export(lib, sqlite_db, tmp_path / "out", size=256)

    assert result.summary.skipped == {"stale_marker": 1}
    assert "not square" in report(tmp_path / "out")["problems"][0]["detail"]


def test_file_changed_since_indexing_is_skipped(sqlite_db: Database, tmp_path: Path) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    lib.photo_file("edited.jpg", lib.person("Jane Doe"), index_data=b"the bytes PhotoPrism indexed")

    assert export(lib, sqlite_db, tmp_path / "out", size=256).summary.skipped == {"file_changed": 1}
    assert (
        export(lib, sqlite_db, tmp_path / "out2", size=256, allow_changed=True).summary.written == 1
    )


def test_broken_files_are_counted_and_the_run_goes_on(sqlite_db: Database, tmp_path: Path) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    jane = lib.person("Jane Doe")
    lib.photo_file("good.jpg", jane)
    lib.photo_file("gone.jpg", jane)
    (lib.originals / "gone.jpg").unlink()
    whole = (lib.originals / "good.jpg").read_bytes()
    lib.photo_file("truncated.jpg", jane, data=whole[: len(whole) // 2])
    lib.photo_file("garbage.jpg", jane, data=b"not an image at all")

    result = export(lib, sqlite_db, tmp_path / "out", size=256)

    assert result.summary.written == 1
    assert result.summary.failed == {"missing_file": 1, "corrupt": 1, "unreadable": 1}
    problems = {p["source"]["path"]: p["reason"] for p in report(tmp_path / "out")["problems"]}
    assert problems == {
        "gone.jpg": "missing_file",
        "truncated.jpg": "corrupt",
        "garbage.jpg": "unreadable",
    }


def test_small_faces_are_skipped_unless_upscaling(sqlite_db: Database, tmp_path: Path) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    lib.photo_file("small.jpg", lib.person("Jane Doe"), size=(800, 600), face=(350, 250, 430, 330))

    assert export(lib, sqlite_db, tmp_path / "out").summary.skipped == {"too_small": 1}
    assert export(lib, sqlite_db, tmp_path / "out", upscale=True).summary.written == 1


def test_rerun_does_no_work_twice(lib: LibraryFixture, db: Database, tmp_path: Path) -> None:
    jane = lib.people["Jane Doe"]
    for i in range(3):
        lib.photo_file(f"{i}.jpg", jane)
    out = tmp_path / "out"
    export(lib, db, out, size=256)
    before = {p: p.stat().st_mtime_ns for p in (out / "faces").iterdir()}

    again = export(lib, db, out, size=256)

    assert (again.summary.written, again.summary.kept) == (0, 3)
    assert {p: p.stat().st_mtime_ns for p in (out / "faces").iterdir()} == before


def test_changed_marker_is_redone_and_removed_one_deleted(
    lib: LibraryFixture, db: Database, tmp_path: Path
) -> None:
    jane = lib.people["Jane Doe"]
    for i in range(3):
        lib.photo_file(f"{i}.jpg", jane, detected=False)
    out = tmp_path / "out"
    export(lib, db, out, size=256)
    rows = manifest(out)
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE markers SET x = x + 0.01 WHERE marker_uid = :u"),
            {"u": rows[0]["marker_uid"]},
        )
        conn.execute(
            sa.text("UPDATE markers SET marker_invalid = 1 WHERE marker_uid = :u"),
            {"u": rows[1]["marker_uid"]},
        )

    again = export(lib, db, out, size=256)

    assert (again.summary.written, again.summary.kept, again.summary.removed) == (1, 1, 1)
    assert not (out / rows[1]["image"]).exists()
    assert len(list((out / "faces").iterdir())) == 2


def test_interrupted_run_resumes_without_redoing_finished_images(
    sqlite_db: Database, tmp_path: Path
) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    jane = lib.person("Jane Doe")
    for i in range(4):
        lib.photo_file(f"{i}.jpg", jane)
    out = tmp_path / "out"
    cfg = config.load(
        None,
        {
            "library": {"db": sqlite_db.url, "originals": lib.originals},
            "crop": {"size": 256},
            "export": {"out": out, "workers": 1},
        },
        environ={},
    )
    seen = []

    def stop_after_two(outcome: object) -> None:
        seen.append(outcome)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline.export(cfg, "Jane Doe", on_outcome=stop_after_two)
    assert len(list((out / "faces").glob("*.jpg"))) == 2
    assert not list((out / "faces").glob(".*tmp"))

    resumed = pipeline.export(cfg, "Jane Doe")

    assert (resumed.summary.written, resumed.summary.kept) == (2, 2)
    assert len(manifest(out)) == 4


def test_manifest_says_where_every_image_came_from(sqlite_db: Database, tmp_path: Path) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    lib.photo_file("2023/a.jpg", lib.person("Jane Doe"), taken=datetime(2023, 5, 6, 7, 8, 9))

    export(lib, sqlite_db, tmp_path / "out", size=256)

    rec = manifest(tmp_path / "out")[0]
    assert set(rec) >= {
        "image",
        "marker_uid",
        "file_uid",
        "photo_uid",
        "subject",
        "source",
        "taken_at",
        "box",
        "crop",
    }
    assert rec["subject"] == "Jane Doe"
    assert rec["taken_at"] == "2023-05-06T07:08:09"
    assert (tmp_path / "out" / rec["image"]).is_file()
    counts = report(tmp_path / "out")["counts"]
    assert (counts["found"], counts["written"]) == (1, 1)


def test_export_never_writes_to_the_sqlite_index(sqlite_db: Database, tmp_path: Path) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    lib.photo_file("a.jpg", lib.person("Jane Doe"))
    index = Path(sqlite_db.url.removeprefix("sqlite:///"))
    sqlite_db.engine.dispose()
    before = (index.read_bytes(), index.stat().st_mtime_ns)
    index.chmod(0o444)

    export(lib, sqlite_db, tmp_path / "out", size=256)

    assert (index.read_bytes(), index.stat().st_mtime_ns) == before
    assert not index.with_name("index.db-journal").exists()


def test_mariadb_sessions_refuse_writes(mariadb_db: Database) -> None:
    from faceset.sources.photoprism_db import connect

    engine = connect(mariadb_db.url)
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match="READ ONLY"):
        conn.execute(sa.text("DELETE FROM markers"))
    engine.dispose()


def test_pymysql_bytes_and_sqlite_numbers_become_text(
    lib: LibraryFixture, db: Database, tmp_path: Path
) -> None:
    # A digit-only photo name, which SQLite's NUMERIC affinity stores as an integer.
    lib.photo_file("2023/01/0123.jpg", lib.people["Jane Doe"])

    export(lib, db, tmp_path / "out", size=256)

    rec = manifest(tmp_path / "out")[0]
    assert rec["source"]["path"] == "2023/01/0123.jpg"
    assert all(
        isinstance(rec[k], str) and not rec[k].startswith("b'")
        for k in ("marker_uid", "file_uid", "photo_uid")
    )


def test_legacy_index_with_old_columns_is_read(tmp_path: Path) -> None:
    import sqlite3

    from faceset.demo.library import sqlite_schema

    index = tmp_path / "index.db"
    ddl = sqlite_schema().replace("\"file_orientation_src\" VARBINARY(8) DEFAULT '',", "")
    ddl = ddl.replace('"subj_about" varchar(512),', '"metadata_json" MEDIUMBLOB,')
    with sqlite3.connect(index) as conn:
        conn.executescript(ddl)
    engine = sa.create_engine(f"sqlite:///{index}")
    lib = make_library(engine, tmp_path)
    original_file = lib.writer.file

    def without_orientation_src(*args: Any, **kwargs: Any) -> str:
        with engine.begin() as conn:
            cols = {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(files)")}
        assert "file_orientation_src" not in cols
        return original_file(*args, **kwargs)

    # The writer fills every column it knows; drop the one this old index lacks.
    lib.writer._insert = _dropping(lib.writer._insert, "file_orientation_src")  # type: ignore[method-assign]
    lib.photo_file("a.jpg", lib.person("Jane Doe"))
    db = Database("sqlite", f"sqlite:///{index}", engine)

    assert export(lib, db, tmp_path / "out", size=256).summary.written == 1


def _dropping(insert: Any, column: str) -> Any:
    def run(table: str, row: dict[str, object]) -> None:
        insert(table, {k: v for k, v in row.items() if k != column})

    return run


def test_exif_transposed_reference_matches_fast_crop(sqlite_db: Database, tmp_path: Path) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    lib.photo_file(
        "big.jpg",
        lib.person("Jane Doe"),
        orientation=8,
        size=(3000, 4000),
        face=(900, 1200, 1900, 2200),
    )

    export(lib, sqlite_db, tmp_path / "out", size=256)

    rec = manifest(tmp_path / "out")[0]
    full = ImageOps.exif_transpose(Image.open(lib.originals / "big.jpg")).convert("RGB")
    reference = full.crop(tuple(rec["crop"])).resize((256, 256), Image.Resampling.LANCZOS)
    out = Image.open(tmp_path / "out" / rec["image"])
    diff = np.abs(np.asarray(out, dtype=np.int16) - np.asarray(reference, dtype=np.int16)).mean()
    assert diff < 3, diff


def test_window_leaves_out_another_persons_face(sqlite_db: Database, tmp_path: Path) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    # A stranger's face 300 px to the right: the centred 500 px window would hold its centre.
    stranger = MarkerSpec(RelBox(1250 / 2000, 500 / 1500, 200 / 2000, 200 / 1500))
    lib.photo_file(
        "pair.jpg",
        lib.person("Jane Doe"),
        size=(2000, 1500),
        face=(900, 500, 1100, 700),
        extra=(stranger,),
    )

    export(lib, sqlite_db, tmp_path / "out", size=256, upscale=True)

    rec = manifest(tmp_path / "out")[0]
    left, top, right, bottom = rec["crop"]
    assert left <= 900  # the whole face
    assert top <= 500
    assert right >= 1100
    assert bottom >= 700
    assert not (left <= 1350 < right and top <= 600 < bottom)  # not the stranger's centre
    assert rec["others"] == [[1250.0, 500.0, 1450.0, 700.0]]


def test_face_with_no_room_from_a_neighbour_is_skipped_as_crowded(
    sqlite_db: Database, tmp_path: Path
) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    # The neighbour's centre sits just past the face's edge, inside any margin.
    neighbour = MarkerSpec(RelBox(1005 / 2000, 500 / 1500, 200 / 2000, 200 / 1500))
    lib.photo_file(
        "close.jpg",
        lib.person("Jane Doe"),
        size=(2000, 1500),
        face=(900, 500, 1100, 700),
        extra=(neighbour,),
    )

    result = export(lib, sqlite_db, tmp_path / "out", size=128)

    assert result.summary.skipped == {"crowded": 1}
