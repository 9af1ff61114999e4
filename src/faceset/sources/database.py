"""Read-only database connections for the Immich and digiKam sources, with one-line errors.

SQLite opens in ``mode=ro``; MySQL/MariaDB and PostgreSQL sessions are set read-only, so the
server itself refuses any write. PhotoPrism's index connects here too, with messages of its own.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from faceset.errors import SourceError

log = logging.getLogger(__name__)

# PostgreSQL SQLSTATEs and MySQL error numbers worth their own message.
_PG_BAD_PASSWORD = {"28P01", "28000"}
_PG_NO_DATABASE = "3D000"
_MYSQL_ACCESS_DENIED, _MYSQL_UNKNOWN_DB = 1045, 1049


def parse_url(url: str, what: str, example: str) -> URL:
    """Return ``url`` parsed; a bare file path becomes an SQLite URL."""
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser()}"
    try:
        return make_url(url)
    except ArgumentError:
        raise SourceError(f"{url!r} is not a {what} database URL; use {example}") from None


def with_password(url: URL, password: str | None) -> URL:
    """Return ``url`` with ``password`` filled in when it has none."""
    if url.password or not password or url.get_backend_name() == "sqlite":
        return url
    return url.set(password=password)


def connect(
    url: URL,
    what: str,
    backends: tuple[str, ...],
    *,
    missing: str | None = None,
    message: Callable[[URL, DBAPIError], str] | None = None,
) -> Engine:
    """Return a read-only engine for ``url``; raise SourceError naming the fix when unusable.

    ``what`` names the library in messages; ``backends`` are the SQLAlchemy backend names it
    supports (``sqlite``, ``mysql``, ``postgresql``). ``missing`` replaces the message for an
    SQLite file that is not there, ``message`` the one for a refused connection.
    """
    backend = url.get_backend_name()
    if backend == "mariadb":
        backend = "mysql"
    if backend not in backends:
        raise SourceError(
            f"{what} does not keep its library in {backend!r}; use {' or '.join(backends)}"
        )
    if backend == "sqlite":
        engine = _sqlite(url, missing or f"no {what} database at {url.database}")
    elif backend == "mysql":
        engine = _mysql(url)
    else:
        engine = _postgres(url)
    try:
        with engine.connect() as conn:
            # SQLite opens any file lazily; reading its catalogue proves it is a database.
            probe = "SELECT COUNT(*) FROM sqlite_master" if backend == "sqlite" else "SELECT 1"
            conn.execute(sa.text(probe))
    except DBAPIError as e:
        engine.dispose()
        raise SourceError(message(url, e) if message else _message(url, what, e)) from None
    return engine


def relative_hint(database: str | None) -> str:
    """Return, for an SQLite path that is relative, a note that says so and how to write an
    absolute one; '' for an absolute path. sqlite:///tmp/x.db means ./tmp/x.db."""
    if not database or Path(database).is_absolute():
        return ""
    return (
        f" ({database} is relative to {Path.cwd()}; an absolute path takes four slashes:"
        f" sqlite:////{database})"
    )


def _sqlite(url: URL, missing: str) -> Engine:
    path = Path(url.database or "")
    if not url.database or not path.is_file():
        raise SourceError(missing + relative_hint(url.database))
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
    if _wal_without_shared_memory(path):
        # A WAL index in a folder we cannot write, with no -shm beside it: SQLite would have to
        # create one ("attempt to write a readonly database"). immutable=1 reads the file as it
        # is, which is all a read-only export needs.
        uri += "&immutable=1"
        log.info("%s: WAL index in a read-only folder, read as immutable", path)

    def open_read_only() -> sqlite3.Connection:
        # mode=ro: the library is the user's; no statement of ours may change it.
        return sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5)

    return sa.create_engine("sqlite://", creator=open_read_only, poolclass=sa.pool.NullPool)


def _wal_without_shared_memory(path: Path) -> bool:
    """Return whether ``path`` is a WAL-mode SQLite file that SQLite cannot open read-only as
    it is: its folder is not writable and its ``-shm`` file is missing or not writable."""
    if os.access(path.parent, os.W_OK):
        return False
    try:
        with path.open("rb") as f:
            header = f.read(20)
    except OSError:
        return False
    wal = len(header) == 20 and header[18] == 2  # file format read version 2: WAL
    shm = path.with_name(path.name + "-shm")
    return wal and not (shm.exists() and os.access(shm, os.W_OK))


def _mysql(url: URL) -> Engine:
    url = url.set(drivername="mysql+pymysql")
    engine = sa.create_engine(url, connect_args={"connect_timeout": 10}, pool_pre_ping=True)

    @sa.event.listens_for(engine, "connect")
    def read_only(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION READ ONLY")

    return engine


def _postgres(url: URL) -> Engine:
    url = url.set(drivername="postgresql+psycopg")
    try:
        return sa.create_engine(
            url,
            # Every transaction of the session is read-only: the server refuses any write.
            connect_args={"connect_timeout": 10, "options": "-c default_transaction_read_only=on"},
            pool_pre_ping=True,
        )
    except (NoSuchModuleError, ModuleNotFoundError):
        raise SourceError(
            "reading PostgreSQL needs psycopg: pip install 'faceset[immich]'"
        ) from None


def _message(url: URL, what: str, error: DBAPIError) -> str:
    orig = error.orig
    backend = url.get_backend_name()
    where = f"{url.host or 'localhost'}:{url.port or {'postgresql': 5432}.get(backend, 3306)}"
    first_line = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    if backend == "sqlite":
        return f"cannot read {url.database} as a {what} database: {first_line}"
    sqlstate = getattr(orig, "sqlstate", None)
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    code = args[0] if args and isinstance(args[0], int) else None
    # libpq reports refusals at connect time without a SQLSTATE: only its message tells.
    text = str(orig)
    if (
        sqlstate in _PG_BAD_PASSWORD
        or code == _MYSQL_ACCESS_DENIED
        or "password authentication failed" in text
        or "no password supplied" in text
        or ('role "' in text and "does not exist" in text)
    ):
        return f"the database at {where} refused user {url.username!r}: check the password"
    if (
        sqlstate == _PG_NO_DATABASE
        or code == _MYSQL_UNKNOWN_DB
        or ('database "' in text and "does not exist" in text)
    ):
        return f"the server at {where} has no database {url.database!r}; check the name in --db"
    if sqlstate is None and (code is None or 2000 <= code < 3000):
        return (
            f"cannot reach the database server at {where} ({first_line});"
            " is it running and is the address right?"
        )
    return f"cannot open the {what} database at {where}: {first_line}"


@dataclass(frozen=True, slots=True)
class Table:
    """A table as this database has it: its actual name and column names."""

    name: str
    columns: frozenset[str]

    def has(self, column: str) -> bool:
        return column in self.columns


def require_tables(
    engine: Engine,
    tables: Mapping[str, tuple[str, ...]],
    required: Iterable[str],
    what: str,
    hint: str,
) -> dict[str, Table]:
    """Return :func:`find_tables`, or raise SourceError ("not a ``what`` database: no table
    ..., ``hint``") when a ``required`` role has none of its names."""
    found = find_tables(engine, tables)
    missing = [tables[role][0] for role in required if role not in found]
    if missing:
        raise SourceError(f"not {what} database: no table {', '.join(missing)}; {hint}")
    return found


def find_tables(engine: Engine, tables: Mapping[str, tuple[str, ...]]) -> dict[str, Table]:
    """Return the first existing name of each table, keyed by role; absent roles are left out.

    ``tables`` maps a role to the names the table has had across versions, newest first. Raises
    SourceError when a database error stops the inspection.
    """
    try:
        inspector = sa.inspect(engine)
        existing = set(inspector.get_table_names())
        found: dict[str, Table] = {}
        for role, names in tables.items():
            name = next((n for n in names if n in existing), None)
            if name is not None:
                columns = frozenset(c["name"] for c in inspector.get_columns(name))
                found[role] = Table(name, columns)
    except DBAPIError as e:
        raise SourceError(f"cannot read the database's tables: {e.orig}") from None
    return found
