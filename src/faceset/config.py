"""Settings: one pydantic model, filled from faceset.toml, PhotoPrism's variables and flags.

Precedence, lowest first: defaults, ``faceset.toml``, PhotoPrism's environment (``PHOTOPRISM_*``,
also read from an ``.env`` file), then the command-line flags the user actually set.
"""

from __future__ import annotations

import os
import re
import tomllib
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from faceset.crop import CropSettings
from faceset.errors import ConfigError

DEFAULT_CONFIG = Path("faceset.toml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LibraryConfig(_Section):
    db: str | None = None
    """SQLAlchemy URL of PhotoPrism's index: sqlite:///.../index.db or mysql+pymysql://..."""
    db_password_file: Path | None = None
    """File holding the database password, so it never appears on a command line."""
    originals: Path | None = None
    """PhotoPrism's originals folder (file_root '/')."""
    storage: Path | None = None
    """PhotoPrism's storage folder; holds index.db and, by default, the sidecar folder."""
    sidecar: Path | None = None
    """Generated JPEGs of RAW/HEIC/video (file_root 'sidecar'); default <storage>/sidecar."""
    import_path: Path | None = None
    """PhotoPrism's import folder (file_root 'import')."""


class SelectConfig(_Section):
    confirmed_only: bool = False
    """Only faces the user named, not ones PhotoPrism matched automatically."""
    include_archived: bool = False
    """Also faces on archived photos."""


class CropConfig(_Section):
    size: int = Field(512, ge=64, le=4096)
    """Output side in pixels."""
    face_ratio: float = Field(0.4, gt=0.05, le=1.0)
    """Face box side as a fraction of the output side; 0.35-0.45 is head and shoulders."""
    tight: bool = False
    """The face box alone (same as face_ratio = 1)."""
    pad: bool = False
    """Keep the framing at photo edges by padding instead of tightening."""
    upscale: bool = False
    """Enlarge faces too small for the size instead of skipping them."""
    allow_changed: bool = False
    """Crop files whose content changed since PhotoPrism indexed them."""
    quality: int = Field(95, ge=50, le=100)
    """JPEG quality of the written images."""

    def settings(self) -> CropSettings:
        return CropSettings(
            size=self.size,
            face_ratio=1.0 if self.tight else self.face_ratio,
            pad=self.pad,
            upscale=self.upscale,
            allow_changed=self.allow_changed,
            quality=self.quality,
        )


class ExportConfig(_Section):
    out: Path | None = None
    """Output folder."""
    workers: int | None = Field(None, ge=1)
    """Processes cropping in parallel; default one per core."""


class Config(_Section):
    library: LibraryConfig = LibraryConfig()
    select: SelectConfig = SelectConfig()
    crop: CropConfig = CropConfig()
    export: ExportConfig = ExportConfig()

    def roots(self) -> dict[str, Path]:
        """Return the directory of each PhotoPrism ``file_root`` this config knows."""
        lib = self.library
        roots: dict[str, Path] = {}
        if lib.originals:
            roots["/"] = lib.originals
        sidecar = lib.sidecar
        if sidecar is None and lib.storage:
            sidecar = lib.storage / "sidecar"
        if sidecar is not None:
            # PhotoPrism resolves a relative sidecar path against the originals.
            if not sidecar.is_absolute() and lib.originals:
                sidecar = lib.originals / sidecar
            roots["sidecar"] = sidecar
        if lib.import_path:
            roots["import"] = lib.import_path
        return roots


def load(
    path: Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Return the validated config: ``path`` (or ./faceset.toml), environment, then overrides."""
    data: dict[str, dict[str, Any]] = {}
    if path is not None or DEFAULT_CONFIG.is_file():
        data = _read_toml(path or DEFAULT_CONFIG)
    env = os.environ if environ is None else environ
    _merge(data, {"library": library_from_env(env)})
    _merge(data, {k: dict(v) for k, v in (overrides or {}).items()})
    try:
        config = Config.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"setting {where}: {first['msg']}") from None
    return _with_password(_with_sqlite_storage(config), env)


def _read_toml(path: Path) -> dict[str, dict[str, Any]]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None


def _merge(into: dict[str, dict[str, Any]], new: Mapping[str, Mapping[str, Any]]) -> None:
    for section, items in new.items():
        into.setdefault(section, {}).update({k: v for k, v in items.items() if v is not None})


def read_env_file(path: Path) -> dict[str, str]:
    """Return the KEY=VALUE pairs of a docker-compose style ``.env`` file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read env file {path}: {e.strerror}") from None
    pairs = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        pairs[key.strip()] = value
    return pairs


_GO_MYSQL_DSN = re.compile(
    r"^(?:(?P<user>[^:@]*)(?::(?P<password>[^@]*))?@)?(?:(?P<net>\w+)\((?P<addr>[^)]*)\))?/(?P<db>[^?]*)"
)


def library_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Return library settings from PhotoPrism's own variables, as its config reads them."""

    def get(name: str) -> str | None:
        return env.get(f"PHOTOPRISM_{name}") or None

    found: dict[str, Any] = {
        "originals": get("ORIGINALS_PATH"),
        "storage": get("STORAGE_PATH"),
        "sidecar": get("SIDECAR_PATH"),
        "import_path": get("IMPORT_PATH"),
    }
    driver = (get("DATABASE_DRIVER") or "").lower()
    dsn = get("DATABASE_DSN")
    if driver in ("mysql", "mariadb"):
        found["db"] = _mysql_url_from_env(get, dsn)
    elif dsn or driver in ("sqlite", "sqlite3"):
        index = Path(dsn.split("?")[0]) if dsn else Path(found["storage"] or "storage") / "index.db"
        found["db"] = f"sqlite:///{index}"
    if get("DATABASE_PASSWORD_FILE"):
        found["db_password_file"] = get("DATABASE_PASSWORD_FILE")
    return {k: v for k, v in found.items() if v is not None}


def _mysql_url_from_env(get: Callable[[str], str | None], dsn: str | None) -> str:
    user, password, server, name = (
        get("DATABASE_USER") or "photoprism",
        get("DATABASE_PASSWORD"),
        get("DATABASE_SERVER") or "localhost",
        get("DATABASE_NAME") or "photoprism",
    )
    if dsn and (m := _GO_MYSQL_DSN.match(dsn)):
        user = m["user"] or user
        password = m["password"] if m["password"] is not None else password
        server = m["addr"] or server
        name = m["db"] or name
    auth = urllib.parse.quote(user, safe="")
    if password:
        auth += ":" + urllib.parse.quote(password, safe="")
    if server.startswith("/"):
        return f"mysql+pymysql://{auth}@localhost/{name}?unix_socket={urllib.parse.quote(server)}"
    return f"mysql+pymysql://{auth}@{server}/{name}"


def _with_sqlite_storage(config: Config) -> Config:
    """PhotoPrism keeps index.db in its storage folder: a path to it also names the storage."""
    db = config.library.db or ""
    if config.library.storage is None and db.startswith("sqlite:///") and db.endswith("/index.db"):
        storage = Path(db.removeprefix("sqlite:///")).parent
        return config.model_copy(
            update={"library": config.library.model_copy(update={"storage": storage})}
        )
    return config


def _with_password(config: Config, env: Mapping[str, str]) -> Config:
    """Fill in a MariaDB password missing from the URL from a file or the environment."""
    db = config.library.db
    if not db or not db.startswith(("mysql", "mariadb")):
        return config
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(db)
    except ArgumentError:
        return config
    if url.password:
        return config
    password: str | None = env.get("FACESET_DB_PASSWORD") or env.get("PHOTOPRISM_DATABASE_PASSWORD")
    if config.library.db_password_file:
        try:
            password = config.library.db_password_file.read_text().strip()
        except OSError as e:
            raise ConfigError(
                f"cannot read the password file {config.library.db_password_file}: {e.strerror}"
            ) from None
    if not password:
        return config
    rendered = url.set(password=password).render_as_string(hide_password=False)
    return config.model_copy(update={"library": config.library.model_copy(update={"db": rendered})})
