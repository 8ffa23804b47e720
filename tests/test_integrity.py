"""Nothing lost, nothing leaked: copies of busy threads are whole, a lazy `list` does not
lock its saver out of writing, and both engines accept and refuse the same ids.

Runs on every saver flavour (the `saver` fixture) unless a test is about one engine.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import open_saver
from langgraph.checkpoint.serde.types import TASKS
from langgraph.types import Send
from test_contract import call, cfg, is_postgres, make_checkpoint, raw
from test_interning import message
from test_threads import th

from langgraph_store_dual import SqliteSaver
from langgraph_store_dual.saver import STREAM_CHUNK
from langgraph_store_dual.sqlite import savers as sqlite_savers

#: Copies taken while a writer keeps putting to their source.
COPIES = 12
#: The writer stops after this many puts even if the copies are not done.
MAX_PUTS = 400

# --------------------------------------------------------------------------------------
# A copy is a state its source had, even while the source is written to
# --------------------------------------------------------------------------------------


#: Messages of the source thread's first checkpoint: what each copy has to copy.
HISTORY = 1000
#: Messages of each later checkpoint: the latest ones, one of them new.
RECENT = 5


def _chat(turns: int) -> dict[str, Any]:
    """The last `RECENT` messages of a chat after `turns` messages: each put interns one
    new message."""
    return {"messages": [message(i) for i in range(max(0, turns - RECENT), turns)]}


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
# A row JSON functions cannot read fails no read of other threads
# --------------------------------------------------------------------------------------


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
