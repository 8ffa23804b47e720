"""The contenders and their databases.

A *store* is one database of one implementation (`ours`: this package; `official`:
`langgraph-checkpoint-sqlite`/`-postgres`) on one engine at one scale: a SQLite file under
`<out>/cache/` or a PostgreSQL database `lgsd_bench_<tag>_<impl>_<name>` created under the
admin URL. Both flavours of an implementation (its sync saver through the sync API, its
async saver through the async API) are measured on the same store.

Everything here goes through the savers' public API; the only engine-level settings are
the durability ones used while preloading (SQLite `synchronous = OFF`, PostgreSQL
`synchronous_commit = off`), which change how soon data reaches the disk, not what is
stored, and are applied to both implementations alike.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

ENGINES = ("sqlite", "postgres")
IMPLS = ("ours", "official")
FLAVOURS = ("sync", "async")

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL_ENV = "LGSD_BENCH_PG_URL"

#: Tables whose size is counted, per engine and implementation (SQLite counts its whole
#: file; these are its tables).
TABLES = {
    ("sqlite", "ours"): (
        "checkpoints",
        "checkpoint_writes",
        "checkpoint_values",
        "threads",
        "schema_version",
    ),
    ("sqlite", "official"): ("checkpoints", "writes"),
    ("postgres", "ours"): (
        "checkpoints",
        "checkpoint_writes",
        "checkpoint_values",
        "threads",
        "schema_version",
    ),
    ("postgres", "official"): (
        "checkpoints",
        "checkpoint_blobs",
        "checkpoint_writes",
        "checkpoint_migrations",
    ),
}

_OFFICIAL_MODULES = {
    "sqlite": ("langgraph.checkpoint.sqlite", "langgraph.checkpoint.sqlite.aio"),
    "postgres": ("langgraph.checkpoint.postgres", "langgraph.checkpoint.postgres.aio"),
}


def official_missing(engine: str) -> str | None:
    """Why the official savers of `engine` cannot be used, or None when they can."""
    for module in _OFFICIAL_MODULES[engine]:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"{module}: {exc}"
    return None


def saver_class(impl: str, engine: str, flavour: str) -> type:
    if impl == "ours":
        import langgraph_store_dual as ours

        name = {"sqlite": "SqliteSaver", "postgres": "PostgresSaver"}[engine]
        return getattr(ours, name if flavour == "sync" else "Async" + name)
    module, amodule = _OFFICIAL_MODULES[engine]
    if flavour == "sync":
        mod = importlib.import_module(module)
        return mod.SqliteSaver if engine == "sqlite" else mod.PostgresSaver
    mod = importlib.import_module(amodule)
    return mod.AsyncSqliteSaver if engine == "sqlite" else mod.AsyncPostgresSaver


def next_version(impl: str, engine: str) -> Callable[[Any, Any], Any]:
    """How a graph run on this implementation numbers channel versions."""
    method = saver_class(impl, engine, "sync").get_next_version
    return lambda current, channel: method(None, current, channel)


# -- stores ----------------------------------------------------------------------------


def with_dbname(url: str, dbname: str, **params: str) -> str:
    """`url` pointed at database `dbname`, with extra URL parameters."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += list(params.items())
    return parts._replace(path="/" + dbname, query=urlencode(query)).geturl()


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, host = parts.netloc.rsplit("@", 1)
    return parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}").geturl()


@dataclass(frozen=True)
class Store:
    """One database of one implementation on one engine."""

    engine: str
    impl: str
    name: str  # the scale ("10000") or "longchat<turns>"
    path: Path | None = None  # SQLite file
    url: str | None = None  # PostgreSQL database URL
    admin_url: str | None = None
    dbname: str | None = None

    @property
    def key(self) -> str:
        return f"{self.engine}-{self.impl}-{self.name}"

    @property
    def where(self) -> str:
        return str(self.path) if self.engine == "sqlite" else redact(self.url or "")


def out_tag(out: Path) -> str:
    """A short tag naming the PostgreSQL databases that belong to an output directory."""
    return hashlib.blake2b(str(out.resolve()).encode(), digest_size=3).hexdigest()


def make_store(engine: str, impl: str, name: str, out: Path, admin_url: str | None) -> Store:
    if engine == "sqlite":
        return Store(
            engine, impl, name, path=(out / "cache" / f"sqlite-{impl}-{name}.db").resolve()
        )
    assert admin_url is not None
    dbname = f"lgsd_bench_{out_tag(out)}_{impl}_{name}"
    return Store(
        engine, impl, name, url=with_dbname(admin_url, dbname), admin_url=admin_url, dbname=dbname
    )


def _admin(store: Store) -> Any:
    import psycopg

    return psycopg.connect(store.admin_url, autocommit=True)


def _pg(store: Store) -> Any:
    import psycopg

    return psycopg.connect(store.url, autocommit=True)


def exists(store: Store) -> bool:
    if store.engine == "sqlite":
        return store.path is not None and store.path.exists()
    with _admin(store) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (store.dbname,))
        return row.fetchone() is not None


def drop(store: Store) -> None:
    """Delete the store's database (and SQLite's WAL and shared-memory files)."""
    if store.engine == "sqlite":
        assert store.path is not None
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(store.path) + suffix).unlink(missing_ok=True)
        return
    from psycopg import sql

    with _admin(store) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(store.dbname))
        )


def create(store: Store) -> None:
    """An empty database with the implementation's schema."""
    drop(store)
    if store.engine == "sqlite":
        assert store.path is not None
        store.path.parent.mkdir(parents=True, exist_ok=True)
    else:
        from psycopg import sql

        with _admin(store) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(store.dbname)))
    with open_sync(store) as saver:
        saver.setup()


def list_databases(admin_url: str, tag: str) -> list[str]:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1",
            (f"lgsd\\_bench\\_{tag}\\_%",),
        ).fetchall()
    return [r[0] for r in rows]


def drop_database(admin_url: str, dbname: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )


# -- savers ----------------------------------------------------------------------------


def _ours_url(store: Store) -> str:
    if store.engine == "sqlite":
        return f"sqlite:///{store.path}"  # absolute path: sqlite:////abs/file.db
    assert store.url is not None
    return store.url


@contextmanager
def open_sync(store: Store, *, preload: bool = False) -> Iterator[Any]:
    """The implementation's sync saver on the store, schema ready.

    With `preload`, durability is relaxed for bulk loading (see the module docstring).
    """
    if store.engine == "sqlite":
        assert store.path is not None
        if preload:
            cls = saver_class(store.impl, "sqlite", "sync")
            conn = sqlite3.connect(
                str(store.path),
                check_same_thread=False,
                isolation_level=None if store.impl == "ours" else "",
            )
            try:
                saver = cls(conn)
                saver.setup()
                conn.execute("PRAGMA synchronous = OFF")
                conn.execute("PRAGMA cache_size = -262144")  # 256 MiB
                yield saver
            finally:
                conn.close()
            return
        if store.impl == "ours":
            from langgraph_store_dual import from_url

            with from_url(_ours_url(store)) as saver:
                yield saver
        else:
            cls = saver_class("official", "sqlite", "sync")
            with cls.from_conn_string(str(store.path)) as saver:
                saver.setup()
                yield saver
        return
    assert store.url is not None
    url = store.url
    if preload:
        extra = {"options": "-csynchronous_commit=off"}
        if store.impl == "ours":
            # documented options; a preloading worker gains nothing from a health check on
            # every checkout, and without pipelining a put takes 3 round trips, not 5
            extra |= {"pool_check": "false", "pipeline": "false", "pool_max_size": "1"}
        url = with_dbname(store.url, store.dbname or "", **extra)
    if store.impl == "ours":
        from langgraph_store_dual import from_url

        with from_url(url) as saver:
            yield saver
    else:
        cls = saver_class("official", "postgres", "sync")
        with cls.from_conn_string(url) as saver:
            saver.setup()
            yield saver


@asynccontextmanager
async def open_async(store: Store) -> AsyncIterator[Any]:
    """The implementation's async saver on the store, schema ready."""
    if store.impl == "ours":
        from langgraph_store_dual import from_url

        async with from_url(_ours_url(store)) as saver:
            yield saver
        return
    cls = saver_class("official", store.engine, "async")
    where = str(store.path) if store.engine == "sqlite" else store.url
    async with cls.from_conn_string(where) as saver:
        await saver.setup()
        yield saver


# -- after a preload: settle, measure -------------------------------------------------


def finalize(store: Store) -> None:
    """Settle a freshly loaded store: fold SQLite's WAL into the file; VACUUM ANALYZE on
    PostgreSQL (the statistics and visibility map a live database would have)."""
    if store.engine == "sqlite":
        with sqlite3.connect(str(store.path)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return
    with _pg(store) as conn:
        conn.execute("VACUUM (ANALYZE)")


def size(store: Store) -> dict[str, Any]:
    """Bytes on disk (SQLite: file + WAL after a TRUNCATE checkpoint; PostgreSQL: total
    relation size of the implementation's tables) and the number of checkpoints."""
    tables = TABLES[(store.engine, store.impl)]
    if store.engine == "sqlite":
        path = str(store.path)
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            count = conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
            per_table: dict[str, int] = {}
            try:  # per-table pages, where SQLite was built with the dbstat table
                for name, nbytes in conn.execute(
                    "SELECT name, sum(pgsize) FROM dbstat GROUP BY name"
                ):
                    per_table[name] = nbytes
            except sqlite3.Error:
                per_table = {}
        wal = Path(path + "-wal")
        total = os.path.getsize(path) + (wal.stat().st_size if wal.exists() else 0)
        return {"bytes": total, "checkpoints": count, "tables": per_table}
    with _pg(store) as conn:
        per_table = {}
        for table in tables:
            row = conn.execute(
                "SELECT coalesce(pg_total_relation_size(to_regclass(%s)), 0)", (table,)
            ).fetchone()
            per_table[table] = int(row[0])
        count = conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
    return {"bytes": sum(per_table.values()), "checkpoints": count, "tables": per_table}


def server_version(admin_url: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]
