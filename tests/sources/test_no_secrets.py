"""No file an export writes holds the database password or the API token, however given.

Every output file (images, manifest, report, faceset.toml, TRAINING.md, trainer configs, masks)
is read back as bytes and searched for the secret.
"""

from __future__ import annotations

import secrets as stdlib_secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from faceset import redaction
from faceset.cli import app
from factories import Database, make_library
from sources.fake_servers import PhotoPrismServer
from sources.library_spec import JANE

runner = CliRunner()
SECRET = "Wh1stle-" + stdlib_secrets.token_hex(6)


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    yield
    redaction.forget_all()  # the secrets of one test are not another's


def files_holding(out: Path, secret: str) -> list[str]:
    found = [str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()
             and secret.encode() in p.read_bytes()]  # fmt: skip
    assert any(out.rglob("*.json")), "the export wrote nothing to search"
    return found


@pytest.fixture
def reader(mariadb_db: Database, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A MariaDB user with a password and SELECT on a library of Jane; (URL without password,
    originals)."""
    lib = make_library(mariadb_db.engine, tmp_path / "library")
    jane = lib.person("Jane Doe")
    lib.photo_file("a.jpg", jane)
    lib.photo_file("b.jpg", jane, orientation=6)
    url = sa.engine.make_url(mariadb_db.url)
    user = f"reader_{stdlib_secrets.token_hex(3)}"
    with mariadb_db.engine.begin() as conn:
        conn.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{SECRET}'"))
        conn.execute(sa.text(f"GRANT SELECT ON {url.database}.* TO '{user}'@'%'"))
    try:
        yield url.set(username=user, password=None).render_as_string(), lib.originals
    finally:
        with mariadb_db.engine.begin() as conn:
            conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))


@pytest.mark.parametrize(
    "given_as", ["url", "environment", "photoprism_environment", "password_file"]
)
def test_a_mariadb_export_writes_the_password_nowhere(
    given_as: str, reader: tuple[str, Path], tmp_path: Path
) -> None:
    url, originals = reader
    out = tmp_path / "out"
    env = {
        "environment": {"FACESET_DB_PASSWORD": SECRET},
        "photoprism_environment": {"PHOTOPRISM_DATABASE_PASSWORD": SECRET},
    }.get(given_as, {})
    args = ["--db", url]
    if given_as == "url":
        args = ["--db", url.replace("@", f":{SECRET}@", 1)]
    if given_as == "password_file":
        (tmp_path / "pw").write_text(SECRET + "\n")
        args += ["--db-password-file", str(tmp_path / "pw")]

    result = runner.invoke(app, ["export", *args, "--originals", str(originals), "-p", "Jane Doe",
                                 "--out", str(out), "--size", "256", "-v"], env=env)  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert len(list((out / "faces").glob("*.jpg"))) == 2
    assert files_holding(out, SECRET) == []
    assert SECRET not in result.stdout + result.stderr


def test_an_api_export_writes_the_token_nowhere(
    photoprism_server: PhotoPrismServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(PhotoPrismServer.TOKEN)
    out = tmp_path / "out"

    result = runner.invoke(app, [
        "export", "--source", "photoprism-api", "--url", photoprism_server.url,
        "--token-file", str(token_file), "--cache", str(tmp_path / "cache"), "-p", JANE,
        "--out", str(out), "--size", "256", "-v",
    ])  # fmt: skip

    assert result.exit_code == 0, result.stderr
    for secret in (PhotoPrismServer.TOKEN, PhotoPrismServer.DOWNLOAD_TOKEN):
        assert files_holding(out, secret) == []
        assert secret not in result.stdout + result.stderr
    assert redaction.redact_text(f"/api/v1/dl/x?t={PhotoPrismServer.DOWNLOAD_TOKEN}") == (
        "/api/v1/dl/x?t=***"
    )


def test_redaction_catches_urls_query_tokens_and_remembered_values() -> None:
    redaction.remember("hunter2-long")

    assert (
        redaction.redact_text("mysql+pymysql://jane:pw@db/photos")
        == "mysql+pymysql://jane@db/photos"
    )
    assert redaction.redact_text("GET /api?token=abc123&x=1") == "GET /api?token=***&x=1"
    assert redaction.redact_text("refused hunter2-long") == "refused ***"
    assert redaction.redact({"db_password": "x", "db_password_file": "/p", "n": [1, "hunter2-long"]}) == {
        "db_password_file": "/p", "n": [1, "***"]
    }  # fmt: skip
