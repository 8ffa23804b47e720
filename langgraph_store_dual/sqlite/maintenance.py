"""The SQLite statements and connection of the operator tools (`maintenance`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..maintenance import EngineSql, existing_sqlite_path


def connect(url: str) -> sqlite3.Connection:
    """The existing SQLite file `url` names, read-write, autocommit; never created."""
    uri = Path(existing_sqlite_path(url)).absolute().as_uri() + "?mode=rw"
    return sqlite3.connect(uri, uri=True, isolation_level=None)


SQL = EngineSql(
    name="sqlite",
    placeholder="?",
    has_table="SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
    table_bytes="""SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN
        (SELECT name FROM sqlite_master WHERE tbl_name = ?1)""",
    size="length(CAST({} AS BLOB))",
    ago="strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('-%.6f seconds', ?))",
    settings=(
        ("sqlite_version", "SELECT sqlite_version()"),
        ("journal_mode", "PRAGMA journal_mode"),
        ("page_size", "PRAGMA page_size"),
        ("page_count", "PRAGMA page_count"),
        ("freelist_count", "PRAGMA freelist_count"),
    ),
    connect=connect,
)
