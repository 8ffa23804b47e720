"""Databases filled by real LangGraph graphs for the transfer tests, and what to compare."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from scenarios import (
    Recorder,
    build_chat_graph,
    build_fanout_graph,
    build_interrupt_graph,
    build_linear_graph,
    build_parallel_interrupt_graph,
    build_subgraph_graph,
    scenario_chat,
    scenario_fanout,
    scenario_interrupts,
    scenario_subgraph,
    scenario_update_and_fork,
)

from langgraph_store_dual import from_url
from langgraph_store_dual.transfer import sql

#: The graph that wrote each thread (to read its state history back).
GRAPHS = {
    "chat-a": build_chat_graph,
    "chat-b": build_chat_graph,
    "interrupts": build_interrupt_graph,
    "parallel-interrupts": build_parallel_interrupt_graph,
    "subgraph": build_subgraph_graph,
    "fanout": build_fanout_graph,
    "fork": build_linear_graph,
    "waiting": build_interrupt_graph,
    "typed": build_linear_graph,
}

#: Values JSON cannot hold as such: they must come back of the same type.
ODD_VALUES = {
    "tuple": (1, "two", 3.0),
    "set": {1, 2},
    "frozenset": frozenset({"a"}),
    "bytes": b"\x00\xffbin",
    "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
    "money": Decimal("1.10"),
    "id": UUID(int=7),
    "nul": "a\x00b\ud800",
    "big": 1 << 80,
    "floats": [-0.0, float("inf")],
    7: "int key",
}


async def fill(url: str) -> None:
    """Write the scenario threads, a thread left waiting at an interrupt (owned, titled,
    archived), and a thread whose state holds `ODD_VALUES`."""
    with from_url(url) as saver:
        for scenario in (
            scenario_chat,
            scenario_interrupts,
            scenario_subgraph,
            scenario_fanout,
            scenario_update_and_fork,
        ):
            await scenario(saver, "sync")
        waiting = {"configurable": {"thread_id": "waiting", "user_id": "ana"}}
        await asyncio.to_thread(
            build_interrupt_graph(saver, Recorder("sync")).invoke, {"log": ["x"]}, waiting
        )
        saver.threads.update(
            "waiting",
            title="Waiting for Ana",
            metadata={"team": "ops"},
            ttl=dt.timedelta(days=30),
            ttl_strategy="keep_latest",
        )
        saver.threads.archive("waiting")
        graph = build_linear_graph(saver, Recorder("sync"))
        typed = {"configurable": {"thread_id": "typed", "user_id": "bob"}}
        await asyncio.to_thread(graph.invoke, {"value": 1, "log": []}, typed)
        await asyncio.to_thread(graph.update_state, typed, {"log": [ODD_VALUES]}, as_node="c")


def stored(url: str) -> dict[str, Any]:
    """Everything a transfer must keep, as LangGraph and our thread API return it."""
    with from_url(url, auto_setup=False) as saver:
        threads = {
            t.thread_id: (
                t.user_id,
                t.title,
                t.status,
                t.metadata,
                t.run_state,
                t.ttl,
                t.ttl_strategy,
            )
            for t in saver.threads.list(limit=100).items
        }
        checkpoints = {
            (t.config["configurable"]["thread_id"], t.checkpoint["id"]): t for t in saver.list(None)
        }
        # each task's writes as stored, by index (their order in the row means nothing)
        writes = sorted(
            (tid, ns, ts, task, path, sorted(orjson.loads(entries), key=lambda e: e[0]))
            for tid, ns, ts, task, path, entries in sql.select(
                saver,
                "SELECT thread_id, checkpoint_ns, thread_ts, task_id, task_path, "
                + ("writes" if sql.engine(saver) == "sqlite" else "writes::text")
                + " FROM checkpoint_writes",
            )
        )
        histories = {}
        for thread_id, build in GRAPHS.items():
            graph = build(saver, Recorder("sync"))
            config = {"configurable": {"thread_id": thread_id}}
            histories[thread_id] = list(graph.get_state_history(config))
        problems = saver.check_references()
    return {
        "threads": threads,
        "checkpoints": checkpoints,
        "writes": writes,
        "histories": histories,
        "problems": problems,
    }


def assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["problems"] == []
    assert got["threads"] == want["threads"]
    assert got["checkpoints"].keys() == want["checkpoints"].keys()
    for key, item in want["checkpoints"].items():
        assert got["checkpoints"][key] == item, key
    assert got["writes"] == want["writes"]
    for thread_id, history in want["histories"].items():
        assert history, thread_id
        assert got["histories"][thread_id] == history, thread_id
