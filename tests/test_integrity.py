"""Nothing lost, nothing leaked: copies of busy threads are whole, a lazy `list` does not
lock its saver out of writing, and both engines accept and refuse the same ids.

Runs on every saver flavour (the `saver` fixture) unless a test is about one engine.
"""

from __future__ import annotations

import asyncio
import random
import string
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import open_saver
from helpers import (
    call,
    cfg,
    dump_db,
    expect_config_error,
    is_postgres,
    make_checkpoint,
    message,
    raw,
    th,
)
from langgraph.checkpoint.serde.types import TASKS
from langgraph.types import Send
from probes import probing

from langgraph_store_dual import ConfigError, SqliteSaver
from langgraph_store_dual.core import ops
from langgraph_store_dual.core.config import MAX_ID_BYTES, check_id
from langgraph_store_dual.saver import STREAM_CHUNK
from langgraph_store_dual.sqlite import savers as sqlite_savers

# --------------------------------------------------------------------------------------
# A copy is a state its source had, even while the source is written to
# --------------------------------------------------------------------------------------

#: Copies taken while a writer keeps putting to their source.
COPIES = 12
#: The writer stops after this many puts even if the copies are not done.
MAX_PUTS = 400
#: Messages of the source thread's first checkpoint: values every copy has to copy.
HISTORY = 1000
#: Messages of each later checkpoint: the latest ones, one of them new (and interned).
RECENT = 5


def _chat(turns: int) -> dict[str, Any]:
    """The last `RECENT` messages of a chat after `turns` messages."""
    return {"messages": [message(i) for i in range(turns - RECENT, turns)]}


async def test_copies_racing_a_busy_writer_are_whole(saver: Any) -> None:
    """Copies (`copy_thread` and `threads.copy`) of a thread that another thread keeps
    putting to refer only to values they hold, and read back as a state of the source."""
    put_done = threading.Semaphore(0)
    stop = threading.Event()
    failures: list[BaseException] = []

    history = make_checkpoint({"messages": [message(i) for i in range(HISTORY)]})
    first = await call(saver, "async", "put", cfg("src"), history, {}, {})

    def write() -> None:
        config = first
        try:
            for turn in range(HISTORY + 1, HISTORY + MAX_PUTS + 1):
                if stop.is_set():
                    return
                meta = {"source": "loop", "step": turn, "parents": {}}
                config = saver.put(config, make_checkpoint(_chat(turn)), meta, {})
                put_done.release()
        except BaseException as exc:  # reported by the test below
            failures.append(exc)
        finally:
            stop.set()
            put_done.release()  # a copier waiting for a put wakes up

    writer = threading.Thread(target=write)
    writer.start()
    copies: list[str] = []
    try:
        for k in range(COPIES):
            await asyncio.to_thread(put_done.acquire)  # the writer is under way
            if stop.is_set():
                break
            if k % 2:
                copies.append((await th(saver, "copy", "src", f"copy{k}")).thread_id)
            else:
                await call(saver, "async", "copy_thread", "src", f"copy{k}")
                copies.append(f"copy{k}")
    finally:
        stop.set()
        await asyncio.to_thread(writer.join)
    assert not failures, failures
    assert len(copies) == COPIES, "the writer stopped before the copies were taken"

    source = {t.checkpoint["id"]: t for t in await _history(saver, "src")}
    bad = [c for c in copies if await saver.acheck_references(c)]
    assert not bad, f"{len(bad)} of {len(copies)} copies are missing values: {bad}"
    for copy in copies:
        history = await _history(saver, copy)
        assert history, copy
        for item in history:
            original = source[item.checkpoint["id"]]
            assert item.checkpoint["channel_values"] == original.checkpoint["channel_values"]
        latest = await call(saver, "async", "get_tuple", cfg(copy))
        assert latest.checkpoint["id"] == history[0].checkpoint["id"]


async def _history(saver: Any, thread_id: str, ns: str = "") -> list[Any]:
    return [t async for t in saver.alist(cfg(thread_id, ns=ns))]


# --------------------------------------------------------------------------------------
# A `list` iterated lazily leaves its saver free to write
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["sqlite-sync", "sqlite-async"])
async def test_a_lazy_list_does_not_lock_its_saver_out_of_writing(
    flavour: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`get_state_history` takes a thread's history lazily. With a chunk of it taken and a
    write from another connection since, the saver still writes (it failed with "database
    is locked": the open read kept an old snapshot) and the history goes on unchanged."""
    monkeypatch.setattr(sqlite_savers, "BUSY_TIMEOUT_MS", 200)  # a lock shows at once
    async with open_saver(flavour, tmp_path) as saver, open_saver(flavour, tmp_path) as other:
        sync = isinstance(saver, SqliteSaver)
        config, written = cfg("t"), []
        for step in range(STREAM_CHUNK + 20):
            meta = {"source": "loop", "step": step, "parents": {}}
            config = await call(
                saver, "async", "put", config, make_checkpoint({"n": step}), meta, {}
            )
            written.append(config["configurable"]["checkpoint_id"])

        history = saver.list(cfg("t")) if sync else saver.alist(cfg("t"))
        first = next(history) if sync else await anext(history)
        await call(other, "async", "put", cfg("u"), make_checkpoint({"n": 0}), {}, {})
        checkpoint = make_checkpoint({"n": "after"})
        if sync:
            saver.put(config, checkpoint, {}, {})
            rest = list(history)
        else:
            await saver.aput(config, checkpoint, {}, {})
            rest = [item async for item in history]

        listed = [t.checkpoint["id"] for t in [first, *rest]]
        assert listed == written[::-1]
        latest = await call(saver, "async", "get_tuple", cfg("t"))
        assert latest.checkpoint["id"] == checkpoint["id"]


# --------------------------------------------------------------------------------------
# Ids: both engines store the same ones and refuse the same ones, with a ConfigError
# --------------------------------------------------------------------------------------

#: Ids no engine may store: (kind, value). "é" is two bytes in UTF-8.
BAD_IDS = [
    ("nul", "a\x00b"),
    ("surrogate", "a\ud800b"),
    ("long", "x" * (MAX_ID_BYTES + 1)),
    ("long-utf8", "é" * (MAX_ID_BYTES // 2 + 1)),
    ("megabyte", "x" * 2**20),
]


def _bad_calls(saver: Any, head: dict, bad: str) -> list[tuple[str, str, Any]]:
    """(field, call, awaitable) for each way a bad id reaches the saver."""
    parent = head["configurable"]["checkpoint_id"]

    def put(config: dict, values: dict | None = None, **changes: Any) -> Any:
        checkpoint = {**make_checkpoint(values or {"a": 1}), **changes.pop("checkpoint", {})}
        return call(saver, "async", "put", config, checkpoint, changes.pop("meta", {}), {})

    def writes(config: dict, channel: str = "a", task_id: str = "task", path: str = "") -> Any:
        return call(saver, "async", "put_writes", config, [(channel, 1)], task_id, path)

    calls = [
        ("thread_id", "put", put(cfg(bad))),
        ("thread_id", "put_writes", writes(cfg(bad, parent))),
        ("thread_id", "get_tuple", call(saver, "async", "get_tuple", cfg(bad))),
        ("thread_id", "list", _history(saver, bad)),
        ("thread_id", "copy_thread", call(saver, "async", "copy_thread", "t", bad)),
        ("thread_id", "threads.copy", th(saver, "copy", "t", bad)),
        ("thread_id", "delete_thread", call(saver, "async", "delete_thread", bad)),
        ("checkpoint_ns", "put", put(cfg("t", parent, ns=bad))),
        ("checkpoint_ns", "put_writes", writes(cfg("t", parent, ns=bad))),
        ("checkpoint_ns", "get_tuple", call(saver, "async", "get_tuple", cfg("t", ns=bad))),
        ("checkpoint_id", "put", put(head, checkpoint={"id": bad})),
        ("checkpoint_id", "put (parent)", put(cfg("t", bad))),
        ("checkpoint_id", "put_writes", writes(cfg("t", bad))),
        ("checkpoint_id", "get_tuple", call(saver, "async", "get_tuple", cfg("t", bad))),
        ("task_id", "put_writes", writes(head, task_id=bad)),
        ("task_path", "put_writes", writes(head, path=bad)),
        ("channel", "put", put(head, {bad: 1})),
        ("channel", "put_writes", writes(head, channel=bad)),
        ("run_id", "delete_for_runs", call(saver, "async", "delete_for_runs", [bad])),
    ]
    if "\x00" not in bad:  # LangGraph drops NUL characters from metadata strings
        calls.append(("run_id", "put", put(head, meta={"run_id": bad})))
    return calls


@pytest.mark.parametrize(("kind", "bad"), BAD_IDS, ids=[kind for kind, _ in BAD_IDS])
async def test_bad_ids_are_refused_alike_on_every_engine(saver: Any, kind: str, bad: str) -> None:
    """An id PostgreSQL cannot store or index is refused by every saver with a ConfigError
    naming the field, before anything is stored: SQLite took them, and
    PostgreSQL failed with driver errors or, for a NUL in a channel name, stored a row
    that then failed every read of its thread and every `list(None)`."""
    head = await call(saver, "async", "put", cfg("t"), make_checkpoint({"a": 0}), {}, {})
    await call(saver, "async", "put_writes", head, [("a", 1)], "task")
    before = await dump_db(saver)
    problems = [
        await expect_config_error(attempt, field, f"{field} via {name}")
        for field, name, attempt in _bad_calls(saver, head, bad)
    ]
    assert not any(problems), "\n".join(p for p in problems if p)
    assert await dump_db(saver) == before


def test_an_id_error_names_the_field_and_the_limit() -> None:
    for value, says in [
        ("a\x00", "thread_id contains a NUL character"),
        ("a\udfff", "thread_id is not valid Unicode text"),
        ("é" * 257, f"thread_id is 514 bytes long in UTF-8, the limit is {MAX_ID_BYTES}"),
    ]:
        with pytest.raises(ConfigError, match=says):
            check_id(value, "thread_id")


def _longest(seed: int) -> str:
    """An id of exactly `MAX_ID_BYTES` bytes that does not compress (PostgreSQL would
    compress a repetitive one in its index entries)."""
    rng = random.Random(seed)
    text = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(500))
    return text + "é" * ((MAX_ID_BYTES - 500) // 2)


async def test_ids_at_the_limit_are_stored_on_every_engine(saver: Any) -> None:
    """Ids of `MAX_ID_BYTES` in every field of one checkpoint and its writes fit
    PostgreSQL's btree keys (four of them make a write's primary key) and read back."""
    thread_id, ns, checkpoint_id, parent_id, task_id, task_path, channel, run_id = (
        _longest(seed) for seed in range(8)
    )
    assert {len(x.encode()) for x in (thread_id, ns, task_path)} == {MAX_ID_BYTES}
    checkpoint = {**make_checkpoint({channel: "v"}), "id": checkpoint_id}
    meta = {"source": "loop", "step": 1, "parents": {}, "run_id": run_id}
    stored = await call(saver, "async", "put", cfg(thread_id, parent_id, ns), checkpoint, meta, {})
    await call(saver, "async", "put_writes", stored, [(channel, "w")], task_id, task_path)

    got = await call(saver, "async", "get_tuple", cfg(thread_id, checkpoint_id, ns))
    assert got.checkpoint["channel_values"] == {channel: "v"}
    assert got.metadata["run_id"] == run_id
    assert got.parent_config["configurable"]["checkpoint_id"] == parent_id
    assert got.pending_writes == [(task_id, channel, "w")]
    assert [t.checkpoint["id"] for t in await _history(saver, thread_id, ns)] == [checkpoint_id]
    copy = thread_id[:-1] + "y"
    await call(saver, "async", "copy_thread", thread_id, copy)
    assert (await call(saver, "async", "get_tuple", cfg(copy, ns=ns))).pending_writes == [
        (task_id, channel, "w")
    ]
    await call(saver, "async", "delete_for_runs", [run_id])
    assert await _history(saver, thread_id, ns) == []


async def test_a_row_json_functions_reject_does_not_fail_other_threads(saver: Any) -> None:
    """A checkpoint with a NUL in a channel name (as earlier versions stored it) reads
    back, and `list(None)` still lists every thread: PostgreSQL parsed each row's JSON to
    find its format and failed the whole `list` on that row."""
    await call(saver, "async", "put", cfg("ok"), make_checkpoint({"a": 1}), {}, {})
    bad = await call(saver, "async", "put", cfg("bad"), make_checkpoint({"a": 1}), {}, {})
    bad = await call(saver, "async", "put", bad, make_checkpoint({"a": 2}), {}, {})
    key, nul_key = '"a":', '"a\\u0000":'  # the key in the stored JSON text
    text = "CAST(checkpoint AS TEXT)" if is_postgres(saver) else "checkpoint"
    replaced = f"replace({text}, ?, ?)"
    if is_postgres(saver):
        replaced = f"CAST({replaced} AS JSON)"
    sql = f"UPDATE checkpoints SET checkpoint = {replaced}"
    await raw(saver, sql + " WHERE thread_id = 'bad'", (key, nul_key))

    listed = [t async for t in saver.alist(None)]
    assert sorted(t.config["configurable"]["thread_id"] for t in listed) == ["bad", "bad", "ok"]
    assert (await call(saver, "async", "get_tuple", cfg("ok"))).checkpoint["channel_values"] == {
        "a": 1
    }
    got = await call(saver, "async", "get_tuple", bad)
    assert got.checkpoint["channel_values"] == {"a\x00": 2}


async def test_sends_of_checkpoints_before_format_4_move_to_their_child(saver: Any) -> None:
    """Checkpoints of format 1 to 3 kept pending `Send`s as writes on the parent; reading
    the child brings them back, whether its JSON is as written or as PostgreSQL's JSONB
    printed it (databases from before schema version 4)."""
    parent_cp = {**make_checkpoint({"a": 1}), "v": 3}
    parent = await call(saver, "async", "put", cfg("t"), parent_cp, {}, {})
    sends = [Send("node", 1), Send("node", 2)]
    await call(saver, "async", "put_writes", parent, [(TASKS, s) for s in sends], "task")
    child = await call(saver, "async", "put", parent, {**make_checkpoint({"a": 2}), "v": 3}, {}, {})
    forms = ["as written"]
    if is_postgres(saver):
        forms.append("as JSONB printed it")
    for form in forms:
        if form != "as written":
            await raw(
                saver, "UPDATE checkpoints SET checkpoint = CAST(CAST(checkpoint AS JSONB) AS JSON)"
            )
        got = await call(saver, "async", "get_tuple", child)
        assert got.checkpoint["channel_values"][TASKS] == sends, form
        listed = await _history(saver, "t")
        assert listed[0].checkpoint["channel_values"][TASKS] == sends, form
        assert TASKS not in listed[1].checkpoint["channel_values"], form


async def test_a_history_read_while_retention_deletes_it(saver_factory: Any) -> None:
    """A history iterated while another saver prunes the thread: the checkpoints it still
    lists decode whole (on PostgreSQL the stream's later rows referred to values the prune
    had deleted: DecodeError 'stored value ... is missing'), and a value lost otherwise is
    still an error."""
    async with saver_factory(shared=True) as saver, saver_factory(shared=True) as other:
        sync = not hasattr(saver, "loop")
        config, messages = cfg("t"), []
        for step in range(2 * STREAM_CHUNK + 50):
            messages.append(message(step))
            values = {"messages": list(messages), "note": f"note {step} " * 30}
            meta = {"source": "loop", "step": step, "parents": {}}
            config = await call(saver, "async", "put", config, make_checkpoint(values), meta, {})

        history = saver.list(cfg("t")) if sync else saver.alist(cfg("t"))
        first = next(history) if sync else await anext(history)
        await call(other, "async", "prune", ["t"], strategy="keep_latest")
        rest = await asyncio.to_thread(list, history) if sync else [t async for t in history]
        assert first.checkpoint["channel_values"]["messages"] == messages
        for item in rest:  # whatever the snapshot still lists is whole
            step = item.metadata["step"]
            assert item.checkpoint["channel_values"]["messages"] == messages[: step + 1]


async def test_the_whole_database_is_checked_a_thread_at_a_time(
    saver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check_references()` reads one thread per statement (memory holds one thread's
    documents, not the database's), listing thread ids in pages of the checkpoints and of
    the values: every thread is checked once, values without checkpoints and a damaged
    thread included, and it finds what the checks of each thread find."""
    monkeypatch.setattr(ops, "STORED_THREADS_PAGE", 2)
    for tid in ("a", "b", "c", "d", "e", "f"):
        chat = {"messages": [message(i) for i in range(6)]}
        await call(saver, "async", "put", cfg(tid), make_checkpoint(chat), {}, {})
    ((h, value, refs),) = await raw(
        saver, "SELECT hash, value, refs FROM checkpoint_values WHERE thread_id = 'd' LIMIT 1"
    )
    await raw(saver, "DELETE FROM checkpoint_values WHERE thread_id = 'd' AND hash = ?", (h,))
    for orphan in ("bb", "g"):  # values of threads without checkpoints
        insert = "INSERT INTO checkpoint_values (thread_id, hash, value, refs) VALUES (?, ?, ?, ?)"
        await raw(saver, insert, (orphan, h, value, refs))
    threads = ["a", "b", "bb", "c", "d", "e", "f", "g"]
    each = [await call(saver, "async", "check_references", tid) for tid in threads]
    assert [bool(problems) for problems in each] == [tid in ("bb", "d", "g") for tid in threads]
    async with probing(saver) as probe:
        probe.active = True
        found = await call(saver, "async", "check_references")
    assert found == [p for problems in each for p in problems]
    checks = [s for s in probe.statements if "'c' AS kind, thread_id, checkpoint_ns" in s]
    assert len(checks) == len(threads)
