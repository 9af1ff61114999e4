"""Fixtures of the source tests: Immich databases on the real PostgreSQL, fake API servers.

PostgreSQL tests skip with a printed reason where no server answers on 127.0.0.1:5432, except
under CI=true, where a skipped database test is a failure (as for MariaDB in tests/conftest.py).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sources.fake_servers import ImmichServer, PhotoPrismServer
from sources.library_spec import (
    ImmichDatabase,
    SpecPhoto,
    cluster_group_migration,
    immich_api_state,
    immich_schema,
    photoprism_api_state,
    small_library,
)

POSTGRES_URL = os.environ.get(
    "FACESET_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


@pytest.fixture(scope="session")
def spec() -> list[SpecPhoto]:
    return small_library()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """Return the URL of a new, empty database, dropped after the test."""
    admin_url = sa.engine.make_url(POSTGRES_URL)
    try:
        admin = sa.create_engine(
            admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as e:  # any failure to reach the server means: no PostgreSQL here
        _postgres_unavailable(str(e).splitlines()[0])
    name = f"faceset_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def _immich_database(postgres_url: str, layout: str, tmp_path: Path) -> ImmichDatabase:
    engine = sa.create_engine(postgres_url)
    statements = immich_schema(layout == "plural")
    if layout == "cluster-groups":
        statements += cluster_group_migration()
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    upload = tmp_path / "immich-upload"
    upload.mkdir()
    return ImmichDatabase(engine, postgres_url, layout, upload)


@pytest.fixture(params=["cluster-groups", "singular", "plural"])
def immich_db(
    request: pytest.FixtureRequest, postgres_url: str, tmp_path: Path
) -> Iterator[ImmichDatabase]:
    """An empty Immich database: 3.2+ (people keyed by cluster group), 1.137 to 3.1 (singular
    table names) or before 1.137 (plural)."""
    db = _immich_database(postgres_url, request.param, tmp_path)
    yield db
    db.engine.dispose()


@pytest.fixture
def current_immich_db(postgres_url: str, tmp_path: Path) -> Iterator[ImmichDatabase]:
    """An empty Immich database as 3.2+ creates it (singular names, cluster groups)."""
    db = _immich_database(postgres_url, "cluster-groups", tmp_path)
    yield db
    db.engine.dispose()


@pytest.fixture
def photoprism_server(spec: list[SpecPhoto]) -> Iterator[PhotoPrismServer]:
    server = PhotoPrismServer(photoprism_api_state(spec))
    yield server
    server.close()


@pytest.fixture
def immich_server(spec: list[SpecPhoto]) -> Iterator[ImmichServer]:
    server = ImmichServer(immich_api_state(spec))
    yield server
    server.close()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Return (certificate, key) of a self-signed certificate for 127.0.0.1, made by openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"openssl cannot make a test certificate: {e}")
    return cert, key
