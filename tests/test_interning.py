"""Interned storage (issue 6): large parts of snapshots are stored once per thread in
`checkpoint_values` and referred to from the JSON; what users and LangGraph see is
unchanged, storage grows with what is new, and no operation loses or orphans a value."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from pathlib import Path
from typing import Annotated, Any, TypedDict

import orjson
import psycopg
import pytest
from conftest import open_saver
from helpers import call, cfg, get_state, invoke, is_postgres, listing, message, raw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import HumanMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import TASKS
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from probes import probing
from storage import assert_references, versions

from langgraph_store_dual import DecodeError
from langgraph_store_dual.codec import REF, SPLICE, JsonCodec, ValueCache
from langgraph_store_dual.core import intern, ops, records
from langgraph_store_dual.core.intern import (
    CLOSED_MAX,
    FANOUT,
    digest,
    intern_channels,
    refs_in,
)
from langgraph_store_dual.sqlite.dialect import SQLITE

CODEC = JsonCodec(JsonPlusSerializer())


def expand(tree: Any, values: dict[str, tuple[bytes, list[str]]]) -> Any:
    """What a tree with references stands for (an independent, plain implementation)."""
    if isinstance(tree, list):
        out: list[Any] = []
        for item in tree:
            if isinstance(item, dict) and list(item) == [SPLICE]:
                out.extend(expand(orjson.loads(values[item[SPLICE]][0]), values))
            else:
                out.append(expand(item, values))
        return out
    if isinstance(tree, dict):
        if list(tree) == [REF]:
            return expand(orjson.loads(values[tree[REF]][0]), values)
        return {k: expand(v, values) for k, v in tree.items()}
    return tree


# --------------------------------------------------------------------------------------
# The interning itself (no database)
# --------------------------------------------------------------------------------------

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.text(min_size=100, max_size=400),
)
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=40),
        st.dictionaries(st.text(max_size=8), children, max_size=6),
        st.tuples(children, children),
        st.builds(lambda c, i: HumanMessage(content=c, id=str(i)), st.text(), st.integers()),
    ),
    max_leaves=120,
)


def test_remembered_hashes_are_the_hashes_and_stay_bounded() -> None:
    def blake(data: bytes) -> str:  # the format's definition, written out
        raw = hashlib.blake2b(data, digest_size=16).digest()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    intern._remembered.cache_clear()
    small, large = b'["a"]', b'["' + b"x" * intern.MEMO_MAX_BYTES + b'"]'
    for _ in range(2):  # computed, then remembered
        assert digest(small) == blake(small) and digest(large) == blake(large)
    info = intern._remembered.cache_info()
    assert (info.hits, info.currsize) == (1, 1)  # the large value is hashed each time
    for i in range(intern.DIGEST_MEMO + 10):
        digest(b"[%d]" % i)
    assert intern._remembered.cache_info().currsize == intern.DIGEST_MEMO


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["messages", "docs", "a", "b"]), trees, max_size=4))
def test_interned_snapshots_stand_for_the_same_values(channels: dict[str, Any]) -> None:
    encoded = {ch: CODEC.encode(v) for ch, v in channels.items()}
    interned = intern_channels(encoded)
    assert {ch: expand(t, interned.values) for ch, t in interned.channels.items()} == encoded
    # every value is named by its digest and lists exactly the hashes its JSON refers to
    for h, (data, refs) in interned.values.items():
        assert digest(data) == h
        assert refs == sorted(set(refs_in(orjson.loads(data))))
    # the snapshot lists every value it needs if they are few, else those it refers to
    direct = sorted(set(refs_in(interned.channels)))
    needed = set(direct)
    while more := {r for h in needed for r in interned.values[h][1]} - needed:
        needed |= more
    assert needed == interned.values.keys()
    assert interned.refs == (sorted(needed) if len(needed) <= CLOSED_MAX else direct)
    # decoding through a cache of the stored values revives equal values
    raw = {h: data.decode() for h, (data, _) in interned.values.items()}
    assert {
        ch: CODEC.decode(t, ValueCache(raw=raw)) for ch, t in interned.channels.items()
    } == channels


def test_appending_to_a_list_stores_only_what_is_new() -> None:
    msgs = [message(i) for i in range(700)]
    stored: dict[str, bytes] = {}
    item_bytes = 0
    for n in range(1, len(msgs) + 1):
        interned = intern_channels({"messages": CODEC.encode(msgs[:n])})
        new = {h: d for h, (d, _) in interned.values.items() if h not in stored}
        stored.update(new)
        item_bytes += len(orjson.dumps(CODEC.encode(msgs[n - 1])))
        if n == 1:  # a list of one short message stays inline
            assert not interned.values
            continue
        # the snapshot refers to one stored value, whatever the length of the list
        (root,) = refs_in(interned.channels)
        assert interned.channels == {"messages": [{SPLICE: root}]}
        # ... and lists every value it needs while they are few
        few = len(interned.values) <= CLOSED_MAX
        assert interned.refs == (sorted(interned.values) if few else [root])
        # one value per new item (the first time, two), plus the runs every FANOUT items
        assert len(new) == 1 + (n == 2) + sum(n % FANOUT**k == 0 for k in range(1, 4))
    # each item is held by its link of the chain and by one run: about twice, not n times
    assert sum(map(len, stored.values())) < 2.3 * item_bytes


def test_small_values_stay_inline() -> None:
    interned = intern_channels({"n": 3, "s": "short", "l": [1, 2, 3], "d": {"k": "v"}})
    assert interned.channels == {"n": 3, "s": "short", "l": [1, 2, 3], "d": {"k": "v"}}
    assert interned.values == {} and interned.refs == []


def test_a_large_object_is_looked_into() -> None:
    doc = {"title": "t" * 3000, "chunks": [f"chunk {i} " * 30 for i in range(40)]}
    interned = intern_channels({"doc": CODEC.encode(doc)})
    # its long string is stored once, its list as a chain; what is left is small, inline
    inline = interned.channels["doc"]
    assert set(inline) == {"title", "chunks"} and list(inline["title"]) == [REF]
    assert list(inline["chunks"][0]) == [SPLICE] and len(inline["chunks"]) == 1
    assert expand(interned.channels["doc"], interned.values) == CODEC.encode(doc)


def test_user_dicts_with_reference_keys_are_not_references() -> None:
    value = {"$r": "x" * 22, "n": [{"$s": "y" * 22}] * 20}
    encoded = CODEC.encode(value)
    interned = intern_channels({"v": encoded})
    cache = ValueCache({h: orjson.loads(d) for h, (d, _) in interned.values.items()})
    assert CODEC.decode(interned.channels["v"], cache) == value


def test_a_listing_cache_copies_runs_it_flattened() -> None:
    """A cache serving a listing (`flatten=True`) keeps each run used again as one list:
    the snapshots it decodes are the same values as without, share no object with each
    other, and a snapshot reusing a run inside another one it used is charged as before."""
    store: dict[str, str] = {}
    snapshots = []
    for n in range(1, 120):
        interned = intern_channels({"messages": CODEC.encode([message(i) for i in range(n)])})
        store.update({h: data.decode() for h, (data, _) in interned.values.items()})
        snapshots.append(interned.channels)
    flat, plain = ValueCache(raw=store, flatten=True), ValueCache(raw=store)
    got = []
    for channels in reversed(snapshots):  # newest first, as a history
        flat.begin()
        plain.begin()
        one = {ch: CODEC.decode(t, flat) for ch, t in channels.items()}
        assert one == {ch: CODEC.decode(t, plain) for ch, t in channels.items()}
        assert one["messages"] == [message(i) for i in range(len(one["messages"]))]
        got.append(one)
    assert flat._flats  # the runs were flattened
    ids = [id(m) for one in got for m in one["messages"]]
    assert len(ids) == len(set(ids))  # every message of every snapshot is its own object
    got[-1]["messages"][0].content = "changed"
    assert got[-2]["messages"][0].content == message(0).content
    # a run used twice in one snapshot: the second use is charged, flattened or not
    twice = [snapshots[-1]["messages"][0], snapshots[-1]["messages"][0]]
    for cache in (flat, ValueCache(raw=store, flatten=True)):
        cache.begin()
        assert CODEC.decode(twice, cache) == [message(i) for i in range(119)] * 2
        assert cache.spent > 0 and cache.spent == cache.fresh


def test_a_history_fetches_each_value_once() -> None:
    """`list` driven without a database: each value is asked for once, in one statement per
    chunk of rows and level of nesting."""
    snapshots = []
    store: dict[str, tuple[str, str | None]] = {}
    for n in range(1, 90):
        interned = intern_channels({"messages": CODEC.encode([message(i) for i in range(n)])})
        for h, (data, refs) in interned.values.items():
            store[h] = (data.decode(), orjson.dumps(refs).decode() if refs else None)
        body = records.dump({"v": 4, "channel_values": interned.channels})
        ts = f"{n:04}"
        row = ("t", "", ts, None, body, "{}", None, None, orjson.dumps(interned.refs), None)
        snapshots.append(row)
    snapshots.reverse()
    asked: list[str] = []

    def execute(stmt: ops.Stmt) -> list:
        """select_values: the values asked for and those they refer to, not the known."""
        assert stmt.sql == SQLITE.select_values
        known, todo, out = (
            set(orjson.loads(stmt.params["known"])),
            orjson.loads(stmt.params["hashes"]),
            {},
        )
        while todo:
            h = todo.pop()
            if h not in out:
                out[h] = store[h][0]
                todo += [r for r in orjson.loads(store[h][1] or "[]") if r not in known]
        asked.extend(out)
        return list(out.items())

    plan = ops.list_plan(SQLITE, cfg("t"), None, None, None)
    reader = ops.ListReader(SQLITE, CODEC, plan, ops.ValueCaches())
    statements = 0
    for start in range(0, len(snapshots), 30):
        chunk = snapshots[start : start + 30]
        if (fetch := reader.fetch(chunk)) is not None:
            ops.run(fetch, execute)
            statements += 1
        for n, item in zip(range(89 - start, 0, -1), reader.tuples(chunk), strict=False):
            assert item.checkpoint["channel_values"]["messages"] == [message(i) for i in range(n)]
    assert len(asked) == len(set(asked)) == len(store)
    assert statements == 3  # one per chunk


def test_value_caches_drop_the_least_recently_read_threads() -> None:
    caches = ops.ValueCaches(threads=3, chars=100)
    caches.get("a").add("x", "6" * 60)
    caches.get("b").add("x", "3" * 30)
    caches.get("c").add("x", "3" * 30)
    assert caches.get("b") is caches.get("b")
    caches.get("d")  # 120 characters: "a", read least recently, goes
    assert "a" not in caches._texts and set(caches._texts) == {"b", "c", "d"}
    caches.get("e")  # 4 threads
    assert set(caches._texts) == {"b", "d", "e"}


# --------------------------------------------------------------------------------------
# On every saver
# --------------------------------------------------------------------------------------


async def put_state(
    saver: Any, api: str, thread_id: str, values: dict, parent: str | None, **meta: Any
) -> dict:
    cp = empty_checkpoint()
    cp["v"] = 4  # as a graph writes it
    cp["channel_values"] = values
    cp["channel_versions"] = {k: 1 for k in values}
    metadata = {"source": "loop", "step": 0, "parents": {}, **meta}
    return await call(saver, api, "put", cfg(thread_id, parent), cp, metadata, {})


async def chat(
    saver: Any, api: str, thread_id: str, turns: int, *, run: str | None = None, ns: str = ""
) -> list[dict]:
    """A chat growing by one message per checkpoint, with a long system prompt and a
    message write per checkpoint. Returns the stored configs, oldest first."""
    configs: list[dict] = []
    parent = None
    for n in range(1, turns + 1):
        values = {"messages": [message(i) for i in range(n)], "system": "Be brief. " * 40}
        cp = empty_checkpoint()
        cp["v"] = 4  # as a graph writes it (`empty_checkpoint` gives format 2)
        cp["channel_values"] = values
        cp["channel_versions"] = {"messages": n, "system": 1}
        meta: dict[str, Any] = {"source": "loop", "step": n, "parents": {}}
        if run:
            meta["run_id"] = run
        stored = await call(saver, api, "put", cfg(thread_id, parent, ns), cp, meta, {})
        await call(saver, api, "put_writes", stored, [("messages", [message(n)])], f"task{n}")
        parent = stored["configurable"]["checkpoint_id"]
        configs.append(stored)
    return configs


def messages_of(t: Any) -> list:
    return t.checkpoint["channel_values"]["messages"]


async def test_snapshots_read_back_and_stay_small(saver: Any, api: str) -> None:
    configs = await chat(saver, api, "c", 60)
    history = await listing(saver, api, cfg("c"))
    assert [len(messages_of(t)) for t in history] == list(range(60, 0, -1))
    assert all(messages_of(t) == [message(i) for i in range(len(messages_of(t)))] for t in history)
    assert history[0].checkpoint["channel_values"]["system"] == "Be brief. " * 40
    assert history[0].pending_writes == [("task60", "messages", [message(60)])]
    for n in (1, 16, 17, 33, 60):
        got = await call(saver, api, "get_tuple", configs[n - 1])
        assert messages_of(got) == [message(i) for i in range(n)]
    some = await listing(saver, api, cfg("c"), limit=5, before=configs[30])
    assert [len(messages_of(t)) for t in some] == [30, 29, 28, 27, 26]
    # a stored snapshot holds references, not the messages: its size does not grow
    sizes = await raw(saver, "SELECT length(CAST(checkpoint AS TEXT)) FROM checkpoints")
    assert max(s for (s,) in sizes) < 600
    content = sum(len(orjson.dumps(CODEC.encode(message(i)))) for i in range(60))
    stored = await raw(saver, "SELECT sum(length(value)) FROM checkpoint_values")
    assert stored[0][0] < 2.5 * content
    await assert_references(saver)


async def test_snapshots_share_no_objects(saver: Any, api: str) -> None:
    await chat(saver, api, "c", 40)
    history = await listing(saver, api, cfg("c"))
    first, second = messages_of(history[0]), messages_of(history[1])
    first[0].content = "changed"
    first[1].tool_calls[0]["args"]["prefix"] = "changed"
    first.append(HumanMessage("more"))
    assert second == [message(i) for i in range(39)]
    latest = await call(saver, api, "get_tuple", cfg("c"))
    assert messages_of(latest) == [message(i) for i in range(40)]
    messages_of(latest)[3].usage_metadata["input_tokens"] = -1
    assert messages_of(await call(saver, api, "get_tuple", cfg("c")))[3] == message(3)


async def test_no_orphans_and_nothing_missing_after_deleting_and_copying(
    saver: Any, api: str
) -> None:
    await chat(saver, api, "a", 40, run="run-a")
    await chat(saver, api, "a", 20, ns="sub:1")
    await chat(saver, api, "b", 30, run="run-b")
    await chat(saver, api, "keep", 25)
    keep = await listing(saver, api, cfg("keep"))
    await assert_references(saver)

    async def values(thread_id: str) -> int:
        return (
            await raw(
                saver, "SELECT count(*) FROM checkpoint_values WHERE thread_id = ?", (thread_id,)
            )
        )[0][0]

    await call(saver, api, "copy_thread", "a", "a2")
    await assert_references(saver)
    assert await values("a2") == await values("a")

    before = await values("a")
    await call(saver, api, "prune", ["a2"], strategy="keep_latest")
    await assert_references(saver)
    assert await values("a2") < before
    latest = await listing(saver, api, {"configurable": {"thread_id": "a2"}})
    assert [len(messages_of(t)) for t in latest] == [20, 40]  # sub:1, then ""

    # run-a made the checkpoints of "" in a, and of its copy: the sub:1 namespaces stay
    await call(saver, api, "delete_for_runs", ["run-a"])
    await assert_references(saver)
    left = await listing(saver, api, cfg("a", ns="sub:1"))
    assert [len(messages_of(t)) for t in left] == list(range(20, 0, -1))
    assert await values("a") < before

    await call(saver, api, "prune", ["b"], strategy="delete")
    await call(saver, api, "delete_thread", "a2")
    await assert_references(saver)
    assert await values("b") == await values("a2") == 0
    assert [t.checkpoint for t in await listing(saver, api, cfg("keep"))] == [
        t.checkpoint for t in keep
    ]


async def test_sql_view_expands_references(saver: Any, api: str) -> None:
    await chat(saver, api, "c", 40)
    doc = {"title": "Routing policy", "body": "Prefixes are announced to AS 64512. " * 20}
    await put_state(saver, api, "d", {"doc": doc, "n": 7}, None)
    if is_postgres(saver):
        last, length = (
            "checkpoint -> 'channel_values' -> 'messages' -> -1 ->> 'content'",
            "json_array_length(checkpoint -> 'channel_values' -> 'messages')",
        )
        title = "checkpoint -> 'channel_values' -> 'doc' ->> 'title'"
    else:
        last = "json_extract(checkpoint, '$.channel_values.messages[#-1].content')"
        length = "json_array_length(checkpoint, '$.channel_values.messages')"
        title = "json_extract(checkpoint, '$.channel_values.doc.title')"
    newest = "FROM checkpoints_expanded WHERE thread_id = ? ORDER BY thread_ts DESC LIMIT 1"
    assert await raw(saver, f"SELECT {last}, {length} {newest}", ("c",)) == [
        (message(39).content, 40)
    ]
    assert await raw(saver, f"SELECT {title} {newest}", ("d",)) == [("Routing policy",)]
    rows = await raw(saver, "SELECT CAST(checkpoint AS TEXT) FROM checkpoints_expanded")
    for (text,) in rows:
        assert '"$r"' not in text and '"$s"' not in text
        if "Routing" in text:
            assert orjson.loads(text)["channel_values"]["doc"] == saver.codec.encode(doc)


def read_statements(saver: Any) -> int:
    """The statements of a read whose snapshot (of format 4, as graphs write) lists every
    value it needs: one on PostgreSQL (a round trip), two on SQLite (the values apart, at
    no round trip's cost)."""
    return 2 if type(saver).dialect.select_listed_values else 1


async def test_a_snapshot_before_format_4_with_a_parent_is_read_with_its_parents_sends(
    saver: Any, api: str
) -> None:
    """Formats 1 to 3 kept pending `Send`s as writes on the parent: PostgreSQL's read
    statement leaves them out (it plans faster) and fetches them in one more statement,
    only for such a snapshot with a parent; SQLite's statement reads them itself."""
    configs = await chat(saver, api, "old", 3)
    old = empty_checkpoint()  # format 2
    old["channel_values"] = {"n": 1}
    old["channel_versions"] = {"n": 1}
    sends = [Send("node", {"n": 1})]
    await call(saver, api, "put_writes", configs[-1], [(TASKS, s) for s in sends], "task")
    stored = await call(saver, api, "put", configs[-1], old, {}, {})
    select_sends = " ".join((type(saver).dialect.select_sends or "").split())
    for config, extra, pending in ((configs[-1], 0, None), (stored, 1, sends)):
        async with probing(saver) as probe:
            probe.active = True
            got = await call(saver, api, "get_tuple", config)
            probe.active = False
        fetched = [s for s in probe.statements if select_sends and s in select_sends]
        assert len(fetched) == (extra if select_sends else 0), probe.statements
        assert got.checkpoint["channel_values"].get(TASKS) == pending


async def test_reads_take_bounded_statements(saver: Any, api: str) -> None:
    await chat(saver, api, "c", 120)
    async with probing(saver) as probe:
        probe.active = True
        got = await call(saver, api, "get_tuple", cfg("c"))
        selects = [s for s in probe.statements if "SELECT" in s.upper()]
        probe.statements.clear()
        history = await listing(saver, api, cfg("c"))
        probe.active = False
    assert len(messages_of(got)) == 120 and len(history) == 120
    # one round trip for a checkpoint and its values (SQLite, with none to save, reads the
    # values in a second statement: no JSON to build for them and parse)
    assert len(selects) == read_statements(saver), selects
    # the history: one streamed query (or, on SQLite, one per chunk of 100 rows), and per
    # chunk the missing values
    selects = [s for s in probe.statements if "SELECT" in s.upper()]
    assert len(selects) == (2 if saver.list_in_pages else 1) + 2, selects


async def test_reads_fetch_only_what_they_have_not_decoded(saver: Any, api: str) -> None:
    configs = await chat(saver, api, "c", 50)
    cache = saver.value_caches.get("c")
    first = await call(saver, api, "get_tuple", cfg("c"))
    fetched = cache.size
    assert fetched > 0
    again = await call(saver, api, "get_tuple", cfg("c"))
    assert cache.size == fetched and messages_of(again) == messages_of(first)
    assert messages_of(again) is not messages_of(first)
    assert messages_of(again)[1] is not messages_of(first)[1]
    older = await call(saver, api, "get_tuple", configs[40])  # only its links of the chain
    assert messages_of(older) == messages_of(first)[:41]
    assert fetched < cache.size < 1.5 * fetched
    fetched = cache.size
    await chat(saver, api, "d", 1)
    values = {"messages": [message(i) for i in range(51)], "system": "Be brief. " * 40}
    await put_state(saver, api, "c", values, configs[-1]["configurable"]["checkpoint_id"])
    latest = await call(saver, api, "get_tuple", cfg("c"))
    assert messages_of(latest) == values["messages"]
    assert fetched < cache.size < fetched + 1000  # the new link of the chain only


async def test_a_put_hands_its_values_to_the_next_read_of_a_thread_read_before(
    saver: Any, api: str
) -> None:
    """A graph reads its thread, then puts: the values a put stored reach the caches of a
    thread they keep, and the next read fetches none (on SQLite it runs no statement for
    them); a put on a thread never read adds nothing."""
    configs = await chat(saver, api, "c", 30)
    await call(saver, api, "get_tuple", cfg("c"))
    cache = saver.value_caches.get("c")
    before = cache.size
    values = {"messages": [message(i) for i in range(31)], "system": "Be brief. " * 40}
    await put_state(saver, api, "c", values, configs[-1]["configurable"]["checkpoint_id"])
    assert before < cache.size  # the new link of the chain
    async with probing(saver) as probe:
        probe.active = True
        latest = await call(saver, api, "get_tuple", cfg("c"))
        probe.active = False
    assert messages_of(latest) == values["messages"]
    assert latest.checkpoint["channel_values"]["system"] == values["system"]
    selects = [s for s in probe.statements if "SELECT" in s.upper()]
    assert len(selects) == 1, selects  # the checkpoint's row; its values were all known
    await chat(saver, api, "never-read", 3)
    assert "never-read" not in saver.value_caches._texts


def test_values_a_put_adds_count_toward_the_caches_size() -> None:
    caches = ops.ValueCaches(threads=5, chars=100)
    caches.get("a").add("x", "1" * 30)
    caches.get("b").add("x", "2" * 30)
    caches.add_written("a", [("y", "3" * 50), ("x", "1" * 30)])  # "x" known: counted once
    caches.add_written("z", [("y", "4" * 50)])  # not kept: not added
    assert set(caches._texts) == {"a", "b"} and caches._texts["a"].size == 80
    caches.get("b")  # 110 characters: "a", read least recently, goes
    assert set(caches._texts) == {"b"}


async def test_a_put_takes_a_channel_unchanged_since_the_last_as_it_was(
    saver: Any, api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LangGraph moves a channel's version whenever its value changes: a channel holding
    the same object at the same version as at the namespace's last put is not encoded
    again and reads back the same; another object at that version (a fork reaching the
    same number) is encoded; and the values are stored again after a deletion."""
    encoded: list[Any] = []
    original = JsonCodec.encode

    def spying(self: JsonCodec, value: Any) -> Any:
        encoded.append(value)
        return original(self, value)

    monkeypatch.setattr(JsonCodec, "encode", spying)

    async def put(values: dict, versions: dict, parent: str | None) -> str:
        cp = empty_checkpoint()
        cp["channel_values"], cp["channel_versions"] = values, versions
        meta = {"source": "loop", "step": 0, "parents": {}}
        stored = await call(saver, api, "put", cfg("c", parent), cp, meta, {})
        return str(stored["configurable"]["checkpoint_id"])

    async def state(checkpoint_id: str) -> dict:
        got = await call(saver, api, "get_tuple", cfg("c", checkpoint_id))
        return dict(got.checkpoint["channel_values"])

    history = [message(i) for i in range(30)]
    first = await put({"messages": history, "n": 1}, {"messages": 3, "n": 1}, None)
    encoded.clear()
    second = await put({"messages": history, "n": 2}, {"messages": 3, "n": 2}, first)
    assert 2 in encoded and not any(v is history for v in encoded)
    assert await state(second) == {"messages": history, "n": 2}
    forked = [*history[:10], message(99)]
    third = await put({"messages": forked, "n": 2}, {"messages": 3, "n": 2}, first)
    assert any(v is forked for v in encoded)
    assert await state(third) == {"messages": forked, "n": 2}
    await call(saver, api, "delete_thread", "c")
    encoded.clear()
    fourth = await put({"messages": forked, "n": 2}, {"messages": 3, "n": 2}, None)
    assert not any(v is forked for v in encoded)
    assert await state(fourth) == {"messages": forked, "n": 2}
    await assert_references(saver, "c")


def test_the_channel_memo_keeps_few_namespaces_and_bounded_bytes() -> None:
    memo = ops.ChannelMemo(threads=2, size=100)

    def kept(n: int) -> dict:
        return {"m": intern.Remembered(1, object(), intern.Unit({}, frozenset(), {}, n))}

    memo.keep("a", "", kept(40))
    memo.keep("b", "", kept(40))
    memo.keep("a", "", kept(50))  # in place of a's last: 90 bytes
    assert memo.get("b", "") and memo.get("a", "")
    memo.keep("c", "", kept(10))  # 3 namespaces: "b", put longest ago, goes
    assert not memo.get("b", "") and memo.get("c", "")
    memo.keep("a", "sub", kept(60))  # 120 bytes: "a" goes
    assert not memo.get("a", "") and memo.get("a", "sub")
    memo.keep("d", "", kept(101))  # more than the memo holds: not kept
    assert not memo.get("d", "") and memo.get("a", "sub")


async def test_a_thread_read_again_copies_values_its_reads_decoded(saver: Any, api: str) -> None:
    await chat(saver, api, "c", 40)
    first = await call(saver, api, "get_tuple", cfg("c"))
    assert "c" not in saver.value_caches._decoded  # a first read hands out what it decodes
    second = await call(saver, api, "get_tuple", cfg("c"))
    assert "c" not in saver.value_caches._decoded  # as does the first to find its texts
    third = await call(saver, api, "get_tuple", cfg("c"))
    decoded, _ = saver.value_caches._decoded["c"]  # kept from the third read on
    assert decoded._runs and decoded is saver.value_caches.take_decoded("c", decoded.raw)
    saver.value_caches.keep_decoded("c", decoded)
    assert messages_of(third) == messages_of(second) == messages_of(first)
    assert messages_of(third)[0] is not messages_of(second)[0]
    messages_of(first)[2].content = "changed"
    messages_of(second)[3].content = "changed"
    messages_of(third)[0].content = "changed"
    messages_of(third)[1].additional_kwargs["x"] = 1
    messages_of(third).append(message(99))
    third.checkpoint["channel_values"]["system"] += "!"
    fourth = await call(saver, api, "get_tuple", cfg("c"))
    assert messages_of(fourth) == [message(i) for i in range(40)]
    assert fourth.checkpoint["channel_values"]["system"] == "Be brief. " * 40


def test_value_caches_keep_few_threads_decoded() -> None:
    caches = ops.ValueCaches(chars=400, decoded_threads=2)
    for tid, size in (("a", 60), ("b", 10), ("c", 10)):
        texts = caches.get(tid)
        texts.add("x", "6" * size)
        assert caches.take_decoded(tid, texts) is None  # the first read with texts: alone
        taken = caches.take_decoded(tid, texts)
        assert taken is not None
        assert caches.take_decoded(tid, texts) is not taken  # in use: another one
        caches.keep_decoded(tid, taken)
        assert caches.take_decoded(tid, texts) is taken
        caches.keep_decoded(tid, taken)
    assert list(caches._decoded) == ["b", "c"]  # two threads
    texts = caches.get("d")
    texts.add("x", "1" * 95)
    caches.keep_decoded("d", ValueCache(raw=texts))
    assert list(caches._decoded) == ["d"]  # 105 characters: over a quarter of 400


def test_a_thread_whose_kept_values_go_unused_decodes_alone_for_longer_each_time() -> None:
    """More threads read in turn than are kept decoded: a thread whose kept values were
    dropped before its next read decodes alone for 1, 2, 4, ... reads (planning copies
    that are never used costs as much as decoding); once used, back to 1."""
    caches = ops.ValueCaches(decoded_threads=1)
    texts, other = caches.get("a"), caches.get("other")
    texts.add("x", "1" * 10)
    other.add("y", "2" * 10)

    def read(evict: bool = True) -> bool:  # as get_tuple: take, decode, keep what it took
        taken = caches.take_decoded("a", texts)
        if taken is not None:
            caches.keep_decoded("a", taken)
        if evict:  # another thread's read keeps its values: "a"'s are dropped
            caches.keep_decoded("other", ValueCache(raw=other))
        return taken is not None

    kept = [read() for _ in range(11)] + [read(evict=False)]
    assert kept == [False, True, False, True, False, False, True] + [False] * 4 + [True]
    assert [read(evict=False), read()] == [True, True]  # used: the backoff is 1 again
    assert [read(), read()] == [False, True]


async def test_missing_or_looping_values_are_clear_errors(saver: Any, api: str) -> None:
    await chat(saver, api, "c", 20)
    (victim,) = (await raw(saver, "SELECT min(hash) FROM checkpoint_values"))[0]
    (value,) = (await raw(saver, "SELECT value FROM checkpoint_values WHERE hash = ?", (victim,)))[
        0
    ]
    await raw(saver, "DELETE FROM checkpoint_values WHERE hash = ?", (victim,))
    with pytest.raises(DecodeError, match="missing"):
        await listing(saver, api, cfg("c"))
    problems = await call(saver, api, "check_references")
    assert any(victim in p and "missing" in p for p in problems)
    looping = orjson.dumps([{SPLICE: victim}]).decode()
    await raw(
        saver,
        "INSERT INTO checkpoint_values (thread_id, hash, value) VALUES (?, ?, ?)",
        ("c", victim, looping),
    )
    with pytest.raises(DecodeError, match="refers to itself"):
        await listing(saver, api, cfg("c"))
    assert value != looping


class Notes(TypedDict):
    notes: Annotated[
        list,
        DeltaChannel(
            lambda a, b: [*a, *(x for batch in b for x in batch)], list, snapshot_frequency=3
        ),
    ]
    n: int


def build_notes_graph(checkpointer: Any) -> Any:
    def write(state: Notes) -> dict:
        n = state.get("n", 0)
        return {"notes": [f"note {n}: " + "observed route flap on 10.0.0.0/8. " * 8], "n": n + 1}

    graph = StateGraph(Notes)
    graph.add_node("write", write)
    graph.add_edge(START, "write")
    graph.add_edge("write", END)
    return graph.compile(checkpointer=checkpointer)


async def test_delta_channel_with_large_items(saver: Any, api: str) -> None:
    """DeltaChannel snapshots are interned like any list; prune keeps what they need."""
    ours, ref = build_notes_graph(saver), build_notes_graph(InMemorySaver())
    config = {"configurable": {"thread_id": "notes"}}
    for turn in range(7):
        await invoke(ours, {"notes": [f"input {turn} " * 20]}, config, api)
        await invoke(ref, {"notes": [f"input {turn} " * 20]}, config, api)
    assert (await get_state(ours, config, api)).values == (await get_state(ref, config, api)).values
    assert await raw(saver, "SELECT count(*) FROM checkpoint_values") != [(0,)]
    await call(saver, api, "prune", ["notes"], strategy="keep_latest")
    await assert_references(saver)
    assert (await get_state(ours, config, api)).values == (await get_state(ref, config, api)).values
    await invoke(ours, {"notes": ["after"]}, config, api)
    await invoke(ref, {"notes": ["after"]}, config, api)
    assert (await get_state(ours, config, api)).values == (await get_state(ref, config, api)).values


# --------------------------------------------------------------------------------------
# Upgrading a database written before interning
# --------------------------------------------------------------------------------------

LEGACY_ODD = {"$r": "not-a-reference-at-all"}  # stored as is before "$r" keys were escaped


def _legacy_rows() -> list[tuple]:
    rows = []
    parent = None
    for n in range(1, 4):
        cp = empty_checkpoint()
        body = {
            "v": 4,
            "ts": cp["ts"],
            "channel_values": {
                "messages": CODEC.encode([message(i) for i in range(n)]),
                "odd": LEGACY_ODD,
            },
            "channel_versions": {"messages": n},
            "versions_seen": {},
            "updated_channels": None,
        }
        ts = f"1ef00000-0000-6000-8000-00000000000{n}"
        rows.append(("legacy", "", ts, parent, records.dump(body), f'{{"step": {n}}}'))
        parent = ts
    return rows


async def make_v1_database(flavour: str, where: Any) -> None:
    """A database as version 1 of the schema left it, with three checkpoints."""
    dialect = SQLITE if flavour.startswith("sqlite") else None
    insert = (
        "INSERT INTO checkpoints (thread_id, checkpoint_ns, thread_ts, parent_ts, checkpoint, "
        "metadata) VALUES (?, ?, ?, ?, ?, ?)"
    )
    if dialect is not None:
        path = Path(where) / ("sync.db" if flavour == "sqlite-sync" else "async.db")
        with sqlite3.connect(path) as conn:
            conn.execute(SQLITE.create_version_table)
            for sql in SQLITE.migrations[0]:
                conn.execute(sql)
            conn.execute(SQLITE.insert_version, {"version": 1})
            conn.executemany(insert, _legacy_rows())
        return
    from langgraph_store_dual.postgres.dialect import POSTGRES

    with psycopg.connect(where, autocommit=True) as conn:
        conn.execute(POSTGRES.create_version_table)
        for sql in POSTGRES.migrations[0]:
            conn.execute(sql)
        conn.execute(POSTGRES.insert_version, {"version": 1})
        for row in _legacy_rows():
            conn.execute(insert.replace("?", "%s"), row)


async def test_upgrade_from_version_1(
    flavour: str, api: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    where = request.getfixturevalue("pg_clean_url") if flavour.startswith("postgres") else tmp_path
    await make_v1_database(flavour, where)
    async with open_saver(flavour, where) as saver:
        old = await listing(saver, api, cfg("legacy"))
        assert [len(messages_of(t)) for t in old] == [3, 2, 1]
        assert old[0].checkpoint["channel_values"]["odd"] == LEGACY_ODD
        assert await raw(saver, "SELECT version FROM schema_version") == versions(saver.dialect)
        # the thread goes on, interned; old and new snapshots read alike, in code and SQL
        values = {"messages": [message(i) for i in range(30)], "odd": LEGACY_ODD}
        await put_state(saver, api, "legacy", values, old[0].checkpoint["id"])
        new = await call(saver, api, "get_tuple", cfg("legacy"))
        assert new.checkpoint["channel_values"] == values
        assert await raw(saver, "SELECT count(*) FROM checkpoint_values") != [(0,)]
        rows = await raw(
            saver, "SELECT CAST(checkpoint AS TEXT) FROM checkpoints_expanded ORDER BY thread_ts"
        )
        assert [len(orjson.loads(t)["channel_values"]["messages"]) for (t,) in rows] == [
            1,
            2,
            3,
            30,
        ]
        await call(saver, api, "prune", ["legacy"])
        await assert_references(saver)
        assert (await call(saver, api, "get_tuple", cfg("legacy"))).checkpoint == new.checkpoint


async def _refs_of_latest(saver: Any, thread_id: str) -> list[str]:
    ((refs,),) = await raw(
        saver,
        "SELECT refs FROM checkpoints WHERE thread_id = ? ORDER BY thread_ts DESC LIMIT 1",
        (thread_id,),
    )
    return refs.split() if is_postgres(saver) else orjson.loads(refs)


async def test_a_read_is_one_statement_when_the_snapshot_lists_every_value_it_needs(
    saver: Any, api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot needing few values lists them all: its read looks them up in one
    statement, with no recursion. One listing only those it refers to directly (a long
    thread's, or one stored before snapshots listed their closure) is read in two, alike."""
    await chat(saver, api, "closed", 40)
    monkeypatch.setattr(intern, "CLOSED_MAX", 2)
    await chat(saver, api, "direct", 40)
    closed, direct = await _refs_of_latest(saver, "closed"), await _refs_of_latest(saver, "direct")
    assert len(direct) == 2 < len(closed) <= CLOSED_MAX  # the messages' chain, the system prompt
    assert set(direct) < set(closed)
    one = read_statements(saver)
    for thread_id, statements in (("closed", one), ("direct", one + 1)):
        async with probing(saver) as probe:
            probe.active = True
            got = await call(saver, api, "get_tuple", cfg(thread_id))
            probe.active = False
        selects = [s for s in probe.statements if "SELECT" in s.upper()]
        assert len(selects) == statements, selects
        assert not any("RECURSIVE" in s.upper() for s in selects[:one])
        assert messages_of(got) == [message(i) for i in range(40)]
        assert got.checkpoint["channel_values"]["system"] == "Be brief. " * 40
    await assert_references(saver)


async def test_a_snapshot_listing_part_of_what_it_needs_reads_whole_and_is_reported(
    saver: Any, api: str
) -> None:
    """A tampered list of what a snapshot needs, missing a value one of the others refers
    to: the read still finds it, and `check_references` names the snapshot."""
    await chat(saver, api, "c", 40)
    refs = await _refs_of_latest(saver, "c")
    ((doc,),) = await raw(
        saver,
        "SELECT checkpoint FROM checkpoints WHERE thread_id = ? AND refs IS NOT NULL"
        " ORDER BY thread_ts DESC LIMIT 1",
        ("c",),
    )
    direct = set(refs_in(doc if isinstance(doc, dict) else orjson.loads(doc)))
    dropped = min(set(refs) - direct)
    kept = [r for r in refs if r != dropped]

    def column(hashes: list[str]) -> str:
        return " ".join(hashes) if is_postgres(saver) else orjson.dumps(hashes).decode()

    await raw(saver, "UPDATE checkpoints SET refs = ? WHERE refs = ?", (column(kept), column(refs)))
    got = await call(saver, api, "get_tuple", cfg("c"))
    assert messages_of(got) == [message(i) for i in range(40)]
    problems = await call(saver, api, "check_references")
    assert len(problems) == 1 and dropped in problems[0], problems
