"""PostgreSQL connections as users make them: the official docs' connection settings
(dict_row, prepare_threshold=0, autocommit or not), libpq without chunked streaming,
PgBouncer, connection mistakes, outages and closed savers.

Uses the `pg_url` / `pg_clean_url` / `pg_terminate` / `pgbouncer_url` fixtures of
tests/pg_server.py.
"""

from __future__ import annotations

import asyncio
import ctypes.util
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import FLAVOURS, open_saver
from helpers import cfg as config
from helpers import checkpoint, exercise_async, exercise_sync, in_thread, visible_elsewhere
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pg_server import throwaway_executor
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout
from storage import build_chat_graph

from langgraph_store_dual import (
    AsyncPostgresSaver,
    ConfigError,
    ConnectError,
    PostgresSaver,
    StoreError,
    from_url,
)
from langgraph_store_dual.errors import ClosedError
from langgraph_store_dual.postgres.connect import pooled
from langgraph_store_dual.postgres.pool import PoolSettings

#: The connection settings the official saver's docs tell users to use.
OFFICIAL_KWARGS = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}

SERDES = {"default": None, "serde": JsonPlusSerializer()}


def settings_of(conn: psycopg.Connection | psycopg.AsyncConnection) -> tuple:
    return conn.row_factory, conn.autocommit, conn.prepare_threshold


# --------------------------------------------------------------------------------------
# The official docs' connections and pools
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("serde", SERDES.values(), ids=SERDES.keys())
@pytest.mark.parametrize("autocommit", [True, False])
def test_connection_with_dict_row(pg_clean_url: str, serde: Any, autocommit: bool) -> None:
    kwargs = {**OFFICIAL_KWARGS, "autocommit": autocommit}
    with psycopg.connect(pg_clean_url, **kwargs) as conn:
        before = settings_of(conn)
        saver = PostgresSaver(conn, serde=serde)
        in_thread(lambda: exercise_sync(saver, "c"))
        assert settings_of(conn) == before
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
    assert visible_elsewhere(pg_clean_url, "c") == 3


@pytest.mark.parametrize("serde", SERDES.values(), ids=SERDES.keys())
@pytest.mark.parametrize("autocommit", [True, False])
def test_pool_with_dict_row(pg_clean_url: str, serde: Any, autocommit: bool) -> None:
    kwargs = {**OFFICIAL_KWARGS, "autocommit": autocommit}
    with ConnectionPool(pg_clean_url, min_size=1, max_size=3, kwargs=kwargs) as pool:
        exercise_sync(PostgresSaver(pool, serde=serde), "p")
        assert pool.kwargs == kwargs
        with pool.connection() as conn:
            assert settings_of(conn) == (dict_row, autocommit, 0)
    assert visible_elsewhere(pg_clean_url, "p") == 3


@pytest.mark.parametrize("serde", SERDES.values(), ids=SERDES.keys())
@pytest.mark.parametrize("autocommit", [True, False])
async def test_async_connection_with_dict_row(
    pg_clean_url: str, serde: Any, autocommit: bool
) -> None:
    kwargs = {**OFFICIAL_KWARGS, "autocommit": autocommit}
    async with await psycopg.AsyncConnection.connect(pg_clean_url, **kwargs) as conn:
        before = settings_of(conn)
        saver = AsyncPostgresSaver(conn, serde=serde)
        await asyncio.wait_for(exercise_async(saver, "ac"), 60)
        assert settings_of(conn) == before
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert visible_elsewhere(pg_clean_url, "ac") == 3


@pytest.mark.parametrize("serde", SERDES.values(), ids=SERDES.keys())
@pytest.mark.parametrize("autocommit", [True, False])
async def test_async_pool_with_dict_row(pg_clean_url: str, serde: Any, autocommit: bool) -> None:
    kwargs = {**OFFICIAL_KWARGS, "autocommit": autocommit}
    async with AsyncConnectionPool(
        pg_clean_url, min_size=1, max_size=3, kwargs=kwargs, open=False
    ) as pool:
        await asyncio.wait_for(exercise_async(AsyncPostgresSaver(pool, serde=serde), "ap"), 60)
        assert pool.kwargs == kwargs
        async with pool.connection() as conn:
            assert settings_of(conn) == (dict_row, autocommit, 0)
    assert visible_elsewhere(pg_clean_url, "ap") == 3


def test_a_transaction_the_caller_opened_is_refused(pg_clean_url: str) -> None:
    """A fresh non-autocommit connection works (above); one inside the caller's own
    transaction is refused for writes, which would otherwise commit with the caller's."""
    with psycopg.connect(pg_clean_url, **{**OFFICIAL_KWARGS, "autocommit": False}) as conn:
        saver = PostgresSaver(conn)
        saver.setup()
        conn.execute("SELECT 1")
        with pytest.raises(Exception, match="transaction open"):
            saver.put(config("t"), checkpoint(0), {}, {"i": 1})
        conn.rollback()
        saver.put(config("t"), checkpoint(0), {}, {"i": 1})
    assert visible_elsewhere(pg_clean_url, "t") == 1


def test_official_docs_snippets(pg_clean_url: str) -> None:
    """The official saver's documented usage, with only the import changed."""
    from langgraph_store_dual import PostgresSaver  # was langgraph.checkpoint.postgres

    DB_URI = pg_clean_url
    connection_kwargs = {"autocommit": True, "prepare_threshold": 0}
    with psycopg.Connection.connect(DB_URI, **connection_kwargs) as conn:
        checkpointer = PostgresSaver(conn)
        checkpointer.setup()
        checkpointer.put(config("1"), checkpoint(0), {"source": "input", "step": 1}, {"i": 1})
    with ConnectionPool(conninfo=DB_URI, max_size=20, kwargs=connection_kwargs) as pool:
        checkpointer = PostgresSaver(pool)
        checkpointer.setup()
    with psycopg.Connection.connect(DB_URI, **OFFICIAL_KWARGS) as conn:
        checkpointer = PostgresSaver(conn)
        checkpointer.setup()
    with PostgresSaver.from_conn_string(DB_URI) as memory:
        config_ = {"configurable": {"thread_id": "1"}}
        checkpoints = list(memory.list(config_, limit=2))
        checkpoint_id = checkpoints[0].config["configurable"]["checkpoint_id"]
        # (the docs' `before` holds only the checkpoint id: covered by the LangGraph-suite tests)
        before = {"configurable": {"thread_id": "1", "checkpoint_id": checkpoint_id}}
        assert list(memory.list(config_, before=before)) == []
        assert memory.get_tuple(config_).checkpoint["id"] == checkpoint_id
    with PostgresSaver.from_conn_string(DB_URI, pipeline=True) as memory:
        assert memory.get_tuple(config_) is not None


async def test_official_async_docs_snippets(pg_clean_url: str) -> None:
    from langgraph_store_dual import AsyncPostgresSaver  # was langgraph.checkpoint.postgres.aio

    DB_URI = pg_clean_url
    connection_kwargs = {"autocommit": True, "prepare_threshold": 0}
    async with AsyncConnectionPool(conninfo=DB_URI, max_size=20, kwargs=connection_kwargs) as pool:
        checkpointer = AsyncPostgresSaver(pool)
        await checkpointer.asetup()  # the docs await setup(): see the LangGraph-suite tests
        await checkpointer.aput(config("1"), checkpoint(0), {"step": 1}, {"i": 1})
    async with await psycopg.AsyncConnection.connect(DB_URI, **OFFICIAL_KWARGS) as conn:
        checkpointer = AsyncPostgresSaver(conn)
        await checkpointer.asetup()
        assert (await checkpointer.aget_tuple(config("1"))) is not None
    serde = JsonPlusSerializer()
    async with AsyncPostgresSaver.from_conn_string(DB_URI, pipeline=True, serde=serde) as memory:
        assert memory.serde is serde
        assert [t async for t in memory.alist(config("1"), limit=2)]


# --------------------------------------------------------------------------------------
# libpq before 17 (a plain `pip install`: the pure-Python psycopg over the system libpq)
# --------------------------------------------------------------------------------------


@pytest.fixture
def old_libpq(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """libpq 15 as psycopg sees it: no chunked streams (`stream(size>1)` raises). Counts
    the FETCHes of server-side cursors."""
    monkeypatch.setattr(psycopg.capabilities, "has_stream_chunked", lambda check=False: False)
    counts = {"fetches": 0}

    def refuse(stream: Any) -> Any:
        def guarded(self, query, params=None, *, size: int = 1, **kwargs):
            if size > 1:
                raise psycopg.NotSupportedError("stream with size > 1 requires libpq 17.0")
            return stream(self, query, params, size=size, **kwargs)

        return guarded

    def counted(fetchmany: Any) -> Any:
        def fetch(self, size: int = 0):
            counts["fetches"] += 1
            return fetchmany(self, size)

        return fetch

    monkeypatch.setattr(psycopg.Cursor, "stream", refuse(psycopg.Cursor.stream))
    monkeypatch.setattr(psycopg.AsyncCursor, "stream", refuse(psycopg.AsyncCursor.stream))
    monkeypatch.setattr(psycopg.ServerCursor, "fetchmany", counted(psycopg.ServerCursor.fetchmany))
    fetch = psycopg.AsyncServerCursor.fetchmany
    monkeypatch.setattr(psycopg.AsyncServerCursor, "fetchmany", counted(fetch))
    return counts


HISTORY = 250  # checkpoints: three chunks of STREAM_CHUNK


async def fill_history(saver: Any, thread_id: str) -> None:
    parent = None
    for i in range(HISTORY):
        cp = checkpoint(i)
        await saver.aput(config(thread_id, parent), cp, {"step": i}, {"i": i + 1})
        parent = cp["id"]


async def read_history(saver: Any, thread_id: str) -> None:
    """list and alist stream the whole history in order; an abandoned one lets go."""
    want = list(range(HISTORY - 1, -1, -1))
    steps = await asyncio.to_thread(
        lambda: [t.metadata["step"] for t in saver.list(config(thread_id))]
    )
    assert steps == want
    assert [t.metadata["step"] async for t in saver.alist(config(thread_id))] == want
    async for _ in saver.alist(config(thread_id)):
        break
    assert await saver.aget_tuple(config(thread_id)) is not None


PG_FLAVOURS = ["postgres-sync", "postgres-async"]


@pytest.mark.parametrize("flavour", PG_FLAVOURS)
async def test_history_without_chunked_streams(
    pg_clean_url: str, old_libpq: dict[str, int], flavour: str
) -> None:
    async with open_saver(flavour, pg_clean_url) as saver:
        await fill_history(saver, "h")
        await read_history(saver, "h")
        graph = build_chat_graph(saver, ["one", "two"])
        cfg = {"configurable": {"thread_id": "chat"}}
        await graph.ainvoke({"messages": [HumanMessage("a")]}, cfg)
        await graph.ainvoke({"messages": [HumanMessage("b")]}, cfg)
        assert len([s async for s in graph.aget_state_history(cfg)]) == 6
        assert len(list(await asyncio.to_thread(lambda: list(graph.get_state_history(cfg))))) == 6
    # one FETCH per STREAM_CHUNK rows (never all rows at once, never one per checkpoint)
    assert 0 < old_libpq["fetches"] <= 2 * 4 + 2 * 2 + 4


@pytest.mark.parametrize("flavour", PG_FLAVOURS)
async def test_history_without_chunked_streams_through_pgbouncer(
    pg_clean_url: str, pgbouncer_url: str, old_libpq: dict[str, int], flavour: str
) -> None:
    url = pgbouncer_url + ("&" if "?" in pgbouncer_url else "?") + "pgbouncer=true"
    async with open_saver(flavour, url) as saver:
        await fill_history(saver, "hb")

        async def reader() -> None:
            await read_history(saver, "hb")

        await asyncio.gather(*(reader() for _ in range(3)))
    assert old_libpq["fetches"] > 0


@pytest.mark.parametrize("cls", [PostgresSaver, AsyncPostgresSaver])
async def test_history_without_chunked_streams_on_a_connection(
    pg_clean_url: str, old_libpq: dict[str, int], cls: type
) -> None:
    if cls is PostgresSaver:
        with psycopg.connect(pg_clean_url, **OFFICIAL_KWARGS) as conn:
            saver = PostgresSaver(conn)
            await fill_history(saver, "hc")
            await read_history(saver, "hc")
    else:
        async with await psycopg.AsyncConnection.connect(pg_clean_url, **OFFICIAL_KWARGS) as conn:
            saver = AsyncPostgresSaver(conn)
            await fill_history(saver, "hc")
            async for _ in saver.alist(config("hc")):
                break
            assert len([t async for t in saver.alist(config("hc"))]) == HISTORY


SYSTEM_LIBPQ_SCRIPT = """
import asyncio, sys
import psycopg
from langgraph.checkpoint.base import empty_checkpoint
from langgraph_store_dual import AsyncPostgresSaver, PostgresSaver

assert psycopg.pq.__impl__ == "python", psycopg.pq.__impl__
url, parent = sys.argv[1], None
with PostgresSaver.from_conn_string(url) as saver:
    for i in range(120):
        cp = empty_checkpoint()
        conf = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": parent}}
        saver.put(conf, cp, {"step": i}, {})
        parent = cp["id"]
    assert len(list(saver.list({"configurable": {"thread_id": "t"}}))) == 120

async def main():
    async with AsyncPostgresSaver.from_conn_string(url) as saver:
        return len([t async for t in saver.alist({"configurable": {"thread_id": "t"}})])

assert asyncio.run(main()) == 120
print(psycopg.pq.version(), psycopg.capabilities.has_stream_chunked())
"""


def test_history_on_the_system_libpq(pg_clean_url: str) -> None:
    """For real: psycopg's pure-Python implementation over the system's libpq."""
    if ctypes.util.find_library("pq") is None:
        pytest.skip("no system libpq: psycopg's pure-Python implementation cannot load")
    env = {**os.environ, "PSYCOPG_IMPL": "python"}
    done = subprocess.run(
        [sys.executable, "-c", SYSTEM_LIBPQ_SCRIPT, pg_clean_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    version, chunked = done.stdout.split()
    assert chunked == str(int(version) >= 170000)


# --------------------------------------------------------------------------------------
# libpq keyword strings and passwords
# --------------------------------------------------------------------------------------

SECRET = "S3cret-kw-77"


def keyword_dsn(url: str, password: str = SECRET, **extra: str) -> str:
    """The database of `url` as a libpq keyword string with `password` (trust auth
    ignores it), unquoted as users write them."""
    params = {**conninfo_to_dict(url), **extra}
    params.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in params.items()) + f" password={password}"


def assert_secret_kept(caplog: pytest.LogCaptureFixture, *texts: str, secret: str = SECRET) -> None:
    logged = [r.getMessage() for r in caplog.records]
    for text in (*texts, *logged):
        assert secret not in text, text


async def test_from_url_takes_a_keyword_string(
    pg_clean_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dsn = keyword_dsn(pg_clean_url)
    opener = from_url(dsn)
    with opener as saver:
        saver.put(config("kw"), checkpoint(0), {}, {"i": 1})
        assert_secret_kept(caplog, repr(opener), repr(saver), str(saver))
    async with from_url(dsn) as asaver:
        assert (await asaver.aget_tuple(config("kw"))) is not None
    assert_secret_kept(caplog)


@pytest.mark.parametrize("cls", [PostgresSaver, AsyncPostgresSaver])
async def test_bad_pool_option_with_a_keyword_string(
    pg_clean_url: str, caplog: pytest.LogCaptureFixture, cls: type
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConfigError, match="pool_max_size") as info:
        cls(keyword_dsn(pg_clean_url), pool_max_size="many")
    assert_secret_kept(caplog, str(info.value), repr(info.value))
    with pytest.raises(ConfigError, match=r"pool_max_size.*keyword arguments") as info:
        cls(keyword_dsn(pg_clean_url, pool_max_size="7"))
    assert_secret_kept(caplog, str(info.value), repr(info.value))


@pytest.mark.parametrize(
    "dsn",
    [
        "host=127.0.0.1 password=S3cret-kw-77 x9 dbname=d",  # unquoted space
        "host=127.0.0.1 password='S3cret-kw-77 dbname=d",  # unterminated quote
        "postgresql://u:S3cret-kw-77%zz@127.0.0.1/d",  # bad percent-encoding
    ],
    ids=["space", "quote", "percent"],
)
def test_malformed_passwords_are_not_shown(caplog: pytest.LogCaptureFixture, dsn: str) -> None:
    caplog.set_level(logging.DEBUG)
    for attempt in (lambda: PostgresSaver(dsn), lambda: from_url(dsn).__enter__()):
        with pytest.raises(ConfigError) as info:
            attempt()
        assert_secret_kept(caplog, str(info.value), repr(info.value))
        assert "x9" not in str(info.value)


def test_keyword_password_is_given_to_libpq_as_written(pg_clean_url: str) -> None:
    with PostgresSaver.from_conn_string(keyword_dsn(pg_clean_url, "a?b")) as saver:
        saver.setup()
        assert conninfo_to_dict(saver.conn.conninfo)["password"] == "a?b"
    with PostgresSaver.from_conn_string(keyword_dsn(pg_clean_url, "x?pool_max_size=7")) as saver:
        saver.setup()
        assert saver.conn.max_size == PoolSettings().pool_max_size
        assert conninfo_to_dict(saver.conn.conninfo)["password"] == "x?pool_max_size=7"
    url = pg_clean_url + ("&" if "?" in pg_clean_url else "?") + "password=a%3Fb&pool_max_size=3"
    with PostgresSaver.from_conn_string(url) as saver:
        assert saver.conn.max_size == 3
        assert conninfo_to_dict(saver.conn.conninfo)["password"] == "a?b"


# --------------------------------------------------------------------------------------
# Connection mistakes fail at once, with the server's message
# --------------------------------------------------------------------------------------

RIGHT_PASSWORD = "R1ght-pw-31"


@pytest.fixture(scope="module")
def own_server() -> Iterator[tuple[str, Any]]:
    """A throwaway server that checks passwords (the shared test server trusts everyone)
    and that tests may stop and start: its URL with RIGHT_PASSWORD, and its executor."""
    with throwaway_executor() as (url, executor):
        with wait_ready(url) as conn:
            conn.execute(f"ALTER ROLE postgres PASSWORD '{RIGHT_PASSWORD}'")
            hba = conn.execute("SHOW hba_file").fetchone()[0]
            Path(hba).write_text("host all all 127.0.0.1/32 scram-sha-256\n")
            conn.execute("SELECT pg_reload_conf()")
        yield keyword_dsn(url, RIGHT_PASSWORD), executor


def wait_ready(url: str, timeout: float = 30) -> psycopg.Connection:
    """A connection to `url` as soon as the server accepts one (it may be starting up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return psycopg.connect(url, autocommit=True, connect_timeout=2)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise


@pytest.fixture
def password_server(own_server: tuple[str, Any]) -> str:
    return own_server[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mistakes(pg_url: str, password_url: str) -> dict[str, tuple[str, type, str]]:
    """Each mistake: a URL with SECRET in it, the error class, what its message says."""
    base = conninfo_to_dict(pg_url)
    secure = conninfo_to_dict(password_url)

    def url(params: dict, **changes: Any) -> str:
        p = {**params, "password": SECRET, **changes}
        return f"postgresql://{p['user']}:{p['password']}@{p['host']}:{p['port']}/{p['dbname']}"

    return {
        "password": (url(secure), ConnectError, "password authentication failed"),
        "refused": (url(base, port=free_port()), ConnectError, "Connection refused"),
        "database": (url(base, dbname="no_such_db_x"), ConnectError, "does not exist"),
        "role": (url(base, user="no_such_role_x"), ConnectError, "does not exist"),
        "option": (url(base) + "?sslmod=disable", ConfigError, "sslmod"),
        "keyword-option": (keyword_dsn(pg_url, pasword="x"), ConfigError, "pasword"),
    }


MISTAKES = ["password", "refused", "database", "role", "option", "keyword-option"]


@pytest.mark.parametrize("mistake", MISTAKES)
@pytest.mark.parametrize("flavour", PG_FLAVOURS)
async def test_connection_mistakes_fail_at_once(
    pg_url: str,
    password_server: str,
    caplog: pytest.LogCaptureFixture,
    mistake: str,
    flavour: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    url, error, says = mistakes(pg_url, password_server)[mistake]
    started = time.monotonic()
    with pytest.raises(error, match=says) as info:
        async with open_saver(flavour, url, pool_timeout=30) as saver:
            await saver.asetup()
    # not the pool's PoolTimeout after pool_timeout seconds
    assert time.monotonic() - started < 15
    assert isinstance(info.value, StoreError)
    assert_secret_kept(caplog, str(info.value), repr(info.value))
    with pytest.raises(error, match=says), from_url(url):
        pass


async def test_the_right_password_connects(password_server: str) -> None:
    url = password_server
    async with from_url(url) as saver:
        await saver.asetup()
    with from_url(url) as saver:
        saver.setup()


# --------------------------------------------------------------------------------------
# Recovery: a restart (backends terminated) and an outage (server stopped, started)
# --------------------------------------------------------------------------------------

WORKERS = 4


@pytest.mark.parametrize("flavour", PG_FLAVOURS)
async def test_stale_connections_after_a_restart(
    pg_clean_url: str, pg_terminate: Any, flavour: str
) -> None:
    """Every pooled connection dies at once (no checkout check, so all are handed out
    stale): reads run again on a fresh connection and succeed; a write fails at most once
    per worker, clearly, and the next ones succeed."""
    options = {"pool_min_size": WORKERS, "pool_max_size": WORKERS, "pool_check": False}
    async with open_saver(flavour, pg_clean_url, **options) as saver:
        await fill_thread(saver, "r", 3)
        assert await asyncio.to_thread(pg_terminate, pg_clean_url) >= 1

        async def worker(n: int) -> list[str]:
            outcomes = []
            for i in range(4):
                assert (await saver.aget_tuple(config("r"))) is not None
                assert len([t async for t in saver.alist(config("r"))]) == 3
                try:
                    await saver.aput(config(f"w{n}"), checkpoint(i), {}, {"i": i + 1})
                    outcomes.append("ok")
                except psycopg.OperationalError as exc:
                    assert "terminat" in str(exc) or "closed" in str(exc), exc
                    outcomes.append("failed")
            return outcomes

        results = await asyncio.gather(*(worker(n) for n in range(WORKERS)))
        for outcomes in results:
            assert outcomes.count("failed") <= 1 and outcomes[-1] == "ok", results


async def fill_thread(saver: Any, thread_id: str, n: int) -> None:
    parent = None
    for i in range(n):
        cp = checkpoint(i)
        await saver.aput(config(thread_id, parent), cp, {"step": i}, {"i": i + 1})
        parent = cp["id"]


OUTAGE_S = 6.0  # long enough for psycopg_pool's back-off to wait 8 s for its next attempt


@pytest.mark.parametrize("flavour", PG_FLAVOURS)
async def test_recovery_after_an_outage(own_server: tuple[str, Any], flavour: str) -> None:
    """The server stops: calls fail at once with the server's message (not a PoolTimeout
    after pool_timeout); it starts again on the same port: calls work again within about
    a second (psycopg_pool alone waits out its back-off, up to 32 s)."""
    url, server = own_server
    async with open_saver(flavour, url, pool_timeout=10) as saver:
        await fill_thread(saver, "o", 2)
        await asyncio.to_thread(server.stop)
        try:
            down = time.monotonic()
            failures = 0
            while time.monotonic() - down < OUTAGE_S:
                started = time.monotonic()
                with pytest.raises(psycopg.OperationalError) as info:
                    await saver.aget_tuple(config("o"))
                assert time.monotonic() - started < 5, "waited for the pool's timeout"
                failures += isinstance(info.value, ConnectError)
            assert failures > 0
            assert "Connection refused" in str(info.value)
        finally:
            await asyncio.to_thread(server.start)
        await asyncio.to_thread(lambda: wait_ready(url).close())
        up = time.monotonic()
        while True:
            try:
                assert (await saver.aget_tuple(config("o"))) is not None
                break
            except psycopg.OperationalError:
                assert time.monotonic() - up < 30, "no recovery"
        recovery = time.monotonic() - up
        await saver.aput(config("o2"), checkpoint(0), {}, {"i": 1})
    assert recovery < 3, f"recovered {recovery:.1f} s after the server was back"


def test_url_parameters_with_spaces_reach_libpq(pg_clean_url: str) -> None:
    """`options=-c%20work_mem%3D64kB`: the space stays a space (urlencode's `+` is not one
    to libpq), next to pool settings that are taken out of the URL."""
    url = pg_clean_url + ("&" if "?" in pg_clean_url else "?")
    url += "options=-c%20work_mem%3D64kB&pool_max_size=3"
    with PostgresSaver.from_conn_string(url) as saver:
        assert saver.conn.max_size == 3
        with saver.conn.connection() as conn:
            assert conn.execute("SHOW work_mem").fetchone()[0] == "64kB"


# --------------------------------------------------------------------------------------
# Closed savers, unknown options
# --------------------------------------------------------------------------------------


async def test_a_saver_used_after_its_with_block(saver_factory: Any, flavour: str) -> None:
    async with saver_factory() as saver:
        await saver.aput(config("t"), checkpoint(0), {}, {"i": 1})
    calls = {
        "aget_tuple": lambda: saver.aget_tuple(config("t")),
        "aput": lambda: saver.aput(config("t"), checkpoint(1), {}, {"i": 2}),
        "alist": lambda: anext(saver.alist(config("t"))),
        "get_tuple": lambda: asyncio.to_thread(saver.get_tuple, config("t")),
        "list": lambda: asyncio.to_thread(lambda: next(saver.list(config("t")))),
    }
    for name, call in calls.items():
        with pytest.raises(ClosedError, match="is closed") as info:
            await call()
        assert isinstance(info.value, StoreError), name
    assert "closed" in repr(saver) or flavour.startswith("sqlite")


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_unknown_saver_options_name_the_valid_ones(
    flavour: str, tmp_path: Path, pg_url: str
) -> None:
    where = pg_url if flavour.startswith("postgres") else tmp_path
    with pytest.raises(ConfigError, match=r"unknown \w+Saver option auto_setpu; valid.*auto_setup"):
        async with open_saver(flavour, where, auto_setpu=False):
            pass


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_unknown_sqlite_url_parameters(tmp_path: Path, api: str) -> None:
    url = f"sqlite:///{tmp_path}/x.db?timeout=5&mode=ro"
    with pytest.raises(ConfigError, match="mode, timeout"):
        if api == "sync":
            with from_url(url):
                pass
        else:
            async with from_url(url):
                pass
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_a_busy_pool_times_out_naming_the_whole_wait(pg_clean_url: str, api: str) -> None:
    """Every connection in use: the call fails after `pool_timeout` with a PoolTimeout
    naming that wait (it is made of steps; psycopg_pool's message named the last one)."""
    async with open_saver(
        f"postgres-{api}", pg_clean_url, pool_max_size=1, pool_timeout=0.7
    ) as saver:
        config = {"configurable": {"thread_id": "busy"}}
        if api == "sync":
            saver.get_tuple(config)
            with saver.conn.connection(), pytest.raises(PoolTimeout) as info:
                saver.get_tuple(config)
        else:
            await saver.aget_tuple(config)
            async with saver.conn.connection():
                with pytest.raises(PoolTimeout) as info:
                    await saver.aget_tuple(config)
    assert 0.7 <= _waited_seconds(info.value) < 5
    assert "max_size 1" in str(info.value)


def _waited_seconds(exc: BaseException) -> float:
    match = re.search(r"after ([0-9.]+) sec", str(exc))
    assert match, exc
    return float(match.group(1))


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_a_timeout_names_the_wait_a_slow_connection_check_made(
    pg_clean_url: str, api: str
) -> None:
    """A pooler that holds the pool's connection check (PgBouncer with its server down
    waits `query_wait_timeout`, 120 s) makes the wait outlast `pool_timeout`: the
    PoolTimeout names the time the call waited, not the setting (it said "after 5.00 sec"
    after 125 s). The check here fails after 1 s, against a 0.3 s timeout."""
    async with open_saver(
        f"postgres-{api}", pg_clean_url, pool_max_size=1, pool_timeout=0.3, pool_check_idle=0
    ) as saver:
        config = {"configurable": {"thread_id": "held"}}
        started = time.monotonic()
        if api == "sync":
            saver.get_tuple(config)

            def held(conn: Any) -> None:
                time.sleep(1)
                raise psycopg.OperationalError("the pooler gave up")

            saver.conn._check = held
            started = time.monotonic()
            with pytest.raises(PoolTimeout) as info:
                saver.get_tuple(config)
        else:
            await saver.aget_tuple(config)

            async def aheld(conn: Any) -> None:
                await asyncio.sleep(1)
                raise psycopg.OperationalError("the pooler gave up")

            saver.conn._check = aheld
            started = time.monotonic()
            with pytest.raises(PoolTimeout) as info:
                await saver.aget_tuple(config)
        elapsed = time.monotonic() - started
    assert 1 <= _waited_seconds(info.value) <= elapsed


def test_a_timeout_during_a_retry_keeps_the_error_that_made_it(pg_clean_url: str) -> None:
    """A read retried after its connection was lost (PgBouncer gave up waiting for its
    server) and then timing out names the first error as its cause, not only the wait."""
    url = pg_clean_url + ("&" if "?" in pg_clean_url else "?")
    with PostgresSaver.from_conn_string(url + "pool_max_size=1&pool_timeout=0.3") as saver:
        saver.get_tuple({"configurable": {"thread_id": "t"}})
        try:
            raise psycopg.OperationalError("query_wait_timeout")
        except psycopg.OperationalError:
            with (
                saver.conn.connection(),
                pytest.raises(PoolTimeout) as info,
                pooled(saver.conn, None),
            ):
                pass
    assert isinstance(info.value.__cause__, psycopg.OperationalError)
    assert "query_wait_timeout" in str(info.value.__cause__)
