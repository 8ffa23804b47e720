"""Thread manager, time travel and retention, on every saver flavour.

A sync saver is driven through its `ThreadManager` (from a worker thread) and its graphs
through the sync graph API; an async saver through its `AsyncThreadManager` and the async
graph API. Direct SQL (to look at rows, or to age them) goes through `raw`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from typing import Any

import aiosqlite
import psycopg
import pytest
from helpers import (
    OLD,
    SOON,
    build_delta_graph,
    call,
    cfg,
    chat_graph,
    count_rows,
    count_writes,
    human,
    invoke,
    is_async,
    is_postgres,
    make_checkpoint,
    raw,
    th,
)
from helpers import api_of as api
from helpers import get_state as state
from helpers import run_cfg as conf
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from storage import assert_references

from langgraph_store_dual import (
    AsyncThreadManager,
    ConfigError,
    NotFoundError,
    Thread,
    ThreadExistsError,
    ThreadManager,
)
from langgraph_store_dual.core import threads as thread_ops


async def checkpoint_ids(saver: Any, thread_id: str, ns: str = "") -> list[str]:
    rows = await raw(
        saver,
        "SELECT thread_ts FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? "
        "ORDER BY thread_ts DESC",
        (thread_id, ns),
    )
    return [r[0] for r in rows]


# --------------------------------------------------------------------------------------
# 1. The registry: the example, validation
# --------------------------------------------------------------------------------------


async def test_the_thread_api_example(saver: Any) -> None:
    t = await th(
        saver,
        "create",
        user_id="ana@example.com",
        title="BGP route analysis",
        metadata={"team": "netops", "source": "cli"},
    )
    assert isinstance(t, Thread) and len(t.thread_id) == 36  # thread_id optional
    assert (t.status, t.run_state, t.metadata) == (
        "active",
        "idle",
        {"team": "netops", "source": "cli"},
    )
    assert await th(saver, "get", t.thread_id) == t
    assert await th(saver, "get", "no-such-thread") is None
    # ids in creation order: SQLite times have millisecond steps, ties go by id
    others = [
        await th(saver, "create", thread_id=f"x{i}", user_id="ana@example.com") for i in range(3)
    ]
    await th(saver, "create", user_id="bob@example.com", metadata={"team": "netops"})

    page = await th(
        saver,
        "list",
        user_id="ana@example.com",
        metadata={"team": "netops"},
        status="active",
        limit=20,
    )
    assert [x.thread_id for x in page.items] == [t.thread_id] and page.next_cursor is None
    first = await th(saver, "list", user_id="ana@example.com", limit=3)
    more = await th(saver, "list", user_id="ana@example.com", limit=3, cursor=first.next_cursor)
    newest_first = [x.thread_id for x in reversed([t, *others])]
    assert [x.thread_id for x in first.items + more.items] == newest_first
    assert more.next_cursor is None

    updated = await th(
        saver, "update", t.thread_id, title="BGP: missing route-map", metadata={"priority": 1}
    )
    assert updated.title == "BGP: missing route-map"
    assert updated.metadata == {"team": "netops", "source": "cli", "priority": 1}
    assert updated.updated_at >= t.updated_at and updated.created_at == t.created_at
    removed_key = await th(saver, "update", t.thread_id, metadata={"source": None})
    assert removed_key.metadata == {"team": "netops", "priority": 1}
    assert removed_key.title == "BGP: missing route-map"  # a title not given stays

    assert (await th(saver, "archive", t.thread_id)).status == "archived"
    assert (await th(saver, "count", user_id="ana@example.com", status="archived")) == 1
    assert (await th(saver, "list", user_id="ana@example.com", status="active")).items == [
        await th(saver, "get", x.thread_id) for x in reversed(others)
    ]
    assert (await th(saver, "unarchive", t.thread_id)).status == "active"

    copied = await th(saver, "copy", t.thread_id)
    assert copied.thread_id != t.thread_id
    assert (copied.user_id, copied.title, copied.metadata) == (
        "ana@example.com",
        "BGP: missing route-map",
        {"team": "netops", "priority": 1},
    )
    named = await th(saver, "copy", t.thread_id, new_thread_id="my-copy")
    assert named.thread_id == "my-copy"

    assert await th(saver, "count", user_id="ana@example.com") == 6
    assert await th(saver, "count") == 7
    assert await th(saver, "count", metadata={"team": "netops"}) == 4

    stats = await th(saver, "stats", t.thread_id)
    assert (stats.checkpoints, stats.writes, stats.bytes) == (0, 0, 0)
    assert stats.last_activity == (await th(saver, "get", t.thread_id)).updated_at

    assert await th(saver, "delete", t.thread_id) is True
    assert await th(saver, "get", t.thread_id) is None
    assert await th(saver, "delete", t.thread_id) is False
    assert await th(saver, "count", user_id="ana@example.com") == 5


async def test_bad_input_gets_clear_errors_and_changes_nothing(saver: Any) -> None:
    t = await th(saver, "create", thread_id="t", user_id="u", title="keep", metadata={"k": 1})
    bad_calls: list[tuple[str, tuple, dict, type, str]] = [
        ("create", (), {"title": 42}, ConfigError, "title must be a str"),
        ("create", (), {"title": "x" * 257}, ConfigError, "the limit is 256"),
        ("create", (), {"title": "a\x00b"}, ConfigError, "NUL"),
        ("create", (), {"user_id": ["u"]}, ConfigError, "user_id must be a str"),
        ("create", (), {"metadata": ["x"]}, ConfigError, "metadata must be a dict"),
        ("create", (), {"metadata": {1: "x"}}, ConfigError, "not a str"),
        ("create", (), {"metadata": {"x": float("nan")}}, ConfigError, "NaN"),
        ("create", (), {"metadata": {"x": {1, 2}}}, ConfigError, "holds a set"),
        ("create", (), {"metadata": {"x": "\ud800"}}, ConfigError, "not valid Unicode"),
        ("create", (), {"metadata": {"$t": "x"}}, ConfigError, "reserved key"),
        ("create", (), {"metadata": {"x": "y" * 70_000}}, ConfigError, "the limit is 65536"),
        ("create", (), {"metadata": {"x": 2**64}}, ConfigError, "64-bit"),
        ("create", (), {"thread_id": "t"}, ThreadExistsError, "'t' already exists"),
        ("create", (), {"thread_id": ""}, ConfigError, "thread_id is required"),
        ("list", (), {"status": "deleted"}, ConfigError, "status must be one of"),
        ("list", (), {"run_state": "busy"}, ConfigError, "run_state must be one of"),
        ("list", (), {"limit": 0}, ConfigError, "limit must be an int from 1"),
        ("list", (), {"cursor": "not-a-cursor"}, ConfigError, "malformed cursor"),
        ("list", (), {"metadata": {"x": object()}}, ConfigError, "metadata filter"),
        ("update", ("t",), {"title": 3}, ConfigError, "title must be a str"),
        ("update", ("t",), {"metadata": {"big": "y" * 70_000}}, ConfigError, "65536"),
        ("update", ("nope",), {"title": "x"}, NotFoundError, "'nope' does not exist"),
        ("archive", ("nope",), {}, NotFoundError, "'nope' does not exist"),
        ("copy", ("nope",), {}, NotFoundError, "'nope' does not exist"),
        ("copy", ("t", "t"), {}, ConfigError, "other than its source"),
        ("stats", ("nope",), {}, NotFoundError, "'nope' does not exist"),
        ("fork", (cfg("nope"),), {}, NotFoundError, "no checkpoint to fork"),
        ("diff", (cfg("t", "x"), cfg("t", "y")), {}, NotFoundError, "no checkpoint"),
        ("keep_last", (0,), {}, ConfigError, "n >= 1"),
        ("prune_older_than", (-1,), {}, ConfigError, "age must be"),
        ("delete_idle_threads", (timedelta(days=1),), {"batch_size": 0}, ConfigError, "batch_size"),
        (
            "history",
            ("t",),
            {"before": {"configurable": {"thread_id": "t"}}},
            ConfigError,
            "before",
        ),
        ("lineage", ({},), {}, ConfigError, "configurable"),
    ]
    for name, args, kwargs, error, needle in bad_calls:
        with pytest.raises(error, match=needle.replace("(", r"\(").replace("$", r"\$")):
            await th(saver, name, *args, **kwargs)
    await th(saver, "create", thread_id="other")
    with pytest.raises(ThreadExistsError, match="'other' already exists"):
        await th(saver, "copy", "t", "other")
    assert await th(saver, "get", "t") == t
    assert await th(saver, "count") == 2


# --------------------------------------------------------------------------------------
# 2. Rows kept in step with checkpoints: owner, title, activity, run state
# --------------------------------------------------------------------------------------


async def test_a_run_creates_and_touches_its_thread(saver: Any) -> None:
    graph = chat_graph(saver)
    config = conf("c1", user_id="ana")
    text = "  Hello there,\n can you check the BGP routes of edge-7 and edge-9 please?"
    await invoke(graph, human(text, 1), config)
    t = await th(saver, "get", "c1")
    assert (t.user_id, t.title, t.status, t.run_state) == (
        "ana",
        "Hello there, can you check the BGP routes of edge-7 and…",
        "active",
        "idle",
    )
    await th(saver, "update", "c1", title="Edge-7 BGP")
    await invoke(graph, human("next", 2), config)
    later = await th(saver, "get", "c1")
    assert later.title == "Edge-7 BGP" and later.updated_at > t.updated_at  # a rename stays

    # the owner also comes from run metadata; a thread without messages has no title
    other = build_delta_graph(saver)
    await invoke(other, {"items": ["x"]}, {**conf("d1"), "metadata": {"user_id": "bob"}})
    assert (await th(saver, "get", "d1")).user_id == "bob"
    assert (await th(saver, "get", "d1")).title is None
    page = await th(saver, "list")
    assert [x.thread_id for x in page.items] == ["d1", "c1"]  # most recent activity first
    await invoke(graph, human("again", 3), config)
    assert [x.thread_id for x in (await th(saver, "list")).items] == ["c1", "d1"]
    stats = await th(saver, "stats", "c1")
    assert stats.checkpoints == await count_rows(saver, "checkpoints", "c1") > 0
    assert stats.writes == await count_writes(saver, "c1") > 0
    assert stats.bytes > 0 and stats.last_activity == (await th(saver, "get", "c1")).updated_at


async def test_run_state_follows_interrupts_and_errors(saver: Any) -> None:
    control = {"fail": True}
    graph = chat_graph(saver, control)
    await invoke(graph, human("ask", 1), conf("waiting", user_id="ana"))
    await invoke(graph, human("hi", 1), conf("fine", user_id="ana"))
    with pytest.raises(RuntimeError, match="on purpose"):
        await invoke(graph, human("flaky", 1), conf("broken", user_id="ana"))

    async def states() -> dict[str, str]:
        return {t.thread_id: t.run_state for t in (await th(saver, "list", user_id="ana")).items}

    assert await states() == {"waiting": "interrupted", "fine": "idle", "broken": "error"}
    waiting = await th(saver, "list", user_id="ana", run_state="interrupted")
    assert [t.thread_id for t in waiting.items] == ["waiting"]
    assert await th(saver, "count", run_state="error") == 1
    assert await th(saver, "count", run_state="idle") == 1

    await invoke(graph, Command(resume="yes"), conf("waiting"))
    control["fail"] = False
    await invoke(graph, None, conf("broken"))
    assert await states() == {"waiting": "idle", "fine": "idle", "broken": "idle"}
    await invoke(graph, human("ask", 2), conf("fine"))
    assert await states() == {"waiting": "idle", "fine": "interrupted", "broken": "idle"}


async def test_run_state_does_not_depend_on_the_order_of_put_and_writes(saver: Any) -> None:
    """LangGraph saves a task's writes in the background: they may land before the
    checkpoint they belong to."""
    graph = chat_graph(saver)
    await invoke(graph, human("hi", 1), conf("t"))
    head = (await checkpoint_ids(saver, "t"))[0]
    future = make_checkpoint({"messages": []})
    await call(
        saver, api(saver), "put_writes", cfg("t", future["id"]), [("__interrupt__", ())], "x"
    )
    assert (await th(saver, "get", "t")).run_state == "idle"  # its checkpoint is not there yet
    meta = {"source": "loop", "step": 9, "parents": {}}
    await call(saver, api(saver), "put", cfg("t", head), future, meta, {})
    assert (await th(saver, "get", "t")).run_state == "interrupted"
    # a subgraph's writes and a later error of the same checkpoint
    await call(
        saver, api(saver), "put_writes", cfg("t", future["id"], "sub:1"), [("__error__", 1)], "y"
    )
    assert (await th(saver, "get", "t")).run_state == "interrupted"
    await call(saver, api(saver), "put_writes", cfg("t", future["id"]), [("__error__", 1)], "y")
    assert (await th(saver, "get", "t")).run_state == "error"
    await call(saver, api(saver), "put", cfg("t", future["id"]), make_checkpoint({}), meta, {})
    assert (await th(saver, "get", "t")).run_state == "idle"


# --------------------------------------------------------------------------------------
# 3. Concurrency, cascades, paging
# --------------------------------------------------------------------------------------


async def test_two_writers_creating_one_thread_leave_one_row(
    saver: Any, saver_factory: Any
) -> None:
    async with saver_factory(shared=True) as second:
        results = await asyncio.gather(
            th(saver, "create", thread_id="same", title="first"),
            th(second, "create", thread_id="same", title="second"),
            return_exceptions=True,
        )
        created = [r for r in results if isinstance(r, Thread)]
        refused = [r for r in results if isinstance(r, ThreadExistsError)]
        assert len(created) == 1 and len(refused) == 1, results
        assert (await th(saver, "get", "same")).title == created[0].title

        # two graphs writing the first checkpoints of one new thread at once
        first, other = chat_graph(saver), chat_graph(second)
        await asyncio.gather(
            invoke(first, human("one", 1), conf("fresh", user_id="ana")),
            invoke(other, human("two", 2), conf("fresh", user_id="ana")),
        )
        rows = await raw(
            saver, "SELECT thread_id, user_id FROM threads WHERE thread_id = ?", ("fresh",)
        )
        assert rows == [("fresh", "ana")]
        assert await th(saver, "count") == 2


async def test_delete_cascades_and_leaves_other_threads_intact(saver: Any) -> None:
    graph = chat_graph(saver)
    for thread_id in ("gone", "kept"):
        await invoke(graph, human("ask", 1), conf(thread_id))
        await invoke(graph, Command(resume="ok"), conf(thread_id))
    await th(saver, "copy", "gone", "gone-copy")
    kept = await th(saver, "history", "kept", limit=None)
    kept_row = await th(saver, "get", "kept")
    assert await count_rows(saver, "checkpoint_writes", "gone") > 0

    assert await th(saver, "delete", "gone") is True
    for table in ("threads", "checkpoints", "checkpoint_writes"):
        assert await count_rows(saver, table, "gone") == 0
    assert await th(saver, "history", "kept", limit=None) == kept
    assert await th(saver, "get", "kept") == kept_row
    assert len(await th(saver, "history", "gone-copy", limit=None)) == len(kept)

    # LangGraph's own delete_thread removes the row too
    if is_async(saver):
        await saver.adelete_thread("gone-copy")
    else:
        await asyncio.to_thread(saver.delete_thread, "gone-copy")
    assert await th(saver, "get", "gone-copy") is None
    assert await th(saver, "count") == 1


async def test_paging_returns_each_thread_once_while_threads_are_added(saver: Any) -> None:
    ids = [f"t{i:04}" for i in range(1000)]
    for thread_id in ids:
        await th(saver, "create", thread_id=thread_id, user_id="ana")
    await th(saver, "create", thread_id="someone-else", user_id="bob")
    seen: list[str] = []
    cursor, pages = None, 0
    while True:
        page = await th(saver, "list", user_id="ana", limit=37, cursor=cursor)
        seen += [t.thread_id for t in page.items]
        stamps = [t.updated_at for t in page.items]
        assert stamps == sorted(stamps, reverse=True)
        pages += 1
        for extra in range(2):  # new conversations start while the user scrolls
            await th(saver, "create", thread_id=f"new-{pages}-{extra}", user_id="ana")
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen))
    assert sorted(s for s in seen if s.startswith("t")) == ids
    assert pages == 28  # 1000 / 37, rounded up: the new threads come before the cursor
    assert await th(saver, "count", user_id="ana") == 1000 + 2 * pages


async def test_metadata_filters_page_exactly_past_the_index_order_window(
    saver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a metadata filter, PostgreSQL reads a window of threads in index order, then
    asks its metadata index past the window: pages must not depend on where it ends."""
    monkeypatch.setattr(thread_ops, "WINDOW", 4)
    made = []
    for i in range(30):
        meta = {"tag": "common" if i % 3 else "other", "rare": i % 10 == 0}
        made.append(await th(saver, "create", thread_id=f"m{i:02}", user_id="u", metadata=meta))
    for meta in ({"tag": "common"}, {"tag": "other"}, {"rare": True}, {"tag": "none"}):
        want = [t.thread_id for t in reversed(made) if meta.items() <= t.metadata.items()]
        for limit in (1, 2, 5):
            got, cursor = [], None
            while True:
                kwargs = {"metadata": meta, "limit": limit, "cursor": cursor}
                page = await th(saver, "list", user_id="u", **kwargs)
                got += [t.thread_id for t in page.items]
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            assert got == want, (meta, limit)
        assert await th(saver, "count", user_id="u", metadata=meta) == len(want)


# --------------------------------------------------------------------------------------
# 4. Time travel
# --------------------------------------------------------------------------------------


async def test_history_lineage_and_diff(saver: Any) -> None:
    graph = chat_graph(saver)
    for turn, text in enumerate(["hello", "how are you", "bye"]):
        await invoke(graph, human(text, turn), conf("h"))
    listed = (
        [t async for t in saver.alist(conf("h"))]
        if is_async(saver)
        else await asyncio.to_thread(lambda: list(saver.list(conf("h"))))
    )
    assert len(listed) == 9
    everything = await th(saver, "history", "h", limit=None)
    assert [t.config for t in everything] == [t.config for t in listed]
    first = await th(saver, "history", "h", limit=4)
    second = await th(saver, "history", "h", limit=4, before=first[-1].config)
    rest = await th(saver, "history", "h", limit=4, before=second[-1].checkpoint["id"])
    assert [t.config for t in first + second + rest] == [t.config for t in listed]
    assert await th(saver, "history", "nobody") == []

    lineage = await th(saver, "lineage", conf("h"))
    assert [t.config for t in lineage] == [t.config for t in listed]  # one branch
    middle = listed[4]
    chain = await th(saver, "lineage", middle.config)
    assert [t.checkpoint["id"] for t in chain] == [t.checkpoint["id"] for t in listed[4:]]
    assert chain[0].checkpoint == middle.checkpoint and chain[0].metadata == middle.metadata
    assert [t.checkpoint["id"] for t in await th(saver, "lineage", middle.config, limit=2)] == [
        listed[4].checkpoint["id"],
        listed[5].checkpoint["id"],
    ]
    assert await th(saver, "lineage", cfg("h", "no-such-checkpoint")) == []

    # a branch: replaying from the middle adds checkpoints whose lineage skips the rest
    await invoke(graph, None, middle.config)
    branch = [t.checkpoint["id"] for t in await th(saver, "lineage", conf("h"))]
    kept = [t.checkpoint["id"] for t in listed[4:]]
    assert branch[-len(kept) :] == kept
    assert not set(branch[: -len(kept)]) & {t.checkpoint["id"] for t in listed}

    turn_1, turn_3 = listed[6], listed[0]  # after the first turn, after the last
    d = await th(saver, "diff", turn_1.config, turn_3.config)
    assert set(d.channels) == {"messages"}
    assert [m.id for m in d.messages_added] == ["h-1", "ai-h-1", "h-2", "ai-h-2"]
    assert d.messages_removed == []
    back = await th(saver, "diff", turn_3.config, turn_1.config)
    assert [m.id for m in back.messages_removed] == ["h-1", "ai-h-1", "h-2", "ai-h-2"]
    input_cp, start = listed[-1], listed[-2]  # the input checkpoint, then the first step
    d = await th(saver, "diff", input_cp.config, start.config)
    assert d.channels["__start__"].change == "removed"
    assert d.channels["messages"].change == "added"
    assert [m.id for m in d.messages_added] == ["h-0"]
    assert (await th(saver, "diff", turn_3.config, turn_3.config)).channels == {}


async def test_a_fork_replays_to_the_same_state_as_the_original(saver: Any) -> None:
    graph = chat_graph(saver)
    for turn, text in enumerate(["hello", "ask"]):
        await invoke(graph, human(text, turn), conf("orig", user_id="ana"))
    await th(saver, "update", "orig", metadata={"team": "netops"})
    history = await th(saver, "history", "orig", limit=None)
    before = [t.config for t in history]
    after_first_turn = next(t for t in history if t.metadata["step"] == 1)

    # from the latest checkpoint: same state, same pending interrupt, same run state
    whole = await th(saver, "fork", conf("orig"), "whole")
    assert (whole.user_id, whole.title, whole.metadata, whole.run_state) == (
        "ana",
        "hello",
        {"team": "netops"},
        "interrupted",
    )
    orig_state, whole_state = await state(graph, conf("orig")), await state(graph, conf("whole"))
    assert whole_state.values == orig_state.values
    assert whole_state.next == orig_state.next == ("ask",)
    assert [i.value for i in whole_state.interrupts] == ["sure?"]
    assert await invoke(graph, Command(resume="yes"), conf("whole")) == await invoke(
        graph, Command(resume="yes"), conf("orig")
    )

    # from the end of the first turn: its history is the lineage; then both diverge alike
    fork = await th(saver, "fork", after_first_turn.config)
    await assert_references(saver)
    assert fork.run_state == "idle"
    fork_history = await th(saver, "history", fork.thread_id, limit=None)
    lineage = await th(saver, "lineage", after_first_turn.config)
    assert [t.checkpoint for t in fork_history] == [t.checkpoint for t in lineage]
    assert (await state(graph, conf(fork.thread_id))).values == (
        await state(graph, after_first_turn.config)
    ).values
    replayed = await invoke(graph, human("ask", 1), conf(fork.thread_id))
    assert [m.id for m in replayed["messages"]] == ["h-0", "ai-h-0", "h-1", "ai-h-1"]
    original, forked = (
        await state(graph, history[0].config),
        await state(graph, conf(fork.thread_id)),
    )
    assert forked.values == original.values and forked.next == original.next == ("ask",)
    assert (await th(saver, "get", fork.thread_id)).run_state == "interrupted"
    # the source thread is untouched
    assert [
        t.config for t in (await th(saver, "history", "orig", limit=None))[-len(before) :]
    ] == before


# --------------------------------------------------------------------------------------
# 5. Retention
# --------------------------------------------------------------------------------------


async def _delta_threads(saver: Any, ref: Any, thread_ids: list[str], turns: int) -> None:
    ours, theirs = build_delta_graph(saver), build_delta_graph(ref)
    for thread_id in thread_ids:
        for turn in range(turns):
            await invoke(ours, {"items": [f"in{turn}"]}, conf(thread_id))
            await theirs.ainvoke({"items": [f"in{turn}"]}, conf(thread_id))


async def _states_by_id(saver: Any, thread_id: str) -> dict[str, Any]:
    graph = build_delta_graph(saver)
    return {
        cid: (await state(graph, cfg(thread_id, cid))).values
        for cid in await checkpoint_ids(saver, thread_id)
    }


async def _expected_kept(saver: Any, thread_id: str, newest: int) -> list[str]:
    """The newest checkpoints, then ancestors back to a snapshot of the delta channel."""
    history = await th(saver, "history", thread_id, limit=None)
    kept = history[:newest]
    for older in history[newest:]:
        if "items" not in (kept[-1].metadata.get("counters_since_delta_snapshot") or {}):
            break
        kept.append(older)
        if "items" in older.checkpoint["channel_values"]:
            break
    return [t.checkpoint["id"] for t in kept]


async def test_keep_last_keeps_what_it_promises_and_graphs_resume(saver: Any) -> None:
    ref = InMemorySaver()
    await _delta_threads(saver, ref, ["d1", "d2"], turns=4)
    chat = chat_graph(saver)
    for turn in range(3):
        await invoke(chat, human(f"m{turn}", turn), conf("chat"))
    before = {t: await _states_by_id(saver, t) for t in ("d1", "d2")}
    expected = {t: await _expected_kept(saver, t, 2) for t in ("d1", "d2")}
    assert len(expected["d1"]) > 2  # the test needs a walk back to a snapshot
    counts = {t: await count_rows(saver, "checkpoints", t) for t in ("d1", "d2", "chat")}
    writes = await count_writes(saver)
    chat_latest = (await checkpoint_ids(saver, "chat"))[:2]

    removed = await th(saver, "keep_last", 2, batch_size=2)
    await assert_references(saver)  # no value left behind, none a kept snapshot needs gone

    assert await checkpoint_ids(saver, "chat") == chat_latest
    for thread_id in ("d1", "d2"):
        assert await checkpoint_ids(saver, thread_id) == expected[thread_id]
        # every kept checkpoint still rebuilds the state it had
        assert await _states_by_id(saver, thread_id) == {
            cid: before[thread_id][cid] for cid in expected[thread_id]
        }
    assert sorted(removed.threads) == ["chat", "d1", "d2"]
    left = sum([len(expected["d1"]), len(expected["d2"]), 2])
    assert removed.checkpoints == sum(counts.values()) - left
    assert removed.writes == writes - await count_writes(saver)
    assert (await th(saver, "keep_last", 2)).checkpoints == 0  # idempotent

    # the pruned threads carry on exactly like unpruned ones
    await _delta_threads(saver, ref, ["d1"], turns=2)
    ours, theirs = build_delta_graph(saver), build_delta_graph(ref)
    assert (await state(ours, conf("d1"))).values == (await theirs.aget_state(conf("d1"))).values
    await invoke(chat, human("more", 9), conf("chat"))
    assert [m.id for m in (await state(chat, conf("chat"))).values["messages"]][-4:] == [
        "h-2", "ai-h-2", "h-9", "ai-h-9"
    ]  # fmt: skip


async def test_prune_older_than_keeps_recent_checkpoints_and_heads(saver: Any) -> None:
    ref = InMemorySaver()
    await _delta_threads(saver, ref, ["old", "mixed"], turns=3)  # same shape
    await _delta_threads(saver, ref, ["new"], turns=1)
    mixed = await checkpoint_ids(saver, "mixed")
    recent = mixed[:5]  # pretend the last five checkpoints of "mixed" are recent
    aged = "UPDATE checkpoints SET created_at = ? WHERE thread_id IN (?, ?)"
    await raw(saver, aged, (OLD, "old", "mixed"))
    for cid in recent:
        await raw(saver, "UPDATE checkpoints SET created_at = ? WHERE thread_ts = ?", (SOON, cid))
    new_before = await checkpoint_ids(saver, "new")
    expected_old = await _expected_kept(saver, "old", 1)
    expected_mixed = await _expected_kept(saver, "mixed", 5)
    states = {t: await _states_by_id(saver, t) for t in ("old", "mixed")}

    removed = await th(saver, "prune_older_than", timedelta(hours=1))
    await assert_references(saver)

    assert await checkpoint_ids(saver, "new") == new_before
    assert await checkpoint_ids(saver, "old") == expected_old
    assert await checkpoint_ids(saver, "mixed") == expected_mixed
    assert sorted(removed.threads) == ["mixed", "old"]
    assert removed.checkpoints == 2 * len(mixed) - len(expected_mixed) - len(expected_old)
    for thread_id in ("old", "mixed"):
        assert await _states_by_id(saver, thread_id) == {
            cid: states[thread_id][cid] for cid in await checkpoint_ids(saver, thread_id)
        }
    assert (await th(saver, "prune_older_than", 3600)).checkpoints == 0  # idempotent
    await _delta_threads(saver, ref, ["old"], turns=1)
    got, want = (
        await state(build_delta_graph(saver), conf("old")),
        build_delta_graph(ref).get_state(conf("old")),
    )
    assert got.values == want.values


async def test_delete_idle_threads_in_batches(saver: Any) -> None:
    graph = chat_graph(saver)
    for i in range(5):
        await invoke(graph, human("hi", i), conf(f"idle-{i}"))
    await invoke(graph, human("hi", 9), conf("active"))
    await th(saver, "create", thread_id="empty-idle")
    await raw(saver, "UPDATE threads SET updated_at = ? WHERE thread_id <> ?", (OLD, "active"))
    writes = await count_writes(saver)
    checkpoints = await count_rows(saver, "checkpoints")
    active = await th(saver, "history", "active", limit=None)

    removed = await th(saver, "delete_idle_threads", timedelta(days=30), batch_size=2)
    await assert_references(saver)

    assert sorted(removed.threads) == ["empty-idle", *(f"idle-{i}" for i in range(5))]
    assert removed.checkpoints == checkpoints - len(active)
    assert removed.writes == writes - await count_writes(saver)
    assert [t.thread_id for t in (await th(saver, "list")).items] == ["active"]
    assert await th(saver, "history", "active", limit=None) == active
    assert await count_rows(saver, "checkpoints") == len(active)
    assert (await th(saver, "delete_idle_threads", 3600)).threads == ()


# --------------------------------------------------------------------------------------
# 6. Schema: an existing database gains the thread registry in place
# --------------------------------------------------------------------------------------


async def test_an_existing_database_upgrades_in_place(saver: Any, saver_factory: Any) -> None:
    graph = chat_graph(saver)
    await invoke(graph, human("Plan my trip to Lisbon", 1), conf("a", user_id="ana"))
    await invoke(graph, human("ask", 1), conf("b", user_id=42))
    await invoke(graph, human("hi", 1), conf("c"))
    before = await th(saver, "history", "b", limit=None)
    flat = (
        "SELECT thread_id, checkpoint_ns, thread_ts, task_id, task_path, idx, channel, "
        "CAST(value AS TEXT) FROM checkpoint_writes_flat "
        "ORDER BY thread_id, thread_ts, task_id, idx"
    )
    writes_before = await raw(saver, flat)
    # back to the schema before the thread registry (migration 3; the later ones run again),
    # with a row per write as it was before migration 5
    version = len(saver.dialect.migrations)
    await raw(saver, "DROP VIEW message_usage")  # migration 6 reads threads and writes
    await raw(saver, "DROP TABLE threads")
    await raw(
        saver,
        "CREATE TABLE writes_v2 AS SELECT thread_id, checkpoint_ns, thread_ts, task_id, idx, "
        "channel, task_path, value FROM checkpoint_writes_flat",
    )
    await raw(saver, "DROP VIEW checkpoint_writes_flat")
    await raw(saver, "DROP TABLE checkpoint_writes")
    await raw(saver, "ALTER TABLE writes_v2 RENAME TO checkpoint_writes")
    await raw(saver, "DELETE FROM schema_version WHERE version >= 3")

    async with saver_factory(shared=True) as upgraded:
        rows = {t.thread_id: t for t in (await th(upgraded, "list")).items}
        assert await raw(upgraded, "SELECT max(version) FROM schema_version") == [(version,)]
    assert sorted(rows) == ["a", "b", "c"]
    assert (rows["a"].user_id, rows["b"].user_id, rows["c"].user_id) == ("ana", "42", None)
    assert {t: rows[t].run_state for t in rows} == {"a": "idle", "b": "interrupted", "c": "idle"}
    assert rows["a"].title is None and rows["a"].status == "active"
    assert await th(saver, "history", "b", limit=None) == before
    assert await raw(saver, flat) == writes_before and len(writes_before) > 6
    if is_postgres(saver):
        indexes = await raw(saver, "SELECT indexname FROM pg_indexes WHERE tablename = 'threads'")
        assert {"threads_user_recent", "threads_metadata"} <= {r[0] for r in indexes}


# --------------------------------------------------------------------------------------
# 7. Managers on their own, and of the other kind than their saver
# --------------------------------------------------------------------------------------


def test_thread_manager_opens_on_a_url_a_connection_or_a_pool(
    tmp_path: Any, pg_clean_url: str
) -> None:
    path = tmp_path / "alone.db"
    with ThreadManager(f"sqlite:///{path}") as threads:
        made = threads.create(user_id="ana", title="from a URL")
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        assert ThreadManager(conn).get(made.thread_id) == made
    finally:
        conn.close()

    with ThreadManager(pg_clean_url, pool_max_size=2) as threads:
        made = threads.create(user_id="ana", title="from a URL")
    with psycopg.connect(pg_clean_url, autocommit=True) as pg_conn:
        assert ThreadManager(pg_conn).get(made.thread_id) == made
    with ConnectionPool(pg_clean_url, kwargs={"autocommit": True}) as pool:
        assert ThreadManager(pool).list(user_id="ana").items == [made]
    with pytest.raises(ConfigError, match="ThreadManager needs a saver, a database URL"):
        ThreadManager(42)
    with pytest.raises(ConfigError, match="unknown database URL scheme"):
        ThreadManager("mysql://db/x")


async def test_async_thread_manager_opens_on_a_url_a_connection_or_a_pool(
    tmp_path: Any, pg_clean_url: str
) -> None:
    path = tmp_path / "alone.db"
    async with AsyncThreadManager(f"sqlite:///{path}") as threads:
        made = await threads.create(user_id="ana", title="from a URL")
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        assert await AsyncThreadManager(conn).get(made.thread_id) == made

    async with AsyncThreadManager(pg_clean_url) as threads:
        made = await threads.create(user_id="ana", title="from a URL")
    async with await psycopg.AsyncConnection.connect(pg_clean_url, autocommit=True) as pg_conn:
        assert await AsyncThreadManager(pg_conn).get(made.thread_id) == made
    async with AsyncConnectionPool(pg_clean_url, kwargs={"autocommit": True}) as pool:
        threads = AsyncThreadManager(pool)  # opened on first use
        assert (await threads.list(user_id="ana")).items == [made]
    with pytest.raises(ConfigError, match="AsyncThreadManager needs a saver"):
        AsyncThreadManager(sqlite3.connect(":memory:"))


async def test_a_manager_of_the_other_kind_works_on_the_same_saver(saver: Any) -> None:
    graph = chat_graph(saver)
    await invoke(graph, human("ask", 1), conf("x", user_id="ana"))
    if is_async(saver):  # a blocking manager, used from a worker thread
        other = ThreadManager(saver)
        page = await asyncio.to_thread(other.list, user_id="ana")
        history = await asyncio.to_thread(other.history, "x")
        removed = await asyncio.to_thread(other.keep_last, 1)
    else:
        other = AsyncThreadManager(saver)
        page = await other.list(user_id="ana")
        history = await other.history("x")
        removed = await other.keep_last(1)
    assert [(t.thread_id, t.run_state) for t in page.items] == [("x", "interrupted")]
    assert len(history) == 3 and removed.checkpoints == 2
    assert (await state(graph, conf("x"))).next == ("ask",)
