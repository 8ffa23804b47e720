"""Reading the tables of the official LangGraph savers (`langgraph-checkpoint-sqlite` and
`langgraph-checkpoint-postgres`, 3.x) with our own SQL: no official package is needed.

SQLite keeps a whole checkpoint as one typed blob (`checkpoints.type`, `.checkpoint`) and
writes in `writes`. PostgreSQL keeps a checkpoint as JSONB whose `channel_values` hold only
primitives; the other values are rows of `checkpoint_blobs` found by (thread, namespace,
channel, version from `channel_versions`); writes are in `checkpoint_writes`, and
`checkpoint_migrations` holds the schema version. Values stay typed `(type, bytes)` here:
decoding them is the importer's business.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError, SchemaVersionError
from ..urls import redact, sqlite_path

#: The newest `checkpoint_migrations` version of langgraph-checkpoint-postgres 3.x that
#: this reader understands (version 9 added `checkpoint_writes.task_path`).
PG_LATEST_MIGRATION = 9

#: LangGraph's channel of pending `Send`s (checkpoints before format 4 kept them as writes
#: on their parent).
TASKS = "__pregel_tasks"

Typed = tuple[str, bytes | None]

_CHECKPOINT_COLUMNS = {
    "thread_id",
    "checkpoint_ns",
    "checkpoint_id",
    "parent_checkpoint_id",
    "type",
    "checkpoint",
    "metadata",
}
_WRITE_COLUMNS = {"thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx", "channel"}
_SQLITE_TABLES = {
    "checkpoints": (_CHECKPOINT_COLUMNS, set()),
    "writes": (_WRITE_COLUMNS | {"type", "value"}, {"task_path"}),
}
_PG_TABLES = {
    "checkpoints": (_CHECKPOINT_COLUMNS, set()),
    "checkpoint_blobs": (
        {"thread_id", "checkpoint_ns", "channel", "version", "type", "blob"},
        set(),
    ),
    "checkpoint_writes": (_WRITE_COLUMNS | {"type", "blob"}, {"task_path"}),
}


@dataclass(frozen=True, slots=True)
class RawWrite:
    """One pending write as stored."""

    task_id: str
    task_path: str
    idx: int
    channel: str
    value: Typed


@dataclass(slots=True)
class RawCheckpoint:
    """One checkpoint as stored: `whole` (SQLite: the typed checkpoint), or `inline` (the
    PostgreSQL JSON document) with the typed `blobs` of its other channel values."""

    checkpoint_ns: str
    checkpoint_id: str
    parent_id: str | None
    metadata: dict[str, Any]
    whole: Typed | None = None
    inline: dict[str, Any] | None = None
    blobs: dict[str, Typed] = field(default_factory=dict)
    writes: list[RawWrite] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ThreadSize:
    """A source thread: its checkpoints, and the writes that belong to one of them."""

    thread_id: str
    checkpoints: int
    writes: int


class Source(Protocol):
    """A database written by an official saver, read a batch at a time."""

    def threads(self) -> list[ThreadSize]: ...
    def batch(
        self, thread_id: str, after: tuple[str, str] | None, limit: int, offset: int = 0
    ) -> list[RawCheckpoint]: ...
    def sends(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> list[Typed]: ...
    def close(self) -> None: ...


def open_source(url: str) -> Source:
    """The official database at `url` (sqlite:///path.db, postgresql://..., or a libpq
    keyword string), its layout checked; ConfigError or SchemaVersionError if it is not
    one this reader understands."""
    if not isinstance(url, str):
        raise ConfigError(f"a database URL must be a str, got {type(url).__name__}")
    if url.lower().startswith("sqlite:"):
        return SqliteSource(sqlite_path(url), url)
    from .official_pg import PostgresSource

    return PostgresSource(url)


def check_layout(
    found: dict[str, set[str]], tables: dict[str, tuple[set[str], set[str]]], where: str
) -> bool:
    """Check the official tables' columns in `found` (table -> columns); return whether
    the writes table has `task_path` (databases from before it lack it)."""
    if "checkpoints" in found and "thread_ts" in found["checkpoints"]:
        raise ConfigError(
            f"{where} is a langgraph-store-dual database, not one of the official savers': "
            "copy it with migrate instead"
        )
    for table, (needed, optional) in tables.items():
        columns = found.get(table)
        if columns is None:
            raise ConfigError(
                f"{where} has no table {table!r}: it is not a database of the official "
                "LangGraph savers"
            )
        if missing := sorted(needed - columns):
            raise ConfigError(f"{where}: table {table!r} lacks columns {', '.join(missing)}")
        if unknown := sorted(columns - needed - optional):
            raise SchemaVersionError(
                f"{where}: table {table!r} has columns {', '.join(unknown)} that this "
                "version of langgraph-store-dual does not know (a newer official saver "
                "wrote it): upgrade langgraph-store-dual"
            )
    writes = next(t for t in tables if t.endswith("writes"))
    return "task_path" in found[writes]


def load_json(text: str | bytes | None, what: str) -> Any:
    """Parse a JSON column (as the official savers do, with `json`: any integer size)."""
    if text is None:
        return {}
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SchemaVersionError(f"{what} is not valid JSON: {exc}") from exc


class SqliteSource:
    """A database of the official SQLite saver, opened read-only."""

    def __init__(self, path: str, url: str) -> None:
        if path == ":memory:" or not Path(path).is_file():
            raise ConfigError(f"source database {path!r} does not exist ({redact(url)})")
        self.where = f"source {path!r}"
        self.conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True)
        try:
            found = {
                table: {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}
                for table in ("checkpoints", "writes")
            }
            found = {t: c for t, c in found.items() if c}
            path_col = "task_path" if check_layout(found, _SQLITE_TABLES, self.where) else "''"
        except BaseException:
            self.conn.close()
            raise
        self._writes_sql = (
            f"SELECT task_id, {path_col}, idx, channel, type, value FROM writes "
            "WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
        )

    def threads(self) -> list[ThreadSize]:
        writes = dict(
            self.conn.execute(
                """SELECT w.thread_id, count(*) FROM writes w WHERE EXISTS (SELECT 1
                FROM checkpoints c WHERE c.thread_id = w.thread_id AND c.checkpoint_ns =
                w.checkpoint_ns AND c.checkpoint_id = w.checkpoint_id) GROUP BY w.thread_id"""
            )
        )
        rows = self.conn.execute(
            "SELECT thread_id, count(*) FROM checkpoints GROUP BY thread_id ORDER BY thread_id"
        )
        return [ThreadSize(str(tid), n, writes.get(tid, 0)) for tid, n in rows]

    def _checkpoints(self, thread_id: str, rows: Sequence[Any]) -> list[RawCheckpoint]:
        out = []
        for ns, cid, parent, type_, blob, meta in rows:
            what = f"metadata of checkpoint {thread_id}/{ns}/{cid}"
            raw = RawCheckpoint(ns, cid, parent, load_json(meta, what), whole=(type_, blob))
            raw.writes = [
                RawWrite(task_id, path, idx, channel, (wtype, value))
                for task_id, path, idx, channel, wtype, value in self.conn.execute(
                    self._writes_sql, (thread_id, ns, cid)
                )
            ]
            out.append(raw)
        return out

    _SELECT = """SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,
        metadata FROM checkpoints WHERE thread_id = ?"""

    def batch(
        self, thread_id: str, after: tuple[str, str] | None, limit: int, offset: int = 0
    ) -> list[RawCheckpoint]:
        """Up to `limit` checkpoints of a thread after `(checkpoint_id, checkpoint_ns)`
        (and `offset` more), in that order: the order they were made in."""
        sql, params = self._SELECT, [thread_id]
        if after is not None:
            sql += " AND (checkpoint_id, checkpoint_ns) > (?, ?)"
            params += after
        sql += " ORDER BY checkpoint_id, checkpoint_ns LIMIT ? OFFSET ?"
        rows = self.conn.execute(sql, [*params, limit, offset]).fetchall()
        return self._checkpoints(thread_id, rows)

    def sends(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> list[Typed]:
        rows = self.conn.execute(
            """SELECT type, value FROM writes WHERE thread_id = ? AND checkpoint_ns = ?
            AND checkpoint_id = ? AND channel = ? ORDER BY task_path, task_id, idx"""
            if "task_path" in self._writes_sql
            else """SELECT type, value FROM writes WHERE thread_id = ? AND checkpoint_ns = ?
            AND checkpoint_id = ? AND channel = ? ORDER BY task_id, idx""",
            (thread_id, checkpoint_ns, checkpoint_id, TASKS),
        )
        return [(t, v) for t, v in rows]

    def close(self) -> None:
        self.conn.close()
