"""Helpers shared by the test modules (test modules import this, never each other).

- configs: `cfg` (a saver call's config) and `run_cfg` (a graph caller's config);
- a saver through either method family: `is_async`, `api_of`, `call`, `listing`, `put`,
  `make_checkpoint`, `checkpoint`, `message`;
- a graph through either API: `invoke`, `stream`, `get_state`, `get_history`,
  `update_state` (by default the API of the graph's checkpointer);
- the thread manager: `th`;
- the database behind a saver: `is_postgres`, `raw`, `dump_db`, `count_rows`,
  `count_writes` (and `probes.probing`, counting statements); a PostgreSQL server:
  `admin`, `pg_schema_url`, `visible_elsewhere`, `exercise_sync`, `exercise_async`,
  `in_thread`;
- assertions: `assert_identical`, `expect_config_error`; a graph: `build_delta_graph`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import math
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, time
from decimal import Decimal
from typing import Annotated, Any, Literal, TypedDict

import psycopg
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import Checkpoint, CheckpointTuple, empty_checkpoint
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Send, interrupt
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from pydantic import BaseModel
from storage import build_chat_graph

from langgraph_store_dual import (
    AsyncPostgresSaver,
    AsyncSqliteSaver,
    AsyncThreadManager,
    ConfigError,
    PostgresSaver,
    SqliteSaver,
)

Api = Literal["sync", "async"]

# --------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------


def cfg(
    thread_id: Any, checkpoint_id: str | None = None, ns: str | None = "", **extra: Any
) -> RunnableConfig:
    """`{"configurable": ...}` for `thread_id`; `ns=None` leaves `checkpoint_ns` out."""
    conf: dict[str, Any] = {"thread_id": thread_id}
    if ns is not None:
        conf["checkpoint_ns"] = ns
    conf.update(extra)
    if checkpoint_id is not None:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def run_cfg(thread_id: Any, **extra: Any) -> RunnableConfig:
    """The config a graph's caller passes: `thread_id` and `extra`, no `checkpoint_ns`."""
    return cfg(thread_id, ns=None, **extra)


# --------------------------------------------------------------------------------------
# A saver through either method family
# --------------------------------------------------------------------------------------


def is_async(saver: Any) -> bool:
    """Whether the saver is an async one (its thread manager is)."""
    return isinstance(saver.threads, AsyncThreadManager)


def api_of(saver: Any) -> Api:
    """The API a test drives a saver with: the async one on async savers."""
    return "async" if is_async(saver) else "sync"


async def call(saver: Any, api: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """`saver.<name>(...)` from a worker thread ("sync") or `await saver.a<name>(...)`."""
    if api == "sync":
        result = await asyncio.to_thread(getattr(saver, name), *args, **kwargs)
        # an async saver's setup() is a coroutine, as on the official async savers
        return await result if inspect.iscoroutine(result) else result
    return await getattr(saver, "a" + name)(*args, **kwargs)


async def listing(saver: Any, api: str, config: Any, **kwargs: Any) -> list[CheckpointTuple]:
    """`list(saver.list(...))` from a worker thread, or the `alist` items."""
    if api == "sync":
        return await asyncio.to_thread(lambda: list(saver.list(config, **kwargs)))
    return [t async for t in saver.alist(config, **kwargs)]


def make_checkpoint(values: dict[str, Any] | None = None) -> Checkpoint:
    """A LangGraph-shaped checkpoint (fresh, increasing uuid6 id) holding `values`."""
    cp = empty_checkpoint()
    cp["channel_values"] = dict(values or {})
    cp["channel_versions"] = {k: 1 for k in values or {}}
    cp["versions_seen"] = {"node": {k: 1 for k in values or {}}}
    return cp


def checkpoint(i: int) -> Checkpoint:
    """The i-th checkpoint of a numbered series: channels `i` (version i+1) and `text`."""
    cp = empty_checkpoint()
    cp["channel_values"] = {"i": i, "text": f"value {i}"}
    cp["channel_versions"] = {"i": i + 1, "text": 1}
    return cp


async def put(
    saver: Any,
    api: str,
    thread_id: Any,
    values: dict[str, Any] | None = None,
    *,
    parent: str | None = None,
    ns: str = "",
    metadata: dict[str, Any] | None = None,
) -> tuple[RunnableConfig, Checkpoint]:
    """Put a fresh checkpoint holding `values`; its stored config and the checkpoint."""
    cp = make_checkpoint(values)
    meta = {"source": "loop", "step": 0, "parents": {}} if metadata is None else metadata
    stored = await call(
        saver, api, "put", cfg(thread_id, parent, ns), cp, meta, cp["channel_versions"]
    )
    return stored, cp


def message(i: int, chars: int = 400) -> Any:
    """The i-th message of a tool-calling chat, about `chars` characters of content."""
    text = (f"turn {i}: the prefix is reachable through AS 64513. " * (chars // 40 + 1))[:chars]
    kind = i % 4
    if kind == 0:
        return HumanMessage(content=f"question {i}", id=f"h{i}")
    if kind == 1:
        call_ = {"name": "show_route", "args": {"prefix": f"10.{i}.0.0/16"}, "id": f"c{i}"}
        return AIMessage(content="", id=f"a{i}", tool_calls=[call_])
    if kind == 2:
        return ToolMessage(content=text, tool_call_id=f"c{i - 1}", id=f"t{i}")
    usage = {"input_tokens": i, "output_tokens": 90, "total_tokens": i + 90}
    return AIMessage(content=text, id=f"a{i}", usage_metadata=usage)


# --------------------------------------------------------------------------------------
# A graph through either API, and the thread manager
# --------------------------------------------------------------------------------------


def _graph_api(graph: Any, api: str | None) -> str:
    return api_of(graph.checkpointer) if api is None else api


async def invoke(
    graph: Any, value: Any, config: RunnableConfig, api: Api | None = None, **kw: Any
) -> Any:
    """`graph.invoke` from a worker thread, or `await graph.ainvoke`."""
    if _graph_api(graph, api) == "async":
        return await graph.ainvoke(value, config, **kw)
    return await asyncio.to_thread(graph.invoke, value, config, **kw)


async def stream(
    graph: Any,
    value: Any,
    config: RunnableConfig,
    api: Api | None = None,
    *,
    on_chunk: Callable[[Any], None] | None = None,
    **kwargs: Any,
) -> list[Any]:
    """Collect all chunks; `on_chunk` is called for each one as soon as it arrives."""
    if _graph_api(graph, api) == "async":
        chunks = []
        async for chunk in graph.astream(value, config, **kwargs):
            chunks.append(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
        return chunks

    def run() -> list[Any]:
        chunks = []
        for chunk in graph.stream(value, config, **kwargs):
            chunks.append(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
        return chunks

    return await asyncio.to_thread(run)


async def get_state(
    graph: Any, config: RunnableConfig, api: Api | None = None, *, subgraphs: bool = False
) -> Any:
    if _graph_api(graph, api) == "async":
        return await graph.aget_state(config, subgraphs=subgraphs)
    return await asyncio.to_thread(graph.get_state, config, subgraphs=subgraphs)


async def get_history(
    graph: Any, config: RunnableConfig, api: Api | None = None, **kw: Any
) -> list[Any]:
    if _graph_api(graph, api) == "async":
        return [s async for s in graph.aget_state_history(config, **kw)]
    return await asyncio.to_thread(lambda: list(graph.get_state_history(config, **kw)))


async def update_state(
    graph: Any,
    config: RunnableConfig,
    values: Any,
    api: Api | None = None,
    *,
    as_node: str | None = None,
) -> Any:
    if _graph_api(graph, api) == "async":
        return await graph.aupdate_state(config, values, as_node=as_node)
    return await asyncio.to_thread(graph.update_state, config, values, as_node=as_node)


async def th(saver: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """`saver.threads.<name>(...)`: awaited, or run in a worker thread."""
    manager = saver.threads
    if isinstance(manager, AsyncThreadManager):
        return await getattr(manager, name)(*args, **kwargs)
    return await asyncio.to_thread(getattr(manager, name), *args, **kwargs)


def _extend(state: list[Any], batches: list[list[Any]]) -> list[Any]:
    out = list(state)
    for batch in batches:
        out.extend(batch)
    return out


class DeltaState(TypedDict):
    items: Annotated[list[Any], DeltaChannel(_extend, list, snapshot_frequency=3)]
    n: int


def build_delta_graph(checkpointer: Any) -> Any:
    """START -> a (appends to the DeltaChannel `items`) -> b -> END."""

    def a(state: DeltaState) -> dict[str, Any]:
        return {"items": [f"a{state.get('n', 0)}"], "n": state.get("n", 0) + 1}

    def b(state: DeltaState) -> dict[str, Any]:
        return {"n": state["n"] + 1}

    graph = StateGraph(DeltaState)
    graph.add_node("a", a)
    graph.add_node("b", b)
    graph.add_edge(START, "a")
    graph.add_edge("a", "b")
    graph.add_edge("b", END)
    return graph.compile(checkpointer=checkpointer)


# --------------------------------------------------------------------------------------
# Assertions
# --------------------------------------------------------------------------------------


def assert_identical(got: Any, want: Any, path: str = "value") -> None:
    """Equal values with identical types all the way down: NaN equals NaN, -0.0 is not
    0.0, datetimes keep their zone and fold, containers, dataclasses and models compare
    member by member."""
    assert type(got) is type(want), f"{path}: {type(got).__name__} {got!r} != {want!r}"
    t = type(want)
    if t is float:
        if math.isnan(want):
            assert math.isnan(got), f"{path}: {got!r} != nan"
        else:
            assert got == want, f"{path}: {got!r} != {want!r}"
            assert math.copysign(1.0, got) == math.copysign(1.0, want), f"{path}: sign of {got!r}"
    elif t is Decimal:
        assert str(got) == str(want), f"{path}: {got!r} != {want!r}"
    elif isinstance(want, (list, tuple, deque)):
        assert len(got) == len(want), f"{path}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_identical(g, w, f"{path}[{i}]")
        if isinstance(want, deque):
            assert got.maxlen == want.maxlen, f"{path}: maxlen {got.maxlen} != {want.maxlen}"
    elif isinstance(want, dict):
        _assert_identical_dicts(got, want, path)
    elif t in (set, frozenset):
        assert got == want, f"{path}: {got!r} != {want!r}"
        members = {x: x for x in got}
        for x in want:
            assert_identical(members[x], x, f"{path}{{{x!r}}}")
    elif t in (datetime, time):
        assert got.replace(tzinfo=None) == want.replace(tzinfo=None), f"{path}: {got!r} != {want!r}"
        assert repr(got.tzinfo) == repr(want.tzinfo), f"{path}: {got!r} != {want!r}"
        assert got.fold == want.fold, f"{path}: fold of {got!r}"
    elif t is Send:
        assert_identical(
            (got.node, got.arg, got.timeout), (want.node, want.arg, want.timeout), path
        )
    elif dataclasses.is_dataclass(want):
        for f in dataclasses.fields(want):
            assert_identical(
                getattr(got, f.name, None), getattr(want, f.name, None), path + "." + f.name
            )
    elif isinstance(want, BaseModel) and not hasattr(want, "content"):
        assert_identical(got.__dict__, want.__dict__, path)
        assert got.model_fields_set == want.model_fields_set, f"{path}: fields set differ"
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


def _assert_identical_dicts(got: dict[str, Any], want: dict[str, Any], path: str) -> None:
    assert len(got) == len(want), f"{path}: keys {list(got)!r} != {list(want)!r}"
    got_keys = {k: k for k in got}
    for key, value in want.items():
        if key in got_keys:
            assert_identical(got_keys[key], key, f"{path} key {key!r}")
            assert_identical(got[key], value, f"{path}[{key!r}]")
    # NaN keys are never found by lookup; they keep their relative order
    lost = [k for k in want if k not in got_keys]
    extra = [k for k in got if k not in want]
    assert len(lost) == len(extra), f"{path}: keys {list(got)!r} != {list(want)!r}"
    for kw, kg in zip(lost, extra, strict=True):
        assert_identical(kg, kw, f"{path} key {kw!r}")
        assert_identical(got[kg], want[kw], f"{path}[{kw!r}]")


async def expect_config_error(call_it: Any, needle: str, what: str) -> str | None:
    """None if `call_it` raised a ConfigError mentioning `needle`, else the problem."""
    try:
        await call_it
    except ConfigError as exc:
        return None if needle in str(exc) else f"{what}: ConfigError without {needle!r}: {exc}"
    except Exception as exc:
        return f"{what}: {type(exc).__name__} instead of ConfigError: {exc}"
    return f"{what}: no error"


# --------------------------------------------------------------------------------------
# The database behind a saver, whatever the flavour
# --------------------------------------------------------------------------------------


def is_postgres(saver: Any) -> bool:
    return isinstance(saver, (PostgresSaver, AsyncPostgresSaver))


async def raw(
    saver: Any, sql: str, params: tuple[Any, ...] | list[Any] = ()
) -> list[tuple[Any, ...]]:
    """Run one statement on the saver's database, outside the saver, and commit it.

    Written with `?` placeholders; they become `%s` on PostgreSQL.
    """
    if isinstance(saver, SqliteSaver):

        def run_sqlite() -> list[tuple[Any, ...]]:
            with saver.lock:
                cur = saver.conn.execute(sql, params)
                try:
                    return [tuple(r) for r in cur.fetchall()]
                finally:
                    cur.close()

        return await asyncio.to_thread(run_sqlite)
    if isinstance(saver, AsyncSqliteSaver):
        async with saver.lock, saver.conn.execute(sql, params) as cur:
            return [tuple(r) for r in await cur.fetchall()]
    pg_sql = sql.replace("?", "%s")
    if isinstance(saver, PostgresSaver):

        def run_pg() -> list[tuple[Any, ...]]:
            with _pg_connection(saver) as conn:
                cur = conn.execute(pg_sql, params)
                rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
                if not conn.autocommit:
                    conn.commit()
                return rows

        return await asyncio.to_thread(run_pg)
    if isinstance(saver, AsyncPostgresSaver):
        async with _apg_connection(saver) as aconn:
            acur = await aconn.execute(pg_sql, params)
            rows = [tuple(r) for r in await acur.fetchall()] if acur.description else []
            if not aconn.autocommit:
                await aconn.commit()
            return rows
    raise TypeError(type(saver))


@contextmanager
def _pg_connection(saver: PostgresSaver) -> Iterator[psycopg.Connection]:
    if isinstance(saver.conn, ConnectionPool):
        with saver.conn.connection() as conn:
            yield conn
    else:
        with saver.lock:
            yield saver.conn


@asynccontextmanager
async def _apg_connection(saver: AsyncPostgresSaver) -> AsyncIterator[psycopg.AsyncConnection]:
    if isinstance(saver.conn, AsyncConnectionPool):
        await saver.open()
        async with saver.conn.connection() as conn:
            yield conn
    else:
        async with saver.lock:
            yield saver.conn


async def dump_db(
    saver: Any,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every stored row of the three tables, as text, in a fixed order."""
    checkpoints = await raw(
        saver,
        "SELECT thread_id, checkpoint_ns, thread_ts, parent_ts, CAST(checkpoint AS TEXT), "
        "CAST(metadata AS TEXT), run_id, CAST(created_at AS TEXT) FROM checkpoints "
        "ORDER BY thread_id, checkpoint_ns, thread_ts",
    )
    writes = await raw(
        saver,
        "SELECT thread_id, checkpoint_ns, thread_ts, task_id, task_path, "
        "CAST(writes AS TEXT) FROM checkpoint_writes "
        "ORDER BY thread_id, checkpoint_ns, thread_ts, task_id",
    )
    values = await raw(
        saver,
        "SELECT thread_id, hash, value, CAST(refs AS TEXT) FROM checkpoint_values "
        "ORDER BY thread_id, hash",
    )
    return checkpoints, writes, values


async def count_rows(saver: Any, table: str, thread_id: str | None = None) -> int:
    if thread_id is None:
        rows = await raw(saver, f"SELECT count(*) FROM {table}")
    else:
        rows = await raw(saver, f"SELECT count(*) FROM {table} WHERE thread_id = ?", (thread_id,))
    return int(rows[0][0])


async def count_writes(saver: Any, thread_id: str | None = None) -> int:
    """The writes stored (of one thread): each row holds a task's writes."""
    sql = "SELECT coalesce(sum(json_array_length(writes)), 0) FROM checkpoint_writes"
    if thread_id is None:
        return int((await raw(saver, sql))[0][0])
    return int((await raw(saver, sql + " WHERE thread_id = ?", (thread_id,)))[0][0])


# --------------------------------------------------------------------------------------
# A PostgreSQL server
# --------------------------------------------------------------------------------------


def admin(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def pg_schema_url(url: str, schema: str) -> str:
    """`url` with its own schema (created here) first on the search path."""
    with admin(url) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def visible_elsewhere(url: str, thread_id: str) -> int:
    """The checkpoints of `thread_id` another session sees (what was committed)."""
    with admin(url) as other:
        row = other.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = %s", (thread_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def in_thread(fn: Callable[[], Any], timeout: float = 30) -> Any:
    """Run `fn` on a daemon thread; fail (instead of hanging the session) on a deadlock."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(f"deadlock: the call did not return within {timeout}s")
    if "error" in result:
        raise result["error"]
    return result.get("value")


def exercise_sync(saver: PostgresSaver, thread_id: str) -> None:
    """Every sync saver method and a chat graph, on 3 checkpoints of `thread_id`."""
    saver.setup()
    parent = None
    for i in range(3):
        cp = checkpoint(i)
        stored = saver.put(cfg(thread_id, parent), cp, {"step": i}, {"i": i + 1})
        saver.put_writes(stored, [("i", i), ("text", "w")], f"task{i}")
        parent = cp["id"]
    got = saver.get_tuple(cfg(thread_id))
    assert got is not None
    assert got.checkpoint["channel_values"] == {"i": 2, "text": "value 2"}
    assert got.pending_writes == [("task2", "i", 2), ("task2", "text", "w")]
    assert [t.metadata["step"] for t in saver.list(cfg(thread_id))] == [2, 1, 0]
    assert [t.metadata["step"] for t in saver.list(cfg(thread_id), filter={"step": 1})] == [1]
    saver.copy_thread(thread_id, thread_id + "-copy")
    saver.prune([thread_id + "-copy"])
    assert len(list(saver.list(cfg(thread_id + "-copy")))) == 1
    graph = build_chat_graph(saver, ["one", "two"])
    chat = run_cfg(thread_id + "-chat")
    graph.invoke({"messages": [HumanMessage("a")]}, chat)
    graph.invoke({"messages": [HumanMessage("b")]}, chat)
    assert [m.content for m in graph.get_state(chat).values["messages"]] == ["a", "one", "b", "two"]
    assert len(list(graph.get_state_history(chat))) == 6


async def exercise_async(saver: AsyncPostgresSaver, thread_id: str) -> None:
    """The async saver methods, the blocking ones from a thread, and a chat graph."""
    await saver.asetup()
    parent = None
    for i in range(3):
        cp = checkpoint(i)
        stored = await saver.aput(cfg(thread_id, parent), cp, {"step": i}, {"i": i + 1})
        await saver.aput_writes(stored, [("i", i)], f"task{i}")
        parent = cp["id"]
    head = await saver.aget_tuple(cfg(thread_id))
    assert head is not None and head.pending_writes == [("task2", "i", 2)]
    assert [t.metadata["step"] async for t in saver.alist(cfg(thread_id))] == [2, 1, 0]
    # the blocking API from another thread
    got = await asyncio.to_thread(saver.get_tuple, cfg(thread_id))
    assert got is not None and got.checkpoint["channel_values"]["i"] == 2
    graph = build_chat_graph(saver, ["one"])
    chat = run_cfg(thread_id + "-chat")
    await graph.ainvoke({"messages": [HumanMessage("a")]}, chat)
    assert len([s async for s in graph.aget_state_history(chat)]) == 3


# -- a chat graph and times the thread tests share --------------------------------------

OLD = "2000-01-01T00:00:00.000Z"  # a time long ago, as both engines read it
SOON = "2999-01-01T00:00:00.000Z"


def chat_graph(checkpointer: Any, control: dict | None = None) -> Any:
    """Echo bot with deterministic message ids; `ask` interrupts when the user says "ask",
    `flaky` fails while `control["fail"]`."""
    control = control if control is not None else {"fail": False}

    def bot(s: MessagesState) -> dict:
        last = s["messages"][-1]
        return {"messages": [AIMessage(f"echo {last.content}", id=f"ai-{last.id}")]}

    def route(s: MessagesState) -> str:
        text = s["messages"][-2].content
        return "ask" if text == "ask" else "flaky" if text == "flaky" else END

    def ask(s: MessagesState) -> dict:
        answer = interrupt("sure?")
        return {"messages": [AIMessage(f"you said {answer}", id=f"ans-{len(s['messages'])}")]}

    def flaky(s: MessagesState) -> dict:
        if control["fail"]:
            raise RuntimeError("flaky failed on purpose")
        return {"messages": [AIMessage("recovered", id=f"ok-{len(s['messages'])}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("bot", bot)
    builder.add_node("ask", ask)
    builder.add_node("flaky", flaky)
    builder.add_edge(START, "bot")
    builder.add_conditional_edges("bot", route, ["ask", "flaky", END])
    builder.add_edge("ask", END)
    builder.add_edge("flaky", END)
    return builder.compile(checkpointer=checkpointer)


def human(text: str, turn: int | str) -> dict:
    return {"messages": [HumanMessage(text, id=f"h-{turn}")]}
