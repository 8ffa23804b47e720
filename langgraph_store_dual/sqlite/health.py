"""The SQLite side of `saver.ping()` (see `health`): the probe on the saver's connection,
waiting at most what the ping has left for a lock."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from ..core.dialect import Dialect
from ..core.ops import run
from ..health import Found, Ping
from ..health import probe as probe_op


def _probe_on(conn: sqlite3.Connection, d: Dialect, wait: float) -> Found:
    """The probe on a sqlite3 connection (its own busy timeout restored afterwards)."""
    ((busy,),) = conn.execute("PRAGMA busy_timeout").fetchall()
    conn.execute(f"PRAGMA busy_timeout = {max(1, int(wait * 1000))}")
    try:
        return run(probe_op(d), lambda s: conn.execute(s.sql, s.params).fetchall())
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(busy)}")


def probe(saver: Any, ping: Ping) -> Found:
    if not saver.lock.acquire(timeout=ping.left()):
        raise ping.busy()
    try:
        return _probe_on(saver.conn, saver.dialect, ping.left())
    finally:
        saver.lock.release()


async def aprobe(saver: Any, ping: Ping) -> Found:
    try:
        await asyncio.wait_for(saver.lock.acquire(), ping.left())
    except (TimeoutError, asyncio.TimeoutError):
        raise ping.busy() from None
    try:
        conn = saver.conn  # on aiosqlite's thread, as the saver's own transactions run
        found: Found = await conn._execute(_probe_on, conn._conn, saver.dialect, ping.left())
        return found
    finally:
        saver.lock.release()


def password(saver: Any) -> str | None:
    """A file database has none."""
    return None
