"""Token usage and cost (`threads.usage`, the `message_usage` view) on every saver flavour,
from real LangGraph graphs whose fake chat models report usage like real ones."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import OLD, invoke, is_postgres, raw, th
from helpers import get_state as state
from helpers import run_cfg as conf
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, MessagesState, StateGraph

from langgraph_store_dual import ConfigError, PostgresSaver, SqliteSaver
from langgraph_store_dual.core.usage import Usage, query
from langgraph_store_dual.postgres.dialect import POSTGRES
from langgraph_store_dual.sqlite.dialect import SQLITE

PRICES = {"model-x": {"input": 0.15 / 1e6, "output": 0.6 / 1e6}}


def replies(model: str) -> Iterator[AIMessage]:
    """What a chat model named `model` answers, each reply reporting its token usage."""
    for i in itertools.count(1):
        yield AIMessage(
            f"{model} reply {i}",
            usage_metadata={
                "input_tokens": 100 * i,
                "output_tokens": 10 * i,
                "total_tokens": 110 * i,
            },
            response_metadata={"model_name": model, "finish_reason": "stop"},
        )


def agent_graph(checkpointer: Any) -> Any:
    """A chat agent picking its model from the run's config ("model", default model-x),
    and, as node "team", a subgraph agent (its writes and its parent's hold the same
    messages)."""
    models = {n: GenericFakeChatModel(messages=replies(f"model-{n}")) for n in ("x", "y", "z")}

    def agent(s: MessagesState, config: RunnableConfig) -> dict:
        name = config["configurable"].get("model", "x")
        return {"messages": [models[name].invoke(s["messages"])]}

    inner = StateGraph(MessagesState)
    inner.add_node("agent", agent)
    inner.add_edge(START, "agent")
    inner.add_edge("agent", END)

    def route(s: MessagesState) -> str:
        return "team" if s["messages"][-1].content.startswith("team") else "agent"

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("team", inner.compile())
    builder.add_conditional_edges(START, route, ["agent", "team"])
    builder.add_edge("agent", END)
    builder.add_edge("team", END)
    return builder.compile(checkpointer=checkpointer)


async def chat(graph: Any, thread_id: str, user: str | None, turns: list[str], model: str) -> None:
    extra = {"model": model} if model else {}
    if user is not None:
        extra["user_id"] = user
    for text in turns:
        await invoke(graph, {"messages": [HumanMessage(text)]}, conf(thread_id, **extra))


async def ai_messages(graph: Any, thread_id: str) -> list[AIMessage]:
    snapshot = await state(graph, conf(thread_id))
    return [m for m in snapshot.values["messages"] if isinstance(m, AIMessage)]


def expected(messages: list[AIMessage]) -> tuple[int, int, int, int]:
    return (
        len(messages),
        sum(m.usage_metadata["input_tokens"] for m in messages if m.usage_metadata),
        sum(m.usage_metadata["output_tokens"] for m in messages if m.usage_metadata),
        sum(m.usage_metadata["total_tokens"] for m in messages if m.usage_metadata),
    )


def totals(u: Usage) -> tuple[int, int, int, int]:
    return u.messages, u.input_tokens, u.output_tokens, u.total_tokens


async def three_threads(saver: Any) -> tuple[Any, dict[str, list[AIMessage]]]:
    """ana: thread a (model-x, two turns, one through the subgraph) and b (model-y);
    bob: thread c (model-x). Their AI messages, by thread."""
    graph = agent_graph(saver)
    await chat(graph, "a", "ana", ["hello", "team, help"], "x")
    await chat(graph, "b", "ana", ["hi"], "y")
    await chat(graph, "c", "bob", ["hey", "more"], "x")
    return graph, {tid: await ai_messages(graph, tid) for tid in "abc"}


# --------------------------------------------------------------------------------------


async def test_usage_by_model_thread_user_and_day(saver: Any) -> None:
    _, ai = await three_threads(saver)
    assert {m.response_metadata["model_name"] for m in ai["a"]} == {"model-x"}
    by_model = await th(saver, "usage")
    assert [u.group for u in by_model] == [{"model": "model-x"}, {"model": "model-y"}]
    assert totals(by_model[0]) == expected(ai["a"] + ai["c"])
    assert totals(by_model[1]) == expected(ai["b"])
    assert all(u.cost is None for u in by_model)  # no prices given

    by_thread = await th(saver, "usage", group_by=["thread"])
    assert {u.group["thread"]: totals(u) for u in by_thread} == {
        tid: expected(ai[tid]) for tid in "abc"
    }
    by_user = await th(saver, "usage", group_by=("user", "model"))
    assert [tuple(u.group.values()) for u in by_user] == [
        ("ana", "model-x"),
        ("ana", "model-y"),
        ("bob", "model-x"),
    ]
    assert totals(by_user[2]) == expected(ai["c"])
    today = datetime.now(timezone.utc).date()
    (by_day,) = await th(saver, "usage", group_by="day")
    assert by_day.group == {"day": today} and isinstance(by_day.group["day"], date)
    assert totals(by_day) == expected(ai["a"] + ai["b"] + ai["c"])
    (everything,) = await th(saver, "usage", group_by=())
    assert everything.group == {} and totals(everything) == totals(by_day)


async def test_a_message_is_counted_once_however_many_writes_hold_it(saver: Any) -> None:
    graph = agent_graph(saver)
    await chat(graph, "team", "ana", ["team, plan", "team, again"], "z")
    messages = await ai_messages(graph, "team")
    assert len(messages) == 2
    # the subgraph's writes (its own namespace) and its parent's node writes hold each one
    for m in messages:
        holders = await raw(
            saver,
            "SELECT DISTINCT checkpoint_ns FROM checkpoint_writes WHERE thread_id = ? "
            "AND strpos(CAST(writes AS TEXT), ?) > 0"
            if is_postgres(saver)
            else "SELECT DISTINCT checkpoint_ns FROM checkpoint_writes WHERE thread_id = ? "
            "AND instr(writes, ?) > 0",
            ("team", m.id),
        )
        assert len(holders) >= 2, holders
    (usage,) = await th(saver, "usage", "team")
    assert totals(usage) == expected(messages) == (2, 300, 30, 330)
    rows = await raw(saver, "SELECT message_id FROM message_usage WHERE thread_id = ?", ("team",))
    assert sorted(r[0] for r in rows) == sorted(m.id for m in messages)


async def test_cost_from_a_rate_table_unknown_models_priced_none(saver: Any) -> None:
    _, ai = await three_threads(saver)
    by_model = {u.group["model"]: u for u in await th(saver, "usage", prices=PRICES)}
    x = by_model["model-x"]
    assert x.cost == pytest.approx(x.input_tokens * 0.15 / 1e6 + x.output_tokens * 0.6 / 1e6)
    assert x.cost > 0 and by_model["model-y"].cost is None
    priced = await th(saver, "usage", group_by=["user"], prices=PRICES)
    by_user = {u.group["user"]: u for u in priced}
    assert by_user["ana"].cost is None  # ana's thread b used model y, which has no price
    assert by_user["bob"].cost == pytest.approx(
        sum(m.usage_metadata["input_tokens"] * 0.15e-6 for m in ai["c"] if m.usage_metadata)
        + sum(m.usage_metadata["output_tokens"] * 0.6e-6 for m in ai["c"] if m.usage_metadata)
    )
    zero = {"input": 0, "output": 0}
    free = await th(saver, "usage", prices={"model-x": zero, "model-y": zero})
    assert [u.cost for u in free] == [0.0, 0.0]


async def test_usage_of_a_thread_a_user_and_a_time_range(saver: Any) -> None:
    _, ai = await three_threads(saver)
    (a,) = await th(saver, "usage", "a")
    assert totals(a) == expected(ai["a"])
    assert await th(saver, "usage", "nobody") == []
    ana = await th(saver, "usage", user_id="ana", group_by=["thread"])
    assert [u.group["thread"] for u in ana] == ["a", "b"]
    # thread c happened long ago
    await raw(saver, "UPDATE checkpoints SET created_at = ? WHERE thread_id = ?", (OLD, "c"))
    now = datetime.now(timezone.utc)
    recent = await th(saver, "usage", since=now - timedelta(days=1), group_by=["thread"])
    assert [u.group["thread"] for u in recent] == ["a", "b"]
    old = await th(saver, "usage", until=date(2000, 1, 2), group_by=["thread", "day"])
    assert [u.group for u in old] == [{"thread": "c", "day": date(2000, 1, 1)}]
    assert totals(old[0]) == expected(ai["c"])
    assert await th(saver, "usage", since=now + timedelta(days=1)) == []
    days = await th(saver, "usage", group_by=["day"])
    assert [u.group["day"] for u in days] == [date(2000, 1, 1), now.date()]


async def test_the_view_gives_bi_tools_the_same_numbers(saver: Any) -> None:
    await three_threads(saver)
    rows = await raw(
        saver,
        "SELECT user_id, model, count(*), sum(input_tokens), sum(output_tokens), "
        "sum(total_tokens) FROM message_usage GROUP BY user_id, model ORDER BY user_id, model",
    )
    api = await th(saver, "usage", group_by=["user", "model"])
    assert [tuple(int(x) if not isinstance(x, str) else x for x in r) for r in rows] == [
        (*u.group.values(), *totals(u)) for u in api
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"group_by": ["week"]}, "group_by must be"),
        ({"prices": {"x": {"input": 1}}}, r"prices\['x'\] must be"),
        ({"prices": {"x": {"input": -1, "output": 0}}}, "must be a number >= 0"),
        ({"prices": [1]}, "prices must be a dict"),
        ({"since": datetime(2026, 1, 1)}, "since must be timezone-aware"),
        ({"until": "2026-01-01"}, "until must be a datetime or a date"),
        ({"user_id": ["ana"]}, "user_id must be a str"),
    ],
)
async def test_bad_usage_arguments_are_named(saver: Any, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        await th(saver, "usage", **kwargs)


async def test_a_database_from_before_usage_upgrades(saver: Any, saver_factory: Any) -> None:
    _, ai = await three_threads(saver)
    await raw(saver, "DROP VIEW message_usage")
    for index in ("threads_user_created", "threads_created"):
        await raw(saver, f"DROP INDEX {index}")
    version = len(saver.dialect.migrations)
    await raw(saver, "DELETE FROM schema_version WHERE version = ?", (version,))
    async with saver_factory(shared=True) as upgraded:
        (a,) = await th(upgraded, "usage", "a")
        assert await raw(upgraded, "SELECT max(version) FROM schema_version") == [(version,)]
    assert totals(a) == expected(ai["a"])


async def test_usage_report_of_a_chat(saver: Any) -> None:
    """Prints the report a person on call would read (run with -s to see it)."""
    await three_threads(saver)
    rows = await th(saver, "usage", group_by=("user", "model"), prices=PRICES)
    lines = [f"{'user':6} {'model':8} {'msgs':>4} {'input':>6} {'output':>6} {'cost':>12}"]
    for u in rows:
        cost = "unpriced" if u.cost is None else f"${u.cost:.8f}"
        user, model = u.group["user"], u.group["model"]
        lines.append(
            f"{user:6} {model:8} {u.messages:4} {u.input_tokens:6} {u.output_tokens:6} {cost:>12}"
        )
    print(f"\nusage on {type(saver).__name__}\n" + "\n".join(lines))
    assert len(lines) == 4 and "unpriced" in lines[2] and "$" in lines[1]


def _ran(saver: Any) -> None:
    graph = agent_graph(saver)
    for tid, user in (("a", "ana"), ("b", "bob")):
        graph.invoke({"messages": [HumanMessage("hi")]}, conf(tid, user_id=user))


def test_postgres_usage_of_a_thread_or_user_reads_their_rows_only(pg_clean_url: str) -> None:
    """The view's filters reach the indexes (a plan that could read no other rows): a
    thread's writes by primary key, a user's threads by their index."""
    with PostgresSaver.from_conn_string(pg_clean_url) as saver:
        saver.setup()
        _ran(saver)
    with psycopg.connect(pg_clean_url) as conn:
        conn.execute("SET enable_seqscan = off")  # tiny tables: what the planner could use
        for thread_id, user_id, index in (
            ("a", None, "threads_pkey"),
            (None, "ana", "threads_user_"),
        ):
            sql, params = query(POSTGRES, thread_id, user_id, None, None, ("model",))
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params).fetchall())
            assert "Seq Scan" not in plan and index in plan, plan
            assert "Index Cond: ((thread_id = " in plan or "Index Cond: (user_id = " in plan


def test_sqlite_usage_of_a_thread_or_user_reads_their_rows_only(tmp_path: Path) -> None:
    with SqliteSaver.from_conn_string(str(tmp_path / "u.db")) as saver:
        _ran(saver)
        for thread_id, user_id in (("a", None), (None, "ana")):
            sql, params = query(SQLITE, thread_id, user_id, None, None, ("model",))
            rows = saver.conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            plan = "\n".join(str(r[-1]) for r in rows)
            assert "SCAN w" not in plan and "SCAN t" not in plan and "SCAN c" not in plan, plan
