"""Counting what a saver sends to its database: `probing(saver)` installs a `Probe` on
the connection of any of the four savers (statements sent, rows pulled)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langgraph_store_dual import AsyncPostgresSaver, AsyncSqliteSaver, PostgresSaver, SqliteSaver


class Probe:
    """Counts the statements a saver sends and the rows it pulls from its driver."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.rows = 0
        self.active = False

    def statement(self, sql: str) -> None:
        if self.active:
            self.statements.append(" ".join(str(sql).split())[:80])


class _CountingSqliteCursor:
    def __init__(self, cursor: sqlite3.Cursor, probe: Probe) -> None:
        self._cursor, self._probe = cursor, probe

    def fetchmany(self, size: int) -> list[Any]:
        rows = self._cursor.fetchmany(size)
        self._probe.rows += len(rows)
        return rows

    def fetchall(self) -> list[Any]:
        rows = self._cursor.fetchall()
        self._probe.rows += len(rows)
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class _CountingSqliteConn:
    def __init__(self, conn: sqlite3.Connection, probe: Probe) -> None:
        self._conn, self._probe = conn, probe

    def execute(self, sql: str, params: Any = ()) -> Any:
        return _CountingSqliteCursor(self._conn.execute(sql, params), self._probe)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _CountingAioCursor:
    def __init__(self, cursor: Any, probe: Probe) -> None:
        self._cursor, self._probe = cursor, probe

    async def fetchmany(self, size: int) -> list[Any]:
        rows: list[Any] = await self._cursor.fetchmany(size)
        self._probe.rows += len(rows)
        return rows

    async def fetchall(self) -> list[Any]:
        rows: list[Any] = await self._cursor.fetchall()
        self._probe.rows += len(rows)
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class _CountingAioResult:
    def __init__(self, result: Any, probe: Probe) -> None:
        self._result, self._probe = result, probe
        self._cursor: _CountingAioCursor | None = None

    async def _get(self) -> _CountingAioCursor:
        return _CountingAioCursor(await self._result, self._probe)

    def __await__(self) -> Any:
        return self._get().__await__()

    async def __aenter__(self) -> _CountingAioCursor:
        self._cursor = await self._get()
        return self._cursor

    async def __aexit__(self, *exc: Any) -> None:
        assert self._cursor is not None
        await self._cursor.close()


class _CountingAioConn:
    def __init__(self, conn: Any, probe: Probe) -> None:
        self._aio, self._probe = conn, probe

    @property
    def _conn(self) -> _CountingSqliteConn:
        """The sqlite3 connection a whole transaction runs on, in aiosqlite's thread."""
        return _CountingSqliteConn(self._aio._conn, self._probe)

    def execute(self, sql: str, params: Any = None) -> _CountingAioResult:
        return _CountingAioResult(self._aio.execute(sql, params), self._probe)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._aio, name)


def _pg_cursor_classes(probe: Probe) -> tuple[type, type]:
    class Cursor(psycopg.Cursor):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            probe.statement(query)
            return super().execute(query, params, **kwargs)

        def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            probe.statement(query)
            return super().executemany(query, params_seq, **kwargs)

        def stream(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            probe.statement(query)
            for row in super().stream(query, params, **kwargs):
                probe.rows += 1
                yield row

    class AsyncCursor(psycopg.AsyncCursor):
        async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            probe.statement(query)
            return await super().execute(query, params, **kwargs)

        async def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            probe.statement(query)
            return await super().executemany(query, params_seq, **kwargs)

        async def stream(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            probe.statement(query)
            async for row in super().stream(query, params, **kwargs):
                probe.rows += 1
                yield row

    return Cursor, AsyncCursor


@contextmanager
def _cursors(conn: Any, cursor_cls: type) -> Iterator[None]:
    """`conn` makes cursors of `cursor_cls` while inside."""
    old, conn.cursor_factory = conn.cursor_factory, cursor_cls
    try:
        yield
    finally:
        conn.cursor_factory = old


@contextmanager
def _instead(obj: Any, name: str, value: Any) -> Iterator[None]:
    """`obj.<name>` is `value` while inside (an instance attribute over the class's)."""
    setattr(obj, name, value)
    try:
        yield
    finally:
        delattr(obj, name)


@asynccontextmanager
async def probing(saver: Any) -> AsyncIterator[Probe]:
    """Install a Probe on the saver's connection (statements and rows), remove it after."""
    probe = Probe()
    target: Any = saver  # its connection is swapped for a counting one
    if isinstance(saver, SqliteSaver):
        conn = saver.conn
        conn.set_trace_callback(probe.statement)
        target.conn = _CountingSqliteConn(conn, probe)
        try:
            yield probe
        finally:
            target.conn = conn
            conn.set_trace_callback(None)
    elif isinstance(saver, AsyncSqliteSaver):
        aconn = saver.conn
        await aconn.set_trace_callback(probe.statement)
        target.conn = _CountingAioConn(aconn, probe)
        try:
            yield probe
        finally:
            target.conn = aconn
            await aconn.set_trace_callback(None)  # type: ignore[arg-type]  # None removes it
    elif isinstance(saver, PostgresSaver):
        cursor_cls = _pg_cursor_classes(probe)[0]
        if isinstance(saver.conn, ConnectionPool):
            pool, original = saver.conn, saver.conn.connection

            @contextmanager
            def connection(*args: Any, **kwargs: Any) -> Iterator[psycopg.Connection]:
                with original(*args, **kwargs) as conn, _cursors(conn, cursor_cls):
                    yield conn

            swap = _instead(pool, "connection", connection)
        else:
            swap = _cursors(saver.conn, cursor_cls)
        with swap:
            yield probe
    elif isinstance(saver, AsyncPostgresSaver):
        acursor_cls = _pg_cursor_classes(probe)[1]
        if isinstance(saver.conn, AsyncConnectionPool):
            apool, aoriginal = saver.conn, saver.conn.connection

            @asynccontextmanager
            async def aconnection(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
                async with aoriginal(*args, **kwargs) as conn:
                    with _cursors(conn, acursor_cls):
                        yield conn

            swap = _instead(apool, "connection", aconnection)
        else:
            swap = _cursors(saver.conn, acursor_cls)
        with swap:
            yield probe
    else:
        raise TypeError(type(saver))
