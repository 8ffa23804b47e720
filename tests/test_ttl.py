"""Thread time-to-live, sweeps and erasure of a user, on every saver flavour, with real
graphs. Time passes by setting `expires_at` back with SQL (`raw`), never by sleeping."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import (
    OLD,
    chat_graph,
    count_rows,
    count_writes,
    human,
    invoke,
    is_async,
    is_postgres,
    raw,
    th,
)
from helpers import get_state as state
from helpers import run_cfg as conf
from langgraph.types import Command
from storage import assert_references

from langgraph_store_dual import ConfigError, Removed, from_url
from langgraph_store_dual.core import ttl as ttl_ops

HOUR = timedelta(hours=1)
ROOT = Path(__file__).resolve().parents[1]


def sweep_command(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m langgraph_store_dual sweep ARGS` on the database `url`."""
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "langgraph_store_dual", "sweep", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


async def expire(saver: Any, *thread_ids: str) -> None:
    """Let these threads' ttls run out (their expiry set far back)."""
    marks = ", ".join("?" * len(thread_ids))
    await raw(
        saver, f"UPDATE threads SET expires_at = ? WHERE thread_id IN ({marks})", (OLD, *thread_ids)
    )


async def run_step(saver: Any, op: Any, write: bool) -> Any:
    """One step (a transaction) of a plan, on this saver's connection."""
    if is_async(saver):
        return await saver._arun(op, write=write)
    return await asyncio.to_thread(saver._run, op, write=write)


def assert_expiry(thread: Any, ttl: timedelta) -> None:
    """The expiry is the last activity plus the ttl, to the millisecond."""
    assert thread.ttl == ttl and thread.expires_at is not None
    assert thread.expires_at - thread.updated_at == ttl


# --------------------------------------------------------------------------------------
# 1. Setting a ttl; expiry follows activity
# --------------------------------------------------------------------------------------


async def test_ttl_is_set_by_hand_and_expiry_follows_activity(saver: Any) -> None:
    made = await th(saver, "create", thread_id="t", user_id="ana", ttl=HOUR)
    assert made.ttl_strategy == "delete"  # the saver's default strategy
    assert_expiry(made, HOUR)
    graph = chat_graph(saver)
    await invoke(graph, human("hello", 1), conf("t"))
    touched = await th(saver, "get", "t")
    assert touched.updated_at > made.updated_at
    assert_expiry(touched, HOUR)  # the put moved the expiry with the activity

    kept = await th(saver, "update", "t", ttl=120, ttl_strategy="keep_latest")
    assert (kept.ttl_strategy, kept.user_id) == ("keep_latest", "ana")
    assert_expiry(kept, timedelta(minutes=2))
    renamed = await th(saver, "update", "t", title="renamed")
    assert renamed.ttl_strategy == "keep_latest"
    assert_expiry(renamed, timedelta(minutes=2))
    await invoke(graph, human("ask", 2), conf("t"))  # writes report an interrupt
    interrupted = await th(saver, "get", "t")
    assert interrupted.run_state == "interrupted"
    assert_expiry(interrupted, timedelta(minutes=2))

    cleared = await th(saver, "update", "t", ttl=None)
    assert (cleared.ttl, cleared.ttl_strategy, cleared.expires_at) == (None, None, None)
    await invoke(graph, Command(resume="yes"), conf("t"))
    assert (await th(saver, "get", "t")).expires_at is None

    no_ttl = await th(saver, "create", thread_id="plain")
    assert (no_ttl.ttl, no_ttl.expires_at) == (None, None)
    for bad, match in (
        ({"ttl": 0}, "ttl must be more than 0"),
        ({"ttl": -5}, "ttl must be a timedelta or a number of seconds >= 0"),
        ({"ttl": "1h"}, "ttl must be a timedelta"),
        ({"ttl": timedelta(days=366 * 1001)}, "at most 1000 years"),
        ({"ttl": HOUR, "ttl_strategy": "archive"}, "ttl_strategy must be one of"),
    ):
        with pytest.raises(ConfigError, match=match):
            await th(saver, "create", **bad)
        with pytest.raises(ConfigError, match=match):
            await th(saver, "update", "plain", **bad)
    with pytest.raises(ConfigError, match="a ttl_strategy goes with a ttl"):
        await th(saver, "update", "plain", ttl_strategy="keep_latest")
    with pytest.raises(ConfigError, match="a ttl_strategy goes with a ttl"):
        await th(saver, "create", ttl=None, ttl_strategy="delete")
    assert (await th(saver, "get", "plain")) == no_ttl  # nothing changed
    assert await th(saver, "count") == 2


async def test_the_savers_default_ttl_applies_to_threads_it_creates(saver_factory: Any) -> None:
    async with saver_factory(shared=True) as plain:
        await invoke(chat_graph(plain), human("hi", 1), conf("before"))
        assert (await th(plain, "get", "before")).ttl is None
    async with saver_factory(
        shared=True, default_ttl=timedelta(days=30), ttl_strategy="keep_latest"
    ) as saver:
        graph = chat_graph(saver)
        await invoke(graph, human("hi", 1), conf("by-a-run", user_id="ana"))
        run_made = await th(saver, "get", "by-a-run")
        assert (run_made.ttl_strategy, run_made.user_id) == ("keep_latest", "ana")
        assert_expiry(run_made, timedelta(days=30))
        await invoke(graph, human("hi", 2), conf("before"))  # a thread from before keeps none
        assert (await th(saver, "get", "before")).ttl is None
        by_hand = await th(saver, "create", thread_id="by-hand")
        assert_expiry(by_hand, timedelta(days=30))
        assert by_hand.ttl_strategy == "keep_latest"
        assert (await th(saver, "create", thread_id="none", ttl=None)).ttl is None
        other = await th(saver, "create", thread_id="own", ttl=HOUR, ttl_strategy="delete")
        assert_expiry(other, HOUR)
        await invoke(graph, human("hi", 1), conf("own"))
        assert (await th(saver, "get", "own")).ttl == HOUR  # a put keeps the thread's own
        copied = await th(saver, "copy", "own", "own-copy")
        assert (copied.ttl, copied.ttl_strategy) == (HOUR, "delete")
        assert_expiry(copied, HOUR)
    with pytest.raises(ConfigError, match=r"unknown .* option default_tll"):
        async with saver_factory(default_tll=HOUR):
            pass
    with pytest.raises(ConfigError, match="ttl_strategy must be one of"):
        async with saver_factory(default_ttl=HOUR, ttl_strategy="forever"):
            pass
    with pytest.raises(ConfigError, match="ttl must be more than 0"):
        async with saver_factory(default_ttl=timedelta(0)):
            pass


# --------------------------------------------------------------------------------------
# 2. Sweeps
# --------------------------------------------------------------------------------------


async def test_sweep_applies_both_strategies_in_batches(saver: Any) -> None:
    graph = chat_graph(saver)
    ttls = {"d1": "delete", "d2": "delete", "d3": "delete", "k1": "keep_latest"}
    ttls |= {"k2": "keep_latest", "fresh": "delete"}
    for tid, strategy in ttls.items():
        await th(saver, "create", thread_id=tid, ttl=timedelta(days=1), ttl_strategy=strategy)
    for tid in [*ttls, "none"]:
        for turn in range(2):
            await invoke(graph, human(f"{tid} says {turn}", turn), conf(tid))
    await invoke(graph, human("ask", 9), conf("k2"))  # k2 waits at an interrupt
    expired = ["d1", "d2", "d3", "k1", "k2"]
    await expire(saver, *expired)
    before = {t: await count_rows(saver, "checkpoints", t) for t in [*ttls, "none"]}
    writes_before = await count_writes(saver)
    k2_state = await state(graph, conf("k2"))

    listed = await th(saver, "list", expires_within=0)
    assert sorted(t.thread_id for t in listed.items) == expired
    assert await th(saver, "count", expires_within=timedelta(days=2)) == 6
    assert await th(saver, "count", expires_within=0, user_id="nobody") == 0
    assert await th(saver, "count", expires_within=timedelta(days=10**6)) == 6
    with pytest.raises(ConfigError, match="expires_within must be a timedelta"):
        await th(saver, "list", expires_within=-1)

    first = await th(saver, "sweep", limit=1)
    assert len(first.threads) == 1 and first.checkpoints > 0
    removed = first + await th(saver, "sweep", batch_size=2)
    await assert_references(saver)

    assert sorted(removed.threads) == expired
    deleted = before["d1"] + before["d2"] + before["d3"]
    assert removed.checkpoints == deleted + before["k1"] - 1 + before["k2"] - 1
    assert removed.writes == writes_before - await count_writes(saver) > 0
    left = {t.thread_id: t for t in (await th(saver, "list")).items}
    assert sorted(left) == ["fresh", "k1", "k2", "none"]
    assert left["k1"].expires_at is None and left["k1"].ttl == timedelta(days=1)
    for tid in ("k1", "k2"):
        assert await count_rows(saver, "checkpoints", tid) == 1
    assert await count_rows(saver, "checkpoints", "fresh") == before["fresh"]
    assert await count_rows(saver, "checkpoints", "d1") == 0
    assert await count_rows(saver, "checkpoint_values", "d1") == 0
    assert await th(saver, "sweep") == Removed()  # nothing left to do

    # the kept threads resume: k2 from its interrupt, with its state whole
    assert (await state(graph, conf("k2"))).values == k2_state.values
    await invoke(graph, Command(resume="yes"), conf("k2"))
    assert (await state(graph, conf("k2"))).values["messages"][-1].content == "you said yes"
    assert_expiry(await th(saver, "get", "k2"), timedelta(days=1))  # armed again


async def test_a_thread_written_after_it_expired_survives_the_sweep(saver_factory: Any) -> None:
    """The sweep finds two expired threads; before its deleting transaction, a run on
    another connection writes to one of them, which must stay."""
    async with saver_factory(shared=True) as sweeper, saver_factory(shared=True) as writer:
        graph = chat_graph(writer)
        for tid in ("raced", "idle"):
            await th(writer, "create", thread_id=tid, ttl=HOUR)
            await invoke(graph, human("hi", 1), conf(tid))
        await expire(writer, "raced", "idle")
        raced_before = await count_rows(writer, "checkpoints", "raced")

        plan = ttl_ops.sweep(sweeper.dialect, None, 10)
        cutoff = await run_step(sweeper, *next(plan))
        ids = await run_step(sweeper, *plan.send(cutoff))
        assert sorted(ids) == ["idle", "raced"]
        await invoke(graph, human("still here", 2), conf("raced"))  # the other connection
        removed = await run_step(sweeper, *plan.send(ids))
        assert await run_step(sweeper, *plan.send(removed)) == []  # nothing else expired
        with pytest.raises(StopIteration):
            plan.send([])

        assert removed.threads == ("idle",)
        raced = await th(writer, "get", "raced")
        assert raced is not None and raced.expires_at > datetime.now(timezone.utc)
        assert await count_rows(writer, "checkpoints", "raced") > raced_before
        messages = (await state(graph, conf("raced"))).values["messages"]
        assert [m.content for m in messages][-2:] == ["still here", "echo still here"]
        assert await th(writer, "get", "idle") is None


def test_the_sweep_command(tmp_path: Any, pg_clean_url: str) -> None:
    for url in (f"sqlite:///{tmp_path / 'cron.db'}", pg_clean_url):
        with from_url(url) as saver:
            graph = chat_graph(saver)
            for tid in ("gone", "stays"):
                saver.threads.create(thread_id=tid, ttl=HOUR)
                graph.invoke(human("hi", 1), conf(tid))
            checkpoints = asyncio.run(count_rows(saver, "checkpoints", "gone"))
            writes = asyncio.run(count_rows(saver, "checkpoint_writes", "gone"))
            asyncio.run(expire(saver, "gone"))
        done = sweep_command(url, "--batch-size", "10", "--json")
        assert done.returncode == 0, done.stderr
        swept = json.loads(done.stdout)
        assert swept == {
            "threads": 1,
            "checkpoints": checkpoints,
            "writes": swept["writes"],
            "thread_ids": ["gone"],
        }
        assert swept["writes"] >= writes > 0
        assert sweep_command(url).stdout.strip() == "sweep: no thread had expired"
        refused = sweep_command(url, "--batch-size", "0")
        assert refused.returncode == 2 and "batch_size must be an int" in refused.stderr
        assert "Traceback" not in refused.stderr
        with from_url(url) as saver:
            assert saver.threads.get("gone") is None and saver.threads.get("stays") is not None


# --------------------------------------------------------------------------------------
# 3. Erasure of a user
# --------------------------------------------------------------------------------------

SHARED = "a question both users asked, long enough to be stored once per thread " * 2


async def _everything(saver: Any) -> str:
    """The text of every row of every table of the database."""
    if is_postgres(saver):
        tables = await raw(
            saver, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
        rows = [r for (t,) in tables for r in await raw(saver, f"SELECT x::text FROM {t} x")]
    else:
        tables = await raw(saver, "SELECT name FROM sqlite_master WHERE type = 'table'")
        rows = [r for (t,) in tables for r in await raw(saver, f"SELECT * FROM {t}")]
    assert len(tables) >= 5
    return "\n".join(map(str, rows))


async def _hashes(saver: Any, thread_id: str) -> set[str]:
    rows = await raw(saver, "SELECT hash FROM checkpoint_values WHERE thread_id = ?", (thread_id,))
    return {h for (h,) in rows}


async def test_delete_user_erases_everything_of_the_user(saver: Any) -> None:
    graph = chat_graph(saver)
    ana = "ANA-user@example.com"
    for tid in ("ANA-1", "ANA-2"):
        await invoke(graph, human(SHARED, "shared"), conf(tid, user_id=ana))
        await invoke(graph, human(f"ANA-secret plan {tid} " * 8, 2), conf(tid, user_id=ana))
    await invoke(graph, human("ANA-secret, said before signing in " * 8, 1), conf("ANA-later"))
    assert (await th(saver, "get", "ANA-later")).user_id is None
    attributed = await th(saver, "update", "ANA-later", user_id=ana)
    assert attributed.user_id == ana  # attributed to the user afterwards
    await invoke(graph, human(SHARED, "shared"), conf("bob-1", user_id="bob"))
    await invoke(graph, human("ask", 2), conf("bob-1", user_id="bob"))
    bob_hashes = await _hashes(saver, "bob-1")
    ana_hashes = await _hashes(saver, "ANA-1")
    assert bob_hashes & ana_hashes  # a value stored for both
    assert ana_hashes - bob_hashes  # and ones only the user's has
    bob_state = await state(graph, conf("bob-1"))
    ana_checkpoints = sum(
        [await count_rows(saver, "checkpoints", t) for t in ("ANA-1", "ANA-2", "ANA-later")]
    )
    writes = await count_writes(saver) - await count_writes(saver, "bob-1")
    assert "ANA-" in await _everything(saver)

    removed = await th(saver, "delete_user", ana, batch_size=2)

    assert sorted(removed.threads) == ["ANA-1", "ANA-2", "ANA-later"]
    assert (removed.checkpoints, removed.writes) == (ana_checkpoints, writes)
    assert "ANA-" not in await _everything(saver)  # nothing of the user, anywhere
    assert await _hashes(saver, "bob-1") == bob_hashes  # the shared values stay for bob
    stored = {h for (h,) in await raw(saver, "SELECT hash FROM checkpoint_values")}
    assert stored == bob_hashes  # the values only the user's threads had are gone
    assert (await state(graph, conf("bob-1"))).values == bob_state.values
    await assert_references(saver)
    assert [t.thread_id for t in (await th(saver, "list")).items] == ["bob-1"]
    assert await th(saver, "delete_user", ana) == Removed()
    with pytest.raises(ConfigError, match="delete_user needs a user_id"):
        await th(saver, "delete_user", None)


# --------------------------------------------------------------------------------------
# 4. A database of the previous schema version upgrades
# --------------------------------------------------------------------------------------

V5_THREAD_COLUMNS = [
    "thread_id", "user_id", "title", "status", "metadata", "head_ts", "state", "state_ts",
    "created_at", "updated_at", "updated_minute",
]  # fmt: skip


async def _thread_columns(saver: Any) -> list[str]:
    if is_postgres(saver):
        sql = """SELECT column_name FROM information_schema.columns WHERE table_schema =
            current_schema() AND table_name = 'threads' ORDER BY ordinal_position"""
        return [c for (c,) in await raw(saver, sql)]
    return [r[1] for r in await raw(saver, "SELECT * FROM pragma_table_xinfo('threads')")]


async def test_a_database_at_the_previous_version_upgrades(saver: Any, saver_factory: Any) -> None:
    graph = chat_graph(saver)
    await invoke(graph, human("hi", 1), conf("old", user_id="ana"))
    history = await th(saver, "history", "old", limit=None)
    version = len(saver.dialect.migrations)
    # back to version 5, as a database written before thread ttls has it (version 7, the
    # usage view and the creation-order indexes, comes after)
    for drop in ("VIEW message_usage", "INDEX threads_user_created", "INDEX threads_created"):
        await raw(saver, f"DROP {drop}")
    await raw(saver, "DROP INDEX threads_expiry")
    for column in ("expires_minute", "expires_at", "ttl_strategy", "ttl_seconds"):
        await raw(saver, f"ALTER TABLE threads DROP COLUMN {column}")
    await raw(saver, "DELETE FROM schema_version WHERE version >= ?", (version - 1,))
    assert await _thread_columns(saver) == V5_THREAD_COLUMNS

    async with saver_factory(shared=True, default_ttl=HOUR) as upgraded:
        old = await th(upgraded, "get", "old")
        assert await raw(upgraded, "SELECT max(version) FROM schema_version") == [(version,)]
        assert await _thread_columns(upgraded) == [
            *V5_THREAD_COLUMNS, "ttl_seconds", "ttl_strategy", "expires_at", "expires_minute"
        ]  # fmt: skip
        assert (old.user_id, old.ttl, old.expires_at) == ("ana", None, None)
        assert await th(upgraded, "history", "old", limit=None) == history
        assert_expiry(await th(upgraded, "update", "old", ttl=HOUR), HOUR)
        await expire(upgraded, "old")
        assert (await th(upgraded, "sweep")).threads == ("old",)


def _recipe() -> str:
    """The pg_cron procedure of the README, as it gives it."""
    doc = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", doc, re.DOTALL)
    return next(b for b in blocks if "CREATE OR REPLACE PROCEDURE" in b)


def test_the_pg_cron_recipe_sweeps_delete_threads(pg_clean_url: str) -> None:
    with from_url(pg_clean_url) as saver:
        graph = chat_graph(saver)
        for tid, strategy in (("d1", "delete"), ("d2", "delete"), ("d3", "delete")):
            saver.threads.create(thread_id=tid, ttl=HOUR, ttl_strategy=strategy)
        saver.threads.create(thread_id="k", ttl=HOUR, ttl_strategy="keep_latest")
        saver.threads.create(thread_id="fresh", ttl=HOUR)
        for tid in ("d1", "d2", "d3", "k", "fresh"):
            for turn in range(2):
                graph.invoke(human(f"{tid} {turn}", turn), conf(tid))
        asyncio.run(expire(saver, "d1", "d2", "d3", "k"))
        k_checkpoints = asyncio.run(count_rows(saver, "checkpoints", "k"))
    with psycopg.connect(pg_clean_url, autocommit=True) as conn:
        conn.execute(_recipe())
        conn.execute("CALL langgraph_sweep_expired(2)")  # two batches and an empty one
        left = conn.execute("SELECT thread_id FROM threads ORDER BY thread_id").fetchall()
        assert left == [("fresh",), ("k",)]
        for table in ("checkpoints", "checkpoint_writes", "checkpoint_values"):
            rows = conn.execute(
                f"SELECT DISTINCT thread_id FROM {table} ORDER BY thread_id"
            ).fetchall()
            assert rows == [("fresh",), ("k",)], table
        k = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = 'k'").fetchone()
        assert k == (k_checkpoints,)  # keep_latest is left to the package's sweep
    with from_url(pg_clean_url) as saver:
        assert saver.check_references() == []
        assert saver.threads.sweep().threads == ("k",)
