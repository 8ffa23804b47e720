"""The PostgreSQL side of `saver.ping()` (see `health`): the probe in a transaction rolled
back at the end, its `statement_timeout` what the ping has left, through the saver's pool
(with the server check that reports a refused connection at once) or its connection."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import tuple_row

from ..core.dialect import Dialect
from ..core.ops import arun, run
from ..core.stmt import Rows, Stmt
from ..health import Found, Ping, pool_of
from ..health import probe as probe_op
from .connect import apooled, pooled


def _timeout(wait: float) -> Stmt:
    return Stmt(
        "SELECT set_config('statement_timeout', %s, true)", (f"{max(1, int(wait * 1000))}ms",)
    )


def _probe_on(conn: psycopg.Connection[Any], d: Dialect, wait: float) -> Found:
    def execute(stmt: Stmt) -> Rows:
        cur = conn.cursor(row_factory=tuple_row)
        cur.execute(stmt.sql, stmt.params)
        return list(cur.fetchall())

    with conn.transaction(force_rollback=True):
        execute(_timeout(wait))
        return run(probe_op(d), execute)


async def _aprobe_on(conn: psycopg.AsyncConnection[Any], d: Dialect, wait: float) -> Found:
    async def execute(stmt: Stmt) -> Rows:
        cur = conn.cursor(row_factory=tuple_row)
        await cur.execute(stmt.sql, stmt.params)
        return list(await cur.fetchall())

    async with conn.transaction(force_rollback=True):
        await execute(_timeout(wait))
        return await arun(probe_op(d), execute)


def probe(saver: Any, ping: Ping) -> Found:
    pool = pool_of(saver)
    if pool is not None:
        with pooled(pool, saver._server, timeout=ping.left()) as conn:
            return _probe_on(conn, saver.dialect, ping.left())
    if not saver.lock.acquire(timeout=ping.left()):
        raise ping.busy()
    try:
        if saver.pipe is not None:  # the caller's pipeline: its results first
            saver.pipe.sync()
        return _probe_on(saver.conn, saver.dialect, ping.left())
    finally:
        saver.lock.release()


async def aprobe(saver: Any, ping: Ping) -> Found:
    pool = pool_of(saver)
    if pool is not None:
        if saver._owned and pool.closed:
            await saver.open()
        async with apooled(pool, saver._server, timeout=ping.left()) as conn:
            return await _aprobe_on(conn, saver.dialect, ping.left())
    try:
        await asyncio.wait_for(saver.lock.acquire(), ping.left())
    except (TimeoutError, asyncio.TimeoutError):
        raise ping.busy() from None
    try:
        if saver.pipe is not None:
            await saver.pipe.sync()
        return await _aprobe_on(saver.conn, saver.dialect, ping.left())
    finally:
        saver.lock.release()


def password(saver: Any) -> str | None:
    """The password the saver connects with (its pool's conninfo, or its connection's)."""
    conn = saver.__dict__.get("conn")
    if hasattr(conn, "conninfo"):  # a pool
        found = conninfo_to_dict(conn.conninfo).get("password")
        return str(found) if found else None
    info = getattr(conn, "info", None)
    return getattr(info, "password", None) or None
