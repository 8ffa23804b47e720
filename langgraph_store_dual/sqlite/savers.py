"""SQLite savers: one shared connection, WAL, a busy timeout, write transactions that
take the write lock up front (BEGIN IMMEDIATE) so two processes never dead-lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from functools import partial
from typing import Any, TypeVar

import aiosqlite

from ..closed import ClosedConnection
from ..core import ops
from ..core.ops import Rows, Stmt
from ..errors import check_options
from ..saver import AsyncSaver, SyncSaver
from .dialect import SQLITE

T = TypeVar("T")

#: How long a writer waits for another process's write lock before giving up (ms).
BUSY_TIMEOUT_MS = 30_000

#: First and longest sleep between two attempts to take the write lock (s).
WRITE_POLL_FIRST = 0.0002
WRITE_POLL_MAX = 0.002

#: Per connection: wait for locks, relaxed fsync (WAL keeps it atomic), WAL for files.
PRAGMAS = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA journal_mode = WAL",
)


def _busy_waits(first: float, most: float) -> Iterator[float]:
    """Back-off delays (s) from `first`, doubling up to `most`, until the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = first
    while time.monotonic() < deadline:
        yield delay
        delay = min(delay * 2, most)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def connect(path: str) -> sqlite3.Connection:
    """Open a connection the savers can share across threads."""
    return sqlite3.connect(path, check_same_thread=False, isolation_level=None)


def _execute_waiting(
    conn: sqlite3.Connection, sql: str, first: float = 0.001, most: float = 0.05
) -> None:
    """Run a statement that takes a lock, retrying while SQLite reports it busy (as it
    does without its busy handler while another connection switches the file to WAL or
    recovers it), sleeping `_busy_waits(first, most)` in between."""
    for delay in _busy_waits(first, most):
        try:
            conn.execute(sql).fetchall()
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            time.sleep(delay)
    conn.execute(sql).fetchall()


def configure(conn: sqlite3.Connection) -> None:
    """Apply `PRAGMAS` to a connection."""
    for pragma in PRAGMAS:
        _execute_waiting(conn, pragma)


def _execute(conn: sqlite3.Connection, stmt: Stmt) -> Rows:
    if stmt.many:
        conn.executemany(stmt.sql, stmt.params)
        return []
    return conn.execute(stmt.sql, stmt.params).fetchall()


def _begin_write(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, polling for the write lock every few milliseconds instead of
    through SQLite's busy handler, which sleeps up to 100 ms at a time once it has waited
    a while: with writers in several processes, a waiter would sleep on through the
    moments the lock is free, and the slowest turns take seconds."""
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        _execute_waiting(conn, "BEGIN IMMEDIATE", WRITE_POLL_FIRST, WRITE_POLL_MAX)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def run_transaction(conn: sqlite3.Connection, op: ops.Op[T], write: bool) -> T:
    """Run `op` in one transaction on `conn`, blocking (the caller serialises access)."""
    if write:
        _begin_write(conn)
    else:
        _execute_waiting(conn, "BEGIN")
    try:
        result = ops.run(op, partial(_execute, conn))
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    return result


class SqliteSaver(SyncSaver):
    """LangGraph checkpointer on SQLite, for the sync and the async graph APIs.

    >>> with SqliteSaver.from_conn_string("agent.db") as saver:
    ...     graph = builder.compile(checkpointer=saver)
    """

    dialect = SQLITE
    list_in_pages = True  # an open read would keep its snapshot: no writes until it ends

    def __init__(self, conn: sqlite3.Connection, **kwargs: Any) -> None:
        check_options(type(self), kwargs)
        super().__init__(**kwargs)
        self.conn = conn
        self.lock = threading.RLock()
        configure(conn)

    @classmethod
    @contextmanager
    def from_conn_string(cls, conn_string: str, **kwargs: Any) -> Iterator[SqliteSaver]:
        """A saver on a file path (or ":memory:"), closed on exit."""
        with closing(connect(conn_string)) as conn:
            saver = cls(conn, **kwargs)
            try:
                yield saver
            finally:
                saver.conn = ClosedConnection(saver)  # type: ignore[assignment]

    def _transaction(self, op: ops.Op[T], *, write: bool) -> T:
        with self.lock:
            return run_transaction(self.conn, op, write)


class AsyncSqliteSaver(AsyncSaver):
    """LangGraph checkpointer on SQLite through aiosqlite, for the async and sync graph APIs.

    >>> async with AsyncSqliteSaver.from_conn_string("agent.db") as saver:
    ...     graph = builder.compile(checkpointer=saver)
    """

    dialect = SQLITE
    list_in_pages = True

    def __init__(self, conn: aiosqlite.Connection, **kwargs: Any) -> None:
        check_options(type(self), kwargs)
        super().__init__(**kwargs)
        self.conn = conn
        self.lock = asyncio.Lock()
        self._configured = False

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls, conn_string: str, **kwargs: Any
    ) -> AsyncIterator[AsyncSqliteSaver]:
        """A saver on a file path (or ":memory:"), closed on exit."""
        async with aiosqlite.connect(
            conn_string, check_same_thread=False, isolation_level=None
        ) as conn:
            saver = cls(conn, **kwargs)
            try:
                yield saver
            finally:
                saver.conn = ClosedConnection(saver)  # type: ignore[assignment]

    async def _atransaction(self, op: ops.Op[T], *, write: bool) -> T:
        # The whole transaction runs on aiosqlite's thread: one hop per operation, not
        # one per statement (`_execute` queues a function there, as aiosqlite's own
        # methods do).
        on_thread: Callable[..., Awaitable[Any]] = self.conn._execute
        async with self.lock:
            if not self._configured:
                await on_thread(configure, self.conn._conn)
                self._configured = True
            result: T = await on_thread(run_transaction, self.conn._conn, op, write)
            return result
