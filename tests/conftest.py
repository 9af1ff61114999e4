"""Real databases for the tests: SQLite files and the MariaDB server on 127.0.0.1:3306.

MariaDB tests skip with a printed reason where no server answers, except under CI=true, where a
skipped database test is a failure.
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from faceset.demo.library import sqlite_schema
from factories import Database

MARIADB_URL = os.environ.get("FACESET_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test")
MARIADB_SCHEMA = Path(__file__).parent / "fixtures" / "photoprism_mariadb.sql"


def _mariadb_unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"MariaDB is required under CI=true: {reason}")
    pytest.skip(f"MariaDB not available: {reason}")


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    index = tmp_path / "storage" / "index.db"
    index.parent.mkdir(parents=True)
    with sqlite3.connect(index) as conn:
        conn.executescript(sqlite_schema())
    engine = sa.create_engine(f"sqlite:///{index}")
    yield Database("sqlite", f"sqlite:///{index}", engine)
    engine.dispose()


@pytest.fixture
def mariadb_db() -> Iterator[Database]:
    admin_url = sa.engine.make_url(MARIADB_URL)
    try:
        admin = sa.create_engine(admin_url, connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as e:  # any failure to reach the server means: no MariaDB here
        _mariadb_unavailable(str(e).splitlines()[0])
    name = f"faceset_{secrets.token_hex(4)}"
    with admin.begin() as conn:
        conn.execute(
            sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        )
    url = admin_url.set(database=name)
    engine = sa.create_engine(url)
    ddl = re.sub(r"--.*$", "", MARIADB_SCHEMA.read_text(), flags=re.MULTILINE)
    with engine.begin() as conn:
        for statement in filter(str.strip, ddl.split(";")):
            conn.exec_driver_sql(statement)
    try:
        yield Database("mariadb", url.render_as_string(hide_password=False), engine)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "mariadb"])
def db(request: pytest.FixtureRequest) -> Database:
    """Each test using this runs once on SQLite and once on MariaDB."""
    return request.getfixturevalue(f"{request.param}_db")  # type: ignore[no-any-return]
