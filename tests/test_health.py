"""`saver.ping()` / `await saver.aping()`: a bounded health check for a `/health` endpoint,
on every saver flavour, on single connections, and against a server that stops."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import psycopg
import pytest
from conftest import open_saver
from pg_server import throwaway_executor

from langgraph_store_dual import (
    AsyncPostgresSaver,
    AsyncSqliteSaver,
    ConfigError,
    PostgresSaver,
    SqliteSaver,
)
from langgraph_store_dual.core.stmt import Stmt
from langgraph_store_dual.health import POOL_STATS, Health

EXPECTED = len(SqliteSaver.dialect.migrations)


def engine(flavour: str) -> str:
    return "postgresql" if flavour.startswith("postgres") else "sqlite"


async def both_pings(saver: Any, timeout: float = 2.0) -> tuple[Health, Health]:
    """The async API on the loop, the blocking one from another thread."""
    return await saver.aping(timeout), await asyncio.to_thread(saver.ping, timeout)


async def test_a_healthy_database(saver_factory: Any, flavour: str) -> None:
    async with saver_factory() as saver:
        for health in await both_pings(saver):  # before setup: no schema yet, and fine
            assert health.ok and health.error is None, health
            assert health.engine == engine(flavour)
            assert health.schema_version is None and not health.schema_current
            assert health.schema_expected == EXPECTED
        assert not saver.is_setup  # a ping creates nothing
        await saver.asetup()
        for health in await both_pings(saver):
            assert health.ok and health.schema_version == EXPECTED and health.schema_current
            assert health.server_version and health.server_version[0].isdigit()
            assert 0 < health.latency_ms < 2000
            if flavour.startswith("postgres"):  # from a URL: the saver's own pool
                pool = health.pool or {}
                assert set(pool) == set(POOL_STATS)
                assert pool["pool_size"] >= 1 and pool["requests_waiting"] == 0
            else:
                assert health.pool is None
            assert json.loads(json.dumps(health.as_dict()))["schema_current"] is True


async def bump_schema(saver: Any, version: int) -> None:
    """Record schema `version` in the saver's database, as a newer package would."""

    def op() -> Any:
        yield Stmt(saver.dialect.insert_version, {"version": version}, fetch=False)

    if hasattr(saver, "_blocking"):  # an async saver
        await saver.arun_op(op(), write=True)
    else:
        await asyncio.to_thread(saver.run_op, op(), write=True)


async def test_a_schema_the_saver_cannot_use(saver_factory: Any) -> None:
    async with saver_factory(auto_setup=False) as saver:
        health = await saver.aping()
        assert not health.ok and "call setup()" in (health.error or "")
        await saver.asetup()
        assert (await saver.aping()).ok
        await bump_schema(saver, EXPECTED + 1)
        for health in await both_pings(saver):
            assert not health.ok and health.schema_version == EXPECTED + 1
            assert "upgrade the package" in (health.error or "")


async def test_a_bad_timeout_is_a_config_error(saver: Any) -> None:
    for timeout in (0, -1, "2", True):
        with pytest.raises(ConfigError, match="ping timeout"):
            await saver.aping(timeout)


@asynccontextmanager
async def single_connection(flavour: str, where: Path | str) -> AsyncIterator[Any]:
    """A saver of `flavour` on one connection the test opened (not a pool, not a URL)."""
    if flavour == "sqlite-sync":
        conn = sqlite3.connect(str(Path(where) / "one.db"), check_same_thread=False)
        try:
            yield SqliteSaver(conn)
        finally:
            conn.close()
    elif flavour == "sqlite-async":
        async with aiosqlite.connect(str(Path(where) / "one.db")) as aconn:
            yield AsyncSqliteSaver(aconn)
    elif flavour == "postgres-sync":
        with psycopg.Connection.connect(str(where), autocommit=True) as pconn:
            yield PostgresSaver(pconn)
    else:
        async with await psycopg.AsyncConnection.connect(str(where), autocommit=True) as apconn:
            yield AsyncPostgresSaver(apconn)


@pytest.fixture
def where(flavour: str, tmp_path: Path, request: pytest.FixtureRequest) -> Path | str:
    if flavour.startswith("postgres"):
        return str(request.getfixturevalue("pg_clean_url"))
    return tmp_path


async def test_a_busy_single_connection_is_reported_within_the_timeout(
    flavour: str, where: Path | str
) -> None:
    """Another call holds the saver's only connection: the ping waits at most `timeout`."""
    async with single_connection(flavour, where) as saver:
        await saver.asetup()
        assert (await saver.aping()).ok
        if isinstance(saver.lock, asyncio.Lock):
            async with saver.lock:
                started = time.monotonic()
                health = await saver.aping(0.3)
        else:
            saver.lock.acquire()  # held by this thread; the ping runs in another
            try:
                started = time.monotonic()
                health = await asyncio.to_thread(saver.ping, 0.3)
            finally:
                saver.lock.release()
        assert 0.3 <= time.monotonic() - started < 2.0
        assert not health.ok and health.pool is None
        assert (
            health.error
            == "TimeoutError: the saver's connection stayed in use by other calls for 0.3 s"
        )
        assert (await saver.aping()).ok


async def test_a_closed_saver(saver_factory: Any) -> None:
    async with saver_factory() as saver:
        pass
    health = await saver.aping()
    assert not health.ok and (health.error or "").startswith("ClosedError: ")


# --------------------------------------------------------------------------------------
# A server that stops and starts again
# --------------------------------------------------------------------------------------

PASSWORD = "Pw-n0t-shown-7"


@pytest.fixture(scope="module")
def outage_server() -> Iterator[tuple[str, Any]]:
    """A throwaway server the tests stop and start: its URL (with a password that the
    trusting server ignores, to check that no report shows it) and its executor."""
    with throwaway_executor() as (url, executor):
        yield f"{url}{'&' if '?' in url else '?'}password={PASSWORD}", executor


def wait_ready(url: str, within: float = 60.0) -> None:
    """Return once the server at `url` accepts connections (it may be starting up)."""
    started = time.monotonic()
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() - started > within:
                raise


async def ping(saver: Any, api: str, timeout: float = 1.0) -> Health:
    health: Health
    if api == "async":
        health = await saver.aping(timeout)
    else:
        health = await asyncio.to_thread(saver.ping, timeout)
    return health


async def ping_until_ok(saver: Any, api: str, within: float = 30.0) -> float:
    started = time.monotonic()
    while True:
        health = await ping(saver, api)
        if health.ok:
            return time.monotonic() - started
        assert time.monotonic() - started < within, health


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_a_stopped_server_fails_clearly_within_the_timeout(
    outage_server: tuple[str, Any], api: str
) -> None:
    url, server = outage_server
    saver_class: Any = AsyncPostgresSaver if api == "async" else PostgresSaver
    await asyncio.to_thread(wait_ready, url)
    async with open_saver(f"postgres-{api}", url, pool_timeout=30) as pooled:
        single: Any
        if api == "async":
            single = await psycopg.AsyncConnection.connect(url, autocommit=True)
        else:
            single = await asyncio.to_thread(lambda: psycopg.connect(url, autocommit=True))
        alone = saver_class(single)
        try:
            assert (await ping(pooled, api)).ok and (await ping(alone, api)).ok
            await asyncio.to_thread(server.stop)
            try:
                for saver in (pooled, alone, pooled):
                    started = time.monotonic()
                    health = await ping(saver, api)
                    took = time.monotonic() - started
                    assert took < 1.0 + 1.5, f"{took:.2f} s for a 1 s timeout"
                    assert not health.ok and health.server_version is None, health
                    assert PASSWORD not in repr(health)
                    says = health.error or ""
                    assert any(w in says for w in ("refused", "closed", "terminat", "lost")), says
                    assert (health.pool is None) == (saver is alone)
            finally:
                await asyncio.to_thread(server.start)
            await ping_until_ok(pooled, api)  # the pool reconnects; the lone connection is gone
            assert not (await ping(alone, api)).ok
        finally:
            await single.close() if api == "async" else single.close()
