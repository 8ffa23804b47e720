"""PostgreSQL only: readable JSONB, dead backends, concurrent setup, URL settings, secrets,
and the connection kinds a user can hand over (connection, autocommit or not, own pools).

Uses the `pg_url` / `pg_clean_url` / `pg_terminate` fixtures of tests/pg_server.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import psycopg
import pytest
from helpers import (
    admin,
    checkpoint,
    exercise_async,
    exercise_sync,
    in_thread,
    pg_schema_url,
    visible_elsewhere,
)
from helpers import cfg as config
from langchain_core.messages import HumanMessage
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from storage import build_chat_graph

from langgraph_store_dual import (
    AsyncPostgresSaver,
    ConfigError,
    PostgresSaver,
    SchemaVersionError,
    StoreError,
    from_url,
)
from langgraph_store_dual.postgres.dialect import POSTGRES

SPAWN = multiprocessing.get_context("spawn")
PROCESS_TIMEOUT = 120
PASSWORD = "s3cr3t-PW-x9"
#: schema_version after setup() on an empty database.
ALL_VERSIONS = [(v,) for v in range(1, len(POSTGRES.migrations) + 1)]


def with_params(url: str, **params: Any) -> str:
    return url + ("&" if urlsplit(url).query else "?") + urlencode(params)


def with_password(url: str, password: str = PASSWORD, port: int | None = None) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{parts.username or 'postgres'}:{password}@{host}:{port or parts.port or 5432}"
    return parts._replace(netloc=netloc).geturl()


def wait_until(condition: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    """Poll a database-side condition (not a fixed sleep: returns as soon as it holds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


# --------------------------------------------------------------------------------------
# JSONB is readable
# --------------------------------------------------------------------------------------


# The view shows snapshots with their stored values in place (see README, "Storage").
LAST_CONTENT = """SELECT checkpoint -> 'channel_values' -> 'messages' -> -1 ->> 'content'
    FROM checkpoints_expanded WHERE thread_id = %s ORDER BY thread_ts DESC LIMIT 1"""


def test_json_holds_readable_messages(pg_clean_url: str) -> None:
    with PostgresSaver.from_conn_string(pg_clean_url) as saver:
        graph = build_chat_graph(saver, ["Hello from a fake model", "2 + 2 = 4"])
        cfg = {"configurable": {"thread_id": "chat"}}
        graph.invoke({"messages": [HumanMessage("hi")]}, cfg)
        graph.invoke({"messages": [HumanMessage("2 + 2?")]}, cfg)
    with admin(pg_clean_url) as conn:
        assert conn.execute(LAST_CONTENT, ("chat",)).fetchall() == [("2 + 2 = 4",)]
        row = conn.execute(
            """SELECT checkpoint -> 'channel_values' -> 'messages' -> 0 ->> 'content',
                checkpoint -> 'channel_values' -> 'messages' -> -1 ->> 'type',
                json_array_length(checkpoint -> 'channel_values' -> 'messages'),
                metadata ->> 'source', (metadata ->> 'step')::int,
                json_typeof(checkpoint), jsonb_typeof(metadata)
            FROM checkpoints_expanded WHERE thread_id = 'chat'
            ORDER BY thread_ts DESC LIMIT 1"""
        ).fetchone()
        assert row == ("hi", "ai", 4, "loop", 4, "object", "object")
        # JSON operators work on every row and on the writes; metadata is JSONB
        assert conn.execute(
            'SELECT count(*) FROM checkpoints WHERE metadata @> \'{"source": "input"}\''
        ).fetchone() == (2,)
        humans = conn.execute(
            """SELECT value -> 0 ->> 'content' FROM checkpoint_writes_flat
            WHERE thread_id = 'chat' AND channel = 'messages' AND value -> 0 ->> 'type' = 'human'
            ORDER BY thread_ts"""
        ).fetchall()
        assert humans == [("hi",), ("2 + 2?",)]


async def test_json_readable_from_async_saver(pg_clean_url: str) -> None:
    async with AsyncPostgresSaver.from_conn_string(pg_clean_url) as saver:
        graph = build_chat_graph(saver, ["async fake reply"])
        await graph.ainvoke(
            {"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": "a"}}
        )
    with admin(pg_clean_url) as conn:
        assert conn.execute(LAST_CONTENT, ("a",)).fetchall() == [("async fake reply",)]


# --------------------------------------------------------------------------------------
# Backends terminated under a URL-created saver (which owns a pool)
# --------------------------------------------------------------------------------------

CLEAR_DISCONNECT = ("terminat", "closed", "connection", "server")


def assert_clear(exc: BaseException) -> None:
    assert isinstance(exc, psycopg.OperationalError), repr(exc)
    text = str(exc).lower()
    assert any(word in text for word in CLEAR_DISCONNECT), text


def verify_all_decode(saver: Any, attempts: dict[str, tuple[dict, BaseException | None]]) -> None:
    """Every stored checkpoint decodes; a put that raised left all of it or nothing."""
    stored = {t.checkpoint["id"]: t for t in saver.list(None)}
    for cp_id, (cp, error) in attempts.items():
        if error is None:
            assert stored[cp_id].checkpoint == cp
        elif cp_id in stored:
            assert stored[cp_id].checkpoint == cp, "a failed put left a partial checkpoint"
    for t in stored.values():
        assert t.checkpoint == attempts[t.checkpoint["id"]][0]


POOL = 2  # connections in the saver's pool: each dead one can fail one call


#: pool_check settings: a test on every checkout, on checkouts after an idle second
#: (the default; these calls follow each other closely, so none is tested), none.
CHECKS = {
    "every": {"pool_check": True, "pool_check_idle": 0},
    "idle": {},
    "off": {"pool_check": False},
}


def assert_recovered(outcomes: list[str], check: str) -> None:
    """With a test on every checkout the pool never hands out a dead connection. Else
    each dead connection may fail one call; after that every call succeeds again."""
    if check == "every":
        assert outcomes == ["ok"] * len(outcomes), outcomes
        return
    assert outcomes[:4] == ["ok"] * 4, outcomes
    for start, end in ((4, 8), (8, len(outcomes))):
        window = outcomes[start:end]
        errors = window.count("error")
        assert errors <= POOL and window[errors:] == ["ok"] * (len(window) - errors), outcomes
    assert outcomes[-1] == "ok", outcomes


@pytest.mark.parametrize("check", CHECKS)
def test_sync_saver_survives_terminated_backends(
    pg_clean_url: str, pg_terminate: Callable, check: str
) -> None:
    url = with_params(pg_clean_url, pool_min_size=POOL, pool_max_size=POOL, **CHECKS[check])
    attempts: dict[str, tuple[dict, BaseException | None]] = {}
    with PostgresSaver.from_conn_string(url) as saver:
        saver.setup()
        parent = None
        outcomes = []
        for i in range(12):
            if i in (4, 8):
                assert pg_terminate(pg_clean_url) >= 1
            cp = checkpoint(i)
            try:
                stored = saver.put(config("t", parent), cp, {"step": i}, {"i": i + 1})
                saver.put_writes(stored, [("i", i)], f"task{i}")
                attempts[cp["id"]] = (cp, None)
                parent = cp["id"]
                outcomes.append("ok")
            except psycopg.OperationalError as exc:
                assert_clear(exc)
                attempts[cp["id"]] = (cp, exc)
                outcomes.append("error")
        assert_recovered(outcomes, check)
        verify_all_decode(saver, attempts)
        assert saver.get_tuple(config("t")).checkpoint["channel_values"]["i"] == 11


@pytest.mark.parametrize("check", CHECKS)
async def test_async_saver_survives_terminated_backends(
    pg_clean_url: str, pg_terminate: Callable, check: str
) -> None:
    url = with_params(pg_clean_url, pool_min_size=POOL, pool_max_size=POOL, **CHECKS[check])
    attempts: dict[str, tuple[dict, BaseException | None]] = {}
    async with AsyncPostgresSaver.from_conn_string(url) as saver:
        await saver.asetup()
        parent = None
        outcomes = []
        for i in range(12):
            if i in (4, 8):
                assert await asyncio.to_thread(pg_terminate, pg_clean_url) >= 1
            cp = checkpoint(i)
            try:
                stored = await saver.aput(config("t", parent), cp, {"step": i}, {"i": i + 1})
                await saver.aput_writes(stored, [("i", i)], f"task{i}")
                attempts[cp["id"]] = (cp, None)
                parent = cp["id"]
                outcomes.append("ok")
            except psycopg.OperationalError as exc:
                assert_clear(exc)
                attempts[cp["id"]] = (cp, exc)
                outcomes.append("error")
        assert_recovered(outcomes, check)
        await asyncio.to_thread(verify_all_decode, saver, attempts)


_WAITING = """SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE NOT l.granted AND a.datname = current_database()
    AND l.relation = 'checkpoints'::regclass"""
_KILL_OTHERS = """SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))
    FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
    AND backend_type = 'client backend'"""


def test_sync_put_in_flight_when_its_backend_dies(pg_clean_url: str) -> None:
    """A put blocked in the server (table locked by another session) loses its backend:
    it raises a clear OperationalError, nothing of it is stored, the saver carries on."""
    with PostgresSaver.from_conn_string(with_params(pg_clean_url, pool_min_size=1)) as saver:
        saver.setup()
        first = checkpoint(0)
        saver.put(config("t"), first, {"step": 0}, {"i": 1})
        victim = checkpoint(1)
        with admin(pg_clean_url) as locker, concurrent.futures.ThreadPoolExecutor(1) as pool:
            locker.execute("BEGIN")
            locker.execute("LOCK TABLE checkpoints IN EXCLUSIVE MODE")
            future = pool.submit(saver.put, config("t", first["id"]), victim, {"step": 1}, {"i": 2})
            wait_until(lambda: locker.execute(_WAITING).fetchone()[0] > 0, what="a blocked put")
            assert locker.execute(_KILL_OTHERS).fetchone()[0] >= 1
            locker.execute("ROLLBACK")
            with pytest.raises(psycopg.OperationalError) as info:
                future.result(timeout=30)
        assert_clear(info.value)
        assert saver.get_tuple(config("t", victim["id"])) is None
        after = checkpoint(2)
        saver.put(config("t", first["id"]), after, {"step": 2}, {"i": 3})
        assert [t.checkpoint for t in saver.list(config("t"))] == [after, first]


async def test_async_put_in_flight_when_its_backend_dies(pg_clean_url: str) -> None:
    async with AsyncPostgresSaver.from_conn_string(
        with_params(pg_clean_url, pool_min_size=1)
    ) as saver:
        await saver.asetup()
        first = checkpoint(0)
        await saver.aput(config("t"), first, {"step": 0}, {"i": 1})
        victim = checkpoint(1)
        async with await psycopg.AsyncConnection.connect(pg_clean_url, autocommit=True) as locker:

            async def waiting() -> int:
                return (await (await locker.execute(_WAITING)).fetchone())[0]

            await locker.execute("BEGIN")
            await locker.execute("LOCK TABLE checkpoints IN EXCLUSIVE MODE")
            task = asyncio.ensure_future(
                saver.aput(config("t", first["id"]), victim, {"step": 1}, {"i": 2})
            )
            deadline = time.monotonic() + 30
            while not await waiting():  # polls the server, returns once the put waits
                assert time.monotonic() < deadline and not task.done(), "put never blocked"
                await asyncio.sleep(0.005)
            assert (await (await locker.execute(_KILL_OTHERS)).fetchone())[0] >= 1
            await locker.execute("ROLLBACK")
            with pytest.raises(psycopg.OperationalError) as info:
                await asyncio.wait_for(task, 30)
        assert_clear(info.value)
        assert await saver.aget_tuple(config("t", victim["id"])) is None
        after = checkpoint(2)
        await saver.aput(config("t", first["id"]), after, {"step": 2}, {"i": 3})
        assert [t.checkpoint async for t in saver.alist(config("t"))] == [after, first]


# --------------------------------------------------------------------------------------
# Two processes set up an empty database at once
# --------------------------------------------------------------------------------------

SETUP_ROUNDS = 6


def _setup_process(urls: list[str], use_async: bool, barrier: Any, errors: str) -> None:
    try:
        for url in urls:
            if use_async:

                async def main(url: str = url) -> None:
                    async with AsyncPostgresSaver.from_conn_string(url) as saver:
                        barrier.wait()
                        await saver.asetup()
                        await saver.aput(config("a"), checkpoint(0), {}, {"i": 1})

                asyncio.run(main())
            else:
                with PostgresSaver.from_conn_string(url) as saver:
                    barrier.wait()
                    saver.setup()
                    saver.put(config("s"), checkpoint(0), {}, {"i": 1})
    except BaseException:
        Path(errors).write_text(traceback.format_exc())
        barrier.abort()
        raise


@pytest.mark.parametrize("kinds", [("sync", "async"), ("sync", "sync")], ids="+".join)
def test_two_processes_set_up_an_empty_database(
    pg_clean_url: str, tmp_path: Path, kinds: tuple[str, str]
) -> None:
    """Each round uses a new empty schema (first on search_path) of the clean database."""
    schemas = [f"setup_round_{i}" for i in range(SETUP_ROUNDS)]
    with admin(pg_clean_url) as conn:
        for schema in schemas:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}")
    urls = [with_params(pg_clean_url, options=f"-csearch_path={s}") for s in schemas]
    barrier = SPAWN.Barrier(2, timeout=PROCESS_TIMEOUT)
    errors = [tmp_path / f"{i}-{kind}.err" for i, kind in enumerate(kinds)]
    processes = [
        SPAWN.Process(target=_setup_process, args=(urls, kind == "async", barrier, str(err)))
        for kind, err in zip(kinds, errors, strict=True)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join(PROCESS_TIMEOUT)
    for p in processes:
        if p.is_alive():
            p.kill()
            p.join()
    failures = {e.name: e.read_text() for e in errors if e.exists()}
    assert not failures, "\n".join(f"--- {name}\n{text}" for name, text in failures.items())
    assert all(p.exitcode == 0 for p in processes)
    with admin(pg_clean_url) as conn:
        for schema in schemas:
            versions = conn.execute(f"SELECT version FROM {schema}.schema_version ORDER BY 1")
            assert versions.fetchall() == ALL_VERSIONS
            assert conn.execute(f"SELECT count(*) FROM {schema}.checkpoints").fetchone() == (2,)


# --------------------------------------------------------------------------------------
# Pool settings from the URL
# --------------------------------------------------------------------------------------

OURS = ("pool_max_size", "pool_min_size", "pool_check", "pgbouncer", "pool_max_idle")


def _assert_pool(saver: Any, pool: Any, conn: Any) -> None:
    assert pool.max_size == 3 and pool.min_size == 1
    assert pool.max_idle == 42.0 and pool.max_lifetime == 600.0 and pool.timeout == 7.0
    assert saver.settings.pool_check is False and saver.settings.pgbouncer is True
    assert pool._check is None  # no health check configured on the pool
    assert conn.prepare_threshold is None  # PgBouncer mode: no server-side prepares
    for name in OURS:
        assert name not in pool.conninfo, pool.conninfo
        assert name not in conn.info.dsn, conn.info.dsn


POOL_PARAMS = {
    "pool_max_size": 3,
    "pool_min_size": 1,
    "pool_check": "false",
    "pgbouncer": "true",
    "pool_max_idle": 42,
    "pool_max_lifetime": 600,
    "pool_timeout": 7,
    "application_name": "lsd-settings-test",
}


def test_pool_settings_from_url_reach_the_pool(pg_clean_url: str) -> None:
    with PostgresSaver.from_conn_string(with_params(pg_clean_url, **POOL_PARAMS)) as saver:
        with saver.conn.connection() as conn:
            _assert_pool(saver, saver.conn, conn)
            # a libpq parameter that is not ours is kept
            assert conn.execute("SHOW application_name").fetchone() == ("lsd-settings-test",)
        saver.put(config("t"), checkpoint(0), {}, {"i": 1})
        assert saver.get_tuple(config("t")) is not None
    with from_url(with_params(pg_clean_url, pool_max_size=2, pipeline="false")) as saver:
        assert saver.conn.max_size == 2 and saver._pipeline is False


async def test_pool_settings_from_url_reach_the_async_pool(pg_clean_url: str) -> None:
    url = with_params(pg_clean_url, **POOL_PARAMS)
    async with AsyncPostgresSaver.from_conn_string(url) as saver:
        async with saver.conn.connection() as conn:
            _assert_pool(saver, saver.conn, conn)
            cur = await conn.execute("SHOW application_name")
            assert await cur.fetchone() == ("lsd-settings-test",)
        await saver.aput(config("t"), checkpoint(0), {}, {"i": 1})


def test_pool_settings_as_keywords(pg_clean_url: str) -> None:
    with PostgresSaver.from_conn_string(pg_clean_url, pool_max_size=5, pool_min_size=0) as saver:
        assert saver.conn.max_size == 5 and saver.conn.min_size == 0
        saver.put(config("t"), checkpoint(0), {}, {"i": 1})
    with pytest.raises(ConfigError, match=r"pool_max_sise.*valid options"):
        PostgresSaver(pg_clean_url, pool_max_sise=5)


BAD_SETTINGS = [
    pytest.param({"pool_max_size": "abc"}, "pool_max_size", id="max-size-abc"),
    pytest.param({"pool_min_size": "1.5"}, "pool_min_size", id="min-size-float"),
    pytest.param({"pool_check": "maybe"}, "pool_check", id="check-maybe"),
    pytest.param({"pgbouncer": "2"}, "pgbouncer", id="pgbouncer-2"),
    pytest.param({"pool_timeout": "soon"}, "pool_timeout", id="timeout-soon"),
    pytest.param({"prepare_threshold": "x"}, "prepare_threshold", id="prepare-x"),
    pytest.param({"pool_min_size": 5, "pool_max_size": 2}, "pool_min_size", id="min-gt-max"),
    pytest.param({"pool_max_size": 0}, "pool_max_size", id="max-zero"),
    pytest.param({"pool_min_size": -1}, "pool_min_size", id="min-negative"),
]


@pytest.mark.parametrize(("params", "name"), BAD_SETTINGS)
@pytest.mark.parametrize("how", ["url", "url-query-password", "keyword"])
def test_bad_pool_settings(pg_clean_url: str, params: dict, name: str, how: str) -> None:
    """A bad value names the setting, never the password (in the netloc or in the query)."""
    base = with_password(pg_clean_url)
    if how == "url":
        target, kwargs = with_params(base, **params), {}
    elif how == "url-query-password":
        target, kwargs = with_params(pg_clean_url, password=PASSWORD, **params), {}
    else:
        target, kwargs = base, params
    for opener in (
        lambda: PostgresSaver(target, **kwargs),
        lambda: from_url(target, **kwargs).__enter__(),
    ):
        with pytest.raises(ConfigError) as info:
            opener()
        text = f"{info.value} {info.value!r}"
        assert name in text, text
        assert PASSWORD not in text, text


async def test_bad_pool_settings_async(pg_clean_url: str) -> None:
    url = with_params(with_password(pg_clean_url), pool_max_size="many")
    with pytest.raises(ConfigError) as info:
        async with from_url(url):
            pass
    assert "pool_max_size" in str(info.value) and PASSWORD not in str(info.value)
    with pytest.raises(ConfigError) as info:
        AsyncPostgresSaver(with_password(pg_clean_url), pool_check="perhaps")
    assert "pool_check" in str(info.value) and PASSWORD not in str(info.value)


# --------------------------------------------------------------------------------------
# Passwords stay out of errors, logs and reprs
# --------------------------------------------------------------------------------------


def _failing_urls(pg_url: str) -> list[str]:
    parts = urlsplit(pg_url)
    host, port, db = parts.hostname or "127.0.0.1", parts.port or 5432, parts.path
    return [
        f"postgresql://postgres:{PASSWORD}@{host}:1{db}?pool_timeout=1",  # nothing listens
        f"postgresql://no_such_user_x:{PASSWORD}@{host}:{port}{db}?pool_timeout=1",
        f"postgresql://postgres:{PASSWORD}@{host}:{port}/no_such_db_x?pool_timeout=1",
        f"postgresql://postgres@{host}:1{db}?password={PASSWORD}&pool_timeout=1",
    ]


def _exception_texts(exc: BaseException) -> str:
    parts = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts.append(f"{exc} {exc!r} {''.join(traceback.format_exception_only(type(exc), exc))}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def _log_texts(caplog: pytest.LogCaptureFixture) -> str:
    out = []
    for record in caplog.records:
        out.append(record.getMessage())
        if record.exc_info:
            out.append("".join(traceback.format_exception(*record.exc_info)))
    return "\n".join(out)


@pytest.mark.parametrize("which", range(4), ids=["bad-port", "bad-user", "bad-db", "query-pw"])
def test_connection_failures_do_not_reveal_the_password(
    pg_url: str, caplog: pytest.LogCaptureFixture, which: int
) -> None:
    url = _failing_urls(pg_url)[which]
    caplog.set_level(logging.DEBUG)
    with pytest.raises(psycopg.Error) as info, PostgresSaver.from_conn_string(url) as saver:
        saver.setup()
    assert PASSWORD not in _exception_texts(info.value)
    assert PASSWORD not in _log_texts(caplog)


@pytest.mark.parametrize("which", range(4), ids=["bad-port", "bad-user", "bad-db", "query-pw"])
async def test_async_connection_failures_do_not_reveal_the_password(
    pg_url: str, caplog: pytest.LogCaptureFixture, which: int
) -> None:
    url = _failing_urls(pg_url)[which]
    caplog.set_level(logging.DEBUG)
    with pytest.raises(psycopg.Error) as info:
        async with AsyncPostgresSaver.from_conn_string(url) as saver:
            await saver.asetup()
    assert PASSWORD not in _exception_texts(info.value)
    assert PASSWORD not in _log_texts(caplog)


async def test_reprs_have_no_password(pg_clean_url: str) -> None:
    """Trust authentication ignores the password, so these URLs work."""
    url = with_password(pg_clean_url)
    with PostgresSaver.from_conn_string(url) as saver:
        saver.setup()
        for text in (repr(saver), str(saver), repr(saver.settings), repr(saver.conn)):
            assert PASSWORD not in text, text
    async with AsyncPostgresSaver.from_conn_string(url) as asaver:
        await asaver.asetup()
        for text in (repr(asaver), str(asaver), repr(asaver.conn)):
            assert PASSWORD not in text, text
    opener = from_url(url)
    assert PASSWORD not in repr(opener)
    opener = from_url(with_params(pg_clean_url, password=PASSWORD))
    assert PASSWORD not in repr(opener)


# --------------------------------------------------------------------------------------
# Connections and pools a user hands over
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("autocommit", [True, False])
def test_accepts_a_connection(pg_clean_url: str, autocommit: bool) -> None:
    conn = psycopg.connect(pg_clean_url, autocommit=autocommit)
    try:
        saver = PostgresSaver(conn)
        in_thread(lambda: exercise_sync(saver, "c"))
        # the saver leaves no transaction open: other sessions see everything
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert visible_elsewhere(pg_clean_url, "c") == 3
        saver.close()
        assert not conn.closed  # a connection the user gave stays theirs
        conn.execute("SELECT 1")
    finally:
        conn.close()


@pytest.mark.parametrize("autocommit", [True, False])
def test_accepts_a_connection_inside_a_user_transaction(
    pg_clean_url: str, autocommit: bool
) -> None:
    """The user's connection already has a transaction open (non-autocommit after any
    query): the saver's writes must still be committed, not left in the user's transaction."""
    with psycopg.connect(pg_clean_url, autocommit=autocommit) as conn:
        saver = PostgresSaver(conn)
        saver.setup()
        if not autocommit:
            conn.execute("SELECT 1")  # psycopg opens a transaction implicitly
        try:
            saver.put(config("inside"), checkpoint(0), {}, {"i": 1})
        except StoreError as exc:  # refusing the connection clearly is fine too
            assert "transaction" in str(exc)
        else:
            # not silently part of the user's transaction (a savepoint, never committed)
            assert visible_elsewhere(pg_clean_url, "inside") == 1


def test_accepts_a_pool(pg_clean_url: str) -> None:
    with ConnectionPool(pg_clean_url, min_size=1, max_size=3, open=True) as pool:
        saver = PostgresSaver(pool)
        exercise_sync(saver, "p")
        saver.close()
        assert not pool.closed  # a pool the user gave stays open
        with pool.connection() as conn:
            conn.execute("SELECT 1")
    with ConnectionPool(pg_clean_url, kwargs={"autocommit": True}, open=True) as pool:
        exercise_sync(PostgresSaver(pool), "p-autocommit")
    assert visible_elsewhere(pg_clean_url, "p") == 3


@pytest.mark.parametrize("autocommit", [True, False])
async def test_accepts_an_async_connection(pg_clean_url: str, autocommit: bool) -> None:
    async with await psycopg.AsyncConnection.connect(pg_clean_url, autocommit=autocommit) as conn:
        saver = AsyncPostgresSaver(conn)
        await asyncio.wait_for(exercise_async(saver, "ac"), 60)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        await saver.aclose()
        assert not conn.closed
    assert visible_elsewhere(pg_clean_url, "ac") == 3


async def test_accepts_an_async_pool(pg_clean_url: str) -> None:
    async with AsyncConnectionPool(pg_clean_url, min_size=1, max_size=3, open=False) as pool:
        saver = AsyncPostgresSaver(pool)
        await asyncio.wait_for(exercise_async(saver, "ap"), 60)
        await saver.aclose()
        assert not pool.closed
    assert visible_elsewhere(pg_clean_url, "ap") == 3


# -- list over a single connection: iteration interleaved with other calls -----------


class NewThreadExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs every job on a new thread, and keeps each thread alive until shutdown so no
    two jobs share a thread identity (a legitimate default executor: it makes the thread
    that resumes a `list` iterator differ from the one that started it)."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self._release = threading.Event()
        self._threads: list[threading.Thread] = []

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:
                    future.set_exception(exc)
            self._release.wait()

        thread = threading.Thread(target=run, daemon=True)
        self._threads.append(thread)
        thread.start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._release.set()
        if wait:
            for thread in self._threads:
                thread.join(5)  # a thread stuck in a deadlock is left behind
        super().shutdown(wait=wait, cancel_futures=cancel_futures)


def fill(saver: PostgresSaver, thread_id: str, n: int) -> list[str]:
    parent, out = None, []
    for i in range(n):
        cp = checkpoint(i)
        saver.put(config(thread_id, parent), cp, {"step": i}, {"i": 1})
        parent = cp["id"]
        out.append(parent)
    return out[::-1]


@pytest.mark.parametrize("autocommit", [True, False])
async def test_connection_saver_alist_resumed_on_other_threads(
    pg_clean_url: str, autocommit: bool
) -> None:
    """`alist` on the sync saver pulls rows in chunks from worker threads; with more rows
    than a chunk, later chunks (and the end of the iteration) run on other threads."""
    executor = NewThreadExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    with psycopg.connect(pg_clean_url, autocommit=autocommit) as conn:
        saver = PostgresSaver(conn)
        expected = await asyncio.to_thread(fill, saver, "t", 250)
        got = [t.checkpoint["id"] async for t in saver.alist(config("t"))]
        assert got == expected
        # and the saver is still usable from any thread afterwards
        await asyncio.wait_for(asyncio.to_thread(saver.get_tuple, config("t")), 10)


@pytest.mark.parametrize("autocommit", [True, False])
def test_connection_saver_calls_inside_list(pg_clean_url: str, autocommit: bool) -> None:
    """LangGraph calls the saver while iterating `list` (e.g. get_state_history with a
    DeltaChannel asks for each snapshot's delta history)."""
    conn = psycopg.connect(pg_clean_url, autocommit=autocommit)
    try:
        saver = PostgresSaver(conn)
        expected = fill(saver, "t", 5)

        def walk() -> list[str]:
            return [saver.get_tuple(t.config).checkpoint["id"] for t in saver.list(config("t"))]

        assert in_thread(walk, timeout=3) == expected
    finally:
        conn.close()  # needs no lock, so it works even after a deadlock


@pytest.mark.parametrize("autocommit", [True, False])
async def test_async_connection_saver_calls_inside_alist(
    pg_clean_url: str, autocommit: bool
) -> None:
    conn = await psycopg.AsyncConnection.connect(pg_clean_url, autocommit=autocommit)
    try:
        saver = AsyncPostgresSaver(conn)
        await saver.asetup()
        parent, expected = None, []
        for i in range(5):
            cp = checkpoint(i)
            await saver.aput(config("t", parent), cp, {"step": i}, {"i": 1})
            parent = cp["id"]
            expected.insert(0, parent)

        async def walk() -> list[str]:
            return [
                (await saver.aget_tuple(t.config)).checkpoint["id"]
                async for t in saver.alist(config("t"))
            ]

        try:
            got = await asyncio.wait_for(walk(), 3)
        except asyncio.TimeoutError:
            raise AssertionError("deadlock: aget_tuple inside alist never returned") from None
        assert got == expected
    finally:
        await conn.close()  # takes no lock, so it works even after a deadlock


def test_pool_reuses_the_connection_returned_last(pg_clean_url: str) -> None:
    """Sequential calls keep one warm backend: psycopg_pool's own order would cycle through
    every idle connection (a put on the backend used longest ago)."""
    with PostgresSaver.from_conn_string(with_params(pg_clean_url, pool_min_size=3)) as saver:
        pool = saver.conn
        pool.wait()
        with pool.connection() as a, pool.connection() as b, pool.connection() as c:
            pids = [x.info.backend_pid for x in (a, b, c)]
        # returned c, b, a: a is the latest
        for _ in range(4):
            saver.put(config("t"), checkpoint(0), {}, {"i": 1})
            with pool.connection() as conn:
                assert conn.info.backend_pid == pids[0]
        assert pool.get_stats()["pool_available"] == 3  # none lost


async def test_async_pool_reuses_the_connection_returned_last(pg_clean_url: str) -> None:
    url = with_params(pg_clean_url, pool_min_size=3)
    async with AsyncPostgresSaver.from_conn_string(url) as saver:
        pool = saver.conn
        await pool.wait()
        async with pool.connection() as a, pool.connection() as b, pool.connection() as c:
            pids = [x.info.backend_pid for x in (a, b, c)]
        for _ in range(4):
            await saver.aput(config("t"), checkpoint(0), {}, {"i": 1})
            async with pool.connection() as conn:
                assert conn.info.backend_pid == pids[0]
        assert pool.get_stats()["pool_available"] == 3


def test_idle_check_tests_connections_idle_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    from langgraph_store_dual.postgres import savers

    now = [100.0]
    monkeypatch.setattr(savers.time, "monotonic", lambda: now[0])
    idle = savers.IdleCheck(1.0)

    class Conn:  # any object the pool hands out
        pass

    a, b = Conn(), Conn()
    assert idle.due(a) and idle.due(b)  # never seen: test
    now[0] += 0.5
    assert not idle.due(a)  # checked out half a second ago
    now[0] += 0.9
    assert not idle.due(a)  # the last checkout counts, not the first
    assert idle.due(b)  # 1.4 s since b's checkout
    now[0] += 1.0
    assert idle.due(a)


# --------------------------------------------------------------------------------------
# Retention SQL plans
# --------------------------------------------------------------------------------------


def test_sweep_is_an_anti_join_whatever_work_mem(pg_clean_url: str) -> None:
    """The value sweep after retention must not scan the live values once per stored value
    when the planner expects them not to fit in work_mem (`NOT IN (subquery)` did: 13 s
    for keep_last on a 46k-value thread)."""
    with PostgresSaver.from_conn_string(pg_clean_url) as saver:
        saver.setup()
        with saver.conn.connection() as conn, conn.transaction():
            conn.execute("SET LOCAL work_mem = '64kB'")
            plan = "\n".join(
                row[0]
                for row in conn.execute(
                    "EXPLAIN " + POSTGRES.sweep_values, {"thread_id": "t"}
                ).fetchall()
            )
    assert "Anti Join" in plan and "SubPlan" not in plan, plan


def test_setup_creates_the_routines_and_a_check_without_them_refuses(pg_clean_url: str) -> None:
    """The functions standing in for the hot statements without prepared statements
    (postgres/routines.py) are part of the schema: setup() creates those missing, a saver
    that may not set up refuses to start without them, and after setup() again a saver
    preparing no statements runs on them."""
    names = sorted(r.name for r in POSTGRES.routines.values())

    def present() -> list[str]:
        with admin(pg_clean_url) as conn:
            rows = conn.execute(
                "SELECT proname FROM pg_proc WHERE proname LIKE 'lgsd\\_%' ORDER BY 1"
            ).fetchall()
        return [name for (name,) in rows]

    with PostgresSaver.from_conn_string(pg_clean_url) as saver:
        saver.setup()
        stored = saver.put(config("t"), checkpoint(0), {}, {})
    assert present() == names
    with admin(pg_clean_url) as conn:
        conn.execute(f"DROP FUNCTION {names[0]}")
    with PostgresSaver.from_conn_string(pg_clean_url, auto_setup=False) as saver:
        with pytest.raises(SchemaVersionError, match=r"lacks 1 function.*call setup\(\)"):
            saver.get_tuple(stored)
        saver.setup()
    assert present() == names
    unprepared = f"{pg_clean_url}{'&' if '?' in pg_clean_url else '?'}prepare_threshold=none"
    with PostgresSaver.from_conn_string(unprepared, auto_setup=False) as saver:
        got = saver.get_tuple(stored)
        assert (
            got is not None and got.checkpoint["channel_values"] == checkpoint(0)["channel_values"]
        )


def test_savers_in_two_schemas_without_prepared_statements_keep_apart(pg_clean_url: str) -> None:
    """Two applications in one database, each in its own schema, both preparing no
    statements (as behind PgBouncer): each schema gets the functions, and each saver's
    calls read and write its own tables only."""
    urls = {s: pg_schema_url(pg_clean_url, s) + "&prepare_threshold=none" for s in ("a", "b")}
    stored = {}
    for schema, url in urls.items():
        with PostgresSaver.from_conn_string(url) as saver:
            stored[schema] = saver.put(config("t"), checkpoint(0 if schema == "a" else 1), {}, {})
    for schema, url in urls.items():
        with PostgresSaver.from_conn_string(url, auto_setup=False) as saver:
            got = saver.get_tuple(config("t"))
            assert got is not None and got.config == stored[schema]
            assert [c.config for c in saver.list(None)] == [stored[schema]]
    with admin(pg_clean_url) as conn:
        rows = conn.execute(
            "SELECT n.nspname, count(*) FROM pg_proc p JOIN pg_namespace n "
            "ON n.oid = p.pronamespace WHERE p.proname LIKE 'lgsd\\_%' GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert rows == [("a", len(POSTGRES.routines)), ("b", len(POSTGRES.routines))]
