"""PostgreSQL savers on psycopg 3: a connection, a pool or a URL (which opens a pool).

Writes run in one transaction sent as a pipeline (one round trip for a put with its
statements); reads on autocommit connections run without a transaction (one round trip).
A pool checks connections on checkout, so a server restart costs the in-flight calls
only; the next calls get fresh connections.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, nullcontext
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ..core import ops
from ..core.ops import Rows, Stmt
from ..errors import ConfigError, StoreError
from ..saver import STREAM_CHUNK, AsyncSaver, SyncSaver
from ..urls import redact
from . import pool as pool_settings
from .dialect import POSTGRES
from .errors import ConnectError

T = TypeVar("T")

_POOL_NAME = "langgraph-store-dual"


def _pool_options(settings: pool_settings.PoolSettings) -> dict[str, Any]:
    return {
        "min_size": settings.pool_min_size,
        "max_size": settings.pool_max_size,
        "max_idle": settings.pool_max_idle,
        "max_lifetime": settings.pool_max_lifetime,
        "timeout": settings.pool_timeout,
        "kwargs": settings.connection_kwargs(),
        "name": _POOL_NAME,
        "open": False,
    }


class IdleCheck:
    """Which connections to test on checkout: those not checked out for `after` seconds.

    A connection in use a moment ago is alive with near certainty, and a test costs a
    round trip on every call; after a server restart, a connection that was in use within
    `after` seconds fails one call and is then replaced.
    """

    def __init__(self, after: float) -> None:
        self.after = after
        self._last: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def due(self, conn: Any) -> bool:
        """Whether to test `conn`, which is being checked out now."""
        now = time.monotonic()
        last = self._last.get(conn)
        self._last[conn] = now
        return last is None or now - last >= self.after


def _probe_options(conninfo: str, settings: pool_settings.PoolSettings) -> dict[str, Any]:
    if "connect_timeout" in conninfo_to_dict(conninfo):
        return {}
    return {"connect_timeout": max(2, round(min(settings.pool_timeout, 10)))}


def _connect_error(conninfo: str, exc: psycopg.Error) -> StoreError:
    message = str(exc).strip()
    if password := conninfo_to_dict(conninfo).get("password"):
        message = message.replace(password, "***")
    if not isinstance(exc, psycopg.OperationalError):  # e.g. a bad connect_timeout
        return ConfigError(f"{message} in {redact(conninfo)}")
    return ConnectError(f"cannot connect to PostgreSQL ({redact(conninfo)}): {message}")


def check_connect(conninfo: str, settings: pool_settings.PoolSettings) -> None:
    """Connect once, so that a mistake in `conninfo` fails now with the server's message
    (a pool would retry in the background and time out after `pool_timeout`)."""
    try:
        psycopg.connect(conninfo, **_probe_options(conninfo, settings)).close()
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        raise _connect_error(conninfo, exc) from None


async def acheck_connect(conninfo: str, settings: pool_settings.PoolSettings) -> None:
    """`check_connect` for asyncio."""
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo, **_probe_options(conninfo, settings))
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        raise _connect_error(conninfo, exc) from None
    await conn.close()


def open_pool(url: str, settings: pool_settings.PoolSettings) -> ConnectionPool:
    """A blocking pool for `url` with the given settings, opened and ready."""
    check_connect(url, settings)
    options = _pool_options(settings)
    if settings.pool_check:
        idle = IdleCheck(settings.pool_check_idle)

        def check(conn: psycopg.Connection) -> None:
            if idle.due(conn):
                ConnectionPool.check_connection(conn)

        options["check"] = check
    pool = ConnectionPool(url, **options)
    pool.open(wait=settings.pool_min_size > 0, timeout=settings.pool_timeout)
    return pool


def async_pool(url: str, settings: pool_settings.PoolSettings) -> AsyncConnectionPool:
    """An async pool for `url` with the given settings, not yet opened."""
    options = _pool_options(settings)
    if settings.pool_check:
        idle = IdleCheck(settings.pool_check_idle)

        async def check(conn: psycopg.AsyncConnection) -> None:
            if idle.due(conn):
                await AsyncConnectionPool.check_connection(conn)

        options["check"] = check
    return AsyncConnectionPool(url, **options)


#: The server-side cursor `list` reads through when libpq cannot stream in chunks.
_CURSOR = "langgraph_store_dual_list"


def chunked_streams() -> bool:
    """Whether libpq streams results in chunks (libpq 17 and later).

    Before 17 (the system libpq psycopg's pure-Python implementation loads, e.g. 15 on
    Debian 12), `list` reads through a server-side cursor instead, `STREAM_CHUNK` rows per
    FETCH, inside a transaction (which also holds the server connection under PgBouncer's
    transaction pooling).
    """
    return psycopg.capabilities.has_stream_chunked()


def _describe(saver: Any) -> str:
    """A repr naming the pool, never the connection string (it may hold a password)."""
    pooled = isinstance(saver.conn, (ConnectionPool, AsyncConnectionPool))
    return f"<{type(saver).__name__} {saver.conn.name if pooled else 'connection'}>"


def _refuse_open_transaction(conn: psycopg.Connection | psycopg.AsyncConnection) -> None:
    """A write inside the caller's open transaction would only be a savepoint, committed
    (or lost) with it: refuse instead of pretending it was saved."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise StoreError(
            "the connection given to the saver has a transaction open: commit or roll it "
            "back first, or give the saver an autocommit connection or a pool"
        )


class _Pipelining:
    _pipeline: bool
    _schema_ready: bool

    def _pipelined(self) -> bool:
        """Whether to send a transaction as a pipeline. Not while setting up the schema:
        psycopg reads pipelined results late, so the prepared-statement reset a DROP or
        ALTER calls for (DEALLOCATE ALL) would run after the next call prepared its
        statement, which then fails with `prepared statement does not exist` on a
        connection with `prepare_threshold=0` (as the official docs set it)."""
        return self._pipeline and self._schema_ready


def _execute_on(conn: psycopg.Connection) -> Any:
    # A cursor per statement: in pipeline mode results arrive later, and a shared cursor
    # would hand a queued statement's result to the next fetch. Rows are tuples whatever
    # row factory the caller gave the connection or pool (the official docs use dict_row).
    def execute(stmt: Stmt) -> Rows:
        cur = conn.cursor(row_factory=tuple_row)
        if stmt.many:
            cur.executemany(stmt.sql, stmt.params)
            return []
        cur.execute(stmt.sql, stmt.params)
        return cur.fetchall() if stmt.fetch else []

    return execute


def _aexecute_on(conn: psycopg.AsyncConnection) -> Any:
    async def execute(stmt: Stmt) -> Rows:
        cur = conn.cursor(row_factory=tuple_row)
        if stmt.many:
            await cur.executemany(stmt.sql, stmt.params)
            return []
        await cur.execute(stmt.sql, stmt.params)
        return await cur.fetchall() if stmt.fetch else []

    return execute


class PostgresSaver(_Pipelining, SyncSaver):
    """LangGraph checkpointer on PostgreSQL, for the sync and the async graph APIs.

    Give it a `psycopg.Connection`, a `psycopg_pool.ConnectionPool` or a URL; with a URL
    it opens (and owns) a pool configured by keyword arguments or URL parameters
    (`pool_max_size`, `pool_max_idle`, `pool_check`, `pgbouncer`, ...).
    """

    dialect = POSTGRES

    def __init__(
        self,
        conn: psycopg.Connection | ConnectionPool | str,
        *,
        serde: Any = None,
        auto_setup: bool = True,
        **settings: Any,
    ) -> None:
        super().__init__(serde=serde, auto_setup=auto_setup)
        url, self.settings = pool_settings.for_saver(type(self), conn, settings)
        self._owned = isinstance(conn, str)
        self.conn = open_pool(url, self.settings) if isinstance(conn, str) else conn
        self.lock = threading.RLock()
        self._pipeline = self.settings.pipeline and psycopg.Pipeline.is_supported()

    __repr__ = _describe

    @classmethod
    @contextmanager
    def from_conn_string(cls, conn_string: str, **options: Any) -> Iterator[PostgresSaver]:
        """A saver on its own pool for `conn_string`, closed on exit."""
        saver = cls(conn_string, **options)
        try:
            yield saver
        finally:
            saver.close()

    def close(self) -> None:
        """Close the pool this saver opened from a URL; a pool or connection you gave stays open."""
        if self._owned:
            self.conn.close()

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        if isinstance(self.conn, ConnectionPool):
            with self.conn.connection() as conn:
                yield conn
        else:
            with self.lock:
                yield self.conn

    def _transaction(self, op: ops.Op[T], *, write: bool) -> T:
        with self._connection() as conn:
            if write:
                _refuse_open_transaction(conn)
            if write and conn.autocommit:
                planned = ops.single_statement(op)
                if isinstance(planned, tuple):
                    stmt, result = planned
                    conn.cursor(row_factory=tuple_row).execute(stmt.sql, stmt.params)
                    return result
                op = planned
            if not write and conn.autocommit:
                return ops.run(op, _execute_on(conn))
            with conn.pipeline() if self._pipelined() else nullcontext(), conn.transaction():
                return ops.run(op, _execute_on(conn))

    def _stream(self, sql: str, params: Sequence[Any]) -> Iterator[Sequence[Any]]:
        if not isinstance(self.conn, ConnectionPool):
            # A shared connection cannot serve other calls while it streams: read it all.
            yield from self._transaction(ops.select(sql, params), write=False)
            return
        with self.conn.connection() as conn:
            if chunked_streams():
                with conn.cursor(row_factory=tuple_row) as cur:
                    yield from cur.stream(sql, params, size=STREAM_CHUNK)
                return
            with conn.transaction(), conn.cursor(_CURSOR, row_factory=tuple_row) as cur:
                cur.execute(sql, params)
                while rows := cur.fetchmany(STREAM_CHUNK):
                    yield from rows


class AsyncPostgresSaver(_Pipelining, AsyncSaver):
    """LangGraph checkpointer on PostgreSQL for asyncio, also answering the sync API from
    other threads. Takes a `psycopg.AsyncConnection`, an `AsyncConnectionPool` or a URL."""

    dialect = POSTGRES

    def __init__(
        self,
        conn: psycopg.AsyncConnection | AsyncConnectionPool | str,
        *,
        serde: Any = None,
        auto_setup: bool = True,
        **settings: Any,
    ) -> None:
        super().__init__(serde=serde, auto_setup=auto_setup)
        url, self.settings = pool_settings.for_saver(type(self), conn, settings)
        self._owned = isinstance(conn, str)
        self.conn = async_pool(url, self.settings) if isinstance(conn, str) else conn
        self.lock = asyncio.Lock()
        self._pipeline = self.settings.pipeline and psycopg.Pipeline.is_supported()

    __repr__ = _describe

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls, conn_string: str, **options: Any
    ) -> AsyncIterator[AsyncPostgresSaver]:
        """A saver on its own pool for `conn_string`, closed on exit."""
        saver = cls(conn_string, **options)
        try:
            await saver.open()
            yield saver
        finally:
            await saver.aclose()

    async def open(self) -> None:
        """Open the pool this saver owns (done on first use otherwise)."""
        if self._owned and self.conn.closed:
            await acheck_connect(self.conn.conninfo, self.settings)
            wait = self.settings.pool_min_size > 0
            await self.conn.open(wait=wait, timeout=self.settings.pool_timeout)

    async def aclose(self) -> None:
        """Close the pool this saver opened from a URL."""
        if self._owned:
            await self.conn.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        if isinstance(self.conn, AsyncConnectionPool):
            if self._owned and self.conn.closed:
                await self.open()
            async with self.conn.connection() as conn:
                yield conn
        else:
            async with self.lock:
                yield self.conn

    async def _atransaction(self, op: ops.Op[T], *, write: bool) -> T:
        async with self._connection() as conn:
            if write:
                _refuse_open_transaction(conn)
            if write and conn.autocommit:
                planned = ops.single_statement(op)
                if isinstance(planned, tuple):
                    stmt, result = planned
                    await conn.cursor(row_factory=tuple_row).execute(stmt.sql, stmt.params)
                    return result
                op = planned
            if not write and conn.autocommit:
                return await ops.arun(op, _aexecute_on(conn))
            pipeline = conn.pipeline() if self._pipelined() else nullcontext()
            async with pipeline, conn.transaction():
                return await ops.arun(op, _aexecute_on(conn))

    async def _astream(self, sql: str, params: Sequence[Any]) -> AsyncIterator[Sequence[Any]]:
        if not isinstance(self.conn, AsyncConnectionPool):
            # A shared connection cannot serve other calls while it streams: read it all.
            for row in await self._atransaction(ops.select(sql, params), write=False):
                yield row
            return
        async with self._connection() as conn:
            if chunked_streams():
                async with conn.cursor(row_factory=tuple_row) as cur:
                    async for row in cur.stream(sql, params, size=STREAM_CHUNK):
                        yield row
                return
            async with conn.transaction(), conn.cursor(_CURSOR, row_factory=tuple_row) as cur:
                await cur.execute(sql, params)
                while rows := await cur.fetchmany(STREAM_CHUNK):
                    for row in rows:
                        yield row


__all__ = ["AsyncPostgresSaver", "PostgresSaver"]
