"""Reading a database of the official PostgreSQL saver (see `official_read`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ..errors import ConfigError, SchemaVersionError
from ..transfer.official_read import (
    _PG_TABLES,
    PG_LATEST_MIGRATION,
    RawCheckpoint,
    RawWrite,
    TableSource,
    check_layout,
    load_json,
)
from ..urls import redact
from .errors import ConnectError

# The blob of each channel version a checkpoint names, for a batch of its checkpoints.
_BLOBS = """SELECT c.checkpoint_ns, c.checkpoint_id, b.channel, b.type, b.blob
    FROM checkpoints c
    CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') AS v
    JOIN checkpoint_blobs b ON b.thread_id = c.thread_id AND b.checkpoint_ns =
        c.checkpoint_ns AND b.channel = v.key AND b.version = v.value
    WHERE c.thread_id = %s AND c.checkpoint_id = ANY(%s)"""


class PostgresSource(TableSource):
    """A database (or schema, by `search_path`) of the official PostgreSQL saver."""

    p = "%s"
    writes_table, value_column = "checkpoint_writes", "blob"
    select_checkpoints = """SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id,
        checkpoint::text, metadata::text FROM checkpoints WHERE thread_id = %s"""

    def __init__(self, url: str) -> None:
        self.where = f"source {redact(url)}"
        try:
            password = conninfo_to_dict(url).get("password")
        except psycopg.Error:  # its message may quote the URL, password included
            raise ConfigError(f"malformed PostgreSQL URL for the {self.where}") from None
        try:
            self.conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            message = str(exc).strip()
            if password:
                message = message.replace(str(password), "***")
            if isinstance(exc, psycopg.OperationalError):
                raise ConnectError(f"cannot connect to the {self.where}: {message}") from None
            raise ConfigError(f"{message} in {self.where}") from None
        try:
            self.task_path = self._check()
        except BaseException:
            self.conn.close()
            raise
        path = "task_path" if self.task_path else "''"
        self._writes_sql = f"""SELECT checkpoint_ns, checkpoint_id, task_id, {path}, idx,
            channel, type, blob FROM checkpoint_writes
            WHERE thread_id = %s AND checkpoint_id = ANY(%s)"""

    def _check(self) -> bool:
        rows = self.conn.execute(
            """SELECT table_name::text, column_name::text FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = ANY(%s)""",
            (["checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations"],),
        ).fetchall()
        found: dict[str, set[str]] = {}
        for table, column in rows:
            found.setdefault(table, set()).add(column)
        if "checkpoint_migrations" in found:
            row = self.conn.execute("SELECT max(v) FROM checkpoint_migrations").fetchone()
            version = row[0] if row else None
            if version is not None and version > PG_LATEST_MIGRATION:
                raise SchemaVersionError(
                    f"{self.where} is at official schema version {version}, newer than "
                    f"version {PG_LATEST_MIGRATION} that this langgraph-store-dual reads: "
                    "upgrade langgraph-store-dual"
                )
        elif "checkpoints" in found and "thread_ts" not in found["checkpoints"]:
            raise ConfigError(f"{self.where} has no table 'checkpoint_migrations'")
        return check_layout(found, _PG_TABLES, self.where)

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()

    def checkpoints(self, thread_id: str, rows: list[Any]) -> list[RawCheckpoint]:
        out: dict[tuple[str, str], RawCheckpoint] = {}
        for ns, cid, parent, body, meta in rows:
            what = f"checkpoint {thread_id}/{ns}/{cid}"
            inline = load_json(body, what)
            metadata = load_json(meta, f"metadata of {what}")
            out[(ns, cid)] = RawCheckpoint(ns, cid, parent, metadata, inline=inline)
        if not out:
            return []
        ids = sorted({cid for _, cid in out})
        for ns, cid, channel, type_, blob in self.conn.execute(_BLOBS, (thread_id, ids)):
            if (raw := out.get((ns, cid))) is not None:
                raw.blobs[channel] = (type_, blob)
        for ns, cid, task_id, path, idx, channel, type_, blob in self.conn.execute(
            self._writes_sql, (thread_id, ids)
        ):
            if (raw := out.get((ns, cid))) is not None:
                raw.writes.append(RawWrite(task_id, path, idx, channel, (type_, blob)))
        return list(out.values())

    def close(self) -> None:
        self.conn.close()


Source = PostgresSource
