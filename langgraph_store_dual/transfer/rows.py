"""Our tables as a migration copies them, and each engine's SQL to read, count and write
them: rows go over unchanged between databases of one engine, and through a neutral form
(timestamps as datetimes, `refs` as lists of hashes) between engines.

Readers and writers use a saver's documented attributes only: `conn` (the place for
one's own SQL), `lock` (SQLite) and `dialect.name`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """One table: its report name (`kind`), columns with their neutral types ("text",
    "json", "jsonb", "ts", "refs", "float"), how many leading columns form the primary key, and what
    a row already in the target gets: "keep" it, "replace" it when any column differs, or
    take the source's when the source's `updated_at` is "newer"."""

    kind: str
    name: str
    columns: tuple[tuple[str, str], ...]
    key: int
    conflict: str

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def key_names(self) -> list[str]:
        return self.names[: self.key]

    @property
    def rest(self) -> list[str]:
        return self.names[self.key :]


VALUES = Table(
    "values",
    "checkpoint_values",
    (("thread_id", "text"), ("hash", "text"), ("value", "text"), ("refs", "refs")),
    2,
    "keep",  # a value is named by its hash: the same key holds the same value
)
WRITES = Table(
    "writes",
    "checkpoint_writes",
    (
        ("thread_id", "text"),
        ("checkpoint_ns", "text"),
        ("thread_ts", "text"),
        ("task_id", "text"),
        ("task_path", "text"),
        ("writes", "json"),
    ),
    4,
    "replace",  # a task's row gains writes later (a resume, an error replaced)
)
CHECKPOINTS = Table(
    "checkpoints",
    "checkpoints",
    (
        ("thread_id", "text"),
        ("checkpoint_ns", "text"),
        ("thread_ts", "text"),
        ("parent_ts", "text"),
        ("checkpoint", "json"),
        ("metadata", "jsonb"),
        ("run_id", "text"),
        ("created_at", "ts"),
        ("refs", "refs"),
    ),
    3,
    "replace",  # a put of the same checkpoint id overwrites it
)
THREADS = Table(
    "threads",
    "threads",
    (
        ("thread_id", "text"),
        ("user_id", "text"),
        ("title", "text"),
        ("status", "text"),
        ("metadata", "jsonb"),
        ("head_ts", "text"),
        ("state", "text"),
        ("state_ts", "text"),
        ("created_at", "ts"),
        ("updated_at", "ts"),
        ("ttl_seconds", "float"),
        ("ttl_strategy", "text"),
        ("expires_at", "ts"),
    ),
    1,
    "newer",  # every change of a thread row moves its updated_at
)

#: The copy order. Each table's rows are invisible until the next one's arrive (values
#: until a snapshot refers to them, writes until their checkpoint exists, checkpoints are
#: listed by thread rows last), so a copy stopped anywhere leaves the target consistent.
TABLES = (VALUES, WRITES, CHECKPOINTS, THREADS)


class Rows:
    """Reading and writing our tables on one engine."""

    engine: str
    placeholder: str
    distinct: str  # the operator telling two nullable values apart
    json_text: str = ""  # what makes a JSON column comparable

    def version(self) -> int | None:
        """The schema version, None when the database has no schema of ours."""
        raise NotImplementedError

    def close(self) -> None:
        """Give back what the reader holds (a pooled connection)."""

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: what is read within sees one state of the database."""
        raise NotImplementedError
        yield

    def batches(self, table: Table, since: datetime | None, size: int) -> Iterator[list[Row]]:
        """The rows of `table` (of threads updated since `since`), in key order, `size`
        at a time."""
        raise NotImplementedError

    def count(self, table: Table, since: datetime | None) -> int:
        where, params = self._where(table, since)
        return int(self.fetch(f"SELECT count(*) FROM {table.name}{where}", params)[0][0])

    def _where(self, table: Table, since: datetime | None) -> tuple[str, list[Any]]:
        """The condition keeping rows of threads updated at or after `since`, if given."""
        if since is None:
            return "", []
        p = self.placeholder
        if table is THREADS:
            return f" WHERE updated_at >= {p}", [self.since_param(since)]
        threads = f"SELECT thread_id FROM threads WHERE updated_at >= {p}"
        return f" WHERE thread_id IN ({threads})", [self.since_param(since)]

    def write(self, table: Table, rows: list[Row]) -> int:
        """Write a batch in one transaction; returns how many rows it inserted or changed."""
        raise NotImplementedError

    def insert(self, table: Table, rows: str) -> str:
        """An INSERT of `rows` (a VALUES list or a SELECT) into `table` (as `o`), with
        what a row already there gets (see `Table.conflict`)."""
        keys = ", ".join(table.key_names)
        sql = (
            f"INSERT INTO {table.name} AS o ({', '.join(table.names)}) {rows} ON CONFLICT ({keys})"
        )
        if table.conflict == "keep":
            return f"{sql} DO NOTHING"
        update = ", ".join(f"{c} = excluded.{c}" for c in table.rest)
        if table.conflict == "newer":
            return f"{sql} DO UPDATE SET {update} WHERE excluded.updated_at > o.updated_at"
        kinds = dict(table.columns)
        text = {c: self.json_text if kinds[c] == "json" else "" for c in table.rest}
        differ = " OR ".join(f"o.{c}{t} {self.distinct} excluded.{c}{t}" for c, t in text.items())
        return f"{sql} DO UPDATE SET {update} WHERE {differ}"

    def existing(self, table: Table, rows: list[Row]) -> int:
        """How many of these rows' keys the table holds already."""
        raise NotImplementedError

    def fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        raise NotImplementedError

    def since_param(self, since: datetime) -> Any:
        raise NotImplementedError

    def _select(self, table: Table, since: datetime | None) -> tuple[str, list[Any]]:
        where, params = self._where(table, since)
        columns = ", ".join(self.read_columns(table))
        return (
            f"SELECT {columns} FROM {table.name}{where} ORDER BY {', '.join(table.key_names)}",
            params,
        )

    def read_columns(self, table: Table) -> list[str]:
        return table.names

    # -- the neutral form, between engines -----------------------------------------------
    def decode(self, table: Table, rows: list[Row]) -> list[Row]:
        """Rows as read here, in the neutral form."""
        raise NotImplementedError

    def encode(self, table: Table, rows: list[Row]) -> list[Row]:
        """Neutral rows, as written here."""
        raise NotImplementedError


def _convert(table: Table, rows: list[Row], convert: dict[str, Any]) -> list[Row]:
    funcs = [convert.get(kind) for _, kind in table.columns]
    if not any(funcs):
        return rows
    return [
        tuple(v if f is None or v is None else f(v) for f, v in zip(funcs, row, strict=True))
        for row in rows
    ]


# -- SQLite ---------------------------------------------------------------------------------


def sqlite_time(value: datetime) -> str:
    """A time as SQLite columns of ours hold it: UTC, milliseconds, `Z`."""
    utc = value.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _parse_sqlite_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _json_list(text: str) -> list[str]:
    return list(orjson.loads(text))


def _dump_list(refs: list[str]) -> str:
    return orjson.dumps(refs).decode()


class SqliteRows(Rows):
    engine = "sqlite"
    placeholder = "?"
    distinct = "IS NOT"

    def __init__(self, saver: Any) -> None:
        self.conn = saver.conn
        self.lock = saver.lock

    def fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()  # type: ignore[no-any-return]

    def version(self) -> int | None:
        found = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        if not self.fetch(found, ()):
            return None
        return self.fetch("SELECT max(version) FROM schema_version", ())[0][0]  # type: ignore[no-any-return]

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        # WAL: the read transaction sees one state and holds up no writer.
        with self.lock:
            self.conn.execute("BEGIN")
            try:
                yield
            finally:
                self.conn.rollback()

    def batches(self, table: Table, since: datetime | None, size: int) -> Iterator[list[Row]]:
        sql, params = self._select(table, since)
        cur = self.conn.execute(sql, params)
        try:
            while rows := cur.fetchmany(size):
                yield rows
        finally:
            cur.close()

    def since_param(self, since: datetime) -> Any:
        return sqlite_time(since)

    def write(self, table: Table, rows: list[Row]) -> int:
        sql = self.insert(table, f"VALUES ({', '.join('?' * len(table.columns))})")
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                cur = self.conn.executemany(sql, rows)
                changed = cur.rowcount
            except BaseException:
                self.conn.rollback()
                raise
            self.conn.commit()
        return int(changed)

    def existing(self, table: Table, rows: list[Row]) -> int:
        keys = table.key_names
        picks = ", ".join(f"value ->> {i}" for i in range(len(keys)))
        sql = f"""SELECT count(*) FROM {table.name} WHERE ({", ".join(keys)})
            IN (SELECT {picks} FROM json_each(?))"""
        param = orjson.dumps([r[: len(keys)] for r in rows]).decode()
        return int(self.fetch(sql, (param,))[0][0])

    def decode(self, table: Table, rows: list[Row]) -> list[Row]:
        return _convert(table, rows, {"ts": _parse_sqlite_time, "refs": _json_list})

    def encode(self, table: Table, rows: list[Row]) -> list[Row]:
        return _convert(table, rows, {"ts": sqlite_time, "refs": _dump_list})


# -- PostgreSQL -----------------------------------------------------------------------------

#: PostgreSQL array types of the neutral column types, and casts to the column's type.
_PG_ARRAY = {"ts": "timestamptz[]", "float": "float8[]"}
_PG_CAST = {"json": "::json", "jsonb": "::jsonb"}

#: A named cursor streams a table from the snapshot without holding it all in memory.
_CURSOR = "langgraph_store_dual_migrate"


class PostgresRows(Rows):
    """On one connection of the saver's pool, held until `close`."""

    engine = "postgres"
    placeholder = "%s"
    distinct = "IS DISTINCT FROM"
    json_text = "::text"  # the json type has no equality

    def __init__(self, saver: Any) -> None:
        self._lease = saver.conn.connection()
        self.conn = self._lease.__enter__()

    def close(self) -> None:
        self._lease.__exit__(None, None, None)

    def fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        return self.conn.execute(sql, params).fetchall()  # type: ignore[no-any-return]

    def version(self) -> int | None:
        if not self.fetch("SELECT to_regclass('schema_version') IS NOT NULL", ())[0][0]:
            return None
        return self.fetch("SELECT max(version) FROM schema_version", ())[0][0]  # type: ignore[no-any-return]

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        try:
            yield
        finally:
            if not (self.conn.closed or self.conn.broken):  # else the server ended it
                self.conn.rollback()

    def read_columns(self, table: Table) -> list[str]:
        # JSON as the text stored, never parsed by the driver
        return [f"{c}::text" if kind in ("json", "jsonb") else c for c, kind in table.columns]

    def batches(self, table: Table, since: datetime | None, size: int) -> Iterator[list[Row]]:
        sql, params = self._select(table, since)
        with self.conn.cursor(_CURSOR) as cur:
            cur.itersize = size
            cur.execute(sql, params)
            while rows := cur.fetchmany(size):
                yield rows

    def since_param(self, since: datetime) -> Any:
        return since

    def _unnest(self, table: Table) -> str:
        arrays = ", ".join(f"%s::{_PG_ARRAY.get(kind, 'text[]')}" for _, kind in table.columns)
        return f"unnest({arrays}) AS s ({', '.join(table.names)})"

    def write(self, table: Table, rows: list[Row]) -> int:
        picks = ", ".join(f"s.{c}{_PG_CAST.get(kind, '')}" for c, kind in table.columns)
        insert = self.insert(table, f"SELECT {picks} FROM {self._unnest(table)}")
        sql = f"WITH written AS ({insert} RETURNING 1) SELECT count(*) FROM written"
        # one statement: atomic on its own
        return int(self.fetch(sql, [list(column) for column in zip(*rows, strict=True)])[0][0])

    def existing(self, table: Table, rows: list[Row]) -> int:
        keys = table.key_names
        arrays = ", ".join(["%s::text[]"] * len(keys))
        sql = f"""SELECT count(*) FROM {table.name} WHERE ({", ".join(keys)})
            IN (SELECT * FROM unnest({arrays}))"""
        columns = [list(column) for column in zip(*(r[: len(keys)] for r in rows), strict=True)]
        return int(self.fetch(sql, columns)[0][0])

    def decode(self, table: Table, rows: list[Row]) -> list[Row]:
        # timestamps arrive as datetimes; refs are space-separated hashes
        return _convert(table, rows, {"refs": str.split})

    def encode(self, table: Table, rows: list[Row]) -> list[Row]:
        return _convert(table, rows, {"refs": " ".join})


def rows_of(saver: Any) -> Rows:
    """The reader/writer for a saver's database (close a PostgreSQL one with `close`)."""
    if saver.dialect.name == "sqlite":
        return SqliteRows(saver)
    return PostgresRows(saver)
