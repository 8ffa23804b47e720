"""PostgreSQL savers on psycopg 3: a connection, a pool or a URL (which opens a pool).

Writes run in one transaction sent as a pipeline (one round trip for a put with its
statements); reads on autocommit connections run without a transaction (one round trip).
A pool checks connections idle for a while on checkout; after a server restart, the
first call that finds its connection dead drops the pool's dead idle connections, and a
read runs again once on a fresh connection (a write is not: it may have been applied).
Connecting itself is in `connect.py`: fail at once when the server is down, recover
within about a second when it is back.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Sequence,
)
from contextlib import (
    AsyncExitStack,
    ExitStack,
    aclosing,
    asynccontextmanager,
    closing,
    contextmanager,
    nullcontext,
)
from typing import Any, TypeVar

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ..closed import ClosedConnection
from ..core import ops
from ..core.ops import Rows, Stmt
from ..errors import StoreError
from ..saver import STREAM_CHUNK, AsyncSaver, SyncSaver
from . import pool as pool_settings
from .connect import ServerCheck, acheck_connect, apooled, check_connect, lost, pooled
from .dialect import POSTGRES

T = TypeVar("T")
PoolT = TypeVar("PoolT", ConnectionPool, AsyncConnectionPool)

_POOL_NAME = "langgraph-store-dual"


def _pool_options(settings: pool_settings.PoolSettings) -> dict[str, Any]:
    return {
        "min_size": settings.pool_min_size,
        "max_size": settings.pool_max_size,
        "max_idle": settings.pool_max_idle,
        "max_lifetime": settings.pool_max_lifetime,
        "timeout": settings.pool_timeout,
        "reconnect_timeout": settings.pool_reconnect_timeout,
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


class _LatestFirst(deque[Any]):
    """A pool's idle connections, the one returned last taken first.

    psycopg_pool takes idle connections from the left and returns them to the right: a
    queue that cycles through every connection, so that each call meets the backend used
    longest ago (colder caches: a put and its writes took ~60 us more with four idle
    connections, measured). Returned to the front, the connection a caller just used is
    the next one taken: sequential calls keep one warm backend, and the connections a
    burst opened stay idle until the pool closes them (`pool_max_idle`; it closes the
    front one, then the next takes over).
    """

    __slots__ = ()

    def append(self, conn: Any) -> None:
        self.appendleft(conn)


def _latest_first(pool: PoolT) -> PoolT:
    """`pool`, reusing its most recently returned connection first (see `_LatestFirst`)."""
    if type(pool._pool) is deque:  # psycopg_pool's own container: any other is left alone
        pool._pool = _LatestFirst(pool._pool)
    return pool


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
    pool = _latest_first(ConnectionPool(url, **options))
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
    return _latest_first(AsyncConnectionPool(url, **options))


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


def _rows(
    conn: psycopg.Connection[Any], sql: str, params: ops.Params
) -> Generator[Sequence[Any], None, None]:
    if chunked_streams():
        with conn.cursor(row_factory=tuple_row) as cur:
            yield from cur.stream(sql, params, size=STREAM_CHUNK)
        return
    with conn.transaction(), conn.cursor(_CURSOR, row_factory=tuple_row) as cur:
        cur.execute(sql, params)
        while rows := cur.fetchmany(STREAM_CHUNK):
            yield from rows


async def _arows(
    conn: psycopg.AsyncConnection[Any], sql: str, params: ops.Params
) -> AsyncGenerator[Sequence[Any], None]:
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


def _describe(saver: Any) -> str:
    """A repr naming the pool, never the connection string (it may hold a password)."""
    conn = saver.__dict__.get("conn")
    if isinstance(conn, (ConnectionPool, AsyncConnectionPool)):
        return f"<{type(saver).__name__} {conn.name}>"
    closed = conn is None or isinstance(conn, ClosedConnection)
    return f"<{type(saver).__name__} {'closed' if closed else 'connection'}>"


def _refuse_open_transaction(conn: psycopg.Connection | psycopg.AsyncConnection) -> None:
    """A write inside the caller's open transaction would only be a savepoint, committed
    (or lost) with it: refuse instead of pretending it was saved."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise StoreError(
            "the connection given to the saver has a transaction open: commit or roll it "
            "back first, or give the saver an autocommit connection or a pool"
        )


class _PostgresCommon:
    """What the sync and the async PostgreSQL saver share."""

    _pipeline: bool
    _schema_ready: bool

    def _take(self, conn: Any, pipe: Any, settings: dict[str, Any], make_pool: Any) -> None:
        """What both PostgreSQL savers keep of their arguments: `conn` (a URL opens a pool
        with `make_pool(url, settings)`, which the saver owns), the caller's pipeline
        `pipe` (taken as the official savers take it; writes are pipelined anyway)."""
        self.pipe = pipe
        self.supports_pipeline = psycopg.Pipeline.is_supported()
        url, self.settings = pool_settings.for_saver(type(self), conn, settings)
        self._owned = isinstance(conn, str)
        self.conn = make_pool(url, self.settings) if self._owned else conn
        self._server = ServerCheck(url, self.settings) if self._owned else None
        self._pipeline = self.settings.pipeline and self.supports_pipeline

    def _pipelined(self) -> bool:
        """Whether to send a transaction as a pipeline. Not while setting up the schema:
        psycopg reads pipelined results late, so the prepared-statement reset a DROP or
        ALTER calls for (DEALLOCATE ALL) would run after the next call prepared its
        statement, which then fails with `prepared statement does not exist` on a
        connection with `prepare_threshold=0` (as the official docs set it)."""
        return self._pipeline and self._schema_ready


def _sent(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any], sql: str) -> str:
    """The SQL to send for statement `sql`: on a connection that prepares no statements
    (PgBouncer), the call of the routine standing in for it if it has one (routines.py)."""
    if conn.prepare_threshold is None:
        return POSTGRES.routine_calls.get(sql, sql)
    return sql


def _execute_on(conn: psycopg.Connection[Any]) -> Callable[[Stmt], Rows]:
    # A cursor per statement: in pipeline mode results arrive later, and a shared cursor
    # would hand a queued statement's result to the next fetch. Rows are tuples whatever
    # row factory the caller gave the connection or pool (the official docs use dict_row).
    # A statement's `settings` (SET LOCAL) end with the transaction (or savepoint, in the
    # caller's transaction) rolled back after it: a connection in autocommit would
    # ignore them, and the caller's own settings stay as they were.
    def execute(stmt: Stmt) -> Rows:
        if stmt.settings is not None:
            with conn.transaction(force_rollback=True):
                conn.cursor().execute(stmt.settings)
                return run(stmt)
        return run(stmt)

    def run(stmt: Stmt) -> Rows:
        cur = conn.cursor(row_factory=tuple_row)
        if stmt.many:
            cur.executemany(stmt.sql, stmt.params)
            return []
        cur.execute(_sent(conn, stmt.sql), stmt.params)
        return list(cur.fetchall()) if stmt.fetch else []

    return execute


def _aexecute_on(conn: psycopg.AsyncConnection[Any]) -> Callable[[Stmt], Awaitable[Rows]]:
    async def execute(stmt: Stmt) -> Rows:
        if stmt.settings is not None:
            async with conn.transaction(force_rollback=True):
                await conn.cursor().execute(stmt.settings)
                return await run(stmt)
        return await run(stmt)

    async def run(stmt: Stmt) -> Rows:
        cur = conn.cursor(row_factory=tuple_row)
        if stmt.many:
            await cur.executemany(stmt.sql, stmt.params)
            return []
        await cur.execute(_sent(conn, stmt.sql), stmt.params)
        return list(await cur.fetchall()) if stmt.fetch else []

    return execute


class PostgresSaver(_PostgresCommon, SyncSaver):
    """LangGraph checkpointer on PostgreSQL, for the sync and the async graph APIs.

    Give it a `psycopg.Connection`, a `psycopg_pool.ConnectionPool` or a URL; with a URL
    it opens (and owns) a pool configured by keyword arguments or URL parameters
    (`pool_max_size`, `pool_max_idle`, `pool_check`, `pgbouncer`, ...).
    """

    dialect = POSTGRES

    def __init__(
        self,
        conn: psycopg.Connection | ConnectionPool | str,
        pipe: Any = None,
        serde: Any = None,
        *,
        auto_setup: bool = True,
        pickle_key: bytes | None = None,
        max_expansion: int | None = None,
        default_ttl: Any = None,
        ttl_strategy: str = "delete",
        **settings: Any,
    ) -> None:
        super().__init__(
            serde=serde,
            auto_setup=auto_setup,
            pickle_key=pickle_key,
            max_expansion=max_expansion,
            default_ttl=default_ttl,
            ttl_strategy=ttl_strategy,
        )
        self._take(conn, pipe, settings, open_pool)
        self.lock = threading.RLock()

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
            self.conn = ClosedConnection(self)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        if not isinstance(self.conn, ConnectionPool):
            with self.lock:
                if self.pipe is not None:  # the caller's pipeline: each call's results now
                    self.pipe.sync()
                yield self.conn
                if self.pipe is not None:
                    self.pipe.sync()
            return
        with pooled(self.conn, self._server) as conn:
            try:
                yield conn
            except psycopg.OperationalError:
                if lost(conn):  # the server restarted: its other idle connections died too
                    self.conn.check()
                raise

    def _transaction(self, op: ops.Op[T], *, write: bool) -> T:
        if not write and isinstance(self.conn, ConnectionPool):
            return self._read(op, self.conn)
        with self._connection() as conn:
            if write:
                _refuse_open_transaction(conn)
            if write and conn.autocommit:
                planned = ops.single_statement(op)
                if isinstance(planned, tuple):
                    stmt, result = planned
                    conn.cursor(row_factory=tuple_row).execute(_sent(conn, stmt.sql), stmt.params)
                    return result
                op = planned
            if not write and conn.autocommit:
                return ops.run(op, _execute_on(conn))
            with conn.pipeline() if self._pipelined() else nullcontext(), conn.transaction():
                return ops.run(op, _execute_on(conn))

    def _read(self, op: ops.Op[T], pool: ConnectionPool) -> T:
        """A read on a pooled connection. In autocommit each statement runs alone, so one
        that finds its connection dead (a server restart) runs once more on a fresh one;
        the dead one goes back first, so that callers never wait for each other's."""
        lease = ExitStack()
        conn = lease.enter_context(pooled(pool, self._server))
        retry = True

        def execute(stmt: Stmt) -> Rows:
            nonlocal lease, conn, retry
            try:
                return _execute_on(conn)(stmt)
            except psycopg.OperationalError:
                if not (retry and conn.autocommit and lost(conn)):
                    raise
                retry = False
                lease.close()
                pool.check()
                lease = ExitStack()
                conn = lease.enter_context(pooled(pool, self._server))
                return _execute_on(conn)(stmt)

        try:
            with nullcontext() if conn.autocommit else conn.transaction():
                return ops.run(op, execute)
        except psycopg.OperationalError:
            if lost(conn):
                pool.check()
            raise
        finally:
            lease.close()

    def _stream(self, sql: str, params: ops.Params) -> Generator[Sequence[Any], None, None]:
        if not isinstance(self.conn, ConnectionPool):
            # A shared connection cannot serve other calls while it streams: read it all.
            yield from self._transaction(ops.select(sql, params), write=False)
            return
        for retry in (True, False):
            with self._connection() as conn, closing(_rows(conn, sql, params)) as rows:
                try:
                    first = next(rows, None)
                except psycopg.OperationalError:
                    if not (retry and lost(conn)):
                        raise
                    self.conn.check()  # nothing was read yet: read again on a fresh connection
                    continue
                if first is not None:
                    yield first
                    yield from rows
                return


class AsyncPostgresSaver(_PostgresCommon, AsyncSaver):
    """LangGraph checkpointer on PostgreSQL for asyncio, also answering the sync API from
    other threads. Takes a `psycopg.AsyncConnection`, an `AsyncConnectionPool` or a URL."""

    dialect = POSTGRES

    def __init__(
        self,
        conn: psycopg.AsyncConnection | AsyncConnectionPool | str,
        pipe: Any = None,
        serde: Any = None,
        *,
        auto_setup: bool = True,
        pickle_key: bytes | None = None,
        max_expansion: int | None = None,
        default_ttl: Any = None,
        ttl_strategy: str = "delete",
        **settings: Any,
    ) -> None:
        super().__init__(
            serde=serde,
            auto_setup=auto_setup,
            pickle_key=pickle_key,
            max_expansion=max_expansion,
            default_ttl=default_ttl,
            ttl_strategy=ttl_strategy,
        )
        self._take(conn, pipe, settings, async_pool)
        self.lock = asyncio.Lock()

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
        if self._owned and not isinstance(self.conn, ClosedConnection):
            await self.conn.close()
            self.conn = ClosedConnection(self)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        if not isinstance(self.conn, AsyncConnectionPool):
            async with self.lock:
                if self.pipe is not None:  # the caller's pipeline: each call's results now
                    await self.pipe.sync()
                yield self.conn
                if self.pipe is not None:
                    await self.pipe.sync()
            return
        if self._owned and self.conn.closed:
            await self.open()
        async with apooled(self.conn, self._server) as conn:
            try:
                yield conn
            except psycopg.OperationalError:
                if lost(conn):  # the server restarted: its other idle connections died too
                    await self.conn.check()
                raise

    async def _atransaction(self, op: ops.Op[T], *, write: bool) -> T:
        if not write and isinstance(self.conn, AsyncConnectionPool):
            if self._owned and self.conn.closed:
                await self.open()
            return await self._read(op, self.conn)
        async with self._connection() as conn:
            if write:
                _refuse_open_transaction(conn)
            if write and conn.autocommit:
                planned = ops.single_statement(op)
                if isinstance(planned, tuple):
                    stmt, result = planned
                    await conn.cursor(row_factory=tuple_row).execute(
                        _sent(conn, stmt.sql), stmt.params
                    )
                    return result
                op = planned
            if not write and conn.autocommit:
                return await ops.arun(op, _aexecute_on(conn))
            pipeline = conn.pipeline() if self._pipelined() else nullcontext()
            async with pipeline, conn.transaction():
                return await ops.arun(op, _aexecute_on(conn))

    async def _read(self, op: ops.Op[T], pool: AsyncConnectionPool) -> T:
        """`PostgresSaver._read` for asyncio."""
        lease = AsyncExitStack()
        conn = await lease.enter_async_context(apooled(pool, self._server))
        retry = True

        async def execute(stmt: Stmt) -> Rows:
            nonlocal lease, conn, retry
            try:
                return await _aexecute_on(conn)(stmt)
            except psycopg.OperationalError:
                if not (retry and conn.autocommit and lost(conn)):
                    raise
                retry = False
                await lease.aclose()
                await pool.check()
                lease = AsyncExitStack()
                conn = await lease.enter_async_context(apooled(pool, self._server))
                return await _aexecute_on(conn)(stmt)

        try:
            async with nullcontext() if conn.autocommit else conn.transaction():
                return await ops.arun(op, execute)
        except psycopg.OperationalError:
            if lost(conn):
                await pool.check()
            raise
        finally:
            await lease.aclose()

    async def _astream(self, sql: str, params: ops.Params) -> AsyncGenerator[Sequence[Any], None]:
        if not isinstance(self.conn, AsyncConnectionPool):
            # A shared connection cannot serve other calls while it streams: read it all.
            for row in await self._atransaction(ops.select(sql, params), write=False):
                yield row
            return
        for retry in (True, False):
            async with self._connection() as conn, aclosing(_arows(conn, sql, params)) as rows:
                try:
                    first = await anext(rows, None)
                except psycopg.OperationalError:
                    if not (retry and lost(conn)):
                        raise
                    await self.conn.check()  # nothing was read yet: read again on a fresh one
                    continue
                if first is not None:
                    yield first
                    async for row in rows:
                        yield row
                return


__all__ = ["AsyncPostgresSaver", "PostgresSaver"]
