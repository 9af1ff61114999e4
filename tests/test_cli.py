"""The command line as a user runs it: exit codes, one-line errors, files written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from faceset.cli import app
from factories import Database, make_library

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def library(sqlite_db: Database, tmp_path: Path) -> tuple[Database, Path]:
    lib = make_library(sqlite_db.engine, tmp_path)
    jane = lib.person("Jane Doe", alias="JD")
    lib.person("Janet Dough")
    lib.photo_file("a.jpg", jane)
    lib.photo_file("b.jpg", jane, orientation=6)
    return sqlite_db, lib.originals


def test_export_writes_images_and_says_where(
    library: tuple[Database, Path], tmp_path: Path
) -> None:
    db, originals = library
    out = tmp_path / "out"

    code, stdout, _ = invoke(
        "export",
        "--db",
        db.url,
        "--originals",
        str(originals),
        "--person",
        "jd",
        "--out",
        str(out),
        "--size",
        "256",
    )

    assert code == 0
    assert "Jane Doe: 2 faces -> 2 images" in stdout
    assert len(list((out / "faces").glob("*.jpg"))) == 2


def test_unknown_person_is_one_line_with_suggestions(
    library: tuple[Database, Path], tmp_path: Path
) -> None:
    db, originals = library

    code, _, stderr = invoke(
        "export",
        "--db",
        db.url,
        "--originals",
        str(originals),
        "--person",
        "Jane Dohe",
        "--out",
        str(tmp_path / "o"),
    )

    assert code == 1
    assert stderr.strip().count("\n") == 0
    assert stderr.startswith("error: no person named 'Jane Dohe' in the library; closest: Jane Doe")


def test_missing_sqlite_index_is_one_line(tmp_path: Path) -> None:
    code, _, stderr = invoke("people", "--db", f"sqlite:///{tmp_path}/nope/index.db")

    assert code == 1
    assert (
        stderr.strip()
        == f"error: no SQLite index at {tmp_path}/nope/index.db; PhotoPrism keeps it at <storage>/index.db"
    )


def test_a_database_that_is_not_photoprism_is_named(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    engine = sa.create_engine(f"sqlite:///{other}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE notes (id integer)"))
    engine.dispose()

    code, _, stderr = invoke("people", "--db", f"sqlite:///{other}")

    assert code == 1
    assert stderr.startswith(
        "error: not a PhotoPrism index: no table subjects, markers, files, photos"
    )


def test_a_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "index.db"
    bogus.write_text("hello")

    code, _, stderr = invoke("people", "--db", f"sqlite:///{bogus}")

    assert code == 1
    assert stderr.startswith(f"error: cannot read {bogus} as an SQLite index")


def test_wrong_mariadb_password_is_one_line(mariadb_db: Database) -> None:
    url = sa.engine.make_url(mariadb_db.url).set(password="wrong-password")

    code, _, stderr = invoke("people", "--db", url.render_as_string(hide_password=False))

    assert code == 1
    assert stderr.strip().count("\n") == 0
    assert "refused user 'root': check the password" in stderr
    assert "wrong-password" not in stderr


def test_a_refused_password_names_where_it_came_from(mariadb_db: Database, tmp_path: Path) -> None:
    url = sa.engine.make_url(mariadb_db.url).set(password=None)
    bare = url.render_as_string(hide_password=False)
    secret = tmp_path / "db-password"
    secret.write_text("wrong-password\n")

    _, _, from_env = invoke("people", "--db", bare, env={"FACESET_DB_PASSWORD": "wrong-password"})
    _, _, from_file = invoke("people", "--db", bare, "--db-password-file", str(secret))

    assert from_env.strip().endswith("check the password (FACESET_DB_PASSWORD)")
    assert from_file.strip().endswith(f"check the password (the password file {secret})")
    assert "PHOTOPRISM_DATABASE_PASSWORD" not in from_env + from_file


def test_unreachable_server_is_one_line() -> None:
    code, _, stderr = invoke("people", "--db", "mysql+pymysql://photoprism@127.0.0.1:1/photoprism")

    assert code == 1
    assert (
        stderr.strip()
        == "error: cannot reach the database server at 127.0.0.1:1; is it running and is the address right?"
    )


def test_people_lists_names_aliases_uids_and_counts(library: tuple[Database, Path]) -> None:
    db, _ = library

    code, stdout, _ = invoke("people", "--db", db.url, "--json")

    rows = [json.loads(line) for line in stdout.splitlines()]
    assert code == 0
    assert [(r["name"], r["alias"], r["faces"]) for r in rows] == [
        ("Jane Doe", "JD", 2),
        ("Janet Dough", "", 0),
    ]
    assert all(r["uid"].startswith("j") and len(r["uid"]) == 16 for r in rows)


def test_json_mode_prints_one_line_per_face_and_a_summary(
    library: tuple[Database, Path], tmp_path: Path
) -> None:
    db, originals = library

    code, stdout, _ = invoke(
        "export",
        "--db",
        db.url,
        "--originals",
        str(originals),
        "-p",
        "Jane Doe",
        "-o",
        str(tmp_path / "o"),
        "--size",
        "256",
        "--json",
    )

    events = [json.loads(line) for line in stdout.splitlines()]
    assert code == 0
    assert [e["event"] for e in events] == ["face", "face", "summary"]
    assert events[-1]["written"] == 2


def test_photoprism_environment_is_enough(library: tuple[Database, Path], tmp_path: Path) -> None:
    db, originals = library
    env = {
        "PHOTOPRISM_DATABASE_DRIVER": "sqlite",
        "PHOTOPRISM_STORAGE_PATH": str(Path(db.url.removeprefix("sqlite:///")).parent),
        "PHOTOPRISM_ORIGINALS_PATH": str(originals),
    }

    code, stdout, _ = invoke(
        "export", "-p", "Jane Doe", "-o", str(tmp_path / "o"), "--size", "256", env=env
    )

    assert code == 0
    assert "2 images" in stdout


def test_env_file_and_faceset_toml_are_read(library: tuple[Database, Path], tmp_path: Path) -> None:
    db, originals = library
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"# PhotoPrism settings\nPHOTOPRISM_DATABASE_DSN='{db.url.removeprefix('sqlite:///')}'\nPHOTOPRISM_DATABASE_DRIVER=sqlite\n"
    )
    toml = tmp_path / "faceset.toml"
    toml.write_text(f'[library]\noriginals = "{originals}"\n\n[crop]\nsize = 200\n')

    code, _, _ = invoke(
        "export",
        "--env-file",
        str(env_file),
        "--config",
        str(toml),
        "-p",
        "Jane Doe",
        "-o",
        str(tmp_path / "o"),
    )

    assert code == 0
    rec = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rec["settings"]["crop"]["size"] == 200


def test_a_typo_in_faceset_toml_names_the_key(tmp_path: Path) -> None:
    toml = tmp_path / "faceset.toml"
    toml.write_text("[crop]\nsise = 512\n")

    code, _, stderr = invoke("people", "--config", str(toml))

    assert code == 1
    assert stderr.startswith("error: setting crop.sise: Extra inputs are not permitted")


def test_no_library_given_says_what_to_pass(tmp_path: Path) -> None:
    code, _, stderr = invoke("people", env={"PHOTOPRISM_DATABASE_DRIVER": ""})

    assert code == 1
    assert stderr.startswith("error: no library given: pass --db")


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    # As the README runs it: the default folder, relative to where the user stands, piped.
    result = subprocess.run(
        [sys.executable, "-m", "faceset", "demo"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    export = tmp_path / "faceset-demo" / "export"
    assert "Eileen Collins: 5 faces (5 chosen of 12;" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == (
        "open faceset-demo/export/report.html to see which faces were chosen and why"
    )
    assert "building the sample library: 1/15 photos" in result.stderr  # not 20 s of silence
    assert "vocabulary" not in result.stderr
    selection = json.loads((export / "report.json").read_text())["selection"]
    # Something to choose from: a burst, a blurred shot, more good faces than asked for.
    assert selection["chosen"] == 5
    assert {"duplicate", "blurry", "surplus", "corrupt", "too_small"} <= set(selection)
    assert "Eileen Collins" in (export / "report.html").read_text()
    assert (export / "contact_sheet.png").stat().st_size > 10_000
    faces = sorted((export / "faces").glob("*.jpg"))
    assert len(faces) == 5
    assert max(seam(face) for face in faces) < 3.0


def seam(path: Path) -> float:
    """Return how sharply one row of the image's top third jumps from the row above, against
    the image's typical row: about 2 in a photo, above 4 where a picture was pasted on a blur."""
    import numpy as np
    from PIL import Image

    rows = np.asarray(Image.open(path).convert("L"), dtype=float)
    jumps = np.abs(np.diff(rows, axis=0)).mean(axis=1)
    return float(jumps[: len(jumps) // 3].max() / np.median(jumps))


def test_demo_without_its_extra_says_what_to_install(tmp_path: Path) -> None:
    hide = "import sys; sys.modules['skimage'] = None; from faceset.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", hide, "demo"], capture_output=True, text=True, cwd=tmp_path
    )

    assert result.returncode == 1
    assert result.stderr == (
        "error: faceset demo needs the demo extra (skimage is not installed):"
        " pip install 'faceset[demo]'\n"
    )


def test_progress_lines_show_without_a_terminal(
    library: tuple[Database, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceset.cli import library as library_cli

    monkeypatch.setattr(library_cli, "PROGRESS_EVERY_S", 0.0)  # a line per face, for the test
    db, originals = library
    args = ["export", "--db", db.url, "--originals", str(originals), "-p", "jd",
            "--out", str(tmp_path / "out"), "--size", "256", "--layout", "none"]  # fmt: skip

    code, _, stderr = invoke(*args)
    _, _, quiet = invoke(*args, "-q", "--out", str(tmp_path / "again"))

    assert code == 0
    assert "cropping: 1/2 (1 new)" in stderr
    assert "cropping: 2/2 (2 new)" in stderr
    assert "cropping" not in quiet


def test_a_person_without_usable_faces_is_an_error_that_says_why(
    sqlite_db: Database, tmp_path: Path
) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    jane = lib.person("Jane Doe")
    lib.person("Nobody Yet")
    lib.photo_file("old.jpg", jane, archived=True)
    base = ["--db", sqlite_db.url, "--originals", str(lib.originals), "--size", "256"]

    archived = invoke("export", *base, "-p", "Jane Doe", "--out", str(tmp_path / "a"))
    nothing = invoke("export", *base, "-p", "Nobody Yet", "--out", str(tmp_path / "b"))

    assert archived[0] == nothing[0] == 1
    assert archived[2] == (
        "error: no usable faces of Jane Doe: all of them are on archived photos;"
        " pass --include-archived to use them\n"
    )
    assert nothing[2].startswith("error: no usable faces of Nobody Yet: faces marked invalid")
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "b").exists()


def test_people_of_an_empty_library_says_so(sqlite_db: Database, tmp_path: Path) -> None:
    make_library(sqlite_db.engine, tmp_path)

    code, stdout, stderr = invoke("people", "--db", sqlite_db.url)

    assert code == 0
    assert stdout == ""
    assert stderr.startswith("the library has no named people")


def test_people_shows_no_empty_column_and_counts_read_right(
    sqlite_db: Database, tmp_path: Path
) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    lib.photo_file("a.jpg", lib.person("Jane Doe"))
    lib.person("Janet Dough")

    _, table, _ = invoke("people", "--db", sqlite_db.url, env={"COLUMNS": "200"})
    _, one, _ = invoke("export", "--db", sqlite_db.url, "--originals", str(lib.originals),
                       "-p", "Jane Doe", "--out", str(tmp_path / "o"), "--size", "256",
                       env={"COLUMNS": "200"})  # fmt: skip

    header = next(line for line in table.splitlines() if "Name" in line)
    assert header.split("┃")[-2].strip() == "Confirmed"  # no nameless, empty last column
    assert "Jane Doe: 1 face -> 1 image in" in one


def test_a_relative_sqlite_path_says_so(tmp_path: Path) -> None:
    code, _, stderr = invoke("people", "--db", "sqlite:///tmp/nothere/index.db")

    assert code == 1
    assert stderr.rstrip().endswith(
        "is relative to " + os.getcwd() + "; an absolute path takes four slashes:"
        " sqlite:////tmp/nothere/index.db)"
    )


def test_a_bad_flag_value_names_the_flag(library: tuple[Database, Path], tmp_path: Path) -> None:
    db, originals = library

    code, _, stderr = invoke("export", "--db", db.url, "--originals", str(originals), "-p", "jd",
                             "--out", str(tmp_path / "o"), "--size", "5")  # fmt: skip

    assert code == 1
    assert stderr == "error: --size: Input should be greater than or equal to 64\n"
