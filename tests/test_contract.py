"""The checkpointer contract, checked on every saver flavour and with both method families.

Every test takes the ``flavour`` (through ``saver`` / ``saver_factory``) and, where it
calls saver methods, the ``api``: "sync" calls the blocking methods from a worker thread
(``asyncio.to_thread``), "async" awaits the ``a*`` methods. Direct SQL (to look at rows,
tamper with them or count statements) goes through ``raw`` and the probes below, which
know the four saver classes.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import math
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import ormsgpack
import pytest
from helpers import (
    assert_identical,
    build_delta_graph,
    call,
    cfg,
    count_rows,
    count_writes,
    dump_db,
    expect_config_error,
    get_history,
    get_state,
    invoke,
    is_postgres,
    listing,
    make_checkpoint,
    put,
    raw,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT, RESUME, SCHEDULED
from probes import probing
from storage import assert_references

from langgraph_store_dual import (
    ConfigError,
    DecodeError,
    SchemaVersionError,
    WrongThreadError,
    from_url,
)
from langgraph_store_dual.postgres.dialect import POSTGRES
from langgraph_store_dual.saver import STREAM_CHUNK
from langgraph_store_dual.sqlite.dialect import SQLITE

assert len(SQLITE.migrations) == len(POSTGRES.migrations)
#: schema_version after setup() on an empty database.
ALL_VERSIONS = [(v,) for v in range(1, len(SQLITE.migrations) + 1)]

# --------------------------------------------------------------------------------------
# What listed tuples show
# --------------------------------------------------------------------------------------


def ids(tuples: list[CheckpointTuple]) -> list[str]:
    return [t.config["configurable"]["checkpoint_id"] for t in tuples]


def summary(tuples: list[CheckpointTuple]) -> list[tuple]:
    """Everything observable about listed tuples, for before/after comparisons."""
    return [
        (
            t.config["configurable"]["thread_id"],
            t.config["configurable"]["checkpoint_ns"],
            t.config["configurable"]["checkpoint_id"],
            None if t.parent_config is None else t.parent_config["configurable"]["checkpoint_id"],
            repr(t.checkpoint),
            repr(t.metadata),
            repr(t.pending_writes),
        )
        for t in tuples
    ]


# --------------------------------------------------------------------------------------
# 1. put / get_tuple / list
# --------------------------------------------------------------------------------------

META_1 = {
    "source": "input",
    "step": -1,
    "parents": {},
    "flag": True,
    "none": None,
    "score": 1.5,
    "nested": {"a": {"b": [1, 2], "c": "x"}},
    "tags": ["x", "y"],
}
META_2 = {
    "source": "loop",
    "step": 0,
    "parents": {},
    "flag": False,
    "score": 2.5,
    "nested": {"a": {"b": [1, 2]}},
    "tags": ["x"],
}
META_3 = {"source": "loop", "step": 1, "parents": {}, "flag": True, "none": "not none"}


async def test_put_get_list_round_trip(saver: Any, api: str) -> None:
    _, c1 = await put(saver, api, "t1", {"a": 1, "msgs": ["hi"]}, metadata=META_1)
    c2_cfg, c2 = await put(saver, api, "t1", {"a": 2}, parent=c1["id"], metadata=META_2)
    c3_cfg, c3 = await put(saver, api, "t1", {"a": 3}, parent=c2["id"], metadata=META_3)
    sub_cfg, sub = await put(saver, api, "t1", {"s": 1}, ns="child:1", metadata=META_2)
    other_cfg, other = await put(saver, api, "t2", {"a": 9}, metadata=META_1)
    await call(saver, api, "put_writes", c3_cfg, [("a", 4), ("msgs", "w")], "task-1", "p")

    # put returns the config of the stored checkpoint
    assert c2_cfg == cfg("t1", c2["id"])
    assert sub_cfg == cfg("t1", sub["id"], "child:1")

    # latest of a thread and namespace
    latest = await call(saver, api, "get_tuple", cfg("t1"))
    assert latest.config == cfg("t1", c3["id"])
    assert latest.checkpoint == c3
    assert latest.metadata == get_checkpoint_metadata(cfg("t1", c2["id"]), META_3)
    assert latest.parent_config == cfg("t1", c2["id"])
    assert latest.pending_writes == [("task-1", "a", 4), ("task-1", "msgs", "w")]
    # the namespace is part of the key: the newer child checkpoint is not "latest" of ""
    child = await call(saver, api, "get_tuple", cfg("t1", ns="child:1"))
    assert child.checkpoint == sub and child.parent_config is None
    assert await call(saver, api, "get_tuple", cfg("t1", ns="child:2")) is None
    assert await call(saver, api, "get_tuple", cfg("nope")) is None

    # by id, and by the legacy `thread_ts` alias
    by_id = await call(saver, api, "get_tuple", cfg("t1", c1["id"]))
    assert by_id.checkpoint == c1 and by_id.parent_config is None
    assert by_id.metadata == get_checkpoint_metadata(cfg("t1"), META_1)
    alias = {"configurable": {"thread_id": "t1", "checkpoint_ns": "", "thread_ts": c2["id"]}}
    by_ts = await call(saver, api, "get_tuple", alias)
    assert by_ts.checkpoint == c2
    assert by_ts.parent_config == cfg("t1", c1["id"])
    assert await call(saver, api, "get_tuple", cfg("t1", c1["id"], ns="child:1")) is None
    assert await call(saver, api, "get_tuple", cfg("t2", c1["id"])) is None

    # put with a thread_ts parent records the parent too
    _, c4 = await put(saver, api, "t3", {"a": 1})
    alias_parent = {"configurable": {"thread_id": "t3", "checkpoint_ns": "", "thread_ts": c4["id"]}}
    c5 = make_checkpoint({"a": 2})
    await call(saver, api, "put", alias_parent, c5, {"step": 1}, {"a": 1})
    assert (await call(saver, api, "get_tuple", cfg("t3"))).parent_config == cfg("t3", c4["id"])

    # list: newest first, namespaces, before, limit
    assert ids(await listing(saver, api, cfg("t1"))) == [c3["id"], c2["id"], c1["id"]]
    everything = await listing(saver, api, {"configurable": {"thread_id": "t1"}})
    assert ids(everything) == [sub["id"], c3["id"], c2["id"], c1["id"]]
    assert [t.checkpoint for t in everything] == [sub, c3, c2, c1]
    assert everything[1].pending_writes == latest.pending_writes
    assert ids(await listing(saver, api, cfg("t1", ns="child:1"))) == [sub["id"]]
    assert ids(await listing(saver, api, cfg("t1"), before=cfg("t1", c3["id"]))) == [
        c2["id"],
        c1["id"],
    ]
    assert ids(await listing(saver, api, cfg("t1"), before=alias)) == [c1["id"]]
    assert ids(await listing(saver, api, cfg("t1"), limit=2)) == [c3["id"], c2["id"]]
    assert ids(await listing(saver, api, cfg("t1"), limit=0)) == []
    assert ids(await listing(saver, api, cfg("t1", c2["id"]))) == [c2["id"]]
    assert ids(await listing(saver, api, cfg("t1"), before=cfg("t1", c2["id"]), limit=5)) == [
        c1["id"]
    ]
    all_ids = ids(await listing(saver, api, None))
    assert sorted(all_ids) == sorted(
        [c1["id"], c2["id"], c3["id"], sub["id"], other["id"], c4["id"], c5["id"]]
    )
    assert all_ids == sorted(all_ids, reverse=True)
    assert ids(await listing(saver, api, cfg("nope"))) == []
    assert other_cfg == cfg("t2", other["id"])


async def test_thread_ts_alias_returns_a_config_langgraph_can_read(saver: Any, api: str) -> None:
    """A tuple fetched through the legacy `thread_ts` key must still name its checkpoint
    where LangGraph looks for it (`get_checkpoint_id`), or time travel from the snapshot
    config it builds silently falls back to the latest checkpoint."""
    _, c1 = await put(saver, api, "t", {"a": 1})
    await put(saver, api, "t", {"a": 2}, parent=c1["id"])
    alias = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "thread_ts": c1["id"]}}
    got = await call(saver, api, "get_tuple", alias)
    assert got.checkpoint == c1
    assert get_checkpoint_id(got.config) == c1["id"]
    assert got.config["configurable"]["thread_id"] == "t"


FILTER_CASES: list[tuple[dict, list[str]]] = [
    ({"source": "loop"}, ["c3", "c2"]),
    ({"source": "input"}, ["c1"]),
    ({"step": -1}, ["c1"]),
    ({"step": 0}, ["c2"]),
    ({"flag": True}, ["c3", "c1"]),
    ({"flag": False}, ["c2"]),
    ({"none": None}, ["c1"]),
    ({"score": 1.5}, ["c1"]),
    ({"nested": {"a": {"b": [1, 2], "c": "x"}}}, ["c1"]),
    ({"nested": {"a": {"b": [1, 2]}}}, ["c2"]),  # exact, not containment
    ({"nested": {"a": {}}}, []),
    ({"tags": ["x", "y"]}, ["c1"]),
    ({"tags": ["x"]}, ["c2"]),
    ({"tags": ["y", "x"]}, []),
    ({"source": "loop", "step": 1}, ["c3"]),
    ({"source": "input", "step": 0}, []),
    ({"step": True}, []),  # a bool is not the int 1
    ({"flag": 1}, []),
    ({"step": "0"}, []),
    ({"missing": "x"}, []),
    ({}, ["c3", "c2", "c1"]),
]


async def test_list_filter_on_metadata(saver: Any, api: str) -> None:
    _, c1 = await put(saver, api, "t", {"a": 1}, metadata=META_1)
    _, c2 = await put(saver, api, "t", {"a": 2}, parent=c1["id"], metadata=META_2)
    _, c3 = await put(saver, api, "t", {"a": 3}, parent=c2["id"], metadata=META_3)
    await put(saver, api, "other", {"a": 1}, metadata=META_1)
    names = {c1["id"]: "c1", c2["id"]: "c2", c3["id"]: "c3"}
    problems = []
    for filter, expected in FILTER_CASES:
        got = [names[i] for i in ids(await listing(saver, api, cfg("t"), filter=filter))]
        if got != expected:
            problems.append(f"filter={filter!r}: got {got}, want {expected}")
        # without a thread the filter still applies (the other thread matches like c1)
        across = await listing(saver, api, None, filter=filter)
        if len(across) != len(expected) + ("c1" in expected):
            problems.append(f"filter={filter!r} across threads: {len(across)} tuples")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------
# 2. put_writes
# --------------------------------------------------------------------------------------


async def test_put_writes_index_rules_and_order(saver: Any, api: str) -> None:
    parent_cfg, _ = await put(saver, api, "t", {"a": 1})
    ref = InMemorySaver()
    ref_cfg = ref.put(cfg("t"), make_checkpoint({"a": 1}), {}, {"a": 1})

    calls: list[tuple[list[tuple[str, Any]], str, str]] = [
        ([("a", 1), ("b", 2)], "task-b", "~1"),
        ([("a", 10), ("b", 20), ("c", 30)], "task-b", "~1"),  # regular: never replaced
        ([(ERROR, "first error")], "task-e", "~2"),
        ([(ERROR, "second error")], "task-e", "~2"),  # special: replaced
        ([(INTERRUPT, "i1"), ("x", 1)], "task-i", "~0"),
        ([(INTERRUPT, "i2"), ("x", 2)], "task-i", "~0"),
        ([(SCHEDULED, "s1")], "task-s", ""),
        ([(SCHEDULED, "s2")], "task-s", ""),
        ([(RESUME, ["r1"])], "task-a", "~3"),
        ([(RESUME, ["r2"])], "task-a", "~3"),
        ([("z", "zz")], "task-0", "~0"),
        ([(ERROR, "e1"), ("y", 1), (ERROR, "e2")], "task-d", "~4"),  # last special wins
        ([("m", 1)], "task-a", "~3"),  # a resumed task's writes join its resume
        ([(ERROR, "late")], "task-b", "~1"),  # a special after regular writes
    ]
    for writes, task_id, task_path in calls:
        await call(saver, api, "put_writes", parent_cfg, writes, task_id, task_path)
        ref.put_writes(ref_cfg, writes, task_id, task_path)

    got = (await call(saver, api, "get_tuple", parent_cfg)).pending_writes
    want = ref.get_tuple(ref_cfg).pending_writes
    assert got == want
    as_dict = {(t, c): v for t, c, v in got}
    assert as_dict[("task-b", "a")] == 1 and as_dict[("task-b", "b")] == 2
    assert as_dict[("task-b", "c")] == 30  # a new idx is added
    assert as_dict[("task-e", ERROR)] == "second error"
    assert as_dict[("task-i", INTERRUPT)] == "i2"
    assert as_dict[("task-i", "x")] == 1
    assert as_dict[("task-s", SCHEDULED)] == "s2"
    assert as_dict[("task-a", RESUME)] == ["r2"]
    assert as_dict[("task-d", ERROR)] == "e2" and as_dict[("task-d", "y")] == 1
    # order: (task_path, task_id, idx), special channels carrying their negative idx
    keyed = []
    for writes, task_id, task_path in calls:
        for idx, (channel, _) in enumerate(writes):
            keyed.append(((task_path, task_id, WRITES_IDX_MAP.get(channel, idx)), task_id, channel))
    expected_order = []
    for _, task_id, channel in sorted(keyed, key=lambda k: writes_sort_key(*k[0])):
        if (task_id, channel) not in expected_order:
            expected_order.append((task_id, channel))
    assert [(t, c) for t, c, _ in got] == expected_order
    assert len(got) == 13

    # the listed tuple carries the same writes
    listed = await listing(saver, api, parent_cfg)
    assert listed[0].pending_writes == got
    # empty writes are a no-op
    await call(saver, api, "put_writes", parent_cfg, [], "task-x")
    assert (await call(saver, api, "get_tuple", parent_cfg)).pending_writes == got


WRITE_CHANNELS = st.sampled_from(["a", "b", ERROR, INTERRUPT, SCHEDULED, RESUME])
WRITE_CALLS = st.lists(
    st.tuples(
        st.lists(st.tuples(WRITE_CHANNELS, st.integers(0, 9)), min_size=1, max_size=4),
        st.sampled_from(["t1", "t2"]),
    ),
    max_size=6,
)


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_a_tasks_writes_over_several_calls_are_those_of_the_in_memory_saver(
    engine: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    # a task's writes share one row: each call merges into it in SQL
    url = request.getfixturevalue("pg_clean_url") if engine == "postgres" else None
    with from_url(url or f"sqlite:///{tmp_path / 'writes.db'}") as saver:

        @settings(max_examples=40, deadline=None)
        @given(WRITE_CALLS)
        def check(calls: list[tuple[list[tuple[str, int]], str]]) -> None:
            cp = make_checkpoint({"a": 0})
            stored = saver.put(cfg("w"), cp, {}, cp["channel_versions"])
            ref = InMemorySaver()
            ref_cfg = ref.put(cfg("w"), cp, {}, cp["channel_versions"])
            for writes, task_id in calls:
                saver.put_writes(stored, writes, task_id, f"~{task_id}")
                ref.put_writes(ref_cfg, writes, task_id, f"~{task_id}")
            got = saver.get_tuple(stored).pending_writes
            assert got == ref.get_tuple(ref_cfg).pending_writes
            assert [t.pending_writes for t in saver.list(stored)] == [got]

        check()


# --------------------------------------------------------------------------------------
# 3. Values JSON cannot hold
# --------------------------------------------------------------------------------------

PARIS = ZoneInfo("Europe/Paris")


def awkward_values() -> dict[str, Any]:
    return {
        "nul": "a\x00b",
        "only_nul": "\x00",
        "surrogate": "x\ud800y",
        "lone_low": "\udfff",
        "mixed_text": "é\x00\ud83d😀",
        "nul_key": {"k\x00ey": 1, "plain": "ok"},
        "surrogate_key": {"\ud800": 2},
        "tagged_dict": {"$t": "tup", "v": [1, 2]},  # a user dict that looks like an envelope
        "tagged_dict2": {"$t": "dc", "c": "os:system", "v": {}},
        "int_keys": {1: "a", 2: "b"},
        "tuple_keys": {(1, "x"): "t"},
        "nan": math.nan,
        "inf": math.inf,
        "ninf": -math.inf,
        "negzero": -0.0,
        "zero": 0.0,
        "big": 2**64 + 1,
        "neg_big": -(2**70),
        "huge": 10**40,
        "i64max": 2**63 - 1,
        "i64min": -(2**63),
        "bytes": b"\x00\xff\x80binary",
        "empty_bytes": b"",
        "bytearray": bytearray(b"\x00ba"),
        "tuple": (1, "two", (3.0, -0.0)),
        "empty_tuple": (),
        "set": {1, 2, 3},
        "frozenset": frozenset({"a", "b"}),
        "dt_zoneinfo": datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=PARIS),
        "dt_zoneinfo_fold0": datetime(2024, 10, 27, 2, 30, fold=0, tzinfo=PARIS),
        "dt_utc": datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=timezone.utc),
        "dt_offset": datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
        "dt_naive": datetime(2024, 1, 1, 0, 0),
        "date": date(1999, 12, 31),
        "time_tz": time(23, 59, tzinfo=ZoneInfo("Asia/Tokyo")),
        "timedelta": timedelta(days=-1, seconds=5, microseconds=7),
        "zone": PARIS,
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "list_mixed": [None, True, False, 0, 1, 1.5, "s", [], {}, ()],
        "nested": {"deep": [{"x": (1, {2}), "y": [math.inf, b"\x00"]}]},
        "empty_str": "",
        "none": None,
    }


async def test_awkward_values_round_trip(saver: Any, api: str) -> None:
    values = awkward_values()
    metadata = {
        "source": "loop",
        "step": 3,
        "parents": {},
        "top_nul": "drop\x00ped",  # LangGraph itself strips NUL from top-level strings
        "awkward": awkward_values(),
    }
    stored, cp = await put(saver, api, "t", values, metadata=metadata)
    writes = [(f"w_{k}", v) for k, v in awkward_values().items()]
    writes.append(("all", awkward_values()))
    await call(saver, api, "put_writes", stored, writes, "task-é", "path")

    got = await call(saver, api, "get_tuple", stored)
    assert_identical(got.checkpoint["channel_values"], values, "channel_values")
    assert got.checkpoint["channel_versions"] == cp["channel_versions"]
    expected_meta = get_checkpoint_metadata(cfg("t"), metadata)
    assert expected_meta["top_nul"] == "dropped"
    assert_identical(got.metadata, expected_meta, "metadata")
    assert [(t, c) for t, c, _ in got.pending_writes] == [("task-é", c) for c, _ in writes]
    for (_, channel, value), (_, want) in zip(got.pending_writes, writes, strict=True):
        assert_identical(value, want, f"write {channel}")
    # list decodes the same way
    (listed,) = await listing(saver, api, cfg("t"))
    assert_identical(listed.checkpoint["channel_values"], values, "listed channel_values")
    assert_identical(listed.metadata, expected_meta, "listed metadata")
    assert repr(listed.pending_writes) == repr(got.pending_writes)


async def test_integral_floats_keep_their_type(saver: Any, api: str) -> None:
    """Floats that JSON writes with an exponent (1e16) must not come back as ints."""
    floats = [1e16, -1e16, 1.2345678901234568e17, 2.0**63, 2.0**64, 1e300, 5e-324, 1.0, 0.1]
    stored, _ = await put(
        saver, api, "t", {"floats": floats}, metadata={"step": 1, "f": floats, "g": 1e16}
    )
    await call(saver, api, "put_writes", stored, [("floats", floats)], "task")
    got = await call(saver, api, "get_tuple", stored)
    assert_identical(got.checkpoint["channel_values"]["floats"], floats, "channel_values")
    assert_identical(got.pending_writes[0][2], floats, "write")
    assert_identical(got.metadata["f"], floats, "metadata")
    assert_identical(got.metadata["g"], 1e16, "metadata")


async def test_dict_key_order_round_trips(saver: Any, api: str) -> None:
    """Python dicts are ordered; a state dict must come back in its insertion order."""
    ordered = {"zeta": 1, "alpha": 2, "mid": 3, "b": 4, "aa": {"y": 1, "x": 2}}
    stored, _ = await put(saver, api, "t", {"d": ordered})
    await call(saver, api, "put_writes", stored, [("d", ordered)], "task")
    got = await call(saver, api, "get_tuple", stored)
    value = got.checkpoint["channel_values"]["d"]
    assert list(value) == list(ordered)
    assert list(value["aa"]) == ["y", "x"]
    assert list(got.pending_writes[0][2]) == list(ordered)


# --------------------------------------------------------------------------------------
# 4. copy_thread, delete_for_runs, delete_thread, prune
# --------------------------------------------------------------------------------------


async def build_thread(saver: Any, api: str, thread_id: str, *, run: str | None = None) -> list:
    """A small thread: 3 checkpoints in "" with writes, 2 in a child namespace."""
    configs = []
    parent = None
    for i in range(3):
        meta = {"source": "loop", "step": i, "parents": {}}
        if run is not None:
            meta["run_id"] = run
        stored, cp = await put(saver, api, thread_id, {"v": i}, parent=parent, metadata=meta)
        await call(saver, api, "put_writes", stored, [("v", i + 1), (ERROR, "e")], f"task{i}")
        parent = cp["id"]
        configs.append(stored)
    parent = None
    for i in range(2):
        stored, cp = await put(saver, api, thread_id, {"s": i}, parent=parent, ns="sub:1")
        await call(saver, api, "put_writes", stored, [("s", i)], "subtask")
        parent = cp["id"]
        configs.append(stored)
    return configs


def retarget(tuples: list[CheckpointTuple], thread_id: str) -> list[tuple]:
    out = []
    for row in summary(tuples):
        out.append((thread_id, *row[1:]))
    return out


async def test_copy_thread(saver: Any, api: str) -> None:
    await build_thread(saver, api, "src")
    await build_thread(saver, api, "bystander")
    src_before = await listing(saver, api, {"configurable": {"thread_id": "src"}})
    bystander_before = summary(
        await listing(saver, api, {"configurable": {"thread_id": "bystander"}})
    )
    rows_before = await count_writes(saver, "src")

    await call(saver, api, "copy_thread", "src", "dst")

    dst = await listing(saver, api, {"configurable": {"thread_id": "dst"}})
    assert len(dst) == 5
    assert summary(dst) == retarget(src_before, "dst")
    # parents point inside the copy, namespaces kept
    latest = await call(saver, api, "get_tuple", cfg("dst"))
    assert latest.parent_config["configurable"]["thread_id"] == "dst"
    parent = await call(saver, api, "get_tuple", latest.parent_config)
    assert parent is not None and parent.checkpoint["channel_values"] == {"v": 1}
    child = await call(saver, api, "get_tuple", cfg("dst", ns="sub:1"))
    assert child.checkpoint["channel_values"] == {"s": 1}
    assert await count_writes(saver, "dst") == rows_before
    # the source and other threads are unchanged
    src_after = await listing(saver, api, {"configurable": {"thread_id": "src"}})
    assert summary(src_after) == summary(src_before)
    assert summary(await listing(saver, api, {"configurable": {"thread_id": "bystander"}})) == (
        bystander_before
    )
    # the copy is independent: writing to it does not touch the source
    await put(saver, api, "dst", {"v": 99}, parent=latest.checkpoint["id"])
    assert summary(await listing(saver, api, {"configurable": {"thread_id": "src"}})) == summary(
        src_before
    )
    await assert_references(saver)


async def test_delete_for_runs(saver: Any, api: str) -> None:
    run_a, run_b = str(uuid.uuid4()), uuid.uuid4()
    await build_thread(saver, api, "ta", run=run_a)
    await build_thread(saver, api, "tb", run=str(run_b))
    stored, _ = await put(saver, api, "tc", {"v": 1}, metadata={"step": 0})  # no run
    await call(saver, api, "put_writes", stored, [("v", 2)], "task")
    tb_before = summary(await listing(saver, api, {"configurable": {"thread_id": "tb"}}))

    await call(saver, api, "delete_for_runs", [run_a])
    remaining = await listing(saver, api, {"configurable": {"thread_id": "ta"}})
    assert [t.checkpoint["channel_values"] for t in remaining] == [{"s": 1}, {"s": 0}]
    assert all("run_id" not in t.metadata for t in remaining)
    assert (
        await raw(
            saver,
            "SELECT count(*) FROM checkpoint_writes WHERE thread_id = ? AND checkpoint_ns = ''",
            ("ta",),
        )
    )[0][0] == 0
    assert summary(await listing(saver, api, {"configurable": {"thread_id": "tb"}})) == tb_before
    assert len(await listing(saver, api, cfg("tc"))) == 1

    await call(saver, api, "delete_for_runs", [])  # no-op
    await call(saver, api, "delete_for_runs", [run_b])  # a UUID works as well
    assert len(await listing(saver, api, {"configurable": {"thread_id": "tb"}})) == 2
    assert (await call(saver, api, "get_tuple", cfg("tc"))).pending_writes == [("task", "v", 2)]
    await assert_references(saver)


async def test_delete_thread(saver: Any, api: str) -> None:
    await build_thread(saver, api, "gone")
    await build_thread(saver, api, "kept")
    kept_before = summary(await listing(saver, api, {"configurable": {"thread_id": "kept"}}))

    await call(saver, api, "delete_thread", "gone")

    assert await listing(saver, api, {"configurable": {"thread_id": "gone"}}) == []
    assert await call(saver, api, "get_tuple", cfg("gone", ns="sub:1")) is None
    assert await count_rows(saver, "checkpoints", "gone") == 0
    assert await count_writes(saver, "gone") == 0
    assert (
        summary(await listing(saver, api, {"configurable": {"thread_id": "kept"}})) == kept_before
    )
    await call(saver, api, "delete_thread", "never-existed")  # no error
    await assert_references(saver)


async def test_prune(saver: Any, api: str) -> None:
    for thread_id in ("p1", "p2", "keep", "del"):
        await build_thread(saver, api, thread_id)
    keep_before = summary(await listing(saver, api, {"configurable": {"thread_id": "keep"}}))
    latest = {t: await call(saver, api, "get_tuple", cfg(t)) for t in ("p1", "p2")}

    await call(saver, api, "prune", ["p1", "p2"], strategy="keep_latest")

    for thread_id in ("p1", "p2"):
        left = await listing(saver, api, {"configurable": {"thread_id": thread_id}})
        # the latest checkpoint of each namespace, with its writes
        assert [t.checkpoint["channel_values"] for t in left] == [{"s": 1}, {"v": 2}]
        assert left[1].pending_writes == latest[thread_id].pending_writes
        assert left[1].checkpoint == latest[thread_id].checkpoint
        assert await count_writes(saver, thread_id) == 3
    await call(saver, api, "prune", ["p1"])  # default keep_latest, idempotent
    assert len(await listing(saver, api, {"configurable": {"thread_id": "p1"}})) == 2

    await call(saver, api, "prune", ["del"], strategy="delete")
    assert await listing(saver, api, {"configurable": {"thread_id": "del"}}) == []
    assert await count_writes(saver, "del") == 0
    assert (
        summary(await listing(saver, api, {"configurable": {"thread_id": "keep"}})) == keep_before
    )
    await call(saver, api, "prune", [], strategy="delete")
    await call(saver, api, "prune", ["unknown-thread"])
    await assert_references(saver)


# --------------------------------------------------------------------------------------
# 5. DeltaChannel: history, and a prune that keeps the state reconstructible
# --------------------------------------------------------------------------------------


def norm_delta(history: Any) -> dict:
    return {
        ch: {
            "writes": [(c, v) for _, c, v in entry["writes"]],
            "seed": repr(entry.get("seed", "<no seed>")),
        }
        for ch, entry in history.items()
    }


async def test_delta_channel_history_and_safe_prune(saver: Any, api: str) -> None:
    ours, ref = build_delta_graph(saver), build_delta_graph(InMemorySaver())
    config = {"configurable": {"thread_id": "delta"}}
    for turn in range(4):
        await invoke(ours, {"items": [f"in{turn}"]}, config, api)
        await invoke(ref, {"items": [f"in{turn}"]}, config, api)

    state = await get_state(ours, config, api)
    ref_state = await get_state(ref, config, api)
    assert state.values == ref_state.values
    assert state.values["items"] == [
        "in0", "a0", "in1", "a2", "in2", "a4", "in3", "a6"
    ]  # fmt: skip

    # the delta history, at every checkpoint of the thread, equals InMemorySaver's
    history = await get_history(ours, config, api)
    ref_history = await get_history(ref, config, api)
    assert [s.values for s in history] == [s.values for s in ref_history]
    assert len(history) == 16
    for snap, ref_snap in zip(history, ref_history, strict=True):
        got = await call(
            saver, api, "get_delta_channel_history", config=snap.config, channels=["items", "n"]
        )
        want = ref.checkpointer.get_delta_channel_history(
            config=ref_snap.config, channels=["items", "n"]
        )
        assert norm_delta(got) == norm_delta(want), snap.metadata
    head = await call(saver, api, "get_delta_channel_history", config=config, channels=["items"])
    assert head["items"]["seed"].value == ["in0", "a0", "in1", "a2", "in2", "a4"]
    assert [v for _, _, v in head["items"]["writes"]] == [["in3"], ["a6"]]
    assert await call(saver, api, "get_delta_channel_history", config=config, channels=[]) == {}
    empty = await call(
        saver, api, "get_delta_channel_history", config=cfg("no-such-thread"), channels=["items"]
    )
    assert empty == {"items": {"writes": []}}

    # a copy reconstructs the same state
    await call(saver, api, "copy_thread", "delta", "delta-copy")
    copy_config = {"configurable": {"thread_id": "delta-copy"}}
    assert (await get_state(ours, copy_config, api)).values == state.values

    # prune keeps the head plus the ancestors back to the last snapshot of `items`
    latest = await call(saver, api, "get_tuple", config)
    assert latest.metadata["counters_since_delta_snapshot"]["items"][0] > 0  # not a snapshot
    before = await listing(saver, api, config)
    await call(saver, api, "prune", ["delta"], strategy="keep_latest")
    after = await listing(saver, api, config)
    assert 1 < len(after) < len(before)
    assert ids(after) == ids(before)[: len(after)]
    assert "items" in after[-1].checkpoint["channel_values"]  # the snapshot is kept
    pruned = await get_state(ours, config, api)
    assert pruned.values == state.values
    assert norm_delta(
        await call(saver, api, "get_delta_channel_history", config=config, channels=["items"])
    ) == norm_delta(head)

    # the pruned thread carries on exactly like the unpruned reference
    for turn in range(4, 6):
        await invoke(ours, {"items": [f"in{turn}"]}, config, api)
        await invoke(ref, {"items": [f"in{turn}"]}, config, api)
        assert (await get_state(ours, config, api)).values == (
            await get_state(ref, config, api)
        ).values
    # the copy was not touched by the prune
    assert len(await listing(saver, api, copy_config)) == len(before)
    await assert_references(saver)


# --------------------------------------------------------------------------------------
# 6. Bad input
# --------------------------------------------------------------------------------------

NO_THREAD: list[tuple[str, dict]] = [
    ("no-configurable", {}),
    ("empty-configurable", {"configurable": {}}),
    ("thread-id-none", {"configurable": {"thread_id": None}}),
    ("thread-id-empty", {"configurable": {"thread_id": ""}}),
    ("thread-id-list", {"configurable": {"thread_id": ["t"]}}),
]


async def _seed_for_errors(saver: Any, api: str) -> Any:
    await build_thread(saver, api, "t")
    return await listing(saver, api, None), await dump_db(saver)


async def _assert_unchanged(saver: Any, api: str, before: Any) -> None:
    listed, dumped = before
    assert summary(await listing(saver, api, None)) == summary(listed)
    assert await dump_db(saver) == dumped


async def test_missing_thread_id(saver: Any, api: str) -> None:
    before = await _seed_for_errors(saver, api)
    problems = []
    for name, config in NO_THREAD:
        with_id = {
            **config,
            "configurable": {**config.get("configurable", {}), "checkpoint_id": "x"},
        }
        attempts = {
            "get_tuple": call(saver, api, "get_tuple", config),
            "put": call(saver, api, "put", config, make_checkpoint({"a": 1}), {}, {"a": 1}),
            "put_writes": call(saver, api, "put_writes", with_id, [("a", 1)], "task"),
            "list": listing(saver, api, config),
            "delta": call(saver, api, "get_delta_channel_history", config=config, channels=["a"]),
        }
        for method, attempt in attempts.items():
            problem = await expect_config_error(attempt, "thread_id", f"{method} [{name}]")
            if problem:
                problems.append(problem)
    assert not problems, "\n".join(problems)
    await _assert_unchanged(saver, api, before)


BAD_CALLS: list[tuple[str, str, tuple, dict, str]] = [
    ("writes-no-id", "put_writes", (cfg("t"), [("a", 1)], "task"), {}, "checkpoint_id"),
    ("filter-list", "list", (cfg("t"),), {"filter": ["source"]}, "filter"),
    ("filter-str", "list", (cfg("t"),), {"filter": "source"}, "filter"),
    ("filter-int-key", "list", (cfg("t"),), {"filter": {1: "x"}}, "filter"),
    ("limit-str", "list", (cfg("t"),), {"limit": "2"}, "limit"),
    ("limit-float", "list", (cfg("t"),), {"limit": 1.5}, "limit"),
    ("limit-bool", "list", (cfg("t"),), {"limit": True}, "limit"),
    ("before-bad", "list", (cfg("t"),), {"before": {"configurable": {}}}, "checkpoint_id"),
    ("prune-strategy", "prune", (["t"],), {"strategy": "oldest"}, "strategy"),
    ("copy-to-itself", "copy_thread", ("t", "t"), {}, "different"),
    ("delete-none", "delete_thread", (None,), {}, "thread_id"),
    ("copy-to-none", "copy_thread", ("t", None), {}, "thread_id"),
    ("prune-none", "prune", ([None],), {}, "thread_id"),
]


async def test_bad_arguments(saver: Any, api: str) -> None:
    before = await _seed_for_errors(saver, api)
    problems = []
    for name, method, args, kwargs, needle in BAD_CALLS:
        if method == "list":
            attempt = listing(saver, api, *args, **kwargs)
        else:
            attempt = call(saver, api, method, *args, **kwargs)
        problem = await expect_config_error(attempt, needle, name)
        if problem:
            problems.append(problem)
    assert not problems, "\n".join(problems)
    await _assert_unchanged(saver, api, before)


async def test_negative_limit_is_refused_or_empty(saver: Any, api: str) -> None:
    """InMemorySaver yields nothing for limit <= 0; no engine may return all rows or fail."""
    before = await _seed_for_errors(saver, api)
    try:
        got = await listing(saver, api, cfg("t"), limit=-1)
    except ConfigError:
        pass
    else:
        assert got == []
    await _assert_unchanged(saver, api, before)


# --------------------------------------------------------------------------------------
# 7. Metadata filter keys are data, never SQL or JSON path
# --------------------------------------------------------------------------------------

HOSTILE_KEYS = [
    "source') OR 1=1 --",
    "$.source",
    "$",
    "a.b",
    'a"b',
    "a'b",
    "'; DROP TABLE checkpoints; --",
    'source" = "input" OR "1"="1',
    "source\x00",
    "\x00",
    "so\x00urce",
    "\ud800",
    "source\udfff",
    "source[0]",
    "*",
    "%",
    "?",
    "%s",
    "",
]


async def test_hostile_filter_keys(saver: Any, api: str) -> None:
    await put(saver, api, "t", {"a": 1}, metadata={"source": "input", "step": 1, "a": {"b": 1}})
    before = await dump_db(saver)
    problems = []
    for key in HOSTILE_KEYS:
        for value in ("input", 1, None, True, {"b": 1}):
            try:
                got = await listing(saver, api, cfg("t"), filter={key: value})
            except ConfigError:
                continue
            except Exception as exc:
                problems.append(f"{key!r}={value!r}: {type(exc).__name__}: {exc}")
                continue
            if got != []:
                problems.append(f"{key!r}={value!r}: matched {len(got)} checkpoints")
    assert await dump_db(saver) == before
    assert len(await listing(saver, api, cfg("t"), filter={"source": "input"})) == 1
    assert not problems, "\n".join(problems)


async def test_filter_keys_with_dots_and_quotes_are_exact(saver: Any, api: str) -> None:
    tricky = {"a.b": 1, 'a"b': 2, "a'b": 3, "$.x": 4, "sp ace": 5, "é": 6}
    _, plain = await put(saver, api, "t", {"v": 0}, metadata={"a": {"b": 1}, "step": 0})
    _, dotted = await put(saver, api, "t", {"v": 1}, metadata={**tricky, "step": 1})
    for key, value in tricky.items():
        got = await listing(saver, api, cfg("t"), filter={key: value})
        assert ids(got) == [dotted["id"]], key
        assert await listing(saver, api, cfg("t"), filter={key: value + 1}) == []
    assert ids(await listing(saver, api, cfg("t"), filter={"a": {"b": 1}})) == [plain["id"]]
    assert await listing(saver, api, cfg("t"), filter={"x": 4}) == []


@pytest.mark.parametrize("odd_key", ["nul\x00key", "$t", "\ud800"], ids=repr)
async def test_filter_works_when_metadata_has_an_odd_key(
    saver: Any, api: str, odd_key: str
) -> None:
    """A metadata key JSON cannot hold as-is must not hide the other keys from `filter`."""
    meta = {"source": "input", "step": 2, odd_key: "v"}
    stored, cp = await put(saver, api, "t", {"v": 0}, metadata=meta)
    got = await call(saver, api, "get_tuple", stored)
    assert got.metadata == get_checkpoint_metadata(cfg("t"), meta)
    assert ids(await listing(saver, api, cfg("t"), filter={"source": "input"})) == [cp["id"]]
    assert ids(await listing(saver, api, cfg("t"), filter={"step": 2})) == [cp["id"]]
    assert ids(await listing(saver, api, cfg("t"), filter={odd_key: "v"})) == [cp["id"]]
    if odd_key != "$t":  # the storage format must not leak into filter results
        assert await listing(saver, api, cfg("t"), filter={"$t": "map"}) == []


# --------------------------------------------------------------------------------------
# 8. Tampered rows
# --------------------------------------------------------------------------------------


def _canary_module(directory: Any) -> tuple[str, Any]:
    """A module in `directory` (on sys.path) that leaves a file behind if imported or called."""
    name = f"lsd_canary_{uuid.uuid4().hex}"
    marker = directory / f"{name}.touched"
    (directory / f"{name}.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('imported')\n"
        "def boom(*args, **kwargs):\n"
        f"    pathlib.Path({str(marker)!r}).write_text('called')\n"
        "    return 'boom'\n"
        "class Boom:\n"
        "    def __init__(self, *args, **kwargs):\n"
        "        boom()\n"
    )
    importlib.invalidate_caches()  # so that an import attempt would really find it
    return name, marker


def _envelopes(canary: str) -> dict[str, Any]:
    pickled = f"c{canary}\nboom\n(S'x'\ntR.".encode()  # pickle protocol 0: call canary.boom
    msgpack_call = ormsgpack.packb(
        ormsgpack.Ext(1, ormsgpack.packb([canary, "boom", ["x"]]))  # EXT_CONSTRUCTOR_POS_ARGS
    )
    msgpack_kw = ormsgpack.packb(
        ormsgpack.Ext(2, ormsgpack.packb([canary, "Boom", {"a": 1}]))  # EXT_CONSTRUCTOR_KW_ARGS
    )
    lc_json = orjson.dumps({"lc": 1, "type": "constructor", "id": [canary, "Boom"], "kwargs": {}})
    return {
        "dc-os-system": {"$t": "dc", "c": "os:system", "v": {}},
        "pyd-popen": {"$t": "pyd", "c": "subprocess:Popen", "v": {"args": ["true"]}},
        "nt-popen": {"$t": "nt", "c": "subprocess:Popen", "v": [["true"]]},
        "enum-os-system": {"$t": "enum", "c": "os:system", "v": "true"},
        "dc-canary": {"$t": "dc", "c": f"{canary}:Boom", "v": {}},
        "enum-canary": {"$t": "enum", "c": f"{canary}:Boom", "v": 1},
        "pyd-canary": {"$t": "pyd", "c": f"{canary}:Boom", "v": {}},
        "bad-ref": {"$t": "dc", "c": "os:system; import os", "v": {}},
        "unknown-tag": {"$t": "exec", "v": "print(1)"},
        "serde-pickle": {"$t": "serde", "s": "pickle", "b": base64.b64encode(pickled).decode()},
        "serde-msgpack-call": {
            "$t": "serde",
            "s": "msgpack",
            "b": base64.b64encode(msgpack_call).decode(),
        },
        "serde-msgpack-kwargs": {
            "$t": "serde",
            "s": "msgpack",
            "b": base64.b64encode(msgpack_kw).decode(),
        },
        "serde-json-constructor": {
            "$t": "serde",
            "s": "json",
            "b": base64.b64encode(lc_json).decode(),
        },
    }


ENVELOPE_NAMES = list(_envelopes("x"))


async def _tamper_checkpoint(
    saver: Any, thread_id: str, checkpoint_id: str, edit: Callable
) -> None:
    sql = "SELECT CAST(checkpoint AS TEXT) FROM checkpoints WHERE thread_id = ? AND thread_ts = ?"
    ((text,),) = await raw(saver, sql, (thread_id, checkpoint_id))
    tree = edit(orjson.loads(text))
    cast = "CAST(? AS JSONB)" if is_postgres(saver) else "?"
    await raw(
        saver,
        f"UPDATE checkpoints SET checkpoint = {cast} WHERE thread_id = ? AND thread_ts = ?",
        (orjson.dumps(tree).decode(), thread_id, checkpoint_id),
    )


@pytest.mark.parametrize("where", ["channel_values", "writes"])
async def test_tampered_envelopes_are_refused(
    saver: Any, api: str, where: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each envelope naming something dangerous is stored in place of a value (in the
    checkpoint or in a write) of its own thread: reading it raises DecodeError, imports
    and calls nothing; the other threads stay readable."""
    monkeypatch.syspath_prepend(str(tmp_path))
    await build_thread(saver, api, "other")
    other_before = summary(await listing(saver, api, {"configurable": {"thread_id": "other"}}))
    problems = []
    for name in ENVELOPE_NAMES:
        canary, marker = _canary_module(tmp_path)
        payload = _envelopes(canary)[name]
        victim = f"victim-{name}"
        stored, cp = await put(saver, api, victim, {"x": 1, "y": "fine"})
        await call(saver, api, "put_writes", stored, [("x", 2)], "task")
        if where == "channel_values":

            def edit(tree: dict, payload: Any = payload) -> dict:
                tree["channel_values"]["x"] = payload
                return tree

            await _tamper_checkpoint(saver, victim, cp["id"], edit)
        else:
            cast = "CAST(? AS JSON)" if is_postgres(saver) else "?"
            await raw(
                saver,
                f"UPDATE checkpoint_writes SET writes = {cast} WHERE thread_id = ?",
                (orjson.dumps([[0, "x", payload]]).decode(), victim),
            )
        outcomes = []
        for attempt in (
            call(saver, api, "get_tuple", stored),
            call(saver, api, "get_tuple", cfg(victim)),
            listing(saver, api, cfg(victim)),
        ):
            try:
                outcomes.append(("decoded", await attempt))
            except DecodeError as exc:
                outcomes.append(("refused", type(exc).__name__))
            except Exception as exc:
                outcomes.append(("other error", f"{type(exc).__name__}: {exc}"))
        if sys.modules.pop(canary, None) is not None:
            problems.append(f"{name}: decoding imported {canary}, a module named by stored data")
        if marker.exists():
            problems.append(f"{name}: decoding ran stored code ({marker.read_text()})")
        if [o for o, _ in outcomes] != ["refused"] * 3:
            problems.append(f"{name}: {outcomes}")
    other_after = summary(await listing(saver, api, {"configurable": {"thread_id": "other"}}))
    assert other_after == other_before
    assert not problems, "\n".join(problems)


TAMPERED_BODIES = [
    "{not json",
    "",
    '{"v": 2, "channel_values": ',
    "[1, 2, 3]",
    '{"v": 2}',
    '{"v": 2, "channel_values": []}',
    '{"v": 2, "channel_values": {"x": {"$t": "int", "v": "zz"}}}',
    '{"v": 2, "channel_values": {"x": {"$t": "b", "v": "!!!"}}}',
    '{"v": 2, "channel_values": {"x": {"$t": "tup"}}}',
    '{"v": 2, "channel_values": {"x": {"$t": 5}}}',
    '{"v": 2, "channel_values": {"x": {"$t": "zi", "v": "../../etc/passwd"}}}',
    '{"v": 2, "channel_values": {"x": {"$t": "msg", "type": "nope"}}}',
    '{"v": 2, "channel_values": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}",
]


async def test_tampered_json_is_refused(saver: Any, api: str) -> None:
    """Rows changed behind the saver's back (invalid JSON only on SQLite: JSONB refuses it)."""
    await build_thread(saver, api, "other")
    other_before = summary(await listing(saver, api, {"configurable": {"thread_id": "other"}}))
    problems = []
    for n, body in enumerate(TAMPERED_BODIES):
        victim = f"victim-{n}"
        stored, _ = await put(saver, api, victim, {"x": 1})
        try:
            orjson.loads(body)
            valid = True
        except orjson.JSONDecodeError:
            valid = False
        if is_postgres(saver):
            if not valid or "[" * 10_000 in body:
                continue  # JSONB refuses invalid and very deeply nested documents itself
            await raw(
                saver,
                "UPDATE checkpoints SET checkpoint = CAST(? AS JSONB) WHERE thread_id = ?",
                (body, victim),
            )
        else:
            await raw(saver, "PRAGMA ignore_check_constraints = ON")
            try:
                await raw(
                    saver,
                    "UPDATE checkpoints SET checkpoint = ? WHERE thread_id = ?",
                    (body, victim),
                )
            finally:
                await raw(saver, "PRAGMA ignore_check_constraints = OFF")
        for what, attempt in (
            ("get_tuple", call(saver, api, "get_tuple", stored)),
            ("list", listing(saver, api, cfg(victim))),
        ):
            try:
                got = await attempt
            except DecodeError:
                continue
            except Exception as exc:
                problems.append(f"{body[:40]!r} {what}: {type(exc).__name__}: {exc}")
            else:
                problems.append(f"{body[:40]!r} {what}: decoded to {got!r:.200}")
    other_after = summary(await listing(saver, api, {"configurable": {"thread_id": "other"}}))
    assert other_after == other_before
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------
# 9. Schema
# --------------------------------------------------------------------------------------


async def test_no_auto_setup_on_empty_database(saver_factory: Any, api: str) -> None:
    async with saver_factory(auto_setup=False) as saver:
        for attempt in range(2):
            with pytest.raises(SchemaVersionError, match=r"setup\(\)"):
                if attempt == 0:
                    await call(saver, api, "get_tuple", cfg("t"))
                else:
                    await put(saver, api, "t", {"a": 1})
        with pytest.raises(SchemaVersionError, match=r"setup\(\)"):
            await listing(saver, api, cfg("t"))
        await call(saver, api, "setup")
        await call(saver, api, "setup")  # twice is fine
        stored, cp = await put(saver, api, "t", {"a": 1})
        assert (await call(saver, api, "get_tuple", stored)).checkpoint == cp
        assert await raw(saver, "SELECT version FROM schema_version ORDER BY 1") == ALL_VERSIONS


async def test_tables_of_another_saver_are_refused_untouched(saver_factory: Any, api: str) -> None:
    async with saver_factory(auto_setup=False) as saver:
        await raw(saver, "CREATE TABLE checkpoints (thread_id TEXT, checkpoint TEXT)")
        await raw(saver, "INSERT INTO checkpoints VALUES ('theirs', '{}')")
        for _ in range(2):
            with pytest.raises(SchemaVersionError, match=r"named checkpoints .*own database"):
                await call(saver, api, "setup")
        assert await raw(saver, "SELECT thread_id FROM checkpoints") == [("theirs",)]
        with pytest.raises(SchemaVersionError, match=r"setup\(\)"):
            await call(saver, api, "get_tuple", cfg("t"))


async def test_setup_is_idempotent_across_savers(saver: Any, saver_factory: Any, api: str) -> None:
    stored, cp = await put(saver, api, "t", {"a": 1})
    await call(saver, api, "setup")
    async with saver_factory(shared=True) as second:
        await call(second, api, "setup")
        assert (await call(second, api, "get_tuple", stored)).checkpoint == cp
    assert await raw(saver, "SELECT version FROM schema_version ORDER BY 1") == ALL_VERSIONS


@pytest.mark.parametrize("auto_setup", [True, False])
async def test_newer_schema_is_refused(
    saver: Any, saver_factory: Any, api: str, auto_setup: bool
) -> None:
    await build_thread(saver, api, "t")
    await raw(saver, "INSERT INTO schema_version (version) VALUES (?)", (99,))
    before = await dump_db(saver)
    async with saver_factory(shared=True, auto_setup=auto_setup) as newer:
        with pytest.raises(SchemaVersionError, match="newer"):
            await call(newer, api, "get_tuple", cfg("t"))
        with pytest.raises(SchemaVersionError, match="newer"):
            await put(newer, api, "t", {"a": 1})
        with pytest.raises(SchemaVersionError, match="newer"):
            await call(newer, api, "setup")
    assert await dump_db(saver) == before
    assert await raw(saver, "SELECT max(version) FROM schema_version") == [(99,)]


# --------------------------------------------------------------------------------------
# 10. Threads and event loops
# --------------------------------------------------------------------------------------

BLOCKING_CALLS: list[tuple[str, Callable[[Any], Any]]] = [
    ("get_tuple", lambda s: s.get_tuple(cfg("t"))),
    ("list", lambda s: list(s.list(cfg("t")))),
    ("put", lambda s: s.put(cfg("t"), make_checkpoint({"a": 1}), {}, {"a": 1})),
    ("put_writes", lambda s: s.put_writes(cfg("t", "x"), [("a", 1)], "task")),
    ("delete_thread", lambda s: s.delete_thread("t")),
    ("delete_for_runs", lambda s: s.delete_for_runs(["r"])),
    ("copy_thread", lambda s: s.copy_thread("t", "t2")),
    ("prune", lambda s: s.prune(["t"])),
    ("delta", lambda s: s.get_delta_channel_history(config=cfg("t"), channels=["a"])),
]


@pytest.mark.parametrize("flavour", ["sqlite-async", "postgres-async"], indirect=True)
async def test_async_saver_blocking_methods_refuse_the_loop_thread(saver: Any) -> None:
    """Only async savers have an event loop to protect; sync ones run on any thread."""
    await build_thread(saver, "async", "t")
    before = await dump_db(saver)
    problems = []
    for name, blocking in BLOCKING_CALLS:
        try:
            blocking(saver)
        except WrongThreadError as exc:
            message = str(exc)
            if not (
                type(saver).__name__ in message
                and "event loop" in message
                and "another thread" in message
                and "aget_tuple" in message
            ):
                problems.append(f"{name}: unclear message {message!r}")
        except Exception as exc:
            problems.append(f"{name}: {type(exc).__name__} instead of WrongThreadError: {exc}")
        else:
            problems.append(f"{name}: ran on the event loop thread")
    assert not problems, "\n".join(problems)
    assert await dump_db(saver) == before
    # the same calls work from a worker thread
    for _, blocking in BLOCKING_CALLS:
        await asyncio.to_thread(blocking, saver)


async def test_blocking_methods_work_from_worker_threads(saver: Any) -> None:
    stored, cp = await put(saver, "sync", "t", {"a": 1})

    def work() -> None:
        assert saver.get_tuple(stored).checkpoint == cp
        assert ids(list(saver.list(cfg("t")))) == [cp["id"]]
        saver.put_writes(stored, [("a", 2)], "task")
        saver.copy_thread("t", "t2")
        saver.prune(["t2"])
        saver.delete_thread("t2")

    await asyncio.gather(*(asyncio.to_thread(work) for _ in range(4)))
    got = await call(saver, "async", "get_tuple", stored)
    assert got.pending_writes == [("task", "a", 2)]


async def test_concurrent_aput(saver: Any, flavour: str) -> None:
    """20 concurrent aput calls all land; on sync savers they run on several threads."""
    seen_threads: set[int] = set()
    rendezvous = threading.Barrier(2, timeout=30)
    arrivals = iter(range(1000))
    lock = threading.Lock()
    if not flavour.endswith("async"):
        real_put = saver.put

        def spying_put(*args: Any, **kwargs: Any) -> Any:
            with lock:
                n = next(arrivals)
                seen_threads.add(threading.get_ident())
            if n < 2:  # the first two calls must be in flight at the same time
                rendezvous.wait()
            return real_put(*args, **kwargs)

        saver.put = spying_put
    checkpoints = [make_checkpoint({"i": i}) for i in range(20)]
    results = await asyncio.gather(
        *(
            saver.aput(cfg(f"t{i % 4}"), cp, {"step": i}, {"i": 1})
            for i, cp in enumerate(checkpoints)
        )
    )
    assert [r["configurable"]["checkpoint_id"] for r in results] == [cp["id"] for cp in checkpoints]
    stored = await listing(saver, "async", None)
    assert sorted(ids(stored)) == sorted(cp["id"] for cp in checkpoints)
    for t in stored:
        i = t.metadata["step"]
        assert t.config["configurable"]["thread_id"] == f"t{i % 4}"
        assert t.checkpoint == checkpoints[i]
    if not flavour.endswith("async"):
        assert len(seen_threads) >= 2


# --------------------------------------------------------------------------------------
# 11. list: a bounded number of statements, rows streamed
# --------------------------------------------------------------------------------------


async def fill_thread(saver: Any, thread_id: str, n: int) -> list[str]:
    """`n` chained checkpoints, each with 2 writes (async API: works on every flavour)."""
    parent = None
    out = []
    for i in range(n):
        cp = make_checkpoint({"i": i})
        stored = await saver.aput(cfg(thread_id, parent), cp, {"step": i}, {"i": 1})
        await saver.aput_writes(stored, [("i", i), ("j", -i)], f"task{i}")
        parent = cp["id"]
        out.append(parent)
    return out


async def test_list_statement_count_is_bounded(saver: Any, api: str) -> None:
    big = await fill_thread(saver, "big", 300)
    await fill_thread(saver, "small", 3)
    counts = {}
    for thread_id, expected in (("big", big), ("small", None)):
        async with probing(saver) as probe:
            probe.active = True
            got = await listing(saver, api, cfg(thread_id))
            probe.active = False
        counts[thread_id] = list(probe.statements)
        if expected is not None:
            assert ids(got) == expected[::-1]
            assert all(len(t.pending_writes) == 2 for t in got)
            assert got[0].pending_writes == [("task299", "i", 299), ("task299", "j", -299)]
            assert got[0].parent_config == cfg("big", big[-2])
    # a chunk of rows costs as many statements as a short thread's whole list
    assert 1 <= len(counts["small"]) <= 3, counts["small"]
    chunks = len(big) // STREAM_CHUNK + 1
    assert len(counts["big"]) <= len(counts["small"]) * chunks, counts


async def test_list_streams_rows(saver: Any, api: str) -> None:
    """After the first item of `list`, the saver has not pulled all 300 rows from its
    driver: rows are counted where the saver takes them (sqlite3/aiosqlite fetchmany,
    psycopg stream), which on SQLite is also where the engine steps through the rows."""
    await fill_thread(saver, "big", 300)
    async with probing(saver) as probe:
        if api == "sync":
            iterator = saver.list(cfg("big"))
            first = await asyncio.to_thread(next, iterator)
            pulled_at_first = probe.rows
            rest = await asyncio.to_thread(list, iterator)
        else:
            aiterator = saver.alist(cfg("big"))
            first = await anext(aiterator)
            pulled_at_first = probe.rows
            rest = [t async for t in aiterator]
        assert first.metadata["step"] == 299
        assert len(rest) == 299
        assert 1 <= pulled_at_first < 300, pulled_at_first
        assert probe.rows == 300


async def test_abandoned_list_does_not_block_the_saver(saver: Any, api: str) -> None:
    """Taking one item of `list` and leaving the iterator open must not lock writers out."""
    await fill_thread(saver, "big", 150)
    if api == "sync":
        iterator = saver.list(cfg("big"))
        await asyncio.to_thread(next, iterator)
    else:
        aiterator = saver.alist(cfg("big"))
        await anext(aiterator)
    try:
        stored, cp = await asyncio.wait_for(put(saver, api, "other", {"a": 1}), timeout=20)
        got = await asyncio.wait_for(call(saver, api, "get_tuple", stored), timeout=20)
        assert got.checkpoint == cp
    finally:
        if api == "sync":
            await asyncio.to_thread(iterator.close)
        else:
            await aiterator.aclose()


async def test_calls_inside_a_list_iteration(saver: Any, api: str) -> None:
    """LangGraph calls the saver while iterating `list` (get_state_history + DeltaChannel)."""
    big = await fill_thread(saver, "big", 120)

    async def run() -> list[Any]:
        seen = []
        if api == "sync":

            def work() -> None:
                for t in saver.list(cfg("big")):
                    seen.append(saver.get_tuple(t.config).checkpoint["id"])

            await asyncio.to_thread(work)
        else:
            async for t in saver.alist(cfg("big")):
                seen.append((await saver.aget_tuple(t.config)).checkpoint["id"])
        return seen

    assert await asyncio.wait_for(run(), timeout=30) == big[::-1]
