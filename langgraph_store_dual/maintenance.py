"""Read-only and maintenance SQL for operators (the command-line tool), per engine: the
schema version, table sizes and counts, the largest threads, server settings, retention
previews, VACUUM. Statements run on a plain DB-API connection (`connect`), never on a
saver's, so that none of them creates a database or a table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import ConfigError
from .registry import engine_for_url, engine_named
from .urls import sqlite_path

#: Our tables, in the order reports list them.
TABLES = ("threads", "checkpoints", "checkpoint_writes", "checkpoint_values", "schema_version")
#: What the runtime role reads through views (see `grants`).
VIEWS = ("checkpoint_writes_flat", "checkpoints_expanded")


class Connection(Protocol):
    """The DB-API connection methods used here (sqlite3 and psycopg both have them)."""

    def execute(self, sql: Any, params: Sequence[Any] | Mapping[str, Any] = ...) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class EngineSql:
    """The statements of one engine, written with its placeholders."""

    name: str
    placeholder: str
    has_table: str  # (name,) -> [(1,)] when the table exists
    table_bytes: str  # (name,) -> [(bytes,)], indexes included
    size: str  # a format string: the stored size of the value `{}`
    ago: str  # the time a number of seconds (one parameter) before now
    settings: tuple[tuple[str, str], ...]  # (name, SELECT returning one value)
    #: A plain autocommit connection to the existing database a URL names.
    connect: Callable[[str], Any]

    def q(self, sql: str) -> str:
        """`sql` written with `?` placeholders, in this engine's."""
        return sql.replace("?", self.placeholder)


def engine_of(url: str) -> EngineSql:
    """The statements for the engine `url` names (ConfigError for an unknown scheme)."""
    engine = engine_for_url(url)
    sql: EngineSql = engine.tool("maintenance").SQL
    return sql


def connect(url: str) -> Any:
    """A plain autocommit connection to the existing database `url` names, which never
    creates it (ConnectError, never with the password, when it cannot be reached)."""
    return engine_of(url).connect(url)


def existing_sqlite_path(url: str) -> str:
    """The file of a `sqlite:` URL, which must exist (ConfigError naming it otherwise)."""
    path = sqlite_path(url)
    if path == ":memory:":
        raise ConfigError("an in-memory SQLite database holds nothing to inspect: give a file")
    if not os.path.isfile(path):
        raise ConfigError(f"no SQLite database at {os.path.abspath(path)} (check the path)")
    return path


def pool_settings(url: str) -> Any:
    """The `PoolSettings` a PostgreSQL URL gives a saver (pool sizes, PgBouncer mode)."""
    from .postgres.pool import parse

    return parse(url, {})[1]


def rows(conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(sql, params).fetchall()]


def tables(conn: Connection, e: EngineSql) -> list[str]:
    """Those of our tables that exist."""
    return [name for name in TABLES if rows(conn, e.has_table, (name,))]


def schema_version(conn: Connection, e: EngineSql) -> int | None:
    """The schema version, or None when the database has no schema of ours."""
    if not rows(conn, e.has_table, ("schema_version",)):
        return None
    return int(rows(conn, "SELECT max(version) FROM schema_version")[0][0] or 0)


def table_stats(conn: Connection, e: EngineSql) -> list[dict[str, Any]]:
    """Rows and bytes (indexes included) of each of our tables."""
    out = []
    for name in tables(conn, e):
        (count,) = rows(conn, f"SELECT count(*) FROM {name}")[0]
        (size,) = rows(conn, e.table_bytes, (name,))[0]
        out.append({"table": name, "rows": int(count), "bytes": int(size or 0)})
    return out


def largest_threads(conn: Connection, e: EngineSql, limit: int) -> list[dict[str, Any]]:
    """The threads storing the most bytes (checkpoints, values and writes)."""
    size = e.size.format
    sql = e.q(f"""SELECT thread_id, sum(n), sum(b) FROM (
        SELECT thread_id, count(*) n, sum({size("checkpoint")} + {size("metadata")}) b
            FROM checkpoints GROUP BY thread_id
        UNION ALL SELECT thread_id, 0, sum({size("value")}) FROM checkpoint_values
            GROUP BY thread_id
        UNION ALL SELECT thread_id, 0, sum({size("writes")}) FROM checkpoint_writes
            GROUP BY thread_id) x
        GROUP BY thread_id ORDER BY 3 DESC, 1 LIMIT ?""")
    return [
        {"thread_id": tid, "checkpoints": int(n), "bytes": int(b or 0)}
        for tid, n, b in rows(conn, sql, (limit,))
    ]


def settings(conn: Connection, e: EngineSql) -> dict[str, Any]:
    """The server or file settings that matter to operators."""
    return {name: rows(conn, sql)[0][0] for name, sql in e.settings}


def database_bytes(conn: Connection, e: EngineSql, url: str) -> int:
    """Space the database takes: the SQLite file (and its WAL), or our PostgreSQL tables."""
    if e.name == "sqlite":
        path = existing_sqlite_path(url)
        wal = path + "-wal"
        return os.path.getsize(path) + (os.path.getsize(wal) if os.path.exists(wal) else 0)
    return sum(int(rows(conn, e.table_bytes, (name,))[0][0] or 0) for name in tables(conn, e))


def vacuum(conn: Connection, e: EngineSql) -> list[str]:
    """Give the space of deleted rows back: SQLite rewrites the file (`VACUUM`, then a
    checkpoint that empties the WAL it went through), PostgreSQL marks it reusable in our
    tables and refreshes their planner statistics (`VACUUM (ANALYZE)`). Returns the
    statements run."""
    statements = (
        ["VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"]
        if e.name == "sqlite"
        else [f"VACUUM (ANALYZE) {name}" for name in tables(conn, e)]
    )
    for sql in statements:
        conn.execute(sql)
    return statements


# -- retention previews: what `prune` would delete, at most (pruning also keeps the
# ancestors a kept checkpoint's DeltaChannels need) -------------------------------------


def older_than_preview(conn: Connection, e: EngineSql, seconds: float) -> dict[str, int]:
    """Checkpoints created more than `seconds` ago that are not their namespace's latest."""
    sql = e.q(f"""SELECT count(*), count(DISTINCT thread_id) FROM checkpoints c
        WHERE c.created_at < {e.ago} AND c.thread_ts < (SELECT max(x.thread_ts)
        FROM checkpoints x WHERE x.thread_id = c.thread_id
        AND x.checkpoint_ns = c.checkpoint_ns)""")
    count, threads = rows(conn, sql, (seconds,))[0]
    return {"checkpoints": int(count), "threads": int(threads)}


def keep_last_preview(conn: Connection, e: EngineSql, n: int) -> dict[str, int]:
    """Checkpoints beyond the last `n` of each thread and namespace."""
    sql = e.q("""SELECT count(*), count(DISTINCT thread_id) FROM (SELECT thread_id,
        row_number() OVER (PARTITION BY thread_id, checkpoint_ns ORDER BY thread_ts DESC) rn
        FROM checkpoints) x WHERE rn > ?""")
    count, threads = rows(conn, sql, (n,))[0]
    return {"checkpoints": int(count), "threads": int(threads)}


def idle_threads(
    conn: Connection, e: EngineSql, seconds: float, user_id: str | None = None
) -> list[tuple[str, int]]:
    """(thread_id, checkpoints) of the threads (of `user_id`) idle for `seconds`."""
    mine = " AND t.user_id = ?" if user_id is not None else ""
    sql = e.q(f"""SELECT t.thread_id, (SELECT count(*) FROM checkpoints c
        WHERE c.thread_id = t.thread_id) FROM threads t
        WHERE t.updated_at < {e.ago}{mine} ORDER BY t.updated_at, t.thread_id""")
    params = (seconds,) if user_id is None else (seconds, user_id)
    return [(tid, int(n)) for tid, n in rows(conn, sql, params)]


# -- setup for a DBA ------------------------------------------------------------------


def missing_routines(conn: Connection, e: EngineSql) -> list[str]:
    """The statements creating those functions of this package's dialect (PostgreSQL's
    `postgres/routines.py`) that the database lacks."""
    from .core import ops

    def execute(stmt: ops.Stmt) -> ops.Rows:
        return list(conn.execute(stmt.sql, stmt.params).fetchall())

    missing = ops.run(ops.missing_routines(dialect(e)), execute)
    return [r.create for r in missing]


def pending_sql(conn: Connection, e: EngineSql) -> tuple[int | None, int, list[str]]:
    """(current version, latest version, the statements that would take the schema there,
    in one transaction), without running them."""
    d = dialect(e)
    current, latest = schema_version(conn, e), len(d.migrations)
    if current is not None and current > latest:
        return current, latest, []
    functions = missing_routines(conn, e)
    if current == latest and not functions:
        return current, latest, []
    lock = [d.lock_setup] if d.lock_setup else []
    out = ["BEGIN" if e.name == "postgres" else "BEGIN IMMEDIATE", *lock]
    if current is None:
        taken = [name for (name,) in rows(conn, d.select_taken_tables)]
        if taken:
            raise ConfigError(
                f"the database already has tables named {', '.join(taken)} that "
                "langgraph-store-dual did not create (the official savers use these names): "
                "give it its own database or schema"
            )
        out.append(d.create_version_table)
    for version in range(current or 0, latest):
        out += [f"-- version {version + 1}", *d.migrations[version]]
        out.append(d.insert_version.replace(d.param("version"), str(version + 1)))
    if functions:
        out += ["-- functions run in place of statements without prepared statements", *functions]
    return current, latest, [*out, "COMMIT"]


def dialect(e: EngineSql) -> Any:
    """The saver dialect of an engine (its migrations and setup statements)."""
    return engine_named(e.name).load_dialect()


def grants(role: str, schema: str) -> list[str]:
    """What a least-privilege PostgreSQL runtime role needs once the schema is set up (it
    then runs with `auto_setup=False`): use the schema, read and write our tables, read
    the version table and the views, run the functions standing in for statements behind
    PgBouncer. `role` and `schema` are quoted as identifiers."""
    from .postgres.dialect import POSTGRES

    who, where = _ident(role), _ident(schema)
    routines = sorted(r.name for r in POSTGRES.routines.values())
    return [
        f"GRANT USAGE ON SCHEMA {where} TO {who}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(TABLES[:4])} TO {who}",
        f"GRANT SELECT ON schema_version, {', '.join(VIEWS)} TO {who}",
        f"GRANT EXECUTE ON FUNCTION {', '.join(routines)} TO {who}",
    ]


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
