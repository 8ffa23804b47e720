"""Connecting to PostgreSQL: fail at once with the server's own message when it cannot
be reached, and recover within about a second when it is back.

psycopg_pool retries a failed connection in the background with an exponential back-off
(1, 2, 4, ... 32 s) while callers wait up to `pool_timeout` for a `PoolTimeout` that
says nothing of the cause. The savers instead wait in short steps: each step that ends
empty-handed lets the pool start a fresh attempt (its attempts give up after
`pool_reconnect_timeout`), and, when the saver knows the connection string, one direct
connection attempt tells a server that is down (a `ConnectError` at once) from a pool
that is only busy (keep waiting).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from ..errors import ConfigError, StoreError
from ..urls import redact
from .errors import ConnectError
from .pool import PoolSettings

#: Seconds a call waits for a pooled connection before it checks the server again.
RETRY_WAIT = 0.25


def _probe_options(conninfo: str, settings: PoolSettings) -> dict[str, Any]:
    if "connect_timeout" in conninfo_to_dict(conninfo):
        return {}
    return {"connect_timeout": max(2, round(min(settings.pool_timeout, 10)))}


def _connect_error(conninfo: str, exc: psycopg.Error) -> StoreError:
    message = str(exc).strip()
    if password := conninfo_to_dict(conninfo).get("password"):
        message = message.replace(str(password), "***")
    if not isinstance(exc, psycopg.OperationalError):  # e.g. a bad connect_timeout
        return ConfigError(f"{message} in {redact(conninfo)}")
    return ConnectError(f"cannot connect to PostgreSQL ({redact(conninfo)}): {message}")


def check_connect(conninfo: str, settings: PoolSettings) -> None:
    """Connect once, so that a mistake in `conninfo` fails now with the server's message
    (a pool would retry in the background and time out after `pool_timeout`)."""
    try:
        psycopg.connect(conninfo, **_probe_options(conninfo, settings)).close()
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        raise _connect_error(conninfo, exc) from None


async def acheck_connect(conninfo: str, settings: PoolSettings) -> None:
    """`check_connect` for asyncio."""
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo, **_probe_options(conninfo, settings))
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        raise _connect_error(conninfo, exc) from None
    await conn.close()


class ServerCheck:
    """Whether the server is down, asked while calls wait for a pooled connection: at most
    one direct connection attempt per `RETRY_WAIT` seconds, its outcome shared."""

    def __init__(self, conninfo: str, settings: PoolSettings) -> None:
        self.conninfo, self.settings = conninfo, settings
        self._checked_at = -math.inf
        self._down: str | None = None

    def _due(self) -> bool:
        return time.monotonic() - self._checked_at >= RETRY_WAIT

    def _record(self, error: StoreError | None) -> None:
        self._checked_at = time.monotonic()
        self._down = None if error is None else str(error)

    def _raise_if_down(self) -> None:
        if self._down is not None:
            raise ConnectError(self._down)

    def check(self) -> None:
        """Raise `ConnectError` with the server's message if it cannot be reached now."""
        if self._due():
            try:
                check_connect(self.conninfo, self.settings)
            except ConnectError as exc:
                self._record(exc)
            else:
                self._record(None)
        self._raise_if_down()

    async def acheck(self) -> None:
        """`check` for asyncio."""
        if self._due():
            try:
                await acheck_connect(self.conninfo, self.settings)
            except ConnectError as exc:
                self._record(exc)
            else:
                self._record(None)
        self._raise_if_down()


def _step(deadline: float) -> float:
    return max(0.0, min(RETRY_WAIT, deadline - time.monotonic()))


def _waited(pool: ConnectionPool | AsyncConnectionPool, started: float) -> PoolTimeout:
    """The timeout of a whole wait in steps, begun at `started` (psycopg_pool's own message
    names only the last step; a step can also outlast the timeout, when a pooler holds
    the connection check until its own timeout)."""
    waited = time.monotonic() - started
    return PoolTimeout(
        f"couldn't get a connection from pool {pool.name!r} after {waited:.2f} sec "
        f"(max_size {pool.max_size}: every connection in use, or the server not answering)"
    )


def _cause(exc: BaseException) -> BaseException | None:
    """What a wait for a pooled connection began under (an error of the call being
    handled, e.g. a pooler's timeout before a retry), past psycopg_pool's own timeouts."""
    cause: BaseException | None = exc
    while isinstance(cause, PoolTimeout):
        cause = cause.__context__
    return cause


@contextmanager
def pooled(
    pool: ConnectionPool, server: ServerCheck | None, timeout: float | None = None
) -> Iterator[psycopg.Connection]:
    """A connection from `pool` (its `connection()`) within `timeout` (default: the
    pool's timeout), waiting in steps (see the module)."""
    started = time.monotonic()
    deadline = started + (pool.timeout if timeout is None else timeout)
    with ExitStack() as lease:
        while True:
            try:
                conn = lease.enter_context(pool.connection(timeout=_step(deadline)))
                break
            except PoolTimeout as exc:
                if time.monotonic() >= deadline:
                    raise _waited(pool, started) from _cause(exc)
                if server is not None:
                    server.check()
        yield conn


@asynccontextmanager
async def apooled(
    pool: AsyncConnectionPool, server: ServerCheck | None, timeout: float | None = None
) -> AsyncIterator[psycopg.AsyncConnection]:
    """`pooled` for asyncio."""
    started = time.monotonic()
    deadline = started + (pool.timeout if timeout is None else timeout)
    async with AsyncExitStack() as lease:
        while True:
            try:
                conn = await lease.enter_async_context(pool.connection(timeout=_step(deadline)))
                break
            except PoolTimeout as exc:
                if time.monotonic() >= deadline:
                    raise _waited(pool, started) from _cause(exc)
                if server is not None:
                    await server.acheck()
        yield conn


def lost(conn: psycopg.Connection | psycopg.AsyncConnection) -> bool:
    """Whether `conn` failed because the connection itself is gone (server restarted,
    backend terminated), not because of the statement."""
    return conn.broken or conn.closed
