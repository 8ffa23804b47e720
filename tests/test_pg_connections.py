"""PostgreSQL connections as users make them: the official docs' connection settings
(dict_row, prepare_threshold=0, autocommit or not), libpq without chunked streaming,
PgBouncer, connection mistakes, outages and closed savers.

Uses the `pg_url` / `pg_clean_url` / `pg_terminate` / `pgbouncer_url` fixtures of
tests/pg_server.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from test_postgres_engine import (
    checkpoint,
    config,
    exercise_async,
    exercise_sync,
    in_thread,
    visible_elsewhere,
)

from langgraph_store_dual import AsyncPostgresSaver, PostgresSaver

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
