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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, SchemaVersionError
from ..registry import engine_for_url

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


def open_source(url: str) -> TableSource:
    """The official database at `url` (sqlite:///path.db, postgresql://..., or a libpq
    keyword string), its layout checked; ConfigError or SchemaVersionError if it is not
    one this reader understands. Each engine reads in its `official` module."""
    source: TableSource = engine_for_url(url).tool("official").Source(url)
    return source


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


class TableSource:
    """A database written by an official saver, read a batch at a time.

    What both engines share: the SQL reading threads, checkpoints and sends, written
    with the engine's placeholder `p` over its writes table and column of values."""

    p = "?"
    writes_table, value_column = "writes", "value"
    task_path = True
    #: selects (checkpoint_ns, checkpoint_id, parent_checkpoint_id, ...) of a thread
    select_checkpoints = ""

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def checkpoints(self, thread_id: str, rows: list[Any]) -> list[RawCheckpoint]:
        """The checkpoints of `select_checkpoints` rows, with their blobs and writes."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def threads(self) -> list[ThreadSize]:
        writes = dict(
            self.fetch(
                f"""SELECT w.thread_id, count(*) FROM {self.writes_table} w WHERE EXISTS (
                SELECT 1 FROM checkpoints c WHERE c.thread_id = w.thread_id AND
                c.checkpoint_ns = w.checkpoint_ns AND c.checkpoint_id = w.checkpoint_id)
                GROUP BY w.thread_id"""
            )
        )
        rows = self.fetch(
            "SELECT thread_id, count(*) FROM checkpoints GROUP BY thread_id ORDER BY thread_id"
        )
        return [ThreadSize(str(tid), n, writes.get(tid, 0)) for tid, n in rows]

    def batch(
        self, thread_id: str, after: tuple[str, str] | None, limit: int, offset: int = 0
    ) -> list[RawCheckpoint]:
        """Up to `limit` checkpoints of a thread after `(checkpoint_id, checkpoint_ns)`
        (and `offset` more), in that order: the order they were made in."""
        p = self.p
        sql, params = self.select_checkpoints, [thread_id]
        if after is not None:
            sql += f" AND (checkpoint_id, checkpoint_ns) > ({p}, {p})"
            params += after
        sql += f" ORDER BY checkpoint_id, checkpoint_ns LIMIT {p} OFFSET {p}"
        return self.checkpoints(thread_id, self.fetch(sql, [*params, limit, offset]))

    def sends(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> list[Typed]:
        """The `Send`s a checkpoint before format 4 left as writes, in LangGraph's order."""
        p, order = self.p, "task_path, task_id, idx" if self.task_path else "task_id, idx"
        rows = self.fetch(
            f"""SELECT type, {self.value_column} FROM {self.writes_table} WHERE thread_id = {p}
            AND checkpoint_ns = {p} AND checkpoint_id = {p} AND channel = {p} ORDER BY {order}""",
            (thread_id, checkpoint_ns, checkpoint_id, TASKS),
        )
        return [(t, v) for t, v in rows]
