"""The PostgreSQL savers behind a real PgBouncer in transaction pooling mode."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.memory import InMemorySaver

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
