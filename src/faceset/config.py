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

from pydantic import ValidationError

from faceset import redaction
from faceset.crop.config import CropConfig
from faceset.errors import ConfigError
from faceset.evaluate.config import EvalConfig
from faceset.export.config import ExportConfig
from faceset.export.presets import preset
from faceset.generate.config import HeadshotsConfig
from faceset.select.config import SelectConfig
from faceset.settings import Section
from faceset.sources.config import LibraryConfig

DEFAULT_CONFIG = Path("faceset.toml")


class PersonConfig(Section):
    """Whose faces: what an export's own faceset.toml records, so --person can be left out."""

    uid: str | None = None
    """The library's id of the person; it finds them even after a rename."""
    name: str | None = None
    """The name, for the reader, and to find the person when the id is gone."""

    def query(self) -> str | None:
        """Return what to look the person up by: the UID, else the name; None when neither."""
        return self.uid or self.name


class Config(Section):
    person: PersonConfig = PersonConfig()
    library: LibraryConfig = LibraryConfig()
    select: SelectConfig = SelectConfig()
    crop: CropConfig = CropConfig()
    export: ExportConfig = ExportConfig()
    headshots: HeadshotsConfig = HeadshotsConfig()
    eval: EvalConfig = EvalConfig()


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
    for_model = data.get("export", {}).get("for_model")
    if isinstance(for_model, str):
        # A preset fills in only what nobody set: explicit values, from a file or a flag, win.
        for section, values in preset(for_model).items():
            for key, value in values.items():
                data.setdefault(section, {}).setdefault(key, value)
    try:
        config = Config.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        flag = _flag_of(first["loc"], overrides or {})
        if flag:
            raise ConfigError(f"{flag}: {message}") from None
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"setting {where}: {message}") from None
    return _with_password(_with_sqlite_storage(config), env)


# Flags whose names are not the setting's own with dashes.
FLAG_NAMES = {"class_word": "--class", "for_model": "--for", "json_lines": "--json"}


def _flag_of(loc: tuple[int | str, ...], overrides: Mapping[str, Mapping[str, Any]]) -> str:
    """Return the command-line flag that set the value at ``loc``, or '' when a file or the
    environment did: the user fixes what they typed, under the name they typed."""
    if len(loc) < 2 or overrides.get(str(loc[0]), {}).get(str(loc[1])) is None:
        return ""
    key = str(loc[1])
    return FLAG_NAMES.get(key, "--" + key.replace("_", "-"))


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
        redaction.remember(str(url.password))
        return config
    variable = next(
        (v for v in ("FACESET_DB_PASSWORD", "PHOTOPRISM_DATABASE_PASSWORD") if env.get(v)), ""
    )
    password: str | None = env.get(variable) if variable else None
    source = variable
    if config.library.db_password_file:
        try:
            password = config.library.db_password_file.read_text().strip()
        except OSError as e:
            raise ConfigError(
                f"cannot read the password file {config.library.db_password_file}: {e.strerror}"
            ) from None
        source = f"the password file {config.library.db_password_file}"
    if not password:
        return config
    redaction.remember(password)
    rendered = url.set(password=password).render_as_string(hide_password=False)
    library = config.library.model_copy(update={"db": rendered})
    library._password_from = source
    return config.model_copy(update={"library": library})
