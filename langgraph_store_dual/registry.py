"""The engines: one entry each, naming what the engine's package provides.

An entry names its savers, dialect and connection types as strings, so that nothing is
imported until the engine is used: `from_url`, the thread managers, the package root
and the tools look engines up here and load only the one they need. Adding an engine
is a package (`dialect.py`, a sync and an async saver) and one entry in `ENGINES`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from .errors import ConfigError
from .urls import is_keyword_conninfo, redact

if TYPE_CHECKING:
    from .core.dialect import Dialect


@dataclass(frozen=True)
class Engine:
    """What an engine serves and where its parts are, by name."""

    name: str
    #: The package holding the engine (imported on first use, with its driver).
    package: str
    #: URL schemes it serves (lower case).
    schemes: tuple[str, ...]
    #: How its URLs look, for error messages.
    url_forms: tuple[str, ...]
    #: Names, in `package`, of the sync and the async saver class.
    sync_saver: str
    async_saver: str
    #: Its dialect: `module:attribute`, importable without the driver.
    dialect: str
    #: Connection (or pool) types the sync and the async saver take, as `module.Class`.
    sync_connections: tuple[str, ...]
    async_connections: tuple[str, ...]
    #: Other public names of `package` that the package root offers.
    exports: tuple[str, ...] = ()
    #: Name, in `package`, of a function turning a URL into what the savers'
    #: `from_conn_string` takes; None: the URL itself.
    conn_string: str | None = None
    #: Whether it serves libpq keyword strings (`host=db dbname=agents`).
    keyword_conninfo: bool = False
    #: For an engine keeping a database in a file: its URL, `{path}` the file's path.
    file_url: str | None = None

    def load(self, name: str) -> Any:
        """`name` from the engine's package (importing the package and its driver)."""
        return getattr(import_module(self.package), name)

    def saver_class(self, *, sync: bool) -> Any:
        """The engine's sync or async saver class."""
        return self.load(self.sync_saver if sync else self.async_saver)

    def load_dialect(self) -> Dialect:
        """The engine's dialect (its driver is not imported)."""
        module, _, name = self.dialect.partition(":")
        dialect: Dialect = getattr(import_module(module), name)
        return dialect

    def tool(self, module: str) -> Any:
        """The engine's module `module` (importing its driver): `maintenance` (the
        operator statements, `SQL`), `official` (the official saver's tables, `Source`),
        `backup` (SQLite)."""
        return import_module(f"{self.package}.{module}")

    def public_names(self) -> tuple[str, ...]:
        """The names the package root offers for this engine."""
        return (self.sync_saver, self.async_saver, *self.exports)

    def url_for_file(self, path: str) -> str:
        """The URL of the database in the file `path` (an absolute path stays absolute)."""
        if self.file_url is None:
            raise ConfigError(f"the {self.name} engine keeps no database in a file")
        return self.file_url.format(path=quote(path))

    def accepts(self, conn: object, *, sync: bool) -> bool:
        """Whether `conn` is a connection (or pool) this engine's sync or async saver
        takes. A driver that was never imported has no objects, so none is imported."""
        for kind in self.sync_connections if sync else self.async_connections:
            module, _, name = kind.rpartition(".")
            cls = getattr(sys.modules.get(module), name, None)
            if isinstance(cls, type) and isinstance(conn, cls):
                return True
        return False

    def open_url(
        self, url: str, options: dict[str, Any], *, sync: bool
    ) -> AbstractContextManager[Any] | AbstractAsyncContextManager[Any]:
        """The saver's `from_conn_string` context manager for `url`."""
        target = url if self.conn_string is None else self.load(self.conn_string)(url)
        opened: Any = self.saver_class(sync=sync).from_conn_string(target, **options)
        return opened  # type: ignore[no-any-return]


ENGINES: tuple[Engine, ...] = (
    Engine(
        name="sqlite",
        package="langgraph_store_dual.sqlite",
        schemes=("sqlite",),
        url_forms=("sqlite:///path.db",),
        sync_saver="SqliteSaver",
        async_saver="AsyncSqliteSaver",
        dialect="langgraph_store_dual.sqlite.dialect:SQLITE",
        sync_connections=("sqlite3.Connection",),
        async_connections=("aiosqlite.Connection",),
        conn_string="sqlite_path",
        file_url="sqlite:///{path}",
    ),
    Engine(
        name="postgres",
        package="langgraph_store_dual.postgres",
        schemes=("postgresql", "postgres"),
        url_forms=("postgresql://user@host/db", "host=... dbname=... (libpq)"),
        sync_saver="PostgresSaver",
        async_saver="AsyncPostgresSaver",
        dialect="langgraph_store_dual.postgres.dialect:POSTGRES",
        sync_connections=("psycopg.Connection", "psycopg_pool.ConnectionPool"),
        async_connections=("psycopg.AsyncConnection", "psycopg_pool.AsyncConnectionPool"),
        exports=("ConnectError",),
        keyword_conninfo=True,
    ),
)


def engine_named(name: str) -> Engine:
    """The engine called `name` (`sqlite`, `postgres`)."""
    for engine in ENGINES:
        if engine.name == name:
            return engine
    known = ", ".join(e.name for e in ENGINES)
    raise ConfigError(f"unknown engine {name!r}: the engines are {known}")


def _url_forms() -> str:
    forms = [form for engine in ENGINES for form in engine.url_forms]
    return f"{', '.join(forms[:-1])} or {forms[-1]}" if len(forms) > 1 else forms[0]


def engine_for_url(url: object) -> Engine:
    """The engine serving `url` (by scheme; a libpq keyword string by the engine that
    takes them); ConfigError naming the problem otherwise."""
    if not isinstance(url, str):
        raise ConfigError(f"a database URL must be a str, got {type(url).__name__}")
    keyword = is_keyword_conninfo(url)
    try:
        scheme = "" if keyword else urlsplit(url).scheme.lower()
    except ValueError as exc:
        raise ConfigError(f"malformed database URL {redact(url)}: {exc}") from None
    for engine in ENGINES:
        if (engine.keyword_conninfo and keyword) or scheme in engine.schemes:
            return engine
    raise ConfigError(
        f"unknown database URL scheme {scheme!r} in {redact(url)}: use {_url_forms()}"
    )


def engine_for_connection(conn: object, *, sync: bool) -> Engine | None:
    """The engine whose sync (or async) saver takes the connection or pool `conn`."""
    return next((e for e in ENGINES if e.accepts(conn, sync=sync)), None)


def exported_names() -> Iterator[tuple[str, Engine]]:
    """Each public name the engines offer through the package root, with its engine."""
    for engine in ENGINES:
        for name in engine.public_names():
            yield name, engine


def lazy_names(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for an engine package: each name in `where` is loaded from
    the submodule named there (e.g. `.savers`) on first use, with the driver it imports."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(where[name], package), name)

    return __getattr__
