"""Reading a database of the official SQLite saver (see `transfer.official_read`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..transfer.official_read import (
    _SQLITE_TABLES,
    RawCheckpoint,
    RawWrite,
    TableSource,
    check_layout,
    load_json,
)
from ..urls import redact, sqlite_path


class SqliteSource(TableSource):
    """A database of the official SQLite saver, opened read-only."""

    select_checkpoints = """SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,
        checkpoint, metadata FROM checkpoints WHERE thread_id = ?"""

    def __init__(self, url: str) -> None:
        path = sqlite_path(url)
        if path == ":memory:" or not Path(path).is_file():
            raise ConfigError(f"source database {path!r} does not exist ({redact(url)})")
        self.where = f"source {path!r}"
        self.conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True)
        try:
            found = {
                table: {row[1] for row in self.fetch(f"PRAGMA table_info({table})")}
                for table in ("checkpoints", "writes")
            }
            found = {t: c for t, c in found.items() if c}
            self.task_path = check_layout(found, _SQLITE_TABLES, self.where)
        except BaseException:
            self.conn.close()
            raise
        path = "task_path" if self.task_path else "''"
        self._writes_sql = f"""SELECT task_id, {path}, idx, channel, type, value FROM writes
            WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"""

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()

    def checkpoints(self, thread_id: str, rows: list[Any]) -> list[RawCheckpoint]:
        out = []
        for ns, cid, parent, type_, blob, meta in rows:
            what = f"metadata of checkpoint {thread_id}/{ns}/{cid}"
            raw = RawCheckpoint(ns, cid, parent, load_json(meta, what), whole=(type_, blob))
            raw.writes = [
                RawWrite(task_id, path, idx, channel, (wtype, value))
                for task_id, path, idx, channel, wtype, value in self.fetch(
                    self._writes_sql, (thread_id, ns, cid)
                )
            ]
            out.append(raw)
        return out

    def close(self) -> None:
        self.conn.close()


Source = SqliteSource
