"""Stateful properties: random sequences of saver and thread-manager calls on every saver
flavour, compared step by step with LangGraph's `InMemorySaver` (checkpoints and writes)
and a small model of the thread registry, with `check_references()` after every step.

`InMemorySaver` has no `copy_thread`, `prune` or `delete_for_runs`: the reference applies
them to its storage as LangGraph's documented contract (and the conformance suite) says:
a copy adds the source's checkpoints and writes the target lacks, `keep_latest` keeps the
latest checkpoint of each namespace with its writes, `delete_for_runs` removes the
checkpoints whose metadata names one of the runs, with their writes.

Deliberate differences (README): tuples in state come back as tuples (LangGraph's savers
give lists), so values are compared with tuples read as lists; `list` without a thread
orders by checkpoint id across threads (InMemorySaver goes thread by thread), so such
listings are compared without `limit`, ordered by id. A thread's run state is what was
reported for the latest root checkpoint put (see `Row`), recomputed from the stored writes
when deletions or copies change that checkpoint; the machine never reports both an error
and an interrupt for one checkpoint (which of them wins is not specified).

Async savers are opened on an event loop in a background thread and driven through
their async API (`asyncio.run_coroutine_threadsafe`); sync savers through their
blocking API. One saver per flavour serves every example; each example starts on an
emptied database.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import FLAVOURS, open_saver
from helpers import api_of as api
from helpers import call, cfg, listing, put, th
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import (
    CheckpointTuple,
    create_checkpoint,
    empty_checkpoint,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT, RESUME, SCHEDULED
from langgraph.types import Interrupt

from langgraph_store_dual import ConfigError, NotFoundError, ThreadExistsError

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

#: Bounded: the four flavours together run in well under a minute on two cores.
STATEFUL = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    derandomize=CI,
    database=None if CI else settings.default.database,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    # no shrinking: an example costs real statements, and shrinking one took minutes; a
    # failure prints its (at most 25) steps as they ran
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    print_blob=True,
)

THREADS = ("t0", "t1", "t2")
NEW_THREADS = ("n0", "n1")  # ids for threads.create / copies
ALL_THREADS = THREADS + NEW_THREADS
NAMESPACES = ("", "child:1")
RUNS = ("run-a", "run-b", "run-c")
USERS = (None, "ana", "bob")
TEAMS = ({}, {"team": "netops"}, {"team": "sre", "priority": 1})
TASKS = ("task-a", "task-b")

# ----------------------------------------------------------------------------------------
# Driving a saver of any flavour from the test's thread
# ----------------------------------------------------------------------------------------


class LoopThread:
    """An event loop running in a background thread; `run(coro)` waits for a result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@dataclass
class Driver:
    """Calls a saver's methods: the blocking ones on sync savers, the async ones on
    async savers (awaited on the loop the saver was opened on)."""

    flavour: str
    saver: Any
    loop: LoopThread
    wipe: Callable[[], None]

    @property
    def is_async(self) -> bool:
        return self.flavour.endswith("async")

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.is_async:
            return self.loop.run(getattr(self.saver, "a" + name)(*args, **kwargs))
        return getattr(self.saver, name)(*args, **kwargs)

    def list(self, config: Any, **kwargs: Any) -> list[CheckpointTuple]:
        if self.is_async:

            async def collect() -> list[CheckpointTuple]:
                return [t async for t in self.saver.alist(config, **kwargs)]

            return self.loop.run(collect())
        return list(self.saver.list(config, **kwargs))

    def threads(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.saver.threads, name)(*args, **kwargs)
        return self.loop.run(result) if self.is_async else result


def _wiper(flavour: str, where: Any) -> Callable[[], None]:
    """Empty the flavour's database (the schema stays)."""
    tables = ("checkpoint_writes", "checkpoints", "checkpoint_values", "threads")
    if flavour.startswith("postgres"):

        def wipe_pg() -> None:
            with psycopg.connect(str(where), autocommit=True) as conn:
                conn.execute(f"TRUNCATE {', '.join(tables)}")

        return wipe_pg
    path = Path(where) / ("sync.db" if flavour == "sqlite-sync" else "async.db")

    def wipe_sqlite() -> None:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for table in tables:
                conn.execute(f"DELETE FROM {table}")
            conn.execute("COMMIT")
        finally:
            conn.close()

    return wipe_sqlite


@contextmanager
def driven(flavour: str, where: Any) -> Iterator[Driver]:
    """A driver for a saver of `flavour` on `where` (a directory or a PostgreSQL URL)."""
    loop = LoopThread()
    opener = open_saver(flavour, where)
    try:
        saver = loop.run(opener.__aenter__())
        try:
            driver = Driver(flavour, saver, loop, _wiper(flavour, where))
            driver.call("setup")
            yield driver
        finally:
            loop.run(opener.__aexit__(None, None, None))
    finally:
        loop.close()


# ----------------------------------------------------------------------------------------
# The reference
# ----------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """`value` with tuples read as lists (the one documented difference in values)."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def summary(t: CheckpointTuple | None) -> Any:
    """What a caller can observe of a checkpoint tuple."""
    if t is None:
        return None
    conf = t.config["configurable"]
    parent = None if t.parent_config is None else t.parent_config["configurable"]
    return (
        conf["thread_id"],
        conf.get("checkpoint_ns", ""),
        conf["checkpoint_id"],
        None if parent is None else (parent["thread_id"], parent["checkpoint_id"]),
        plain(t.checkpoint),
        plain(t.metadata),
        plain(t.pending_writes),
    )


class Reference(InMemorySaver):
    """`InMemorySaver` plus the operations it lacks, applied to its storage."""

    def __init__(self) -> None:
        super().__init__()
        self.versions = itertools.count(1)  # globally unique: blobs never collide on copy

    def ids(self, thread_id: str, ns: str) -> list[str]:
        return sorted(self.storage.get(thread_id, {}).get(ns, {}))

    def namespaces(self, thread_id: str) -> list[str]:
        return [ns for ns, cps in self.storage.get(thread_id, {}).items() if cps]

    def metadata_of(self, thread_id: str, ns: str, cid: str) -> dict[str, Any]:
        return self.serde.loads_typed(self.storage[thread_id][ns][cid][1])

    def _drop(self, thread_id: str, ns: str, cid: str) -> None:
        del self.storage[thread_id][ns][cid]
        self.writes.pop((thread_id, ns, cid), None)

    def copy_thread(self, source: str, target: str) -> None:
        for ns, cps in list(self.storage.get(source, {}).items()):
            for cid, saved in cps.items():
                if cid not in self.storage[target][ns]:
                    self.storage[target][ns][cid] = saved
        for (tid, ns, cid), writes in list(self.writes.items()):
            if tid != source:
                continue
            mine = self.writes[(target, ns, cid)]
            taken = {task for task, _ in mine}
            for (task, idx), write in writes.items():
                if task not in taken:  # a task's writes travel as one
                    mine[(task, idx)] = write
        for (tid, ns, ch, ver), blob in list(self.blobs.items()):
            if tid == source:
                self.blobs.setdefault((target, ns, ch, ver), blob)

    def prune(self, thread_ids: Any, *, strategy: str = "keep_latest") -> None:
        for tid in thread_ids:
            for ns in self.namespaces(tid):
                ids = self.ids(tid, ns)
                for cid in ids[:-1] if strategy == "keep_latest" else ids:
                    self._drop(tid, ns, cid)

    def delete_for_runs(self, run_ids: Any) -> None:
        for tid in list(self.storage):
            for ns in self.namespaces(tid):
                for cid in self.ids(tid, ns):
                    if self.metadata_of(tid, ns, cid).get("run_id") in run_ids:
                        self._drop(tid, ns, cid)


@dataclass
class Row:
    """The model of a `threads` row; `touched` orders rows by last activity. The run
    state is what was reported (`state`) for the checkpoint `state_ts` when that is the
    latest root checkpoint put, `head`."""

    user_id: str | None = None
    title: str | None = None
    status: str = "active"
    metadata: dict[str, Any] = field(default_factory=dict)
    touched: int = 0
    head: str | None = None
    state: str | None = None
    state_ts: str | None = None

    @property
    def run_state(self) -> str:
        return (self.state or "idle") if self.head and self.state_ts == self.head else "idle"


# ----------------------------------------------------------------------------------------
# Values that grow like a chat (large ones are interned)
# ----------------------------------------------------------------------------------------

FILLER = "The route-map on edge-7 permits 10.0.0.0/8 through AS 64513 with localpref 100. "


def answer(n: int, size: int) -> str:
    text = f"Answer {n}: " + FILLER * (size // len(FILLER) + 1)
    return text[:size]


def grow(messages: list[Any], n: int, turns: int, size: int) -> list[Any]:
    """`messages` plus `turns` turns of a tool-calling chat (human, AI call, tool, AI)."""
    out = list(messages)
    for k in range(turns):
        i = f"{n}-{k}"
        out.append(HumanMessage(f"Is 10.{n % 250}.{k}.0/24 routed?", id=f"h-{i}"))
        request = {"name": "show_route", "args": {"prefix": f"10.{k}.0.0/16"}, "id": f"call-{i}"}
        out.append(AIMessage("", id=f"ai-call-{i}", tool_calls=[request]))
        out.append(ToolMessage(answer(n, size // 2), tool_call_id=f"call-{i}", id=f"tool-{i}"))
        out.append(AIMessage(answer(n, size), id=f"ai-{i}"))
    return out


def first_human(messages: list[Any]) -> str | None:
    return next((m.content for m in messages if isinstance(m, HumanMessage)), None)


# ----------------------------------------------------------------------------------------
# The machine
# ----------------------------------------------------------------------------------------


class SaverMachine(RuleBasedStateMachine):
    driver: Driver  # set per flavour by the test

    def __init__(self) -> None:
        super().__init__()
        self.driver.wipe()
        self.ref = Reference()
        self.rows: dict[str, Row] = {}
        self.clock = itertools.count(1)
        self.counter = itertools.count(1)

    # -- helpers ------------------------------------------------------------------------
    def cfg(self, thread_id: str, ns: str = "", cid: str | None = None, **extra: Any) -> dict:
        conf = {"thread_id": thread_id, "checkpoint_ns": ns, **extra}
        if cid is not None:
            conf["checkpoint_id"] = cid
        return {"configurable": conf}

    def touch(self, thread_id: str, **fields: Any) -> None:
        row = self.rows.get(thread_id) or Row()
        self.rows[thread_id] = replace(row, touched=next(self.clock), **fields)

    def refresh(self, thread_ids: Any) -> None:
        """A registered thread's head and run state recomputed from what is stored, as the
        savers do after deletions and copies (its activity time is unchanged)."""
        for tid in set(thread_ids) & set(self.rows):
            ids = self.ref.ids(tid, "")
            head = ids[-1] if ids else None
            wrote = {w[1] for w in self.ref.writes.get((tid, "", head), {}).values()}
            state = "error" if ERROR in wrote else "interrupted" if INTERRUPT in wrote else None
            self.rows[tid] = replace(self.rows[tid], head=head, state=state, state_ts=head)

    def existing(self) -> list[tuple[str, str, str]]:
        return [
            (tid, ns, cid)
            for tid in sorted(self.ref.storage)
            for ns in self.ref.namespaces(tid)
            for cid in self.ref.ids(tid, ns)
        ]

    def expect_error(self, error: type[Exception], call: Callable[[], Any]) -> None:
        with pytest.raises(error):
            call()

    # -- checkpoints ----------------------------------------------------------------------
    @rule(
        data=st.data(),
        thread=st.sampled_from(THREADS),
        ns=st.sampled_from(NAMESPACES),
        turns=st.integers(0, 2),
        size=st.sampled_from([40, 200, 900, 3000]),
        user=st.sampled_from(USERS),
        run=st.sampled_from((None, *RUNS)),
        title=st.sampled_from((None, "Named by the run")),
        fork=st.booleans(),
    )
    def put(self, data, thread, ns, turns, size, user, run, title, fork) -> None:
        ids = self.ref.ids(thread, ns)
        parent = data.draw(st.sampled_from(ids)) if fork and ids else None
        self.put_one(thread, ns, turns, size, user, run, title, parent)

    @initialize(
        puts=st.lists(
            st.tuples(
                st.sampled_from(THREADS),
                st.sampled_from(NAMESPACES),
                st.integers(1, 3),
                st.sampled_from([200, 900, 3000]),
                st.sampled_from(USERS),
                st.sampled_from((None, *RUNS)),
            ),
            min_size=2,
            max_size=8,
        )
    )
    def some_conversations(self, puts) -> None:
        """Every example starts with a few chats (rules are sampled per example)."""
        for thread, ns, turns, size, user, run in puts:
            self.put_one(thread, ns, turns, size, user, run, None, None)

    def put_one(self, thread, ns, turns, size, user, run, title, parent) -> None:
        """Put the next checkpoint of a chat after `parent` (default: its latest)."""
        ids = self.ref.ids(thread, ns)
        if parent is None and ids:
            parent = ids[-1]
        base = self.ref.get_tuple(self.cfg(thread, ns, parent)) if parent else None
        values = dict(base.checkpoint["channel_values"]) if base else {}
        n = next(self.counter)
        values["messages"] = grow(values.get("messages", []), n, turns, size)
        values["step"] = n
        if size >= 900:
            values["doc"] = {"title": f"doc {n % 3}", "body": answer(n % 3, size)}
        if n % 4 == 0:
            values["pair"] = (n, "tuple")
        checkpoint = create_checkpoint(empty_checkpoint(), None, n)
        checkpoint["channel_values"] = values
        versions = {ch: next(self.ref.versions) for ch in values}
        checkpoint["channel_versions"] = dict(versions)
        checkpoint["versions_seen"] = {"agent": dict(versions)}
        metadata: dict[str, Any] = {"source": "loop", "step": n, "parents": {}, "score": n % 3}
        if run is not None:
            metadata["run_id"] = run
        if title is not None:
            metadata["title"] = title
        extra = {} if user is None else {"user_id": user}
        config = self.cfg(thread, ns, parent, **extra)
        got = self.driver.call("put", config, checkpoint, metadata, versions)
        want = self.ref.put(config, checkpoint, metadata, versions)
        assert got["configurable"]["checkpoint_id"] == want["configurable"]["checkpoint_id"]
        assert got["configurable"]["thread_id"] == thread
        # the thread's row: created or touched in the same statement/transaction
        meta = get_checkpoint_metadata(config, metadata)
        row = self.rows.get(thread) or Row()
        owner = meta.get("user_id")
        named = meta.get("title") or first_human(values["messages"])
        head = max(filter(None, (row.head, checkpoint["id"] if ns == "" else None)), default=None)
        self.touch(thread, user_id=row.user_id or owner, title=row.title or named, head=head)

    @rule(
        data=st.data(),
        task=st.sampled_from(TASKS),
        channels=st.lists(
            st.sampled_from(("messages", "step", ERROR, INTERRUPT, RESUME, SCHEDULED)),
            min_size=1,
            max_size=4,
        ),
        size=st.sampled_from([10, 300]),
    )
    def put_writes(self, data, task, channels, size) -> None:
        existing = self.existing()
        if not existing:
            return
        tid, ns, cid = data.draw(st.sampled_from(existing))
        held = {w[1] for w in self.ref.writes.get((tid, ns, cid), {}).values()}
        reported = held | set(channels)
        if ERROR in reported and INTERRUPT in reported:  # which wins is not specified
            channels = [RESUME if c in (ERROR, INTERRUPT) else c for c in channels]
        n = next(self.counter)
        values = {
            "messages": [AIMessage(answer(n, size), id=f"w-{n}")],
            "step": n,
            ERROR: {"type": "ValueError", "message": answer(n, size)},
            INTERRUPT: (Interrupt(value={"question": "sure?", "n": n}, id=f"i-{n}"),),
            RESUME: "yes",
            SCHEDULED: None,
        }
        writes = [(c, values[c]) for c in channels]
        config = self.cfg(tid, ns, cid)
        self.driver.call("put_writes", config, writes, task, f"path-{task}")
        self.ref.put_writes(config, writes, task, f"path-{task}")
        if ns == "" and {ERROR, INTERRUPT} & set(channels):  # noted on the row
            row = self.rows.get(tid) or Row(user_id=None)
            state = "error" if ERROR in channels else "interrupted"
            if row.state_ts is None or cid >= row.state_ts:
                self.touch(tid, state=state, state_ts=cid)
            else:
                self.touch(tid)

    @rule(data=st.data(), by_id=st.booleans(), ns=st.sampled_from(NAMESPACES))
    def get_tuple(self, data, by_id, ns) -> None:
        thread = data.draw(st.sampled_from(ALL_THREADS))
        cid = None
        ids = self.ref.ids(thread, ns)
        if by_id:
            cid = data.draw(st.sampled_from([*ids, "1f000000-0000-6000-8000-000000000000"]))
        config = self.cfg(thread, ns, cid)
        assert summary(self.driver.call("get_tuple", config)) == summary(self.ref.get_tuple(config))

    @rule(
        data=st.data(),
        scope=st.sampled_from(["all", "thread", "namespace"]),
        filter=st.sampled_from(
            [None, {"source": "loop"}, {"score": 1}, {"title": "Named by the run"}]
            + [{"run_id": r} for r in RUNS]
            + [{"user_id": "ana", "score": 0}]
        ),
        limit=st.sampled_from([None, 1, 2, 5]),
        use_before=st.booleans(),
    )
    def list(self, data, scope, filter, limit, use_before) -> None:
        thread = data.draw(st.sampled_from(ALL_THREADS))
        ns = data.draw(st.sampled_from(NAMESPACES))
        config = None if scope == "all" else {"configurable": {"thread_id": thread}}
        if scope == "namespace":
            config = self.cfg(thread, ns)
        before = None
        everything = self.existing()
        if use_before and everything:
            # a checkpoint's config (one holding only a checkpoint id: see the test below)
            before = self.cfg(*data.draw(st.sampled_from(everything)))
        if scope == "all":
            limit = None  # ids repeat across copied threads: ties would pick at random
        got = [
            summary(t) for t in self.driver.list(config, filter=filter, before=before, limit=limit)
        ]
        want = [summary(t) for t in self.ref.list(config, filter=filter, before=before)]
        want.sort(key=lambda s: s[2], reverse=True)  # newest first, across namespaces
        if scope == "all":
            got.sort(key=lambda s: (s[2], s[0]), reverse=True)
            want.sort(key=lambda s: (s[2], s[0]), reverse=True)
        assert got == want[:limit] if limit is not None else got == want

    # -- deletion, copies, retention ---------------------------------------------------
    @rule(thread=st.sampled_from(ALL_THREADS))
    def delete_thread(self, thread) -> None:
        self.driver.call("delete_thread", thread)
        self.ref.delete_thread(thread)
        self.rows.pop(thread, None)

    @rule(runs=st.lists(st.sampled_from(RUNS), max_size=2, unique=True))
    def delete_for_runs(self, runs) -> None:
        self.driver.call("delete_for_runs", runs)
        before = {tid: self.ref.ids(tid, "") for tid in self.rows}
        self.ref.delete_for_runs(runs)
        self.refresh(tid for tid, ids in before.items() if ids != self.ref.ids(tid, ""))

    @rule(source=st.sampled_from(ALL_THREADS), dest=st.sampled_from(ALL_THREADS))
    def copy_thread(self, source, dest) -> None:
        target = dest
        if source == target:
            self.expect_error(ConfigError, lambda: self.driver.call("copy_thread", source, target))
            return
        self.driver.call("copy_thread", source, target)
        self.ref.copy_thread(source, target)
        if source in self.rows and target not in self.rows:
            self.touch(target, **_registry_fields(self.rows[source]), status="active")
        self.refresh([target])

    @rule(
        threads=st.lists(st.sampled_from(ALL_THREADS), max_size=3, unique=True),
        strategy=st.sampled_from(["keep_latest", "delete"]),
    )
    def prune(self, threads, strategy) -> None:
        self.driver.call("prune", threads, strategy=strategy)
        self.ref.prune(threads, strategy=strategy)
        if strategy == "delete":
            self.refresh(threads)

    @rule(n=st.integers(1, 3), batch=st.integers(1, 3))
    def keep_last(self, n, batch) -> None:
        removed = self.driver.threads("keep_last", n, batch_size=batch)
        gone: dict[str, int] = {}
        for tid in self.rows:  # retention walks the registered threads
            for ns in self.ref.namespaces(tid):
                for cid in self.ref.ids(tid, ns)[:-n]:
                    gone[tid] = gone.get(tid, 0) + 1
                    self.ref._drop(tid, ns, cid)
        assert sorted(removed.threads) == sorted(gone)
        assert removed.checkpoints == sum(gone.values())

    # -- the thread registry ---------------------------------------------------------------
    @rule(
        thread=st.sampled_from(ALL_THREADS),
        user=st.sampled_from(USERS),
        title=st.sampled_from((None, "BGP analysis")),
        metadata=st.sampled_from(TEAMS),
    )
    def create_thread(self, thread, user, title, metadata) -> None:
        call = lambda: self.driver.threads(  # noqa: E731
            "create", thread_id=thread, user_id=user, title=title, metadata=metadata
        )
        if thread in self.rows:
            self.expect_error(ThreadExistsError, call)
            return
        made = call()
        assert (made.thread_id, made.user_id, made.title, made.metadata) == (
            thread,
            user,
            title,
            metadata,
        )
        self.touch(thread, user_id=user, title=title, metadata=dict(metadata))

    @rule(
        thread=st.sampled_from(ALL_THREADS),
        title=st.sampled_from(("keep", None, "Renamed")),
        patch=st.sampled_from((None, {"team": "netops"}, {"team": None}, {"priority": 2})),
        status=st.sampled_from((None, "archive", "unarchive")),
    )
    def update_thread(self, thread, title, patch, status) -> None:
        if status is not None:
            call = lambda: self.driver.threads(status, thread)  # noqa: E731
        elif title == "keep":
            call = lambda: self.driver.threads("update", thread, metadata=patch)  # noqa: E731
        else:
            call = lambda: self.driver.threads(  # noqa: E731
                "update", thread, title=title, metadata=patch
            )
        if thread not in self.rows:
            self.expect_error(NotFoundError, call)
            return
        call()
        row = self.rows[thread]
        if status is not None:
            self.touch(thread, status="archived" if status == "archive" else "active")
            return
        merged = dict(row.metadata)
        for key, value in (patch or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        self.touch(thread, title=row.title if title == "keep" else title, metadata=merged)

    @rule(thread=st.sampled_from(ALL_THREADS))
    def delete_registered_thread(self, thread) -> None:
        assert self.driver.threads("delete", thread) is (thread in self.rows)
        self.ref.delete_thread(thread)
        self.rows.pop(thread, None)

    @rule(source=st.sampled_from(ALL_THREADS), dest=st.sampled_from(NEW_THREADS))
    def copy_registered_thread(self, source, dest) -> None:
        target = dest
        call = lambda: self.driver.threads("copy", source, target)  # noqa: E731
        if source == target:
            self.expect_error(ConfigError, call)
        elif source not in self.rows:
            self.expect_error(NotFoundError, call)
        elif target in self.rows:
            self.expect_error(ThreadExistsError, call)
        else:
            made = call()
            assert made.thread_id == target
            self.ref.copy_thread(source, target)
            self.touch(target, **_registry_fields(self.rows[source]), status="active")

    @rule(
        user=st.sampled_from(USERS),
        status=st.sampled_from((None, "active", "archived")),
        run_state=st.sampled_from((None, "idle", "interrupted", "error")),
        metadata=st.sampled_from((None, {"team": "netops"})),
        limit=st.integers(1, 3),
    )
    def list_threads(self, user, status, run_state, metadata, limit) -> None:
        filters = {"user_id": user, "status": status, "run_state": run_state, "metadata": metadata}
        seen: list[Any] = []
        cursor = None
        while True:
            page = self.driver.threads("list", **filters, limit=limit, cursor=cursor)
            assert len(page.items) <= limit
            seen += page.items
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        want = {tid for tid in self.rows if self.matches(tid, **filters)}
        assert [t.thread_id for t in seen if t.thread_id in want] == [t.thread_id for t in seen]
        assert sorted(t.thread_id for t in seen) == sorted(want)
        self.check_order(seen)
        assert self.driver.threads("count", **filters) == len(want)

    def matches(self, tid: str, user_id, status, run_state, metadata) -> bool:
        row = self.rows[tid]
        return (
            (user_id is None or row.user_id == user_id)
            and (status is None or row.status == status)
            and (run_state is None or row.run_state == run_state)
            and all(row.metadata.get(k) == v for k, v in (metadata or {}).items())
        )

    def check_order(self, threads: list[Any]) -> None:
        """Newest activity first; threads touched in one clock tick may come either way."""
        for a, b in itertools.pairwise(threads):
            assert (a.updated_at, a.thread_id) > (b.updated_at, b.thread_id)
            if self.rows[a.thread_id].touched < self.rows[b.thread_id].touched:
                assert a.updated_at == b.updated_at, (a, b)

    # -- after every step ---------------------------------------------------------------
    @invariant()
    def references_are_whole(self) -> None:
        assert self.driver.call("check_references") == []

    @invariant()
    def thread_rows_match(self) -> None:
        page = self.driver.threads("list", limit=100)
        got = {
            t.thread_id: (t.user_id, t.title, t.status, t.metadata, t.run_state) for t in page.items
        }
        want = {
            tid: (row.user_id, row.title, row.status, row.metadata, row.run_state)
            for tid, row in self.rows.items()
        }
        assert got == want
        self.check_order(page.items)

    @precondition(lambda self: bool(self.existing()))
    @invariant()
    def latest_of_each_thread_matches(self) -> None:
        for tid in THREADS:
            config = self.cfg(tid)
            assert summary(self.driver.call("get_tuple", config)) == summary(
                self.ref.get_tuple(config)
            )


def _registry_fields(row: Row) -> dict[str, Any]:
    """What a copy takes from its source's row."""
    return {
        "user_id": row.user_id,
        "title": row.title,
        "metadata": dict(row.metadata),
        "head": row.head,
        "state": row.state,
        "state_ts": row.state_ts,
    }


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_saver_matches_the_reference_step_by_step(
    flavour: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    where = request.getfixturevalue("pg_clean_url") if flavour.startswith("postgres") else tmp_path
    with driven(flavour, where) as driver:
        machine = type(f"SaverMachine_{flavour.replace('-', '_')}", (SaverMachine,), {})
        machine.driver = driver
        run_state_machine_as_test(machine, settings=STATEFUL)


# ----------------------------------------------------------------------------------------
# What the machine found, reduced to one test each
# ----------------------------------------------------------------------------------------


async def _put(saver: Any, thread_id: str, parent: str | None = None, **meta: Any) -> str:
    metadata = {"source": "loop", "step": 1, "parents": {}, **meta}
    _, checkpoint = await put(
        saver, api(saver), thread_id, {"n": 1}, parent=parent, metadata=metadata
    )
    return checkpoint["id"]


async def test_list_before_a_bare_checkpoint_id(saver: Any) -> None:
    first = await _put(saver, "t")
    second = await _put(saver, "t", first)
    before = {"configurable": {"checkpoint_id": second}}
    config = {"configurable": {"thread_id": "t"}}
    got = await listing(saver, api(saver), config, before=before)
    assert [t.config["configurable"]["checkpoint_id"] for t in got] == [first]


@pytest.mark.parametrize("change", ["prune_delete", "delete_for_runs", "copy_into_existing"])
async def test_run_state_follows_the_latest_checkpoint(saver: Any, change: str) -> None:
    async def fail(thread_id: str, checkpoint_id: str) -> None:
        config = cfg(thread_id, checkpoint_id)
        await call(saver, api(saver), "put_writes", config, [(ERROR, {"message": "boom"})], "x")

    if change == "prune_delete":
        await fail("t", await _put(saver, "t"))
        assert (await th(saver, "get", "t")).run_state == "error"
        await call(saver, api(saver), "prune", ["t"], strategy="delete")
        want = "idle"  # no checkpoint left
    elif change == "delete_for_runs":
        first = await _put(saver, "t")
        await fail("t", first)
        await _put(saver, "t", first, run_id="r1")
        assert (await th(saver, "get", "t")).run_state == "idle"
        await call(saver, api(saver), "delete_for_runs", ["r1"])
        want = "error"  # the latest checkpoint is the one that failed again
    else:
        await _put(saver, "t")
        await fail("src", await _put(saver, "src"))
        await call(saver, api(saver), "copy_thread", "src", "t")
        want = "error"  # the latest checkpoint of t is the copied one that failed
    latest = await call(saver, api(saver), "get_tuple", cfg("t"))
    reported = [] if latest is None else [w[1] for w in latest.pending_writes]
    assert ("error" if ERROR in reported else "idle") == want
    assert (await th(saver, "get", "t")).run_state == want
    assert await th(saver, "count", run_state="error") == (want == "error") + (
        change == "copy_into_existing"
    )
