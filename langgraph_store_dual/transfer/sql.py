"""Reads on a saver's own connection of what the saver API does not return: each write's
task path and index, the checkpoints a thread holds, the schema version, row counts.
They read only the documented tables (README, "Storage: JSON you can query")."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from ..errors import DecodeError

#: A task's writes as stored: (task_id, task_path, [[idx, channel, value], ...]).
TaskWrites = tuple[str, str, list[Any]]

#: The tables an export, a backup and a restore count, by the kind a report names.
TABLES = {
    "threads": "threads",
    "checkpoints": "checkpoints",
    "writes": "checkpoint_writes",
    "values": "checkpoint_values",
}


def engine(saver: Any) -> str:
    """ "sqlite" or "postgresql": the engine of a saver."""
    return "sqlite" if saver.dialect.name == "sqlite" else "postgresql"


def select(saver: Any, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """The rows of one SELECT (`?` placeholders) on a sync saver's own connection, with
    no schema check (a restore looks at a database before it is ours)."""
    if engine(saver) == "sqlite":
        with saver.lock:
            return list(saver.conn.execute(sql, params).fetchall())
    sql = sql.replace("?", "%s")
    if hasattr(saver.conn, "getconn"):  # a pool
        with saver.conn.connection() as conn:
            return list(conn.execute(sql, params).fetchall())
    with saver.lock, saver.conn.transaction():
        return list(saver.conn.execute(sql, params).fetchall())


def schema_version(saver: Any) -> int:
    """The schema version of the saver's database."""
    return int(select(saver, "SELECT max(version) FROM schema_version")[0][0] or 0)


def count(saver: Any, kind: str) -> int:
    """The rows of one kind of `TABLES` (writes: each write, not each task's row)."""
    if kind == "writes":
        sql = "SELECT coalesce(sum(json_array_length(writes)), 0) FROM checkpoint_writes"
    else:
        sql = f"SELECT count(*) FROM {TABLES[kind]}"
    return int(select(saver, sql)[0][0])


def thread_ids(saver: Any, user_id: str | None = None) -> list[str]:
    """The ids of every thread, or of a user's threads."""
    if user_id is None:
        return [tid for (tid,) in select(saver, "SELECT thread_id FROM threads ORDER BY thread_id")]
    sql = "SELECT thread_id FROM threads WHERE user_id = ? ORDER BY thread_id"
    return [tid for (tid,) in select(saver, sql, (user_id,))]


def checkpoint_ids(saver: Any, thread_id: str) -> set[tuple[str, str]]:
    """(checkpoint_ns, checkpoint_id) of each checkpoint a thread holds."""
    sql = "SELECT checkpoint_ns, thread_ts FROM checkpoints WHERE thread_id = ?"
    return {(ns, ts) for ns, ts in select(saver, sql, (thread_id,))}


def writes_of(
    saver: Any, thread_id: str, checkpoint_ids: Iterable[str]
) -> dict[tuple[str, str], list[TaskWrites]]:
    """The writes to the checkpoints `checkpoint_ids` of a thread, by (checkpoint_ns,
    checkpoint_id), each task's writes with their index and channel as stored."""
    ids = list(dict.fromkeys(checkpoint_ids))
    if not ids:
        return {}
    column = "writes" if engine(saver) == "sqlite" else "writes::text"
    sql = (
        f"SELECT checkpoint_ns, thread_ts, task_id, task_path, {column} FROM checkpoint_writes "
        f"WHERE thread_id = ? AND thread_ts IN ({', '.join('?' * len(ids))})"
    )
    out: dict[tuple[str, str], list[TaskWrites]] = {}
    for ns, ts, task_id, task_path, text in select(saver, sql, (thread_id, *ids)):
        try:
            entries = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(
                f"stored writes of task {task_id!r} of checkpoint {thread_id}/{ns}/{ts} are "
                f"not JSON: {exc}"
            ) from exc
        out.setdefault((ns, ts), []).append((task_id, task_path, entries))
    return out
