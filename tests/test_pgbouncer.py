"""The PostgreSQL savers behind a real PgBouncer in transaction pooling mode."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import call
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.memory import InMemorySaver
from probes import probing

from langgraph_store_dual import AsyncPostgresSaver, PostgresSaver, from_url

try:
    from tests import scenarios as sc
except ModuleNotFoundError:
    import scenarios as sc  # type: ignore[no-redef]

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from agent import build_agent


@pytest.fixture
def bouncer(pg_clean_url: str, pgbouncer_url: str) -> str:
    """The cleaned test database through PgBouncer, with the saver's PgBouncer mode on."""
    return pgbouncer_url + ("&" if "?" in pgbouncer_url else "?") + "pgbouncer=true&pool_max_size=8"


@pytest.mark.parametrize("cls", [PostgresSaver, AsyncPostgresSaver])
async def test_conformance_through_pgbouncer(bouncer: str, cls: type) -> None:
    @checkpointer_test(name=f"{cls.__name__} via PgBouncer")
    async def factory():
        if cls is PostgresSaver:
            with cls.from_conn_string(bouncer) as saver:
                yield saver
        else:
            async with cls.from_conn_string(bouncer) as saver:
                yield saver

    report = await validate(factory)
    assert {k: r.failures for k, r in report.results.items() if not r.passed} == {}
    assert len(report.results) == 8


async def test_no_prepared_statements_and_concurrent_load(bouncer: str) -> None:
    """More clients than server connections, each statement run far past psycopg's
    prepare threshold: transaction pooling moves them between server connections."""
    async with from_url(bouncer) as saver:
        assert saver.settings.pgbouncer
        async with saver.conn.connection() as conn:
            assert conn.prepare_threshold is None

        async def chat(n: int) -> int:
            graph = build_agent(turns=3).compile(checkpointer=saver)
            config = {"configurable": {"thread_id": f"bouncer-{n}"}}
            for turn in range(3):
                await graph.ainvoke({"messages": [("user", f"turn {turn}")]}, config)
            return len((await graph.aget_state(config)).values["messages"])

        assert await asyncio.gather(*(chat(n) for n in range(8))) == [12] * 8


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_graph_through_pgbouncer_matches_memory(bouncer: str, api: str) -> None:
    with PostgresSaver.from_conn_string(bouncer) as saver:
        got = await sc.scenario_chat(saver, api)
    want = await sc.scenario_chat(InMemorySaver(), api)
    assert got.trace == want.trace


async def _chat_read_by_id(saver: Any, api: str) -> tuple[Any, list[str]]:
    """The chat scenario's trace on `saver`, and the statements it sent (with a read by
    id of the latest checkpoint)."""
    async with probing(saver) as probe:
        probe.active = True
        got = await sc.scenario_chat(saver, api)
        latest = await call(saver, api, "get_tuple", {"configurable": {"thread_id": "chat-a"}})
        by_id = await call(saver, api, "get_tuple", latest.config)
        probe.active = False
    assert by_id.checkpoint == latest.checkpoint
    for thread_id in ("chat-a", "chat-b"):
        await call(saver, api, "delete_thread", thread_id)
    return got.trace, probe.statements


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_the_hot_statements_run_as_routines_through_pgbouncer(
    bouncer: str, pg_clean_url: str, api: str
) -> None:
    """Without prepared statements every statement is planned at each call: a graph
    step's read (latest or by id), put and writes run as database functions instead,
    whose plans the server connection keeps, and give what the statements give."""
    want = (await sc.scenario_chat(InMemorySaver(), api)).trace
    for url, routines in ((bouncer, ["put", "put_writes", "read", "read_id"]), (pg_clean_url, [])):
        if api == "sync":
            with PostgresSaver.from_conn_string(url) as saver:
                trace, statements = await _chat_read_by_id(saver, api)
        else:
            async with AsyncPostgresSaver.from_conn_string(url) as asaver:
                trace, statements = await _chat_read_by_id(asaver, api)
        assert trace == want
        called = {s.split("(")[0].split()[-1] for s in statements if "lgsd_" in s}
        assert sorted(n.removeprefix("lgsd_").rsplit("_", 1)[0] for n in called) == routines
