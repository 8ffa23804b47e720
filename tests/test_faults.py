"""Faults: a writer process killed mid-put, and retention racing writers.

Killed writer: a child process (this file run as a script) puts checkpoints of a growing
chat in a loop and reports each acknowledged put on its stdout; the test kills it with
SIGKILL after a random number of acknowledgements (wherever it is then: usually inside
the next put), then checks with a fresh saver that every acknowledged checkpoint reads
back whole, that only whole checkpoints exist (each listed one decodes, no value missing
or orphaned) and that the thread's row agrees; then it starts the next writer on the
same thread. On SQLite and on PostgreSQL.

Retention racing writers: graphs run turns on a few threads through one saver while
another saver on the same database runs `keep_last`, `prune_older_than` and `prune` on
the same threads, in batches of one thread; afterwards nothing is missing, the latest
checkpoints survive, and the graphs go on. On all four savers.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers import api_of as api
from helpers import call, get_state, invoke, th
from helpers import cfg as conf
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint
from storage import build_chat_graph

FILLER = "The route-map on edge-7 permits 10.0.0.0/8 through AS 64513 with localpref 100. "
ROUNDS = 3  # writers killed per engine
USER = "ana"


def answer(n: int, size: int = 1500) -> str:
    return (f"Answer {n}: " + FILLER * (size // len(FILLER) + 1))[:size]


# ----------------------------------------------------------------------------------------
# The writer process
# ----------------------------------------------------------------------------------------


def open_sync_saver(engine: str, where: str) -> Any:
    from langgraph_store_dual import PostgresSaver, SqliteSaver

    if engine == "sqlite":
        return SqliteSaver.from_conn_string(where)
    return PostgresSaver.from_conn_string(where)


def write_forever(engine: str, where: str, thread_id: str) -> None:
    """Continue the chat of `thread_id` from its latest checkpoint, one turn per put and
    a task's writes after it; print `<checkpoint id> <turn>` once both are stored."""
    with open_sync_saver(engine, where) as saver:
        latest = saver.get_tuple(conf(thread_id))
        messages = latest.checkpoint["channel_values"]["messages"] if latest else []
        parent = latest.checkpoint["id"] if latest else None
        n = len(messages) // 2
        while True:
            n += 1
            messages = [
                *messages,
                HumanMessage(f"q{n}", id=f"h{n}"),
                AIMessage(answer(n), id=f"a{n}"),
            ]
            checkpoint = create_checkpoint(empty_checkpoint(), None, n)
            checkpoint["channel_values"] = {"messages": messages, "turn": n}
            versions = {"messages": n, "turn": n}
            checkpoint["channel_versions"] = dict(versions)
            metadata = {"source": "loop", "step": n, "parents": {}, "user_id": USER}
            stored = saver.put(conf(thread_id, parent), checkpoint, metadata, versions)
            saver.put_writes(stored, [("messages", [AIMessage(answer(-n), id=f"w{n}")])], "t")
            parent = checkpoint["id"]
            print(parent, n, flush=True)


# ----------------------------------------------------------------------------------------
# 1. SIGKILL mid-put
# ----------------------------------------------------------------------------------------


def run_and_kill(engine: str, where: str, thread_id: str, acks: int) -> list[tuple[str, int]]:
    """Start a writer, kill it after `acks` acknowledged puts; every acknowledged put."""
    proc = subprocess.Popen(
        [sys.executable, __file__, engine, where, thread_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        lines = []
        while len(lines) < acks:
            line = proc.stdout.readline()
            assert line, f"the writer died on its own:\n{proc.stderr.read()}"
            lines.append(line)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(60)
        rest = proc.stdout.read()  # not communicate(): it skips what readline buffered
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(60)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    # lines printed before the kill were acknowledged too; a cut-off last line was not
    done = [line for line in [*lines, *rest.splitlines(keepends=True)] if line.endswith("\n")]
    return [(cid, int(n)) for cid, n in (line.split() for line in done)]


def check_after_kill(engine: str, where: str, thread_id: str, acked: list) -> int:
    """Every acknowledged checkpoint whole, nothing half-written; the number stored."""
    with open_sync_saver(engine, where) as saver:
        for cid, n in acked:
            t = saver.get_tuple(conf(thread_id, cid))
            assert t is not None, f"acknowledged checkpoint {cid} (turn {n}) is lost"
            messages = t.checkpoint["channel_values"]["messages"]
            assert len(messages) == 2 * n and messages[-1].content == answer(n)
            assert [(task, ch) for task, ch, _ in t.pending_writes] == [("t", "messages")]
        listed = list(saver.list(conf(thread_id)))
        ids = [t.checkpoint["id"] for t in listed]
        assert {cid for cid, _ in acked} <= set(ids)
        for t in listed:  # only whole checkpoints: each decodes to its full chat
            turn = t.checkpoint["channel_values"]["turn"]
            messages = t.checkpoint["channel_values"]["messages"]
            assert len(messages) == 2 * turn and messages[-1].content == answer(turn)
        assert saver.check_references() == []
        row = saver.threads.get(thread_id)
        assert (row.user_id, row.title, row.run_state) == (USER, "q1", "idle")
        stats = saver.threads.stats(thread_id)
        assert stats.checkpoints == len(listed)
        assert saver.get_tuple(conf(thread_id)).checkpoint["id"] == max(ids)
        return len(listed)


def killed_writers(engine: str, where: str) -> None:
    rng = random.Random(f"kill-{engine}")
    all_acked: list[tuple[str, int]] = []
    for _ in range(ROUNDS):
        acked = run_and_kill(engine, where, "chat", rng.randint(3, 25))
        all_acked += acked
        stored = check_after_kill(engine, where, "chat", all_acked)
        # at most the put in flight when the kill came committed without its ack
        assert len(all_acked) <= stored <= len(all_acked) + ROUNDS


def test_a_writer_killed_mid_put_loses_nothing_acknowledged_sqlite(tmp_path: Path) -> None:
    killed_writers("sqlite", str(tmp_path / "killed.db"))


def test_a_writer_killed_mid_put_loses_nothing_acknowledged_postgres(pg_clean_url: str) -> None:
    killed_writers("postgres", pg_clean_url)


# ----------------------------------------------------------------------------------------
# 2. Retention racing writers
# ----------------------------------------------------------------------------------------

THREADS = ("r0", "r1", "r2")
TURNS = 10


def chat_graph(checkpointer: Any, name: str) -> Any:
    """A one-node chat whose fake model answers with long (interned) replies."""
    return build_chat_graph(checkpointer, [reply(name, i) for i in range(100)])


def reply(name: str, turn: int) -> str:
    return f"{name}: " + answer(turn)


async def test_retention_racing_writers_keeps_the_latest_and_loses_nothing(
    saver: Any, saver_factory: Any
) -> None:
    graphs = {t: chat_graph(saver, t) for t in THREADS}
    last: dict[str, str] = {}

    async def chat(thread_id: str) -> None:
        config = {"configurable": {"thread_id": thread_id, "user_id": USER}}
        for turn in range(TURNS):
            human = HumanMessage(f"{thread_id} q{turn}", id=f"{thread_id}-h{turn}")
            await invoke(graphs[thread_id], {"messages": [human]}, config)
            state = await get_state(graphs[thread_id], config)
            last[thread_id] = state.config["configurable"]["checkpoint_id"]

    async with saver_factory(shared=True) as cleaner:
        writers = asyncio.gather(*(chat(t) for t in THREADS))
        rounds = 0
        while not writers.done():
            await th(cleaner, "keep_last", 2, batch_size=1)
            await th(cleaner, "prune_older_than", 0, batch_size=1)
            await call(cleaner, api(cleaner), "prune", list(THREADS), strategy="keep_latest")
            rounds += 1
        await writers
        assert rounds >= 1
        assert await cleaner.acheck_references() == []

    for thread_id, graph in graphs.items():
        config = {"configurable": {"thread_id": thread_id}}
        state = await get_state(graph, config)
        assert state.config["configurable"]["checkpoint_id"] == last[thread_id]
        messages = state.values["messages"]
        assert [m.content for m in messages] == [
            text
            for turn in range(TURNS)
            for text in (f"{thread_id} q{turn}", reply(thread_id, turn))
        ]
        # the graph goes on from what retention left
        await invoke(graph, {"messages": [HumanMessage("again", id=f"{thread_id}-x")]}, config)
        after = (await get_state(graph, config)).values["messages"]
        assert len(after) == 2 * TURNS + 2 and after[-1].content == reply(thread_id, TURNS)
        row = await th(saver, "get", thread_id)
        assert (row.user_id, row.title, row.run_state) == (USER, f"{thread_id} q0", "idle")
    assert await saver.acheck_references() == []


if __name__ == "__main__":  # the writer process of the kill test
    write_forever(*sys.argv[1:4])
