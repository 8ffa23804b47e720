"""Backup and restore of a SQLite database with SQLite's online backup API.

The backup API copies a consistent snapshot of the database, the WAL's committed pages
included, while other connections keep writing: never a file copy (which can catch the
main file and its WAL out of step). Each copy is checked before it is reported done: its
integrity (`PRAGMA quick_check`), our schema, and every stored value referred to.
PostgreSQL backups are `pg_dump`'s job (README, "Backups").
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

from ..errors import ConfigError, DecodeError
from ..opener import from_url
from ..registry import engine_for_url
from ..transfer import sql
from ..transfer.jsonl import require_source
from ..transfer.report import Progress, ProgressCallback, TableCount, TransferReport
from ..urls import redact, sqlite_path
from .savers import SqliteSaver

PG_RECIPE = (
    "PostgreSQL is backed up with pg_dump and restored with pg_restore: see the README, "
    '"Backups" (a SQLite backup file goes into PostgreSQL with migrate)'
)


def _sqlite_only(url: str, what: str) -> str:
    """The SQLite path of `url`; ConfigError pointing at pg_dump for PostgreSQL."""
    if engine_for_url(url).name == "postgres":
        raise ConfigError(f"{what} of {redact(url)}: {PG_RECIPE}")
    path = sqlite_path(url)
    if path == ":memory:":
        raise ConfigError(f"{what}: an in-memory database cannot be backed up or restored to")
    return path


def _url(path: str | os.PathLike[str]) -> str:
    return "sqlite:///" + quote(os.fspath(path))


def _copy(
    source: sqlite3.Connection, target: sqlite3.Connection, progress: ProgressCallback | None
) -> None:
    """Copy in one step: a step reads one snapshot, so writers never restart it."""

    def report(status: int, remaining: int, total: int) -> None:
        if progress is not None:
            progress(Progress("pages", total - remaining, total))

    source.backup(target, pages=-1, progress=report)


def verify(path: str | os.PathLike[str], report: TransferReport) -> None:
    """Check a database file: integrity, our schema, stored values; count its rows into
    `report.copied`, what is wrong with its stored values into `report.problems`.
    DecodeError if it is not a SQLite database or is damaged."""
    conn = sqlite3.connect(f"file:{quote(os.fspath(path))}?mode=ro", uri=True)
    try:
        (result,) = conn.execute("PRAGMA quick_check").fetchone()
    except sqlite3.DatabaseError as exc:
        raise DecodeError(f"{path} is not a SQLite database or is damaged: {exc}") from exc
    finally:
        conn.close()
    if result != "ok":
        raise DecodeError(f"{path} is damaged: {result}")
    with from_url(_url(path), auto_setup=False) as saver:
        saver.threads.count()  # SchemaVersionError unless it is ours, at a known version
        report.problems.extend(saver.check_references())
        for kind in sql.TABLES:
            report.add(kind, copied=sql.count(saver, kind))
    report.counts = [TableCount(k, n, n) for k, n in report.copied.items()]


def backup(
    url: str, path: str | os.PathLike[str], *, progress: ProgressCallback | None = None
) -> TransferReport:
    """Copy the SQLite database `url` to the new file `path` while it is in use, and
    check the copy. PostgreSQL: ConfigError pointing at the pg_dump recipe."""
    _sqlite_only(url, "backup")
    require_source(url)
    target = Path(path)
    if target.exists():
        raise ConfigError(f"the backup file {target} exists: choose a new path")
    started, report = time.monotonic(), TransferReport()
    partial = target.with_name(target.name + ".partial")
    try:
        with SqliteSaver.from_conn_string(sqlite_path(url), auto_setup=False) as saver:
            saver.threads.count()  # the source is ours, at a schema this package reads
            copy = sqlite3.connect(partial)
            try:
                with saver.lock:
                    _copy(saver.conn, copy, progress)
            finally:
                copy.close()
        verify(partial, report)
    except BaseException:
        partial.unlink(missing_ok=True)  # a copy cut short (a full disk) or not whole
        raise
    partial.replace(target)
    report.seconds = time.monotonic() - started
    return report


def restore(
    path: str | os.PathLike[str], url: str, *, progress: ProgressCallback | None = None
) -> TransferReport:
    """Copy the backup file `path` (checked first) into the SQLite database `url`, a new
    file or one without threads or checkpoints. PostgreSQL: ConfigError (pg_restore)."""
    target = _sqlite_only(url, "restore")
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"the backup file {source} does not exist")
    started, report = time.monotonic(), TransferReport()
    verify(source, TransferReport())
    if Path(target).exists():
        _refuse_nonempty(url)
    copy = sqlite3.connect(f"file:{quote(os.fspath(source))}?mode=ro", uri=True)
    try:
        with (
            SqliteSaver.from_conn_string(sqlite_path(url), auto_setup=False) as saver,
            saver.lock,
        ):
            _copy(copy, saver.conn, progress)
    finally:
        copy.close()
    verify(target, report)
    report.seconds = time.monotonic() - started
    return report


def _refuse_nonempty(url: str) -> None:
    """ConfigError unless the existing database `url` holds nothing a restore would lose."""
    with from_url(url, auto_setup=False) as saver:
        tables = sql.select(saver, "SELECT name FROM sqlite_master WHERE type = 'table'")
        if not tables:
            return
        names = {name for (name,) in tables}
        if "schema_version" not in names:
            raise ConfigError(
                f"{sqlite_path(url)} holds other tables ({', '.join(sorted(names))}): "
                "restore into a new file"
            )
        held = {kind: sql.count(saver, kind) for kind in ("threads", "checkpoints")}
        if any(held.values()):
            raise ConfigError(
                f"{sqlite_path(url)} holds {held['threads']} threads and {held['checkpoints']} "
                "checkpoints: restore into a new file, or delete it first"
            )
